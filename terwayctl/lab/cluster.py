"""`lab up --kube`: the lab's Kubernetes API server (terwayctl.lab.kubeapi), run by the supervisor.

It holds what a real cluster would for the lab: the Nodes (one per lab node, labelled with zone
and instance type as ACK labels them), Terway installed as `terwayctl apply -f <lab>/values.yaml`
installs it (the ServiceAccount, RBAC, the eni-config ConfigMap, the terway DaemonSet; server-side
apply, field manager terwayctl), one terway pod per node, and the lab's pods. The daemons read
eni-config from it (``--kubeconfig``, no ``--config``).

The supervisor plays kubelet and the DaemonSet controller for the terway pods: a node's pod is
ready when its daemon answers ready; when the pod is deleted (``vswitch add``'s rollout), the
node's daemon is restarted and a new pod is created, ready once the new daemon is. A changed pod
template rolls out as a RollingUpdate does (maxUnavailable pods at a time, the next batch once the
new pods are ready); a pod whose image the lab cannot run (any but the one it renders: the lab runs
this checkout's daemon) stays in ErrImagePull/ImagePullBackOff and its node runs no daemon.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from terwayctl.core.defaults import ENI_CONF_KEY, ENI_CONFIG_NAME
from terwayctl.kube.rollout import max_unavailable
from terwayctl.lab.kubeapi import ApiError, KubeApiServer, resources
from terwayctl.lab.kubeapi.server import APPS_DAEMONSETS, CORE_PODS
from terwayctl.lab.model import DEFAULT_ENI_CONF, NodePlan, Topology
from terwayctl.lab.state import VALUES_FILE

log = logging.getLogger("terwayctl.lab.cluster")
NAMESPACE = "kube-system"
CONTEXT = "twlab"
MAX_PODS = 110
KUBELET_POLL_S = 0.1
ZONE_LABEL = "topology.kubernetes.io/zone"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
DAEMON_CONTAINER = "terway"
"""The daemon's container of the rendered DaemonSet: its log is the node's daemon.log."""
CORE_CONFIGMAPS = resources.require("", "v1", "configmaps")
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
PULL_BACKOFF_AFTER_S = 1.0
"""A pod whose image the lab cannot run shows ErrImagePull this long, then ImagePullBackOff (as kubelet backs off)."""


# eni_conf keys of `lab up --config` that a values key expresses (docs/render.md): they become values, so
# what the lab installs is what `terwayctl apply -f <lab>/values.yaml` renders.
ENI_CONF_VALUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("region_id", ("region_id",)),
    ("security_groups", ("security_groups",)),
    ("service_cidr", ("service_cidr",)),
    ("vswitches", ("vswitches",)),
    ("vswitch_selection_policy", ("vswitch_selection_policy",)),
    ("ip_stack", ("ip_stack",)),
    ("max_pool_size", ("pool", "max_size")),
    ("min_pool_size", ("pool", "min_size")),
    ("ip_pool_sync_period", ("pool", "sync_period")),
)
EXTRAS_MANAGER = "terwayctl-lab"
"""The field manager of the lab's edit of eni-config: the --config keys no value expresses (`LabInstall`)."""


@dataclass(frozen=True)
class LabInstall:
    """What `lab up --kube` installs: `values` (written to <lab>/values.yaml, applied as `terwayctl apply -f`
    does) and `extras`, the --config eni_conf keys no values key holds (e.g. stateful_ip_lease), which the
    lab then writes into eni-config's eni_conf as an edit (field manager terwayctl-lab)."""

    values: dict[str, Any]
    extras: dict[str, Any]

    def eni_conf(self) -> dict[str, Any]:
        """eni-config's eni_conf as installed: the rendered one with the extras merged over it."""
        from terwayctl.manifests.render import eni_conf
        from terwayctl.manifests.values import values_from_mapping

        return {**eni_conf(values_from_mapping(self.values)), **self.extras}

    def values_yaml(self, lab: str) -> str:
        head = [f"# The values `lab up --kube` applied to lab {lab}'s API server (server-side apply, field manager",
                "# terwayctl), as `terwayctl apply -f THIS_FILE` does (docs/install.md)."]
        if self.extras:
            head += ["# eni_conf keys of --config that no value holds, written into eni-config after the install",
                     f"# (field manager {EXTRAS_MANAGER}): {', '.join(sorted(self.extras))}"]
        return "\n".join(head) + "\n" + yaml.safe_dump(self.values, sort_keys=False, default_flow_style=False)


