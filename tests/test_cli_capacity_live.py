"""`capacity --live` against the emulator, and the catalog cache that `capacity` prefers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.conftest import CliResult
from tests.fixtures.cloud import CloudEnv
from tests.fixtures.emulator import RunningEmulator
from tests.fixtures.kube import RunningKubeApi

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


def test_live_eighth_generation_through_the_emulator(cli: Cli, keys: RunningEmulator) -> None:
    """The README's own example: the emulator serves the embedded 1,468-type catalog."""
    result = cli("--endpoint", keys.url, "--region", keys.region, "capacity", "--live", "ECS.G8I.XLARGE")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:7] == ["ecs.g8i.xlarge", "4", "16", "4", "15", "15", "45"]
    today = datetime.now(UTC).date().isoformat()
    assert f"source: live cn-hangzhou (figures as of {today})" in result.stdout


def test_live_supplies_eni_total_quantity_for_prefix_mode(cli: Cli, keys: RunningEmulator) -> None:
    result = cli("--endpoint", keys.url, "--region", keys.region, "capacity", "--live", "ecs.r8a.2xlarge",
                 "--mode", "prefix", "-o", "json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["total_enis"], row["prefix_pods"]) == (10, (15 - 1) * 16 * (10 - 1))
    assert row["catalog_date"] == datetime.now(UTC).date().isoformat()


def test_scenario_instance_types_ignore_case() -> None:
    import copy

    from terwayctl.emulator.world import DEFAULT_SCENARIO, parse_scenario

    scenario = copy.deepcopy(DEFAULT_SCENARIO)
    scenario["instances"][0]["type"] = "ECS.G8I.XLARGE"
    world = parse_scenario(scenario)
    assert world.instances[0].instance_type == "ecs.g8i.xlarge"


def test_cluster_table_names_the_catalog_and_its_date(cli: Cli, kube_api: RunningKubeApi, cloud_env: CloudEnv) -> None:
    from tests.test_cluster_capacity import seed

    seed(kube_api)
    result = cli("--kubeconfig", str(kube_api.kubeconfig), "capacity", "--cluster")
    assert result.exit_code == 0, result.stderr
    assert "instance types from: embedded catalog 2026-11" in result.stdout
