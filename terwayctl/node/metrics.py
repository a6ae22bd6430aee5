"""The daemon's metrics in the Prometheus text exposition format (version 0.0.4).

Counters and histograms are kept here under one lock; pool gauges are read from a callback at
scrape time. No client library: the format is a few lines of text.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        self.total += value
        self.n += 1


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Everything the daemon counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api_calls: dict[str, int] = defaultdict(int)
        self._api_errors: dict[tuple[str, str], int] = defaultdict(int)
        self._api_latency: dict[str, _Histogram] = defaultdict(_Histogram)
        self._cni: dict[tuple[str, str], int] = defaultdict(int)
        self._cni_latency: dict[str, _Histogram] = defaultdict(_Histogram)
        self._gc_released: dict[str, int] = defaultdict(int)
        self._gc_runs: dict[tuple[str, str], int] = defaultdict(int)
        self._kube: dict[tuple[str, str], int] = defaultdict(int)
        self.gauges: Callable[[], Mapping[str, float]] = dict

    def api_call(self, action: str, seconds: float, error: str | None, calls: int = 1) -> None:
        with self._lock:
            self._api_calls[action] += calls
            self._api_latency[action].observe(seconds)
            if error is not None:
                self._api_errors[(action, error or "Unknown")] += 1

    def cni_request(self, verb: str, seconds: float, ok: bool) -> None:
        with self._lock:
            self._cni[(verb, "ok" if ok else "error")] += 1
            self._cni_latency[verb].observe(seconds)

    def gc_run(self, source: str, result: str, released: int) -> None:
        """One GC pass (source: cni or apiserver; result: ok, error or skipped) and what it released."""
        with self._lock:
            self._gc_runs[(source, result)] += 1
            self._gc_released[source] += released

    def kube_request(self, op: str, result: str) -> None:
        """One read of the API server (op: pod, pods; result: ok, notfound, error)."""
        with self._lock:
            self._kube[(op, result)] += 1

    def render(self) -> str:
        lines: list[str] = []
        gauges = dict(self.gauges())
        for name, help_text in (
            ("terway_pool_enis", "ENIs the pool holds (secondary ENIs of this node)"),
            ("terway_pool_ips", "pod IPs the pool holds (idle + allocated + leased)"),
            ("terway_pool_idle_ips", "idle pod IPs, ready for the next ADD"),
            ("terway_pool_allocated_ips", "pod IPs allocated to pods"),
            ("terway_pool_leased_ips", "pod IPs kept for a StatefulSet pod after its DEL (stateful_ip_lease)"),
            ("terway_pool_max_enis", "secondary ENIs the node may hold"),
            ("terway_ready", "1 when the daemon serves ADD"),
        ):
            if name in gauges:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {gauges[name]:g}"]
        with self._lock:
            lines += ["# HELP terway_cni_requests_total CNI requests by verb and outcome",
                      "# TYPE terway_cni_requests_total counter"]
            for (verb, outcome), count in sorted(self._cni.items()):
                lines.append(f"terway_cni_requests_total{_labels(verb=verb, result=outcome)} {count}")
            lines += _histogram("terway_cni_request_seconds", "CNI request latency by verb", "verb",
                                self._cni_latency)
            lines += ["# HELP terway_cloud_api_calls_total Cloud API requests by action",
                      "# TYPE terway_cloud_api_calls_total counter"]
            for action, count in sorted(self._api_calls.items()):
                lines.append(f"terway_cloud_api_calls_total{_labels(action=action)} {count}")
            lines += ["# HELP terway_cloud_api_errors_total Failed cloud API calls by action and error code",
                      "# TYPE terway_cloud_api_errors_total counter"]
            for (action, code), count in sorted(self._api_errors.items()):
                lines.append(f"terway_cloud_api_errors_total{_labels(action=action, code=code)} {count}")
            lines += _histogram("terway_cloud_api_seconds", "Cloud API call latency by action", "action",
                                self._api_latency)
            if self._gc_runs:
                lines += ["# HELP terway_gc_runs_total GC passes by source (cni, apiserver) and result",
                          "# TYPE terway_gc_runs_total counter"]
                for (source, result), count in sorted(self._gc_runs.items()):
                    lines.append(f"terway_gc_runs_total{_labels(source=source, result=result)} {count}")
                lines += ["# HELP terway_gc_released_ips_total Allocations released by GC, by source",
                          "# TYPE terway_gc_released_ips_total counter"]
                for source, count in sorted(self._gc_released.items()):
                    lines.append(f"terway_gc_released_ips_total{_labels(source=source)} {count}")
            if self._kube:
                lines += ["# HELP terway_kube_requests_total API server reads by operation and result",
                          "# TYPE terway_kube_requests_total counter"]
                for (op, result), count in sorted(self._kube.items()):
                    lines.append(f"terway_kube_requests_total{_labels(op=op, result=result)} {count}")
        return "\n".join(lines) + "\n"


def _histogram(name: str, help_text: str, label: str, data: Mapping[str, _Histogram]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    for key, hist in sorted(data.items()):
        running = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), hist.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            lines.append(f"{name}_bucket{_labels(**{label: key, 'le': le})} {running}")
        lines.append(f"{name}_sum{_labels(**{label: key})} {hist.total:.6f}")
        lines.append(f"{name}_count{_labels(**{label: key})} {hist.n}")
    return lines


def parse_text(text: str) -> dict[str, float]:
    """`name{labels}` -> value, for tests and `daemon status` (no HELP/TYPE lines)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values
