"""Every check doctor knows, declared as one list (one module per family)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from terwayctl.core.errors import InvalidInput
from terwayctl.doctor import cloud, cluster, datapath, devices, node, policy, probe
from terwayctl.doctor.model import Check, Scope

CHECKS: tuple[Check, ...] = (*cloud.CHECKS, *cluster.CHECKS, *policy.CHECKS, *devices.CHECKS, *node.CHECKS,
                              *datapath.CHECKS, *probe.CHECKS)
SCOPES = tuple(s.value for s in Scope)


def check_ids() -> list[str]:
    return [c.id for c in CHECKS]


def select(scopes: Iterable[str], ids: Sequence[str], checks: Sequence[Check] = CHECKS) -> list[Check]:
    """The checks of `scopes`, narrowed to `ids` when given (in declaration order).

    Raises InvalidInput for an unknown scope or check id, with the known ones as the hint.
    """
    wanted_scopes = set(scopes)
    unknown_scopes = sorted(wanted_scopes - set(SCOPES))
    if unknown_scopes:
        raise InvalidInput(f"unknown scope {', '.join(unknown_scopes)}", hint=f"use one of: {', '.join(SCOPES)}, all")
    known = {c.id for c in checks}
    unknown = [i for i in ids if i not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1, cutoff=0.5)
        hint = (f"did you mean {close[0]}? " if close else "") + f"known checks: {', '.join(c.id for c in checks)}"
        raise InvalidInput(f"unknown check {', '.join(unknown)}", hint=hint)
    if ids:
        return [c for c in checks if c.id in ids]
    return [c for c in checks if c.scope.value in wanted_scopes]
