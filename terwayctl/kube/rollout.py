"""DaemonSet rollout restart and the wait for the rollout, with a fake-able clock and sleep."""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from terwayctl.kube.api import ObjectReader, ObjectWriter
from terwayctl.kube.client import resource_path
from terwayctl.kube.reads import PodInfo, list_pods, pod_from_object

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
DEFAULT_POLL = 1.0


@dataclass(frozen=True)
class RolloutProgress:
    generation: int
    observed_generation: int
    desired: int
    updated: int
    ready: int
    available: int

    @property
    def done(self) -> bool:
        return (self.observed_generation >= self.generation and self.updated >= self.desired
                and self.ready >= self.desired and self.available >= self.desired)


@dataclass(frozen=True)
class UnreadyPod:
    name: str
    node: str | None
    reason: str


@dataclass(frozen=True)
class RolloutResult:
    name: str
    namespace: str
    complete: bool
    progress: RolloutProgress
    unready: tuple[UnreadyPod, ...]
    waited_seconds: float


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def progress_of(ds: Mapping[str, Any]) -> RolloutProgress:
    status = ds.get("status") or {}
    return RolloutProgress(
        generation=_int((ds.get("metadata") or {}).get("generation") or 1),
        observed_generation=_int(status.get("observedGeneration")),
        desired=_int(status.get("desiredNumberScheduled")),
        updated=_int(status.get("updatedNumberScheduled")),
        ready=_int(status.get("numberReady")),
        available=_int(status.get("numberAvailable")),
    )


def restart_daemonset(client: ObjectWriter, namespace: str, name: str, now: datetime.datetime) -> int:
    """Patch the pod template's restartedAt annotation (kubectl rollout restart); returns the new generation."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    reply = client.patch("apps/v1", "daemonsets", name, patch, namespace=namespace,
                         content_type="application/strategic-merge-patch+json")
    return _int((reply.get("metadata") or {}).get("generation") or 1)


def _selector(ds: Mapping[str, Any]) -> str:
    labels = ((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def unready_pods(reader: ObjectReader, ds: Mapping[str, Any]) -> tuple[UnreadyPod, ...]:
    namespace = str((ds.get("metadata") or {}).get("namespace", ""))
    selector = _selector(ds)
    pods: list[PodInfo] = list_pods(reader, namespace, label_selector=selector) if selector else []
    return tuple(UnreadyPod(p.name, p.node, p.reason or p.phase) for p in pods if not p.ready)


def wait_for_rollout(
    reader: ObjectReader,
    namespace: str,
    name: str,
    *,
    timeout: float,
    poll: float = DEFAULT_POLL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_progress: Callable[[RolloutProgress], None] | None = None,
) -> RolloutResult:
    """Poll the DaemonSet until its rollout is done or `timeout` seconds pass.

    At the timeout the result lists the DaemonSet's pods that are not ready (name, node, reason).
    """
    start = clock()
    polls = int(timeout / poll) + 2 if poll > 0 else 1
    for _ in range(polls):
        ds = reader.get("apps/v1", "daemonsets", name, namespace)
        progress = progress_of(ds)
        if on_progress is not None:
            on_progress(progress)
        elapsed = clock() - start
        if progress.done:
            return RolloutResult(name, namespace, True, progress, (), elapsed)
        if elapsed >= timeout:
            return RolloutResult(name, namespace, False, progress, unready_pods(reader, ds), elapsed)
        sleep(min(poll, timeout - elapsed))
    ds = reader.get("apps/v1", "daemonsets", name, namespace)
    progress = progress_of(ds)
    if progress.done:
        return RolloutResult(name, namespace, True, progress, (), clock() - start)
    return RolloutResult(name, namespace, False, progress, unready_pods(reader, ds), clock() - start)


# --- restarting the terway pods of some nodes only, in batches ------------------------------------------


class PodRestarter(ObjectReader, Protocol):
    """Reads plus DELETE (a deleted DaemonSet pod is recreated by the DaemonSet controller)."""

    def request(self, method: str, path: str, *, what: str, body: Any = None,
                query: Sequence[tuple[str, str]] = (), content_type: str | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BatchOutcome:
    nodes: tuple[str, ...]
    ready: bool
    unready: tuple[UnreadyPod, ...]
    """The pods of the batch not ready at the timeout (a node without a new pod: reason NotRecreated)."""


@dataclass(frozen=True)
class NodeRestartResult:
    name: str
    namespace: str
    complete: bool
    batch_size: int
    batches: tuple[BatchOutcome, ...]
    """The batches run, the failed one last when not complete."""
    nodes: tuple[str, ...]
    """The nodes whose pods are restarted, in order."""
    waited_seconds: float
    skipped: tuple[str, ...] = ()
    """Nodes asked for that run no pod of the DaemonSet (nothing to restart)."""

    @property
    def restarted(self) -> int:
        return sum(len(b.nodes) for b in self.batches if b.ready)


def max_unavailable(ds: Mapping[str, Any], desired: int) -> int:
    """The DaemonSet's rollingUpdate.maxUnavailable as a pod count (a percentage rounds up; at least 1)."""
    strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
    value = strategy.get("maxUnavailable", 1)
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = float(value[:-1])
        except ValueError:
            return 1
        return max(1, math.ceil(desired * percent / 100))
    return max(1, _int(value))


