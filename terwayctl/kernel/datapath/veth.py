"""Shared-ENI veth mode (upstream plugin/datapath/policy_router_linux.go, plugin/driver/veth).

Per pod: a veth pair; the host side ``cali<sha1>`` in the node namespace, the pod side named
CNI_IFNAME with <podIP>/32, ``default via 169.254.1.1 dev eth0 onlink`` and a permanent neighbour
169.254.1.1 -> host veth MAC. On the node: ``<podIP> dev cali... scope link`` in main,
``to <podIP> lookup main`` (512), ``from <podIP> lookup <1000 + ENI ifindex>`` (2048) and the ENI
table's ``default via <gateway> dev <eni> onlink``; forwarding=1, rp_filter=0 on the ENI and the
host veth, proxy_arp=1 on the host veth.

Cost per pod (it is paid on every ADD and DEL): one rule dump and one route dump (raw, see
`NodeConn`), about 15 netlink changes and lookups, one entry into the node namespace for the
sysctls (read before written). A veth pair created here has no root qdisc yet, so only a pair
that already existed is asked for one to remove.
"""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address

from terwayctl.kernel import netns
from terwayctl.kernel.datapath import policy, tc, v6
from terwayctl.kernel.datapath._links import (
    conf_key,
    delete_link,
    ensure_address,
    link_get,
    link_index,
    link_kind,
    link_mac,
    set_up,
)
from terwayctl.kernel.datapath.conn import NodeConn
from terwayctl.kernel.datapath.model import (
    POD_GATEWAY,
    DatapathError,
    DatapathMode,
    PodAttachment,
    PodNetwork,
    eni_table_id,
)
from terwayctl.kernel.netlink import NUD_PERMANENT, RTNH_F_ONLINK, Message, Netlink
from terwayctl.kernel.netns import Namespace


def _is_pair(host: Message, pod: Message) -> bool:
    return (
        link_kind(host) == "veth"
        and link_kind(pod) == "veth"
        and host.get_attr("IFLA_LINK") == pod["index"]
        and pod.get_attr("IFLA_LINK") == host["index"]
    )


def _ensure_pair(
    stack: contextlib.ExitStack, conn: NodeConn, pod: Namespace, pn: Netlink, ifname: str, spec: PodNetwork
) -> tuple[Message, Message, bool]:
    """The (host, pod) link messages of the pod's veth pair, and whether it was created now."""
    nn = conn.nl
    host, pod_link = link_get(nn, spec.host_ifname), link_get(pn, ifname)
    if host is not None and (pod_link is None or not _is_pair(host, pod_link)):
        nn.link("del", index=host["index"])  # a stale host veth from an earlier sandbox of this pod
        host = None
    if host is not None and pod_link is not None:
        return host, pod_link, False
    if pod_link is not None:
        raise DatapathError(f"{ifname} already exists in pod namespace {pod}")
    peer = {"ifname": ifname, "net_ns_fd": str(netns.path_of(pod)), "mtu": spec.mtu}
    nn.link("add", ifname=spec.host_ifname, kind="veth", mtu=spec.mtu, peer=peer)
    stack.callback(delete_link, nn, spec.host_ifname)
    host, pod_link = link_get(nn, spec.host_ifname), link_get(pn, ifname)
    if host is None or pod_link is None:
        raise DatapathError(f"veth pair {spec.host_ifname}/{ifname} vanished after creation")
    return host, pod_link, True


ensure_pair = _ensure_pair
"""(also the service veth of an exclusive-ENI pod, kernel/datapath/svcveth.py)"""


def setup(
    stack: contextlib.ExitStack, conn: NodeConn, pod: Namespace, pn: Netlink, ifname: str, spec: PodNetwork
) -> PodAttachment:
    """Attach a pod in veth mode; every created resource registers its undo on `stack`."""
    nn = conn.nl
    eni = link_index(nn, spec.eni_ifname)
    if eni is None:
        raise DatapathError(f"ENI {spec.eni_ifname} not found in node namespace {conn.ns}")
    table = spec.eni_table if spec.eni_table is not None else eni_table_id(eni)
    routes = conn.routes()
    had_table = policy.eni_default_route(routes, table) is not None
    if policy.ensure_eni_default(nn, routes, eni, spec.gateway, table) and not had_table:
        stack.callback(policy.delete_eni_default, nn, table)

    host_msg, pod_msg, created = _ensure_pair(stack, conn, pod, pn, ifname, spec)
    host, pod_link = int(host_msg["index"]), int(pod_msg["index"])
    host_mac, pod_mac = link_mac(host_msg), link_mac(pod_msg)
    if spec.pod_ip6 is not None:
        v6.prepare_host_veth(conn, spec.host_ifname)
    set_up(nn, host_msg, spec.mtu)

    # pod side: address, the link-local next hop and its permanent neighbour entry
    lo = link_get(pn, "lo")
    if lo is not None:
        set_up(pn, lo)
    if spec.pod_ip6 is not None:
        v6.prepare_pod_link(pod, ifname)
    set_up(pn, pod_msg, spec.mtu)
    ensure_address(pn, pod_link, spec.pod_ip, 32)
    pn.neigh("replace", dst=str(POD_GATEWAY), lladdr=host_mac, ifindex=pod_link, state=NUD_PERMANENT)
    pn.route("replace", dst=policy.DEFAULT_DST, gateway=str(POD_GATEWAY), oif=pod_link, flags=RTNH_F_ONLINK)

    # node side: host route and the two policy rules
    policy.ensure_host_route(conn, routes, spec.pod_ip, host)
    if any(policy.ensure_pod_rules(conn, spec.pod_ip, table)):
        stack.callback(_delete_rules, conn, spec.pod_ip)
    if spec.pod_ip6 is not None:
        v6.setup(stack, conn, pod, pn, ifname, spec, eni_index=eni, table=table, host_index=host,
                 host_mac=host_mac, pod_index=pod_link)

    if spec.bandwidth.egress is not None or not created:
        tc.shape(pn, pod, ifname, pod_link, spec.bandwidth.egress, spec.mtu)
    if spec.bandwidth.ingress is not None or not created:
        tc.shape(nn, conn.ns, spec.host_ifname, host, spec.bandwidth.ingress, spec.mtu)

    conn.sysctls(
        [
            ("net.ipv4.ip_forward", "1"),
            (conf_key(spec.eni_ifname, "rp_filter"), "0"),
            (conf_key(spec.host_ifname, "rp_filter"), "0"),
            (conf_key(spec.host_ifname, "proxy_arp"), "1"),
        ]
    )
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


def _delete_rules(conn: NodeConn, pod_ip: IPv4Address) -> None:
    policy.delete_pod_rules(conn, pod_ip)


def teardown(conn: NodeConn | None, pod: Namespace | None, ifname: str, spec: PodNetwork) -> None:
    """Remove the pod's veth, host route and rules; anything already gone is fine.
    `conn` is None when the node namespace is gone."""
    if conn is not None:
        policy.delete_pod_rules(conn, spec.pod_ip)
        host = link_index(conn.nl, spec.host_ifname)
        v6.teardown(conn, spec, host)
        if host is not None:
            policy.delete_host_route(conn.nl, spec.pod_ip, host)
            delete_link(conn.nl, spec.host_ifname)  # takes the pod side with it
    if pod is not None and netns.exists(pod):
        with netns.iproute(pod) as pn:
            found = link_get(pn, ifname)
            if found is not None and link_kind(found) == "veth":
                delete_link(pn, ifname)  # an orphaned pod side whose host half was lost
