"""The daemon's published node checks (docs/doctor.md "Across the cluster", docs/node.md): the condition
writer against the lab's API server (the real `kubernetes` client, the Node's status subresource, the
strategic merge of conditions by type), the reporter's heartbeat and transition times, the size bound of
the annotation, and what `doctor --all-nodes` / `--node` make of it. No root needed."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from terwayctl.doctor.fleet import FAIL, NOT_REPORTING, OK, health_row, node_health, parse_time, read_fleet
from terwayctl.doctor.model import Finding, Report, Scope, Status
from terwayctl.doctor.publish import (
    ANNOTATION,
    CONDITION_TYPE,
    NodeReporter,
    daemon_checks,
    decode_report,
    encode_report,
    rfc3339,
)
from terwayctl.kube.client import KubeClient, connect
from terwayctl.kube.errors import KubeNotFound
from terwayctl.kube.nodestatus import NodeCondition, patch_node_status, read_condition
from tests.fixtures.kube import RunningKubeApi

T0 = 1_796_400_000.0


def _node(name: str = "node1") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}, "annotations": {"keep": "me"}},
        "spec": {"providerID": f"cn-hangzhou.i-{name}"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"},
                                  {"type": "MemoryPressure", "status": "False"}],
                   "capacity": {"pods": "110"}},
    }


@pytest.fixture
def kube(kube_api: RunningKubeApi) -> Iterator[KubeClient]:
    with connect(str(kube_api.kubeconfig), request_timeout=5.0) as client:
        yield client


def _report(*findings: tuple[str, Status]) -> Report:
    return Report(tuple(Finding(i, f"title of {i}", Scope.NODE, s, (f"evidence of {i}",),
                                f"fix {i}" if s is Status.FAIL else None) for i, s in findings))


HEALTHY = _report(("node.rp-filter", Status.OK), ("node.forward-policy", Status.OK), ("node.cni-plugin", Status.SKIP))
BROKEN = _report(("node.rp-filter", Status.OK), ("node.forward-policy", Status.FAIL), ("node.cni-plugin", Status.SKIP))


# --- the condition writer against the API server -------------------------------------------------------------


def test_patch_node_status_merges_the_condition_by_type_and_keeps_the_rest(kube_api: RunningKubeApi,
                                                                            kube: KubeClient) -> None:
    kube_api.create(_node())
    before = kube_api.get("v1", "Node", "node1")
    first = NodeCondition(CONDITION_TYPE, "False", "NodeChecksFailed", "failing node checks: node.x",
                          rfc3339(T0), rfc3339(T0))
    patch_node_status(kube, "node1", first, {ANNOTATION: '{"v":1}'})
    # the status subresource: PATCH .../nodes/node1/status, a strategic merge patch
    assert ("PATCH", "/api/v1/nodes/node1/status") in [(m, p.split("?")[0]) for m, p in kube_api.server.requests]
    node = kube_api.get("v1", "Node", "node1")
    types = [c["type"] for c in node["status"]["conditions"]]
    assert types == ["Ready", "MemoryPressure", CONDITION_TYPE]  # kubelet's conditions are untouched
    assert node["status"]["conditions"][0] == before["status"]["conditions"][0]
    assert node["metadata"]["annotations"] == {"keep": "me", ANNOTATION: '{"v":1}'}
    assert node["metadata"]["labels"] == before["metadata"]["labels"] and node["spec"] == before["spec"]
    assert node["status"]["capacity"] == {"pods": "110"}

    second = NodeCondition(CONDITION_TYPE, "True", "NodeChecksPassed", "every node check passes",
                           rfc3339(T0 + 5), rfc3339(T0 + 5))
    patch_node_status(kube, "node1", second)
    node = kube_api.get("v1", "Node", "node1")
    assert [c["type"] for c in node["status"]["conditions"]] == ["Ready", "MemoryPressure", CONDITION_TYPE]
    assert read_condition(kube, "node1", CONDITION_TYPE) == second
    assert read_condition(kube, "node1", "DiskPressure") is None
    with pytest.raises(KubeNotFound):
        patch_node_status(kube, "nope", second)


def test_status_subresource_ignores_spec_and_exists_only_where_declared(kube_api: RunningKubeApi,
                                                                         kube: KubeClient) -> None:
    kube_api.create(_node())
    kube.request("PATCH", "/api/v1/nodes/node1/status", what="nodes/node1/status",
                 body={"spec": {"unschedulable": True}, "status": {"conditions": [{"type": "Ready", "$patch": "delete"}]}},
                 content_type="application/strategic-merge-patch+json")
    node = kube_api.get("v1", "Node", "node1")
    assert "unschedulable" not in node["spec"]  # the status subresource never changes spec
    assert [c["type"] for c in node["status"]["conditions"]] == ["MemoryPressure"]  # $patch: delete by key
    kube_api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}})
    with pytest.raises(KubeNotFound):  # ConfigMaps have no status subresource
        kube.request("PATCH", "/api/v1/namespaces/default/configmaps/c/status", what="configmaps/c/status",
                     body={"data": {"a": "b"}}, content_type="application/merge-patch+json")


# --- the reporter ------------------------------------------------------------------------------------------


def test_reporter_heartbeats_and_moves_the_transition_time_only_on_a_change(kube_api: RunningKubeApi,
                                                                           kube: KubeClient) -> None:
    kube_api.create(_node())
    now = [T0]
    reports = [BROKEN]
    reporter = NodeReporter(kube, "node1", 5.0, lambda: reports[0], clock=lambda: now[0])
    first = reporter.publish_once()
    assert (first.status, first.reason) == ("False", "NodeChecksFailed")
    assert first.message == "failing node checks: node.forward-policy (1 ok, 0 warn, 1 fail, 1 skipped)"
    now[0] = T0 + 5
    second = reporter.publish_once()
    assert second.last_heartbeat_time == rfc3339(T0 + 5) and second.last_transition_time == rfc3339(T0)
    reports[0] = HEALTHY
    now[0] = T0 + 10
    third = reporter.publish_once()
    assert (third.status, third.last_transition_time, third.last_heartbeat_time) == (
        "True", rfc3339(T0 + 10), rfc3339(T0 + 10))
    published = decode_report(kube_api.get("v1", "Node", "node1")["metadata"]["annotations"][ANNOTATION])
    assert published is not None and published.period == 5.0 and published.time == rfc3339(T0 + 10)
    assert [(f.check_id, f.status) for f in published.findings] == [
        ("node.rp-filter", "ok"), ("node.forward-policy", "ok"), ("node.cni-plugin", "skip")]

    # a new daemon (restarted) keeps the transition time the previous one left while nothing changed
    now[0] = T0 + 20
    again = NodeReporter(kube, "node1", 5.0, lambda: HEALTHY, clock=lambda: now[0]).publish_once()
    assert again.last_transition_time == rfc3339(T0 + 10) and again.last_heartbeat_time == rfc3339(T0 + 20)


def test_reporter_thread_publishes_at_once_and_survives_a_failing_write(kube_api: RunningKubeApi,
                                                                       kube: KubeClient) -> None:
    ran = threading.Event()
    calls: list[int] = []

    def checks() -> Report:
        calls.append(1)
        if len(calls) >= 2:
            ran.set()
        return HEALTHY

    reporter = NodeReporter(kube, "node1", 0.05, checks).start()  # no Node yet: the first writes fail
    try:
        assert ran.wait(10)
        kube_api.create(_node())
        for _ in range(200):
            if reporter.published:
                break
            threading.Event().wait(0.05)
        assert reporter.published >= 1
    finally:
        reporter.stop()
    assert read_condition(kube, "node1", CONDITION_TYPE) is not None


def test_daemon_checks_are_the_node_scope_without_probes() -> None:
    ids = [c.id for c in daemon_checks()]
    assert "node.forward-policy" in ids and "node.daemon-socket" in ids
    assert not [i for i in ids if i.startswith(("probe.", "cloud.", "cluster."))]


# --- the annotation ----------------------------------------------------------------------------------------


def test_the_annotation_is_size_bounded_and_keeps_the_failing_checks() -> None:
    huge = Report(tuple(
        Finding(f"node.c{i}", "t", Scope.NODE, Status.FAIL if i % 5 == 0 else Status.OK,
                tuple("x" * 900 for _ in range(40)), "fix " + "y" * 3000) for i in range(40)))
    text = encode_report(huge, T0, 60.0, limit=16 * 1024)
    assert len(text.encode()) <= 16 * 1024
    doc = json.loads(text)
    assert doc["truncated"] is True and doc["period"] == 60.0
    published = decode_report(text)
    assert published is not None
    assert {f.check_id for f in published.findings if f.status == "fail"} == {f"node.c{i}" for i in range(0, 40, 5)}
    small = encode_report(BROKEN, T0, 60.0)
    assert json.loads(small)["truncated"] is False and " " not in small.split('"summary"')[0]
    assert decode_report("not json") is None and decode_report(None) is None


# --- what doctor makes of it -----------------------------------------------------------------------------


def _published(name: str, status: str, heartbeat: float, report: Report, period: float = 5.0) -> dict[str, Any]:
    node = _node(name)
    condition = NodeCondition(CONDITION_TYPE, status, "r", "failing node checks: node.forward-policy (...)"
                              if status == "False" else "every node check passes", rfc3339(heartbeat),
                              rfc3339(heartbeat - 30))
    node["status"]["conditions"].append(condition.as_object())
    node["metadata"]["annotations"][ANNOTATION] = encode_report(report, heartbeat, period)
    return node


def test_node_health_ok_fail_and_not_reporting() -> None:
    now = T0 + 100
    ok = node_health(_published("node1", "True", now - 2, HEALTHY), now)
    assert (ok.status, ok.failing) == (OK, ())
    assert ok.heartbeat_age == pytest.approx(2) and ok.transition_age == pytest.approx(32)
    bad = node_health(_published("node2", "False", now - 2, BROKEN), now)
    assert (bad.status, bad.failing) == (FAIL, ("node.forward-policy",))
    stale = node_health(_published("node3", "True", now - 16, HEALTHY), now)  # > 3 x 5 s
    assert stale.status == NOT_REPORTING
    assert stale.reason.startswith("last heartbeat 16s ago, more than 3 x its 5s period")
    silent = node_health(_node("node4"), now)
    assert silent.status == NOT_REPORTING and silent.reason.startswith(f"no {CONDITION_TYPE} condition")
    row = health_row(bad)
    assert list(row) == ["node", "status", "reason", "condition", "heartbeat_age_seconds", "period_seconds",
                         "failing", "findings"]
    assert row["findings"][1] == {"check_id": "node.forward-policy", "title": "The FORWARD hook does not drop pod "
                                  "traffic", "scope": "node", "status": "fail",
                                  "evidence": ["evidence of node.forward-policy"], "fix": "fix node.forward-policy"}
    assert parse_time("2026-12-04T16:55:40Z") == pytest.approx(1796403340.0)
    assert parse_time("garbage") is None


def test_fleet_table_one_line_per_node_and_the_failures_under_it(kube_api: RunningKubeApi, kube: KubeClient) -> None:
    from terwayctl.cli.doctor_fleet import print_fleet, print_node

    now = T0 + 100
    kube_api.create(_published("node1", "True", now - 1, HEALTHY))
    kube_api.create(_published("node2", "False", now - 1, BROKEN))
    kube_api.create(_published("node3", "True", now - 60, HEALTHY))
    fleet = read_fleet(kube, now)
    out = io.StringIO()
    print_fleet(out, fleet)
    lines = out.getvalue().splitlines()
    assert lines[0] == "✓ node1  ready for 31s, heartbeat 1s ago"
    assert lines[1] == "✗ node2  failing for 31s, heartbeat 1s ago: node.forward-policy"
    assert lines[2] == "    ✗ node.forward-policy: The FORWARD hook does not drop pod traffic"
    assert lines[3:5] == ["        evidence of node.forward-policy", "        fix: fix node.forward-policy"]
    assert lines[5].startswith("✗ node3  not reporting: last heartbeat 1m ago, more than 3 x its 5s period")
    assert lines[-1] == "3 node(s): 1 ok, 1 failing, 1 not reporting"
    out = io.StringIO()
    print_node(out, fleet[1])
    text = out.getvalue()
    assert "✓ node.rp-filter: " in text and "- node.cni-plugin: " in text and "✗ node.forward-policy: " in text
    assert text.splitlines()[-1] == "1 ok, 0 warn, 1 fail, 1 skipped"


def test_cni_plugin_is_skipped_when_the_bin_dir_is_not_visible_to_the_daemon(tmp_path: Any) -> None:
    from terwayctl.doctor.context import DoctorOptions, Inputs
    from terwayctl.doctor.publish import run_node_checks
    from terwayctl.doctor.registry import CHECKS

    plugin = [c for c in CHECKS if c.id == "node.cni-plugin"]
    options = DoctorOptions(scopes=frozenset({"node"}), cni_bin_dir=tmp_path / "absent")
    report = run_node_checks(options, Inputs(node=lambda: object()), plugin)
    finding = report.finding("node.cni-plugin")
    assert finding.status is Status.SKIP
    assert finding.evidence[0].startswith(f"the CNI bin dir {tmp_path / 'absent'} is not visible to the daemon")
    (tmp_path / "bin").mkdir()
    visible = run_node_checks(DoctorOptions(scopes=frozenset({"node"}), cni_bin_dir=tmp_path / "bin",
                                            socket=tmp_path / "no.sock", cni_conf_dir=tmp_path),
                              Inputs(node=lambda: object()), plugin).finding("node.cni-plugin")
    assert not visible.evidence[0].startswith("the CNI bin dir")  # the real check ran


# --- --probe-from pod/NS/NAME: the pod's namespace through the node daemon's store ---------------------------


def test_pod_netns_from_the_daemons_store(tmp_path: Any) -> None:
    from terwayctl.core.errors import InvalidInput
    from terwayctl.doctor.podns import parse_pod_ref, pod_netns
    from terwayctl.node.store import EniRecord, Owner, Store

    assert parse_pod_ref("pod/kube-system/coredns") == ("kube-system", "coredns")
    assert parse_pod_ref("pod/web") == ("default", "web")
    for bad in ("pod/", "pod/a/b/c", "pod//x"):
        with pytest.raises(InvalidInput, match="is not pod/<namespace>/<name>"):
            parse_pod_ref(bad)
    with pytest.raises(InvalidInput, match="no daemon store at"):
        pod_netns("pod/default/web", tmp_path)

    netns = tmp_path / "netns-web"
    netns.write_text("")  # stands for the runtime's /run/netns/cni-... file
    with Store(tmp_path / "daemon.sqlite") as store:
        store.add_eni(EniRecord("eni-1", "00:16:3e:00:00:01", "vsw-1", "10.0.32.0/19", "10.0.63.253", "10.0.32.1",
                                10), ["10.0.32.1", "10.0.32.2", "10.0.32.3"])
        store.allocate("10.0.32.2", Owner("c1", "eth0", str(netns), "default", "web", "u1"), host_ifname="cali1",
                       mode="veth")
        store.allocate("10.0.32.3", Owner("c2", "eth0", str(tmp_path / "gone"), "default", "db", "u2"),
                       host_ifname="cali2", mode="veth")
    assert pod_netns("pod/default/web", tmp_path) == str(netns)
    with pytest.raises(InvalidInput, match=r"pod default/db holds 10\.0\.32\.3, but its network namespace"):
        pod_netns("pod/default/db", tmp_path)

    class Pods:
        def get(self, api_version: str, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
            if name == "api":
                return {"spec": {"nodeName": "node2"}}
            raise KubeNotFound("pods/x: not found")

        def list(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
            return []

    with pytest.raises(InvalidInput, match="holds no IP for pod default/api: it runs on node node2"):
        pod_netns("pod/default/api", tmp_path, lambda: Pods())
    with pytest.raises(InvalidInput, match="holds no IP for pod default/nope: the API server does not know it"):
        pod_netns("pod/default/nope", tmp_path, lambda: Pods())
