"""Shared-ENI veth mode (upstream plugin/datapath/policy_router_linux.go, plugin/driver/veth).

Per pod: a veth pair; the host side ``cali<sha1>`` in the node namespace, the pod side named
CNI_IFNAME with <podIP>/32, ``default via 169.254.1.1 dev eth0 onlink`` and a permanent neighbour
169.254.1.1 -> host veth MAC. On the node: ``<podIP> dev cali... scope link`` in main,
``to <podIP> lookup main`` (512), ``from <podIP> lookup <1000 + ENI ifindex>`` (2048) and the ENI
table's ``default via <gateway> dev <eni> onlink``; forwarding=1, rp_filter=0 on the ENI and the
host veth, proxy_arp=1 on the host veth.
"""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address

from terwayctl.node import netns
from terwayctl.node.datapath import policy, tc
from terwayctl.node.datapath._links import (
    delete_link,
    ensure_address,
    link_index,
    link_kind,
    link_mac,
    link_msg,
    set_conf,
    set_up,
)
from terwayctl.node.datapath.model import (
    POD_GATEWAY,
    DatapathError,
    DatapathMode,
    PodAttachment,
    PodNetwork,
    eni_table_id,
)
from terwayctl.node.netlink import NUD_PERMANENT, RTNH_F_ONLINK, Netlink
from terwayctl.node.netns import Namespace


def _is_pair(nn: Netlink, host: int, pn: Netlink, pod: int) -> bool:
    host_msg, pod_msg = link_msg(nn, host), link_msg(pn, pod)
    return (
        link_kind(host_msg) == "veth"
        and link_kind(pod_msg) == "veth"
        and host_msg.get_attr("IFLA_LINK") == pod
        and pod_msg.get_attr("IFLA_LINK") == host
    )


def _delete_link_in(ns: Namespace, name: str) -> None:
    if netns.exists(ns):
        with netns.iproute(ns) as nl:
            delete_link(nl, name)


def _delete_rules_in(ns: Namespace, pod_ip: IPv4Address) -> None:
    with netns.iproute(ns) as nl:
        policy.delete_pod_rules(nl, pod_ip)


def _delete_table_in(ns: Namespace, table: int) -> None:
    with netns.iproute(ns) as nl:
        policy.delete_eni_default(nl, table)


def _ensure_pair(
    stack: contextlib.ExitStack,
    node: Namespace,
    pod: Namespace,
    nn: Netlink,
    pn: Netlink,
    ifname: str,
    spec: PodNetwork,
) -> tuple[int, int]:
    host = link_index(nn, spec.host_ifname)
    pod_link = link_index(pn, ifname)
    if host is not None and (pod_link is None or not _is_pair(nn, host, pn, pod_link)):
        nn.link("del", index=host)  # a stale host veth from an earlier sandbox of this pod
        host = None
    if host is None:
        if pod_link is not None:
            raise DatapathError(f"{ifname} already exists in pod namespace {pod}")
        peer = {"ifname": ifname, "net_ns_fd": str(netns.path_of(pod)), "mtu": spec.mtu}
        nn.link("add", ifname=spec.host_ifname, kind="veth", mtu=spec.mtu, peer=peer)
        stack.callback(_delete_link_in, node, spec.host_ifname)
        host = link_index(nn, spec.host_ifname)
        pod_link = link_index(pn, ifname)
        if host is None or pod_link is None:
            raise DatapathError(f"veth pair {spec.host_ifname}/{ifname} vanished after creation")
    if pod_link is None:
        raise DatapathError(f"{ifname} not found in pod namespace {pod}")
    return host, pod_link


def setup(
    stack: contextlib.ExitStack, node: Namespace, pod: Namespace, ifname: str, spec: PodNetwork
) -> PodAttachment:
    """Attach a pod in veth mode; every created resource registers its undo on `stack`."""
    with netns.iproute(node) as nn, netns.iproute(pod) as pn:
        eni = link_index(nn, spec.eni_ifname)
        if eni is None:
            raise DatapathError(f"ENI {spec.eni_ifname} not found in node namespace {node}")
        table = spec.eni_table if spec.eni_table is not None else eni_table_id(eni)
        had_table = policy.eni_default_route(nn, table) is not None
        if policy.ensure_eni_default(nn, eni, spec.gateway, table) and not had_table:
            stack.callback(_delete_table_in, node, table)

        host, pod_link = _ensure_pair(stack, node, pod, nn, pn, ifname, spec)
        host_mac = link_mac(link_msg(nn, host))
        set_up(nn, host, spec.mtu)

        # pod side: address, the link-local next hop and its permanent neighbour entry
        lo = link_index(pn, "lo")
        if lo is not None:
            set_up(pn, lo)
        set_up(pn, pod_link, spec.mtu)
        ensure_address(pn, pod_link, spec.pod_ip, 32)
        pn.neigh("replace", dst=str(POD_GATEWAY), lladdr=host_mac, ifindex=pod_link, state=NUD_PERMANENT)
        pn.route(
            "replace", dst=policy.DEFAULT_DST, gateway=str(POD_GATEWAY), oif=pod_link, flags=RTNH_F_ONLINK
        )
        pod_mac = link_mac(link_msg(pn, pod_link))

        # node side: host route and the two policy rules
        policy.ensure_host_route(nn, spec.pod_ip, host)
        if any(policy.ensure_pod_rules(nn, spec.pod_ip, table)):
            stack.callback(_delete_rules_in, node, spec.pod_ip)

        tc.shape(pn, pod, ifname, pod_link, spec.bandwidth.egress, spec.mtu)
        tc.shape(nn, node, spec.host_ifname, host, spec.bandwidth.ingress, spec.mtu)

    netns.write_sysctl(node, "net.ipv4.ip_forward", "1")
    set_conf(node, spec.eni_ifname, "rp_filter", "0")
    set_conf(node, spec.host_ifname, "rp_filter", "0")
    set_conf(node, spec.host_ifname, "proxy_arp", "1")
    return PodAttachment(
        mode=DatapathMode.VETH,
        pod_ifname=ifname,
        pod_ip=spec.pod_ip,
        pod_mac=pod_mac,
        host_ifname=spec.host_ifname,
        host_mac=host_mac,
        eni_ifname=spec.eni_ifname,
        eni_table=table,
    )


def teardown(node: Namespace, pod: Namespace | None, ifname: str, spec: PodNetwork) -> None:
    """Remove the pod's veth, host route and rules; anything already gone is fine."""
    if netns.exists(node):
        with netns.iproute(node) as nn:
            policy.delete_pod_rules(nn, spec.pod_ip)
            host = link_index(nn, spec.host_ifname)
            if host is not None:
                policy.delete_host_route(nn, spec.pod_ip, host)
                delete_link(nn, spec.host_ifname)  # takes the pod side with it
    if pod is not None and netns.exists(pod):
        with netns.iproute(pod) as pn:
            index = link_index(pn, ifname)
            if index is not None and link_kind(link_msg(pn, index)) == "veth":
                delete_link(pn, ifname)  # an orphaned pod side whose host half was lost
