"""The records of `terwayctl doctor`: checks, what they need, their verdicts and the report.

A `Check` is declared data: an id, a title, a scope, the inputs it needs and a `run` function.
`run(ctx)` returns a `Verdict` (status, evidence, fix); the runner adds the check's id, title and
scope and makes it a `Finding`. A check that finds it cannot run raises `CheckSkipped(reason)`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from terwayctl.doctor.context import Context


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class Scope(enum.StrEnum):
    CLOUD = "cloud"
    NODE = "node"
    CLUSTER = "cluster"


class Need(enum.StrEnum):
    """An input a check requires; when it is unavailable the check is skipped with the reason."""

    CLOUD = "cloud"
    """ECS and VPC reads (credentials, region, endpoint)."""
    CLUSTER = "cluster"
    """Kubernetes API reads (a kubeconfig or the in-cluster service account)."""
    TOPOLOGY = "topology"
    """The cluster's vSwitches and instances (eni_conf and nodes), read through the cloud."""
    NODE = "node"
    """The node's network namespace, files and daemon socket."""
    PROBE = "probe"
    """Active probes (--probe)."""


class CheckSkipped(Exception):
    """Raised by a check (or a reader) that cannot run; the finding becomes `skip` with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Verdict:
    """What a check's `run` returns: the finding without the check's own id, title and scope."""

    status: Status
    evidence: tuple[str, ...] = ()
    fix: str | None = None


def ok(*evidence: str) -> Verdict:
    return Verdict(Status.OK, tuple(evidence))


def warn(evidence: Iterable[str], fix: str | None = None) -> Verdict:
    return Verdict(Status.WARN, tuple(evidence), fix)


def fail(evidence: Iterable[str], fix: str | None = None) -> Verdict:
    return Verdict(Status.FAIL, tuple(evidence), fix)


def skip(reason: str, *evidence: str) -> Verdict:
    return Verdict(Status.SKIP, (reason, *evidence))


@dataclass(frozen=True)
class Check:
    """One declared check: an id, a title, what it needs, and a `run` returning a finding."""

    id: str
    title: str
    scope: Scope
    needs: frozenset[Need]
    run: Callable[[Context], Verdict] = field(compare=False, repr=False)
    looks_at: str = ""
    """What it reads (for docs/doctor.md and `--check` hints)."""


@dataclass(frozen=True)
class Finding:
    check_id: str
    title: str
    scope: Scope
    status: Status
    evidence: tuple[str, ...] = ()
    fix: str | None = None


@dataclass(frozen=True)
class Summary:
    ok: int
    warn: int
    fail: int
    skipped: int

    def line(self) -> str:
        return f"{self.ok} ok, {self.warn} warn, {self.fail} fail, {self.skipped} skipped"


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]

    @property
    def failed(self) -> bool:
        return any(f.status is Status.FAIL for f in self.findings)

    def summary(self) -> Summary:
        def count(status: Status) -> int:
            return sum(1 for f in self.findings if f.status is status)

        return Summary(count(Status.OK), count(Status.WARN), count(Status.FAIL), count(Status.SKIP))

    def finding(self, check_id: str) -> Finding:
        """The finding of one check (KeyError when that check did not run)."""
        for found in self.findings:
            if found.check_id == check_id:
                return found
        raise KeyError(check_id)
