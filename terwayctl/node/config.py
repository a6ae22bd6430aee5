"""The daemon's configuration: eni_conf (pool sizes, vSwitches, security groups, ENI caps), the
node's identity, and where things live (socket, state, node namespace, metrics)."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terwayctl.core.eniconf import EniCaps, eni_caps_from_conf, parse_eni_conf_text
from terwayctl.core.errors import InvalidInput
from terwayctl.node.hostroutes import service_cidrs

DEFAULT_SOCKET = Path("/var/run/eni/eni.socket")
DEFAULT_STATE_DIR = Path("/var/lib/cni/terway")
STORE_FILE = "daemon.sqlite"
DEFAULT_MAX_POOL = 5
DEFAULT_MIN_POOL = 0
DEFAULT_SYNC_PERIOD = 120.0
DEFAULT_GC_PERIOD = 300.0
"""how often the daemon lists the node's pods to release the IPs of deleted ones"""
DEFAULT_GC_GRACE = 120.0
"""an allocation younger than this is never released by that GC (its pod may be being created)"""
DEFAULT_STATEFUL_IP_LEASE = 300.0
"""eni_conf stateful_ip_lease: how long a StatefulSet pod's IP is kept for it after its DEL (upstream's
fixed defaultStickTimeForSts, 5 minutes)"""
ENI_CREATOR_TAG = "terway.node"
"""Tag key on every ENI the daemon creates; the value is the instance id (for leak recovery)."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


class PoolMode(enum.StrEnum):
    ENIIP = "eniip"
    """shared ENI, many IPs per ENI (terway-eniip)"""
    ENI = "eni"
    """exclusive ENI: one whole ENI per pod (terway-eni)"""


class VirtualType(enum.StrEnum):
    """eni_conf `eniip_virtual_type`: how a pod of a shared ENI is attached (eniip mode only)."""

    VETH = "veth"
    """a veth pair and policy routing (the default)"""
    IPVLAN = "ipvlan"
    """an ipvlan L2 slave of the ENI, where the kernel has ipvlan (else veth, with the reason)"""


IP_STACKS_SUPPORTED = ("ipv4", "dual")
"""eni_conf `ip_stack` values this daemon runs (dual: where the node is eligible, node/ipv6.py);
`ipv6` (IPv6 only) is refused at start."""


@dataclass(frozen=True)
class NodeSettings:
    """The eni_conf keys besides the pool that the daemon honours (see docs/node.md)."""

    region_id: str | None = None
    credential_path: Path | None = None
    virtual_type: VirtualType = VirtualType.VETH
    ip_stack: str = "ipv4"


@dataclass(frozen=True)
class DatapathChoice:
    """The datapath mode the daemon attaches pods with (a `DatapathMode` value) and why."""

    mode: str
    reason: str
    fallback: bool = False
    """ipvlan was asked for but veth is used"""


@dataclass(frozen=True)
class NodeIdentity:
    """Who the node is in the cloud."""

    instance_id: str
    zone_id: str
    vswitch_id: str = ""
    """the instance's primary vSwitch (the fallback when eni_conf names none for the zone)"""
    instance_type: str = ""


@dataclass(frozen=True)
class PoolSettings:
    """The pool part of eni_conf, validated."""

    min_pool_size: int = DEFAULT_MIN_POOL
    max_pool_size: int = DEFAULT_MAX_POOL
    sync_period: float = DEFAULT_SYNC_PERIOD
    vswitches: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    vswitch_selection_policy: str = "ordered"
    security_groups: tuple[str, ...] = ()
    eni_tags: Mapping[str, str] = field(default_factory=dict)
    caps: EniCaps = field(default_factory=EniCaps)
    service_cidrs: tuple[str, ...] = ()
    """eni_conf service_cidr (IPv4): routed through a veth to the node from exclusive-ENI pods"""
    stateful_ip_lease: float = DEFAULT_STATEFUL_IP_LEASE
    """eni_conf stateful_ip_lease: seconds a StatefulSet pod's IP stays reserved after its DEL (0: off)"""
    stateful_kinds: frozenset[str] = frozenset({"statefulset"})
    """owner kinds (lower case) whose pods keep their IP: StatefulSet and eni_conf custom_stateful_workload_kinds"""

    def vswitches_for(self, zone: str, fallback: str = "") -> tuple[str, ...]:
        chosen = tuple(self.vswitches.get(zone, ()))
        return chosen or ((fallback,) if fallback else ())


