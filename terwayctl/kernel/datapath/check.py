"""CNI CHECK against the kernel: does a pod's datapath still look as ADD built it and reported it?

`check_pod` reads (never changes) the pod and node namespaces and returns the differences, one
sentence each; an empty list means the pod is intact. What it compares, per mode:

- every mode: the pod link (`ifname`) exists and is up, with the MAC the result reported, the
  pod's address (/32 in veth and ipvlan mode, /prefix with an exclusive ENI), every route of the
  result in the pod's main table, the egress tbf (rate) when the pod is shaped;
- veth mode, on the node: the host veth with the reported MAC, the peer of the pod link,
  ``<podIP> dev <host veth>`` in main, the 512/2048 rules to the ENI table, the ingress tbf;
- exclusive ENI with a service veth (svcveth.py): both ends present and up, peers, the pod's
  routes via 169.254.1.1 dev veth1, ``<podIP> dev <host side>`` in the node's main table.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

from terwayctl.core.bandwidth import tbf_parameters
from terwayctl.kernel import netns
from terwayctl.kernel.datapath import policy, svcveth, v6
from terwayctl.kernel.datapath._links import IFF_UP, link_get, link_index, link_kind, link_mac
from terwayctl.kernel.datapath.conn import NodeConn
from terwayctl.kernel.datapath.model import (
    FROM_POD_PRIORITY,
    TO_POD_PRIORITY,
    DatapathMode,
    PodNetwork,
    eni_table_id,
)
from terwayctl.kernel.datapath.tc import TC_H_ROOT
from terwayctl.kernel.netlink import RT_TABLE_MAIN, RTA_GATEWAY, RTA_OIF, Message, Netlink
from terwayctl.kernel.netns import Namespace

_RATE32_MAX = 2**32 - 1


@dataclass(frozen=True)
class Reported:
    """What the cached ADD result (prevResult) says about the pod: the MACs (None: not reported)
    and its routes as (destination, gateway or None)."""

    pod_mac: str | None = None
    host_mac: str | None = None
    routes: tuple[tuple[str, str | None], ...] = ()


def _root_tbf_rate(nl: Netlink, index: int) -> tuple[str | None, int | None]:
    """(kind of the root qdisc, its tbf rate in bytes/s) of a link; (None, None) without one."""
    for msg in nl.tc("dump", index=index):
        if msg["index"] != index or msg["parent"] != TC_H_ROOT:
            continue
        kind = msg.get_attr("TCA_KIND")
        if kind != "tbf":
            return (None if kind is None else str(kind)), None
        options = msg.get_attr("TCA_OPTIONS")
        parms = options.get_attr("TCA_TBF_PARMS") if options is not None else None
        return "tbf", (int(parms["rate"]) if parms is not None else None)
    return None, None


def _check_shaping(nl: Netlink, index: int, where: str, rate: int | None, mtu: int) -> list[str]:
    """The tbf the pod's limit asks for (only our own limits: a qdisc without one is left alone)."""
    if rate is None:
        return []
    kind, got = _root_tbf_rate(nl, index)
    want = min(tbf_parameters(rate, mtu).rate, _RATE32_MAX)
    if kind != "tbf":
        return [f"{where} has no tbf root qdisc (want {want * 8} bit/s), found {kind or 'none'}"]
    if got != want:
        return [f"{where} is shaped to {(got or 0) * 8} bit/s, want {want * 8} bit/s"]
    return []


def _pod_side(pn: Netlink, ifname: str, spec: PodNetwork, reported: Reported) -> tuple[list[str], Message | None]:
    link = link_get(pn, ifname)
    if link is None:
        return [f"{ifname} is missing in the pod namespace"], None
    problems: list[str] = []
    index = int(link["index"])
    if not int(link["flags"]) & IFF_UP:
        problems.append(f"{ifname} is down")
    if reported.pod_mac is not None and link_mac(link).lower() != reported.pod_mac.lower():
        problems.append(f"{ifname} has MAC {link_mac(link)}, the result says {reported.pod_mac}")
    prefix = spec.prefix if spec.mode is DatapathMode.EXCLUSIVE_ENI else 32
    addresses = {(str(m.get_attr("IFA_ADDRESS")), int(m["prefixlen"])) for m in pn.addr("dump", index=index)}
    if (str(spec.pod_ip), prefix) not in addresses:
        problems.append(f"{ifname} lacks {spec.pod_ip}/{prefix}")
    routes = [r for r in pn.route("dump", table=RT_TABLE_MAIN) if r.get_attr("RTA_TABLE") == RT_TABLE_MAIN]
    for dst, gateway in reported.routes:
        if ":" in dst:
            continue  # an IPv6 route of a dual-stack result: judged by v6.check
        network = IPv4Network(dst)
        found = [
            r for r in routes
            if int(r["dst_len"]) == network.prefixlen
            and (r.get_attr("RTA_DST") or "0.0.0.0") == str(network.network_address)
            and r.get_attr("RTA_OIF") == index
        ]
        if not found:
            problems.append(f"route {dst} via {ifname} is missing in the pod namespace")
        elif gateway is not None and not any(r.get_attr("RTA_GATEWAY") == gateway for r in found):
            problems.append(f"route {dst} in the pod namespace does not go via {gateway}")
    problems += _check_shaping(pn, index, f"{ifname} (egress)", spec.bandwidth.egress, spec.mtu)
    return problems, link


