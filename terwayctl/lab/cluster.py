"""`lab up --kube`: the lab's Kubernetes API server (terwayctl.lab.kubeapi), run by the supervisor.

It holds what a real cluster would for the lab: the Nodes (one per lab node, labelled with zone
and instance type as ACK labels them), what `terwayctl render` renders for the lab (the
ServiceAccount, RBAC, the eni-config ConfigMap, the terway DaemonSet), one terway pod per node,
and the lab's pods. The daemons read eni-config from it (``--kubeconfig``, no ``--config``).

The supervisor plays kubelet and the DaemonSet controller for the terway pods: a node's pod is
ready when its daemon answers ready; when the pod is deleted (``vswitch add``'s rollout), the
node's daemon is restarted and a new pod is created, ready once the new daemon is.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from terwayctl.lab.kubeapi import ApiError, KubeApiServer
from terwayctl.lab.kubeapi.server import APPS_DAEMONSETS, CORE_PODS
from terwayctl.lab.model import NodePlan, Topology

log = logging.getLogger("terwayctl.lab.cluster")
NAMESPACE = "kube-system"
CONTEXT = "twlab"
MAX_PODS = 110
KUBELET_POLL_S = 0.1
ZONE_LABEL = "topology.kubernetes.io/zone"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
DAEMON_CONTAINER = "terway"
"""The daemon's container of the rendered DaemonSet: its log is the node's daemon.log."""


def rendered_objects(topology: Topology) -> list[dict[str, Any]]:
    """What ``terwayctl render`` renders for the lab's VPC; the lab's ``--config`` merged over eni_conf."""
    from terwayctl.manifests.render import render_objects
    from terwayctl.manifests.values import values_from_mapping

    zones: dict[str, list[str]] = {}
    for vsw in topology.pod_vswitches():
        zones.setdefault(vsw.zone, []).append(vsw.id)
    conf = topology.eni_conf
    values = values_from_mapping({
        "mode": topology.mode, "region_id": topology.region, "vswitches": zones,
        "security_groups": [topology.security_group], "service_cidr": topology.service_cidr,
        "pool": {"min_size": int(conf.get("min_pool_size", 2)), "max_size": int(conf.get("max_pool_size", 10)),
                 "sync_period": str(conf.get("ip_pool_sync_period", "30s"))},
    })
    objects = render_objects(values)
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "eni-config" and conf:
            eni_conf = json.loads(obj["data"]["eni_conf"])
            eni_conf.update(conf)
            obj["data"]["eni_conf"] = json.dumps(eni_conf, indent=2) + "\n"
    return objects


def node_object(topology: Topology, node: NodePlan) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node.name, "labels": {
            ZONE_LABEL: node.zone, "failure-domain.beta.kubernetes.io/zone": node.zone,
            INSTANCE_TYPE_LABEL: topology.instance_type, "beta.kubernetes.io/instance-type": topology.instance_type,
            "topology.kubernetes.io/region": topology.region, "kubernetes.io/hostname": node.name,
        }},
        "spec": {"providerID": f"{topology.region}.{node.instance_id}"},
        "status": {"capacity": {"pods": str(MAX_PODS), "cpu": "4"}, "allocatable": {"pods": str(MAX_PODS)},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def write_kubeconfig(path: Path, url: str) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": CONTEXT,
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {"token": "twlab"}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": NAMESPACE}}],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(config), encoding="utf-8")
    tmp.replace(path)
    return path


def _ready_status(ready: bool) -> dict[str, Any]:
    state: dict[str, Any] = ({"running": {"startedAt": "2026-01-01T00:00:00Z"}} if ready
                             else {"waiting": {"reason": "ContainerCreating"}})
    return {
        "phase": "Running" if ready else "Pending",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [{"name": "terway", "ready": ready, "restartCount": 0, "state": state,
                               "image": "terway", "imageID": "", "started": ready}],
    }


class LabCluster:
    """The API server and the kubelet/DaemonSet-controller loop for the terway pods.

    `daemon_ready(node)` says whether the node's daemon answers ready; `restart(node)` restarts it
    (both given by the supervisor). Nodes in `external` get a Node but no terway pod.
    """

    def __init__(self, topology: Topology, kubeconfig: Path, *, daemon_ready: Callable[[str], bool],
                 restart: Callable[[str], None], daemon_log: Callable[[str], Path] | None = None) -> None:
        self.topology = topology
        self.kubeconfig = kubeconfig
        self.server = KubeApiServer()
        self.server.controller.mode = "manual"  # the loop below plays the controller, per node
        # the lab's files sit beside its kubeconfig: <lab>/<node>/daemon.log (terwayctl.lab.state)
        self._daemon_log = daemon_log or (lambda node: kubeconfig.parent / node / "daemon.log")
        self.server.log_source = self.pod_log
        self._daemon_ready = daemon_ready
        self._restart = restart
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0
        self.restarts: dict[str, int] = {}
        objects = rendered_objects(topology)
        self.daemonset = next(o for o in objects if o["kind"] == "DaemonSet")

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, *, loop: bool = True) -> LabCluster:
        """Serve, seed, write the kubeconfig; `loop` runs `sync` every 0.1 s (False: the caller calls it)."""
        self.server.start()
        for name in ("kube-system", "default", "kube-public"):
            self.server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for node in self.topology.nodes:
            self.server.create(node_object(self.topology, node))
        for obj in rendered_objects(self.topology):
            try:
                self.server.resource_for(obj)
            except ValueError:
                log.info("the lab API server does not serve %s %s: not created", obj["apiVersion"], obj["kind"])
                continue
            self.server.create(obj)
        for managed in self._managed():
            self._create_terway_pod(managed)
        write_kubeconfig(self.kubeconfig, self.url)
        if loop:
            self._thread = threading.Thread(target=self._loop, name="lab-kubelet", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.server.stop()

    def _managed(self) -> list[str]:
        return [n.name for n in self.topology.nodes if n.name not in self.topology.external_daemons]

    # --- terway pods ---------------------------------------------------------------------------

    def terway_pods(self, node: str) -> list[dict[str, Any]]:
        ds = self.daemonset["metadata"]["name"]
        return [p for p in self.server.store.list(CORE_PODS, NAMESPACE, field_selector=f"spec.nodeName={node}")["items"]
                if any(o.get("kind") == "DaemonSet" and o.get("name") == ds
                       for o in p["metadata"].get("ownerReferences") or [])]

    def _create_terway_pod(self, node: str) -> None:
        ds = self.server.store.get(APPS_DAEMONSETS, NAMESPACE, self.daemonset["metadata"]["name"])
        self._generation += 1
        template = ds["spec"]["template"]
        name = ds["metadata"]["name"]
        suffix = hashlib.sha1(f"{name}/{node}/{self._generation}".encode()).hexdigest()[:5]
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": f"{name}-{suffix}", "namespace": NAMESPACE,
                "labels": dict(template.get("metadata", {}).get("labels") or {}),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": name,
                                     "uid": ds["metadata"].get("uid", ""), "controller": True}],
            },
            "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": node},
        }
        created = self.server.store.create(CORE_PODS, NAMESPACE, pod, manager="kubelet")
        created["status"] = _ready_status(False)
        self.server.store.replace(CORE_PODS, NAMESPACE, created["metadata"]["name"], created, status_only=True,
                                  manager="kubelet")

    def pod_log(self, namespace: str, name: str, container: str) -> str | None:
        """What kubelet serves as a terway pod's log: its node's daemon log file (the daemon container's
        output); None for other pods and containers (the API server then has no log for them)."""
        if namespace != NAMESPACE or container != DAEMON_CONTAINER:
            return None
        try:
            pod = self.server.store.get(CORE_PODS, namespace, name)
        except ApiError:
            return None
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node or name not in {p["metadata"]["name"] for p in self.terway_pods(node)}:
            return None
        try:
            return self._daemon_log(node).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _loop(self) -> None:
        while not self._stop.wait(KUBELET_POLL_S):
            try:
                self.sync()
            except Exception:  # the loop must outlive one bad pass
                log.exception("lab kubelet pass failed")

    def sync(self) -> None:
        """One pass: recreate deleted terway pods (restarting the node's daemon), mark pods ready."""
        changed = False
        for node in self._managed():
            pods = self.terway_pods(node)
            if not pods:
                log.info("terway pod of %s deleted: restarting its daemon", node)
                self._restart(node)
                self.restarts[node] = self.restarts.get(node, 0) + 1
                self._create_terway_pod(node)
                changed = True
                continue
            ready = self._daemon_ready(node)
            for pod in pods:
                is_ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                               for c in (pod.get("status") or {}).get("conditions") or [])
                if is_ready != ready:
                    pod["status"] = _ready_status(ready)
                    self.server.store.replace(CORE_PODS, NAMESPACE, pod["metadata"]["name"],
                                              {"apiVersion": "v1", "kind": "Pod", **pod}, status_only=True,
                                              manager="kubelet")
                    changed = True
        if changed:
            self._daemonset_status()

    def _daemonset_status(self) -> None:
        name = self.daemonset["metadata"]["name"]
        ds = self.server.store.get(APPS_DAEMONSETS, NAMESPACE, name)
        managed = self._managed()
        ready = sum(1 for n in managed for p in self.terway_pods(n)
                    if (p.get("status") or {}).get("phase") == "Running")
        ds["status"] = {
            "observedGeneration": int(ds["metadata"].get("generation", 1)), "desiredNumberScheduled": len(managed),
            "currentNumberScheduled": len(managed), "updatedNumberScheduled": len(managed), "numberReady": ready,
            "numberAvailable": ready, "numberUnavailable": len(managed) - ready, "numberMisscheduled": 0,
        }
        self.server.store.replace(APPS_DAEMONSETS, NAMESPACE, name, ds, status_only=True)

    # --- the lab's pods ------------------------------------------------------------------------

    def pod_put(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Create (or update) a lab pod: name, namespace, node, annotations, owners (`lab pod add --owner`:
        [{apiVersion, kind, name}], its controller ownerReference), ip ('' before ADD)."""
        namespace, name = str(request.get("namespace") or "default"), str(request["name"])
        try:
            old = self.server.store.get(CORE_PODS, namespace, name)
        except ApiError:
            old = None
        if old is None:
            self._ensure_namespace(namespace)
            old = self.server.store.create(CORE_PODS, namespace, {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace,
                             "annotations": {str(k): str(v) for k, v in (request.get("annotations") or {}).items()},
                             **_owner_references(namespace, request.get("owners") or [])},
                "spec": {"nodeName": str(request["node"]), "containers": [{"name": "c", "image": "twlab"}]},
            }, manager="twlab")
        ip = str(request.get("ip") or "")
        old["status"] = {"phase": "Running" if ip else "Pending", **({"podIP": ip, "podIPs": [{"ip": ip}]} if ip else {})}
        self.server.store.replace(CORE_PODS, namespace, name, old, status_only=True, manager="kubelet")
        return {"uid": old["metadata"]["uid"]}

    def pod_delete(self, request: Mapping[str, Any]) -> dict[str, Any]:
        namespace, name = str(request.get("namespace") or "default"), str(request["name"])
        try:
            self.server.store.delete(CORE_PODS, namespace, name)
        except ApiError:
            return {"deleted": False}
        return {"deleted": True}

    def _ensure_namespace(self, namespace: str) -> None:
        try:
            self.server.get("v1", "Namespace", namespace)
        except ApiError:
            self.server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})


def _owner_references(namespace: str, owners: list[Mapping[str, Any]]) -> dict[str, Any]:
    """ownerReferences of a lab pod (its controller, e.g. StatefulSet/web); the owner object itself is not
    created, its uid is derived from namespace, kind and name (the same for every pod of one owner)."""
    if not owners:
        return {}
    refs = [{"apiVersion": str(o.get("apiVersion") or "apps/v1"), "kind": str(o["kind"]), "name": str(o["name"]),
             "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"twlab/{namespace}/{o['kind']}/{o['name']}")),
             "controller": True, "blockOwnerDeletion": True} for o in owners]
    return {"ownerReferences": refs}
