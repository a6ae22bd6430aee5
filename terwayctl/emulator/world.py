"""The scenario model: what an empty emulator state is seeded with, its validation and the default world.

A scenario is a mapping (from YAML or from Python) with the keys documented in docs/emulator.md.
Every error raises `InvalidInput` naming the offending entry and how to fix it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terwayctl.core import defaults
from terwayctl.core.errors import InvalidInput
from terwayctl.emulator.faults import FaultSpec, parse_fault_spec

DEFAULT_REGION = "cn-hangzhou"
DEFAULT_KEY_ID = "emulator"
DEFAULT_KEY_SECRET = "emulator"
SCENARIO_KEYS = frozenset(
    {"region", "zones", "key_pairs", "vpcs", "vswitches", "security_groups", "instances", "nat_gateways",
     "eips", "faults", "settings", "route_tables"}
)


@dataclass(frozen=True)
class KeyPair:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None
    denied_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vpc:
    id: str
    cidr: str
    name: str = ""
    ipv6_cidr: str = ""  # a /56 (scenario `ipv6: true` picks the next of 2001:db8::/32), "" = IPv4 only


@dataclass(frozen=True)
class VSwitch:
    id: str
    vpc_id: str
    zone: str
    cidr: str
    name: str = ""
    ipv6_cidr: str = ""  # a /64 of the VPC's /56 (scenario `ipv6_cidr_block: 0..255`), "" = none


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    vpc_id: str
    name: str = ""


@dataclass(frozen=True)
class Instance:
    id: str
    instance_type: str
    zone: str
    vswitch_id: str
    security_group_ids: tuple[str, ...]
    primary_eni_id: str
    primary_ip: str | None = None
    name: str = ""


@dataclass(frozen=True)
class SnatEntry:
    id: str
    source_cidr: str
    source_vswitch_id: str
    snat_ip: str


@dataclass(frozen=True)
class NatGateway:
    id: str
    vpc_id: str
    vswitch_id: str
    snat_table_id: str
    snat_entries: tuple[SnatEntry, ...]
    name: str = ""
    default_route: bool = True
    """Whether the VPC's system route table sends 0.0.0.0/0 to this NAT gateway (as creating one does)."""


@dataclass(frozen=True)
class RouteEntry:
    destination: str
    next_hop_id: str
    next_hop_type: str


@dataclass(frozen=True)
class RouteTable:
    """A custom route table bound to vSwitches (the system table of each VPC exists implicitly)."""

    id: str
    vpc_id: str
    vswitch_ids: tuple[str, ...]
    routes: tuple[RouteEntry, ...]
    name: str = ""


@dataclass(frozen=True)
class Eip:
    id: str
    ip: str
    instance_id: str = ""
    instance_type: str = ""  # EcsInstance | Nat | NetworkInterface, "" when unassociated
    bandwidth: int = 5


@dataclass(frozen=True)
class Settings:
    attach_delay_ms: int = 0
    detach_delay_ms: int = 0


@dataclass(frozen=True)
class World:
    """Everything a fresh state is seeded with."""

    region: str
    zones: tuple[str, ...]
    key_pairs: tuple[KeyPair, ...]
    vpcs: tuple[Vpc, ...] = ()
    vswitches: tuple[VSwitch, ...] = ()
    security_groups: tuple[SecurityGroup, ...] = ()
    instances: tuple[Instance, ...] = ()
    nat_gateways: tuple[NatGateway, ...] = ()
    eips: tuple[Eip, ...] = ()
    route_tables: tuple[RouteTable, ...] = ()
    faults: Mapping[str, FaultSpec] = field(default_factory=dict)
    fault_seed: int | None = None
    settings: Settings = Settings()


# --- the default world -------------------------------------------------------------------------

