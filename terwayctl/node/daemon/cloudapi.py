"""What the daemon uses of ECS and VPC, as Protocols (STYLE.md §6).

`terwayctl.cloud.client.CloudClient` satisfies `EniCloud` structurally; the daemon never imports
`terwayctl.cloud` (the import layers keep `node` and `cloud` independent). Errors are read
through `terwayctl.core.errors` (every cloud error is a `TerwayctlError`, quota errors a
`QuotaExceeded`) and their `code` attribute (the API error code).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from terwayctl.node.daemon.metrics import Metrics


class NetworkInterfaceView(Protocol):
    @property
    def network_interface_id(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def vswitch_id(self) -> str: ...

    @property
    def primary_ip(self) -> str: ...

    @property
    def mac_address(self) -> str: ...

    @property
    def instance_id(self) -> str: ...

    @property
    def private_ips(self) -> tuple[str, ...]: ...

    @property
    def security_group_ids(self) -> tuple[str, ...]: ...

    @property
    def tags(self) -> tuple[tuple[str, str], ...]: ...


class VSwitchView(Protocol):
    @property
    def vswitch_id(self) -> str: ...

    @property
    def zone_id(self) -> str: ...

    @property
    def cidr_block(self) -> str: ...


class InstanceTypeView(Protocol):
    @property
    def instance_type_id(self) -> str: ...

    @property
    def eni_quantity(self) -> int | None: ...

    @property
    def eni_private_ip_quantity(self) -> int | None: ...


class InstanceView(Protocol):
    @property
    def instance_id(self) -> str: ...

    @property
    def instance_type(self) -> str: ...

    @property
    def zone_id(self) -> str: ...

    @property
    def vswitch_id(self) -> str: ...


class EniCloud(Protocol):
    """The ECS/VPC calls of the pool, reconciliation and `ipam check`."""

    def describe_instances(self, *, instance_ids: Sequence[str] = ()) -> Sequence[InstanceView]: ...

    def describe_instance_types(self, instance_types: Sequence[str] = ()) -> Sequence[InstanceTypeView]: ...

    def describe_vswitches(self, *, vswitch_ids: Sequence[str] = ()) -> Sequence[VSwitchView]: ...

    def describe_network_interfaces(
        self,
        *,
        network_interface_ids: Sequence[str] = (),
        instance_id: str | None = None,
        vswitch_id: str | None = None,
        status: str | None = None,
    ) -> Sequence[NetworkInterfaceView]: ...

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
    ) -> NetworkInterfaceView: ...

    def attach_network_interface(self, network_interface_id: str, instance_id: str) -> None: ...

    def detach_network_interface(self, network_interface_id: str, instance_id: str) -> None: ...

    def delete_network_interface(self, network_interface_id: str) -> None: ...

    def assign_private_ip_addresses(
        self, network_interface_id: str, *, count: int = 0, addresses: Sequence[str] = ()
    ) -> list[str]: ...

    def unassign_private_ip_addresses(self, network_interface_id: str, addresses: Sequence[str]) -> None: ...


def error_code(exc: BaseException) -> str:
    """The API error code of a cloud error ('' for anything else)."""
    code = getattr(exc, "code", "")
    return code if isinstance(code, str) else ""


class MeteredCloud:
    """An `EniCloud` that counts every call (and every failure by code) into `Metrics`.

    AssignPrivateIpAddresses and UnassignPrivateIpAddresses are counted per API request (one per
    10 addresses), matching what the cloud sees.
    """

    def __init__(self, inner: EniCloud, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def _record(self, action: str, started: float, exc: BaseException | None, calls: int = 1) -> None:
        self._metrics.api_call(action, time.monotonic() - started, error_code(exc) if exc else None, calls)

    def describe_instances(self, *, instance_ids: Sequence[str] = ()) -> Sequence[InstanceView]:
        started = time.monotonic()
        try:
            result = self._inner.describe_instances(instance_ids=instance_ids)
        except Exception as exc:
            self._record("DescribeInstances", started, exc)
            raise
        self._record("DescribeInstances", started, None)
        return result

    def describe_instance_types(self, instance_types: Sequence[str] = ()) -> Sequence[InstanceTypeView]:
        started = time.monotonic()
        try:
            result = self._inner.describe_instance_types(instance_types)
        except Exception as exc:
            self._record("DescribeInstanceTypes", started, exc)
            raise
        self._record("DescribeInstanceTypes", started, None)
        return result

    def describe_vswitches(self, *, vswitch_ids: Sequence[str] = ()) -> Sequence[VSwitchView]:
        started = time.monotonic()
        try:
            result = self._inner.describe_vswitches(vswitch_ids=vswitch_ids)
        except Exception as exc:
            self._record("DescribeVSwitches", started, exc)
            raise
        self._record("DescribeVSwitches", started, None)
        return result

    def describe_network_interfaces(
        self,
        *,
        network_interface_ids: Sequence[str] = (),
        instance_id: str | None = None,
        vswitch_id: str | None = None,
        status: str | None = None,
    ) -> Sequence[NetworkInterfaceView]:
        started = time.monotonic()
        try:
            result = self._inner.describe_network_interfaces(
                network_interface_ids=network_interface_ids, instance_id=instance_id,
                vswitch_id=vswitch_id, status=status,
            )
        except Exception as exc:
            self._record("DescribeNetworkInterfaces", started, exc)
            raise
        self._record("DescribeNetworkInterfaces", started, None)
        return result

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
    ) -> NetworkInterfaceView:
        started = time.monotonic()
        try:
            result = self._inner.create_network_interface(
                vswitch_id=vswitch_id, security_group_ids=security_group_ids,
                secondary_ip_count=secondary_ip_count, name=name, description=description, tags=tags,
                client_token=client_token,
            )
        except Exception as exc:
            self._record("CreateNetworkInterface", started, exc)
            raise
        self._record("CreateNetworkInterface", started, None)
        return result

    def attach_network_interface(self, network_interface_id: str, instance_id: str) -> None:
        started = time.monotonic()
        try:
            self._inner.attach_network_interface(network_interface_id, instance_id)
        except Exception as exc:
            self._record("AttachNetworkInterface", started, exc)
            raise
        self._record("AttachNetworkInterface", started, None)

    def detach_network_interface(self, network_interface_id: str, instance_id: str) -> None:
        started = time.monotonic()
        try:
            self._inner.detach_network_interface(network_interface_id, instance_id)
        except Exception as exc:
            self._record("DetachNetworkInterface", started, exc)
            raise
        self._record("DetachNetworkInterface", started, None)

    def delete_network_interface(self, network_interface_id: str) -> None:
        started = time.monotonic()
        try:
            self._inner.delete_network_interface(network_interface_id)
        except Exception as exc:
            self._record("DeleteNetworkInterface", started, exc)
            raise
        self._record("DeleteNetworkInterface", started, None)

    def assign_private_ip_addresses(
        self, network_interface_id: str, *, count: int = 0, addresses: Sequence[str] = ()
    ) -> list[str]:
        calls = -(-(count or len(addresses)) // 10)
        started = time.monotonic()
        try:
            result = self._inner.assign_private_ip_addresses(network_interface_id, count=count, addresses=addresses)
        except Exception as exc:
            self._record("AssignPrivateIpAddresses", started, exc, calls)
            raise
        self._record("AssignPrivateIpAddresses", started, None, calls)
        return result

    def unassign_private_ip_addresses(self, network_interface_id: str, addresses: Sequence[str]) -> None:
        calls = -(-len(addresses) // 10)
        started = time.monotonic()
        try:
            self._inner.unassign_private_ip_addresses(network_interface_id, addresses)
        except Exception as exc:
            self._record("UnassignPrivateIpAddresses", started, exc, calls)
            raise
        self._record("UnassignPrivateIpAddresses", started, None, calls)
