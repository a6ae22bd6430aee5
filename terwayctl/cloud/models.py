"""Typed results of the ECS and VPC calls: small frozen dataclasses, parsed from the API's JSON.

Field names follow the API (snake_case); nesting follows the real replies, e.g.
``{"VSwitches": {"VSwitch": [...]}}``. Parsers tolerate missing optional fields (None / empty).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from terwayctl.core.catalog import InstanceType

Json = Mapping[str, Any]


@dataclass(frozen=True)
class InstanceTypeInfo:
    """One DescribeInstanceTypes entry (the fields terwayctl uses)."""

    instance_type_id: str
    family: str
    cpu_core_count: int | None
    memory_gib: float | None
    eni_quantity: int | None
    eni_private_ip_quantity: int | None
    eni_ipv6_quantity: int | None
    eni_total_quantity: int | None
    eni_trunk_supported: bool | None

    def to_instance_type(self) -> InstanceType:
        """The catalog record `terwayctl capacity` computes with."""
        return InstanceType(
            name=self.instance_type_id,
            family=self.family,
            vcpu=self.cpu_core_count,
            memory_gib=self.memory_gib,
            eni_quantity=self.eni_quantity,
            eni_private_ip_quantity=self.eni_private_ip_quantity,
            eni_ipv6_quantity=self.eni_ipv6_quantity,
            eni_total_quantity=self.eni_total_quantity,
            eni_trunk_supported=self.eni_trunk_supported,
        )


@dataclass(frozen=True)
class Instance:
    instance_id: str
    instance_type: str
    zone_id: str
    status: str
    vpc_id: str
    vswitch_id: str
    private_ips: tuple[str, ...]
    instance_name: str = ""
    network_interface_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class NetworkInterface:
    network_interface_id: str
    status: str
    type: str
    vpc_id: str
    vswitch_id: str
    zone_id: str
    primary_ip: str
    mac_address: str
    instance_id: str
    private_ips: tuple[str, ...]
    """All private IPv4 addresses, the primary first."""
    ipv6_addresses: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    tags: tuple[tuple[str, str], ...] = ()
    creation_time: datetime | None = None
    """CreationTime (timezone-aware, UTC when the reply names no zone); None when the reply has none."""

    @property
    def secondary_ips(self) -> tuple[str, ...]:
        return tuple(ip for ip in self.private_ips if ip != self.primary_ip)


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    cidr_block: str
    status: str
    vpc_name: str
    vswitch_ids: tuple[str, ...]
    secondary_cidr_blocks: tuple[str, ...] = ()


@dataclass(frozen=True)
class VSwitch:
    vswitch_id: str
    vpc_id: str
    zone_id: str
    cidr_block: str
    available_ip_count: int | None
    status: str
    vswitch_name: str = ""
    route_table_id: str = ""
    route_table_type: str = ""
    """System or Custom: the route table the vSwitch uses."""
    ipv6_cidr_block: str = ""
    """The vSwitch's IPv6 /64; "" when IPv6 is not enabled on it."""


@dataclass(frozen=True)
class RouteTable:
    route_table_id: str
    vpc_id: str
    route_table_type: str
    """System or Custom."""
    vswitch_ids: tuple[str, ...]
    name: str = ""


@dataclass(frozen=True)
class RouteEntry:
    route_entry_id: str
    route_table_id: str
    destination_cidr_block: str
    status: str
    type: str
    next_hops: tuple[tuple[str, str], ...]
    """(NextHopType, NextHopId) pairs; one for an ordinary route, several for ECMP."""


@dataclass(frozen=True)
class NatGateway:
    nat_gateway_id: str
    vpc_id: str
    status: str
    name: str
    snat_table_ids: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    vswitch_id: str = ""


@dataclass(frozen=True)
class SnatEntry:
    snat_entry_id: str
    snat_table_id: str
    source_vswitch_id: str
    source_cidr: str
    snat_ip: str
    status: str


@dataclass(frozen=True)
class Eip:
    allocation_id: str
    ip_address: str
    status: str
    instance_id: str
    instance_type: str
    bandwidth_mbps: int | None


