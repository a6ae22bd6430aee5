"""`terwayctl capacity`: pods per ECS instance type from ENI quotas."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TextIO

import typer

from terwayctl.cli.options import TabularOutput, TabularOutputOption
from terwayctl.cli.table import cell, write_table
from terwayctl.core import defaults
from terwayctl.core.capacity import Capacity, CapacityOptions, explain, report
from terwayctl.core.eniconf import EniCaps, eni_caps_from_conf, parse_eni_conf_text
from terwayctl.core.errors import InvalidInput
from terwayctl.data import EMBEDDED_SOURCE

if TYPE_CHECKING:
    from terwayctl.cli.context import GlobalOptions
    from terwayctl.core.catalog import Catalog


class Mode(StrEnum):
    all = "all"
    eniip = "eniip"
    eni = "eni"
    trunk = "trunk"
    prefix = "prefix"


class SortKey(StrEnum):
    name = "name"
    pods = "pods"
    vcpu = "vcpu"
    memory = "memory"


NOTES_SHOWN_UP_TO = 10


def complete_instance_types(incomplete: str) -> list[str]:
    """Shell completion for TYPE: instance types and families of the embedded catalog (loaded only here)."""
    from terwayctl.data import completion_words

    return _in_the_case_typed(incomplete, completion_words())


def complete_families(incomplete: str) -> list[str]:
    """Shell completion for --family."""
    from terwayctl.data import embedded_catalog

    return _in_the_case_typed(incomplete, embedded_catalog().families())


def _in_the_case_typed(incomplete: str, words: list[str]) -> list[str]:
    """Words starting with `incomplete` in any case, spelled with the user's prefix: the shell keeps only
    candidates that start with what was typed, and names are accepted in any case (ECS.G7 -> ECS.G7.xlarge)."""
    wanted = incomplete.lower()
    return [incomplete + word[len(incomplete):] for word in words if word.startswith(wanted)]


def capacity(
    ctx: typer.Context,
    types: Annotated[
        Optional[list[str]],  # noqa: UP045 - typer needs Optional for variadic arguments
        typer.Argument(
            help="Instance types (any case) or globs such as 'ecs.g6.*'; none means the whole catalog.",
            autocompletion=complete_instance_types,
        ),
    ] = None,
    family: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--family", help="Every type of a family, e.g. ecs.g7 (repeatable).",
                     autocompletion=complete_families),
    ] = None,
    mode: Annotated[Mode, typer.Option(help="Terway mode to count pods for (prefix: enable_ip_prefix); 'all' shows shared, exclusive and trunk and uses eniip (prefix with enable_ip_prefix in --eni-conf) for --min-pods, --sort pods and max-pods.", case_sensitive=False)] = Mode.all,
    min_pods: Annotated[Optional[int], typer.Option("--min-pods", min=0, help="Only types that reach this many pods in the chosen mode.")] = None,  # noqa: UP045
    ipv6: Annotated[bool, typer.Option("--ipv6", help="Dual stack: flag types whose ENIs cannot carry as many IPv6 as IPv4 addresses.")] = False,
    sort: Annotated[SortKey, typer.Option(help="Sort key (ascending; unknown values last).", case_sensitive=False)] = SortKey.name,
    reverse: Annotated[bool, typer.Option("--reverse", help="Sort descending.")] = False,
    host_network_pods: Annotated[int, typer.Option("--host-network-pods", min=0, help="Host-network pods per node (terway, kube-proxy) added to the recommended --max-pods.")] = defaults.DEFAULT_HOST_NETWORK_PODS,
    eni_conf: Annotated[Optional[Path], typer.Option("--eni-conf", help="eni_conf JSON file: apply its max_eni, min_eni, eni_cap_ratio, eni_cap_shift, enable_erdma, enable_ip_prefix and ipv4_prefix_count.")] = None,  # noqa: UP045
    explain_: Annotated[bool, typer.Option("--explain", help="Print the formulas with the numbers put in, for one type.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Ask DescribeInstanceTypes (cloud credentials, --region, --endpoint) instead of the catalog.")] = False,
    cluster: Annotated[bool, typer.Option("--cluster", help="Every node of the cluster (--kubeconfig): capacity in the cluster's Terway mode, kubelet max-pods, pods running, and problems.")] = False,
    output: TabularOutputOption = TabularOutput.table,
) -> None:
    """How many pods fit on an ECS instance type, from its ENI quotas."""
    if cluster:
        from terwayctl.cli.capacity_cluster import cluster_capacity_command

        return cluster_capacity_command(ctx, output)
    from terwayctl.cli.context import global_options
    from terwayctl.data import provenance

    options = CapacityOptions(
        mode=mode.value,
        ipv6=ipv6,
        host_network_pods=host_network_pods,
        caps=_read_caps(eni_conf),
    )
    if explain_:
        name = _single_type_for_explain(types or [], family or [])
        catalog = choose_catalog(global_options(ctx), live, [name])
        it = catalog.select([name], [])[0]
        cells = provenance(it.name) if catalog.source == EMBEDDED_SOURCE else {}
        for line in explain(it, options, catalog.source, cells, catalog.date):
            typer.echo(line)
        return
    catalog = choose_catalog(global_options(ctx), live, types or [], family or [])
    chosen = catalog.select(types or [], family or [])
    rows = report(chosen, options, catalog.source, min_pods=min_pods, sort=sort.value, reverse=reverse,
                  date=catalog.date)
    if output is TabularOutput.table:
        print_capacity_table(sys.stdout, rows, options, catalog.date)
    else:
        from terwayctl.cli.render import emit_structured

        emit_structured(rows, output.value)


def choose_catalog(
    options: GlobalOptions, live: bool, patterns: list[str] | None = None, families: list[str] | None = None
) -> Catalog:
    """Live DescribeInstanceTypes; else the region's fresh cache (catalog refresh); else the embedded one.

    The figures' date travels with the catalog (`Catalog.date`): a live catalog is dated today (UTC).
    With `patterns`/`families`, the embedded catalog may come back holding just the rows they pick.
    """
    if live:
        from dataclasses import replace
        from datetime import UTC, datetime

        from terwayctl.cloud.catalog import fetch_catalog
        from terwayctl.cloud.session import client_from_options

        with client_from_options(options) as cloud:
            catalog = fetch_catalog(cloud)
        return catalog if catalog.date else replace(catalog, date=datetime.now(UTC).date().isoformat())
    from terwayctl.data import embedded_catalog_for, has_caches

    if not has_caches():
        return embedded_catalog_for(patterns or [], families or [])
    from terwayctl.cli.context import offline_region
    from terwayctl.data.cache import preferred_catalog

    # Resolving the region from the aliyun profile costs ~17 ms of imports: only when a cache exists.
    region = options.region or offline_region(options)
    return preferred_catalog(region, patterns=patterns or [], families=families or [])


def _read_caps(path: Path | None) -> EniCaps:
    if path is None:
        return EniCaps()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read --eni-conf {path}: {exc.strerror}") from None
    return eni_caps_from_conf(parse_eni_conf_text(text, str(path)), str(path))


def _single_type_for_explain(types: list[str], families: list[str]) -> str:
    if len(types) != 1 or families or any(ch in types[0] for ch in "*?["):
        raise InvalidInput(
            "--explain takes exactly one instance type name",
            hint="e.g. terwayctl capacity --explain ecs.g7.4xlarge",
        )
    return types[0]


def print_capacity_table(
    out: TextIO, rows: list[Capacity], options: CapacityOptions, catalog_date: str | None = None
) -> None:
    headers = ["TYPE", "vCPU", "MEM-GiB", "ENIs", "IPv4/ENI", "IPv6/ENI"]
    columns = _mode_columns(options)
    headers += [*columns, "DUAL-STACK", "MAX-PODS"]
    write_table(out, headers, [_cells(row, columns) for row in rows], right=headers[1:])
    _print_footer(out, rows, options, catalog_date)


def _mode_columns(options: CapacityOptions) -> list[str]:
    """The pod columns of a mode; PREFIX joins 'all' only when eni_conf enables IP prefixes
    (EniTotalQuantity, which it needs, is unknown for most of the catalog)."""
    if options.mode == "all":
        return ["SHARED", "EXCLUSIVE", "TRUNK"] + (["PREFIX"] if options.caps.enable_ip_prefix else [])
    return {
        "eniip": ["SHARED"],
        "eni": ["EXCLUSIVE"],
        "trunk": ["SHARED", "TRUNK"],
        "prefix": ["PREFIX"],
    }[options.mode]


def _cells(row: Capacity, columns: list[str]) -> list[str]:
    by_column = {
        "SHARED": _pods_cell(row.shared_eni_pods, row.shared_eni_ok),
        "EXCLUSIVE": _pods_cell(row.exclusive_eni_pods, row.exclusive_eni_ok),
        "TRUNK": cell(row.trunk_pods),
        "PREFIX": cell(row.prefix_pods),
    }
    memory = None if row.memory_gib is None else f"{row.memory_gib:g}"
    cells = [row.name, cell(row.vcpu), cell(memory), cell(row.enis), cell(row.ipv4_per_eni), cell(row.ipv6_per_eni)]
    cells += [by_column[c] for c in columns]
    dual = "?" if row.dual_stack is None else ("yes" if row.dual_stack else "no")
    return [*cells, dual, cell(row.max_pods)]


def _pods_cell(pods: int | None, meets_minimum: bool | None) -> str:
    if pods is None:
        return "?"
    return f"{pods}*" if meets_minimum is False else str(pods)


def _print_footer(
    out: TextIO, rows: list[Capacity], options: CapacityOptions, catalog_date: str | None = None
) -> None:
    sources = sorted({r.source for r in rows})
    mode = options.max_pods_mode
    source = ", ".join(sources) or "-"
    if catalog_date and catalog_date not in source:
        source += f" (figures as of {catalog_date})"
    cells = {c for row in rows for c in _cells(row, _mode_columns(options))}
    legend = []  # only the marks that appear in the table
    if any(c.endswith("*") for c in cells):
        legend.append(f"* below the ACK minimum (shared > {defaults.ACK_MIN_SHARED_ENI_PODS}, "
                      f"exclusive > {defaults.ACK_MIN_EXCLUSIVE_ENI_PODS}): such a node cannot join")
    if "?" in cells:
        legend.append("? unknown in the catalog")
    lines = [
        f"{len(rows)} type(s); source: {source}",
        "; ".join(legend) + ("." if legend else "")
        + f"{' ' if legend else ''}MAX-PODS = {mode} pod IPs + {options.host_network_pods} host-network pods.",
    ]
    noted = [r for r in rows if r.notes]
    if 0 < len(noted) <= NOTES_SHOWN_UP_TO:
        lines += [f"{row.name}: {note}" for row in noted for note in row.notes]
    elif noted:
        lines.append(f"{len(noted)} type(s) have unknown figures; -o json shows why.")
    out.write("\n".join(lines) + "\n")