@dataclass(frozen=True)
class DaemonConfig:
    """Everything `Daemon` needs besides the cloud client."""

    identity: NodeIdentity
    pool: PoolSettings = field(default_factory=PoolSettings)
    mode: PoolMode = PoolMode.ENIIP
    socket_path: Path = DEFAULT_SOCKET
    state_dir: Path = DEFAULT_STATE_DIR
    node_netns: str | None = None
    """the namespace the node's ENIs live in (a name in /run/netns or a path); None: the current one"""
    metrics: str | None = None
    """``127.0.0.1:PORT`` or ``unix:/path``; None: no metrics endpoint"""
    pod_annotations: Path | None = None
    """a JSON file ``{"<namespace>/<name>": {"<annotation>": "<value>"}}`` read on every ADD"""
    add_timeout: float = 25.0
    """how long an ADD waits for the pool before answering 11 (the plugin waits 30 s)"""
    mtu: int = 1500
    node_name: str = ""
    """this node's Node object in the API server (NODE_NAME); '' : no pod GC from the API server"""
    gc_period: float = DEFAULT_GC_PERIOD
    gc_grace: float = DEFAULT_GC_GRACE
    virtual_type: VirtualType = VirtualType.VETH
    """eni_conf eniip_virtual_type (eniip mode)"""
    region_id: str | None = None
    """eni_conf region_id (the region when --region is not given)"""
    credential_path: Path | None = None
    """eni_conf credential_path: the directory of the credential files (a mounted Secret)"""
    ip_stack: str = "ipv4"
    """eni_conf ip_stack: ipv4, or dual (an eligible node runs dual stack, node/ipv6.py)"""

    @property
    def store_path(self) -> Path:
        return self.state_dir / STORE_FILE

    @property
    def node_ns(self) -> str:
        """The node namespace as the datapath takes it (the current one: /proc/self/ns/net)."""
        return self.node_netns or "/proc/self/ns/net"


def parse_duration(value: object, what: str) -> float:
    """Go-style `30s`, `2m`, `500ms`, or a number of seconds."""
    if isinstance(value, bool):
        raise InvalidInput(f"{what} must be a duration such as 30s, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise InvalidInput(f"{what} must be a duration such as 30s, 2m or 500ms, got {value!r}")
        unit = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match[2] or "s"]
        seconds = float(match[1]) * unit
    if seconds <= 0:
        raise InvalidInput(f"{what} must be positive, got {value!r}")
    return seconds


def _int(conf: Mapping[str, Any], key: str, default: int) -> int:
    value = conf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"eni_conf: {key} must be a whole number >= 0, got {value!r}")
    return value


