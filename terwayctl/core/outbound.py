"""Will pods on a vSwitch reach the internet? Route table and SNAT semantics as the NAT gateway applies them.

Pure logic: the caller reads the vSwitch's route table entries, the NAT gateways and their SNAT
entries, and hands them over as the small records below.

- The vSwitch uses one route table: its custom table when one is bound to it, else the VPC's system
  table. Outbound traffic needs a 0.0.0.0/0 route whose next hop is a NAT gateway.
- That NAT gateway translates a source address when one of its SNAT entries covers it: an entry with
  SourceVSwitchId covers exactly that vSwitch; an entry with only a SourceCIDR covers the addresses
  inside that CIDR. A SourceCIDR smaller than the vSwitch covers only part of it.
- A node's EIP never helps its pods: pod traffic leaves from the pod's own address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_ROUTE = "0.0.0.0/0"


@dataclass(frozen=True)
class Route:
    destination: str
    next_hops: tuple[tuple[str, str], ...]
    """(NextHopType, NextHopId) pairs."""


@dataclass(frozen=True)
class Snat:
    entry_id: str
    table_id: str
    source_vswitch_id: str
    source_cidr: str
    snat_ip: str
    status: str = "Available"


@dataclass(frozen=True)
class Nat:
    nat_id: str
    snat_table_ids: tuple[str, ...]
    ip_addresses: tuple[str, ...]


@dataclass(frozen=True)
class Outbound:
    """The verdict for one vSwitch; `ok` when pods on it reach the internet."""

    vswitch_id: str
    cidr: str
    route_table_id: str
    route_table_type: str
    nat_id: str | None
    """The NAT gateway the default route points at (None: no such route)."""
    covering: tuple[Snat, ...]
    """Entries that cover the whole vSwitch."""
    partial: tuple[Snat, ...]
    """SourceCIDR entries that cover only part of it."""
    uncovered: tuple[str, ...]
    """The parts of the vSwitch CIDR no entry covers (empty when covered)."""
    problem: str | None
    """None when fine; else one of: no-route, not-nat, no-snat, partial-snat."""
    other_hop: str = ""
    """The default route's next hop when it is not a NAT gateway."""

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def fixable_by_snat(self) -> bool:
        """A missing or partial SNAT entry: CreateSnatEntry on `nat_id` fixes it."""
        return self.problem in ("no-snat", "partial-snat")


def default_route_nat(routes: Sequence[Route]) -> tuple[str | None, str]:
    """(NAT gateway id, '') when 0.0.0.0/0 goes to a NAT gateway; (None, 'Type id') for another next hop;
    (None, '') when there is no default route."""
    for route in routes:
        if _same_net(route.destination, DEFAULT_ROUTE):
            nats = [hop_id for hop_type, hop_id in route.next_hops if hop_type == "NatGateway"]
            if nats:
                return nats[0], ""
            return None, ", ".join(f"{t} {i}" for t, i in route.next_hops) or "?"
    return None, ""


def snat_coverage(vswitch_id: str, cidr: str, entries: Sequence[Snat]) -> tuple[list[Snat], list[Snat], list[str]]:
    """(entries covering the whole vSwitch, entries covering part of it, the uncovered parts)."""
    whole = ipaddress.IPv4Network(cidr, strict=False)
    covering: list[Snat] = []
    partial: list[Snat] = []
    for entry in entries:
        if entry.source_vswitch_id:
            if entry.source_vswitch_id == vswitch_id:
                covering.append(entry)
            continue  # a vSwitch entry covers that vSwitch only, whatever its SourceCIDR says
        net = _net(entry.source_cidr)
        if net is None or not net.overlaps(whole):
            continue
        if whole.subnet_of(net):
            covering.append(entry)
        else:
            partial.append(entry)
    if covering:
        return covering, partial, []
    left = [whole]
    for entry in partial:
        net = _net(entry.source_cidr)
        assert net is not None
        rest: list[ipaddress.IPv4Network] = []
        for part in left:
            if part.subnet_of(net):
                continue
            rest += list(part.address_exclude(net)) if net.subnet_of(part) else [part]
        left = rest
    return [], partial, [str(n) for n in ipaddress.collapse_addresses(left)]