def _nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    return {path[0]: value} if len(path) == 1 else {path[0]: _nested(path[1:], value)}


def _merged(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), dict) and key != "vswitches":
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def lab_install(topology: Topology) -> LabInstall:
    """The lab's values (mode, region, pod vSwitches per zone, security group, service CIDR, pool) with each
    --config key a value expresses taken as that value when it is valid there; the rest are extras, merged over
    the rendered eni_conf as `rendered_objects` always did."""
    from terwayctl.manifests.render import eni_conf
    from terwayctl.manifests.values import InvalidValues, values_from_mapping

    zones: dict[str, list[str]] = {}
    for vsw in topology.pod_vswitches():
        zones.setdefault(vsw.zone, []).append(vsw.id)
    values: dict[str, Any] = {
        "mode": topology.mode, "region_id": topology.region, "security_groups": [topology.security_group],
        "service_cidr": topology.service_cidr, "vswitches": zones,
        "pool": {"min_size": int(DEFAULT_ENI_CONF["min_pool_size"]), "max_size": int(DEFAULT_ENI_CONF["max_pool_size"]),
                 "sync_period": str(DEFAULT_ENI_CONF["ip_pool_sync_period"])},
    }
    conf = dict(topology.eni_conf)
    for key, path in ENI_CONF_VALUES:
        if key in conf:
            candidate = _merged(values, _nested(path, conf[key]))
            try:
                values_from_mapping(candidate)
            except InvalidValues:
                continue  # not a valid value (e.g. a pool size as text): it stays an eni_conf extra
            values = candidate
    rendered = eni_conf(values_from_mapping(values))
    extras = {k: v for k, v in conf.items() if k not in rendered or rendered[k] != v}
    return LabInstall(values, extras)


def rendered_objects(topology: Topology) -> list[dict[str, Any]]:
    """What the lab installs: ``terwayctl render`` of its values, the --config extras merged over eni_conf."""
    from terwayctl.manifests.render import render_objects
    from terwayctl.manifests.values import values_from_mapping

    install = lab_install(topology)
    objects = render_objects(values_from_mapping(install.values))
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == ENI_CONFIG_NAME and install.extras:
            obj["data"][ENI_CONF_KEY] = json.dumps(install.eni_conf(), indent=2) + "\n"
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


def _container_status(container: Mapping[str, Any], state: dict[str, Any], ready: bool) -> dict[str, Any]:
    return {"name": str(container.get("name", "")), "ready": ready, "restartCount": 0, "state": state,
            "image": str(container.get("image", "")), "imageID": "", "started": ready}


