"""Server-side apply of rendered objects (field manager terwayctl), dry runs and per-object diffs."""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from terwayctl.core.errors import InvalidInput
from terwayctl.kube.api import Applier
from terwayctl.kube.client import FIELD_MANAGER, resource_path
from terwayctl.kube.configmap import VSWITCH_FIELD_MANAGER
from terwayctl.kube.errors import KubeNotFound

DRY_RUN_MODES = ("server", "client")
NOISY_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")
# Objects others depend on go first (namespaces, CRDs, identities, RBAC, configuration, then workloads).
KIND_ORDER = ("Namespace", "CustomResourceDefinition", "ServiceAccount", "Secret", "ClusterRole", "Role",
              "ClusterRoleBinding", "RoleBinding", "ConfigMap", "Service")


@dataclass(frozen=True)
class ApplyOptions:
    dry_run: str | None = None
    """None (apply), "server" (dryRun=All: the server computes the result) or "client" (local merge)."""
    force_conflicts: bool = False
    diff: bool = False
    default_namespace: str = "kube-system"

    def __post_init__(self) -> None:
        if self.dry_run is not None and self.dry_run not in DRY_RUN_MODES:
            raise InvalidInput(f"unknown dry-run mode {self.dry_run!r}", hint="use --dry-run server or client")


@dataclass(frozen=True)
class ApplyResult:
    api_version: str
    kind: str
    name: str
    namespace: str | None
    action: str
    """created, configured or unchanged (what the apply did, or would do in a dry run)."""
    diff: str = ""
    notes: tuple[str, ...] = ()
    """What apply deliberately left as it is in the cluster (e.g. the pod vSwitches of eni_conf)."""

    @property
    def ref(self) -> str:
        return f"{self.kind.lower()}/{self.name}"


