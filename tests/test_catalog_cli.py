"""`terwayctl catalog refresh` and `catalog show`, end to end through the CLI against the emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import CliResult
from tests.fixtures.cloud import CloudEnv
from tests.fixtures.emulator import RunningEmulator

Cli = Callable[..., CliResult]


def test_refresh_then_show(cli: Cli, keys: RunningEmulator, cloud_env: CloudEnv) -> None:
    result = cli("--endpoint", keys.url, "--region", keys.region, "catalog", "refresh")
    assert result.exit_code == 0, result.stderr
    cache = cloud_env.cache / "terwayctl" / "instance-types-cn-hangzhou.csv"
    assert result.stdout == (
        f"fetched 1468 instance types in cn-hangzhou from {keys.url}\n"
        f"wrote {cache}\n"
    )
    assert cache.read_text().startswith("instance_type,family,vcpu,memory_gib,eni_quantity,")
    assert (cache.parent / "instance-types-cn-hangzhou.json").is_file()

    shown = cli("--region", "cn-hangzhou", "catalog", "show")
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("capacity uses: cache cn-hangzhou 20") and lines[0].endswith("(1468 instance types)")
    assert lines[1].split() == ["ACTIVE", "SOURCE", "REGION", "ROWS", "FETCHED", "AGE", "PATH"]
    assert lines[2].split()[:4] == ["*", "cache", "cn-hangzhou", "1468"]
    assert lines[3].split()[:3] == ["embedded", "-", "1468"]

    rows = json.loads(cli("--region", "cn-hangzhou", "catalog", "show", "-o", "json").stdout)
    assert [(r["kind"], r["active"], r["region"], r["rows"]) for r in rows] == [
        ("cache", True, "cn-hangzhou", 1468), ("embedded", False, None, 1468)]
    assert rows[0]["age_seconds"] < 60 and rows[0]["path"] == str(cache)
    as_yaml = yaml.safe_load(cli("--region", "cn-hangzhou", "catalog", "show", "-o", "yaml").stdout)

    def timeless(items: list[dict[str, object]]) -> list[dict[str, object]]:  # the age moves between two runs
        return [{k: v for k, v in item.items() if k not in ("age", "age_seconds")} for item in items]

    assert timeless(as_yaml) == timeless(rows)


def test_show_without_cache_or_region(cli: Cli, cloud_env: CloudEnv) -> None:
    result = cli("catalog", "show")
    assert result.exit_code == 0
    assert result.stdout.startswith("capacity uses: embedded catalog 2026-11 (1468 instance types)\n")
    assert "no region given" in result.stdout
    other = cli("--region", "cn-beijing", "catalog", "show")
    assert "no cache for cn-beijing: run 'terwayctl --region cn-beijing catalog refresh'" in other.stdout


def test_refresh_to_a_file(cli: Cli, keys: RunningEmulator, cloud_env: CloudEnv, tmp_path: Path) -> None:
    target = tmp_path / "types.csv"
    result = cli("--endpoint", keys.url, "--region", keys.region, "catalog", "refresh", "--file", str(target))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.endswith(f"wrote {target}\n")
    assert len(target.read_text().splitlines()) == 1469
    assert not (cloud_env.cache / "terwayctl").exists()


def test_refresh_with_region_from_the_profile(cli: Cli, emulator: RunningEmulator, cloud_env: CloudEnv,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cloud_env.write_aliyun_config({"current": "emu", "profiles": [{
        "name": "emu", "mode": "AK", "access_key_id": emulator.access_key_id,
        "access_key_secret": emulator.access_key_secret, "region_id": emulator.region}]})
    monkeypatch.setenv("TERWAYCTL_ENDPOINT", emulator.url)
    result = cli("catalog", "refresh")
    assert result.exit_code == 0, result.stderr
    assert "fetched 1468 instance types in cn-hangzhou" in result.stdout


def test_refresh_without_credentials(cli: Cli, emulator: RunningEmulator, cloud_env: CloudEnv) -> None:
    result = cli("--endpoint", emulator.url, "--region", emulator.region, "catalog", "refresh")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no Alibaba Cloud credentials found\nhint: set ALIBABA_CLOUD_ACCESS_KEY_ID")
    assert result.stdout == ""


def test_refresh_with_a_wrong_secret_hides_it(cli: Cli, emulator: RunningEmulator, cloud_env: CloudEnv,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "NotTheSecret0123456789")
    result = cli("--endpoint", emulator.url, "--region", emulator.region, "catalog", "refresh")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: ") and "secret" in lines[0]
    assert lines[1].startswith("hint: check the AccessKey id and secret")
    assert "NotTheSecret0123456789" not in result.stdout + result.stderr
    assert not (cloud_env.cache / "terwayctl").exists()


def test_refresh_unknown_key_and_no_region(cli: Cli, emulator: RunningEmulator, cloud_env: CloudEnv,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI5tUnknownKeyId77")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "UnknownSecret77")
    no_region = cli("--endpoint", emulator.url, "catalog", "refresh")
    assert no_region.exit_code == 2 and "hint: pass --region" in no_region.stderr
    unknown = cli("--endpoint", emulator.url, "--region", emulator.region, "catalog", "refresh")
    assert unknown.exit_code == 2
    assert "AccessKey id is unknown" in unknown.stderr
    assert "LTAI5tUnknownKeyId77" not in unknown.stderr and "UnknownSecret77" not in unknown.stderr


def test_bad_endpoint_is_bad_input(cli: Cli, keys: RunningEmulator) -> None:
    result = cli("--endpoint", "ftp://127.0.0.1:1", "--region", keys.region, "catalog", "refresh")
    assert result.exit_code == 2 and "is not an http(s) URL" in result.stderr