def assess(
    vswitch_id: str,
    cidr: str,
    route_table_id: str,
    route_table_type: str,
    routes: Sequence[Route],
    snat_entries: Sequence[Snat],
) -> Outbound:
    """The verdict from the vSwitch's route table and the SNAT entries of the NAT gateway it routes to.

    `snat_entries` are the entries of that NAT gateway's SNAT tables (the caller reads them once the
    route names the gateway; pass () when there is none).
    """
    nat_id, other = default_route_nat(routes)
    if nat_id is None:
        return Outbound(vswitch_id, cidr, route_table_id, route_table_type, None, (), (), (cidr,),
                        "not-nat" if other else "no-route", other)
    covering, partial, uncovered = snat_coverage(vswitch_id, cidr, snat_entries)
    problem = None if covering else ("partial-snat" if partial else "no-snat")
    return Outbound(vswitch_id, cidr, route_table_id, route_table_type, nat_id, tuple(covering), tuple(partial),
                    tuple(uncovered), problem)


def snat_ip_for(nat: Nat, entries: Sequence[Snat]) -> str | None:
    """The address a new entry should use: the one the gateway's entries already use, else its first EIP."""
    for entry in entries:
        if entry.snat_ip:
            return entry.snat_ip.split(",")[0].strip()
    return nat.ip_addresses[0] if nat.ip_addresses else None


def explain(verdict: Outbound, region: str = "", snat_table: str | None = None,
            snat_ip: str | None = None) -> tuple[str, str]:
    """(error message, hint with the exact fix) for a verdict that is not ok."""
    vsw, table = verdict.vswitch_id, f"{verdict.route_table_type.lower() or 'its'} route table {verdict.route_table_id}"
    region_flag = f" --RegionId {region}" if region else ""
    private = f"or, if pods on {vsw} must not reach the internet, pass --no-internet"
    if verdict.problem == "no-route":
        return (f"pods on vSwitch {vsw} would have no internet: {table} has no 0.0.0.0/0 route",
                f"route it to the NAT gateway: aliyun vpc CreateRouteEntry{region_flag} --RouteTableId "
                f"{verdict.route_table_id} --DestinationCidrBlock 0.0.0.0/0 --NextHopType NatGateway "
                f"--NextHopId <ngw-...>; {private}")
    if verdict.problem == "not-nat":
        return (f"pods on vSwitch {vsw} would have no internet through a NAT gateway: {table} sends 0.0.0.0/0 to "
                f"{verdict.other_hop}, not to a NAT gateway",
                f"point 0.0.0.0/0 of {verdict.route_table_id} at the NAT gateway; {private} (for instance when "
                f"that next hop does the translation itself)")
    table_arg = snat_table or f"<the SNAT table of {verdict.nat_id}>"
    ip_arg = snat_ip or f"<an EIP of {verdict.nat_id}>"
    fix = (f"rerun with --snat to create it, or: aliyun vpc CreateSnatEntry{region_flag} --SnatTableId {table_arg} "
           f"--SourceVSwitchId {vsw} --SnatIp {ip_arg}; {private}")
    if verdict.problem == "partial-snat":
        parts = ", ".join(f"{e.entry_id} ({e.source_cidr})" for e in verdict.partial)
        return (f"pods on vSwitch {vsw} ({verdict.cidr}) would only partly reach the internet: the SNAT entries "
                f"{parts} of NAT gateway {verdict.nat_id} cover only part of it; uncovered: "
                f"{', '.join(verdict.uncovered)}", fix)
    return (f"pods on vSwitch {vsw} ({verdict.cidr}) would have no internet: NAT gateway {verdict.nat_id} (the "
            f"0.0.0.0/0 next hop of {table}) has no SNAT entry for it (the nodes' EIPs do not help pods)", fix)


def _net(text: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        return None


def _same_net(a: str, b: str) -> bool:
    first, second = _net(a), _net(b)
    return first is not None and first == second
