"""terwayctl.kube end to end: the real `kubernetes` client against the test API server."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from terwayctl.core.eniconf import add_vswitches_text
from terwayctl.core.errors import InvalidInput
from terwayctl.kube.apply import ApplyOptions, apply_objects, object_diff
from terwayctl.kube.client import KubeClient, connect
from terwayctl.kube.configmap import edit_configmap
from terwayctl.kube.errors import KubeConfigError, KubeConflict, KubeNotFound, KubeUnavailable, from_api_error
from terwayctl.kube.reads import find_terway_daemonset, list_events, list_nodes, list_pods, pods_by_node
from terwayctl.kube.rollout import RESTARTED_AT, restart_daemonset, wait_for_rollout
from terwayctl.lab.kubeapi.seed import configmap, daemonset, eni_conf_text, node, pod, seed_cluster
from tests.fixtures.kube import RunningKubeApi, write_kubeconfig


@pytest.fixture
def kube(kube_api: RunningKubeApi) -> Iterator[KubeClient]:
    with connect(str(kube_api.kubeconfig), environ={}) as client:
        yield client


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# --- client factory and errors ---------------------------------------------------------------------


def test_missing_kubeconfig_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError) as caught:
        connect(str(tmp_path / "nope"))
    assert caught.value.exit_code == 2 and caught.value.hint


def test_unknown_context_is_invalid_input(kube_api: RunningKubeApi) -> None:
    with pytest.raises(KubeConfigError) as caught:
        connect(str(kube_api.kubeconfig), "other-context")
    assert "other-context" in caught.value.message


def test_no_kubeconfig_and_not_in_a_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeConfigError) as caught:
        connect(None, environ={"HOME": str(tmp_path)})
    assert "--kubeconfig" in (caught.value.hint or "")


def test_unreachable_server(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}")
    with pytest.raises(KubeUnavailable) as caught:
        connect(str(path))
    assert f"127.0.0.1:{port}" in caught.value.message


@pytest.mark.parametrize(("status", "kind"), [(404, "KubeNotFound"), (409, "KubeConflict"), (403, "KubeForbidden"),
                                              (401, "KubeUnauthorized"), (422, "KubeInvalid"), (503, "KubeUnavailable")])
def test_status_mapping(status: int, kind: str) -> None:
    error = from_api_error(status, b'{"kind": "Status", "message": "m", "reason": "R"}', "configmaps/x")
    assert type(error).__name__ == kind and error.hint and error.reason == "R"


def test_not_found_maps_to_exit_2(kube: KubeClient) -> None:
    with pytest.raises(KubeNotFound) as caught:
        kube.get("v1", "configmaps", "nope", "kube-system")
    assert caught.value.exit_code == 2


# --- reads -------------------------------------------------------------------------------------------


def test_nodes_pods_events_and_daemonset(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    seed_cluster(kube_api)
    kube_api.create(pod("web", "node-1"))
    kube_api.create(pod("proxy", "node-1", namespace="kube-system", host_network=True))
    kube_api.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev", "namespace": "default"},
                     "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "FailedCreatePodSandBox",
                     "message": "no IP", "type": "Warning", "count": 3})
    nodes = list_nodes(kube)
    first = nodes[0]
    assert (first.name, first.zone, first.instance_type, first.capacity_pods) == (
        "node-1", "cn-hangzhou-i", "ecs.g7.xlarge", 110)
    grouped = pods_by_node(list_pods(kube))
    names = sorted(p.name for p in grouped["node-1"])
    assert names[:2] == ["proxy", "terway-eniip-7d9e8"] and names[2] == "web"  # the DaemonSet's pod too
    assert [p.name for p in list_pods(kube, node="node-1", namespace="default")] == ["web"]
    events = list_events(kube, "default", object_name="web")
    assert [(e.reason, e.count, e.type) for e in events] == [("FailedCreatePodSandBox", 3, "Warning")]
    found = find_terway_daemonset(kube, "kube-system")
    assert found is not None and found.mode == "eniip"


def test_exclusive_mode_daemonset(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    kube_api.create(daemonset("terway-eni"))
    found = find_terway_daemonset(kube, "kube-system")
    assert found is not None and (found.name, found.mode) == ("terway-eni", "eni")
    assert find_terway_daemonset(kube, "default") is None


# --- ConfigMap edit with optimistic concurrency -------------------------------------------------------


def _adder(zone: str, vsw: str, gate: threading.Barrier | None = None) -> object:
    first = [True]

    def transform(data: Mapping[str, str]) -> Mapping[str, str]:
        if gate is not None and first[0]:
            first[0] = False
            gate.wait(timeout=10)  # both writers have read the same resourceVersion
        return {**data, "eni_conf": add_vswitches_text(data["eni_conf"], [(zone, vsw)])}

    return transform


def test_concurrent_edits_both_land(kube_api: RunningKubeApi) -> None:
    kube_api.create(configmap("eni-config", eni_conf_text()))
    gate = threading.Barrier(2)
    results: dict[str, object] = {}

    def run(vsw: str) -> None:
        with connect(str(kube_api.kubeconfig)) as client:
            results[vsw] = edit_configmap(client, "kube-system", "eni-config",
                                          _adder("cn-hangzhou-i", vsw, gate))  # type: ignore[arg-type]

    threads = [threading.Thread(target=run, args=(v,)) for v in ("vsw-a", "vsw-b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    attempts = sorted(r.attempts for r in results.values())  # type: ignore[attr-defined]
    assert attempts == [1, 2]
    text = kube_api.get("v1", "ConfigMap", "eni-config", "kube-system")["data"]["eni_conf"]
    assert '"vsw-a"' in text and '"vsw-b"' in text and '"vsw-podi"' in text


def test_edit_gives_up_after_bounded_attempts(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    kube_api.create(configmap("eni-config", eni_conf_text()))
    counter = [0]

    def meddle(data: Mapping[str, str]) -> Mapping[str, str]:
        counter[0] += 1
        kube_api.server.store.patch(
            kube_api.server.resource_for({"apiVersion": "v1", "kind": "ConfigMap"}), "kube-system", "eni-config",
            "application/merge-patch+json", f'{{"data": {{"n": "{counter[0]}"}}}}'.encode(), manager="other")
        return {**data, "x": "y"}

    with pytest.raises(KubeConflict):
        edit_configmap(kube, "kube-system", "eni-config", meddle, attempts=3)
    assert counter[0] == 3


def test_edit_dry_run_and_no_change(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    kube_api.create(configmap("eni-config", eni_conf_text()))
    before = kube_api.get("v1", "ConfigMap", "eni-config", "kube-system")
    dry = edit_configmap(kube, "kube-system", "eni-config", lambda d: {**d, "x": "1"}, dry_run=True)
    same = edit_configmap(kube, "kube-system", "eni-config", lambda d: d)
    assert dry.changed and not dry.written and not same.changed and not same.written
    assert kube_api.get("v1", "ConfigMap", "eni-config", "kube-system") == before


def test_transform_refusal_propagates(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    kube_api.create(configmap("eni-config", eni_conf_text()))
    with pytest.raises(InvalidInput, match="already configured"):
        edit_configmap(kube, "kube-system", "eni-config", _adder("cn-hangzhou-i", "vsw-podi"))  # type: ignore[arg-type]


# --- rollout --------------------------------------------------------------------------------------------


def test_restart_and_wait_completes(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    seed_cluster(kube_api)
    generation = restart_daemonset(kube, "kube-system", "terway-eniip",
                                   datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))
    ds = kube_api.get("apps/v1", "DaemonSet", "terway-eniip", "kube-system")
    assert generation == 2
    assert ds["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "2026-01-02T03:04:05Z"
    fake = FakeTime()
    result = wait_for_rollout(kube, "kube-system", "terway-eniip", timeout=60, clock=fake.clock, sleep=fake.sleep)
    assert result.complete and result.progress.ready == 3 and fake.sleeps == []


def test_wait_progresses_then_completes(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    seed_cluster(kube_api)
    kube_api.controller.mode = "manual"
    restart_daemonset(kube, "kube-system", "terway-eniip", datetime.datetime.now(datetime.UTC))
    fake = FakeTime()
    seen: list[int] = []

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if len(fake.sleeps) == 2:
            kube_api.server.roll_daemonset("kube-system", "terway-eniip")

    result = wait_for_rollout(kube, "kube-system", "terway-eniip", timeout=60, poll=5, clock=fake.clock,
                              sleep=sleep, on_progress=lambda p: seen.append(p.observed_generation))
    assert result.complete and fake.sleeps == [5, 5] and seen == [1, 1, 2]


def test_wait_times_out_and_reports_unready_pods(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    seed_cluster(kube_api)
    kube_api.controller.mode = "stuck"
    kube_api.controller.unready_nodes = {"node-3"}
    restart_daemonset(kube, "kube-system", "terway-eniip", datetime.datetime.now(datetime.UTC))
    fake = FakeTime()
    result = wait_for_rollout(kube, "kube-system", "terway-eniip", timeout=10, poll=4, clock=fake.clock,
                              sleep=fake.sleep)
    assert not result.complete and fake.sleeps == [4, 4, 2]
    assert [(p.node, p.reason) for p in result.unready] == [("node-3", "CrashLoopBackOff")]


# --- apply ----------------------------------------------------------------------------------------------


def _objects() -> list[dict[str, object]]:
    return [daemonset(), configmap("eni-config", eni_conf_text()),
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "terway", "namespace": "kube-system"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "terway"},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}]


def test_apply_create_unchanged_configured(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    first = apply_objects(kube, _objects(), ApplyOptions())
    assert [(r.kind, r.action) for r in first] == [
        ("ServiceAccount", "created"), ("ClusterRole", "created"), ("ConfigMap", "created"), ("DaemonSet", "created")]
    assert kube_api.get("v1", "ConfigMap", "eni-config", "kube-system")["metadata"]["managedFields"][0][
        "manager"] == "terwayctl"
    assert {r.action for r in apply_objects(kube, _objects(), ApplyOptions())} == {"unchanged"}
    changed = _objects()
    changed[0]["spec"]["template"]["spec"]["containers"][0]["image"] = "terway:v2"  # type: ignore[index]
    results = apply_objects(kube, changed, ApplyOptions(diff=True))
    ds = next(r for r in results if r.kind == "DaemonSet")
    assert ds.action == "configured"
    assert "-      - image: terway:v1\n+      - image: terway:v2\n" in ds.diff
    assert "managedFields" not in ds.diff and "resourceVersion" not in ds.diff


def test_apply_dry_runs_change_nothing(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    apply_objects(kube, _objects(), ApplyOptions())
    before = kube_api.get("apps/v1", "DaemonSet", "terway-eniip", "kube-system")
    changed = _objects()
    changed[0]["metadata"]["labels"] = {"tier": "network"}  # type: ignore[index]
    for mode in ("server", "client"):
        results = apply_objects(kube, changed, ApplyOptions(dry_run=mode, diff=True))
        ds = next(r for r in results if r.kind == "DaemonSet")
        assert ds.action == "configured" and "+    tier: network" in ds.diff
    assert kube_api.get("apps/v1", "DaemonSet", "terway-eniip", "kube-system") == before


def test_apply_conflict_needs_force(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    apply_objects(kube, _objects(), ApplyOptions())
    kube.patch("v1", "configmaps", "eni-config", {"data": {"eni_conf": "{}"}}, namespace="kube-system")
    with pytest.raises(KubeConflict) as caught:
        apply_objects(kube, _objects(), ApplyOptions())
    assert "--force-conflicts" in (caught.value.hint or "")
    results = apply_objects(kube, _objects(), ApplyOptions(force_conflicts=True))
    assert next(r for r in results if r.kind == "ConfigMap").action == "configured"


def test_apply_unknown_kind_is_invalid(kube: KubeClient) -> None:
    with pytest.raises(InvalidInput, match="does not serve"):
        apply_objects(kube, [{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}],
                      ApplyOptions())


def test_object_diff_of_a_new_object() -> None:
    text = object_diff(None, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "uid": "u"}},
                       "ConfigMap/x")
    assert text.startswith("--- live/ConfigMap/x\n+++ applied/ConfigMap/x\n") and "uid" not in text


def test_node_and_label_reads_use_selectors(kube: KubeClient, kube_api: RunningKubeApi) -> None:
    kube_api.create(node("a", "ecs.g7.xlarge", "cn-hangzhou-i", **{"terway-config": "big"}))
    kube_api.create(node("b", "ecs.g7.xlarge", "cn-hangzhou-i"))
    assert [n.name for n in list_nodes(kube, "terway-config=big")] == ["a"]
    assert list_nodes(kube)[0].terway_config == "big"
