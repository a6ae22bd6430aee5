"""Cluster checks: unit tests with a fake cluster, end to end against the test API server."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from terwayctl.cloud.client import CloudClient
from terwayctl.doctor import DoctorOptions, Status, real_inputs, run
from terwayctl.doctor.readers import DaemonSetState
from terwayctl.kube.reads import PodInfo
from terwayctl.lab.kubeapi.seed import configmap, daemonset, eni_conf_text, seed_cluster
from terwayctl.lab.kubeapi.seed import node as node_object
from tests.fixtures.doctor import FakeKube, RunOne, event, node
from tests.fixtures.emulator import RunningEmulator
from tests.fixtures.kube import RunningKubeApi

GOOD_CONF = json.dumps({"vswitches": {"cn-hangzhou-i": ["vsw-a"]}, "security_groups": ["sg-a"], "max_pool_size": 5})
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC).timestamp()


def ds(desired: int = 3, ready: int = 3, updated: int = 3) -> DaemonSetState:
    return DaemonSetState("terway-eniip", "kube-system", "eniip", desired, ready, updated, ready)


@pytest.mark.parametrize(("state", "status"), [
    (ds(), Status.OK), (ds(ready=2), Status.FAIL), (ds(updated=1), Status.WARN), (ds(0, 0, 0), Status.WARN),
    (None, Status.FAIL),
])
def test_daemonset(run_one: RunOne, state: DaemonSetState | None, status: Status) -> None:
    found = run_one("cluster.daemonset", kube=FakeKube(daemonset=state))
    assert found.status is status
    if state is not None and state.ready < state.desired:
        assert "1 node(s) without a ready Terway pod" in found.evidence[1]


def test_cluster_checks_skip_without_a_cluster(run_one: RunOne) -> None:
    found = run_one("cluster.daemonset")
    assert found.status is Status.SKIP and found.evidence == ("no Kubernetes cluster configured",)


def test_eni_config_ok_and_broken(run_one: RunOne) -> None:
    good = FakeKube(config_maps={"eni-config": {"eni_conf": GOOD_CONF}})
    assert run_one("cluster.eni-config", kube=good).status is Status.OK
    assert run_one("cluster.eni-config", kube=FakeKube()).status is Status.FAIL
    broken = FakeKube(config_maps={"eni-config": {"eni_conf": "{not json"}})
    found = run_one("cluster.eni-config", kube=broken)
    assert found.status is Status.FAIL and "is not valid JSON" in found.evidence[0]
    invalid = json.dumps({"vswitches": {"cn-hangzhou-i": ["bogus"]}, "security_groups": ["sg-a"],
                          "max_pool_size": 1, "min_pool_size": 4, "eni_cap_ratio": 3})
    found = run_one("cluster.eni-config", kube=FakeKube(config_maps={"eni-config": {"eni_conf": invalid}}))
    assert found.status is Status.FAIL
    text = "\n".join(found.evidence)
    assert "eni_cap_ratio must be in (0, 1]" in text
    assert "'bogus' is not a vSwitch id" in text
    assert "min_pool_size: 4 is larger than pool.max_size 1" in text


def test_eni_config_checks_node_overrides(run_one: RunOne) -> None:
    kube = FakeKube(config_maps={"eni-config": {"eni_conf": GOOD_CONF}, "big": {"eni_conf": '{"max_eni": -1}'}},
                    node_list=[node("n1", terway_config="big"), node("n2", terway_config="gone")])
    found = run_one("cluster.eni-config", kube=kube)
    assert found.status is Status.FAIL
    text = "\n".join(found.evidence)
    assert "max_eni must be 0 (no cap) or positive" in text
    assert "terway-config=gone" in text


def test_max_pods(run_one: RunOne) -> None:
    fine = FakeKube(node_list=[node("n1", "ecs.g7.4xlarge", 110)], daemonset=ds())
    assert run_one("cluster.max-pods", kube=fine).status is Status.OK
    over = FakeKube(node_list=[node("n1", "ecs.g7.xlarge", 110), node("n2", "ecs.unknown", 10)],
                    pod_list=[PodInfo("p", "default", "n1", "Running", False, True)], daemonset=ds())
    found = run_one("cluster.max-pods", kube=over)
    assert found.status is Status.FAIL
    assert found.evidence[0].startswith("n1: kubelet max-pods 110 > 45 pod IPs + 2 host-network pods")
    assert "n2: instance type ecs.unknown unknown to the catalog" in found.evidence
    assert run_one("cluster.max-pods", kube=FakeKube()).status is Status.SKIP


def test_ip_errors_recent_only(run_one: RunOne) -> None:
    kube = FakeKube(event_list=[
        event("Failed to create pod sandbox: InvalidVSwitchId.IpNotEnough: vsw-a", name="new"),
        event("EniPerInstanceLimitExceeded", name="old"), event("Pulled image", name="other", reason="Pulled")],
        times={("default", "new"): "2026-11-21T11:50:00Z", ("default", "old"): "2026-11-21T09:00:00Z"})
    found = run_one("cluster.ip-errors", kube=kube, now=NOW)
    assert found.status is Status.FAIL
    assert len(found.evidence) == 1
    assert found.evidence[0].startswith("Pod default/web-1: FailedCreatePodSandBox x3 at 2026-11-21T11:50:00Z")
    assert "vswitch add" in (found.fix or "")
    quiet = FakeKube(event_list=[event("Pulled image", reason="Pulled")])
    assert run_one("cluster.ip-errors", kube=quiet, now=NOW).status is Status.OK


# --- end to end: the real kubernetes client against the test API server ---------------------------------


def _kube_run(kube_api: RunningKubeApi, **options: Any) -> Any:
    opts = DoctorOptions(scopes=frozenset({"cluster"}), **options)
    return run(opts, real_inputs(opts, kubeconfig=str(kube_api.kubeconfig)), now=lambda: NOW)


def test_cluster_end_to_end(kube_api: RunningKubeApi) -> None:
    seed_cluster(kube_api)
    kube_api.create({"apiVersion": "v1", "kind": "Event",
                     "metadata": {"name": "web.1", "namespace": "default"},
                     "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
                     "reason": "FailedCreatePodSandBox", "type": "Warning", "count": 2,
                     "lastTimestamp": "2026-11-21T11:59:00Z",
                     "message": "plugin type=terway failed: InvalidVSwitchId.IpNotEnough (vsw-podi)"})
    report = _kube_run(kube_api)
    daemon = report.finding("cluster.daemonset")
    assert daemon.status is Status.OK
    assert daemon.evidence == ("kube-system/terway-eniip (eniip): desired 3, ready 3, updated 3, available 3",)
    assert report.finding("cluster.eni-config").status is Status.OK
    max_pods = report.finding("cluster.max-pods")
    assert max_pods.status is Status.FAIL  # seeded nodes have max-pods 110
    assert any(e.startswith("node-2: kubelet max-pods 110 > 20 pod IPs") for e in max_pods.evidence)
    errors = report.finding("cluster.ip-errors")
    assert errors.status is Status.FAIL
    assert errors.evidence[0].startswith("Pod default/web: FailedCreatePodSandBox x2 at 2026-11-21T11:59:00Z")


def test_cluster_unready_daemonset_and_bad_eni_config(kube_api: RunningKubeApi) -> None:
    kube_api.controller.mode = "stuck"
    kube_api.controller.unready_nodes = {"node-a"}
    kube_api.create(node_object("node-a", "ecs.g7.4xlarge", "cn-hangzhou-i", max_pods=64))
    kube_api.create(node_object("node-b", "ecs.g7.4xlarge", "cn-hangzhou-i", max_pods=64))
    kube_api.create(configmap("eni-config", '{"vswitches": ["vsw-a"]}'))
    kube_api.create(daemonset())
    report = _kube_run(kube_api)
    found = report.finding("cluster.daemonset")
    assert found.status is Status.FAIL
    assert "desired 2, ready 1" in found.evidence[0]
    conf = report.finding("cluster.eni-config")
    assert conf.status is Status.FAIL
    assert any("vswitches must map zones" in e for e in conf.evidence)
    assert report.finding("cluster.max-pods").status is Status.OK


def test_no_kubeconfig_skips(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    opts = DoctorOptions(scopes=frozenset({"cluster"}))
    report = run(opts, real_inputs(opts))
    assert {f.status for f in report.findings} == {Status.SKIP}
    assert report.findings[0].evidence[0].startswith("no cluster: no kubeconfig")


def test_cloud_checks_take_the_clusters_vswitches_and_nodes(
    kube_api: RunningKubeApi, emulator: RunningEmulator, make_client: Callable[..., CloudClient]
) -> None:
    conf = {"vswitches": {"cn-hangzhou-i": ["vsw-emupodi"]}, "security_groups": ["sg-emudefault"]}
    kube_api.create(configmap("eni-config", eni_conf_text(conf)))
    for name, instance_id in (("node-1", "i-emunode1"), ("node-2", "i-emunode2")):
        obj = node_object(name, "ecs.g7.xlarge", "cn-hangzhou-i")
        obj["spec"] = {"providerID": f"cn-hangzhou.{instance_id}"}
        kube_api.create(obj)
    opts = DoctorOptions(scopes=frozenset({"cloud"}))
    inputs = real_inputs(opts, kubeconfig=str(kube_api.kubeconfig))
    client = make_client(emulator)
    inputs.cloud = lambda: client
    report = run(opts, inputs)
    snat = report.finding("cloud.snat-coverage")
    assert snat.evidence[0] == ("inputs: ConfigMap kube-system/eni-config; 2 instance(s) from the cluster's nodes "
                                "(spec.providerID)")
    assert snat.status is Status.FAIL
    assert "--SourceVSwitchId vsw-emupodi" in (snat.fix or "")
    assert "vsw-emupodj" not in (snat.fix or "")
    assert report.finding("cloud.eip-trap").status is Status.FAIL
