"""The extension point for the node datapath: called after an ENI is attached to or detached from an instance.

The server calls the hook after the state change is committed: on AttachNetworkInterface once the
ENI is InUse (after the attach delay, if any), on DetachNetworkInterface once it is Available again,
and on Assign/UnassignPrivateIpAddresses of an attached ENI (on_ips_changed, with the new addresses).
A hook runs on a server thread; it must not block for long and must not call the emulator's API
synchronously from inside the call. Exceptions from a hook are logged and swallowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class EniInfo:
    """What a datapath needs to create the interface: ids, MAC, addresses and the vSwitch gateway."""

    eni_id: str
    mac: str
    primary_ip: str
    private_ips: tuple[str, ...]
    vswitch_id: str
    vswitch_cidr: str
    gateway: str
    vpc_id: str
    zone_id: str
    ipv6_ips: tuple[str, ...] = ()
    ipv6_cidr: str = ""
    ipv6_gateway: str = ""
    ipv6_internet: tuple[str, ...] = ()  # the IPv6 addresses with internet bandwidth (the VPC's IPv6 gateway)


class EniHook(Protocol):
    def on_attach(self, instance_id: str, eni: EniInfo) -> None: ...

    def on_detach(self, instance_id: str, eni: EniInfo) -> None: ...

    def on_ips_changed(self, instance_id: str, eni: EniInfo) -> None: ...


class NoopEniHook:
    """The default: nothing happens on the host."""

    def on_attach(self, instance_id: str, eni: EniInfo) -> None:
        return None

    def on_detach(self, instance_id: str, eni: EniInfo) -> None:
        return None

    def on_ips_changed(self, instance_id: str, eni: EniInfo) -> None:
        return None


@dataclass(frozen=True)
class HookEvent:
    kind: str  # "attach" | "detach" | "ips"
    instance_id: str
    eni: EniInfo
