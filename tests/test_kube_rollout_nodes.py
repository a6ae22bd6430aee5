"""restart_pods_on_nodes: batches of maxUnavailable, a wait per batch with a fake clock, stop on the first
batch that does not become ready. A small in-memory DaemonSet controller stands in for the API server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from terwayctl.kube.rollout import max_unavailable, restart_pods_on_nodes


class FakeCluster:
    """Pods of one DaemonSet; a deleted pod comes back `lag` seconds later, ready unless its node is broken."""

    def __init__(self, nodes: Sequence[str], max_unavailable: Any = 1, lag: float = 2,
                 broken: Sequence[str] = ()) -> None:
        self.now = 0.0
        self.lag = lag
        self.broken = set(broken)
        self.serial = 0
        self.pods: dict[str, dict[str, Any]] = {n: self._pod(n) for n in nodes}
        self.pending: dict[str, float] = {}
        self.deleted: list[tuple[float, str]] = []
        self.max_down = 0
        self.ds: dict[str, Any] = {"metadata": {"name": "terway-eniip", "namespace": "kube-system"},
                   "spec": {"selector": {"matchLabels": {"app": "terway"}},
                            "updateStrategy": {"rollingUpdate": {"maxUnavailable": max_unavailable}}},
                   "status": {"desiredNumberScheduled": len(nodes)}}

    def _pod(self, node: str) -> dict[str, Any]:
        self.serial += 1
        ready = node not in self.broken or self.serial <= 100
        return {"metadata": {"name": f"terway-{self.serial}", "uid": f"uid-{self.serial}", "namespace": "kube-system"},
                "spec": {"nodeName": node},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]}}

    # ObjectReader + request
    def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        assert plural == "daemonsets"
        return self.ds

    def list(self, api_version: str, plural: str, namespace: str | None = None, *, label_selector: str = "",
             field_selector: str = "") -> list[dict[str, Any]]:
        assert label_selector == "app=terway"
        for node in list(self.pending):
            if self.now >= self.pending[node]:
                del self.pending[node]
                self.serial += 100 if node in self.broken else 0
                pod = self._pod(node)
                if node in self.broken:
                    pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
                    pod["status"]["containerStatuses"] = [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]
                self.pods[node] = pod
        node = field_selector.removeprefix("spec.nodeName=")
        return [self.pods[node]] if node in self.pods else []

    def request(self, method: str, path: str, *, what: str, body: Any = None, query: Any = (),
                content_type: str | None = None) -> dict[str, Any]:
        assert method == "DELETE"
        name = path.rsplit("/", 1)[1]
        node = next(n for n, p in self.pods.items() if p["metadata"]["name"] == name)
        del self.pods[node]
        self.pending[node] = self.now + self.lag
        self.deleted.append((self.now, node))
        self.max_down = max(self.max_down, len(self.pending))
        return {}

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


NODES = ["n1", "n2", "n3", "n4", "n5"]


@pytest.mark.parametrize(("setting", "size"), [(1, 1), (2, 2), ("40%", 2), ("10%", 1), (None, 1)])
def test_batches_follow_max_unavailable(setting: Any, size: int) -> None:
    cluster = FakeCluster(NODES, max_unavailable=setting)
    if setting is None:
        del cluster.ds["spec"]["updateStrategy"]
    calls: list[tuple[int, int, list[str]]] = []
    result = restart_pods_on_nodes(cluster, "kube-system", "terway-eniip", ["n1", "n2", "n3", "n5"], timeout=60,
                                   poll=1, clock=cluster.clock, sleep=cluster.sleep,
                                   on_batch=lambda done, total, batch: calls.append((done, total, list(batch))))
    assert result.complete and result.batch_size == size and result.restarted == 4
    assert cluster.max_down == size  # never more pods down at once than maxUnavailable
    assert [node for _, node in cluster.deleted] == ["n1", "n2", "n3", "n5"]
    assert "n4" in cluster.pods and cluster.pods["n4"]["metadata"]["uid"] == "uid-4"  # untouched
    expected = [["n1", "n2", "n3", "n5"][i:i + size] for i in range(0, 4, size)]
    assert [c[2] for c in calls] == [*expected, []] and calls[-1][:2] == (4, 4)
    # a batch starts only once the previous one is ready: deletion times strictly grow between batches
    times = sorted({t for t, _ in cluster.deleted})
    assert len(times) == len(expected)


def test_stops_at_the_first_batch_that_is_not_ready() -> None:
    cluster = FakeCluster(NODES, max_unavailable=2, broken=["n3"])
    result = restart_pods_on_nodes(cluster, "kube-system", "terway-eniip", NODES, timeout=30, poll=5,
                                   clock=cluster.clock, sleep=cluster.sleep)
    assert not result.complete and result.restarted == 2
    failed = result.batches[-1]
    assert failed.nodes == ("n3", "n4") and [(p.node, p.reason) for p in failed.unready] == [("n3", "CrashLoopBackOff")]
    assert [node for _, node in cluster.deleted] == ["n1", "n2", "n3", "n4"]  # n5 never restarted
    assert cluster.now == pytest.approx(30 + cluster.deleted[2][0])


def test_nodes_without_a_pod_are_skipped() -> None:
    cluster = FakeCluster(["n1"])
    result = restart_pods_on_nodes(cluster, "kube-system", "terway-eniip", ["n1", "new"], timeout=10, poll=1,
                                   clock=cluster.clock, sleep=cluster.sleep)
    assert result.complete and result.nodes == ("n1",) and result.skipped == ("new",)


def test_max_unavailable_parsing() -> None:
    ds: dict[str, Any] = {"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": "25%"}}}}
    assert max_unavailable(ds, 10) == 3
    assert max_unavailable({"spec": {}}, 10) == 1
    ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = 0
    assert max_unavailable(ds, 10) == 1


class Tty:
    """A text stream that says it is a terminal, for the progress-bar path."""

    def __init__(self) -> None:
        import io

        self.buffer = io.StringIO()

    def write(self, text: str) -> int:
        return self.buffer.write(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_tty_and_lines_otherwise() -> None:
    import io

    from terwayctl.cli.vswitch import print_restart_result, restart_with_progress

    tty = Tty()
    result = restart_with_progress(FakeCluster(["n1", "n2"], lag=0), "kube-system", "terway-eniip",
                                   ["n1", "n2"], 10, tty)  # type: ignore[arg-type]
    assert result.complete and "restarted" in tty.buffer.getvalue() and "2/2" in tty.buffer.getvalue()
    plain = io.StringIO()
    result = restart_with_progress(FakeCluster(["n1", "n2"], lag=0), "kube-system", "terway-eniip",
                                   ["n1", "n2"], 10, plain)
    assert plain.getvalue().splitlines()[1:] == ["restart 0/2 ready; now: n1", "restart 1/2 ready; now: n2",
                                                 "restart 2/2 ready"]
    assert print_restart_result(plain, result) == 0
