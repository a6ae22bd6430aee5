"""Structured output: json, yaml and csv, from dataclasses, never through rich markup."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

_PRIMITIVES = (str, int, float, bool, type(None))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(value: Any) -> tuple[str, ...] | None:
    """The field names of a dataclass instance (cached per class: `fields()` is slow per call)."""
    cls = type(value)
    names = _FIELD_NAMES.get(cls)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(value))
    return names


def to_plain(value: Any) -> Any:
    """Dataclasses, tuples and mappings as JSON-ready lists and dicts."""
    if isinstance(value, _PRIMITIVES):
        return value
    names = _field_names(value)
    if names is not None:
        return {name: to_plain(getattr(value, name)) for name in names}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def emit_structured(data: Any, fmt: str, stream: TextIO | None = None) -> None:
    """Write `data` as json, yaml or csv (csv takes a list of flat objects)."""
    out = stream or sys.stdout
    plain = to_plain(data)
    if fmt == "json":
        out.write(json.dumps(plain, indent=2) + "\n")
    elif fmt == "yaml":
        import yaml

        out.write(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True))
    elif fmt == "csv":
        _write_csv(plain, out)
    else:
        raise ValueError(f"not a structured format: {fmt}")


def _write_csv(rows: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    if not rows:
        return
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    return value
