"""Pod bandwidth with tc tbf: egress on the pod-side interface (root qdisc in the pod namespace),
ingress on the host-side veth.

The qdisc is set through pyroute2's tbf (rate in bytes/s, burst in bytes, latency in us), which
is reliable for rates below 2^32 bytes/s. tbf's 32-bit rate field cannot hold more, and pyroute2
does not send TCA_TBF_RATE64, so above that the `tc` command is run inside the namespace instead.
"""

from __future__ import annotations

import subprocess

from terwayctl.core.bandwidth import PodBandwidth, tbf_parameters
from terwayctl.kernel import netns
from terwayctl.kernel.datapath._links import link_index
from terwayctl.kernel.datapath.model import DatapathError
from terwayctl.kernel.netlink import Netlink, errcode, is_absent
from terwayctl.kernel.netns import Namespace

TC_H_ROOT = 0xFFFFFFFF
_RATE32_LIMIT = 2**32
_TC_TIMEOUT = 10.0


def root_qdisc_kind(nl: Netlink, index: int) -> str | None:
    for msg in nl.tc("dump", index=index):
        if msg["index"] == index and msg["parent"] == TC_H_ROOT:
            kind = msg.get_attr("TCA_KIND")
            return None if kind is None else str(kind)
    return None


def set_tbf(nl: Netlink, ns: Namespace, ifname: str, index: int, rate: int, mtu: int) -> None:
    """Replace the root qdisc of the link by a tbf shaping to `rate` bytes/s."""
    params = tbf_parameters(rate, mtu)
    if params.rate < _RATE32_LIMIT:
        nl.tc(
            "replace",
            "tbf",
            index=index,
            handle="1:",
            rate=params.rate,
            burst=params.burst,
            latency=params.latency_us,
        )
        return
    argv = ["tc", "qdisc", "replace", "dev", ifname, "root", "handle", "1:", "tbf",
            "rate", f"{params.rate * 8}bit", "burst", f"{params.burst}b", "latency", f"{params.latency_us}us"]  # fmt: skip
    done = subprocess.run(
        netns.command(ns, argv), capture_output=True, text=True, timeout=_TC_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise DatapathError(f"tc qdisc replace on {ifname} failed: {done.stderr.strip()}")


def clear_tbf(nl: Netlink, index: int) -> None:
    """Remove a root tbf (only a tbf: other root qdiscs are not ours). Absent is fine."""
    if root_qdisc_kind(nl, index) != "tbf":
        return
    try:
        nl.tc("del", index=index, handle="1:", parent=TC_H_ROOT)
    except Exception as exc:
        if not (is_absent(exc) or errcode(exc) == 22):  # EINVAL: no such qdisc on this kernel
            raise


def shape(nl: Netlink, ns: Namespace, ifname: str, index: int, rate: int | None, mtu: int) -> None:
    if rate is None:
        clear_tbf(nl, index)
    else:
        set_tbf(nl, ns, ifname, index, rate, mtu)


def apply_bandwidth(
    node_netns: Namespace,
    pod_netns: Namespace,
    pod_ifname: str,
    host_ifname: str,
    bandwidth: PodBandwidth,
    mtu: int = 1500,
) -> None:
    """Shape a veth-attached pod: egress on `pod_ifname` in the pod namespace, ingress on
    `host_ifname` in the node namespace. A direction that is None gets its tbf removed.
    Rates are bytes per second; idempotent."""
    with netns.iproute(pod_netns) as pn:
        index = link_index(pn, pod_ifname)
        if index is None:
            raise DatapathError(f"{pod_ifname} not found in pod namespace {pod_netns}")
        shape(pn, pod_netns, pod_ifname, index, bandwidth.egress, mtu)
    with netns.iproute(node_netns) as nn:
        index = link_index(nn, host_ifname)
        if index is None:
            raise DatapathError(f"{host_ifname} not found in node namespace {node_netns}")
        shape(nn, node_netns, host_ifname, index, bandwidth.ingress, mtu)
