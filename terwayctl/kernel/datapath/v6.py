"""The IPv6 twin of the veth + policy-routing layout, for a dual-stack pod (docs/datapath.md,
"Dual stack").

As upstream lays it out (AliyunContainerService/terway plugin/datapath/policy_router_linux.go,
`generateContCfgForPolicy` / `generateHostPeerCfgForPolicy` / `generateENICfgForPolicy`, with
``LinkIPv6 = fe80::1`` in consts_linux.go):

- pod side: ``<podIPv6>/128`` (no DAD), ``default via fe80::1 dev eth0 onlink`` and a permanent
  neighbour ``fe80::1 lladdr <host veth MAC>``; accept_ra=0;
- node side: ``<podIPv6> dev cali... scope link`` in main, ``to <podIPv6> lookup main`` (512) and
  ``from <podIPv6> lookup <1000 + ENI ifindex>`` (2048);
- the ENI: ``<gateway6> dev <eni> scope link`` in main and ``default via <gateway6> dev <eni> onlink``
  in the ENI's table (the same table as IPv4);
- sysctls: IPv6 enabled and forwarding on the host veth and the ENI, accept_ra=0 on both, and
  accept_dad=0 on the host veth and the pod interface (a fresh link's link-local address stays
  tentative for about a second, and neighbour discovery over it waits: without this the first
  packets of a new pod are lost).

Everything here runs only for a spec with `pod_ip6` set; an IPv4 pod never reaches this module.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Sequence
from ipaddress import IPv6Address

from terwayctl.kernel import netns
from terwayctl.kernel.datapath.conn import NodeConn
from terwayctl.kernel.datapath.model import FROM_POD_PRIORITY, TO_POD_PRIORITY, DatapathError, PodNetwork
from terwayctl.kernel.netlink import (
    NUD_PERMANENT,
    RT_SCOPE_LINK,
    RT_TABLE_MAIN,
    RTM_GETROUTE,
    RTM_GETRULE,
    RTNH_F_ONLINK,
    Netlink,
    RawEntry,
    dump,
    is_absent,
    is_exists,
)
from terwayctl.kernel.netns import Namespace

AF_INET6 = 10
POD_GATEWAY6 = IPv6Address("fe80::1")
DEFAULT_DST6 = "::/0"
IFA_F_NODAD = 0x02
FRA_DST, FRA_SRC, FRA_PRIORITY = 1, 2, 6
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5


def conf6(ifname: str, item: str) -> str:
    """The sysctl key of ``net.ipv6.conf.<ifname>.<item>``."""
    return f"net/ipv6/conf/{ifname}/{item}"


def ip6(entry: RawEntry, kind: int) -> str | None:
    value = entry.attrs.get(kind)
    return socket.inet_ntop(socket.AF_INET6, value[:16]) if value is not None and len(value) >= 16 else None


def rules6(conn: NodeConn) -> list[RawEntry]:
    return dump(conn.raw, RTM_GETRULE, AF_INET6)


def routes6(conn: NodeConn) -> list[RawEntry]:
    return dump(conn.raw, RTM_GETROUTE, AF_INET6)


def find_rules6(
    rules: Sequence[RawEntry], priority: int, *, src: IPv6Address | None = None, dst: IPv6Address | None = None
) -> list[RawEntry]:
    found = []
    for r in rules:
        if r.family != AF_INET6 or r.u32(FRA_PRIORITY) != priority:
            continue
        if src is not None and (ip6(r, FRA_SRC) != str(src) or r.src_len != 128):
            continue
        if dst is not None and (ip6(r, FRA_DST) != str(dst) or r.dst_len != 128):
            continue
        found.append(r)
    return found


def _rule(nl: Netlink, command: str, priority: int, table: int, src: IPv6Address | None, dst: IPv6Address | None) -> None:
    kwargs: dict[str, object] = {"family": AF_INET6, "priority": priority, "table": table, "action": "FR_ACT_TO_TBL"}
    if src is not None:
        kwargs.update(src=str(src), src_len=128)
    if dst is not None:
        kwargs.update(dst=str(dst), dst_len=128)
    try:
        nl.rule(command, **kwargs)
    except Exception as exc:
        if not (command == "del" and is_absent(exc)):
            raise


def ensure_rule6(
    nl: Netlink, rules: Sequence[RawEntry], priority: int, table: int, *,
    src: IPv6Address | None = None, dst: IPv6Address | None = None,
) -> bool:
    present = False
    for entry in find_rules6(rules, priority, src=src, dst=dst):
        if entry.table == table and not present:
            present = True
            continue
        _rule(nl, "del", priority, entry.table, src, dst)
    if not present:
        _rule(nl, "add", priority, table, src, dst)
    return not present


def delete_pod_rules6(conn: NodeConn, pod_ip6: IPv6Address) -> None:
    rules = rules6(conn)
    for entry in find_rules6(rules, TO_POD_PRIORITY, dst=pod_ip6):
        _rule(conn.nl, "del", TO_POD_PRIORITY, entry.table, None, pod_ip6)
    for entry in find_rules6(rules, FROM_POD_PRIORITY, src=pod_ip6):
        _rule(conn.nl, "del", FROM_POD_PRIORITY, entry.table, pod_ip6, None)


def routes_in6(routes: Sequence[RawEntry], table: int) -> list[RawEntry]:
    return [r for r in routes if r.table == table and r.family == AF_INET6]


def pod_route_device6(routes: Sequence[RawEntry], pod_ip6: IPv6Address) -> int | None:
    for entry in routes_in6(routes, RT_TABLE_MAIN):
        if entry.dst_len == 128 and ip6(entry, RTA_DST) == str(pod_ip6):
            return entry.u32(RTA_OIF)
    return None


def eni_default6(routes: Sequence[RawEntry], table: int) -> RawEntry | None:
    return next((r for r in routes_in6(routes, table) if r.dst_len == 0), None)


def ensure_eni_table6(nl: Netlink, routes: Sequence[RawEntry], eni_index: int, gateway6: IPv6Address, table: int) -> bool:
    """``<gw6> dev <eni> scope link`` in main and ``default via <gw6> dev <eni> onlink`` in `table`;
    True when the default route was added or changed.

    The main route is replaced, as upstream's nic.Setup does: ENIs of one vSwitch share the gateway,
    and the kernel accepts an IPv6 ``onlink`` gateway only when main routes it through the same
    device (ip6_route_check_nh_onlink), so it points at the ENI being set up (the other ENIs'
    default routes, already in their tables, stay valid)."""
    nl.route("replace", family=AF_INET6, dst=f"{gateway6}/128", oif=eni_index, scope=RT_SCOPE_LINK,
             table=RT_TABLE_MAIN)
    current = eni_default6(routes, table)
    if current is not None and ip6(current, RTA_GATEWAY) == str(gateway6) and current.u32(RTA_OIF) == eni_index:
        return False
    nl.route("replace", family=AF_INET6, dst=DEFAULT_DST6, gateway=str(gateway6), oif=eni_index,
             flags=RTNH_F_ONLINK, table=table)
    return True


def delete_eni_default6(nl: Netlink, table: int) -> None:
    try:
        nl.route("del", family=AF_INET6, dst=DEFAULT_DST6, table=table)
    except Exception as exc:
        if not is_absent(exc):
            raise


def prepare_host_veth(conn: NodeConn, host_ifname: str) -> None:
    """Before the host veth comes up: no DAD on it, IPv6 on, no router advertisements."""
    conn.sysctls([(conf6(host_ifname, "disable_ipv6"), "0"), (conf6(host_ifname, "accept_dad"), "0"),
                  (conf6(host_ifname, "accept_ra"), "0")])


def prepare_pod_link(pod: Namespace, ifname: str) -> None:
    netns.write_sysctls(pod, [("net/ipv6/conf/all/disable_ipv6", "0"), (conf6(ifname, "disable_ipv6"), "0"),
                              (conf6(ifname, "accept_dad"), "0"), (conf6(ifname, "accept_ra"), "0")])


def setup(
    stack: contextlib.ExitStack, conn: NodeConn, pod: Namespace, pn: Netlink, ifname: str, spec: PodNetwork,
    *, eni_index: int, table: int, host_index: int, host_mac: str, pod_index: int,
) -> None:
    """The pod's IPv6: every resource created registers its undo on `stack`."""
    assert spec.pod_ip6 is not None and spec.gateway6 is not None
    routes = routes6(conn)
    had_table = eni_default6(routes, table) is not None
    if ensure_eni_table6(conn.nl, routes, eni_index, spec.gateway6, table) and not had_table:
        stack.callback(delete_eni_default6, conn.nl, table)
    conn.sysctls([("net/ipv6/conf/all/forwarding", "1"), (conf6(spec.eni_ifname, "forwarding"), "1"),
                  (conf6(spec.host_ifname, "forwarding"), "1")])

    # pod side
    try:
        pn.addr("add", index=pod_index, family=AF_INET6, address=str(spec.pod_ip6), prefixlen=128,
                flags=IFA_F_NODAD)
    except Exception as exc:
        if not is_exists(exc):
            raise
    pn.neigh("replace", family=AF_INET6, dst=str(POD_GATEWAY6), lladdr=host_mac, ifindex=pod_index,
             state=NUD_PERMANENT)
    pn.route("replace", family=AF_INET6, dst=DEFAULT_DST6, gateway=str(POD_GATEWAY6), oif=pod_index,
             flags=RTNH_F_ONLINK)

    # node side
    current = pod_route_device6(routes, spec.pod_ip6)
    if current is not None and current != host_index:
        raise DatapathError(
            f"pod IPv6 {spec.pod_ip6} is already routed to ifindex {current} on this node",
            hint="another pod holds this IPv6 address; release it (CNI DEL) before reusing it",
        )
    if current is None:
        conn.nl.route("add", family=AF_INET6, dst=f"{spec.pod_ip6}/128", oif=host_index, scope=RT_SCOPE_LINK,
                      table=RT_TABLE_MAIN)
    rules = rules6(conn)
    to_added = ensure_rule6(conn.nl, rules, TO_POD_PRIORITY, RT_TABLE_MAIN, dst=spec.pod_ip6)
    from_added = ensure_rule6(conn.nl, rules, FROM_POD_PRIORITY, table, src=spec.pod_ip6)
    if to_added or from_added:
        stack.callback(delete_pod_rules6, conn, spec.pod_ip6)


