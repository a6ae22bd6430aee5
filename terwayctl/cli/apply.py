"""`terwayctl apply`: render the install manifests and server-side apply them (field manager terwayctl)."""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TextIO

import typer

from terwayctl.cli.context import global_options
from terwayctl.core.errors import InvalidInput

if TYPE_CHECKING:
    from terwayctl.kube.api import ObjectReader
    from terwayctl.kube.apply import ApplyResult
    from terwayctl.kube.rollout import RolloutResult

DEFAULT_TIMEOUT = "5m"
POLL_SECONDS = 0.5
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class DryRun(StrEnum):
    server = "server"
    client = "client"


def parse_duration(text: str, option: str = "--timeout") -> float:
    """'5m', '30s', '1.5s', '300ms', '1h' or plain seconds -> seconds."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise InvalidInput(f"{option} {text!r} is not a positive duration", hint="e.g. 90s, 5m or 1h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def apply(
    ctx: typer.Context,
    values: Annotated[Optional[Path], typer.Option("--values", "-f", help="YAML values file (see docs/render.md).")] = None,  # noqa: UP045
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Set a value, key=value (repeatable; beats --values).")] = None,  # noqa: UP045
    dry_run: Annotated[Optional[DryRun], typer.Option("--dry-run", help="server: the API server computes the result and keeps nothing; client: merge locally, no write.", case_sensitive=False)] = None,  # noqa: UP045
    diff: Annotated[bool, typer.Option("--diff", help="Show what would change, object by object (a server dry run unless --dry-run client); changes nothing.")] = False,
    force_conflicts: Annotated[bool, typer.Option("--force-conflicts", help="Take over fields another field manager owns.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the DaemonSet rollout until its pods are ready.")] = False,
    timeout: Annotated[str, typer.Option("--timeout", help="How long --wait waits, e.g. 90s or 5m.")] = DEFAULT_TIMEOUT,
) -> int:
    """Render the Terway manifests and server-side apply them to the cluster.

    With --diff the exit status is that of kubectl diff: 0 when nothing would change, 1 when
    something would."""
    from terwayctl.cli.manifest import global_values
    from terwayctl.kube.apply import ApplyOptions, apply_objects
    from terwayctl.kube.client import connect
    from terwayctl.manifests import render_objects, render_warnings
    from terwayctl.manifests.values import load_values

    options = global_options(ctx)
    seconds = parse_duration(timeout)
    loaded = load_values(values, [*global_values(ctx), *(set_ or [])])
    rendered = render_objects(loaded)
    for warning in render_warnings(loaded):
        print(f"warning: {warning}", file=sys.stderr)
    mode = dry_run.value if dry_run is not None else ("server" if diff else None)
    apply_options = ApplyOptions(dry_run=mode, force_conflicts=force_conflicts, diff=diff,
                                 default_namespace=options.namespace)
    with connect(options.kubeconfig, options.context) as kube:
        results = apply_objects(kube, rendered, apply_options)
        print_apply_results(sys.stdout, results, mode, diff)
        if diff:
            return 1 if any(r.action != "unchanged" for r in results) else 0
        daemonsets = [r for r in results if r.kind == "DaemonSet"]
        if not wait or mode is not None or not daemonsets:
            return 0
        target = daemonsets[0]
        outcome = wait_with_progress(kube, target.namespace or options.namespace, target.name, seconds)
    print_rollout_result(sys.stdout, outcome)
    return 0 if outcome.complete else 1


def print_apply_results(out: TextIO, results: list[ApplyResult], dry_run: str | None, diff: bool) -> None:
    suffix = f" ({dry_run} dry run)" if dry_run else ""
    for result in results:
        if diff and result.diff:
            out.write(result.diff if result.diff.endswith("\n") else result.diff + "\n")
        out.write(f"{result.ref} {result.action}{suffix}\n")
        for note in result.notes:
            out.write(f"note: {note}\n")


def wait_with_progress(reader: ObjectReader, namespace: str, name: str, timeout: float,
                       stream: TextIO | None = None) -> RolloutResult:
    """Wait for the DaemonSet rollout: a rich progress bar on a TTY, plain lines otherwise."""
    from terwayctl.kube.rollout import RolloutProgress, wait_for_rollout

    out = stream or sys.stdout
    if out.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=Console(file=out), transient=False) as bar:
            task = bar.add_task(f"rollout {namespace}/{name}", total=None)

            def show(progress: RolloutProgress) -> None:
                bar.update(task, total=max(progress.desired, 1), completed=min(progress.ready, progress.updated))

            return wait_for_rollout(reader, namespace, name, timeout=timeout, poll=POLL_SECONDS, on_progress=show)

    last: list[str] = []

    def line(progress: RolloutProgress) -> None:
        text = (f"rollout {namespace}/{name}: {progress.updated}/{progress.desired} updated, "
                f"{progress.ready}/{progress.desired} ready")
        if last != [text]:
            out.write(text + "\n")
            out.flush()
            last[:] = [text]

    return wait_for_rollout(reader, namespace, name, timeout=timeout, poll=POLL_SECONDS, on_progress=line)


def print_rollout_result(out: TextIO, result: RolloutResult) -> None:
    ref = f"daemonset {result.namespace}/{result.name}"
    if result.complete:
        out.write(f"{ref} rolled out: {result.progress.ready}/{result.progress.desired} pods ready\n")
        return
    out.write(f"{ref} not ready after {result.waited_seconds:.0f}s: "
              f"{result.progress.ready}/{result.progress.desired} pods ready\n")
    for pod in result.unready:
        out.write(f"  pod {pod.name} on node {pod.node or '?'}: {pod.reason}\n")
    out.write(f"hint: kubectl -n {result.namespace} describe pod <pod>; "
              f"kubectl -n {result.namespace} logs <pod>\n")
