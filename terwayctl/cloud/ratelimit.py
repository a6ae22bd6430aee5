"""A token bucket per API action, so a burst of calls never exceeds the configured QPS.

Pure standard library; "now" and "sleep" are parameters so tests run without waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

DEFAULT_READ_QPS = 10.0
DEFAULT_WRITE_QPS = 5.0


@dataclass(frozen=True)
class RateLimits:
    """Queries per second per action; Describe* use `read_qps`, everything else `write_qps`.

    `per_action` overrides both for single actions (e.g. ``{"AssignPrivateIpAddresses": 2}``);
    a QPS of 0 or less disables limiting for that action. `burst` is the bucket size (>= 1).
    """

    read_qps: float = DEFAULT_READ_QPS
    write_qps: float = DEFAULT_WRITE_QPS
    per_action: Mapping[str, float] = field(default_factory=dict)
    burst: float = 1.0

    def qps_for(self, action: str) -> float:
        if action in self.per_action:
            return self.per_action[action]
        return self.read_qps if action.startswith("Describe") else self.write_qps


class _Bucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst)
        self.tokens = self.capacity
        self.updated = now

    def reserve(self, now: float) -> float:
        """Take one token; return how long the caller must wait for it (0 if available)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class RateLimiter:
    """Thread-safe token buckets keyed by action name."""

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._limits = limits or RateLimits()
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, action: str) -> float:
        """Block until `action` may be called; return the time waited (seconds)."""
        rate = self._limits.qps_for(action)
        if rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(action)
            if bucket is None:
                bucket = self._buckets[action] = _Bucket(rate, self._limits.burst, now)
            wait = bucket.reserve(now)
        if wait > 0:
            self._sleep(wait)
        return wait
