"""Services from exclusive-ENI pods: a second veth between the pod and the node.

An exclusive-ENI pod's default route is its ENI, so a ClusterIP packet would leave for the VPC and
never meet the node's kube-proxy rules. Upstream Terway (plugin/datapath/exclusive_eni_linux.go,
`generateVeth1Cfg` / `generateHostSlaveCfg`, commit 52f853c3ac55d33d3592e2fa6574757a42fe94c5)
adds a veth pair and routes the service CIDR and the node's own addresses through it. The same
layout here:

- pod side ``veth1``: <podIP>/32, ``169.254.1.1 dev veth1 scope link``, a permanent neighbour
  169.254.1.1 -> the host side's MAC, and ``<cidr> via 169.254.1.1 dev veth1 onlink`` for each
  of `PodNetwork.host_routes` (the service CIDR, the node's IP /32);
- node side ``cali<sha1>`` (the name a veth pod would get): ``<podIP> dev cali… scope link src
  <node IP>`` in main, so the node's answers (and its own traffic to the pod, from its own IP)
  come back through the veth;
  forwarding on, rp_filter off on it; in the pod, loose rp_filter (2) on the ENI and veth1.

The replies of a service backend on another node go to the client's address; for them to come
back through the node (and be un-DNATed) kube-proxy must masquerade service traffic
(`masqueradeAll`), as upstream says for this mode (AliyunContainerService/terway#134).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
from collections.abc import Iterable
from ipaddress import IPv4Address

from terwayctl.kernel import netns
from terwayctl.kernel.datapath import policy
from terwayctl.kernel.datapath._links import (
    IFF_UP,
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
from terwayctl.kernel.datapath.inspect import inspect_node
from terwayctl.kernel.datapath.model import POD_GATEWAY, PodNetwork
from terwayctl.kernel.datapath.veth import ensure_pair
from terwayctl.kernel.netlink import (
    NUD_PERMANENT,
    RT_SCOPE_LINK,
    RT_TABLE_MAIN,
    RTA_DST,
    RTNH_F_ONLINK,
    Netlink,
    NetlinkError,
)
from terwayctl.kernel.netns import Namespace

log = logging.getLogger("terwayctl.kernel.datapath")

RTA_PREFSRC = 7
"""the route attribute of the preferred source address (linux/rtnetlink.h)"""
POD_IFNAME = "veth1"
"""the pod side's name (upstream: defaultVethForENI)"""


def wanted(spec: PodNetwork) -> bool:
    """Whether the spec asks for the service veth."""
    return bool(spec.host_routes) and spec.service_veth is not None


def setup(
    stack: contextlib.ExitStack, conn: NodeConn, pod: Namespace, pn: Netlink, ifname: str, spec: PodNetwork
) -> None:
    """Build (or converge) the service veth of an exclusive-ENI pod (its ENI is `ifname`); undo
    steps go on `stack`."""
    if not wanted(spec):
        return
    assert spec.service_veth is not None
    pair = dataclasses.replace(spec, host_ifname=spec.service_veth)
    host_msg, pod_msg, _ = ensure_pair(stack, conn, pod, pn, POD_IFNAME, pair)
    host, pod_link = int(host_msg["index"]), int(pod_msg["index"])
    nn = conn.nl
    set_up(nn, host_msg, spec.mtu)
    set_up(pn, pod_msg, spec.mtu)
    ensure_address(pn, pod_link, spec.pod_ip, 32)
    pn.neigh("replace", dst=str(POD_GATEWAY), lladdr=link_mac(host_msg), ifindex=pod_link, state=NUD_PERMANENT)
    pn.route("replace", dst=f"{POD_GATEWAY}/32", oif=pod_link, scope=RT_SCOPE_LINK, table=RT_TABLE_MAIN)
    for cidr in spec.host_routes:
        pn.route("replace", dst=str(cidr), gateway=str(POD_GATEWAY), oif=pod_link, flags=RTNH_F_ONLINK,
                 table=RT_TABLE_MAIN)
    _ensure_host_route(conn, spec, host)
    conn.sysctls([("net.ipv4.ip_forward", "1"), (conf_key(spec.service_veth, "rp_filter"), "0")])
    # loose reverse-path filtering on both pod links, whatever `all` says (the kernel applies the
    # larger value): a hostPort request arrives on the ENI from the node's address, which the pod
    # routes through veth1; strict filtering would drop it
    netns.write_sysctls(pod, [(conf_key(ifname, "rp_filter"), "2"), (conf_key(POD_IFNAME, "rp_filter"), "2")])


