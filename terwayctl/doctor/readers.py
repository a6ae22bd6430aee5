"""The narrow readers doctor's checks use (each declares only the reads it makes), and the small records they return.

- `CloudReader`: the seven ECS/VPC reads; `terwayctl.cloud.client.CloudClient` satisfies it as is.
- `KubeReader`: nodes, pods, events, ConfigMaps and the Terway DaemonSet; `doctor.sources.KubeSource`
  implements it over `terwayctl.kube`.
- `NodeReader`: sysctls, firewall dumps, listening docker-proxies, the pod datapath and the daemon,
  as seen from one network namespace; `doctor.system.SystemNode` implements it.
- `Prober`: bounded reachability attempts from a namespace; `doctor.system.SystemProber`.

Unit tests hand the checks small fakes of these; the real ones are tested end to end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from terwayctl.cloud.models import (
    Eip,
    Instance,
    InstanceTypeInfo,
    NatGateway,
    NetworkInterface,
    RouteEntry,
    RouteTable,
    SnatEntry,
    VSwitch,
)
from terwayctl.kube.reads import EventInfo, PodInfo


class CloudReader(Protocol):
    @property
    def region(self) -> str: ...

    def describe_vswitches(
        self, *, vpc_id: str | None = None, vswitch_ids: Sequence[str] = (), zone_id: str | None = None
    ) -> list[VSwitch]: ...

    def describe_nat_gateways(
        self, *, vpc_id: str | None = None, nat_gateway_id: str | None = None
    ) -> list[NatGateway]: ...

    def describe_snat_table_entries(
        self, snat_table_id: str, *, source_vswitch_id: str | None = None
    ) -> list[SnatEntry]: ...

    def describe_eip_addresses(
        self, *, allocation_ids: Sequence[str] = (), associated_instance_id: str | None = None
    ) -> list[Eip]: ...

    def describe_instances(
        self, *, instance_ids: Sequence[str] = (), vpc_id: str | None = None, zone_id: str | None = None
    ) -> list[Instance]: ...

    def describe_network_interfaces(
        self,
        *,
        network_interface_ids: Sequence[str] = (),
        instance_id: str | None = None,
        vswitch_id: str | None = None,
        vpc_id: str | None = None,
        status: str | None = None,
    ) -> list[NetworkInterface]: ...

    def describe_instance_types(self, instance_types: Sequence[str] = ()) -> list[InstanceTypeInfo]: ...

    def describe_route_table_list(
        self, *, vpc_id: str | None = None, route_table_id: str | None = None
    ) -> list[RouteTable]: ...

    def describe_route_entry_list(
        self, route_table_id: str, *, destination_cidr_block: str | None = None
    ) -> list[RouteEntry]: ...


# --- cluster -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterNode:
    name: str
    instance_id: str | None
    """From spec.providerID (``<region>.<instance id>``, as ACK sets it)."""
    instance_type: str | None
    zone: str | None
    max_pods: int | None
    allocatable_pods: int | None
    terway_config: str | None


@dataclass(frozen=True)
class DaemonSetState:
    name: str
    namespace: str
    mode: str
    desired: int
    ready: int
    updated: int
    available: int


class KubeReader(Protocol):
    @property
    def namespace(self) -> str: ...

    def nodes(self) -> list[ClusterNode]: ...

    def pods(self) -> list[PodInfo]: ...

    def events(self) -> list[EventInfo]:
        """Events of every namespace."""
        ...

    def event_times(self) -> Mapping[tuple[str, str], str]:
        """(namespace, name) -> the event's last time (RFC 3339), where it has one."""
        ...

    def config_map(self, name: str) -> Mapping[str, str] | None:
        """The data of a ConfigMap in `namespace`, None when it does not exist."""
        ...

    def terway_daemonset(self) -> DaemonSetState | None: ...


@dataclass(frozen=True)
class PodLog:
    """The recent log of one Terway pod's daemon container, read through the API server."""

    node: str
    namespace: str
    pod: str
    container: str
    lines: tuple[str, ...] = ()
    error: str = ""
    """Why the log could not be read ('' when it was)."""


