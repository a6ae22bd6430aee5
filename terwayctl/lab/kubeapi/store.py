"""The object store: CRUD, patches, server-side apply, dry run and resourceVersion, without HTTP."""

from __future__ import annotations

import copy
import datetime
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from terwayctl.lab.kubeapi import patching
from terwayctl.lab.kubeapi.patching import MISSING, PatchError, Path
from terwayctl.lab.kubeapi.resources import ResourceType

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (group/plural, namespace, name)
PathSet = set[Path]  # named here: inside _Managers, `set` is its method
STATUS_WRITES_METADATA = frozenset({"Node"})
"""Kinds whose status subresource also takes labels and annotations (the real nodeStatusStrategy resets only
spec); for the others a write to ``status`` changes the status alone."""


class ApiError(Exception):
    """An error answered as a metav1.Status object."""

    def __init__(self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = dict(details or {})

    def status(self) -> Obj:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message,
                "reason": self.reason, "details": self.details, "code": self.code}


def _resource_label(rt: ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_resource_label(rt)} "{name}" not found',
                    {"name": name, "group": rt.group, "kind": rt.plural})


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_resource_label(rt)} "{name}": the object '
                    "has been modified; please apply your changes to the latest version and try again",
                    {"name": name, "group": rt.group, "kind": rt.plural})


def invalid(rt: ResourceType, name: str, message: str) -> ApiError:
    return ApiError(422, "Invalid", f'{rt.kind} "{name}" is invalid: {message}',
                    {"name": name, "group": rt.group, "kind": rt.kind})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


@dataclass(frozen=True)
class WriteResult:
    obj: Obj
    created: bool = False


@dataclass
class _Managers:
    """managedFields as {(manager, operation): [apiVersion, time, set of paths]}."""

    entries: dict[tuple[str, str], list[Any]]

    @classmethod
    def read(cls, obj: Mapping[str, Any]) -> _Managers:
        entries: dict[tuple[str, str], list[Any]] = {}
        for entry in (obj.get("metadata") or {}).get("managedFields") or []:
            paths = patching.paths_from_fields_v1(entry.get("fieldsV1") or {})
            entries[(entry.get("manager", ""), entry.get("operation", "Update"))] = [
                entry.get("apiVersion", ""), entry.get("time", ""), paths]
        return cls(entries)

    def set(self, key: tuple[str, str], api_version: str, paths: PathSet, now: str) -> None:
        old = self.entries.get(key)
        if old is not None and old[2] == paths:
            return
        self.entries[key] = [api_version, now, paths]

    def drop(self, paths: PathSet, keep: tuple[str, str] | None = None) -> None:
        for key, entry in self.entries.items():
            if key != keep:
                entry[2] = {p for p in entry[2] if not any(patching.overlaps(p, q) for q in paths)}

    def owned_by_others(self, path: Path, me: tuple[str, str]) -> bool:
        return any(key != me and any(patching.overlaps(path, q) for q in entry[2]) for key, entry in self.entries.items())

    def render(self) -> list[Obj]:
        return [
            {"manager": key[0], "operation": key[1], "apiVersion": entry[0], "time": entry[1],
             "fieldsType": "FieldsV1", "fieldsV1": patching.fields_v1(entry[2])}
            for key, entry in self.entries.items() if entry[2]
        ]


def _content(obj: Mapping[str, Any]) -> Obj:
    """An object without the server-owned metadata, to decide whether a write changed anything."""
    plain = copy.deepcopy(dict(obj))
    meta = plain.get("metadata") or {}
    for key in ("resourceVersion", "managedFields", "generation", "uid", "creationTimestamp"):
        meta.pop(key, None)
    return plain


def _spec_part(obj: Mapping[str, Any]) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


WriteHook = Callable[[ResourceType, Obj, Obj | None], None]


