"""Pod capacity of a running cluster's nodes, with the problems worth flagging (pure, no I/O).

The CLI reads the nodes, their pods, eni-config (and each node's terway-config override) and the
Terway DaemonSet; this module turns small node records into a report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from terwayctl.core import defaults
from terwayctl.core.capacity import CapacityOptions, compute
from terwayctl.core.catalog import InstanceType
from terwayctl.core.eniconf import EniCaps
from terwayctl.core.sorting import natural_text_key

FLAG_MAX_PODS_ABOVE_IPS = "max-pods-above-ips"
FLAG_BELOW_ACK_MINIMUM = "below-ack-minimum"
FLAG_OVER_CAPACITY = "over-capacity"
FLAG_UNKNOWN_TYPE = "unknown-type"
FLAG_ENI_DEVICES = "eni-devices"
"""Exclusive ENI: allocatable aliyun/eni missing, or not the node's ENI capacity (the device plugin)."""


@dataclass(frozen=True)
class NodeRecord:
    """What the cluster says about one node."""

    name: str
    instance_type: str | None
    zone: str | None
    max_pods: int | None
    """kubelet --max-pods (status.capacity.pods)."""
    allocatable_pods: int | None
    pods: int
    """Running or pending pods that need a pod IP (not host-network)."""
    host_network_pods: int
    caps: EniCaps = field(default_factory=EniCaps)
    allocatable_enis: int | None = None
    """status.allocatable["aliyun/eni"], what the daemon's device plugin advertises."""


@dataclass(frozen=True)
class NodeCapacity:
    name: str
    instance_type: str | None
    zone: str | None
    mode: str
    ip_capacity: int | None
    """Pod IPs the node offers in the cluster's Terway mode."""
    recommended_max_pods: int | None
    max_pods: int | None
    allocatable_pods: int | None
    pods: int
    host_network_pods: int
    flags: tuple[str, ...]
    problems: tuple[str, ...]
    type_source: str
    allocatable_enis: int | None = None
    """allocatable aliyun/eni (exclusive ENI: compared with ip_capacity, FLAG_ENI_DEVICES)."""


def _ack_minimum(mode: str) -> int:
    return defaults.ACK_MIN_EXCLUSIVE_ENI_PODS if mode == "eni" else defaults.ACK_MIN_SHARED_ENI_PODS


def node_capacity(record: NodeRecord, it: InstanceType | None, mode: str, type_source: str) -> NodeCapacity:
    """One node's capacity in `mode` (eniip or eni) and its flags."""
    host_network = max(record.host_network_pods, defaults.DEFAULT_HOST_NETWORK_PODS)
    flags: list[str] = []
    problems: list[str] = []
    ip_capacity: int | None = None
    if it is None:
        flags.append(FLAG_UNKNOWN_TYPE)
        problems.append(f"instance type {record.instance_type or '(no label node.kubernetes.io/instance-type)'} "
                        "unknown: no capacity figure")
    else:
        cap = compute(it, CapacityOptions(mode=mode, host_network_pods=host_network, caps=record.caps), type_source)
        ip_capacity = cap.pods(mode)
        if ip_capacity is None:
            flags.append(FLAG_UNKNOWN_TYPE)
            problems.extend(cap.notes)
    recommended = None if ip_capacity is None else ip_capacity + host_network
    if ip_capacity is not None:
        minimum = _ack_minimum(mode)
        if ip_capacity <= minimum:
            flags.append(FLAG_BELOW_ACK_MINIMUM)
            problems.append(f"{ip_capacity} pod IPs is not above the ACK minimum ({minimum}) for {mode}: "
                            "the node cannot join an ACK cluster")
        kubelet = record.max_pods if record.max_pods is not None else record.allocatable_pods
        if kubelet is not None and recommended is not None and kubelet > recommended:
            flags.append(FLAG_MAX_PODS_ABOVE_IPS)
            problems.append(f"kubelet max-pods {kubelet} > {ip_capacity} pod IPs + {host_network} host-network pods:"
                            f" pods beyond {recommended} hang in ContainerCreating; set --max-pods={recommended}")
        if mode == "eni":
            _check_eni_devices(record, ip_capacity, flags, problems)
        if record.pods > ip_capacity:
            flags.append(FLAG_OVER_CAPACITY)
            problems.append(f"{record.pods} pods need an IP but the node has {ip_capacity}: pods without one "
                            "(e.g. from before a move to Terway) must be recreated elsewhere")
    return NodeCapacity(
        name=record.name, instance_type=record.instance_type, zone=record.zone, mode=mode,
        ip_capacity=ip_capacity, recommended_max_pods=recommended, max_pods=record.max_pods,
        allocatable_pods=record.allocatable_pods, pods=record.pods, host_network_pods=record.host_network_pods,
        flags=tuple(flags), problems=tuple(problems), type_source=type_source if it is not None else "",
        allocatable_enis=record.allocatable_enis,
    )


def _check_eni_devices(record: NodeRecord, enis: int, flags: list[str], problems: list[str]) -> None:
    """Exclusive ENI: the scheduler knows the ENI limit only through allocatable aliyun/eni."""
    if record.allocatable_enis is None:
        flags.append(FLAG_ENI_DEVICES)
        problems.append(f"no aliyun/eni in allocatable: the daemon's device plugin is not registered with kubelet, "
                        f"so the scheduler may place more than {enis} pods that each need an ENI")
    elif record.allocatable_enis != enis:
        flags.append(FLAG_ENI_DEVICES)
        problems.append(f"allocatable aliyun/eni {record.allocatable_enis} != {enis} ENIs for pods (EniQuantity - 1, "
                        "eni_conf caps): the device plugin advertises another capacity (an older daemon, or "
                        "eni_conf changed since it started)")


def cluster_capacity(
    records: Iterable[NodeRecord],
    types: Mapping[str, InstanceType],
    mode: str,
    sources: Mapping[str, str],
) -> list[NodeCapacity]:
    """Every node's capacity, sorted by name; `sources` says where each type's figures come from."""
    rows = []
    for record in sorted(records, key=lambda r: natural_text_key(r.name)):
        it = types.get(record.instance_type or "")
        rows.append(node_capacity(record, it, mode, sources.get(record.instance_type or "", "")))
    return rows