DEFAULT_SCENARIO: dict[str, Any] = {
    "region": DEFAULT_REGION,
    "zones": ["cn-hangzhou-i", "cn-hangzhou-j"],
    "key_pairs": [{"access_key_id": DEFAULT_KEY_ID, "access_key_secret": DEFAULT_KEY_SECRET}],
    "vpcs": [{"id": "vpc-emudefault", "cidr": defaults.DEFAULT_VPC_CIDR, "name": "terway-vpc"}],
    "vswitches": [
        {"id": "vsw-emunodei", "zone": "cn-hangzhou-i", "cidr": defaults.DEFAULT_NODE_VSWITCH_CIDR, "name": "node-i"},
        {"id": "vsw-emupodi", "zone": "cn-hangzhou-i", "cidr": defaults.DEFAULT_POD_VSWITCH_CIDR, "name": "pod-i"},
        {"id": "vsw-emunodej", "zone": "cn-hangzhou-j", "cidr": "192.168.64.0/19", "name": "node-j"},
        {"id": "vsw-emupodj", "zone": "cn-hangzhou-j", "cidr": "192.168.96.0/19", "name": "pod-j"},
    ],
    "security_groups": [{"id": "sg-emudefault", "name": "terway-nodes"}],
    "instances": [
        {"id": "i-emunode1", "type": "ecs.g7.xlarge", "vswitch": "vsw-emunodei", "primary_eni": "eni-emunode1",
         "name": "node-1"},
        {"id": "i-emunode2", "type": "ecs.g6.xlarge", "vswitch": "vsw-emunodei", "primary_eni": "eni-emunode2",
         "name": "node-2"},
        {"id": "i-emunode3", "type": "ecs.g7.4xlarge", "vswitch": "vsw-emunodej", "primary_eni": "eni-emunode3",
         "name": "node-3"},
    ],
    "nat_gateways": [
        {"id": "ngw-emudefault", "vswitch": "vsw-emunodei", "snat_table_id": "stb-emudefault", "name": "terway-nat",
         "snat_entries": [
             {"id": "snat-emunodei", "source_vswitch": "vsw-emunodei", "snat_ip": "203.0.113.10"},
             {"id": "snat-emunodej", "source_vswitch": "vsw-emunodej", "snat_ip": "203.0.113.10"},
         ]},
    ],
    "eips": [
        {"id": "eip-emunat", "ip": "203.0.113.10", "instance": "ngw-emudefault", "instance_type": "Nat"},
        {"id": "eip-emunode1", "ip": "203.0.113.11", "instance": "i-emunode1", "instance_type": "EcsInstance"},
    ],
}


def default_world() -> World:
    """The documented default world (docs/emulator.md): region cn-hangzhou, zones i and j."""
    return parse_scenario(DEFAULT_SCENARIO)


