"""The embedded ECS instance-type catalog (copied from shared/data/ecs-instance-types).

Loaded on first use with the standard library only, so `capacity` starts fast.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

from terwayctl.core.catalog import Catalog, parse_catalog_csv

DATA_DIR = Path(__file__).resolve().parent
CATALOG_FILE = DATA_DIR / "ecs_instance_types.csv"
PROVENANCE_FILE = DATA_DIR / "ecs_instance_types_with_provenance.csv"
# SOURCE.md: "Built in November 2026 from public GitHub material only".
CATALOG_DATE = "2026-11"
EMBEDDED_SOURCE = f"embedded catalog {CATALOG_DATE}"


@functools.cache
def embedded_catalog() -> Catalog:
    return parse_catalog_csv(CATALOG_FILE.read_text(encoding="utf-8"), EMBEDDED_SOURCE)


def provenance(instance_type: str) -> dict[str, str]:
    """Where each cell of one row came from: {field: source}, read only for --explain."""
    with PROVENANCE_FILE.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["instance_type"] == instance_type:
                return {
                    key.removeprefix("src_"): value for key, value in row.items() if key.startswith("src_")
                }
    return {}
