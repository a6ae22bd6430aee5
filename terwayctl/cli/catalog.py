"""`terwayctl catalog`: refresh the instance-type catalog from the live API, and show its source."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TextIO

import typer

from terwayctl.cli.context import global_options, offline_region
from terwayctl.cli.options import Output, OutputOption
from terwayctl.cli.render import emit_structured
from terwayctl.cli.table import write_table
from terwayctl.core.errors import InvalidInput, TerwayctlError

if TYPE_CHECKING:
    from terwayctl.data.cache import CacheInfo

app = typer.Typer(
    help="The ECS instance-type catalog that capacity uses: refresh it live, show where it comes from.",
    no_args_is_help=True,
)



@dataclass(frozen=True)
class CatalogSourceRow:
    """One place catalog data can come from; `active` marks the one capacity uses."""

    kind: str
    active: bool
    region: str | None
    rows: int
    fetched_at: str | None
    age: str
    age_seconds: int | None
    path: str
    source: str


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    output_file: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional
        typer.Option("--file", metavar="FILE", dir_okay=False,
                     help="Write the catalog CSV to this file instead of the cache."),
    ] = None,
    old_output: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--output", "-o", metavar="FILE", hidden=True,
                     help="Deprecated spelling of --file (one release)."),
    ] = None,
) -> None:
    """Fetch every instance type of the region (DescribeInstanceTypes) and store it in the cache."""
    if old_output is not None:
        from terwayctl.cli.options import deprecated

        if old_output.lower() in ("table", "json", "yaml", "csv"):
            raise InvalidInput(f"--output {old_output}: refresh writes a CSV file, it has no output format",
                               hint="--file PATH writes the CSV there; without it the cache is written")
        if output_file is not None:
            raise InvalidInput("--output and --file both given", hint="use --file only")
        deprecated(f"'catalog refresh -o {old_output}'", f"'catalog refresh --file {old_output}'")
        output_file = Path(old_output)
    from terwayctl.cloud.catalog import fetch_catalog
    from terwayctl.cloud.session import client_from_options
    from terwayctl.data.cache import write_cache, write_catalog_csv

    options = global_options(ctx)
    with client_from_options(options) as client:
        catalog = fetch_catalog(client)
        region = client.region
        where = client.endpoint.url if client.endpoint else "the regional endpoint"
    if not catalog.types:
        raise TerwayctlError(
            f"DescribeInstanceTypes returned no instance types for {region}; the cache was left as it was",
            hint="check --region and --endpoint",
        )
    if output_file is not None:
        write_catalog_csv(catalog, output_file)
        target = str(output_file)
    else:
        target = str(write_cache(catalog, region).path)
    typer.echo(f"fetched {len(catalog.types)} instance types in {region} from {where}")
    typer.echo(f"wrote {target}")


@app.command("show")
def show(ctx: typer.Context, output: OutputOption = Output.table) -> None:
    """Where the catalog that capacity uses comes from, and how old it is."""
    region = offline_region(global_options(ctx))
    rows = catalog_sources(region, datetime.now(UTC))
    if output is Output.table:
        print_sources(sys.stdout, rows, region)
    else:
        emit_structured(rows, output.value)


def catalog_sources(region: str | None, now: datetime) -> list[CatalogSourceRow]:
    """The region's cache (active while fresh), the embedded catalog, then other regions' caches."""
    from terwayctl.data import CATALOG_DATE, CATALOG_FILE, embedded_catalog
    from terwayctl.data.cache import FRESH_FOR, cache_info, list_caches

    rows: list[CatalogSourceRow] = []
    own = cache_info(region) if region else None
    fresh = own is not None and own.age(now) <= FRESH_FOR
    if own is not None:
        rows.append(_cache_row(own, now, active=fresh))
    embedded = embedded_catalog()
    rows.append(
        CatalogSourceRow(
            kind="embedded",
            active=not fresh,
            region=None,
            rows=len(embedded.types),
            fetched_at=CATALOG_DATE,
            age=f"built {CATALOG_DATE}",
            age_seconds=None,
            path=str(CATALOG_FILE),
            source=embedded.source,
        )
    )
    rows += [_cache_row(info, now, active=False) for info in list_caches() if info.region != region]
    return rows


def _cache_row(info: CacheInfo, now: datetime, *, active: bool) -> CatalogSourceRow:
    age = info.age(now)
    return CatalogSourceRow(
        kind="cache",
        active=active,
        region=info.region,
        rows=info.rows,
        fetched_at=info.fetched_at.isoformat(),
        age=_human_age(age),
        age_seconds=int(age.total_seconds()),
        path=str(info.path),
        source=info.source,
    )


def _human_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d"


def print_sources(out: TextIO, rows: list[CatalogSourceRow], region: str | None) -> None:
    from terwayctl.data.cache import FRESH_FOR

    active = next(r for r in rows if r.active)
    out.write(f"capacity uses: {active.source} ({active.rows} instance types)\n")
    headers = ["ACTIVE", "SOURCE", "REGION", "ROWS", "FETCHED", "AGE", "PATH"]
    cells = [
        ["*" if r.active else "", r.kind, r.region or "-", str(r.rows), r.fetched_at or "-", r.age, r.path]
        for r in rows
    ]
    write_table(out, headers, cells, right=["ROWS"])
    if region is None:
        out.write("no region given (--region, ALIBABA_CLOUD_REGION_ID or the profile): the embedded catalog is used\n")
    elif any(r.kind == "cache" and r.region == region for r in rows) and active.kind == "embedded":
        out.write(
            f"the {region} cache is older than {FRESH_FOR.days} days and not used: "
            f"run 'terwayctl --region {region} catalog refresh'\n"
        )
    elif active.kind == "embedded":
        out.write(f"no cache for {region}: run 'terwayctl --region {region} catalog refresh' to fetch it\n")