def items(reply: Json, outer: str, inner: str) -> list[Json]:
    """``reply[outer][inner]`` as a list of objects (the API's wrapped-list shape)."""
    wrapper = reply.get(outer)
    value = wrapper.get(inner) if isinstance(wrapper, Mapping) else wrapper
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Mapping)]
    return []


def _strings(obj: Json, outer: str, inner: str) -> tuple[str, ...]:
    wrapper = obj.get(outer)
    value: object = wrapper.get(inner) if isinstance(wrapper, Mapping) else wrapper
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, Sequence):
        return tuple(str(v) for v in value if v not in (None, ""))
    return ()


def _str(obj: Json, key: str) -> str:
    value = obj.get(key)
    return "" if value is None else str(value)


def _int(obj: Json, key: str) -> int | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(obj: Json, key: str) -> float | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _time(obj: Json, key: str) -> datetime | None:
    """An API time (``2026-11-01T00:00:00Z``, ``2026-11-01T00:00Z``, with an offset) as an aware datetime."""
    text = _str(obj, key).strip()
    if not text:
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _bool(obj: Json, key: str) -> bool | None:
    value = obj.get(key)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def instance_type_from_api(obj: Json) -> InstanceTypeInfo:
    name = _str(obj, "InstanceTypeId")
    family = _str(obj, "InstanceTypeFamily") or _family_from_name(name)
    return InstanceTypeInfo(
        instance_type_id=name,
        family=family,
        cpu_core_count=_int(obj, "CpuCoreCount"),
        memory_gib=_float(obj, "MemorySize"),
        eni_quantity=_int(obj, "EniQuantity"),
        eni_private_ip_quantity=_int(obj, "EniPrivateIpAddressQuantity"),
        eni_ipv6_quantity=_int(obj, "EniIpv6AddressQuantity"),
        eni_total_quantity=_int(obj, "EniTotalQuantity"),
        eni_trunk_supported=_bool(obj, "EniTrunkSupported"),
    )


def _family_from_name(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) >= 3 else name


def instance_from_api(obj: Json) -> Instance:
    vpc = obj.get("VpcAttributes")
    vpc_attrs: Json = vpc if isinstance(vpc, Mapping) else {}
    enis = [_str(e, "NetworkInterfaceId") for e in items(obj, "NetworkInterfaces", "NetworkInterface")]
    return Instance(
        instance_id=_str(obj, "InstanceId"),
        instance_type=_str(obj, "InstanceType"),
        zone_id=_str(obj, "ZoneId"),
        status=_str(obj, "Status"),
        vpc_id=_str(vpc_attrs, "VpcId"),
        vswitch_id=_str(vpc_attrs, "VSwitchId"),
        private_ips=_strings(vpc_attrs, "PrivateIpAddress", "IpAddress"),
        instance_name=_str(obj, "InstanceName"),
        network_interface_ids=tuple(e for e in enis if e),
    )


def network_interface_from_api(obj: Json) -> NetworkInterface:
    primary = _str(obj, "PrivateIpAddress")
    ips = [_str(p, "PrivateIpAddress") for p in items(obj, "PrivateIpSets", "PrivateIpSet")]
    ordered = [primary] if primary else []
    ordered += [ip for ip in ips if ip and ip != primary]
    ipv6 = [_str(p, "Ipv6Address") for p in items(obj, "Ipv6Sets", "Ipv6Set")]
    tags = tuple((_str(t, "TagKey"), _str(t, "TagValue")) for t in items(obj, "Tags", "Tag"))
    return NetworkInterface(
        network_interface_id=_str(obj, "NetworkInterfaceId"),
        status=_str(obj, "Status"),
        type=_str(obj, "Type"),
        vpc_id=_str(obj, "VpcId"),
        vswitch_id=_str(obj, "VSwitchId"),
        zone_id=_str(obj, "ZoneId"),
        primary_ip=primary,
        mac_address=_str(obj, "MacAddress"),
        instance_id=_str(obj, "InstanceId"),
        private_ips=tuple(ordered),
        ipv6_addresses=tuple(ip for ip in ipv6 if ip),
        security_group_ids=_strings(obj, "SecurityGroupIds", "SecurityGroupId"),
        tags=tags,
        creation_time=_time(obj, "CreationTime"),
    )


