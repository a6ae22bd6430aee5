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


def test_instance_type_names_ignore_case(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("capacity", "ECS.G7.XLARGE", "Ecs.G8i.XLarge", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [r["name"] for r in json.loads(result.stdout)] == ["ecs.g7.xlarge", "ecs.g8i.xlarge"]
    table = cli("capacity", "ECS.G7.XLARGE").stdout.splitlines()
    assert table[1].split()[0] == "ecs.g7.xlarge"
    family = json.loads(cli("capacity", "--family", "ECS.G8I", "-o", "json").stdout)
    assert family and {r["family"] for r in family} == {"ecs.g8i"}


def test_eighth_and_ninth_generation_types(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("capacity", "ecs.g8i.xlarge", "ecs.g9i.4xlarge", "-o", "json")
    assert result.exit_code == 0, result.stderr
    g8i, g9i = json.loads(result.stdout)
    assert (g8i["enis"], g8i["ipv4_per_eni"], g8i["shared_eni_pods"], g8i["dual_stack"]) == (4, 15, 45, True)
    assert (g9i["enis"], g9i["shared_eni_pods"], g9i["exclusive_eni_pods"]) == (8, 7 * 30, 7)


def test_catalog_date_in_every_output(cli) -> None:  # type: ignore[no-untyped-def]
    assert "embedded catalog 2026-11" in cli("capacity", "ecs.g8i.xlarge").stdout.splitlines()[-2]
    assert json.loads(cli("capacity", "ecs.g8i.xlarge", "-o", "json").stdout)[0]["catalog_date"] == "2026-11"
    assert yaml.safe_load(cli("capacity", "ecs.g8i.xlarge", "-o", "yaml").stdout)[0]["catalog_date"] == "2026-11"
    (row,) = csv.DictReader(io.StringIO(cli("capacity", "ecs.g8i.xlarge", "-o", "csv").stdout))
    assert row["catalog_date"] == "2026-11"
    assert cli("capacity", "--explain", "ecs.g8i.xlarge").stdout.startswith("ecs.g8i.xlarge (embedded catalog 2026-11)")


def test_mode_prefix_table(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("capacity", "ecs.g8a.xlarge", "ecs.g8i.xlarge", "--mode", "prefix")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["TYPE", "vCPU", "MEM-GiB", "ENIs", "IPv4/ENI", "IPv6/ENI", "PREFIX", "DUAL-STACK", "MAX-PODS"]
    assert lines[1].split()[-3:] == ["896", "yes", "898"]
    assert lines[2].split()[-3:] == ["?", "yes", "?"]
    assert "ecs.g8i.xlarge: prefix unknown: EniTotalQuantity" in result.stdout


def test_eni_conf_enable_ip_prefix_and_erdma(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "eni_conf.json"
    conf.write_text(json.dumps({"enable_ip_prefix": True, "ipv4_prefix_count": 4, "enable_erdma": True}))
    table = cli("capacity", "ecs.g8a.xlarge", "--eni-conf", str(conf)).stdout.splitlines()
    assert "PREFIX" in table[0].split()
    (row,) = json.loads(cli("capacity", "ecs.g8a.xlarge", "--eni-conf", str(conf), "-o", "json").stdout)
    assert (row["erdma_enis"], row["shared_eni_pods"], row["prefix_pods"]) == (1, 2 * 15, 896)
    assert (row["max_pods_mode"], row["max_pods"]) == ("prefix", 898)


def test_explain_names_every_formula_and_source(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("capacity", "--explain", "ECS.G8A.XLARGE")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert "trunk member ENIs = EniTotalQuantity - EniQuantity = 5 - 4 = 1" in text
    assert "member-ENI limit = EniTotalQuantity - 2 = 5 - 2 = 3" in text
    assert "(15 - 1) x 16 x (5 - 1) = 896" in text
    assert "eni_total_quantity = 5  [api:cloud-barista/cm-beetle" in text
    assert "eni_trunk_supported = true  [api:" in text
    g8i = cli("capacity", "--explain", "ecs.g8i.xlarge").stdout
    assert "eni_quantity = 4  [currentdoc:" in g8i
    assert "eni_total_quantity = unknown  [no source]" in g8i


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param('{"min_eni": 5, "max_eni": 2}', "min_eni 5 is more than max_eni 2", id="min-above-max"),
        pytest.param('{"enable_ip_prefix": "yes"}', "enable_ip_prefix must be true or false", id="prefix-not-bool"),
        pytest.param('{"ipv4_prefix_count": -1}', "ipv4_prefix_count must be 0 or positive", id="negative-prefixes"),
        pytest.param('{"enable_erdma": "true"}', "enable_erdma must be true or false", id="erdma-string"),
        pytest.param('{"eni_cap_shift": -999}', "eni_cap_shift must be between", id="shift-range"),
    ],
)
def test_bad_capacity_keys_exit_2_with_hint(cli, tmp_path: Path, content: str, message: str) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "eni_conf.json"
    conf.write_text(content)
    result = cli("capacity", "ecs.g6.xlarge", "--eni-conf", str(conf))
    assert result.exit_code == 2
    first, second, *_ = result.stderr.splitlines()
    assert first.startswith("error: ") and message in first
    assert second.startswith("hint: ")


def _complete(words: str) -> list[str]:
    import os
    import shutil
    import subprocess
    import sys

    script = shutil.which("terwayctl")
    argv = [script] if script else [sys.executable, "-m", "terwayctl"]
    env = {**os.environ, "_TERWAYCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - 1)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.split()


def test_shell_completion_offers_types_and_families() -> None:
    offered = _complete("terwayctl capacity ecs.g8i")
    assert "ecs.g8i" in offered and "ecs.g8i.xlarge" in offered and "ecs.g8ise" in offered
    assert all(word.startswith("ecs.g8i") for word in offered)
    assert _complete("terwayctl capacity --family ecs.g9")[:3] == ["ecs.g9a", "ecs.g9ae", "ecs.g9h"]


def test_shell_completion_keeps_the_case_typed() -> None:
    # bash keeps only candidates starting with the word typed; names are accepted in any case
    offered = _complete("terwayctl capacity ECS.G8I.X")
    assert "ECS.G8I.Xlarge" in offered and all(word.startswith("ECS.G8I.X") for word in offered)
    assert _complete("terwayctl capacity --family ECS.G9")[:1] == ["ECS.G9a"]


def test_one_type_does_not_parse_the_whole_catalog(cli) -> None:  # type: ignore[no-untyped-def]
    from terwayctl.data import embedded_catalog

    embedded_catalog.cache_clear()
    assert cli("capacity", "ecs.g8i.xlarge").exit_code == 0
    assert embedded_catalog.cache_info().currsize == 0
    assert cli("capacity", "ecs.g8i.xlargee").exit_code == 2  # the hint needs every name
    assert embedded_catalog.cache_info().currsize == 1


def test_one_type_start_up_stays_lean(tmp_path: Path) -> None:
    """`capacity TYPE` imports no JSON/YAML/rich/SDK module, no cache module (without a cache), no renderer."""
    import os
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from terwayctl.cli.app import run\n"
        "assert run(['capacity', 'ecs.g8i.xlarge']) == 0\n"
        "heavy = ('json', 'yaml', 'rich', 'aliyunsdkcore', 'kubernetes', 'terwayctl.data.cache', 'terwayctl.cli.render')\n"
        "print('LOADED', sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout
