"""Capacity against a reference nobody here computed: the raw catalog CSV and upstream Terway's formulas.

For 30 instance types drawn deterministically (seeded) from every generation of the shipped catalog,
the figures are worked out here by hand from the CSV row (read with the csv module, not the project's
loader), following upstream AliyunContainerService/terway @89aadf8 pkg/aliyun/client/limit.go and
pkg/controller/node/node.go, then compared with `terwayctl capacity` offline and with `--live`
through the emulator (the real aliyun SDK over HTTP).
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.fixtures.emulator import RunningEmulator

Cli = Callable[..., CliResult]

DATA = Path(__file__).resolve().parents[1] / "terwayctl" / "data"
SEED = 15  # project issue #15
SAMPLE_SIZE = 30


def raw_rows() -> dict[str, dict[str, str]]:
    with (DATA / "ecs_instance_types.csv").open(encoding="utf-8", newline="") as handle:
        return {row["instance_type"]: row for row in csv.DictReader(handle)}


def generation(family: str) -> str:
    """The first number in the family name: ecs.g8i -> 8, ecs.ebmg5 -> 5, ecs.e -> '-'."""
    found = re.search(r"\d+", family.removeprefix("ecs."))
    return found.group(0) if found else "-"


def sample() -> list[str]:
    """30 types with ENIs and IPs per ENI, round-robin over generations, seeded; every API-observed
    type with EniTotalQuantity among the first picks so trunk and prefix figures are exercised too."""
    rows = raw_rows()
    usable = sorted(n for n, r in rows.items() if r["eni_quantity"] and r["eni_private_ip_quantity"])
    rng = random.Random(SEED)
    with_total = [n for n in usable if rows[n]["eni_total_quantity"]]
    chosen = rng.sample(with_total, 6)
    by_generation: dict[str, list[str]] = defaultdict(list)
    for name in usable:
        if name not in chosen:
            by_generation[generation(rows[name]["family"])].append(name)
    for names in by_generation.values():
        rng.shuffle(names)
    while len(chosen) < SAMPLE_SIZE:
        for gen in sorted(by_generation):
            if by_generation[gen] and len(chosen) < SAMPLE_SIZE:
                chosen.append(by_generation[gen].pop())
    return chosen


SAMPLE = sample()


def by_hand(row: dict[str, str]) -> dict[str, int | None]:
    """The four figures from the raw cells, written out from upstream's code (None: a cell is empty)."""
    enis = int(row["eni_quantity"])
    ips = int(row["eni_private_ip_quantity"])
    total = int(row["eni_total_quantity"]) if row["eni_total_quantity"] else None
    trunk_cell = row["eni_trunk_supported"]
    if trunk_cell == "false":
        trunk: int | None = 0
    elif trunk_cell == "true" and total is not None:
        trunk = max(total - enis, 0)
    else:
        trunk = None
    return {
        "shared_eni_pods": (enis - 1) * ips,  # MultiIPPod
        "exclusive_eni_pods": enis - 1,  # ExclusiveENIPod
        "trunk_pods": trunk,  # TrunkPod = EniTotalQuantity - EniQuantity, 0 without EniTrunkSupported
        "prefix_pods": None if total is None else (ips - 1) * 16 * (total - 1),  # node.go, prefix mode
    }


FIGURES = ("shared_eni_pods", "exclusive_eni_pods", "trunk_pods", "prefix_pods")


def test_the_sample_spans_every_generation() -> None:
    rows = raw_rows()
    generations = {generation(r["family"]) for r in rows.values() if r["eni_quantity"] and r["eni_private_ip_quantity"]}
    assert len(SAMPLE) == len(set(SAMPLE)) == SAMPLE_SIZE
    assert {generation(rows[n]["family"]) for n in SAMPLE} == generations
    assert {"8", "9"} <= generations
    assert sum(1 for n in SAMPLE if rows[n]["eni_total_quantity"]) >= 6


def test_source_md_coverage_matches_the_shipped_csv() -> None:
    """SOURCE.md (written by whoever built the data) against the CSV that ships."""
    rows = list(raw_rows().values())
    assert len(rows) == 1468
    assert sum(1 for r in rows if r["eni_quantity"] and r["eni_private_ip_quantity"]) == 1126
    assert sum(1 for r in rows if r["eni_ipv6_quantity"]) == 918
    assert sum(1 for r in rows if r["eni_total_quantity"]) == 21
    source = (DATA / "SOURCE.md").read_text(encoding="utf-8")
    assert "1,468 rows" in source and "1,126" in source and "918" in source
    with (DATA / "ecs_instance_types_with_provenance.csv").open(encoding="utf-8", newline="") as handle:
        provenance = {r["instance_type"]: r for r in csv.DictReader(handle)}
    assert provenance.keys() == raw_rows().keys()


@pytest.mark.parametrize("name", SAMPLE, ids=SAMPLE)
def test_offline_figures_match_the_formula_by_hand(cli: Cli, name: str) -> None:
    expected = by_hand(raw_rows()[name])
    result = cli("capacity", name, "-o", "json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert {k: row[k] for k in FIGURES} == expected


def test_live_through_the_emulator_gives_the_same_figures(cli: Cli, keys: RunningEmulator) -> None:
    rows = raw_rows()
    result = cli("--endpoint", keys.url, "--region", keys.region, "capacity", "--live", *SAMPLE, "-o", "json")
    assert result.exit_code == 0, result.stderr
    got = {r["name"]: r for r in json.loads(result.stdout)}
    assert got.keys() == set(SAMPLE)
    for name in SAMPLE:
        assert got[name]["source"] == "live cn-hangzhou"
        assert {k: got[name][k] for k in FIGURES} == by_hand(rows[name]), name