def pool_settings(conf: Mapping[str, Any], origin: str = "eni_conf") -> PoolSettings:
    """Read the pool settings from an eni_conf object; unknown keys are ignored."""
    min_pool = _int(conf, "min_pool_size", DEFAULT_MIN_POOL)
    max_pool = _int(conf, "max_pool_size", DEFAULT_MAX_POOL)
    if min_pool > max_pool:
        raise InvalidInput(
            f"{origin}: min_pool_size {min_pool} is larger than max_pool_size {max_pool}",
            hint="min_pool_size <= max_pool_size",
        )
    raw_vsw = conf.get("vswitches") or {}
    if not isinstance(raw_vsw, Mapping) or not all(
        isinstance(v, list) and all(isinstance(i, str) for i in v) for v in raw_vsw.values()
    ):
        raise InvalidInput(f"{origin}: vswitches must map zones to lists of vSwitch ids")
    policy = str(conf.get("vswitch_selection_policy") or "ordered")
    if policy not in ("ordered", "random"):
        raise InvalidInput(f"{origin}: vswitch_selection_policy must be random or ordered, got {policy!r}")
    groups: list[str] = []
    single = conf.get("security_group")
    if isinstance(single, str) and single:
        groups.append(single)
    many = conf.get("security_groups") or []
    if not isinstance(many, list) or not all(isinstance(g, str) for g in many):
        raise InvalidInput(f"{origin}: security_groups must be a list of ids")
    groups += [g for g in many if g not in groups]
    if len(groups) > 10:
        raise InvalidInput(f"{origin}: at most 10 security groups, got {len(groups)}")
    tags = conf.get("eni_tags") or {}
    if not isinstance(tags, Mapping):
        raise InvalidInput(f"{origin}: eni_tags must be an object")
    period = conf.get("ip_pool_sync_period")
    lease = conf.get("stateful_ip_lease")
    kinds = conf.get("custom_stateful_workload_kinds") or []
    if not isinstance(kinds, list) or not all(isinstance(k, str) and k.strip() for k in kinds):
        raise InvalidInput(f"{origin}: custom_stateful_workload_kinds must be a list of kinds, got {kinds!r}",
                           hint='e.g. ["CloneSet"]; StatefulSet is always one')
    return PoolSettings(
        min_pool_size=min_pool,
        max_pool_size=max_pool,
        sync_period=DEFAULT_SYNC_PERIOD if period in (None, "") else parse_duration(period, "ip_pool_sync_period"),
        vswitches={str(z): tuple(v) for z, v in raw_vsw.items()},
        vswitch_selection_policy=policy,
        security_groups=tuple(groups),
        eni_tags={str(k): str(v) for k, v in tags.items()},
        caps=eni_caps_from_conf(conf, origin),
        service_cidrs=service_cidrs(conf.get("service_cidr"), origin),
        stateful_ip_lease=DEFAULT_STATEFUL_IP_LEASE if lease is None else lease_duration(lease, origin),
        stateful_kinds=frozenset({"statefulset", *(k.strip().lower() for k in kinds)}),
    )


def lease_duration(value: object, origin: str = "eni_conf") -> float:
    """eni_conf stateful_ip_lease: a Go duration (`10m`, `90s`), at most 24h; `0`/`0s` turns leases off."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if (match is not None and float(match[1]) == 0) or (isinstance(value, int | float) and value == 0
                                                         and not isinstance(value, bool)):
        return 0.0
    seconds = parse_duration(value, f"{origin}: stateful_ip_lease")
    if seconds > 86400:
        raise InvalidInput(f"{origin}: stateful_ip_lease must be at most 24h, got {value!r}",
                           hint="a StatefulSet pod is usually back within minutes; 5m is the default")
    return seconds


def load_eni_conf(path: Path) -> dict[str, Any]:
    """eni_conf from a file: the JSON value itself, or a ConfigMap-style YAML/JSON with `eni_conf`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", hint="pass --config with the eni_conf file") from None
    conf = parse_eni_conf_text(text, str(path))
    inner = conf.get("data", {}).get("eni_conf") if isinstance(conf.get("data"), dict) else None
    if isinstance(inner, str):
        return parse_eni_conf_text(inner, f"{path}: data.eni_conf")
    return conf


_VIRTUAL_TYPES = {"veth": VirtualType.VETH, "ipvlan": VirtualType.IPVLAN}
"""accepted spellings, compared lower-case (upstream Terway writes Veth and IPVlan)"""


