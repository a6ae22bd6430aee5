"""`capacity --live` against the emulator, and the catalog cache that `capacity` prefers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.conftest import CliResult
from tests.fixtures.cloud import CloudEnv
from tests.fixtures.emulator import RunningEmulator

Cli = Callable[..., CliResult]


def test_live_reads_describe_instance_types(cli: Cli, keys: RunningEmulator) -> None:
    result = cli("--endpoint", keys.url, "--region", keys.region, "capacity", "--live", "ecs.g7.xlarge", "-o", "json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["source"] == "live cn-hangzhou"
    assert (row["shared_eni_pods"], row["trunk_pods"], row["dual_stack"]) == (45, 16, True)


def test_live_table_names_the_source(cli: Cli, keys: RunningEmulator) -> None:
    result = cli("--endpoint", keys.url, "--region", keys.region, "capacity", "--live", "--family", "ecs.g6")
    assert result.exit_code == 0, result.stderr
    assert "source: live cn-hangzhou" in result.stdout


def test_live_without_credentials_is_a_clear_error(cli: Cli, emulator: RunningEmulator, cloud_env: CloudEnv) -> None:
    result = cli("--endpoint", emulator.url, "--region", emulator.region, "capacity", "--live", "ecs.g6.xlarge")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "hint: " in result.stderr
    assert "Traceback" not in result.stderr


def test_capacity_prefers_a_fresh_cache(cli: Cli, keys: RunningEmulator, cloud_env: CloudEnv) -> None:
    assert cli("--endpoint", keys.url, "--region", keys.region, "catalog", "refresh").exit_code == 0
    rows = json.loads(cli("--region", "cn-hangzhou", "capacity", "ecs.g6.xlarge", "-o", "json").stdout)
    assert rows[0]["source"].startswith("cache cn-hangzhou 20")
    other_region = json.loads(cli("--region", "cn-beijing", "capacity", "ecs.g6.xlarge", "-o", "json").stdout)
    assert other_region[0]["source"] == "embedded catalog 2026-11"


def test_a_stale_cache_is_not_used(cli: Cli, keys: RunningEmulator, cloud_env: CloudEnv) -> None:
    assert cli("--endpoint", keys.url, "--region", keys.region, "catalog", "refresh").exit_code == 0
    sidecar = cloud_env.cache / "terwayctl" / "instance-types-cn-hangzhou.json"
    meta = json.loads(sidecar.read_text())
    meta["fetched_at"] = (datetime.now(UTC) - timedelta(days=40)).isoformat()
    sidecar.write_text(json.dumps(meta))
    rows = json.loads(cli("--region", "cn-hangzhou", "capacity", "ecs.g6.xlarge", "-o", "json").stdout)
    assert rows[0]["source"] == "embedded catalog 2026-11"
    shown = cli("--region", "cn-hangzhou", "catalog", "show").stdout
    assert shown.startswith("capacity uses: embedded catalog 2026-11")
    assert "older than 30 days and not used" in shown


def test_region_from_the_profile_selects_the_cache(cli: Cli, keys: RunningEmulator, cloud_env: CloudEnv) -> None:
    assert cli("--endpoint", keys.url, "--region", keys.region, "catalog", "refresh").exit_code == 0
    cloud_env.write_aliyun_config(
        {"current": "default", "profiles": [{"name": "default", "mode": "AK", "region_id": "cn-hangzhou",
                                             "access_key_id": "x", "access_key_secret": "y"}]}
    )
    rows = json.loads(cli("capacity", "ecs.g6.xlarge", "-o", "json").stdout)
    assert rows[0]["source"].startswith("cache cn-hangzhou")