def _ensure_host_route(conn: NodeConn, spec: PodNetwork, host: int) -> None:
    """``<podIP> dev <host side> scope link src <node IP>`` in main (upstream sets the node's IP as
    the preferred source too: AliyunContainerService/terway#1048); another device owning the pod IP
    is a conflict, as in veth mode."""
    routes = conn.routes()
    current = policy.pod_route_device(routes, spec.pod_ip)
    if current is not None and current != host:
        policy.ensure_host_route(conn, routes, spec.pod_ip, host)  # raises: two pods with one IP
    if spec.host_src is None:
        policy.ensure_host_route(conn, routes, spec.pod_ip, host)
        return
    for entry in policy.routes_in(routes, RT_TABLE_MAIN):
        if entry.dst_len == 32 and entry.ip(RTA_DST) == str(spec.pod_ip) and entry.ip(RTA_PREFSRC) == str(spec.host_src):
            return
    try:
        conn.nl.route("replace", dst=f"{spec.pod_ip}/32", oif=host, scope=RT_SCOPE_LINK, table=RT_TABLE_MAIN,
                      prefsrc=str(spec.host_src))
    except NetlinkError as exc:
        if exc.code != errno.EINVAL:
            raise
        # the node's IP is not an address of this namespace: no preferred source then
        log.warning("%s is not an address of the node namespace: route to %s without a source",
                    spec.host_src, spec.pod_ip)
        policy.ensure_host_route(conn, routes, spec.pod_ip, host)


def teardown(conn: NodeConn | None, pod: Namespace | None, spec: PodNetwork) -> None:
    """Remove the pair (and with it the host route); anything already gone is fine."""
    if conn is not None and spec.service_veth is not None:
        host = link_index(conn.nl, spec.service_veth)
        if host is not None:
            policy.delete_host_route(conn.nl, spec.pod_ip, host)
            delete_link(conn.nl, spec.service_veth)  # takes veth1 with it
    if pod is not None and netns.exists(pod):
        with netns.iproute(pod) as pn:
            found = link_get(pn, POD_IFNAME)
            if found is not None and link_kind(found) == "veth":
                delete_link(pn, POD_IFNAME)


def remove_leftovers(node_ns: Namespace, keep: Iterable[str]) -> list[str]:
    """Delete the pod veths (``cali*``) of the node namespace whose routed IPs are not in `keep`, and
    those that route nothing (exclusive-ENI mode, at the daemon's start: no veth pod runs there).
    Returns ``<ip> (<veth>)`` / ``<veth>`` for each one deleted."""
    wanted = set(keep)
    removed: list[str] = []
    with NodeConn(node_ns) as conn:
        for veth in inspect_node(node_ns).veths:
            ips = {str(ip) for ip in veth.pod_ips}
            if ips and ips <= wanted:
                continue
            for ip in sorted(ips - wanted):
                policy.delete_host_route(conn.nl, IPv4Address(ip), veth.ifindex)
            delete_link(conn.nl, veth.name)
            removed.append(f"{', '.join(sorted(ips))} ({veth.name})" if ips else veth.name)
    return removed


def _routed_via(pn: Netlink, index: int) -> set[str]:
    """The destinations (cidr text) the pod's main table sends to `index` via 169.254.1.1."""
    found: set[str] = set()
    for r in pn.route("dump", table=RT_TABLE_MAIN):
        if r.get_attr("RTA_TABLE") != RT_TABLE_MAIN or r.get_attr("RTA_OIF") != index:
            continue
        if r.get_attr("RTA_GATEWAY") == str(POD_GATEWAY):
            found.add(f"{r.get_attr('RTA_DST') or '0.0.0.0'}/{r['dst_len']}")
    return found


def check(conn: NodeConn, pn: Netlink, spec: PodNetwork) -> list[str]:
    """CHECK: the differences between the kernel and the service veth `setup` builds."""
    if not wanted(spec):
        return []
    assert spec.service_veth is not None
    problems: list[str] = []
    pod_link = link_get(pn, POD_IFNAME)
    host = link_get(conn.nl, spec.service_veth)
    if pod_link is None:
        problems.append(f"{POD_IFNAME} (the pod's veth to the node for services) is missing in the pod namespace")
    elif not int(pod_link["flags"]) & IFF_UP:
        problems.append(f"{POD_IFNAME} is down")
    if host is None:
        problems.append(f"host veth {spec.service_veth} (services of the exclusive-ENI pod) is missing")
    else:
        if pod_link is not None and pod_link.get_attr("IFLA_LINK") != int(host["index"]):
            problems.append(f"{spec.service_veth} is not the peer of the pod's {POD_IFNAME}")
        if not int(host["flags"]) & IFF_UP:
            problems.append(f"host veth {spec.service_veth} is down")
        if policy.pod_route_device(conn.routes(), spec.pod_ip) != int(host["index"]):
            problems.append(f"no route {spec.pod_ip} dev {spec.service_veth} in the node's main table")
    if pod_link is not None:
        routed = _routed_via(pn, int(pod_link["index"]))
        for cidr in spec.host_routes:
            if str(cidr) not in routed:
                problems.append(f"route {cidr} via {POD_GATEWAY} dev {POD_IFNAME} is missing in the pod namespace")
    return problems