def node_settings(conf: Mapping[str, Any], origin: str = "eni_conf") -> NodeSettings:
    """Read and check region_id, credential_path, eniip_virtual_type and ip_stack of eni_conf.

    ip_stack dual is run where the node is eligible (IPv4 only elsewhere, with the reason: node/ipv6.py);
    ipv6 (IPv6 only) is refused: this daemon gives every pod an IPv4 address.
    """
    stack = conf.get("ip_stack")
    stack_text = "ipv4" if stack in (None, "") else str(stack).strip().lower()
    if stack_text not in IP_STACKS_SUPPORTED:
        if stack_text == "ipv6":
            raise InvalidInput(
                f"{origin}: ip_stack is ipv6, but this daemon gives every pod an IPv4 address (IPv6-only is not built)",
                hint="set ip_stack to ipv4 or dual in eni_conf",
            )
        raise InvalidInput(f"{origin}: ip_stack must be ipv4 or dual, got {stack!r}",
                           hint="set ip_stack to ipv4 or dual in eni_conf")
    if conf.get("enable_eni_trunking") not in (None, False, "", "false"):
        raise InvalidInput(
            f"{origin}: enable_eni_trunking is set, but this daemon has no trunk ENI (member ENIs for pods)",
            hint="remove enable_eni_trunking from eni_conf (or set it to false); pods share ENIs in eniip mode",
        )
    region = conf.get("region_id")
    if region is not None and not isinstance(region, str):
        raise InvalidInput(f"{origin}: region_id must be a string such as cn-hangzhou, got {region!r}",
                           hint='e.g. "region_id": "cn-hangzhou", or drop it to take the region from elsewhere')
    raw_path = conf.get("credential_path")
    if raw_path is not None and (not isinstance(raw_path, str) or not raw_path.strip()):
        raise InvalidInput(
            f"{origin}: credential_path must be the path of a directory, got {raw_path!r}",
            hint="the directory where the credentials Secret is mounted, e.g. /etc/terway/credentials",
        )
    raw_type = conf.get("eniip_virtual_type")
    if raw_type in (None, ""):
        virtual = VirtualType.VETH
    elif isinstance(raw_type, str) and raw_type.strip().lower() in _VIRTUAL_TYPES:
        virtual = _VIRTUAL_TYPES[raw_type.strip().lower()]
    else:
        raise InvalidInput(
            f"{origin}: eniip_virtual_type must be veth or ipvlan, got {raw_type!r}",
            hint="drop eniip_virtual_type for veth (the default), or set it to ipvlan",
        )
    return NodeSettings(
        region_id=region.strip() or None if isinstance(region, str) else None,
        credential_path=Path(raw_path.strip()) if isinstance(raw_path, str) else None,
        virtual_type=virtual,
        ip_stack=stack_text,
    )


def choose_datapath(
    mode: PoolMode, virtual_type: VirtualType, ipvlan_supported: Callable[[], bool], kernel: str = ""
) -> DatapathChoice:
    """The datapath for the daemon's pods: exclusive-eni in eni mode; ipvlan when eni_conf asks for
    it and `ipvlan_supported()` (the kernel probe) says yes; else veth, with the reason."""
    if mode is PoolMode.ENI:
        why = "eni mode: each pod gets a whole ENI"
        if virtual_type is VirtualType.IPVLAN:
            why += " (eniip_virtual_type applies to eniip mode only)"
        return DatapathChoice("exclusive-eni", why)
    if virtual_type is VirtualType.VETH:
        return DatapathChoice("veth", "eniip_virtual_type is veth (the default)")
    try:
        supported = ipvlan_supported()
        problem = f"this kernel{f' ({kernel})' if kernel else ''} cannot create ipvlan links"
    except Exception as exc:  # noqa: BLE001 - a failed probe means no ipvlan, never a failed start
        supported = False
        problem = f"the ipvlan probe failed: {type(exc).__name__}: {exc}"
    if supported:
        return DatapathChoice("ipvlan", "eniip_virtual_type is ipvlan and the kernel supports it")
    return DatapathChoice(
        "veth", f"eniip_virtual_type is ipvlan, but {problem} (no ipvlan module?): using veth", fallback=True
    )
