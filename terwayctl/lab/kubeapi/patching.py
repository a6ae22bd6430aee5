"""Merge patch (RFC 7396), JSON patch (RFC 6902), field paths, managed fields and selectors."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

Path = tuple[str, ...]
MISSING = object()


class PatchError(Exception):
    """A patch that cannot be applied (the server answers 422, or 409 for a failed test op)."""

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.code = code


# --- RFC 7396 ----------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


MERGE_KEYS: dict[str, dict[Path, str]] = {
    "Node": {("status", "conditions"): "type", ("status", "addresses"): "type"},
    "Pod": {("status", "conditions"): "type"},
}
"""The lists of a kind that a strategic merge patch merges item by item, and their patchMergeKey (as the
real types declare them, e.g. NodeStatus.conditions ``patchMergeKey:"type"``); other lists are replaced."""


def strategic_merge_patch(target: Any, patch: Any, merge_keys: Mapping[Path, str] | None = None,
                          path: Path = ()) -> Any:
    """A merge patch honouring `$patch: replace|delete` on maps, and merging the lists of `merge_keys`
    (path -> merge key) item by item (an item with `$patch: delete` removes the one of its key); other
    lists are replaced (enough here)."""
    if not isinstance(patch, dict):
        key = (merge_keys or {}).get(path)
        if key is not None and isinstance(patch, list) and isinstance(target, list):
            return _merge_list(target, patch, key)
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "replace":
        return copy.deepcopy(body)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in body.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
            continue
        merged = strategic_merge_patch(result.get(key), value, merge_keys, (*path, key))
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    return result


def _merge_list(target: list[Any], patch: list[Any], key: str) -> list[Any]:
    result = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(f"a list merged by {key!r} needs {key!r} in every item of the patch")
        at = next((i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                del result[at]
            continue
        if at is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[at] = strategic_merge_patch(result[at], item)
    return result


# --- RFC 6902 ----------------------------------------------------------------------------------


def _pointer(text: str) -> list[str]:
    if text == "":
        return []
    if not text.startswith("/"):
        raise PatchError(f"invalid JSON pointer {text!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in text[1:].split("/")]


def _container(doc: Any, parts: list[str]) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(f"path /{'/'.join(parts)} does not exist")
    return node, parts[-1]


def _get(doc: Any, parts: list[str]) -> Any:
    if not parts:
        return doc
    node, last = _container(doc, parts)
    if isinstance(node, dict) and last in node:
        return node[last]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node[int(last)]
    raise PatchError(f"path /{'/'.join(parts)} does not exist")


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    node, last = _container(doc, parts)
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list):
        index = len(node) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= index <= len(node):
            raise PatchError(f"index {last} out of range")
        node.insert(index, value)
    else:
        raise PatchError(f"cannot add at /{'/'.join(parts)}")
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    _get(doc, parts)
    node, last = _container(doc, parts)
    if isinstance(node, dict):
        del node[last]
    else:
        del node[int(last)]
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations", 400)
    result = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"bad JSON patch operation {op!r}", 400)
        parts = _pointer(op["path"])
        kind = op["op"]
        if kind == "add":
            result = _add(result, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            result = _remove(result, parts)
        elif kind == "replace":
            _get(result, parts)
            result = _add(_remove(result, parts), parts, copy.deepcopy(op.get("value"))) if parts else op.get("value")
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            value = copy.deepcopy(_get(result, source))
            if kind == "move":
                result = _remove(result, source)
            result = _add(result, parts, value)
        elif kind == "test":
            if _get(result, parts) != op.get("value"):
                raise PatchError(f"test operation failed at {op['path']}")
        else:
            raise PatchError(f"unknown JSON patch op {kind!r}", 400)
    return result


# --- field paths and managed fields ---------------------------------------------------------------

UNOWNED_METADATA = frozenset({"name", "namespace", "resourceVersion", "uid", "generation", "creationTimestamp",
                              "managedFields", "selfLink", "deletionTimestamp"})


def leaf_paths(obj: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """Every leaf of an object as a path; lists are atomic leaves; identity fields are skipped."""
    paths: set[Path] = set()
    for key, value in obj.items():
        if not prefix and key in ("apiVersion", "kind", "status"):
            continue
        if prefix == ("metadata",) and key in UNOWNED_METADATA:
            continue
        path = (*prefix, key)
        if isinstance(value, dict) and value:
            paths |= leaf_paths(value, path)
        else:
            paths.add(path)
    return paths


def get_path(obj: Any, path: Path) -> Any:
    node = obj
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def delete_path(obj: dict[str, Any], path: Path) -> None:
    parents = [obj]
    node: Any = obj
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return
        node = node[key]
        parents.append(node)
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):
        if parents[depth] == {}:
            parents[depth - 1].pop(path[depth - 1], None)


def overlaps(a: Path, b: Path) -> bool:
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


def paths_from_fields_v1(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for key, value in tree.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        if isinstance(value, Mapping) and any(k.startswith("f:") for k in value):
            paths |= paths_from_fields_v1(value, path)
        else:
            paths.add(path)
    return paths


# --- selectors -------------------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def label_selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    for term in _split_selector(selector):
        match = _SET_RE.match(term)
        if match:
            key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
            inside = key in labels and labels[key] in values
            if inside != (op == "in"):
                return False
        elif "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_selector_matches(selector: str, obj: Mapping[str, Any]) -> bool:
    for term in _split_selector(selector):
        negate = "!=" in term
        key, value = (p.strip() for p in term.replace("!=", "=").replace("==", "=").split("=", 1))
        actual = get_path(obj, tuple(key.split(".")))
        text = "" if actual is MISSING or actual is None else str(actual)
        if (text == value) == negate:
            return False
    return True


def validate_field_selector(selector: str) -> str | None:
    for term in _split_selector(selector):
        if "=" not in term:
            return f"invalid field selector term {term!r}"
    return None
