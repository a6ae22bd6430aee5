"""`terwayctl doctor --all-nodes` / `--node NAME`: what every node's daemon published on its Node.

Each Node carries the condition ``TerwayNetworkReady`` and the annotation of its findings
(`terwayctl.doctor.publish`). A node is **ok** when the condition is True and its heartbeat is recent,
**fail** when it is False, and **not-reporting** when it has no condition or its lastHeartbeatTime is
older than `STALE_PERIODS` x the period the daemon published (its daemon is not running, or cannot
reach the API server): that is itself a finding.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from terwayctl.doctor.model import Finding, Report, Scope, Status
from terwayctl.doctor.publish import (
    ANNOTATION,
    CONDITION_TYPE,
    DEFAULT_PERIOD,
    PublishedReport,
    decode_report,
    published_titles,
)
from terwayctl.kube.api import ObjectReader
from terwayctl.kube.nodestatus import NodeCondition, node_condition

STALE_PERIODS = 3
OK, FAIL, NOT_REPORTING = "ok", "fail", "not-reporting"


def parse_time(text: str) -> float | None:
    """RFC 3339 (``2026-12-04T16:55:40Z``) as seconds since the epoch; None when empty or unreadable."""
    if not text:
        return None
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def age(seconds: float | None) -> str:
    """kubectl's short ages: 45s, 3m4s, 2h5m, 3d4h."""
    if seconds is None:
        return "?"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60}m" if s % 3600 >= 60 else f"{s // 3600}h"
    return f"{s // 86400}d{(s % 86400) // 3600}h" if s % 86400 >= 3600 else f"{s // 86400}d"


@dataclass(frozen=True)
class NodeHealth:
    node: str
    status: str
    """``ok``, ``fail`` or ``not-reporting``."""
    reason: str
    """One line: why (the condition's message, or why the node counts as not reporting)."""
    condition: NodeCondition | None
    heartbeat_age: float | None
    transition_age: float | None
    period: float
    failing: tuple[str, ...]
    published: PublishedReport | None

    def findings(self) -> tuple[Finding, ...]:
        """What the node published, as doctor's findings (title from the checks doctor declares)."""
        if self.published is None:
            return ()
        titles = published_titles()
        found = []
        for p in self.published.findings:
            try:
                status = Status(p.status)
            except ValueError:
                status = Status.FAIL
            found.append(Finding(p.check_id, titles.get(p.check_id, p.check_id), Scope.NODE, status, p.evidence,
                                 p.fix))
        return tuple(found)

    def report(self) -> Report:
        return Report(self.findings())


def node_health(obj: Mapping[str, Any], now: float, stale_periods: int = STALE_PERIODS) -> NodeHealth:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name") or "")
    published = decode_report((meta.get("annotations") or {}).get(ANNOTATION))
    period = published.period if published is not None and published.period else DEFAULT_PERIOD
    condition = node_condition(obj, CONDITION_TYPE)
    if condition is None:
        return NodeHealth(name, NOT_REPORTING, f"no {CONDITION_TYPE} condition: no terway daemon has published "
                          "its node checks here (not running, or older than this doctor)", None, None, None, period,
                          (), published)
    heartbeat = parse_time(condition.last_heartbeat_time)
    transition = parse_time(condition.last_transition_time)
    heartbeat_age = now - heartbeat if heartbeat is not None else None
    transition_age = now - transition if transition is not None else None
    bad = tuple(f.check_id for f in (published.findings if published else ()) if f.status == Status.FAIL.value)
    if heartbeat_age is None or heartbeat_age > stale_periods * period:
        when = f"last heartbeat {age(heartbeat_age)} ago" if heartbeat_age is not None else "no heartbeat time"
        return NodeHealth(name, NOT_REPORTING, f"{when}, more than {stale_periods} x its {age(period)} period: its "
                          "terway daemon is not running or cannot reach the API server", condition, heartbeat_age,
                          transition_age, period, bad, published)
    if condition.status == "True":
        return NodeHealth(name, OK, condition.message, condition, heartbeat_age, transition_age, period, (),
                          published)
    if not bad and condition.status == "False":
        bad = tuple(i.strip() for i in condition.message.partition(": ")[2].split(" (")[0].split(",") if i.strip())
    return NodeHealth(name, FAIL, condition.message, condition, heartbeat_age, transition_age, period, bad,
                      published)


def read_fleet(reader: ObjectReader, now: float, stale_periods: int = STALE_PERIODS) -> list[NodeHealth]:
    """Every Node's health, by name."""
    return sorted((node_health(o, now, stale_periods) for o in reader.list("v1", "nodes")), key=lambda h: h.node)


def health_row(health: NodeHealth) -> dict[str, Any]:
    """The stable `-o json` object of one node (docs/doctor.md, "Across the cluster")."""
    c = health.condition
    return {
        "node": health.node,
        "status": health.status,
        "reason": health.reason,
        "condition": c.as_object() if c is not None else None,
        "heartbeat_age_seconds": round(health.heartbeat_age, 1) if health.heartbeat_age is not None else None,
        "period_seconds": health.period,
        "failing": list(health.failing),
        "findings": [{"check_id": f.check_id, "title": f.title, "scope": f.scope.value, "status": f.status.value,
                      "evidence": list(f.evidence), "fix": f.fix} for f in health.findings()],
    }


def summary_line(fleet: Sequence[NodeHealth]) -> str:
    count = {s: sum(1 for h in fleet if h.status == s) for s in (OK, FAIL, NOT_REPORTING)}
    return (f"{len(fleet)} node(s): {count[OK]} ok, {count[FAIL]} failing, {count[NOT_REPORTING]} not reporting")
