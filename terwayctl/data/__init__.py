"""The embedded ECS instance-type catalog (copied from shared/data/ecs-instance-types).

Loaded on first use with the standard library only, so `capacity` starts fast: a command that names
a few types or families builds only their records (`embedded_catalog_for`).
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from terwayctl.core.catalog import Catalog, parse_catalog_csv, parse_catalog_subset

DATA_DIR = Path(__file__).resolve().parent
CATALOG_FILE = DATA_DIR / "ecs_instance_types.csv"
PROVENANCE_FILE = DATA_DIR / "ecs_instance_types_with_provenance.csv"
# SOURCE.md: "First built in November 2026 ...; extended later in November 2026 (second pass)".
CATALOG_DATE = "2026-11"
EMBEDDED_SOURCE = f"embedded catalog {CATALOG_DATE}"
APP_DIR = "terwayctl"
CACHE_GLOB = "instance-types-*.csv"


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_CACHE_HOME/terwayctl, else ~/.cache/terwayctl (where `catalog refresh` writes; see cache.py)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or ""
    if not base or not os.path.isabs(base):  # the XDG spec: a relative path is to be ignored
        base = os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / APP_DIR


def has_caches(environ: Mapping[str, str] | None = None) -> bool:
    """Whether any catalog cache file exists: without one, `capacity` never imports cache.py."""
    directory = cache_dir(environ)
    return directory.is_dir() and any(directory.glob(CACHE_GLOB))


@functools.cache
def _catalog_text() -> str:
    return CATALOG_FILE.read_text(encoding="utf-8")


@functools.cache
def embedded_catalog() -> Catalog:
    return parse_catalog_csv(_catalog_text(), EMBEDDED_SOURCE, CATALOG_DATE)


def embedded_catalog_for(patterns: Sequence[str], families: Sequence[str]) -> Catalog:
    """The embedded catalog, or just the rows that `select(patterns, families)` picks from it.

    The whole catalog when nothing is named or something named is not in it (for the error's hint).
    """
    if not patterns and not families:
        return embedded_catalog()
    subset = parse_catalog_subset(_catalog_text(), EMBEDDED_SOURCE, patterns, families, CATALOG_DATE)
    return subset if subset is not None else embedded_catalog()


def completion_words() -> list[str]:
    """Every instance type and family of the embedded catalog, for shell completion."""
    catalog = embedded_catalog()
    return [t.name for t in catalog.types] + catalog.families()


def provenance(instance_type: str) -> dict[str, str]:
    """Where each cell of one row came from: {field: source}, read only for --explain."""
    with PROVENANCE_FILE.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader([handle.readline()]))
        prefix = instance_type.lower() + ","
        for line in handle:
            if line.lower().startswith(prefix):
                row = dict(zip(header, next(csv.reader([line])), strict=False))
                return {
                    key.removeprefix("src_"): value for key, value in row.items() if key.startswith("src_")
                }
    return {}
