"""What a node daemon publishes of its own health on its Node, the way node-problem-detector does.

`terwayctl daemon` (with an API server and a node name) starts a `NodeReporter`: every period it runs
doctor's node checks that make sense from inside the daemon (`daemon_checks`: the node scope without
the active probes) and writes, in one strategic merge patch of the Node's ``status`` subresource
(`terwayctl.kube.nodestatus`):

- the condition ``TerwayNetworkReady``: ``True`` (reason ``NodeChecksPassed``) or ``False`` (reason
  ``NodeChecksFailed``, the message names the failing check ids), ``lastHeartbeatTime`` = this run,
  ``lastTransitionTime`` = when the status last changed;
- the annotation ``terway.aliyun.com/node-checks``: the findings as compact JSON (`encode_report`),
  at most `MAX_ANNOTATION_BYTES`: evidence is dropped from passing checks first, then shortened.

`terwayctl doctor --all-nodes` / `--node NAME` read them back (`terwayctl.doctor.fleet`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from terwayctl.doctor.context import DoctorOptions, Inputs, unavailable
from terwayctl.doctor.model import Check, CheckSkipped, Finding, Need, Report, Scope, Status
from terwayctl.doctor.registry import CHECKS
from terwayctl.doctor.runner import run
from terwayctl.kube.nodestatus import NodeCondition, StatusPatcher, node_condition, patch_node_status

log = logging.getLogger("terwayctl.doctor.publish")

CONDITION_TYPE = "TerwayNetworkReady"
ANNOTATION = "terway.aliyun.com/node-checks"
REASON_PASSED = "NodeChecksPassed"
REASON_FAILED = "NodeChecksFailed"
REPORT_VERSION = 1
MAX_ANNOTATION_BYTES = 16 * 1024
MAX_LINE = 400
DEFAULT_PERIOD = 60.0
CNI_PLUGIN_CHECK = "node.cni-plugin"


def rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def daemon_checks(checks: Sequence[Check] = CHECKS) -> list[Check]:
    """The checks a daemon runs on its node: node scope, no active probe (those need a target and --probe)."""
    return [c for c in checks if c.scope is Scope.NODE and Need.PROBE not in c.needs]


def _skipped(check: Check, reason: str) -> Check:
    def run_skip(_ctx: Any) -> Any:
        raise CheckSkipped(reason)

    return Check(check.id, check.title, check.scope, check.needs, run_skip, check.looks_at)


def run_node_checks(options: DoctorOptions, inputs: Inputs,
                    checks: Sequence[Check] | None = None) -> Report:
    """Doctor's node checks as the daemon runs them; node.cni-plugin is skipped when the CNI bin dir is not
    visible in the daemon's container (the rendered DaemonSet mounts /etc/cni/net.d there, not /opt/cni/bin)."""
    selected = list(checks if checks is not None else daemon_checks())
    if not options.cni_bin_dir.is_dir():
        reason = (f"the CNI bin dir {options.cni_bin_dir} is not visible to the daemon (run "
                  "'terwayctl doctor --check node.cni-plugin' on the node)")
        selected = [_skipped(c, reason) if c.id == CNI_PLUGIN_CHECK else c for c in selected]
    return run(options, inputs, checks=selected)


# --- the condition and the annotation ----------------------------------------------------------------


def failing(report: Report) -> list[str]:
    return [f.check_id for f in report.findings if f.status is Status.FAIL]


def condition_for(report: Report, now: float, previous: NodeCondition | None) -> NodeCondition:
    """The TerwayNetworkReady condition for `report`; lastTransitionTime kept while the status is unchanged."""
    bad = failing(report)
    status = "False" if bad else "True"
    summary = report.summary().line()
    message = (f"failing node checks: {', '.join(bad)} ({summary})" if bad
               else f"every node check passes ({summary})")
    stamp = rfc3339(now)
    transition = (previous.last_transition_time if previous is not None and previous.status == status
                  and previous.last_transition_time else stamp)
    return NodeCondition(CONDITION_TYPE, status, REASON_FAILED if bad else REASON_PASSED, message, stamp, transition)


def _finding(f: Finding, level: int) -> dict[str, Any]:
    item: dict[str, Any] = {"id": f.check_id, "status": f.status.value}
    important = f.status in (Status.FAIL, Status.WARN)
    if level >= 4:
        return item
    evidence = list(f.evidence)
    if level >= 1 and f.status is Status.OK:
        evidence = []
    if level >= 2 and not important:
        evidence = evidence[:1] if f.status is Status.SKIP else []
    if level >= 3:
        evidence = evidence[:8]
    if evidence:
        item["evidence"] = [e if len(e) <= MAX_LINE else e[:MAX_LINE - 3] + "..." for e in evidence]
    if f.fix and important:
        item["fix"] = f.fix if level < 3 or len(f.fix) <= 1000 else f.fix[:997] + "..."
    return item