def _node_side(conn: NodeConn, pod_link: Message | None, spec: PodNetwork, reported: Reported) -> list[str]:
    nn = conn.nl
    host = link_get(nn, spec.host_ifname)
    if host is None:
        return [f"host veth {spec.host_ifname} is missing in the node namespace"]
    problems: list[str] = []
    host_index = int(host["index"])
    if link_kind(host) != "veth" or (pod_link is not None and pod_link.get_attr("IFLA_LINK") != host_index):
        problems.append(f"{spec.host_ifname} is not the peer of the pod's interface")
    if not int(host["flags"]) & IFF_UP:
        problems.append(f"host veth {spec.host_ifname} is down")
    if reported.host_mac is not None and link_mac(host).lower() != reported.host_mac.lower():
        problems.append(f"host veth {spec.host_ifname} has MAC {link_mac(host)}, the result says {reported.host_mac}")
    routes = conn.routes()
    if policy.pod_route_device(routes, spec.pod_ip) != host_index:
        problems.append(f"no route {spec.pod_ip} dev {spec.host_ifname} in the node's main table")
    eni = link_index(nn, spec.eni_ifname)
    table = spec.eni_table if spec.eni_table is not None else (eni_table_id(eni) if eni is not None else None)
    rules = conn.rules()
    if not any(r.table == RT_TABLE_MAIN for r in policy.find_rules(rules, TO_POD_PRIORITY, dst=spec.pod_ip)):
        problems.append(f"rule {TO_POD_PRIORITY}: to {spec.pod_ip} lookup main is missing")
    if not any(r.table == table for r in policy.find_rules(rules, FROM_POD_PRIORITY, src=spec.pod_ip)):
        problems.append(f"rule {FROM_POD_PRIORITY}: from {spec.pod_ip} lookup {table} is missing")
    if table is not None and policy.eni_default_route(routes, table) is None:
        problems.append(f"table {table} has no default route")
    elif table is not None:
        default = policy.eni_default_route(routes, table)
        assert default is not None
        if default.ip(RTA_GATEWAY) != str(spec.gateway) or default.u32(RTA_OIF) != eni:
            problems.append(f"table {table}'s default route is not via {spec.gateway} dev {spec.eni_ifname}")
    problems += _check_shaping(nn, host_index, f"{spec.host_ifname} (ingress)", spec.bandwidth.ingress, spec.mtu)
    return problems


def check_on(conn: NodeConn, pod_netns: Namespace, ifname: str, spec: PodNetwork, reported: Reported) -> list[str]:
    """The differences between the kernel and what ADD built and reported (empty: intact)."""
    if not netns.exists(pod_netns):
        return [f"pod network namespace {pod_netns} does not exist"]
    with netns.iproute(pod_netns) as pn:
        problems, pod_link = _pod_side(pn, ifname, spec, reported)
        if spec.mode is DatapathMode.EXCLUSIVE_ENI:
            problems += svcveth.check(conn, pn, spec)
        if spec.mode is DatapathMode.VETH and spec.pod_ip6 is not None and pod_link is not None:
            problems += _ipv6_side(conn, pn, ifname, spec, pod_link)
    if spec.mode is DatapathMode.VETH:
        problems += _node_side(conn, pod_link, spec, reported)
    return problems


def _ipv6_side(conn: NodeConn, pn: Netlink, ifname: str, spec: PodNetwork, pod_link: Message) -> list[str]:
    host = link_get(conn.nl, spec.host_ifname)
    eni = link_index(conn.nl, spec.eni_ifname)
    if host is None or eni is None:
        return []  # reported by the IPv4 checks
    table = spec.eni_table if spec.eni_table is not None else eni_table_id(eni)
    return v6.check(conn, pn, ifname, spec, table, int(host["index"]), int(pod_link["index"]), link_mac(host))


def check_pod(node_netns: Namespace, pod_netns: Namespace, ifname: str, spec: PodNetwork,
              reported: Reported | None = None) -> list[str]:
    """`check_on` with the node namespace's sockets opened for the call."""
    with NodeConn(node_netns) as conn:
        return check_on(conn, pod_netns, ifname, spec, reported or Reported())