def _node_pods(reader: ObjectReader, namespace: str, selector: str, node: str) -> list[dict[str, Any]]:
    return reader.list("v1", "pods", namespace, label_selector=selector, field_selector=f"spec.nodeName={node}")


def restart_pods_on_nodes(
    client: PodRestarter,
    namespace: str,
    name: str,
    nodes: Sequence[str],
    *,
    timeout: float,
    poll: float = DEFAULT_POLL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_batch: Callable[[int, int, Sequence[str]], None] | None = None,
) -> NodeRestartResult:
    """Delete the DaemonSet's pods on `nodes`, at most maxUnavailable at a time, waiting for each batch.

    A batch is done when every node of it runs a new (other uid) ready pod of the DaemonSet; a batch
    that is not done within `timeout` seconds stops the restart (the rest keep their old pods).
    `on_batch(done, total, batch_nodes)` is called before each batch and once at the end.
    """
    start = clock()
    ds = client.get("apps/v1", "daemonsets", name, namespace)
    selector = _selector(ds)
    asked = list(dict.fromkeys(nodes))
    skipped = tuple(n for n in asked if not _node_pods(client, namespace, selector, n))
    ordered = [n for n in asked if n not in skipped]
    size = max_unavailable(ds, progress_of(ds).desired or len(ordered))
    batches: list[BatchOutcome] = []
    done = 0
    for first in range(0, len(ordered), size):
        batch = ordered[first:first + size]
        if on_batch is not None:
            on_batch(done, len(ordered), batch)
        old: dict[str, set[str]] = {}
        for node in batch:
            pods = _node_pods(client, namespace, selector, node)
            old[node] = {str((p.get("metadata") or {}).get("uid", "")) for p in pods}
            for pod in pods:
                pod_name = str((pod.get("metadata") or {}).get("name", ""))
                client.request("DELETE", resource_path("v1", "pods", namespace, pod_name), what=f"pods/{pod_name}")
        outcome = _wait_batch(client, namespace, selector, old, timeout=timeout, poll=poll, clock=clock, sleep=sleep)
        batches.append(outcome)
        if not outcome.ready:
            return NodeRestartResult(name, namespace, False, size, tuple(batches), tuple(ordered), clock() - start,
                                     skipped)
        done += len(batch)
    if on_batch is not None:
        on_batch(done, len(ordered), [])
    return NodeRestartResult(name, namespace, True, size, tuple(batches), tuple(ordered), clock() - start, skipped)


def _wait_batch(
    reader: ObjectReader, namespace: str, selector: str, old: Mapping[str, set[str]], *, timeout: float,
    poll: float, clock: Callable[[], float], sleep: Callable[[float], None],
) -> BatchOutcome:
    start = clock()
    while True:
        unready: list[UnreadyPod] = []
        for node, previous in old.items():
            fresh = [p for p in _node_pods(reader, namespace, selector, node)
                     if str((p.get("metadata") or {}).get("uid", "")) not in previous]
            if not fresh:
                unready.append(UnreadyPod("-", node, "NotRecreated"))
                continue
            infos = [pod_from_object(p) for p in fresh]
            unready += [UnreadyPod(i.name, node, i.reason or i.phase) for i in infos if not i.ready]
        elapsed = clock() - start
        if not unready:
            return BatchOutcome(tuple(old), True, ())
        if elapsed >= timeout:
            return BatchOutcome(tuple(old), False, tuple(unready))
        sleep(min(poll, timeout - elapsed))
