"""`terwayctl capacity` end to end: output formats, filters and every bad-input path."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml


def test_table_shows_the_figures(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("capacity", "ecs.g6.xlarge", "ecs.g7.4xlarge")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "TYPE", "vCPU", "MEM-GiB", "ENIs", "IPv4/ENI", "IPv6/ENI", "SHARED", "EXCLUSIVE", "TRUNK", "DUAL-STACK", "MAX-PODS",
    ]
    assert lines[1].split() == ["ecs.g6.xlarge", "4", "16", "3", "10", "1", "20", "2*", "?", "no", "22"]
    assert lines[2].split() == ["ecs.g7.4xlarge", "16", "64", "8", "30", "30", "210", "7", "?", "yes", "212"]
    assert "source: embedded catalog 2026-11" in result.stdout


def test_json_is_a_list_of_snake_case_objects(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("capacity", "ecs.g6.large", "-o", "json")
    assert result.exit_code == 0
    (row,) = json.loads(result.stdout)
    assert row["name"] == "ecs.g6.large"
    assert row["shared_eni_pods"] == 6
    assert row["exclusive_eni_pods"] == 1
    assert row["trunk_pods"] == 0
    assert row["shared_eni_ok"] is False
    assert row["source"] == "embedded catalog 2026-11"
    assert all(key == key.lower() for key in row)


def test_yaml_and_csv(cli) -> None:  # type: ignore[no-untyped-def]
    as_yaml = yaml.safe_load(cli("capacity", "ecs.g7.xlarge", "-o", "yaml").stdout)
    assert as_yaml[0]["trunk_pods"] == 16
    rows = list(csv.DictReader(io.StringIO(cli("capacity", "--family", "ecs.g7", "-o", "csv").stdout)))
    assert {r["family"] for r in rows} == {"ecs.g7"}
    g7_4x = next(r for r in rows if r["name"] == "ecs.g7.4xlarge")
    assert g7_4x["shared_eni_pods"] == "210"
    assert g7_4x["ipv6_per_eni"] == "30"
    assert g7_4x["trunk_pods"] == ""  # EniTotalQuantity unknown: empty, never guessed
    assert g7_4x["catalog_date"] == "2026-11"


def test_glob_min_pods_mode_and_sort(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("capacity", "ecs.g6.*", "--mode", "eni", "--min-pods", "7", "--sort", "pods", "-o", "json")
    rows = json.loads(result.stdout)
    assert rows and all(r["exclusive_eni_pods"] >= 7 and r["name"].startswith("ecs.g6.") for r in rows)
    assert [r["exclusive_eni_pods"] for r in rows] == sorted(r["exclusive_eni_pods"] for r in rows)
    assert all(r["max_pods_mode"] == "eni" for r in rows)


def test_mode_eniip_table_shows_only_shared(cli) -> None:  # type: ignore[no-untyped-def]
    header = cli("capacity", "ecs.g6.xlarge", "--mode", "eniip").stdout.splitlines()[0].split()
    assert "SHARED" in header and "EXCLUSIVE" not in header and "TRUNK" not in header


def test_host_network_pods_changes_max_pods(cli) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(cli("capacity", "ecs.g6.xlarge", "--host-network-pods", "5", "-o", "json").stdout)
    assert rows[0]["max_pods"] == 25


def test_eni_conf_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "eni_conf.json"
    conf.write_text(json.dumps({"max_eni": 3, "vswitches": {"cn-hangzhou-i": ["vsw-1"]}}))
    rows = json.loads(cli("capacity", "ecs.g7.4xlarge", "--eni-conf", str(conf), "-o", "json").stdout)
    assert rows[0]["shared_eni_pods"] == 90
    assert rows[0]["usable_enis"] == 3


def test_ipv6_flags_types_without_dual_stack(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("capacity", "ecs.g6.xlarge", "--ipv6")
    assert "IPv6 off on this node" in result.stdout


def test_explain(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("capacity", "--explain", "ecs.g7.4xlarge")
    assert result.exit_code == 0
    assert "(8 - 1)" in result.stdout or "8 - 1 = 7" in result.stdout
    assert "7 x 30 = 210" in result.stdout
    assert "inputs:" in result.stdout


def test_whole_catalog(cli) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(cli("capacity", "-o", "json").stdout)
    assert len(rows) == 1468
    assert {r["catalog_date"] for r in rows} == {"2026-11"}


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        pytest.param(["ecs.g6.xlarg"], "unknown instance type 'ecs.g6.xlarg'", "did you mean ecs.g6.xlarge", id="unknown-type"),
        pytest.param(["ecs.q9.*"], "matches no instance type", "--family", id="glob-no-match"),
        pytest.param(["--family", "ecs.q9"], "no instance family 'ecs.q9'", "", id="unknown-family"),
        pytest.param(["--mode", "vpc"], "--mode", "capacity --help", id="bad-mode"),
        pytest.param(["--min-pods", "-1"], "--min-pods", "", id="negative-min-pods"),
        pytest.param(["--host-network-pods", "-2"], "--host-network-pods", "", id="negative-host-pods"),
        pytest.param(["--sort", "price"], "--sort", "", id="bad-sort"),
        pytest.param(["-o", "xml"], "--output", "", id="bad-output"),
        pytest.param(["--explain"], "exactly one instance type", "--explain ecs.g7.4xlarge", id="explain-without-type"),
        pytest.param(["--explain", "ecs.g6.*"], "exactly one instance type", "", id="explain-glob"),
        pytest.param(["--eni-conf", "/nonexistent/eni_conf.json"], "cannot read --eni-conf", "", id="missing-eni-conf"),
    ],
)
def test_bad_input_exits_2_with_one_error_line(cli, args: list[str], message: str, hint: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("capacity", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    first, *rest = result.stderr.splitlines()
    assert first.startswith("error: ") and message in first
    assert "Traceback" not in result.stderr
    if hint:
        assert rest and rest[0].startswith("hint: ") and hint in rest[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("{not json", "not valid JSON", id="bad-json"),
        pytest.param('{"eni_cap_ratio": 3}', "eni_cap_ratio", id="bad-ratio"),
        pytest.param('["max_eni"]', "JSON object", id="not-object"),
    ],
)
def test_bad_eni_conf_file(cli, tmp_path: Path, content: str, message: str) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "eni_conf.json"
    conf.write_text(content)
    result = cli("capacity", "ecs.g6.xlarge", "--eni-conf", str(conf))
    assert result.exit_code == 2
    assert message in result.stderr
