"""What the daemon reads of the cluster, when an API server is configured.

kubelet hands CNI no pod annotations, so the deprecated ``k8s.aliyun.com/*-bandwidth`` annotations
only work when the daemon reads the pod; pods deleted while their sandbox was never torn down
(kubelet restarted, a node that came back) are found by listing the node's pods; eni_conf comes
from the ``eni-config`` ConfigMap merged with the node's ``terway-config=<cm>`` one.

`Cluster` is the narrow interface `Daemon` uses (only the reads it makes); `KubeCluster` implements it over
any `terwayctl.kube.api.ObjectReader` (the real `KubeClient`). `stale_allocations` is the pure
decision of the API-server GC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from terwayctl.core import bandwidth as bw
from terwayctl.core import defaults
from terwayctl.core.eniconf import merged_eni_conf
from terwayctl.core.errors import InvalidInput
from terwayctl.kube.api import ObjectReader
from terwayctl.kube.errors import KubeNotFound
from terwayctl.kube.reads import LABEL_TERWAY_CONFIG, read_configmap
from terwayctl.node.store import IpRecord

BANDWIDTH_ANNOTATIONS = (bw.K8S_INGRESS, bw.K8S_EGRESS, bw.ALIYUN_INGRESS, bw.ALIYUN_EGRESS)
ENI_CONF_KEY = "eni_conf"


@dataclass(frozen=True)
class PodRef:
    """A pod as the API server lists it."""

    namespace: str
    name: str
    uid: str = ""


@dataclass(frozen=True)
class PodMeta:
    """What the daemon reads of one pod: its annotations and the kinds of its owners (ownerReferences)."""

    annotations: Mapping[str, str]
    owner_kinds: tuple[str, ...] = ()


class NodeUnknown(Exception):
    """The API server has no Node of the configured name (a wrong --node-name): GC must not run."""


class Cluster(Protocol):
    """The reads the daemon makes; every method may raise terwayctl.kube.errors.KubeError."""

    node_name: str

    def pod_annotations(self, namespace: str, name: str) -> Mapping[str, str]:
        """The pod's annotations (KubeNotFound when the pod does not exist)."""
        ...

    def pod(self, namespace: str, name: str) -> PodMeta:
        """The pod's annotations and owner kinds, in one read (KubeNotFound when it does not exist)."""
        ...

    def pods_on_node(self) -> list[PodRef]:
        """Every pod bound to this node (fieldSelector spec.nodeName); NodeUnknown when the node is not."""
        ...


class KubeCluster:
    """`Cluster` over the API server; `node_name` is this node's Node object (NODE_NAME)."""

    def __init__(self, reader: ObjectReader, node_name: str) -> None:
        self.reader = reader
        self.node_name = node_name

    def pod_annotations(self, namespace: str, name: str) -> Mapping[str, str]:
        return self.pod(namespace, name).annotations

    def pod(self, namespace: str, name: str) -> PodMeta:
        meta = self.reader.get("v1", "pods", name, namespace).get("metadata") or {}
        annotations = meta.get("annotations") or {}
        owners = meta.get("ownerReferences") or []
        return PodMeta({str(k): str(v) for k, v in annotations.items()},
                       tuple(str(o.get("kind") or "") for o in owners if isinstance(o, dict)))

    def pods_on_node(self) -> list[PodRef]:
        if not self.node_name:
            raise NodeUnknown("no node name (--node-name / NODE_NAME)")
        try:
            self.reader.get("v1", "nodes", self.node_name)
        except KubeNotFound:
            raise NodeUnknown(f"the API server has no node {self.node_name!r}") from None
        objects = self.reader.list("v1", "pods", field_selector=f"spec.nodeName={self.node_name}")
        return [_pod_ref(o) for o in objects]


def _pod_ref(obj: Mapping[str, Any]) -> PodRef:
    meta = obj.get("metadata") or {}
    return PodRef(str(meta.get("namespace", "")), str(meta.get("name", "")), str(meta.get("uid") or ""))


def bandwidth_annotations(annotations: Mapping[str, str]) -> dict[str, str]:
    """The pod annotations that set bandwidth (both the kubernetes.io and the k8s.aliyun.com keys)."""
    return {k: v for k, v in annotations.items() if k in BANDWIDTH_ANNOTATIONS}


def stale_allocations(allocations: Iterable[IpRecord], pods: Iterable[PodRef], cutoff: float) -> list[IpRecord]:
    """Allocations whose pod is gone from the API server and that were made before `cutoff`.

    A pod is alive when a listed pod has its namespace and name and, when both sides know it, its
    uid (a StatefulSet pod recreated under the same name is another pod). Allocations without a pod
    name (not a Kubernetes sandbox) are never stale; neither is one made at or after `cutoff` (the
    grace period: a pod being created right now).
    """
    by_name: dict[tuple[str, str], set[str]] = {}
    for pod in pods:
        by_name.setdefault((pod.namespace, pod.name), set()).add(pod.uid)
    stale = []
    for record in allocations:
        owner = record.owner
        if owner is None or not owner.pod_name:
            continue
        if record.allocated is not None and record.allocated >= cutoff:
            continue
        uids = by_name.get((owner.pod_namespace, owner.pod_name))
        if uids is not None and (not owner.pod_uid or "" in uids or owner.pod_uid in uids):
            continue
        stale.append(record)
    return stale


def eni_conf_from_cluster(reader: ObjectReader, namespace: str, node_name: str = "") -> dict[str, Any]:
    """eni_conf of ``<namespace>/eni-config``, with the node's ``terway-config=<cm>`` ConfigMap merged
    over it (RFC 7396) when `node_name` is given and labelled."""
    base = _eni_conf_text(reader, namespace, defaults.ENI_CONFIG_NAME)
    override: str | None = None
    origin = "node eni_conf"
    if node_name:
        try:
            node = reader.get("v1", "nodes", node_name)
        except KubeNotFound:
            raise InvalidInput(f"the API server has no node {node_name!r}",
                               hint="check --node-name (NODE_NAME)") from None
        labels = (node.get("metadata") or {}).get("labels") or {}
        cm = labels.get(LABEL_TERWAY_CONFIG)
        if cm:
            override = _eni_conf_text(reader, namespace, str(cm), f"node {node_name} label {LABEL_TERWAY_CONFIG}")
            origin = f"{namespace}/{cm} eni_conf"
    return merged_eni_conf(base, override, origin)


def _eni_conf_text(reader: ObjectReader, namespace: str, name: str, why: str = "") -> str:
    try:
        cm = read_configmap(reader, namespace, name)
    except KubeNotFound:
        raise InvalidInput(
            f"ConfigMap {namespace}/{name}{f' (named by {why})' if why else ''} does not exist",
            hint="create it, pass -n/--namespace, or give the daemon --config",
        ) from None
    text = cm.data.get(ENI_CONF_KEY)
    if text is None:
        raise InvalidInput(f"ConfigMap {namespace}/{name} has no {ENI_CONF_KEY} key")
    return text
