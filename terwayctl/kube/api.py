"""Narrow interfaces of what each consumer uses of the API server (each declares only the calls it makes).

`terwayctl.kube.client.KubeClient` satisfies all of them; logic above can be unit-tested with a
small fake, while the real client is tested end to end against the test API server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

Obj = dict[str, Any]


class ObjectReader(Protocol):
    """Reads: nodes, pods, events, ConfigMaps, DaemonSets."""

    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> Obj: ...

    def list(self, api_version: str, plural: str, namespace: str | None = None, *, label_selector: str = "",
             field_selector: str = "") -> list[Obj]: ...


class ObjectWriter(ObjectReader, Protocol):
    """ConfigMap edits (read, PUT with resourceVersion) and rollout restarts (patch)."""

    def replace(self, api_version: str, plural: str, obj: Mapping[str, Any]) -> Obj: ...

    def patch(self, api_version: str, plural: str, name: str, patch: Any, *, namespace: str | None = None,
              content_type: str = "application/merge-patch+json") -> Obj: ...


class Applier(ObjectReader, Protocol):
    """Server-side apply of arbitrary objects."""

    def resource_for(self, api_version: str, kind: str) -> tuple[str, bool]: ...

    def request(self, method: str, path: str, *, what: str, body: Any = None,
                query: Sequence[tuple[str, str]] = (), content_type: str | None = None) -> Obj: ...
