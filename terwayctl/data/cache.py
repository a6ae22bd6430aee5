"""The user's instance-type catalog cache (written by `terwayctl catalog refresh`).

$XDG_CACHE_HOME (or ~/.cache)/terwayctl/instance-types-<region>.csv holds the catalog in the same
columns as the embedded one; instance-types-<region>.json next to it records when and from where
it was fetched. Both are written atomically (a temporary file, then os.replace). Standard library.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from terwayctl.core.catalog import CATALOG_COLUMNS, Catalog, InstanceType, parse_catalog_csv
from terwayctl.core.errors import InvalidInput, TerwayctlError
from terwayctl.data import CACHE_GLOB, cache_dir

# A cache older than this is stale: `capacity` falls back to the embedded catalog.
FRESH_FOR = timedelta(days=30)

CACHE_FORMAT = 1
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class CacheInfo:
    """One cached catalog: where it is, its region, when it was fetched and how many rows it has."""

    region: str
    path: Path
    fetched_at: datetime
    rows: int
    fetched_from: str = ""

    def age(self, now: datetime | None = None) -> timedelta:
        current = now or datetime.now(UTC)
        return max(timedelta(0), current - self.fetched_at)

    @property
    def source(self) -> str:
        """The Catalog.source of this cache, e.g. ``cache cn-hangzhou 2026-11-21``."""
        return f"cache {self.region} {self.fetched_at.date().isoformat()}"


def cache_path(region: str, environ: Mapping[str, str] | None = None) -> Path:
    return cache_dir(environ) / f"instance-types-{_checked_region(region)}.csv"


def _meta_path(csv_path: Path) -> Path:
    return csv_path.with_suffix(".json")


def _checked_region(region: str) -> str:
    if not _REGION.match(region):
        raise InvalidInput(f"{region!r} is not a region id", hint="region ids look like cn-hangzhou")
    return region


def catalog_to_csv(catalog: Catalog) -> str:
    """The catalog in the embedded CSV's columns (unknown values as empty cells)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CATALOG_COLUMNS)
    for t in catalog.types:
        writer.writerow(_row(t))
    return out.getvalue()


def _row(t: InstanceType) -> list[str]:
    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    return [
        t.name,
        t.family,
        cell(t.vcpu),
        cell(t.memory_gib),
        cell(t.eni_quantity),
        cell(t.eni_private_ip_quantity),
        cell(t.eni_ipv6_quantity),
        cell(t.eni_total_quantity),
        cell(t.eni_trunk_supported),
    ]


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same directory and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache holds no secrets
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_catalog_csv(catalog: Catalog, path: Path) -> None:
    """The catalog as CSV at `path` (atomically)."""
    try:
        write_atomic(path, catalog_to_csv(catalog))
    except OSError as exc:
        raise TerwayctlError(f"cannot write {path}: {exc.strerror}", hint="check the path and its permissions") from None


def write_cache(
    catalog: Catalog,
    region: str,
    *,
    fetched_at: datetime | None = None,
    environ: Mapping[str, str] | None = None,
) -> CacheInfo:
    """Store `catalog` as the cache of `region`, with its fetched-at time (default: now, UTC)."""
    path = cache_path(region, environ)
    when = (fetched_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    meta = {
        "format": CACHE_FORMAT,
        "region": region,
        "fetched_at": when.isoformat(),
        "rows": len(catalog.types),
        "fetched_from": catalog.source,
    }
    try:
        write_atomic(path, catalog_to_csv(catalog))
        write_atomic(_meta_path(path), json.dumps(meta, indent=2) + "\n")
    except OSError as exc:
        raise TerwayctlError(
            f"cannot write the catalog cache {path}: {exc.strerror}",
            hint="set XDG_CACHE_HOME to a writable directory, or write a file with 'catalog refresh -o FILE'",
        ) from None
    return CacheInfo(region, path, when, len(catalog.types), catalog.source)


def cache_info(region: str, environ: Mapping[str, str] | None = None) -> CacheInfo | None:
    """What is cached for `region`, or None when nothing (readable) is."""
    path = cache_path(region, environ)
    if not path.is_file():
        return None
    return _info(path, region)


def _info(path: Path, region: str) -> CacheInfo | None:
    meta: dict[str, object] = {}
    try:
        loaded = json.loads(_meta_path(path).read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            meta = loaded
    except (OSError, ValueError):
        meta = {}
    fetched = _parse_time(meta.get("fetched_at"))
    try:
        if fetched is None:
            fetched = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(microsecond=0)
        rows = meta.get("rows")
        if not isinstance(rows, int):
            with path.open(encoding="utf-8") as handle:
                rows = max(0, sum(1 for _ in handle) - 1)
    except OSError:
        return None
    return CacheInfo(region, path, fetched, rows, str(meta.get("fetched_from") or ""))


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cache_age(region: str, now: datetime | None = None, environ: Mapping[str, str] | None = None) -> timedelta | None:
    info = cache_info(region, environ)
    return None if info is None else info.age(now)


def read_cache(region: str, environ: Mapping[str, str] | None = None) -> Catalog | None:
    """The cached catalog of `region` (source "cache <region> <date>"), or None when there is none.

    A cache that exists but cannot be parsed raises InvalidInput naming the file.
    """
    info = cache_info(region, environ)
    if info is None:
        return None
    try:
        text = info.path.read_text(encoding="utf-8")
    except OSError:
        return None
    catalog = parse_catalog_csv(text, f"{info.source} ({info.path})")
    return Catalog(types=catalog.types, source=info.source, date=info.fetched_at.date().isoformat())


def list_caches(environ: Mapping[str, str] | None = None) -> list[CacheInfo]:
    """Every cached region, sorted by region."""
    found: list[CacheInfo] = []
    directory = cache_dir(environ)
    if not directory.is_dir():
        return found
    for path in sorted(directory.glob(CACHE_GLOB)):
        region = path.stem.removeprefix("instance-types-")
        if _REGION.match(region):
            info = _info(path, region)
            if info is not None:
                found.append(info)
    return found


def preferred_catalog(
    region: str | None,
    environ: Mapping[str, str] | None = None,
    patterns: Sequence[str] = (),
    families: Sequence[str] = (),
) -> Catalog:
    """The catalog `capacity` uses: the region's cache while it is fresh, else the embedded one
    (only the rows `patterns` and `families` pick, when they all match: see embedded_catalog_for)."""
    if region:
        age = cache_age(region, environ=environ)
        if age is not None and age <= FRESH_FOR:
            cached = read_cache(region, environ)
            if cached is not None:
                return cached
    from terwayctl.data import embedded_catalog_for

    return embedded_catalog_for(patterns, families)