def encode_report(report: Report, now: float, period: float, limit: int = MAX_ANNOTATION_BYTES) -> str:
    """The findings as compact JSON, at most `limit` bytes (`truncated` says when evidence was dropped):
    ``{"v": 1, "time": RFC 3339, "period": seconds, "summary": "N ok, ...", "truncated": bool,
    "findings": [{"id", "status", "evidence"?, "fix"?}]}``."""
    text = ""
    for level in range(6):
        findings = [_finding(f, level) for f in report.findings]
        if level == 5:  # the last resort: the failing ids only
            findings = [{"id": i, "status": Status.FAIL.value} for i in failing(report)]
        doc = {"v": REPORT_VERSION, "time": rfc3339(now), "period": period, "summary": report.summary().line(),
               "truncated": level > 0, "findings": findings}
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) <= limit:
            return text
    return text


@dataclass(frozen=True)
class PublishedFinding:
    check_id: str
    status: str
    evidence: tuple[str, ...] = ()
    fix: str | None = None


@dataclass(frozen=True)
class PublishedReport:
    time: str
    period: float | None
    summary: str
    truncated: bool
    findings: tuple[PublishedFinding, ...]


def decode_report(text: str | None) -> PublishedReport | None:
    """The annotation read back; None when absent or not what `encode_report` writes."""
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
        return None
    findings = []
    for item in doc["findings"]:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            raw = item.get("evidence")
            evidence = raw if isinstance(raw, list) else []
            fix = item.get("fix")
            findings.append(PublishedFinding(item["id"], str(item.get("status") or ""),
                                             tuple(str(e) for e in evidence), str(fix) if fix else None))
    period = doc.get("period")
    return PublishedReport(str(doc.get("time") or ""),
                           float(period) if isinstance(period, int | float) and period > 0 else None,
                           str(doc.get("summary") or ""), bool(doc.get("truncated")), tuple(findings))


# --- the periodic reporter ------------------------------------------------------------------------------


class NodeApi(StatusPatcher, Protocol):
    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]: ...


class NodeReporter:
    """Runs the node checks every `period` seconds (the first run at once) and publishes them on the Node.

    `checks` runs one report (`run_node_checks` with the daemon's options by default). A failed run or
    write is logged and retried at the next period; `stop()` ends the loop (at most one run in flight).
    """

    def __init__(self, api: NodeApi, node_name: str, period: float, checks: Callable[[], Report], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.api = api
        self.node_name = node_name
        self.period = period
        self.checks = checks
        self.clock = clock
        self.published = 0
        """How many reports were written."""
        self._previous: NodeCondition | None = None
        self._read_previous = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish_once(self) -> NodeCondition:
        """Run the checks and write the condition and the annotation (raises what the write raises)."""
        report = self.checks()
        if not self._read_previous:  # the condition an earlier daemon left: keep its transition time
            self._previous = node_condition(self.api.get("v1", "nodes", self.node_name), CONDITION_TYPE)
            self._read_previous = True
        now = self.clock()
        condition = condition_for(report, now, self._previous)
        patch_node_status(self.api, self.node_name, condition,
                          {ANNOTATION: encode_report(report, now, self.period)})
        if self._previous is None or self._previous.status != condition.status:
            log.info("node %s: %s=%s (%s)", self.node_name, CONDITION_TYPE, condition.status, condition.message)
        self._previous = condition
        self.published += 1
        return condition

    def start(self) -> NodeReporter:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="node-checks", daemon=True)
        self._thread.start()
        log.info("node checks: publishing %s on node %s every %gs", CONDITION_TYPE, self.node_name, self.period)
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.publish_once()
            except Exception as exc:  # noqa: BLE001 - the next period tries again
                log.warning("node checks: cannot publish on node %s: %s", self.node_name,
                            getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.period)

    def stop(self, timeout: float = 2.0) -> None:
        """End the loop; a run in flight is waited for at most `timeout` s (the thread is a daemon thread:
        the daemon's own shutdown never waits on a slow API server)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None


def daemon_reporter(api: NodeApi, node_name: str, period: float, options: DoctorOptions,
                    inputs: Callable[[], Inputs] | None = None) -> NodeReporter:
    """The reporter `terwayctl daemon` starts: node checks of `options` (its netns, socket, CNI dirs) with
    only the node input (no cloud or cluster reads from the daemon's checks)."""
    from terwayctl.doctor.sources import node_factory

    def make_inputs() -> Inputs:
        return Inputs(cloud=unavailable("the daemon's node checks read no cloud"),
                      cluster=unavailable("the daemon's node checks read no cluster"),
                      node=node_factory(options.netns))

    build = inputs or make_inputs
    return NodeReporter(api, node_name, period, lambda: run_node_checks(options, build()))


def published_titles() -> Mapping[str, str]:
    """check id -> title, for printing what a node published."""
    return {c.id: c.title for c in CHECKS}
