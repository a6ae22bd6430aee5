"""The instance-type record and the parser for the catalog CSV (no I/O: it takes text)."""

from __future__ import annotations

import csv
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches

from terwayctl.core.errors import InvalidInput, NotFound
from terwayctl.core.sorting import natural_text_key


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
    """A set of instance types and where they come from (e.g. ``embedded catalog 2026-11``).

    `date` is when the figures were taken (the embedded catalog's build month, a cache's fetch day,
    the day of a live call); None when nobody said.
    """

    types: tuple[InstanceType, ...]
    source: str
    date: str | None = None

    def by_name(self) -> dict[str, InstanceType]:
        return {t.name: t for t in self.types}

    def lookup(self, name: str) -> InstanceType | None:
        """The type named `name`, ignoring case (ECS.G7.XLARGE is ecs.g7.xlarge); None when absent."""
        wanted = name.strip().lower()
        return next((t for t in self.types if t.name.lower() == wanted), None)

    def families(self) -> list[str]:
        """Every family, in natural order (ecs.g8i before ecs.g10)."""
        return sorted({t.family for t in self.types}, key=natural_text_key)

    def select(self, patterns: Sequence[str], families: Sequence[str]) -> list[InstanceType]:
        """Types matching any exact name, glob or family (case-insensitive); everything when both are empty.

        Raises NotFound for a name or glob that matches nothing, with the closest names as a hint.
        """
        if not patterns and not families:
            return list(self.types)
        chosen: dict[str, InstanceType] = {}
        for pattern in patterns:
            matched = self._match(pattern)
            chosen.update((t.name, t) for t in matched)
        for family in families:
            wanted = family.strip().lower()
            matched = [t for t in self.types if t.family.lower() == wanted]
            if not matched:
                raise NotFound(
                    f"no instance family {family!r} in the catalog ({self.source})",
                    hint=self._closest_hint(wanted, self.families()),
                )
            chosen.update((t.name, t) for t in matched)
        return list(chosen.values())

    def _match(self, pattern: str) -> list[InstanceType]:
        if any(ch in pattern for ch in "*?["):
            lowered = pattern.strip().lower()
            matched = [t for t in self.types if fnmatch.fnmatchcase(t.name.lower(), lowered)]
            if not matched:
                raise NotFound(
                    f"the pattern {pattern!r} matches no instance type in the catalog ({self.source})",
                    hint="list a family with --family ecs.g7, or check the pattern (e.g. 'ecs.g6.*')",
                )
            return matched
        found = self.lookup(pattern)
        if found is None:
            raise NotFound(
                f"unknown instance type {pattern!r} (not in the catalog: {self.source})",
                hint=self._closest_hint(pattern.strip().lower(), [t.name for t in self.types]),
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


def parse_catalog_csv(text: str, source: str, date: str | None = None) -> Catalog:
    """Parse the catalog CSV; an empty cell stays unknown (None), never guessed.

    Columns are found by name in the header (extra columns are ignored), with csv.reader rather
    than DictReader: the 1,468-row embedded catalog parses in about 3 ms.
    """
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in CATALOG_COLUMNS if c not in header]
    if missing:
        raise InvalidInput(f"catalog ({source}) lacks the columns {', '.join(missing)}")
    index = [header.index(c) for c in CATALOG_COLUMNS]
    types = tuple(_row_to_type([cells[i] if i < len(cells) else "" for i in index], source) for cells in reader if cells)
    return Catalog(types=types, source=source, date=date)


def parse_catalog_subset(
    text: str, source: str, patterns: Sequence[str], families: Sequence[str], date: str | None = None
) -> Catalog | None:
    """Only the rows that `Catalog.select(patterns, families)` would pick, parsed; None when a pattern
    or family matches no row (parse the whole catalog then, so the error can name the closest types).

    One type out of 1,468 needs one record built rather than all of them: `capacity TYPE` starts faster.
    """
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader, [])]
    if any(c not in header for c in CATALOG_COLUMNS):
        return None
    index = [header.index(c) for c in CATALOG_COLUMNS]
    names = {p.strip().lower(): p for p in patterns if not any(ch in p for ch in "*?[")}
    globs = {p.strip().lower(): p for p in patterns if any(ch in p for ch in "*?[")}
    wanted_families = {f.strip().lower() for f in families}
    seen: set[str] = set()
    chosen: list[list[str]] = []
    for cells in reader:
        if not cells:
            continue
        row = [cells[i] if i < len(cells) else "" for i in index]
        name, family = row[0].strip().lower(), row[1].strip().lower()
        hits = [g for g in globs if fnmatch.fnmatchcase(name, g)]
        if name in names:
            hits.append(name)
        if family in wanted_families:
            hits.append("family:" + family)
        if hits:
            seen.update(hits)
            chosen.append(row)
    expected = set(names) | set(globs) | {"family:" + f for f in wanted_families}
    if not expected <= seen:
        return None
    return Catalog(types=tuple(_row_to_type(row, source) for row in chosen), source=source, date=date)


def _row_to_type(cells: list[str], source: str) -> InstanceType:
    name, family, vcpu, memory, enis, ips, ipv6, total, trunk = cells
    name = name.strip()
    try:
        return InstanceType(
            name=name,
            family=family.strip(),
            vcpu=_optional_int(vcpu),
            memory_gib=_optional_float(memory),
            eni_quantity=_optional_int(enis),
            eni_private_ip_quantity=_optional_int(ips),
            eni_ipv6_quantity=_optional_int(ipv6),
            eni_total_quantity=_optional_int(total),
            eni_trunk_supported=_optional_bool(trunk),
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
