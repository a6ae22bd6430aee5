"""Policy routing on the node: the per-ENI table, the pod rules (512/2048), the host route."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address

from terwayctl.kernel.datapath._links import conf_key, link_index, link_msg, link_name
from terwayctl.kernel.datapath.conn import NodeConn
from terwayctl.kernel.datapath.model import (
    FROM_POD_PRIORITY,
    TO_POD_PRIORITY,
    DatapathError,
    eni_table_id,
)
from terwayctl.kernel.netlink import (
    AF_INET,
    FRA_DST,
    FRA_PRIORITY,
    FRA_SRC,
    RT_SCOPE_LINK,
    RT_TABLE_MAIN,
    RTA_DST,
    RTA_GATEWAY,
    RTA_OIF,
    RTNH_F_ONLINK,
    Netlink,
    RawEntry,
    is_absent,
)
from terwayctl.kernel.netns import Namespace

DEFAULT_DST = "0.0.0.0/0"


def _rule_matches(entry: RawEntry, priority: int, src: IPv4Address | None, dst: IPv4Address | None) -> bool:
    if entry.u32(FRA_PRIORITY) != priority or entry.family != AF_INET:
        return False
    if src is not None and (entry.ip(FRA_SRC) != str(src) or entry.src_len != 32):
        return False
    return dst is None or (entry.ip(FRA_DST) == str(dst) and entry.dst_len == 32)


def find_rules(
    rules: Sequence[RawEntry], priority: int, *, src: IPv4Address | None = None, dst: IPv4Address | None = None
) -> list[RawEntry]:
    """The rules of a dump (`NodeConn.rules()`) at `priority` with that /32 source or destination."""
    return [r for r in rules if _rule_matches(r, priority, src, dst)]


def _rule_kwargs(
    priority: int, table: int, src: IPv4Address | None, dst: IPv4Address | None
) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "family": AF_INET,
        "priority": priority,
        "table": table,
        "action": "FR_ACT_TO_TBL",
    }
    if src is not None:
        kwargs.update(src=str(src), src_len=32)
    if dst is not None:
        kwargs.update(dst=str(dst), dst_len=32)
    return kwargs


def ensure_rule(
    nl: Netlink,
    rules: Sequence[RawEntry],
    priority: int,
    table: int,
    *,
    src: IPv4Address | None = None,
    dst: IPv4Address | None = None,
) -> bool:
    """Make exactly one rule (priority, src/dst) -> table exist, given the current `rules`;
    True when it had to be added."""
    present = False
    for entry in find_rules(rules, priority, src=src, dst=dst):
        if entry.table == table and not present:
            present = True
            continue
        _delete_rule(nl, priority, entry.table, src, dst)  # stale or duplicate
    if not present:
        nl.rule("add", **_rule_kwargs(priority, table, src, dst))
    return not present


def _delete_rule(
    nl: Netlink, priority: int, table: int, src: IPv4Address | None, dst: IPv4Address | None
) -> None:
    try:
        nl.rule("del", **_rule_kwargs(priority, table, src, dst))
    except Exception as exc:
        if not is_absent(exc):
            raise


def delete_rules(
    nl: Netlink,
    rules: Sequence[RawEntry],
    priority: int,
    *,
    src: IPv4Address | None = None,
    dst: IPv4Address | None = None,
) -> int:
    """Delete every matching rule of `rules`; absent rules are fine. Returns how many matched."""
    found = find_rules(rules, priority, src=src, dst=dst)
    for entry in found:
        _delete_rule(nl, priority, entry.table, src, dst)
    return len(found)


def ensure_pod_rules(conn: NodeConn, pod_ip: IPv4Address, table: int) -> tuple[bool, bool]:
    """``to <podIP> lookup main`` (512) and ``from <podIP> lookup <table>`` (2048)."""
    rules = conn.rules()
    to_added = ensure_rule(conn.nl, rules, TO_POD_PRIORITY, RT_TABLE_MAIN, dst=pod_ip)
    from_added = ensure_rule(conn.nl, rules, FROM_POD_PRIORITY, table, src=pod_ip)
    return to_added, from_added


def delete_pod_rules(conn: NodeConn, pod_ip: IPv4Address) -> None:
    rules = conn.rules()
    delete_rules(conn.nl, rules, TO_POD_PRIORITY, dst=pod_ip)
    delete_rules(conn.nl, rules, FROM_POD_PRIORITY, src=pod_ip)


def routes_in(routes: Sequence[RawEntry], table: int) -> list[RawEntry]:
    """IPv4 routes of one table, from a dump of every table (`NodeConn.routes()`). Filtered here,
    on RTA_TABLE: the header's 8-bit table field says 252 for tables > 255."""
    return [r for r in routes if r.table == table and r.family == AF_INET]


