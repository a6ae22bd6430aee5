"""`terwayctl ipam check`: the daemon's store vs the node's kernel vs the cloud (docs/node.md)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from terwayctl.cli.context import global_options
from terwayctl.cli.options import Output, OutputOption
from terwayctl.cli.table import write_table
from terwayctl.core.errors import InvalidInput

app = typer.Typer(no_args_is_help=True, help="Inspect the node's IP address management.")


@app.command("check")
def check(
    ctx: typer.Context,
    instance_id: Annotated[str, typer.Option(help="ECS instance id of the node.")],
    state_dir: Annotated[Path, typer.Option(help="The daemon's state directory.")] = Path("/var/lib/cni/terway"),
    node_netns: Annotated[Optional[str], typer.Option(help="Network namespace of the node (default: the current one).")] = None,  # noqa: UP045
    mode: Annotated[str, typer.Option(help="The daemon's mode: eniip or eni.")] = "eniip",
    repair: Annotated[bool, typer.Option("--repair", help="Make the running daemon reconcile now, then check.")] = False,
    output: OutputOption = Output.table,
) -> None:
    """Compare store, kernel and cloud; print every mismatch and exit 1 when there is any.

    Differences explained by a cloud call of the daemon in flight are not reported; each mismatch says
    what the daemon's reconciliation does about it, and when it runs next.
    """
    from terwayctl.cloud.session import client_from_options
    from terwayctl.node.check import check, request_repair
    from terwayctl.node.config import STORE_FILE, PoolMode

    try:
        pool_mode = PoolMode(mode)
    except ValueError:
        raise InvalidInput(f"--mode must be eniip or eni, got {mode!r}") from None
    if repair:
        request_repair(state_dir / STORE_FILE, timeout=60.0)
    with client_from_options(global_options(ctx)) as client:
        report = check(state_dir / STORE_FILE, node_netns or "/proc/self/ns/net", client, instance_id, pool_mode)
    if output is Output.json:
        typer.echo(json.dumps(dataclasses.asdict(report), indent=2))
    elif output is Output.yaml:
        import yaml

        typer.echo(yaml.safe_dump(dataclasses.asdict(report), sort_keys=False).rstrip())
    else:
        out = sys.stdout
        out.write(f"store: {report.enis} ENIs, {report.ips} IPs, {report.allocations} allocations\n")
        if report.leases:
            out.write(f"leased (kept for their pods, not idle): {', '.join(report.leases)}\n")
        if report.in_flight:
            out.write(f"in flight (not compared): {', '.join(report.in_flight)}\n")
        if report.mismatches:
            write_table(out, ["KIND", "SUBJECT", "DETAIL", "REPAIR"],
                        [[m.kind, m.subject, m.detail, m.repair] for m in report.mismatches])
            when = f"; the daemon's next reconciliation: {report.next_repair}" if report.next_repair else ""
            out.write(f"{len(report.mismatches)} mismatch(es){when} ('ipam check --repair' runs it now)\n")
        else:
            out.write("store, kernel and cloud agree\n")
    if not report.ok:
        raise typer.Exit(1)
