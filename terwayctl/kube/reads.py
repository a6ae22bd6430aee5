"""Node, pod, event, ConfigMap and Terway DaemonSet reads, as small typed records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from terwayctl.core import defaults
from terwayctl.core.sorting import natural_text_key
from terwayctl.kube.api import ObjectReader
from terwayctl.kube.errors import KubeNotFound

LABEL_INSTANCE_TYPE = "node.kubernetes.io/instance-type"
LABEL_INSTANCE_TYPE_BETA = "beta.kubernetes.io/instance-type"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_ZONE_BETA = "failure-domain.beta.kubernetes.io/zone"
LABEL_TERWAY_CONFIG = "terway-config"
RESOURCE_ENI = "aliyun/eni"
"""The extended resource of exclusive ENIs (the daemon's device plugin, terwayctl/node/deviceplugin.py)."""


@dataclass(frozen=True)
class NodeInfo:
    name: str
    instance_type: str | None
    zone: str | None
    allocatable_pods: int | None
    """status.allocatable.pods: what the scheduler may place (kubelet max-pods)."""
    capacity_pods: int | None
    """status.capacity.pods: the kubelet's --max-pods."""
    terway_config: str | None
    """The ConfigMap named by the node label terway-config, merged over eni-config."""
    labels: Mapping[str, str] = field(default_factory=dict)
    allocatable_enis: int | None = None
    """status.allocatable["aliyun/eni"]: what the daemon's device plugin advertises (exclusive ENI)."""


@dataclass(frozen=True)
class PodInfo:
    name: str
    namespace: str
    node: str | None
    phase: str
    host_network: bool
    ready: bool
    reason: str = ""


@dataclass(frozen=True)
class EventInfo:
    namespace: str
    name: str
    type: str
    reason: str
    message: str
    object_kind: str
    object_name: str
    count: int


@dataclass(frozen=True)
class ConfigMapData:
    name: str
    namespace: str
    data: Mapping[str, str]
    resource_version: str


@dataclass(frozen=True)
class TerwayDaemonSet:
    name: str
    namespace: str
    mode: str
    """eniip (shared ENI, terway-eniip) or eni (exclusive ENI, terway-eni)."""
    match_labels: Mapping[str, str]


def _quantity(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def node_from_object(obj: Mapping[str, Any]) -> NodeInfo:
    meta = obj.get("metadata") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    status = obj.get("status") or {}
    return NodeInfo(
        name=str(meta.get("name", "")),
        instance_type=labels.get(LABEL_INSTANCE_TYPE) or labels.get(LABEL_INSTANCE_TYPE_BETA),
        zone=labels.get(LABEL_ZONE) or labels.get(LABEL_ZONE_BETA),
        allocatable_pods=_quantity((status.get("allocatable") or {}).get("pods")),
        capacity_pods=_quantity((status.get("capacity") or {}).get("pods")),
        terway_config=labels.get(LABEL_TERWAY_CONFIG),
        labels=labels,
        allocatable_enis=_quantity((status.get("allocatable") or {}).get(RESOURCE_ENI)),
    )


def list_nodes(reader: ObjectReader, label_selector: str = "") -> list[NodeInfo]:
    nodes = [node_from_object(o) for o in reader.list("v1", "nodes", label_selector=label_selector)]
    return sorted(nodes, key=lambda n: natural_text_key(n.name))  # node2 before node10


def _pod_ready(status: Mapping[str, Any]) -> tuple[bool, str]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return True, ""
            break
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if isinstance(waiting, dict) and waiting.get("reason"):
            return False, str(waiting["reason"])
    return False, str(status.get("reason") or status.get("phase") or "NotReady")


def pod_from_object(obj: Mapping[str, Any]) -> PodInfo:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    ready, reason = _pod_ready(status)
    return PodInfo(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        node=spec.get("nodeName"),
        phase=str(status.get("phase") or "Pending"),
        host_network=bool(spec.get("hostNetwork", False)),
        ready=ready,
        reason=reason,
    )


def list_pods(reader: ObjectReader, namespace: str | None = None, *, node: str | None = None,
              label_selector: str = "") -> list[PodInfo]:
    selector = f"spec.nodeName={node}" if node else ""
    objects = reader.list("v1", "pods", namespace, label_selector=label_selector, field_selector=selector)
    return sorted((pod_from_object(o) for o in objects), key=lambda p: (p.namespace, p.name))


def pods_by_node(pods: list[PodInfo]) -> dict[str, list[PodInfo]]:
    """Running and pending pods per node (finished pods hold no IP)."""
    grouped: dict[str, list[PodInfo]] = {}
    for pod in pods:
        if pod.node and pod.phase not in ("Succeeded", "Failed"):
            grouped.setdefault(pod.node, []).append(pod)
    return grouped


def list_events(reader: ObjectReader, namespace: str | None = None, *, object_name: str | None = None) -> list[EventInfo]:
    selector = f"involvedObject.name={object_name}" if object_name else ""
    events = []
    for obj in reader.list("v1", "events", namespace, field_selector=selector):
        meta, involved = obj.get("metadata") or {}, obj.get("involvedObject") or {}
        events.append(EventInfo(
            namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")),
            type=str(obj.get("type") or "Normal"), reason=str(obj.get("reason") or ""),
            message=str(obj.get("message") or ""), object_kind=str(involved.get("kind") or ""),
            object_name=str(involved.get("name") or ""), count=_quantity(obj.get("count")) or 1,
        ))
    return events


def read_configmap(reader: ObjectReader, namespace: str, name: str) -> ConfigMapData:
    obj = reader.get("v1", "configmaps", name, namespace)
    meta = obj.get("metadata") or {}
    data = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
    return ConfigMapData(name, namespace, data, str(meta.get("resourceVersion", "")))


def find_terway_daemonset(reader: ObjectReader, namespace: str) -> TerwayDaemonSet | None:
    """terway-eniip (shared ENI) or terway-eni (exclusive ENI), whichever exists; None when neither."""
    for name, mode in ((defaults.DAEMONSET_ENIIP, "eniip"), (defaults.DAEMONSET_ENI, "eni")):
        try:
            obj = reader.get("apps/v1", "daemonsets", name, namespace)
        except KubeNotFound:
            continue
        labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return TerwayDaemonSet(name, namespace, mode, {str(k): str(v) for k, v in labels.items()})
    return None


LOG_TAIL_LINES = 2000
"""At most this many lines of a container's log are read (tailLines)."""
LOG_LIMIT_BYTES = 4 * 1024 * 1024
"""...and at most this many bytes (limitBytes)."""


class PodLogReader(Protocol):
    """GET /api/v1/namespaces/NS/pods/NAME/log (`KubeClient.pod_log`)."""

    def pod_log(self, namespace: str, name: str, *, container: str | None = None, since_seconds: int | None = None,
                tail_lines: int | None = None, limit_bytes: int | None = None) -> str: ...


def read_pod_log(reader: PodLogReader, namespace: str, name: str, container: str | None, since_seconds: int,
                 tail_lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of a container's log written within `since_seconds`, bounded in lines and bytes."""
    text = reader.pod_log(namespace, name, container=container, since_seconds=max(1, int(since_seconds)),
                          tail_lines=max(0, min(int(tail_lines), LOG_TAIL_LINES)), limit_bytes=LOG_LIMIT_BYTES)
    return text.splitlines()
