"""The resource types the test API server serves, and their discovery documents."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), ("status",)),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), ("status",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ResourceType("", "v1", "services", "Service", True, ("svc",), ("status",)),
    ResourceType("", "v1", "pods", "Pod", True, ("po",), ("status",)),
    ResourceType("", "v1", "events", "Event", True, ("ev",)),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",), ("status",)),
    ResourceType("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
                 ("crd",), ("status",)),
)


def find(group: str, version: str, plural: str) -> ResourceType | None:
    for rt in RESOURCES:
        if (rt.group, rt.version, rt.plural) == (group, version, plural):
            return rt
    return None


def require(group: str, version: str, plural: str) -> ResourceType:
    """`find` for a resource the server always serves."""
    rt = find(group, version, plural)
    if rt is None:
        raise KeyError(f"{group}/{version}/{plural}")
    return rt


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    for rt in RESOURCES:
        if (rt.api_version, rt.kind) == (api_version, kind):
            return rt
    return None


def groups() -> list[str]:
    return sorted({rt.group for rt in RESOURCES if rt.group})


def _gv(group: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/v1", "version": "v1"}


def api_group(group: str) -> dict[str, Any]:
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [_gv(group)],
            "preferredVersion": _gv(group)}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{k: v for k, v in api_group(g).items() if k not in ("kind", "apiVersion")} for g in groups()]}


def api_versions(address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    chosen = [rt for rt in RESOURCES if (rt.group, rt.version) == (group, version)]
    if not chosen:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": chosen[0].group_version,
            "resources": list(_entries(chosen))}


def _entries(chosen: Iterable[ResourceType]) -> Iterable[dict[str, Any]]:
    for rt in chosen:
        entry: dict[str, Any] = {"name": rt.plural, "singularName": rt.kind.lower(), "namespaced": rt.namespaced,
                                 "kind": rt.kind, "verbs": VERBS}
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        yield entry
        for sub in rt.subresources:
            yield {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                   "kind": rt.kind, "verbs": ["get", "patch", "update"]}


VERSION_INFO = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.1", "gitCommit": "0" * 40, "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22.7", "compiler": "gc", "platform": "linux/amd64",
}