def apply_order(objects: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Stable order: the kinds of KIND_ORDER first, in that order, then the rest as given."""
    indexed = list(enumerate(objects))
    rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
    indexed.sort(key=lambda pair: (rank.get(str(pair[1].get("kind")), len(KIND_ORDER)), pair[0]))
    return [obj for _, obj in indexed]


def clean_for_diff(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """The object without server bookkeeping (managedFields, resourceVersion, ...) and status."""
    if obj is None:
        return {}
    plain = copy.deepcopy(dict(obj))
    plain.pop("status", None)
    meta = plain.get("metadata")
    if isinstance(meta, dict):
        for key in NOISY_METADATA:
            meta.pop(key, None)
        if not meta.get("annotations"):
            meta.pop("annotations", None)
    return plain


def _yaml(obj: Mapping[str, Any]) -> list[str]:
    """YAML with multi-line strings (eni_conf, conflists) as literal blocks, so a diff shows their lines."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, represent_str)
    if not obj:
        return []
    text = yaml.dump(dict(obj), Dumper=Dumper, sort_keys=True, default_flow_style=False, width=1000)
    return text.splitlines(keepends=True)


def object_diff(live: Mapping[str, Any] | None, result: Mapping[str, Any], label: str) -> str:
    """A unified diff of the live object vs the applied result, as YAML without noise ('' when equal)."""
    before, after = _yaml(clean_for_diff(live)), _yaml(clean_for_diff(result))
    return "".join(difflib.unified_diff(before, after, f"live/{label}", f"applied/{label}"))


def _merge(live: Mapping[str, Any], applied: Mapping[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(dict(live))
    for key, value in applied.items():
        current = result.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict) and value:
            result[key] = _merge(current, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _owns_eni_conf(live: Mapping[str, Any], manager: str) -> bool:
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        fields = (entry.get("fieldsV1") or {}).get("f:data") or {}
        if entry.get("manager") == manager and "f:eni_conf" in fields:
            return True
    return False


def keep_live_vswitches(body: dict[str, Any], live: Mapping[str, Any]) -> tuple[list[str], bool]:
    """The ownership rule of eni_conf (docs/vswitch.md): once installed, its `vswitches` belong to
    `terwayctl vswitch add/remove`, so apply carries the live list into what it applies.

    Changes `body` in place; returns (notes, force): force when the field was last written by the
    vswitch commands and apply still changes it (another key of eni_conf), so apply takes the field
    back without a conflict while keeping their vSwitches.
    """
    from terwayctl.core.eniconf import configured_vswitches, dump_like, parse_eni_conf_text

    data, live_data = body.get("data"), live.get("data") or {}
    if not isinstance(data, dict):
        return [], False
    rendered, current = data.get("eni_conf"), live_data.get("eni_conf")
    if not isinstance(rendered, str) or not isinstance(current, str):
        return [], False
    name = str((body.get("metadata") or {}).get("name", ""))
    try:
        wanted, existing = parse_eni_conf_text(rendered, "rendered eni_conf"), parse_eni_conf_text(current, "live")
        live_vsw = configured_vswitches(existing, "live eni_conf") if "vswitches" in existing else None
        new_vsw = configured_vswitches(wanted, "rendered eni_conf")
    except InvalidInput:
        return [], False
    notes = []
    if live_vsw is not None and live_vsw != new_vsw:
        wanted["vswitches"] = live_vsw
        data["eni_conf"] = dump_like(wanted, rendered)
        shown = "; ".join(f"{zone}: {', '.join(ids)}" for zone, ids in sorted(live_vsw.items()))
        notes.append(f"configmap/{name}: eni_conf vswitches kept as in the cluster ({shown}): after install they "
                     "belong to 'terwayctl vswitch add/remove', which apply never undoes")
    force = data["eni_conf"] != current and _owns_eni_conf(live, VSWITCH_FIELD_MANAGER)
    return notes, force


def _identity(obj: Mapping[str, Any], default_namespace: str, namespaced: bool) -> tuple[str, str | None]:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"a {obj.get('kind')} object has no metadata.name", hint="every object needs a name")
    namespace = (meta.get("namespace") if isinstance(meta, Mapping) else None) or default_namespace
    return name, str(namespace) if namespaced else None


def apply_object(client: Applier, obj: Mapping[str, Any], options: ApplyOptions) -> ApplyResult:
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    if not api_version or not kind:
        raise InvalidInput("an object lacks apiVersion or kind", hint="every object needs apiVersion and kind")
    plural, namespaced = client.resource_for(api_version, kind)
    name, namespace = _identity(obj, options.default_namespace, namespaced)
    body = copy.deepcopy(dict(obj))
    if namespace:
        body.setdefault("metadata", {})["namespace"] = namespace
    try:
        live: dict[str, Any] | None = client.get(api_version, plural, name, namespace)
    except KubeNotFound:
        live = None
    label = f"{kind}/{namespace + '/' if namespace else ''}{name}"
    notes: list[str] = []
    take_back = False
    if kind == "ConfigMap" and api_version == "v1" and live is not None:
        notes, take_back = keep_live_vswitches(body, live)
    if options.dry_run == "client":
        result = _merge(live, body) if live is not None else body
    else:
        query = [("fieldManager", FIELD_MANAGER)]
        if options.force_conflicts or take_back:
            query.append(("force", "true"))
        if options.dry_run == "server":
            query.append(("dryRun", "All"))
        result = client.request("PATCH", resource_path(api_version, plural, namespace, name), what=label,
                                body=json.loads(json.dumps(body)), query=query,
                                content_type="application/apply-patch+yaml")
    if live is None:
        action = "created"
    elif options.dry_run is None:
        same = (result.get("metadata") or {}).get("resourceVersion") == (live.get("metadata") or {}).get(
            "resourceVersion")
        action = "unchanged" if same else "configured"
    else:
        action = "unchanged" if clean_for_diff(result) == clean_for_diff(live) else "configured"
    diff = object_diff(live, result, label) if options.diff else ""
    return ApplyResult(api_version, kind, name, namespace, action, diff, tuple(notes))


def apply_objects(client: Applier, objects: Iterable[Mapping[str, Any]], options: ApplyOptions) -> list[ApplyResult]:
    """Apply each object in dependency order; stops at the first failure (it raises)."""
    return [apply_object(client, obj, options) for obj in apply_order(objects)]