def load_scenario(path: Path) -> World:
    """Read and validate a YAML scenario file."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read the scenario {path}: {exc.strerror}", hint="check the path") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the scenario {path} is not valid YAML: {exc}", hint="fix the YAML syntax") from None
    return parse_scenario(data if data is not None else {}, source=str(path))


# --- parsing and validation ---------------------------------------------------------------------


class _Parser:
    """Builds a World from a mapping, resolving references by id or name."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.ids: set[str] = set()

    def fail(self, where: str, message: str, hint: str) -> InvalidInput:
        return InvalidInput(f"scenario {self.source}: {where}: {message}", hint=hint)

    def items(self, data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise self.fail(key, "must be a list of mappings", f"write '{key}:' followed by '- key: value' entries")
        return value

    def text(self, item: Mapping[str, Any], where: str, key: str, default: str | None = None) -> str:
        value = item.get(key, default)
        if value is None:
            raise self.fail(where, f"'{key}' is required", f"add '{key}: ...' to {where}")
        if not isinstance(value, str | int):
            raise self.fail(where, f"'{key}' must be a string", f"quote the value of '{key}'")
        return str(value)

    def new_id(self, item: Mapping[str, Any], where: str, prefix: str, index: int) -> str:
        given = item.get("id")
        if given is None:
            seed = f"{prefix}:{item.get('name', '')}:{index}"
            given = prefix + "-emu" + hashlib.sha1(seed.encode()).hexdigest()[:14]
        given = str(given)
        if not given.startswith(prefix + "-"):
            raise self.fail(where, f"id {given!r} must start with '{prefix}-'", f"rename it, e.g. '{prefix}-mine1'")
        if given in self.ids:
            raise self.fail(where, f"id {given!r} is used twice", "give every resource its own id")
        self.ids.add(given)
        return given

    @staticmethod
    def resolve(ref: str, known: Mapping[str, str]) -> str | None:
        """An id, or the id of the entry with that name."""
        return ref if ref in known.values() else known.get(ref)


def _network(parser: _Parser, where: str, cidr: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as exc:
        raise parser.fail(where, f"{cidr!r} is not an IPv4 CIDR ({exc})", "write it like 192.168.0.0/19") from None


def parse_scenario(data: Any, source: str = "<dict>") -> World:
    """Validate a scenario mapping and return the World it describes."""
    parser = _Parser(source)
    if not isinstance(data, Mapping):
        raise parser.fail("top level", "must be a mapping", "start the file with 'region: cn-hangzhou'")
    unknown = sorted(set(data) - SCENARIO_KEYS)
    if unknown:
        raise parser.fail("top level", f"unknown keys {', '.join(map(str, unknown))}",
                          f"known keys: {', '.join(sorted(SCENARIO_KEYS))}")
    region = parser.text(data, "top level", "region", DEFAULT_REGION)
    zones = _zones(parser, data, region)
    key_pairs = _key_pairs(parser, data)
    vpcs = _vpcs(parser, data)
    vswitches = _vswitches(parser, data, vpcs, zones)
    groups = _security_groups(parser, data, vpcs)
    instances = _instances(parser, data, vswitches, groups)
    nats = _nat_gateways(parser, data, vpcs, vswitches)
    eips = _eips(parser, data, instances, nats)
    tables = _route_tables(parser, data, vpcs, vswitches, nats)
    faults, seed = _faults(parser, data)
    return World(
        region=region, zones=zones, key_pairs=key_pairs, vpcs=vpcs, vswitches=vswitches,
        security_groups=groups, instances=instances, nat_gateways=nats, eips=eips, route_tables=tables, faults=faults,
        fault_seed=seed, settings=_settings(parser, data),
    )


def _zones(parser: _Parser, data: Mapping[str, Any], region: str) -> tuple[str, ...]:
    zones = data.get("zones") or [f"{region}-i", f"{region}-j"]
    if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
        raise parser.fail("zones", "must be a list of zone ids", f"e.g. zones: [{region}-i, {region}-j]")
    for zone in zones:
        if not zone.startswith(region + "-"):
            raise parser.fail("zones", f"zone {zone!r} is not in region {region!r}", f"name zones like {region}-i")
    return tuple(zones)


def _key_pairs(parser: _Parser, data: Mapping[str, Any]) -> tuple[KeyPair, ...]:
    items = parser.items(data, "key_pairs")
    if not items:
        return (KeyPair(DEFAULT_KEY_ID, DEFAULT_KEY_SECRET),)
    pairs = []
    for i, item in enumerate(items):
        where = f"key_pairs[{i}]"
        denied = item.get("denied_actions") or []
        if not isinstance(denied, list):
            raise parser.fail(where, "'denied_actions' must be a list", "e.g. denied_actions: [CreateNetworkInterface]")
        token = item.get("security_token")
        pairs.append(KeyPair(
            access_key_id=parser.text(item, where, "access_key_id"),
            access_key_secret=parser.text(item, where, "access_key_secret"),
            security_token=None if token is None else str(token),
            denied_actions=tuple(str(a) for a in denied),
        ))
    return tuple(pairs)


def _vpcs(parser: _Parser, data: Mapping[str, Any]) -> tuple[Vpc, ...]:
    vpcs: list[Vpc] = []
    for i, item in enumerate(parser.items(data, "vpcs")):
        where = f"vpcs[{i}]"
        cidr = parser.text(item, where, "cidr")
        _network(parser, where, cidr)
        v6 = ""
        if item.get("ipv6"):
            from terwayctl.emulator.ipv6 import vpc_cidr_for

            v6 = vpc_cidr_for(len([v for v in vpcs if v.ipv6_cidr]))
        vpcs.append(Vpc(id=parser.new_id(item, where, "vpc", i), cidr=cidr, name=str(item.get("name", "")),
                        ipv6_cidr=v6))
    return tuple(vpcs)


def _pick_vpc(parser: _Parser, item: Mapping[str, Any], where: str, vpcs: Sequence[Vpc]) -> Vpc:
    ref = item.get("vpc")
    if ref is None:
        if len(vpcs) != 1:
            raise parser.fail(where, "'vpc' is required when the scenario has no or several VPCs",
                              "add 'vpc: <id or name>' (and a 'vpcs:' entry)")
        return vpcs[0]
    for vpc in vpcs:
        if str(ref) in (vpc.id, vpc.name):
            return vpc
    raise parser.fail(where, f"unknown VPC {ref!r}", "name a VPC from the 'vpcs' list by id or name")


def _vswitches(
    parser: _Parser, data: Mapping[str, Any], vpcs: Sequence[Vpc], zones: Sequence[str]
) -> tuple[VSwitch, ...]:
    result: list[VSwitch] = []
    for i, item in enumerate(parser.items(data, "vswitches")):
        where = f"vswitches[{i}]"
        vpc = _pick_vpc(parser, item, where, vpcs)
        cidr = parser.text(item, where, "cidr")
        net = _network(parser, where, cidr)
        if not net.subnet_of(ipaddress.IPv4Network(vpc.cidr)):
            raise parser.fail(where, f"{cidr} is not inside the VPC {vpc.id} ({vpc.cidr})",
                              "pick a vSwitch CIDR inside the VPC CIDR")
        if not defaults.VSWITCH_MIN_PREFIX <= net.prefixlen <= defaults.VSWITCH_MAX_PREFIX:
            raise parser.fail(where, f"{cidr}: a vSwitch mask must be /16 to /29", "e.g. a /19")
        for other in result:
            if other.vpc_id == vpc.id and net.overlaps(ipaddress.IPv4Network(other.cidr)):
                raise parser.fail(where, f"{cidr} overlaps {other.id} ({other.cidr})", "vSwitch CIDRs must be disjoint")
        zone = parser.text(item, where, "zone")
        if zone not in zones:
            raise parser.fail(where, f"zone {zone!r} is not in the scenario's zones", f"use one of {', '.join(zones)}")
        v6 = ""
        block = item.get("ipv6_cidr_block")
        if block is not None:
            if not vpc.ipv6_cidr:
                raise parser.fail(where, f"ipv6_cidr_block given, but the VPC {vpc.id} has no IPv6 CIDR",
                                  "add 'ipv6: true' to the VPC")
            if not isinstance(block, int) or isinstance(block, bool) or not 0 <= block <= 255:
                raise parser.fail(where, f"ipv6_cidr_block must be 0..255, got {block!r}",
                                  "the /64's number inside the VPC's /56")
            from terwayctl.emulator.ipv6 import vswitch_cidr_in

            v6 = vswitch_cidr_in(vpc.ipv6_cidr, block)
            if any(o.ipv6_cidr == v6 for o in result):
                raise parser.fail(where, f"ipv6_cidr_block {block} is used by another vSwitch", "pick another")
        result.append(VSwitch(parser.new_id(item, where, "vsw", i), vpc.id, zone, cidr, str(item.get("name", "")),
                              ipv6_cidr=v6))
    return tuple(result)


def _security_groups(parser: _Parser, data: Mapping[str, Any], vpcs: Sequence[Vpc]) -> tuple[SecurityGroup, ...]:
    groups = []
    for i, item in enumerate(parser.items(data, "security_groups")):
        where = f"security_groups[{i}]"
        vpc = _pick_vpc(parser, item, where, vpcs)
        groups.append(SecurityGroup(parser.new_id(item, where, "sg", i), vpc.id, str(item.get("name", ""))))
    return tuple(groups)


def _find_vswitch(parser: _Parser, where: str, ref: str, vswitches: Sequence[VSwitch]) -> VSwitch:
    for vsw in vswitches:
        if ref in (vsw.id, vsw.name):
            return vsw
    raise parser.fail(where, f"unknown vSwitch {ref!r}", "name a vSwitch from the 'vswitches' list by id or name")


def _instances(
    parser: _Parser, data: Mapping[str, Any], vswitches: Sequence[VSwitch], groups: Sequence[SecurityGroup]
) -> tuple[Instance, ...]:
    from terwayctl.data import embedded_catalog

    catalog = embedded_catalog()  # the same 1,468-type catalog DescribeInstanceTypes serves
    result = []
    for i, item in enumerate(parser.items(data, "instances")):
        where = f"instances[{i}]"
        type_name = parser.text(item, where, "type")
        row = catalog.lookup(type_name)  # any case; the instance keeps the canonical name
        if row is not None:
            type_name = row.name
        if row is None or not row.eni_quantity or not row.eni_private_ip_quantity:
            raise parser.fail(where, f"instance type {type_name!r} has no ENI quota in the catalog",
                              "pick a type with EniQuantity and EniPrivateIpAddressQuantity, e.g. ecs.g7.xlarge")
        vsw = _find_vswitch(parser, where, parser.text(item, where, "vswitch"), vswitches)
        zone = parser.text(item, where, "zone", vsw.zone)
        if zone != vsw.zone:
            raise parser.fail(where, f"zone {zone} differs from the vSwitch {vsw.id}'s zone {vsw.zone}",
                              "an instance sits in the zone of its vSwitch")
        group_ids = _instance_groups(parser, item, where, vsw, groups)
        primary_ip = item.get("primary_ip")
        if primary_ip is not None and not _address_in(str(primary_ip), vsw.cidr):
            raise parser.fail(where, f"primary_ip {primary_ip} is not in {vsw.id} ({vsw.cidr})",
                              "pick an address of the instance's vSwitch, or leave it out")
        instance_id = parser.new_id(item, where, "i", i)
        eni_item = {"id": item["primary_eni"]} if "primary_eni" in item else {"name": instance_id}
        result.append(Instance(
            id=instance_id, instance_type=type_name, zone=zone, vswitch_id=vsw.id,
            security_group_ids=group_ids, primary_eni_id=parser.new_id(eni_item, where, "eni", i),
            primary_ip=None if primary_ip is None else str(primary_ip), name=str(item.get("name", "")),
        ))
    return tuple(result)


def _address_in(address: str, cidr: str) -> bool:
    try:
        return ipaddress.IPv4Address(address) in ipaddress.IPv4Network(cidr)
    except ValueError:
        return False


def _instance_groups(
    parser: _Parser, item: Mapping[str, Any], where: str, vsw: VSwitch, groups: Sequence[SecurityGroup]
) -> tuple[str, ...]:
    refs = item.get("security_groups")
    in_vpc = [g for g in groups if g.vpc_id == vsw.vpc_id]
    if refs is None:
        if not in_vpc:
            raise parser.fail(where, f"no security group in {vsw.vpc_id}", "add a 'security_groups:' entry")
        return (in_vpc[0].id,)
    chosen = []
    for ref in refs if isinstance(refs, list) else [refs]:
        match = [g.id for g in in_vpc if str(ref) in (g.id, g.name)]
        if not match:
            raise parser.fail(where, f"unknown security group {ref!r} in {vsw.vpc_id}", "name one by id or name")
        chosen.append(match[0])
    return tuple(chosen)


def _nat_gateways(
    parser: _Parser, data: Mapping[str, Any], vpcs: Sequence[Vpc], vswitches: Sequence[VSwitch]
) -> tuple[NatGateway, ...]:
    result = []
    for i, item in enumerate(parser.items(data, "nat_gateways")):
        where = f"nat_gateways[{i}]"
        vsw = _find_vswitch(parser, where, parser.text(item, where, "vswitch"), vswitches)
        nat_id = parser.new_id(item, where, "ngw", i)
        table_item = {"id": item["snat_table_id"]} if "snat_table_id" in item else {"name": nat_id}
        table_id = parser.new_id(table_item, where, "stb", i)
        entries = []
        for j, entry in enumerate(parser.items(item, "snat_entries")):
            at = f"{where}.snat_entries[{j}]"
            source_vsw = ""
            if "source_vswitch" in entry:
                found = _find_vswitch(parser, at, str(entry["source_vswitch"]), vswitches)
                source_vsw, cidr = found.id, found.cidr
            else:
                cidr = parser.text(entry, at, "source_cidr")
                _network(parser, at, cidr)
            snat_ip = parser.text(entry, at, "snat_ip")
            entries.append(SnatEntry(parser.new_id(entry, at, "snat", j * 1000 + i), cidr, source_vsw, snat_ip))
        result.append(NatGateway(nat_id, vsw.vpc_id, vsw.id, table_id, tuple(entries), str(item.get("name", "")),
                                 bool(item.get("default_route", True))))
    return tuple(result)


NEXT_HOP_TYPES = {"ngw-": "NatGateway", "i-": "Instance", "eni-": "NetworkInterface"}


def _route_tables(
    parser: _Parser, data: Mapping[str, Any], vpcs: Sequence[Vpc], vswitches: Sequence[VSwitch],
    nats: Sequence[NatGateway],
) -> tuple[RouteTable, ...]:
    """Custom route tables: `{id, vpc, name, vswitches: [...], routes: [{destination, next_hop}]}`."""
    result: list[RouteTable] = []
    bound: set[str] = set()
    for i, item in enumerate(parser.items(data, "route_tables")):
        where = f"route_tables[{i}]"
        vpc = _pick_vpc(parser, item, where, vpcs)
        members = []
        for ref in item.get("vswitches") or []:
            vsw = _find_vswitch(parser, where, str(ref), vswitches)
            if vsw.vpc_id != vpc.id or vsw.id in bound:
                raise parser.fail(where, f"{vsw.id} is in another VPC or already bound to a route table",
                                  "bind each vSwitch of the table's VPC to one custom route table at most")
            bound.add(vsw.id)
            members.append(vsw.id)
        routes = []
        for j, route in enumerate(parser.items(item, "routes")):
            at = f"{where}.routes[{j}]"
            destination = parser.text(route, at, "destination")
            _network(parser, at, destination)
            hop = parser.text(route, at, "next_hop")
            kind = next((v for k, v in NEXT_HOP_TYPES.items() if hop.startswith(k)), None)
            if kind is None or (kind == "NatGateway" and hop not in {n.id for n in nats}):
                raise parser.fail(at, f"unknown next hop {hop!r}", "name a NAT gateway (ngw-...), instance or ENI")
            routes.append(RouteEntry(destination, hop, kind))
        result.append(RouteTable(parser.new_id(item, where, "vtb", i), vpc.id, tuple(members), tuple(routes),
                                 str(item.get("name", ""))))
    return tuple(result)


EIP_INSTANCE_TYPES = {"i-": "EcsInstance", "ngw-": "Nat", "eni-": "NetworkInterface"}


def _eips(
    parser: _Parser, data: Mapping[str, Any], instances: Sequence[Instance], nats: Sequence[NatGateway]
) -> tuple[Eip, ...]:
    known = {x.id for x in instances} | {n.id for n in nats} | {x.primary_eni_id for x in instances}
    result = []
    for i, item in enumerate(parser.items(data, "eips")):
        where = f"eips[{i}]"
        ip = parser.text(item, where, "ip")
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise parser.fail(where, f"{ip!r} is not an IPv4 address", "e.g. ip: 203.0.113.10") from None
        target = str(item.get("instance", ""))
        kind = ""
        if target:
            if target not in known:
                raise parser.fail(where, f"unknown instance {target!r}", "name an instance or NAT gateway id")
            kind = next(v for k, v in EIP_INSTANCE_TYPES.items() if target.startswith(k))
        result.append(Eip(parser.new_id(item, where, "eip", i), ip, target, kind, int(item.get("bandwidth", 5))))
    return tuple(result)


def _faults(parser: _Parser, data: Mapping[str, Any]) -> tuple[dict[str, FaultSpec], int | None]:
    raw = data.get("faults") or {}
    if not isinstance(raw, Mapping):
        raise parser.fail("faults", "must be a mapping", "e.g. faults: {seed: 1, actions: {'*': {latency_ms: 10}}}")
    seed = raw.get("seed")
    actions = raw.get("actions") or {}
    if not isinstance(actions, Mapping):
        raise parser.fail("faults.actions", "must map action names to fault specs", "e.g. actions: {'*': {qps: 10}}")
    specs = {}
    for action, spec in actions.items():
        try:
            specs[str(action)] = parse_fault_spec(spec)
        except ValueError as exc:
            raise parser.fail(f"faults.actions.{action}", str(exc),
                              "keys: latency_ms, jitter_ms, qps, failure_ratio, failure_code, failure_status, "
                              "fail_after_commit") from None
    return specs, None if seed is None else int(seed)


def _settings(parser: _Parser, data: Mapping[str, Any]) -> Settings:
    raw = data.get("settings") or {}
    if not isinstance(raw, Mapping) or set(raw) - {"attach_delay_ms", "detach_delay_ms"}:
        raise parser.fail("settings", "only attach_delay_ms and detach_delay_ms are known", "e.g. attach_delay_ms: 200")
    try:
        settings = Settings(int(raw.get("attach_delay_ms", 0)), int(raw.get("detach_delay_ms", 0)))
    except (TypeError, ValueError):
        raise parser.fail("settings", "delays must be whole milliseconds", "e.g. attach_delay_ms: 200") from None
    if settings.attach_delay_ms < 0 or settings.detach_delay_ms < 0:
        raise parser.fail("settings", "delays cannot be negative", "use 0 for no delay")
    return settings
