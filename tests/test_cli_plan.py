"""`terwayctl plan` and `plan check` end to end."""

from __future__ import annotations

import json

import pytest
import yaml


def test_default_plan_table(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("plan")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "zone-1  node  192.168.0.0/19" in out
    assert "zone-1  pod   192.168.32.0/19" in out
    assert "service CIDR 172.21.0.0/20 (4096 addresses)" in out
    assert "free in the VPC: 49152 addresses (192.168.64.0/18, 192.168.128.0/17)" in out


def test_plan_json_for_zones_and_load(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("plan", "--zones", "cn-hangzhou-i,cn-hangzhou-j", "--nodes", "50", "--pods-per-node", "30", "-o", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [v["zone"] for v in data["vswitches"]] == ["cn-hangzhou-i"] * 2 + ["cn-hangzhou-j"] * 2
    pod = data["vswitches"][1]
    assert pod["role"] == "pod" and pod["usable_addresses"] >= 50 * 30 * 2
    assert {c["id"] for c in data["checks"]} >= {"pod-capacity", "node-capacity"}


def test_plan_from_instance_type(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("plan", "--nodes", "10", "--instance-type", "ecs.g7.4xlarge", "-o", "yaml")
    data = yaml.safe_load(result.stdout)
    pod = next(v for v in data["vswitches"] if v["role"] == "pod")
    assert "at 210 pods" in pod["holds"]


def test_plan_ipv6_with_a_type_without_dual_stack_fails(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("plan", "--ipv6", "--nodes", "3", "--instance-type", "ecs.g6.xlarge")
    assert result.exit_code == 2
    assert "dual stack" in result.stderr


def test_plan_avoid(cli) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(cli("plan", "--avoid", "192.168.0.0/19", "-o", "json").stdout)
    assert "192.168.0.0/19" not in [v["cidr"] for v in data["vswitches"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--vpc", "8.8.8.0/24"], "not inside 10.0.0.0/8", id="public-vpc"),
        pytest.param(["--vpc", "192.168.1.0/16"], "host bits", id="host-bits"),
        pytest.param(["--vpc", "nope"], "not an IPv4 CIDR", id="garbage"),
        pytest.param(["--service-cidr", "192.168.0.0/20"], "overlaps", id="service-overlaps"),
        pytest.param(["--nodes", "0"], "--nodes", id="zero-nodes"),
        pytest.param(["--nodes", "abc"], "--nodes", id="not-a-number"),
        pytest.param(["--growth", "0.5"], "--growth", id="growth"),
        pytest.param(["--zones", "a,a"], "twice", id="dup-zone"),
        pytest.param(["--instance-type", "ecs.nope"], "unknown instance type", id="unknown-type"),
        pytest.param(["--instance-type", "ecs.g6.xlarge", "--pods-per-node", "3"], "not both", id="both"),
        pytest.param(["--instance-type", "ecs.g6.xlarge", "--mode", "trunk"], "--mode", id="bad-mode"),
        pytest.param(["--vpc", "10.0.0.0/24", "--nodes", "100", "--pods-per-node", "30"], "no room", id="does-not-fit"),
    ],
)
def test_plan_bad_input(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("plan", *args)
    assert result.exit_code == 2, result.stdout
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_plan_check_ok(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "plan", "check", "--vpc", "192.168.0.0/16", "--node-vswitch", "192.168.0.0/19",
        "--pod-vswitch", "192.168.32.0/19", "--service-cidr", "172.21.0.0/20",
    )
    assert result.exit_code == 0, result.stderr
    assert "✓ overlap: no two ranges overlap" in result.stdout


def test_plan_check_failure_exits_1_with_fix(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "plan", "check", "--vpc", "192.168.0.0/16", "--node-vswitch", "192.168.0.0/19",
        "--pod-vswitch", "192.168.16.0/20,192.168.64.0/24",
    )
    assert result.exit_code == 1
    assert "✗ overlap: node vSwitch 192.168.0.0/19 overlaps pod vSwitch 192.168.16.0/20" in result.stdout
    assert "fix: move one of them" in result.stdout
    assert "! pod-vswitch-size" in result.stdout


def test_plan_check_json(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "plan", "check", "--vpc", "192.168.0.0/16", "--node-vswitch", "192.168.0.0/24",
        "--pod-vswitch", "192.168.32.0/19", "--nodes", "500", "-o", "json",
    )
    assert result.exit_code == 1
    checks = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["node-capacity"]["status"] == "fail"
    assert "/22" in checks["node-capacity"]["fix"]  # 500 nodes x growth 2 (the default, as in 'plan')


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--vpc", "192.168.0.0/16", "--pod-vswitch", "192.168.32.0/19"], "--node-vswitch", id="missing-node-vswitch"),
        pytest.param(["--vpc", "192.168.0.0/16", "--node-vswitch", "x", "--pod-vswitch", "192.168.32.0/19"], "not an IPv4 CIDR", id="garbage"),
    ],
)
def test_plan_check_bad_input(cli, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("plan", "check", *args)
    assert result.exit_code == 2
    assert message in result.stderr