def vpc_from_api(obj: Json) -> Vpc:
    return Vpc(
        vpc_id=_str(obj, "VpcId"),
        cidr_block=_str(obj, "CidrBlock"),
        status=_str(obj, "Status"),
        vpc_name=_str(obj, "VpcName"),
        vswitch_ids=_strings(obj, "VSwitchIds", "VSwitchId"),
        secondary_cidr_blocks=_strings(obj, "SecondaryCidrBlocks", "SecondaryCidrBlock"),
    )


def vswitch_from_api(obj: Json) -> VSwitch:
    route_table = obj.get("RouteTable")
    table: Json = route_table if isinstance(route_table, Mapping) else {}
    return VSwitch(
        vswitch_id=_str(obj, "VSwitchId"),
        vpc_id=_str(obj, "VpcId"),
        zone_id=_str(obj, "ZoneId"),
        cidr_block=_str(obj, "CidrBlock"),
        available_ip_count=_int(obj, "AvailableIpAddressCount"),
        status=_str(obj, "Status"),
        vswitch_name=_str(obj, "VSwitchName"),
        route_table_id=_str(table, "RouteTableId"),
        route_table_type=_str(table, "RouteTableType"),
        ipv6_cidr_block=_str(obj, "Ipv6CidrBlock"),
    )


def route_table_from_api(obj: Json) -> RouteTable:
    return RouteTable(
        route_table_id=_str(obj, "RouteTableId"),
        vpc_id=_str(obj, "VpcId"),
        route_table_type=_str(obj, "RouteTableType"),
        vswitch_ids=_strings(obj, "VSwitchIds", "VSwitchId"),
        name=_str(obj, "RouteTableName"),
    )


def route_entry_from_api(obj: Json) -> RouteEntry:
    hops = items(obj, "NextHops", "NextHop")
    pairs = tuple((_str(h, "NextHopType"), _str(h, "NextHopId")) for h in hops)
    if not pairs and _str(obj, "NextHopId"):
        pairs = ((_str(obj, "NextHopType"), _str(obj, "NextHopId")),)
    return RouteEntry(
        route_entry_id=_str(obj, "RouteEntryId"),
        route_table_id=_str(obj, "RouteTableId"),
        destination_cidr_block=_str(obj, "DestinationCidrBlock"),
        status=_str(obj, "Status"),
        type=_str(obj, "Type"),
        next_hops=pairs,
    )


def nat_gateway_from_api(obj: Json) -> NatGateway:
    ips = [_str(ip, "IpAddress") for ip in items(obj, "IpLists", "IpList")]
    private = obj.get("NatGatewayPrivateInfo")
    private_info: Json = private if isinstance(private, Mapping) else {}
    return NatGateway(
        nat_gateway_id=_str(obj, "NatGatewayId"),
        vpc_id=_str(obj, "VpcId"),
        status=_str(obj, "Status"),
        name=_str(obj, "Name"),
        snat_table_ids=_strings(obj, "SnatTableIds", "SnatTableId"),
        ip_addresses=tuple(ip for ip in ips if ip),
        vswitch_id=_str(private_info, "VswitchId") or _str(private_info, "VSwitchId"),
    )


def snat_entry_from_api(obj: Json) -> SnatEntry:
    return SnatEntry(
        snat_entry_id=_str(obj, "SnatEntryId"),
        snat_table_id=_str(obj, "SnatTableId"),
        source_vswitch_id=_str(obj, "SourceVSwitchId"),
        source_cidr=_str(obj, "SourceCIDR"),
        snat_ip=_str(obj, "SnatIp"),
        status=_str(obj, "Status"),
    )


def eip_from_api(obj: Json) -> Eip:
    return Eip(
        allocation_id=_str(obj, "AllocationId"),
        ip_address=_str(obj, "IpAddress"),
        status=_str(obj, "Status"),
        instance_id=_str(obj, "InstanceId"),
        instance_type=_str(obj, "InstanceType"),
        bandwidth_mbps=_int(obj, "Bandwidth"),
    )
