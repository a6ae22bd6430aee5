"""Public data of the datapath: what to set up (`PodNetwork`), what was set up (`PodAttachment`),
and what a node namespace holds (`NodeInspection`). All small frozen dataclasses."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address

from terwayctl.core.bandwidth import PodBandwidth
from terwayctl.core.errors import InvalidInput, TerwayctlError

#: ``to <podIP> lookup main`` (upstream: toContainerPriority)
TO_POD_PRIORITY = 512
#: ``from <podIP> lookup <ENI table>`` (upstream: fromContainerPriority)
FROM_POD_PRIORITY = 2048
#: ENI route table = this + the ENI's ifindex (upstream: GetRouteTableID)
ENI_TABLE_BASE = 1000
#: The pod's link-local next hop; answered by a permanent neighbour entry for the host veth MAC.
POD_GATEWAY = IPv4Address("169.254.1.1")
HOST_VETH_PREFIX = "cali"
IFNAMSIZ = 15


class DatapathError(TerwayctlError):
    """The kernel refused a datapath change, or the node is not in the expected state."""


class DatapathMode(enum.StrEnum):
    VETH = "veth"
    """shared ENI, veth pair + policy routing (the default)"""
    IPVLAN = "ipvlan"
    """shared ENI, ipvlan L2 slave of the ENI (falls back to veth where the kernel lacks ipvlan)"""
    EXCLUSIVE_ENI = "exclusive-eni"
    """the ENI itself moves into the pod namespace"""


def host_veth_name(namespace: str, name: str, ifname: str = "eth0") -> str:
    """``cali`` + the first 11 hex chars of sha1("<namespace>.<name>"), as upstream Terway names it
    (pkg/link VethNameForPod); an interface other than eth0 is appended to the hashed string."""
    suffix = "" if ifname == "eth0" else ifname
    digest = hashlib.sha1(f"{namespace}.{name}{suffix}".encode(), usedforsecurity=False).hexdigest()
    return f"{HOST_VETH_PREFIX}{digest[:11]}"


def eni_table_id(eni_ifindex: int) -> int:
    """The policy route table of an ENI: 1000 + its ifindex."""
    return ENI_TABLE_BASE + eni_ifindex


def _check_ifname(what: str, value: str) -> None:
    if not value or len(value) > IFNAMSIZ or "/" in value or value.strip() != value:
        raise InvalidInput(f"invalid {what} {value!r}: 1-{IFNAMSIZ} characters, no '/' or spaces")


@dataclass(frozen=True)
class PodNetwork:
    """Everything the datapath needs to attach one pod.

    `prefix` and `gateway` are the vSwitch's; in veth/ipvlan mode the pod gets `pod_ip`/32, in
    exclusive-ENI mode `pod_ip`/`prefix`. `eni_table` defaults to 1000 + the ENI's ifindex.
    Bandwidth is in bytes per second (see terwayctl.core.bandwidth).
    """

    pod_ip: IPv4Address
    prefix: int
    gateway: IPv4Address
    eni_ifname: str
    host_ifname: str
    mtu: int = 1500
    eni_table: int | None = None
    mode: DatapathMode = DatapathMode.VETH
    bandwidth: PodBandwidth = field(default_factory=PodBandwidth)
    host_routes: tuple[IPv4Network, ...] = ()
    """exclusive ENI: what the pod reaches through a veth to the node (the service CIDR, the node's
    own IP) rather than through its ENI; empty: no such veth (kernel/datapath/svcveth.py)"""
    service_veth: str | None = None
    """exclusive ENI: the node-side name of that veth (``cali`` + hash, as a veth pod's)"""
    host_src: IPv4Address | None = None
    """exclusive ENI: the preferred source of the node's route to the pod through that veth (the
    node's IP; without it the kernel may pick any address of the node, e.g. one on lo)"""
    pod_ip6: IPv6Address | None = None
    """dual stack (veth mode): the pod's IPv6 address (/128); None: IPv4 only (kernel/datapath/v6.py)"""
    gateway6: IPv6Address | None = None
    """dual stack: the vSwitch's IPv6 gateway (the ENI table's IPv6 default route)"""

    def __post_init__(self) -> None:
        if not 0 < self.prefix <= 32:
            raise InvalidInput(f"invalid prefix length {self.prefix}")
        if not 68 <= self.mtu <= 65535:
            raise InvalidInput(f"invalid MTU {self.mtu}")
        _check_ifname("ENI interface name", self.eni_ifname)
        _check_ifname("host interface name", self.host_ifname)
        if self.service_veth is not None:
            _check_ifname("service veth name", self.service_veth)
        if (self.pod_ip6 is None) != (self.gateway6 is None):
            raise InvalidInput("a dual-stack pod needs both its IPv6 address and the IPv6 gateway")
        if self.pod_ip6 is not None and self.mode is not DatapathMode.VETH:
            raise InvalidInput(f"dual stack is built for veth mode only, not {self.mode}")

    @classmethod
    def for_pod(
        cls,
        namespace: str,
        name: str,
        *,
        pod_ip: IPv4Address | str,
        prefix: int,
        gateway: IPv4Address | str,
        eni_ifname: str,
        ifname: str = "eth0",
        mtu: int = 1500,
        eni_table: int | None = None,
        mode: DatapathMode = DatapathMode.VETH,
        bandwidth: PodBandwidth | None = None,
        pod_ip6: IPv6Address | str | None = None,
        gateway6: IPv6Address | str | None = None,
    ) -> PodNetwork:
        """A spec whose host veth is named from the pod, as upstream names it."""
        return cls(
            pod_ip=IPv4Address(pod_ip),
            prefix=prefix,
            gateway=IPv4Address(gateway),
            eni_ifname=eni_ifname,
            host_ifname=host_veth_name(namespace, name, ifname),
            mtu=mtu,
            eni_table=eni_table,
            mode=mode,
            bandwidth=bandwidth or PodBandwidth(),
            pod_ip6=IPv6Address(pod_ip6) if pod_ip6 is not None else None,
            gateway6=IPv6Address(gateway6) if gateway6 is not None else None,
        )


@dataclass(frozen=True)
class PodAttachment:
    """What `setup_pod` built. `mode` is the mode in effect (veth after an ipvlan fallback);
    host fields are None in exclusive-ENI mode, `eni_table` None outside veth mode."""

    mode: DatapathMode
    pod_ifname: str
    pod_ip: IPv4Address
    pod_mac: str
    host_ifname: str | None
    host_mac: str | None
    eni_ifname: str
    eni_table: int | None


@dataclass(frozen=True)
class PodVeth:
    """A host-side pod veth (``cali*``) and the pod IPs routed to it in the main table."""

    name: str
    ifindex: int
    mac: str
    pod_ips: tuple[IPv4Address, ...]


@dataclass(frozen=True)
class PolicyRule:
    """An ip rule at priority 512 (to pod) or 2048 (from pod)."""

    priority: int
    table: int
    src: IPv4Address | None
    dst: IPv4Address | None


@dataclass(frozen=True)
class EniTable:
    """A route table >= 1000 and its default route."""

    table: int
    device: str | None
    gateway: IPv4Address | None


@dataclass(frozen=True)
class NodeInspection:
    """The pod datapath state of a node namespace, for store-vs-kernel comparisons."""

    veths: tuple[PodVeth, ...]
    rules: tuple[PolicyRule, ...]
    eni_tables: tuple[EniTable, ...]

    def pod_ips(self) -> frozenset[IPv4Address]:
        """Pod IPs that have a from-pod rule."""
        return frozenset(r.src for r in self.rules if r.priority == FROM_POD_PRIORITY and r.src is not None)
