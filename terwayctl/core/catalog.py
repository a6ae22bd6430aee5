"""The instance-type record and the parser for the catalog CSV (no I/O: it takes text)."""

from __future__ import annotations

import csv
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches

from terwayctl.core.errors import InvalidInput, NotFound


@dataclass(frozen=True)
class InstanceType:
    """The DescribeInstanceTypes fields that decide pod capacity; None means unknown."""

    name: str
    family: str
    vcpu: int | None
    memory_gib: float | None
    eni_quantity: int | None
    eni_private_ip_quantity: int | None
    eni_ipv6_quantity: int | None
    eni_total_quantity: int | None
    eni_trunk_supported: bool | None


@dataclass(frozen=True)
class Catalog:
    """A set of instance types and where they come from (e.g. ``embedded 2026-11``)."""

    types: tuple[InstanceType, ...]
    source: str

    def by_name(self) -> dict[str, InstanceType]:
        return {t.name: t for t in self.types}

    def select(self, patterns: Sequence[str], families: Sequence[str]) -> list[InstanceType]:
        """Types matching any exact name, glob or family; everything when both are empty.

        Raises NotFound for a name or glob that matches nothing, with the closest names as a hint.
        """
        if not patterns and not families:
            return list(self.types)
        chosen: dict[str, InstanceType] = {}
        for pattern in patterns:
            matched = self._match(pattern)
            chosen.update((t.name, t) for t in matched)
        for family in families:
            matched = [t for t in self.types if t.family == family]
            if not matched:
                raise NotFound(
                    f"no instance family {family!r} in the catalog ({self.source})",
                    hint=self._closest_hint(family, sorted({t.family for t in self.types})),
                )
            chosen.update((t.name, t) for t in matched)
        return list(chosen.values())

    def _match(self, pattern: str) -> list[InstanceType]:
        if any(ch in pattern for ch in "*?["):
            matched = [t for t in self.types if fnmatch.fnmatchcase(t.name, pattern)]
            if not matched:
                raise NotFound(
                    f"the pattern {pattern!r} matches no instance type in the catalog ({self.source})",
                    hint="list a family with --family ecs.g7, or check the pattern (e.g. 'ecs.g6.*')",
                )
            return matched
        found = self.by_name().get(pattern)
        if found is None:
            raise NotFound(
                f"unknown instance type {pattern!r} (not in the catalog: {self.source})",
                hint=self._closest_hint(pattern, [t.name for t in self.types]),
            )
        return [found]

    @staticmethod
    def _closest_hint(word: str, known: Iterable[str]) -> str:
        close = get_close_matches(word, list(known), n=3, cutoff=0.6)
        if close:
            return "did you mean " + ", ".join(close) + "?"
        return "names look like ecs.g6.xlarge; list them with 'terwayctl capacity'"


CATALOG_COLUMNS = (
    "instance_type",
    "family",
    "vcpu",
    "memory_gib",
    "eni_quantity",
    "eni_private_ip_quantity",
    "eni_ipv6_quantity",
    "eni_total_quantity",
    "eni_trunk_supported",
)


def parse_catalog_csv(text: str, source: str) -> Catalog:
    """Parse the catalog CSV; an empty cell stays unknown (None), never guessed."""
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in CATALOG_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise InvalidInput(f"catalog ({source}) lacks the columns {', '.join(missing)}")
    types = tuple(_row_to_type(row, source) for row in reader)
    return Catalog(types=types, source=source)


def _row_to_type(row: dict[str, str], source: str) -> InstanceType:
    name = row["instance_type"].strip()
    try:
        return InstanceType(
            name=name,
            family=row["family"].strip(),
            vcpu=_optional_int(row["vcpu"]),
            memory_gib=_optional_float(row["memory_gib"]),
            eni_quantity=_optional_int(row["eni_quantity"]),
            eni_private_ip_quantity=_optional_int(row["eni_private_ip_quantity"]),
            eni_ipv6_quantity=_optional_int(row["eni_ipv6_quantity"]),
            eni_total_quantity=_optional_int(row["eni_total_quantity"]),
            eni_trunk_supported=_optional_bool(row["eni_trunk_supported"]),
        )
    except ValueError as exc:
        raise InvalidInput(f"catalog ({source}) row {name!r}: {exc}") from None


def _optional_int(cell: str) -> int | None:
    cell = cell.strip()
    return int(cell) if cell else None


def _optional_float(cell: str) -> float | None:
    cell = cell.strip()
    return float(cell) if cell else None


def _optional_bool(cell: str) -> bool | None:
    cell = cell.strip().lower()
    if not cell:
        return None
    if cell in ("true", "false"):
        return cell == "true"
    raise ValueError(f"expected true or false, got {cell!r}")
