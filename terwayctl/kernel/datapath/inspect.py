"""Read back the pod datapath of a node namespace (for ``ipam check`` and ``doctor``)."""

from __future__ import annotations

from collections import defaultdict
from ipaddress import IPv4Address

from terwayctl.kernel import netns
from terwayctl.kernel.datapath._links import link_kind, link_mac, link_name
from terwayctl.kernel.datapath.model import (
    ENI_TABLE_BASE,
    FROM_POD_PRIORITY,
    HOST_VETH_PREFIX,
    TO_POD_PRIORITY,
    EniTable,
    NodeInspection,
    PodVeth,
    PolicyRule,
)
from terwayctl.kernel.netlink import AF_INET, RT_TABLE_MAIN
from terwayctl.kernel.netns import Namespace


def _ip(value: object) -> IPv4Address | None:
    return None if value is None else IPv4Address(str(value))


def inspect_node(node_netns: Namespace) -> NodeInspection:
    """The pod veths, the 512/2048 rules and the ENI tables (>= 1000) of a node namespace."""
    with netns.iproute(node_netns) as nl:
        links = list(nl.link("dump"))
        routes = list(nl.route("dump", family=AF_INET))  # every table
        rules = list(nl.rule("dump", family=AF_INET))
    names = {int(m["index"]): link_name(m) for m in links}

    routed: dict[int, list[IPv4Address]] = defaultdict(list)
    tables: dict[int, EniTable] = {}
    for msg in routes:
        table = msg.get_attr("RTA_TABLE")
        oif = msg.get_attr("RTA_OIF")
        if table == RT_TABLE_MAIN and msg["dst_len"] == 32 and oif is not None:
            routed[int(oif)].append(IPv4Address(str(msg.get_attr("RTA_DST"))))
        elif isinstance(table, int) and table >= ENI_TABLE_BASE and msg["dst_len"] == 0:
            device = None if oif is None else names.get(int(oif))
            tables[table] = EniTable(table=table, device=device, gateway=_ip(msg.get_attr("RTA_GATEWAY")))

    veths = tuple(
        PodVeth(
            name=link_name(m),
            ifindex=int(m["index"]),
            mac=link_mac(m),
            pod_ips=tuple(sorted(routed[int(m["index"])])),
        )
        for m in links
        if link_name(m).startswith(HOST_VETH_PREFIX) and link_kind(m) == "veth"
    )
    policy_rules = tuple(
        PolicyRule(
            priority=int(m.get("priority")),
            table=int(m.get("table")),
            src=_ip(m.get("src")) if m["src_len"] == 32 else None,
            dst=_ip(m.get("dst")) if m["dst_len"] == 32 else None,
        )
        for m in rules
        if m.get("priority") in (TO_POD_PRIORITY, FROM_POD_PRIORITY)
    )
    return NodeInspection(
        veths=tuple(sorted(veths, key=lambda v: v.name)),
        rules=tuple(sorted(policy_rules, key=lambda r: (r.priority, str(r.src or r.dst)))),
        eni_tables=tuple(tables[t] for t in sorted(tables)),
    )
