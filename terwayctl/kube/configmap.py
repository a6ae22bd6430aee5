"""ConfigMap edits with optimistic concurrency: read, transform (a pure function), PUT, retry on 409.

Who owns what: `terwayctl apply` writes the whole eni-config by server-side apply (field manager
`terwayctl`). The `vswitch` commands edit only the `vswitches` key inside the eni_conf string, with
a PUT under their own field manager `terwayctl-vswitch` (an Update, never an Apply), so they never
take part in apply's conflict detection; `apply` in turn keeps the live `vswitches` of eni_conf
(kube/apply.py) so it never undoes them. eni_conf is one string field for the API server, so the
split is by key inside it, kept by the two commands, not by the server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from terwayctl.kube.client import resource_path
from terwayctl.kube.errors import KubeConflict

Transform = Callable[[Mapping[str, str]], Mapping[str, str]]
DEFAULT_ATTEMPTS = 5
VSWITCH_FIELD_MANAGER = "terwayctl-vswitch"


class ConfigMapWriter(Protocol):
    """Reads a ConfigMap and PUTs it back under a given field manager."""

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]: ...

    def request(self, method: str, path: str, *, what: str, body: Any = None,
                query: Sequence[tuple[str, str]] = (), content_type: str | None = None) -> dict[str, Any]: ...


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
    client: ConfigMapWriter,
    namespace: str,
    name: str,
    transform: Transform,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    dry_run: bool = False,
    field_manager: str = VSWITCH_FIELD_MANAGER,
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
            reply = client.request("PUT", resource_path("v1", "configmaps", namespace, name),
                                   what=f"configmaps/{name}", body=updated, query=[("fieldManager", field_manager)])
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
