"""ConfigMap edits with optimistic concurrency: read, transform (a pure function), PUT, retry on 409."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from terwayctl.kube.api import ObjectWriter
from terwayctl.kube.errors import KubeConflict

Transform = Callable[[Mapping[str, str]], Mapping[str, str]]
DEFAULT_ATTEMPTS = 5


@dataclass(frozen=True)
class EditResult:
    name: str
    namespace: str
    before: Mapping[str, str]
    after: Mapping[str, str]
    attempts: int
    """Writes tried: 1 without a conflict; more when another writer changed the ConfigMap meanwhile."""
    changed: bool
    written: bool
    resource_version: str


def edit_configmap(
    client: ObjectWriter,
    namespace: str,
    name: str,
    transform: Transform,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    dry_run: bool = False,
) -> EditResult:
    """Apply `transform` to the ConfigMap's data and write it with its resourceVersion.

    On 409 Conflict the ConfigMap is read again and `transform` applied to the fresh data, up to
    `attempts` writes, so concurrent edits of different keys/values all land. `transform` may raise
    (e.g. InvalidInput when the fresh data already holds the change). dry_run computes, never writes.
    """
    for attempt in range(1, max(attempts, 1) + 1):
        obj = client.get("v1", "configmaps", name, namespace)
        before = {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        after = dict(transform(before))
        version = str((obj.get("metadata") or {}).get("resourceVersion", ""))
        changed = after != before
        if dry_run or not changed:
            return EditResult(name, namespace, before, after, attempt, changed, False, version)
        updated = {**obj, "data": after}
        try:
            reply = client.replace("v1", "configmaps", updated)
        except KubeConflict as exc:
            if exc.reason == "Conflict":
                continue
            raise
        written_version = str((reply.get("metadata") or {}).get("resourceVersion", ""))
        return EditResult(name, namespace, before, after, attempt, True, True, written_version)
    raise KubeConflict(
        f"configmaps/{name}: still changing under us after {attempts} attempts",
        hint="another writer keeps updating it: retry in a moment",
        status=409,
        reason="Conflict",
    )