class Store:
    """Every object, keyed by resource, namespace and name; one global resourceVersion counter."""

    def __init__(self, clock: Callable[[], datetime.datetime] | None = None) -> None:
        self.lock = threading.RLock()
        self.objects: dict[Key, Obj] = {}
        self.types: dict[Key, ResourceType] = {}
        self.revision = 0
        self.clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self.hooks: list[WriteHook] = []

    # --- helpers ------------------------------------------------------------------------------------

    def now(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    @staticmethod
    def key(rt: ResourceType, namespace: str, name: str) -> Key:
        return (f"{rt.group}/{rt.plural}", namespace if rt.namespaced else "", name)

    def _check_namespace(self, rt: ResourceType, namespace: str) -> None:
        if rt.namespaced and not any(k[0] == "/namespaces" and k[2] == namespace for k in self.objects):
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           {"name": namespace, "kind": "namespaces"})

    def _check_body(self, rt: ResourceType, body: Any, namespace: str, name: str | None) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON or YAML object")
        if body.get("kind", rt.kind) != rt.kind or body.get("apiVersion", rt.api_version) != rt.api_version:
            raise bad_request(f"the API version in the data ({body.get('apiVersion')}) does not match the expected "
                              f"API version ({rt.api_version}) or kind ({rt.kind})")
        meta = body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        obj: Obj = {"apiVersion": rt.api_version, "kind": rt.kind, **copy.deepcopy(body)}
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if name is not None:
            if meta.get("name", name) != name:
                raise bad_request(f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                                  f"({name})")
            meta["name"] = name
        if rt.namespaced:
            if meta.get("namespace", namespace) != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the "
                                  "request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        label_values = meta.get("labels") or {}
        if not isinstance(label_values, dict) or not all(isinstance(v, str) for v in label_values.values()):
            raise invalid(rt, str(meta.get("name")), "metadata.labels: Invalid value: label values must be strings")
        return obj

    def _commit(self, rt: ResourceType, key: Key, obj: Obj, old: Obj | None, dry_run: bool) -> Obj:
        meta = obj["metadata"]
        if old is not None and _content(obj) == _content(old) and meta.get("managedFields") == old["metadata"].get(
                "managedFields"):
            return copy.deepcopy(old)
        if "spec" in obj and rt.kind not in ("Node", "Pod", "Namespace", "Service"):
            previous = old["metadata"].get("generation", 1) if old else 0
            changed = old is None or _spec_part(obj) != _spec_part(old)
            meta["generation"] = previous + 1 if changed else previous
        if dry_run:
            if old is None:
                meta.pop("resourceVersion", None)
            return copy.deepcopy(obj)
        self.revision += 1
        meta["resourceVersion"] = str(self.revision)
        self.objects[key] = obj
        self.types[key] = rt
        for hook in self.hooks:
            hook(rt, copy.deepcopy(obj), copy.deepcopy(old) if old else None)
        return copy.deepcopy(self.objects[key])

    def _new_metadata(self, obj: Obj) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self.now()
        meta.pop("resourceVersion", None)

    def _track_update(self, rt: ResourceType, old: Obj, new: Obj, manager: str) -> None:
        managers = _Managers.read(old)
        old_paths, new_paths = patching.leaf_paths(old), patching.leaf_paths(new)
        changed = {p for p in new_paths if patching.get_path(old, p) != patching.get_path(new, p)}
        removed = old_paths - new_paths
        managers.drop(changed | removed, keep=None)
        me = (manager, "Update")
        mine = managers.entries.get(me, [rt.api_version, "", set()])[2]
        managers.set(me, rt.api_version, (set(mine) - removed) | changed, self.now())
        rendered = managers.render()
        new["metadata"]["managedFields"] = rendered
        if not rendered:
            new["metadata"].pop("managedFields", None)

    # --- reads -----------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        with self.lock:
            obj = self.objects.get(self.key(rt, namespace, name))
            if obj is None:
                raise not_found(rt, name)
            return copy.deepcopy(obj)

    def list(self, rt: ResourceType, namespace: str | None, label_selector: str = "",
             field_selector: str = "") -> Obj:
        if field_selector and (problem := patching.validate_field_selector(field_selector)):
            raise bad_request(problem)
        with self.lock:
            items = []
            for key, obj in sorted(self.objects.items()):
                if key[0] != f"{rt.group}/{rt.plural}" or (namespace and key[1] != namespace):
                    continue
                labels = obj["metadata"].get("labels") or {}
                if label_selector and not patching.label_selector_matches(label_selector, labels):
                    continue
                if field_selector and not patching.field_selector_matches(field_selector, obj):
                    continue
                items.append({k: v for k, v in copy.deepcopy(obj).items() if k not in ("apiVersion", "kind")})
            return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": str(self.revision)}, "items": items}

    # --- writes ---------------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, body: Any, *, manager: str = "unknown",
               dry_run: bool = False) -> Obj:
        with self.lock:
            obj = self._check_body(rt, body, namespace, None)
            meta = obj["metadata"]
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            name = meta.get("name")
            if not isinstance(name, str) or not name:
                raise invalid(rt, "", "metadata.name: Required value: name or generateName is required")
            self._check_namespace(rt, namespace)
            key = self.key(rt, namespace, name)
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f'{_resource_label(rt)} "{name}" already exists',
                               {"name": name, "group": rt.group, "kind": rt.plural})
            self._new_metadata(obj)
            obj["metadata"].pop("managedFields", None)
            empty: Obj = {"metadata": {}}
            self._track_update(rt, empty, obj, manager)
            return self._commit(rt, key, obj, None, dry_run)

    def replace(self, rt: ResourceType, namespace: str, name: str, body: Any, *, manager: str = "unknown",
                dry_run: bool = False, status_only: bool = False) -> Obj:
        with self.lock:
            obj = self._check_body(rt, body, namespace, name)
            key = self.key(rt, namespace, name)
            old = self.objects.get(key)
            if old is None:
                raise not_found(rt, name)
            wanted = obj["metadata"].get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if status_only:
                merged = copy.deepcopy(old)
                if "status" in obj:
                    merged["status"] = obj["status"]
                if rt.kind in STATUS_WRITES_METADATA:
                    for field in ("labels", "annotations"):
                        if field in obj["metadata"]:
                            merged["metadata"][field] = obj["metadata"][field]
                        else:
                            merged["metadata"].pop(field, None)
                obj = merged
            else:
                if "status" in old:
                    obj["status"] = copy.deepcopy(old["status"])
                for field in ("uid", "creationTimestamp", "generation", "managedFields"):
                    if field in old["metadata"]:
                        obj["metadata"][field] = copy.deepcopy(old["metadata"][field])
                obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                self._track_update(rt, old, obj, manager)
            return self._commit(rt, key, obj, old, dry_run)

    def patch(self, rt: ResourceType, namespace: str, name: str, content_type: str, raw: bytes, *,
              manager: str | None, force: bool = False, dry_run: bool = False, status_only: bool = False) -> Obj:
        kind = content_type.split(";")[0].strip()
        with self.lock:
            if kind == "application/apply-patch+yaml":
                return self._apply(rt, namespace, name, raw, manager, force, dry_run)
            old = self.objects.get(self.key(rt, namespace, name))
            if old is None:
                raise not_found(rt, name)
            patch = _decode_json(raw)
            try:
                if kind == "application/merge-patch+json":
                    result = patching.merge_patch(old, patch)
                elif kind == "application/strategic-merge-patch+json":
                    result = patching.strategic_merge_patch(old, patch, patching.MERGE_KEYS.get(rt.kind))
                elif kind == "application/json-patch+json":
                    result = patching.json_patch(old, patch)
                else:
                    raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format "
                                   f"- accepted media types include: application/json-patch+json, "
                                   f"application/merge-patch+json, application/apply-patch+yaml ({kind})")
            except PatchError as exc:
                if exc.code == 400:
                    raise bad_request(str(exc)) from None
                raise invalid(rt, name, str(exc)) from None
            if not isinstance(result, dict):
                raise bad_request("the patch did not produce an object")
            wanted = (result.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            result.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
            return self.replace(rt, namespace, name, result, manager=manager or "unknown", dry_run=dry_run,
                                status_only=status_only)

    def _apply(self, rt: ResourceType, namespace: str, name: str, raw: bytes, manager: str | None, force: bool,
               dry_run: bool) -> Obj:
        if not manager:
            raise invalid(rt, name, "fieldManager: Required value: is required for apply patch")
        try:
            body = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise bad_request(f"error decoding YAML: {exc}") from None
        applied = self._check_body(rt, body, namespace, name)
        applied.pop("status", None)
        for field in patching.UNOWNED_METADATA - {"name", "namespace"}:
            applied["metadata"].pop(field, None)
        key = self.key(rt, namespace, name)
        old = self.objects.get(key)
        me = (manager, "Apply")
        new_paths = patching.leaf_paths(applied)
        if old is None:
            self._check_namespace(rt, namespace)
            obj = copy.deepcopy(applied)
            self._new_metadata(obj)
            managers = _Managers({})
            managers.set(me, rt.api_version, new_paths, self.now())
            obj["metadata"]["managedFields"] = managers.render()
            return self._commit(rt, key, obj, None, dry_run)
        managers = _Managers.read(old)
        merged = _deep_merge(old, applied)
        conflicts = sorted(
            (owner, path)
            for owner, entry in managers.entries.items() if owner != me
            for path in entry[2]
            if any(patching.overlaps(path, p) for p in new_paths)
            and patching.get_path(old, path) != patching.get_path(merged, path)
        )
        if conflicts and not force:
            raise _apply_conflict(rt, name, conflicts)
        if force:
            managers.drop({p for _, p in conflicts}, keep=me)
        previous = managers.entries.get(me, ["", "", set()])[2]
        for path in sorted(set(previous) - new_paths, key=len, reverse=True):
            if not managers.owned_by_others(path, me) and patching.get_path(applied, path) is MISSING:
                patching.delete_path(merged, path)
        managers.set(me, rt.api_version, new_paths, self.now())
        merged["metadata"]["managedFields"] = managers.render()
        return self._commit(rt, key, merged, old, dry_run)

    def delete(self, rt: ResourceType, namespace: str, name: str, *, dry_run: bool = False) -> Obj:
        with self.lock:
            key = self.key(rt, namespace, name)
            old = self.objects.get(key)
            if old is None:
                raise not_found(rt, name)
            if not dry_run:
                del self.objects[key]
                self.types.pop(key, None)
                self.revision += 1
                if rt.kind == "Namespace":
                    for other in [k for k in self.objects if k[1] == name]:
                        del self.objects[other]
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": rt.group, "kind": rt.plural,
                                "uid": old["metadata"].get("uid")}}


def _deep_merge(live: Obj, applied: Mapping[str, Any]) -> Obj:
    result = copy.deepcopy(live)
    for key, value in applied.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict) and value:
            result[key] = _deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _apply_conflict(rt: ResourceType, name: str, conflicts: list[tuple[tuple[str, str], Path]]) -> ApiError:
    causes = [{"type": "FieldManagerConflict", "message": f'conflict with "{owner[0]}"', "field": "." + ".".join(path)}
              for owner, path in conflicts]
    lines = "\n".join(f'- conflict with "{owner[0]}": .{".".join(path)}' for owner, path in conflicts)
    message = f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: {lines}"
    return ApiError(409, "Conflict", message, {"name": name, "group": rt.group, "kind": rt.plural, "causes": causes})


def _decode_json(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"error decoding the patch: {exc}") from None
