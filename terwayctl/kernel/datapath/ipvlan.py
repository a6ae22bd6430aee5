"""ipvlan L2 mode (upstream plugin/datapath/ipvlan_linux.go), where the kernel has ipvlan.

Detection tries to create an ipvlan link on a dummy in a scratch namespace (``twprobe-<hex>``,
always deleted) and caches the answer for the process. Kernels older than 4.19 are not tried.
The pod gets an ipvlan L2 slave of the ENI as CNI_IFNAME, <podIP>/32 and
``default via <vSwitch gateway> onlink``.
Not done: upstream's host-side ipvlan slave (``ipvl_x``) for node-to-pod traffic and its eBPF
service path.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import re
import secrets

from terwayctl.kernel import netns
from terwayctl.kernel.datapath._links import (
    delete_link,
    link_index,
    link_kind,
    link_msg,
    set_up,
)
from terwayctl.kernel.datapath._podside import configure_pod_link
from terwayctl.kernel.datapath.conn import NodeConn
from terwayctl.kernel.datapath.model import DatapathError, DatapathMode, PodAttachment, PodNetwork
from terwayctl.kernel.netlink import Netlink, NetlinkError
from terwayctl.kernel.netns import Namespace

log = logging.getLogger(__name__)

IPVLAN_MODE_L2 = 0
MIN_KERNEL = (4, 19)
_supported: bool | None = None


def kernel_version(release: str | None = None) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", release if release is not None else platform.release())
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _probe() -> bool:
    if kernel_version() < MIN_KERNEL:
        return False
    name = f"twprobe-{secrets.token_hex(4)}"
    netns.create(name)
    try:
        with netns.iproute(name) as nl:
            nl.link("add", ifname="probe0", kind="veth", peer="probe0p")  # veth: dummy may be missing too
            parent = link_index(nl, "probe0")
            try:
                nl.link("add", ifname="probe1", kind="ipvlan", link=parent, ipvlan_mode=IPVLAN_MODE_L2)
            except NetlinkError as exc:
                log.debug("ipvlan probe failed: %s", exc)
                return False
            return True
    finally:
        netns.delete(name)


def ipvlan_supported(*, refresh: bool = False) -> bool:
    """True when this kernel can create ipvlan links (probed once per process)."""
    global _supported
    if _supported is None or refresh:
        _supported = _probe()
    return _supported


def setup(
    stack: contextlib.ExitStack, conn: NodeConn, pod: Namespace, pn: Netlink, ifname: str, spec: PodNetwork
) -> PodAttachment:
    nn, node = conn.nl, conn.ns
    eni = link_index(nn, spec.eni_ifname)
    if eni is None:
        raise DatapathError(f"ENI {spec.eni_ifname} not found in node namespace {node}")
    pod_link = link_index(pn, ifname)
    if pod_link is not None and link_kind(link_msg(pn, pod_link)) != "ipvlan":
        raise DatapathError(f"{ifname} already exists in pod namespace {pod}")
    if pod_link is None:
        tmp = f"ipvl{secrets.token_hex(5)}"
        nn.link("add", ifname=tmp, kind="ipvlan", link=eni, ipvlan_mode=IPVLAN_MODE_L2, mtu=spec.mtu)
        stack.callback(delete_link, nn, tmp)
        index = link_index(nn, tmp)
        nn.link("set", index=index, net_ns_fd=str(netns.path_of(pod)))
        stack.callback(delete_link, pn, tmp)
        moved = link_index(pn, tmp)
        if moved is None:
            raise DatapathError(f"ipvlan link {tmp} did not arrive in pod namespace {pod}")
        pn.link("set", index=moved, ifname=ifname)
        stack.callback(delete_link, pn, ifname)
        pod_link = moved
    set_up(nn, eni)
    return configure_pod_link(pn, pod, ifname, pod_link, spec, 32, DatapathMode.IPVLAN)


def teardown(node: Namespace, pod: Namespace | None, ifname: str, spec: PodNetwork) -> None:
    del node, spec
    if pod is None or not netns.exists(pod):
        return
    with netns.iproute(pod) as pn:
        index = link_index(pn, ifname)
        if index is not None and link_kind(link_msg(pn, index)) == "ipvlan":
            delete_link(pn, ifname)
