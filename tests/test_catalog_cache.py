"""The XDG catalog cache: atomic writes, round trip with the embedded columns, age, listing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from terwayctl.core.catalog import CATALOG_COLUMNS, Catalog, InstanceType
from terwayctl.core.errors import InvalidInput
from terwayctl.data import CATALOG_FILE, cache, embedded_catalog

TYPES = (
    InstanceType("ecs.g7.4xlarge", "ecs.g7", 16, 64.0, 8, 30, 30, 264, True),
    InstanceType("ecs.t5-lc2m1.nano", "ecs.t5", 1, 0.5, 2, None, None, None, None),
)
CATALOG = Catalog(TYPES, "live cn-hangzhou")
WHEN = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)


def test_cache_dir_follows_xdg(tmp_path: Path) -> None:
    assert cache.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "terwayctl"
    assert cache.cache_dir({"HOME": "/home/u"}) == Path("/home/u/.cache/terwayctl")
    assert cache.cache_dir({"HOME": "/home/u", "XDG_CACHE_HOME": "relative"}) == Path("/home/u/.cache/terwayctl")
    assert cache.cache_path("cn-hangzhou", {"XDG_CACHE_HOME": str(tmp_path)}).name == "instance-types-cn-hangzhou.csv"


def test_bad_region_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        cache.cache_path("../../etc", {"XDG_CACHE_HOME": str(tmp_path)})


def test_round_trip(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    info = cache.write_cache(CATALOG, "cn-hangzhou", fetched_at=WHEN, environ=env)
    assert info.rows == 2 and info.path.parent == tmp_path / "terwayctl"
    header = info.path.read_text().splitlines()[0]
    assert tuple(header.split(",")) == CATALOG_COLUMNS
    assert CATALOG_FILE.read_text().splitlines()[0] == header
    read = cache.read_cache("cn-hangzhou", env)
    assert read is not None
    assert read.types == TYPES
    assert read.source == "cache cn-hangzhou 2026-11-20"
    meta = json.loads(info.path.with_suffix(".json").read_text())
    assert meta["fetched_at"] == "2026-11-20T08:30:00+00:00" and meta["rows"] == 2
    assert not [p for p in info.path.parent.iterdir() if p.name.endswith(".tmp")]


def test_embedded_catalog_round_trips_through_the_cache_format(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    embedded = embedded_catalog()
    cache.write_cache(embedded, "cn-test", environ=env)
    read = cache.read_cache("cn-test", env)
    assert read is not None and read.types == embedded.types


def test_age_and_missing(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    assert cache.cache_info("cn-hangzhou", env) is None
    assert cache.read_cache("cn-hangzhou", env) is None
    assert cache.cache_age("cn-hangzhou", environ=env) is None
    cache.write_cache(CATALOG, "cn-hangzhou", fetched_at=WHEN, environ=env)
    assert cache.cache_age("cn-hangzhou", WHEN + timedelta(hours=3), env) == timedelta(hours=3)


def test_sidecar_missing_falls_back_to_mtime(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    info = cache.write_cache(CATALOG, "cn-hangzhou", fetched_at=WHEN, environ=env)
    info.path.with_suffix(".json").unlink()
    stamp = WHEN.timestamp() - 3600
    os.utime(info.path, (stamp, stamp))
    again = cache.cache_info("cn-hangzhou", env)
    assert again is not None and again.rows == 2 and again.fetched_at == WHEN - timedelta(hours=1)


def test_list_and_preferred(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    assert cache.list_caches(env) == []
    cache.write_cache(CATALOG, "cn-shanghai", fetched_at=WHEN, environ=env)
    cache.write_cache(CATALOG, "cn-beijing", fetched_at=WHEN, environ=env)
    assert [i.region for i in cache.list_caches(env)] == ["cn-beijing", "cn-shanghai"]
    assert cache.preferred_catalog("cn-beijing", env).source == "cache cn-beijing 2026-11-20"
    assert cache.preferred_catalog("cn-hangzhou", env).source == embedded_catalog().source
    assert cache.preferred_catalog(None, env).source == embedded_catalog().source


def test_write_catalog_csv_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "types.csv"
    cache.write_catalog_csv(CATALOG, target)
    assert target.read_text().splitlines()[1].startswith("ecs.g7.4xlarge,ecs.g7,16,64,8,30,30,264,true")