def teardown(conn: NodeConn, spec: PodNetwork, host_index: int | None) -> None:
    """Remove the pod's IPv6 rules and host route; anything already gone is fine."""
    if spec.pod_ip6 is None:
        return
    delete_pod_rules6(conn, spec.pod_ip6)
    if host_index is not None:
        try:
            conn.nl.route("del", family=AF_INET6, dst=f"{spec.pod_ip6}/128", oif=host_index, table=RT_TABLE_MAIN)
        except Exception as exc:
            if not is_absent(exc):
                raise


def check(conn: NodeConn, pn: Netlink, ifname: str, spec: PodNetwork, table: int, host_index: int,
          pod_index: int, host_mac: str) -> list[str]:
    """CHECK's IPv6 differences (read only), one sentence each."""
    assert spec.pod_ip6 is not None and spec.gateway6 is not None
    problems: list[str] = []
    addrs = {str(m.get_attr("IFA_ADDRESS")) for m in pn.addr("dump", family=AF_INET6, index=pod_index)}
    if str(spec.pod_ip6) not in addrs:
        problems.append(f"{ifname} lacks its IPv6 address {spec.pod_ip6}/128")
    pod_routes = pn.route("dump", family=AF_INET6)
    default = [r for r in pod_routes if r["dst_len"] == 0 and r.get_attr("RTA_OIF") == pod_index
               and r.get_attr("RTA_TABLE") == RT_TABLE_MAIN]
    if not any(str(r.get_attr("RTA_GATEWAY")) == str(POD_GATEWAY6) for r in default):
        problems.append(f"{ifname} has no IPv6 default route via {POD_GATEWAY6}")
    neigh = [n for n in pn.neigh("dump", family=AF_INET6, ifindex=pod_index)
             if str(n.get_attr("NDA_DST")) == str(POD_GATEWAY6)]
    if not neigh or str(neigh[0].get_attr("NDA_LLADDR")) != host_mac:
        problems.append(f"{ifname} has no permanent neighbour {POD_GATEWAY6} -> {host_mac}")
    routes = routes6(conn)
    if pod_route_device6(routes, spec.pod_ip6) != host_index:
        problems.append(f"main has no route {spec.pod_ip6} dev {spec.host_ifname}")
    rules = rules6(conn)
    if not find_rules6(rules, TO_POD_PRIORITY, dst=spec.pod_ip6):
        problems.append(f"rule {TO_POD_PRIORITY} to {spec.pod_ip6} lookup main is missing")
    if not [r for r in find_rules6(rules, FROM_POD_PRIORITY, src=spec.pod_ip6) if r.table == table]:
        problems.append(f"rule {FROM_POD_PRIORITY} from {spec.pod_ip6} lookup {table} is missing")
    default6 = eni_default6(routes, table)
    if default6 is None or ip6(default6, RTA_GATEWAY) != str(spec.gateway6):
        problems.append(f"table {table} has no IPv6 default route via {spec.gateway6}")
    return problems