def pod_route_device(routes: Sequence[RawEntry], pod_ip: IPv4Address) -> int | None:
    """The ifindex the main table sends <podIP>/32 to, if such a route exists."""
    for entry in routes_in(routes, RT_TABLE_MAIN):
        if entry.dst_len == 32 and entry.ip(RTA_DST) == str(pod_ip):
            return entry.u32(RTA_OIF)
    return None


def ensure_host_route(conn: NodeConn, routes: Sequence[RawEntry], pod_ip: IPv4Address, host_index: int) -> bool:
    """``<podIP> dev <host veth> scope link`` in main; True when added. Another device owning the
    pod IP is a conflict (two pods with one IP), never silently taken over."""
    current = pod_route_device(routes, pod_ip)
    if current == host_index:
        return False
    if current is not None:
        owner = link_name(link_msg(conn.nl, current))
        raise DatapathError(
            f"pod IP {pod_ip} is already routed to {owner} on this node",
            hint="another pod holds this IP; release it (CNI DEL) before reusing the address",
        )
    conn.nl.route("add", dst=f"{pod_ip}/32", oif=host_index, scope=RT_SCOPE_LINK, table=RT_TABLE_MAIN)
    return True


def delete_host_route(nl: Netlink, pod_ip: IPv4Address, host_index: int) -> None:
    """Delete ``<podIP>/32`` in main if it goes to `host_index` (the kernel matches the device)."""
    try:
        nl.route("del", dst=f"{pod_ip}/32", oif=host_index, table=RT_TABLE_MAIN)
    except Exception as exc:
        if not is_absent(exc):
            raise


def eni_default_route(routes: Sequence[RawEntry], table: int) -> RawEntry | None:
    for entry in routes_in(routes, table):
        if entry.dst_len == 0:
            return entry
    return None


def ensure_eni_default(
    nl: Netlink, routes: Sequence[RawEntry], eni_index: int, gateway: IPv4Address, table: int
) -> bool:
    """``default via <gateway> dev <eni> onlink`` in `table`; True when it was added or changed."""
    current = eni_default_route(routes, table)
    if current is not None and current.ip(RTA_GATEWAY) == str(gateway) and current.u32(RTA_OIF) == eni_index:
        return False
    nl.route(
        "replace", dst=DEFAULT_DST, gateway=str(gateway), oif=eni_index, flags=RTNH_F_ONLINK, table=table
    )
    return True


def delete_eni_default(nl: Netlink, table: int) -> None:
    try:
        nl.route("del", dst=DEFAULT_DST, table=table)
    except Exception as exc:
        if not is_absent(exc):
            raise


def ensure_eni_table(
    node_netns: Namespace, eni_ifname: str, gateway: IPv4Address, table: int | None = None
) -> int:
    """Ensure the ENI's policy table holds ``default via <gateway> dev <eni> onlink``.

    The table defaults to 1000 + the ENI's ifindex. Also sets rp_filter=0 on the ENI.
    Returns the table id. Idempotent.
    """
    with NodeConn(node_netns) as conn:
        index = link_index(conn.nl, eni_ifname)
        if index is None:
            raise DatapathError(f"ENI {eni_ifname} not found in namespace {node_netns}")
        table_id = table if table is not None else eni_table_id(index)
        ensure_eni_default(conn.nl, conn.routes(), index, gateway, table_id)
        conn.sysctls([(conf_key(eni_ifname, "rp_filter"), "0")])
    return table_id