@runtime_checkable
class TerwayLogReader(Protocol):
    """A `KubeReader` that can also read the Terway pods' logs (`KubeSource` can; small fakes need not)."""

    def terway_logs(self, since_seconds: int, tail_lines: int) -> list[PodLog]:
        """The daemon container's log of every pod of the Terway DaemonSet (none without the DaemonSet)."""
        ...


# --- node ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedPort:
    """A port published on the node outside Kubernetes (docker DNAT rule or docker-proxy)."""

    protocol: str
    port: int
    destination: str
    source: str
    """Where it was seen, e.g. ``nft ip nat DOCKER`` or ``docker-proxy pid 1234``."""
    dnat: bool = False
    """A DNAT rule (the kernel rewrites the destination), not a userland proxy."""
    hooked: bool = True
    """For a DNAT rule: its chain is reached from the nat PREROUTING hook (else it applies to nothing)."""


@dataclass(frozen=True)
class DatapathState:
    """The pod datapath of the node namespace (from terwayctl.kernel.datapath.inspect_node)."""

    veths: Mapping[str, tuple[str, ...]]
    """host veth name -> pod IPs routed to it in the main table."""
    to_pod_rules: frozenset[str]
    """Destinations of the priority-512 ``to <podIP> lookup main`` rules."""
    from_pod_rules: Mapping[str, int]
    """Sources of the priority-2048 ``from <podIP> lookup <table>`` rules -> table."""
    eni_tables: Mapping[int, str | None]
    """ENI route tables (>= 1000) -> the device of their default route."""


@dataclass(frozen=True)
class DaemonAllocation:
    ip: str
    pod: str
    eni_id: str = ""


@dataclass(frozen=True)
class DaemonStatus:
    ready: bool
    mode: str = ""
    allocations: tuple[DaemonAllocation, ...] | None = None
    """None when the daemon does not expose its allocations."""
    detail: Mapping[str, Any] = field(default_factory=dict)


class NodeReader(Protocol):
    @property
    def netns(self) -> str:
        """The namespace looked at, for evidence (``current`` or a name / path)."""
        ...

    def sysctl(self, key: str) -> str | None:
        """A sysctl in the namespace; None when it does not exist (e.g. no such interface)."""
        ...

    def nft_ruleset(self) -> list[dict[str, Any]] | None:
        """`nft -j list ruleset` objects; None when nft is not installed. CheckSkipped when not allowed."""
        ...

    def iptables_legacy_save(self) -> str | None:
        """`iptables-legacy-save` when legacy tables exist in the namespace, else None."""
        ...

    def docker_proxies(self) -> list[PublishedPort]:
        """docker-proxy processes listening on TCP in the namespace."""
        ...

    def datapath(self) -> DatapathState: ...

    def daemon_status(self, socket_path: str, timeout: float) -> DaemonStatus:
        """Ask the daemon; raises DaemonNotAnswering."""
        ...

    def ipvlan_supported(self) -> bool: ...

    def kernel_release(self) -> str: ...


class DaemonNotAnswering(Exception):
    def __init__(self, reason: str, *, missing: bool = False, not_socket: bool = False, stale: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing
        """Nothing exists at the socket path."""
        self.not_socket = not_socket
        """Something that is not a socket (a file, a directory) sits at the path."""
        self.stale = stale
        """A socket file nobody listens on (connection refused)."""


# --- probes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    host: str
    port: int | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host


@dataclass(frozen=True)
class Attempt:
    """One bounded reachability attempt."""

    where: str
    """The namespace it ran from, e.g. ``node`` or ``twdoctor-1a2b3c (source 169.254.199.2)``."""
    reached: bool
    how: str
    """``tcp connect`` or ``icmp echo``."""
    detail: str
    """``connected in 3 ms``, ``no route to host``, ``timed out after 2s``, ..."""
    route: str | None = None
    """``ip route get`` output from that namespace; None when there is no route."""


class Prober(Protocol):
    def from_node(self, target: Target, timeout: float) -> Attempt: ...

    def from_pod(self, target: Target, timeout: float) -> Attempt:
        """From --probe-from, or from a temporary namespace that is always removed."""
        ...
