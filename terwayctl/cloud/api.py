"""Narrow interfaces of what consumers use of ECS and VPC.

`terwayctl.cloud.client.CloudClient` satisfies all of them; consumers type their parameters with
the smallest Protocol that covers their calls, so their logic can be unit-tested with a small
in-memory fake (the real client is tested end to end against the emulator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from terwayctl.cloud.client import RequestObserver

from terwayctl.cloud.models import (
    Eip,
    Instance,
    InstanceTypeInfo,
    NatGateway,
    NetworkInterface,
    RouteEntry,
    RouteTable,
    SnatEntry,
    Vpc,
    VSwitch,
)


class InstanceTypeSource(Protocol):
    """What the catalog refresh and `capacity --live` need."""

    @property
    def region(self) -> str: ...

    def describe_instance_types(self, instance_types: Sequence[str] = ()) -> list[InstanceTypeInfo]: ...


class VpcLayoutReader(Protocol):
    """What `plan --live --vpc-id` needs."""

    def describe_vpcs(self, *, vpc_ids: Sequence[str] = ()) -> list[Vpc]: ...

    def describe_vswitches(
        self, *, vpc_id: str | None = None, vswitch_ids: Sequence[str] = (), zone_id: str | None = None
    ) -> list[VSwitch]: ...


class EniApi(Protocol):
    """ENI and secondary-IP management (the node daemon's pool)."""

    def describe_network_interfaces(
        self,
        *,
        network_interface_ids: Sequence[str] = (),
        instance_id: str | None = None,
        vswitch_id: str | None = None,
        vpc_id: str | None = None,
        status: str | None = None,
    ) -> list[NetworkInterface]: ...

    def create_network_interface(
        self,
        *,
        vswitch_id: str,
        security_group_ids: Sequence[str],
        secondary_ip_count: int = 0,
        name: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        client_token: str | None = None,
    ) -> NetworkInterface: ...

    def attach_network_interface(self, network_interface_id: str, instance_id: str) -> None: ...

    def detach_network_interface(self, network_interface_id: str, instance_id: str) -> None: ...

    def delete_network_interface(self, network_interface_id: str) -> None: ...

    def assign_private_ip_addresses(
        self,
        network_interface_id: str,
        *,
        count: int = 0,
        addresses: Sequence[str] = (),
        client_token: str | None = None,
    ) -> list[str]: ...

    def unassign_private_ip_addresses(self, network_interface_id: str, addresses: Sequence[str]) -> None: ...


class Ipv6EniApi(Protocol):
    """IPv6 addresses of ENIs (a dual-stack node's pool); a separate Protocol so IPv4-only fakes
    of `EniApi` stay complete."""

    def assign_ipv6_addresses(
        self,
        network_interface_id: str,
        *,
        count: int = 0,
        addresses: Sequence[str] = (),
        client_token: str | None = None,
    ) -> list[str]: ...

    def unassign_ipv6_addresses(self, network_interface_id: str, addresses: Sequence[str]) -> None: ...


class EcsApi(InstanceTypeSource, EniApi, Protocol):
    """Every ECS call terwayctl makes."""

    def describe_instances(
        self, *, instance_ids: Sequence[str] = (), vpc_id: str | None = None, zone_id: str | None = None
    ) -> list[Instance]: ...


class NatReader(Protocol):
    """The NAT gateways of a VPC and their SNAT entries."""

    def describe_nat_gateways(
        self, *, vpc_id: str | None = None, nat_gateway_id: str | None = None
    ) -> list[NatGateway]: ...

    def describe_snat_table_entries(
        self, snat_table_id: str, *, source_vswitch_id: str | None = None
    ) -> list[SnatEntry]: ...


class VpcApi(VpcLayoutReader, NatReader, Protocol):
    """Every VPC call terwayctl makes."""

    def describe_eip_addresses(
        self, *, allocation_ids: Sequence[str] = (), associated_instance_id: str | None = None
    ) -> list[Eip]: ...


class OutboundReader(VpcLayoutReader, NatReader, Protocol):
    """What `vswitch add` reads to decide whether pods on a vSwitch reach the internet."""

    def describe_route_table_list(
        self, *, vpc_id: str | None = None, route_table_id: str | None = None
    ) -> list[RouteTable]: ...

    def describe_route_entry_list(
        self, route_table_id: str, *, destination_cidr_block: str | None = None
    ) -> list[RouteEntry]: ...


class VSwitchWriter(OutboundReader, Protocol):
    """`vswitch add --create --snat`: the reads above plus CreateVSwitch and CreateSnatEntry."""

    def create_vswitch(
        self, *, vpc_id: str, zone_id: str, cidr_block: str, name: str | None = None,
        description: str | None = None, client_token: str | None = None,
    ) -> str: ...

    def create_snat_entry(
        self, snat_table_id: str, *, snat_ip: str, source_vswitch_id: str | None = None,
        source_cidr: str | None = None, client_token: str | None = None,
    ) -> str: ...


class Observable(Protocol):
    """A client that reports every API request (action, seconds, error code) to observers."""

    def observe(self, observer: RequestObserver) -> None: ...


class CloudApi(EcsApi, VpcApi, Protocol):
    """Both products, as one client."""
