"""Policy routing on the node: the per-ENI table, the pod rules (512/2048), the host route."""

from __future__ import annotations

from ipaddress import IPv4Address

from terwayctl.node import netns
from terwayctl.node.datapath._links import link_index, link_msg, link_name
from terwayctl.node.datapath.model import (
    FROM_POD_PRIORITY,
    TO_POD_PRIORITY,
    DatapathError,
    eni_table_id,
)
from terwayctl.node.netlink import (
    AF_INET,
    RT_SCOPE_LINK,
    RT_TABLE_MAIN,
    RTNH_F_ONLINK,
    Message,
    Netlink,
    is_absent,
)
from terwayctl.node.netns import Namespace

DEFAULT_DST = "0.0.0.0/0"


def _rule_matches(msg: Message, priority: int, src: IPv4Address | None, dst: IPv4Address | None) -> bool:
    if msg.get("priority") != priority or msg["family"] != AF_INET:
        return False
    if src is not None and (msg.get("src") != str(src) or msg["src_len"] != 32):
        return False
    return dst is None or (msg.get("dst") == str(dst) and msg["dst_len"] == 32)


def find_rules(
    nl: Netlink, priority: int, *, src: IPv4Address | None = None, dst: IPv4Address | None = None
) -> list[Message]:
    return [m for m in nl.rule("dump", family=AF_INET) if _rule_matches(m, priority, src, dst)]


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
    nl: Netlink, priority: int, table: int, *, src: IPv4Address | None = None, dst: IPv4Address | None = None
) -> bool:
    """Make exactly one rule (priority, src/dst) -> table exist; True when it had to be added."""
    present = False
    for msg in find_rules(nl, priority, src=src, dst=dst):
        if msg.get("table") == table and not present:
            present = True
            continue
        _delete_rule(nl, priority, int(msg.get("table")), src, dst)  # stale or duplicate
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
    nl: Netlink, priority: int, *, src: IPv4Address | None = None, dst: IPv4Address | None = None
) -> int:
    """Delete every matching rule; absent rules are fine. Returns how many were deleted."""
    found = find_rules(nl, priority, src=src, dst=dst)
    for msg in found:
        _delete_rule(nl, priority, int(msg.get("table")), src, dst)
    return len(found)


def ensure_pod_rules(nl: Netlink, pod_ip: IPv4Address, table: int) -> tuple[bool, bool]:
    """``to <podIP> lookup main`` (512) and ``from <podIP> lookup <table>`` (2048)."""
    to_added = ensure_rule(nl, TO_POD_PRIORITY, RT_TABLE_MAIN, dst=pod_ip)
    from_added = ensure_rule(nl, FROM_POD_PRIORITY, table, src=pod_ip)
    return to_added, from_added


def delete_pod_rules(nl: Netlink, pod_ip: IPv4Address) -> None:
    delete_rules(nl, TO_POD_PRIORITY, dst=pod_ip)
    delete_rules(nl, FROM_POD_PRIORITY, src=pod_ip)


def routes_in(nl: Netlink, table: int) -> list[Message]:
    """IPv4 routes of one table. Filtered here, on RTA_TABLE: the header's 8-bit table field says
    252 for tables > 255, and pyroute2's own table filter is not applied the same way everywhere."""
    return [m for m in nl.route("dump", family=AF_INET) if m.get_attr("RTA_TABLE") == table]


def pod_route_device(nl: Netlink, pod_ip: IPv4Address) -> int | None:
    """The ifindex the main table sends <podIP>/32 to, if such a route exists."""
    for msg in routes_in(nl, RT_TABLE_MAIN):
        if msg["dst_len"] == 32 and msg.get_attr("RTA_DST") == str(pod_ip):
            oif = msg.get_attr("RTA_OIF")
            return None if oif is None else int(oif)
    return None


def ensure_host_route(nl: Netlink, pod_ip: IPv4Address, host_index: int) -> bool:
    """``<podIP> dev <host veth> scope link`` in main; True when added. Another device owning the
    pod IP is a conflict (two pods with one IP), never silently taken over."""
    current = pod_route_device(nl, pod_ip)
    if current == host_index:
        return False
    if current is not None:
        owner = link_name(link_msg(nl, current))
        raise DatapathError(
            f"pod IP {pod_ip} is already routed to {owner} on this node",
            hint="another pod holds this IP; release it (CNI DEL) before reusing the address",
        )
    nl.route("add", dst=f"{pod_ip}/32", oif=host_index, scope=RT_SCOPE_LINK, table=RT_TABLE_MAIN)
    return True


def delete_host_route(nl: Netlink, pod_ip: IPv4Address, host_index: int | None = None) -> None:
    current = pod_route_device(nl, pod_ip)
    if current is None or (host_index is not None and current != host_index):
        return
    try:
        nl.route("del", dst=f"{pod_ip}/32", oif=current, table=RT_TABLE_MAIN)
    except Exception as exc:
        if not is_absent(exc):
            raise


def eni_default_route(nl: Netlink, table: int) -> Message | None:
    for msg in routes_in(nl, table):
        if msg["dst_len"] == 0:
            return msg
    return None


def ensure_eni_default(nl: Netlink, eni_index: int, gateway: IPv4Address, table: int) -> bool:
    """``default via <gateway> dev <eni> onlink`` in `table`; True when it was added or changed."""
    current = eni_default_route(nl, table)
    if (
        current is not None
        and current.get_attr("RTA_GATEWAY") == str(gateway)
        and current.get_attr("RTA_OIF") == eni_index
    ):
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
    with netns.iproute(node_netns) as nl:
        index = link_index(nl, eni_ifname)
        if index is None:
            raise DatapathError(f"ENI {eni_ifname} not found in namespace {node_netns}")
        table_id = table if table is not None else eni_table_id(index)
        ensure_eni_default(nl, index, gateway, table_id)
    netns.write_sysctl(node_netns, f"net/ipv4/conf/{eni_ifname}/rp_filter", "0")
    return table_id
