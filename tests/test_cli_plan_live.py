"""`plan --live --vpc-id`: plan inside an existing VPC, around its vSwitches, against the emulator."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

import pytest

from tests.conftest import CliResult
from tests.fixtures.emulator import RunningEmulator

Cli = Callable[..., CliResult]
EXISTING = ["192.168.0.0/19", "192.168.32.0/19", "192.168.64.0/19", "192.168.96.0/19"]


def live(keys: RunningEmulator, *args: str) -> tuple[str, ...]:
    return ("--endpoint", keys.url, "--region", keys.region, "plan", "--live", "--vpc-id", "vpc-emudefault", *args)


def test_plans_around_the_existing_vswitches(cli: Cli, keys: RunningEmulator) -> None:
    result = cli(*live(keys, "-o", "json"))
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["vpc"] == "192.168.0.0/16"
    assert sorted({v["zone"] for v in plan["vswitches"]}) == ["cn-hangzhou-i", "cn-hangzhou-j"]
    planned = [ipaddress.IPv4Network(v["cidr"]) for v in plan["vswitches"]]
    for existing in map(ipaddress.IPv4Network, EXISTING):
        assert not any(p.overlaps(existing) for p in planned)
        assert not any(ipaddress.IPv4Network(f).overlaps(existing) for f in plan["free_cidrs"])
    assert all(p.subnet_of(ipaddress.IPv4Network("192.168.128.0/17")) for p in planned)


def test_explicit_zones_win(cli: Cli, keys: RunningEmulator) -> None:
    plan = json.loads(cli(*live(keys, "--zones", "cn-hangzhou-k", "-o", "json")).stdout)
    assert {v["zone"] for v in plan["vswitches"]} == {"cn-hangzhou-k"}


def test_unknown_vpc(cli: Cli, keys: RunningEmulator) -> None:
    result = cli("--endpoint", keys.url, "--region", keys.region, "plan", "--live", "--vpc-id", "vpc-nope")
    assert result.exit_code != 0
    assert "vpc-nope" in result.stderr
    assert "hint: " in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["plan", "--live"], "--live and --vpc-id go together", id="live-without-id"),
        pytest.param(["plan", "--vpc-id", "vpc-emudefault"], "--live and --vpc-id go together", id="id-without-live"),
        pytest.param(["plan", "--live", "--vpc-id", "vpc-emudefault", "--vpc", "10.0.0.0/8"], "exclude each other", id="vpc-and-live"),
    ],
)
def test_live_bad_input(cli: Cli, keys: RunningEmulator, args: list[str], message: str) -> None:
    result = cli("--endpoint", keys.url, "--region", keys.region, *args)
    assert result.exit_code == 2
    assert message in result.stderr
