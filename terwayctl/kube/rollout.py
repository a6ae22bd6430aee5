"""DaemonSet rollout restart and the wait for the rollout, with a fake-able clock and sleep."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from terwayctl.kube.api import ObjectReader, ObjectWriter
from terwayctl.kube.reads import PodInfo, list_pods

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