def pod_status(spec: Mapping[str, Any], ready: bool, pull: str = "", lab_image: str = "") -> dict[str, Any]:
    """What kubelet reports for a terway pod: ready, starting (ContainerCreating), or `pull` (ErrImagePull or
    ImagePullBackOff) for each container whose image is not `lab_image`."""
    containers = [c for c in spec.get("containers") or [] if isinstance(c, Mapping)]
    init = [c for c in spec.get("initContainers") or [] if isinstance(c, Mapping)]
    if ready:
        state: dict[str, Any] = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        return {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"},
                                                   {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [_container_status(c, {"terminated": {"exitCode": 0, "reason": "Completed"}},
                                                            True) for c in init],
                "containerStatuses": [_container_status(c, state, True) for c in containers]}

    def waiting(container: Mapping[str, Any]) -> dict[str, Any]:
        image = str(container.get("image", ""))
        if pull and image != lab_image:
            message = (f'Back-off pulling image "{image}"' if pull == IMAGE_PULL_BACKOFF else
                       f'failed to pull image "{image}": the lab runs {lab_image} only (this checkout\'s terwayctl)')
            return {"waiting": {"reason": pull, "message": message}}
        return {"waiting": {"reason": "ContainerCreating"}}

    return {"phase": "Pending",
            "conditions": [{"type": "Initialized", "status": "False" if pull else "True"},
                           {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "initContainerStatuses": [_container_status(c, waiting(c), False) for c in init],
            "containerStatuses": [_container_status(c, waiting(c), False) for c in containers]}


def _summary(status: Mapping[str, Any]) -> tuple[str, bool, tuple[str, ...]]:
    """What decides whether a pod's status must be rewritten: phase, Ready, the waiting reasons."""
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    reasons = tuple(str(((c.get("state") or {}).get("waiting") or {}).get("reason", ""))
                    for key in ("initContainerStatuses", "containerStatuses") for c in status.get(key) or [])
    return str(status.get("phase", "")), ready, reasons


def _is_ready(pod: Mapping[str, Any]) -> bool:
    return _summary(pod.get("status") or {})[1]


def template_hash(template: Mapping[str, Any]) -> str:
    """The pod template's revision, as the DaemonSet controller labels its pods (controller-revision-hash):
    the same template gives the same hash, so pods of a template put back count as updated again."""
    return hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _images(spec: Mapping[str, Any]) -> set[str]:
    return {str(c.get("image", "")) for key in ("initContainers", "containers") for c in spec.get(key) or []
            if isinstance(c, Mapping)}


class LabCluster:
    """The API server and the kubelet/DaemonSet-controller loop for the terway pods.

    `daemon_ready(node)` says whether the node's daemon answers ready; `restart(node)` (re)starts it and
    `stop(node)` stops it (given by the supervisor). Nodes in `external` get a Node but no terway pod.
    """

    def __init__(self, topology: Topology, kubeconfig: Path, *, daemon_ready: Callable[[str], bool],
                 restart: Callable[[str], None], daemon_log: Callable[[str], Path] | None = None,
                 stop: Callable[[str], None] | None = None) -> None:
        self.topology = topology
        self.kubeconfig = kubeconfig
        self.values_file = kubeconfig.parent / VALUES_FILE
        self.server = KubeApiServer()
        self.server.controller.mode = "manual"  # the loop below plays the controller, per node
        # the lab's files sit beside its kubeconfig: <lab>/<node>/daemon.log (terwayctl.lab.state)
        self._daemon_log = daemon_log or (lambda node: kubeconfig.parent / node / "daemon.log")
        self.server.log_source = self.pod_log
        self._daemon_ready = daemon_ready
        self._restart = restart
        self._stop_daemon = stop or (lambda node: None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0
        self._pulls: dict[str, float] = {}  # pod uid -> when its image pull failed first
        self.restarts: dict[str, int] = {}
        self.install = lab_install(topology)
        self.server.store.hooks.append(self._on_write)
        self.daemonset = next(o for o in rendered_objects(topology) if o["kind"] == "DaemonSet")
        self.image = next(str(c["image"]) for c in self.daemonset["spec"]["template"]["spec"]["containers"]
                          if c.get("name") == DAEMON_CONTAINER)
        """The image the lab renders: the only one its kubelet runs (a terway pod is this checkout's daemon)."""

    @property
    def url(self) -> str:
        return self.server.url

    def start(self, *, loop: bool = True) -> LabCluster:
        """Serve, seed the Nodes, install Terway as `terwayctl apply -f <lab>/values.yaml` does, create the
        terway pods; `loop` runs `sync` every 0.1 s (False: the caller calls it)."""
        self.server.start()
        for name in ("kube-system", "default", "kube-public"):
            self.server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        for node in self.topology.nodes:
            self.server.create(node_object(self.topology, node))
        write_kubeconfig(self.kubeconfig, self.url)
        self._install()
        for managed in self._managed():
            self._create_terway_pod(managed)
        if loop:
            self._thread = threading.Thread(target=self._loop, name="lab-kubelet", daemon=True)
            self._thread.start()
        return self

    def _install(self) -> None:
        """`terwayctl apply -f <lab>/values.yaml` through the apply command's own code (the kubeconfig, the
        values file, render, server-side apply with field manager terwayctl), then the --config extras as an
        edit of eni-config by field manager terwayctl-lab."""
        from terwayctl.kube.apply import ApplyOptions, apply_objects
        from terwayctl.kube.client import connect
        from terwayctl.manifests import render_objects
        from terwayctl.manifests.values import load_values

        tmp = self.values_file.with_name(self.values_file.name + ".tmp")
        tmp.write_text(self.install.values_yaml(self.topology.name), encoding="utf-8")
        tmp.replace(self.values_file)
        rendered = render_objects(load_values(self.values_file, []))
        with connect(str(self.kubeconfig)) as kube:
            for result in apply_objects(kube, rendered, ApplyOptions(default_namespace=NAMESPACE)):
                log.info("terwayctl apply -f %s: %s %s", self.values_file, result.ref, result.action)
        if self.install.extras:
            cm = self.server.store.get(CORE_CONFIGMAPS, NAMESPACE, ENI_CONFIG_NAME)
            cm["data"][ENI_CONF_KEY] = json.dumps(self.install.eni_conf(), indent=2) + "\n"
            self.server.store.replace(CORE_CONFIGMAPS, NAMESPACE, ENI_CONFIG_NAME, cm, manager=EXTRAS_MANAGER)
            log.info("eni-config: --config keys no value holds merged into eni_conf (field manager %s): %s",
                     EXTRAS_MANAGER, ", ".join(sorted(self.install.extras)))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.server.stop()

    def _on_write(self, rt: resources.ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """A new generation of the DaemonSet is observed at once (its status says how many pods run it), so
        `apply --wait` never reads a status that describes the previous template as current."""
        if rt is not APPS_DAEMONSETS or obj["metadata"].get("name") != self.daemonset["metadata"]["name"]:
            return
        if old is not None and old["metadata"].get("generation") != obj["metadata"].get("generation"):
            self._daemonset_status()

    def _managed(self) -> list[str]:
        return [n.name for n in self.topology.nodes if n.name not in self.topology.external_daemons]

    # --- terway pods ---------------------------------------------------------------------------

    def terway_pods(self, node: str) -> list[dict[str, Any]]:
        ds = self.daemonset["metadata"]["name"]
        return [p for p in self.server.store.list(CORE_PODS, NAMESPACE, field_selector=f"spec.nodeName={node}")["items"]
                if any(o.get("kind") == "DaemonSet" and o.get("name") == ds
                       for o in p["metadata"].get("ownerReferences") or [])]

    def _live_daemonset(self) -> dict[str, Any]:
        return self.server.store.get(APPS_DAEMONSETS, NAMESPACE, self.daemonset["metadata"]["name"])

    def runnable(self, spec: Mapping[str, Any]) -> bool:
        """Whether the lab's kubelet can run a pod of this spec: every image is the one the lab renders."""
        return _images(spec) <= {self.image}

    def _create_terway_pod(self, node: str) -> dict[str, Any]:
        ds = self._live_daemonset()
        self._generation += 1
        template = ds["spec"]["template"]
        name = ds["metadata"]["name"]
        suffix = hashlib.sha1(f"{name}/{node}/{self._generation}".encode()).hexdigest()[:5]
        labels = {**(template.get("metadata", {}).get("labels") or {}),
                  "controller-revision-hash": template_hash(template),
                  "pod-template-generation": str(ds["metadata"].get("generation", 1))}
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": f"{name}-{suffix}", "namespace": NAMESPACE, "labels": labels,
                "annotations": dict(template.get("metadata", {}).get("annotations") or {}),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": name,
                                     "uid": ds["metadata"].get("uid", ""), "controller": True}],
            },
            "spec": {**copy.deepcopy(template.get("spec") or {}), "nodeName": node},
        }
        created = self.server.store.create(CORE_PODS, NAMESPACE, pod, manager="kube-controller-manager")
        created["status"] = pod_status(created["spec"], False)
        return self.server.store.replace(CORE_PODS, NAMESPACE, created["metadata"]["name"], created,
                                         status_only=True, manager="kubelet")

    def _run_new_pod(self, node: str) -> None:
        """What the DaemonSet controller and kubelet do for a node without a terway pod: a pod of the current
        template; its daemon restarted when the lab can run its image, else stopped (the old pod is gone and
        the new one never starts: ErrImagePull, then ImagePullBackOff)."""
        pod = self._create_terway_pod(node)
        self.restarts[node] = self.restarts.get(node, 0) + 1
        self._daemonset_status()  # true while the daemon restarts
        if self.runnable(pod["spec"]):
            log.info("terway pod %s on %s: restarting the node's daemon", pod["metadata"]["name"], node)
            self._restart(node)
        else:
            log.info("terway pod %s on %s: the lab cannot run %s: the node's daemon stays stopped",
                     pod["metadata"]["name"], node, ", ".join(sorted(_images(pod["spec"]) - {self.image})))
            self._stop_daemon(node)
        self._kubelet(node, pod)

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
        """One pass of the DaemonSet controller and the kubelets: a pod for every node without one (deleted by
        `vswitch add`'s rollout, or replaced below), pod status from the daemons, the rolling update of a
        changed pod template, then the DaemonSet's status."""
        for node in self._managed():
            if not self.terway_pods(node):
                self._run_new_pod(node)
        running: set[str] = set()
        for node in self._managed():
            for pod in self.terway_pods(node):
                running.add(str(pod["metadata"].get("uid", "")))
                self._kubelet(node, pod)
        self._pulls = {uid: at for uid, at in self._pulls.items() if uid in running}
        for pod in self._old_pods_to_replace():
            node = str(pod["spec"]["nodeName"])
            log.info("rolling update: replacing %s on %s", pod["metadata"]["name"], node)
            try:
                self.server.store.delete(CORE_PODS, NAMESPACE, pod["metadata"]["name"])
            except ApiError:
                continue  # deleted meanwhile (vswitch add): the next pass creates its successor
            self._run_new_pod(node)
        self._daemonset_status()

    def _kubelet(self, node: str, pod: dict[str, Any]) -> None:
        """The pod's status as kubelet reports it: ready with the node's daemon, or the image pull failure."""
        spec = pod.get("spec") or {}
        uid = str(pod["metadata"].get("uid", ""))
        if self.runnable(spec):
            wanted = pod_status(spec, self._daemon_ready(node))
        else:
            failed = self._pulls.setdefault(uid, time.monotonic())
            pull = IMAGE_PULL_BACKOFF if time.monotonic() - failed >= PULL_BACKOFF_AFTER_S else ERR_IMAGE_PULL
            wanted = pod_status(spec, False, pull, self.image)
        if _summary(pod.get("status") or {}) == _summary(wanted):
            return
        pod["status"] = wanted
        with contextlib.suppress(ApiError):  # deleted meanwhile: its successor gets a status on the next pass
            self.server.store.replace(CORE_PODS, NAMESPACE, pod["metadata"]["name"],
                                      {"apiVersion": "v1", "kind": "Pod", **pod}, status_only=True, manager="kubelet")

    def _old_pods_to_replace(self) -> list[dict[str, Any]]:
        """The pods of an older template to replace now, as the DaemonSet controller's RollingUpdate picks them
        (maxSurge 0): an old pod that is not ready at once; ready old pods while fewer than maxUnavailable
        (rounded up, at least 1) nodes are unavailable, so the next batch starts when this one is ready."""
        ds = self._live_daemonset()
        current = template_hash(ds["spec"]["template"])
        managed = self._managed()
        budget = max_unavailable(ds, len(managed))
        unavailable, replace, candidates = 0, [], []
        for node in managed:
            pods = self.terway_pods(node)
            new = [p for p in pods if p["metadata"].get("labels", {}).get("controller-revision-hash") == current]
            old = [p for p in pods if p not in new]
            if not pods or (new and old):
                unavailable += 1
            elif new:
                unavailable += 0 if _is_ready(new[0]) else 1
            elif not _is_ready(old[0]):
                replace.append(old[0])
            elif unavailable < budget:
                candidates.append(old[0])
        return replace + candidates[:max(0, budget - unavailable)]

    def _daemonset_status(self) -> None:
        """The DaemonSet's status from its pods, written in one step with the generation it describes."""
        with self.server.store.lock:
            ds = self._live_daemonset()
            current = template_hash(ds["spec"]["template"])
            managed = self._managed()
            pods = {n: self.terway_pods(n) for n in managed}
            ready = sum(1 for n in managed if any(_is_ready(p) for p in pods[n]))
            status = {
                "observedGeneration": int(ds["metadata"].get("generation", 1)),
                "desiredNumberScheduled": len(managed),
                "currentNumberScheduled": sum(1 for n in managed if pods[n]),
                "updatedNumberScheduled": sum(1 for n in managed if any(
                    p["metadata"].get("labels", {}).get("controller-revision-hash") == current for p in pods[n])),
                "numberReady": ready, "numberAvailable": ready, "numberUnavailable": len(managed) - ready,
                "numberMisscheduled": 0,
            }
            if ds.get("status") == status:
                return
            ds["status"] = status
            self.server.store.replace(APPS_DAEMONSETS, NAMESPACE, ds["metadata"]["name"], ds, status_only=True,
                                      manager="kube-controller-manager")

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
