"""Fault injection per action: latency with jitter, throttling above a QPS, and a failure ratio.

Set from the scenario (`faults:`) or at runtime through `FaultInjector.set(...)`. A seed makes the
jitter and the failure draws repeatable. The action "*" applies to every action without its own spec.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from terwayctl.emulator.errors import ApiError, status_for

ALL_ACTIONS = "*"


@dataclass(frozen=True)
class FaultSpec:
    """What happens to each call of one action.

    latency_ms (+ up to jitter_ms) is slept before the reply; above `qps` calls in the last second the
    call fails with Throttling (400); with probability `failure_ratio` it fails with `failure_code`
    (HTTP status `failure_status`, or the code's documented status). With `fail_after_commit` the
    failure is returned after the action has taken effect (a lost reply), to test idempotent retries.
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    qps: float | None = None
    failure_ratio: float = 0.0
    failure_code: str = "InternalError"
    failure_status: int | None = None
    fail_after_commit: bool = False


FAULT_KEYS = frozenset(f.name for f in fields(FaultSpec))


def parse_fault_spec(raw: Any) -> FaultSpec:
    """A FaultSpec from a mapping; ValueError names what is wrong."""
    if not isinstance(raw, Mapping):
        raise ValueError("a fault spec must be a mapping")
    unknown = sorted(set(map(str, raw)) - FAULT_KEYS)
    if unknown:
        raise ValueError(f"unknown keys {', '.join(unknown)}")
    try:
        spec = FaultSpec(
            latency_ms=float(raw.get("latency_ms", 0.0)),
            jitter_ms=float(raw.get("jitter_ms", 0.0)),
            qps=None if raw.get("qps") is None else float(raw["qps"]),
            failure_ratio=float(raw.get("failure_ratio", 0.0)),
            failure_code=str(raw.get("failure_code", "InternalError")),
            failure_status=None if raw.get("failure_status") is None else int(raw["failure_status"]),
            fail_after_commit=bool(raw.get("fail_after_commit", False)),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad value: {exc}") from None
    check_fault_spec(spec)
    return spec


def check_fault_spec(spec: FaultSpec) -> None:
    if spec.latency_ms < 0 or spec.jitter_ms < 0:
        raise ValueError("latency_ms and jitter_ms cannot be negative")
    if spec.qps is not None and spec.qps <= 0:
        raise ValueError("qps must be positive")
    if not 0.0 <= spec.failure_ratio <= 1.0:
        raise ValueError("failure_ratio must be between 0 and 1")


@dataclass(frozen=True)
class Decision:
    """What the injector decided for one call."""

    delay_s: float
    error: ApiError | None
    after_commit: bool


class FaultInjector:
    """Thread-safe; `decide(action)` is called once per authenticated call."""

    def __init__(self, seed: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._specs: dict[str, FaultSpec] = {}
        self._random = random.Random(seed)
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}

    def set(self, action: str, spec: FaultSpec | None = None, **values: Any) -> FaultSpec:
        """Set `action`'s faults (or "*" for all): a FaultSpec or keyword values; returns the spec."""
        new = spec if spec is not None else parse_fault_spec(values)
        check_fault_spec(new)
        with self._lock:
            self._specs[action] = new
            self._calls.pop(action, None)
        return new

    def clear(self, action: str | None = None) -> None:
        """Remove one action's faults, or all of them."""
        with self._lock:
            if action is None:
                self._specs.clear()
                self._calls.clear()
            else:
                self._specs.pop(action, None)
                self._calls.pop(action, None)

    def specs(self) -> dict[str, FaultSpec]:
        with self._lock:
            return dict(self._specs)

    def decide(self, action: str) -> Decision:
        with self._lock:
            key = action if action in self._specs else ALL_ACTIONS
            spec = self._specs.get(key)
            if spec is None:
                return Decision(0.0, None, False)
            delay = spec.latency_ms + (self._random.uniform(0.0, spec.jitter_ms) if spec.jitter_ms else 0.0)
            if self._throttled(key, spec):
                return Decision(delay / 1000.0, ApiError("Throttling", "Request was denied due to request "
                                                         "throttling."), False)
            if spec.failure_ratio and self._random.random() < spec.failure_ratio:
                status = spec.failure_status or status_for(spec.failure_code)
                error = ApiError(spec.failure_code, f"injected fault ({spec.failure_code})", status)
                return Decision(delay / 1000.0, error, spec.fail_after_commit)
            return Decision(delay / 1000.0, None, False)

    def _throttled(self, key: str, spec: FaultSpec) -> bool:
        if spec.qps is None:
            return False
        now = self._clock()
        window = self._calls.setdefault(key, deque())
        while window and now - window[0] >= 1.0:
            window.popleft()
        if len(window) >= spec.qps:
            return True
        window.append(now)
        return False
