"""Exclusive-ENI mode (upstream plugin/datapath/exclusive_eni_linux.go): the ENI link itself moves
into the pod namespace, is renamed to CNI_IFNAME and gets <podIP>/<prefix> and
``default via <vSwitch gateway> dev eth0 onlink``. Teardown renames it back and returns it to the
node namespace. Moving a link flushes its addresses and routes, so the node side starts clean.
With `PodNetwork.host_routes` the pod also gets a veth to the node for services (svcveth.py).
"""

from __future__ import annotations

import contextlib

from terwayctl.kernel import netns
from terwayctl.kernel.datapath import svcveth
from terwayctl.kernel.datapath._links import link_index, set_up
from terwayctl.kernel.datapath._podside import configure_pod_link
from terwayctl.kernel.datapath.conn import NodeConn
from terwayctl.kernel.datapath.model import DatapathError, DatapathMode, PodAttachment, PodNetwork
from terwayctl.kernel.netlink import Netlink
from terwayctl.kernel.netns import Namespace


def move_back(node: Namespace, pod: Namespace, ifname: str, eni_ifname: str) -> None:
    """Return the ENI (named `ifname` in the pod) to the node under its own name; absence is fine."""
    if not netns.exists(pod) or not netns.exists(node):
        return
    with netns.iproute(pod) as pn:
        index = link_index(pn, ifname)
        if index is None:
            return
        pn.link("set", index=index, state="down")
        if ifname != eni_ifname:
            pn.link("set", index=index, ifname=eni_ifname)
        pn.link("set", index=index, net_ns_fd=str(netns.path_of(node)))
    with netns.iproute(node) as nn:
        index = link_index(nn, eni_ifname)
        if index is not None:
            set_up(nn, index)


def setup(
    stack: contextlib.ExitStack, conn: NodeConn, pod: Namespace, pn: Netlink, ifname: str, spec: PodNetwork
) -> PodAttachment:
    nn, node = conn.nl, conn.ns
    eni = link_index(nn, spec.eni_ifname)
    pod_link = link_index(pn, ifname)
    if eni is None and pod_link is None:
        raise DatapathError(f"ENI {spec.eni_ifname} not found in node namespace {node}")
    if eni is not None:
        if pod_link is not None:
            raise DatapathError(f"{ifname} already exists in pod namespace {pod}")
        nn.link("set", index=eni, state="down")
        nn.link("set", index=eni, net_ns_fd=str(netns.path_of(pod)))
        stack.callback(move_back, node, pod, ifname, spec.eni_ifname)
        moved = link_index(pn, spec.eni_ifname)
        if moved is None:
            raise DatapathError(f"ENI {spec.eni_ifname} did not arrive in pod namespace {pod}")
        if spec.eni_ifname != ifname:
            pn.link("set", index=moved, ifname=ifname)
        pod_link = moved
    assert pod_link is not None
    lo = link_index(pn, "lo")
    if lo is not None:
        set_up(pn, lo)
    # no host veth to shape: only egress (on the pod side) can be shaped
    attachment = configure_pod_link(pn, pod, ifname, pod_link, spec, spec.prefix, DatapathMode.EXCLUSIVE_ENI)
    svcveth.setup(stack, conn, pod, pn, ifname, spec)  # services and the node through a veth (when asked)
    return attachment


def teardown(conn: NodeConn, pod: Namespace | None, ifname: str, spec: PodNetwork) -> None:
    svcveth.teardown(conn, pod, spec)
    if pod is not None:
        move_back(conn.ns, pod, ifname, spec.eni_ifname)
