"""Run the selected checks and collect their findings; nothing a check does escapes as an exception."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from terwayctl.core.errors import TerwayctlError
from terwayctl.doctor.context import Context, DoctorOptions, Inputs
from terwayctl.doctor.model import Check, CheckSkipped, Finding, Need, Report, Status, Verdict
from terwayctl.doctor.registry import CHECKS, select
from terwayctl.doctor.topology import topology

_NEED_ORDER = (Need.CLOUD, Need.CLUSTER, Need.NODE, Need.PROBE, Need.TOPOLOGY)


def _require(ctx: Context, need: Need) -> None:
    if need is Need.CLOUD:
        ctx.cloud  # noqa: B018 - resolving the input is the point
    elif need is Need.CLUSTER:
        ctx.kube  # noqa: B018
    elif need is Need.NODE:
        ctx.node  # noqa: B018
    elif need is Need.PROBE:
        ctx.prober  # noqa: B018
    elif need is Need.TOPOLOGY:
        topology(ctx)


def run_check(check: Check, ctx: Context) -> Finding:
    """One check: skipped with the reason when an input is missing; an exception becomes a fail."""
    try:
        for need in _NEED_ORDER:
            if need in check.needs:
                _require(ctx, need)
        verdict = check.run(ctx)
    except CheckSkipped as exc:
        verdict = Verdict(Status.SKIP, (exc.reason,))
    except TerwayctlError as exc:
        verdict = Verdict(Status.FAIL, (f"error: {exc.message}",), exc.hint)
    except Exception as exc:  # noqa: BLE001 - a broken check must not take the report down
        verdict = Verdict(Status.FAIL, (f"error: {type(exc).__name__}: {exc}",),
                          "this is a bug in the check or an unexpected environment; rerun with --debug and report it")
    return Finding(check.id, check.title, check.scope, verdict.status, verdict.evidence, verdict.fix)


def run(
    options: DoctorOptions,
    inputs: Inputs,
    *,
    checks: Sequence[Check] = CHECKS,
    now: Callable[[], float] = time.time,
) -> Report:
    """Run the checks `options` selects with `inputs`; InvalidInput only for a bad --check or scope.

    A malformed input file is a finding (cloud.eni-conf), never an exception: the other checks still run.
    """
    selected = select(options.scopes, options.check_ids, checks)
    ctx = Context(options, inputs, now=now)
    try:
        return Report(tuple(run_check(check, ctx) for check in selected))
    finally:
        ctx.close()
