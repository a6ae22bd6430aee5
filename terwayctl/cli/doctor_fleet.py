"""`terwayctl doctor --all-nodes` / `--node NAME`: print what the nodes' daemons published (doctor.fleet)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

import typer

from terwayctl.cli.context import global_options
from terwayctl.cli.errors import EXIT_FAILURE
from terwayctl.cli.options import Output
from terwayctl.core.errors import InvalidInput

if TYPE_CHECKING:
    from terwayctl.doctor.fleet import NodeHealth

MARK = {"ok": "✓", "fail": "✗", "not-reporting": "✗"}
COLOR = {"ok": "32", "fail": "31", "not-reporting": "31"}


def show_fleet(ctx: typer.Context, node: str | None, output: Output) -> None:
    """Read every Node, print one line each (or one node's full report); exit 1 unless all are ok."""
    from terwayctl.doctor.fleet import OK, read_fleet
    from terwayctl.kube.client import connect

    g = global_options(ctx)
    with connect(g.kubeconfig, g.context, request_timeout=10.0) as client:
        fleet = read_fleet(client, time.time())
    if node is not None:
        chosen = [h for h in fleet if h.node == node]
        if not chosen:
            known = ", ".join(h.node for h in fleet) or "none"
            raise InvalidInput(f"--node {node}: the cluster has no such node", hint=f"its nodes: {known}")
        fleet = chosen
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    if output is Output.table:
        if node is not None:
            print_node(sys.stdout, fleet[0], color=color)
        else:
            print_fleet(sys.stdout, fleet, color=color)
    else:
        from terwayctl.cli.render import emit_structured
        from terwayctl.doctor.fleet import health_row

        rows = [health_row(h) for h in fleet]
        emit_structured(rows[0] if node is not None else rows, output.value)
    if any(h.status != OK for h in fleet):
        raise typer.Exit(EXIT_FAILURE)


def _mark(status: str, color: bool) -> str:
    mark = MARK.get(status, "?")
    return f"\033[{COLOR[status]}m{mark}\033[0m" if color and status in COLOR else mark


def headline(h: NodeHealth) -> str:
    """``node2  failing for 12s, heartbeat 1s ago: node.forward-policy`` (the node's line, without its mark)."""
    from terwayctl.doctor.fleet import OK, age

    if h.status == "not-reporting":
        return f"not reporting: {h.reason}"
    since = f"for {age(h.transition_age)}, heartbeat {age(h.heartbeat_age)} ago"
    if h.status == OK:
        return f"ready {since}"
    return f"failing {since}: {', '.join(h.failing) or h.reason}"


def _finding_lines(h: NodeHealth, indent: str, only_problems: bool) -> list[str]:
    lines: list[str] = []
    for f in h.findings():
        if only_problems and f.status.value not in ("fail", "warn"):
            continue
        mark = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}[f.status.value]
        lines.append(f"{indent}{mark} {f.check_id}: {f.title}")
        prefix = "skipped: " if f.status.value == "skip" else ""
        lines += [f"{indent}    {prefix if i == 0 else ''}{e}" for i, e in enumerate(f.evidence)]
        if f.fix and f.status.value in ("fail", "warn"):
            fix = f.fix.splitlines()
            lines.append(f"{indent}    fix: {fix[0]}")
            lines += [f"{indent}         {more}" for more in fix[1:]]
    return lines


def print_fleet(out: TextIO, fleet: Sequence[NodeHealth], *, color: bool = False) -> None:
    """One line per node (✓/✗, name, condition age, failing checks) and the failures under it, like `cilium status`."""
    from terwayctl.doctor.fleet import FAIL, summary_line

    width = max((len(h.node) for h in fleet), default=0)
    lines = []
    for h in fleet:
        lines.append(f"{_mark(h.status, color)} {h.node.ljust(width)}  {headline(h)}")
        if h.status == FAIL:
            lines += _finding_lines(h, "    ", only_problems=True)
    lines.append(summary_line(fleet))
    out.write("\n".join(lines) + "\n")


def print_node(out: TextIO, h: NodeHealth, *, color: bool = False) -> None:
    """One node: its condition, then every check it published, as `doctor` prints its own."""
    c = h.condition
    lines = [f"{_mark(h.status, color)} {h.node}  {headline(h)}"]
    if c is not None:
        lines.append(f"    condition {c.type}={c.status} ({c.reason}): {c.message}")
        lines.append(f"    lastHeartbeatTime {c.last_heartbeat_time}, lastTransitionTime {c.last_transition_time}, "
                     f"period {h.period:g}s")
    if h.published is not None:
        if h.status == "not-reporting":
            lines.append(f"    what it published last, at {h.published.time}:")
        lines += _finding_lines(h, "", only_problems=False)
        if h.published.truncated:
            lines.append("(the published report was shortened to fit the annotation: run 'terwayctl doctor "
                         "--scope node' on the node for every line)")
        lines.append(h.report().summary().line())
    out.write("\n".join(lines) + "\n")
