"""A Node's status condition and annotation, written the way node-problem-detector writes its conditions.

`patch_node_status` sends ONE strategic merge patch to the Node's ``status`` subresource
(``PATCH /api/v1/nodes/NAME/status``, RBAC ``patch nodes/status``): ``status.conditions`` is merged
by its ``type`` key, so kubelet's conditions (Ready, MemoryPressure, ...) are left as they are, and
``metadata.annotations`` is merged key by key (the status subresource of a Node keeps everything
but ``spec`` of what it is sent). `read_condition` reads one condition back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from terwayctl.kube.api import ObjectReader
from terwayctl.kube.client import resource_path

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class StatusPatcher(Protocol):
    """The one call the node-status writer makes (`terwayctl.kube.client.KubeClient` satisfies it)."""

    def request(self, method: str, path: str, *, what: str, body: Any = None,
                query: Any = (), content_type: str | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class NodeCondition:
    """One entry of ``status.conditions`` (the times are RFC 3339 strings, as the API server keeps them)."""

    type: str
    status: str
    """``True``, ``False`` or ``Unknown``."""
    reason: str = ""
    message: str = ""
    last_heartbeat_time: str = ""
    last_transition_time: str = ""

    def as_object(self) -> dict[str, str]:
        return {"type": self.type, "status": self.status, "reason": self.reason, "message": self.message,
                "lastHeartbeatTime": self.last_heartbeat_time, "lastTransitionTime": self.last_transition_time}


def condition_from_object(obj: Mapping[str, Any]) -> NodeCondition:
    return NodeCondition(
        type=str(obj.get("type") or ""), status=str(obj.get("status") or "Unknown"),
        reason=str(obj.get("reason") or ""), message=str(obj.get("message") or ""),
        last_heartbeat_time=str(obj.get("lastHeartbeatTime") or ""),
        last_transition_time=str(obj.get("lastTransitionTime") or ""))


def node_condition(node: Mapping[str, Any], condition_type: str) -> NodeCondition | None:
    """The condition `condition_type` of a Node object, or None."""
    for found in (node.get("status") or {}).get("conditions") or []:
        if isinstance(found, dict) and found.get("type") == condition_type:
            return condition_from_object(found)
    return None


def read_condition(reader: ObjectReader, node_name: str, condition_type: str) -> NodeCondition | None:
    """The Node's condition `condition_type` (None when it has none; KubeNotFound when there is no such Node)."""
    return node_condition(reader.get("v1", "nodes", node_name), condition_type)


def patch_node_status(patcher: StatusPatcher, node_name: str, condition: NodeCondition,
                      annotations: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Set one condition (merged by type) and, in the same call, annotations (None deletes one)."""
    body: dict[str, Any] = {"status": {"conditions": [condition.as_object()]}}
    if annotations:
        body["metadata"] = {"annotations": dict(annotations)}
    path = resource_path("v1", "nodes", None, node_name) + "/status"
    return patcher.request("PATCH", path, what=f"nodes/{node_name}/status", body=body,
                           content_type=STRATEGIC_MERGE_PATCH)
