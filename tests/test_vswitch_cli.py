"""`terwayctl vswitch add|list|remove` against the test API server and the cloud emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from terwayctl.lab.kubeapi.seed import configmap, eni_conf_text, node, seed_cluster
from tests.conftest import CliResult
from tests.fixtures.emulator import RunningEmulator
from tests.fixtures.kube import RunningKubeApi
from tests.vswitch_support import recreate_daemonset_pods, run, terway_pods

Cli = Callable[..., CliResult]


def eni_conf(kube: RunningKubeApi, name: str = "eni-config") -> dict[str, Any]:
    conf: dict[str, Any] = json.loads(kube.get("v1", "ConfigMap", name, "kube-system")["data"]["eni_conf"])
    return conf


def test_add_keeps_everything_else_and_restarts(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    before_cm = cluster.get("v1", "ConfigMap", "eni-config", "kube-system")
    before_pods = terway_pods(cluster)
    result = run(cli, cluster, cloud, "add", "vsw-newi", "--timeout", "10s")
    assert result.exit_code == 0, result.stderr
    assert "added vsw-newi (192.168.128.0/19, 8188 free IPs) under zone cn-hangzhou-i" in result.stdout
    assert "outbound ok: vsw-newi -> 0.0.0.0/0 via NAT gateway ngw-cluster" in result.stdout
    assert "existing ENIs keep their vSwitch" in result.stdout
    assert "restarted the terway pods of 2 node(s) (daemonset kube-system/terway-eniip, batches of 1): all ready" \
        in result.stdout
    after_pods = terway_pods(cluster)  # only zone i's pods were replaced; node-3 (zone j) keeps its pod
    assert after_pods["node-3"] == before_pods["node-3"]
    assert after_pods["node-1"] != before_pods["node-1"] and after_pods["node-2"] != before_pods["node-2"]
    after_cm = cluster.get("v1", "ConfigMap", "eni-config", "kube-system")
    expected = json.loads(eni_conf_text())
    expected["vswitches"]["cn-hangzhou-i"].append("vsw-newi")
    assert after_cm["data"]["eni_conf"] == json.dumps(expected, indent=2)
    assert after_cm["data"]["10-terway.conf"] == before_cm["data"]["10-terway.conf"]
    ds = cluster.get("apps/v1", "DaemonSet", "terway-eniip", "kube-system")
    assert "annotations" not in ds["spec"]["template"]["metadata"]  # no rollout of the whole DaemonSet


def test_add_several_no_restart(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    result = run(cli, cluster, cloud, "add", "vsw-newi", "vsw-newj", "--no-restart")
    assert result.exit_code == 0, result.stderr
    assert eni_conf(cluster)["vswitches"] == {"cn-hangzhou-i": ["vsw-podi", "vsw-newi"],
                                              "cn-hangzhou-j": ["vsw-podj", "vsw-newj"]}
    ds = cluster.get("apps/v1", "DaemonSet", "terway-eniip", "kube-system")
    assert "annotations" not in ds["spec"]["template"]["metadata"]


def test_add_dry_run_prints_the_diff(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    before = cluster.get("v1", "ConfigMap", "eni-config", "kube-system")
    result = run(cli, cluster, cloud, "add", "vsw-newj", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert '-      "vsw-podj"\n+      "vsw-podj",\n+      "vsw-newj"\n' in result.stdout
    assert result.stdout.startswith("outbound ok: vsw-newj -> 0.0.0.0/0 via NAT gateway ngw-cluster (system route "
                                    "table vtb-cluster), SNAT entry snat-newj (SourceVSwitchId vsw-newj) -> "
                                    "203.0.113.10\n--- a/kube-system/eni-config/eni_conf\n")
    assert cluster.get("v1", "ConfigMap", "eni-config", "kube-system") == before


@pytest.mark.parametrize(("vsw", "extra", "message", "hint"), [
    ("vsw-nothere", [], "vSwitch vsw-nothere does not exist", "--region"),
    ("vsw-otheri", [], "is in VPC vpc-other, but the cluster's vSwitches are in vpc-cluster", "own VPC"),
    ("vsw-podk", [], "zone cn-hangzhou-k, where the cluster has no nodes", "topology.kubernetes.io/zone"),
    ("vsw-podi", [], "vSwitch vsw-podi is already configured under zone cn-hangzhou-i", "vswitch list"),
    ("vsw-newj", ["--zone", "cn-hangzhou-i"], "vSwitch vsw-newj is in zone cn-hangzhou-j, not cn-hangzhou-i",
     "drop --zone"),
    ("vsw-newi", ["--timeout", "soon"], "--timeout 'soon' is not a positive duration", "5m"),
])
def test_add_refusals(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator, vsw: str, extra: list[str],
                      message: str, hint: str) -> None:
    before = cluster.get("v1", "ConfigMap", "eni-config", "kube-system")
    result = run(cli, cluster, cloud, "add", vsw, *extra)
    assert result.exit_code == 2
    assert message in result.stderr and "hint:" in result.stderr and hint in result.stderr
    assert cluster.get("v1", "ConfigMap", "eni-config", "kube-system") == before


def test_add_warns_about_few_free_ips(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    result = run(cli, cluster, cloud, "add", "vsw-tinyi", "--no-restart")
    assert result.exit_code == 0
    assert "warning: vSwitch vsw-tinyi (192.168.200.0/28) has only 12 free IPs" in result.stderr


def test_add_without_eni_config(cli: Cli, kube_api: RunningKubeApi, cloud: RunningEmulator) -> None:
    result = run(cli, kube_api, cloud, "add", "vsw-newi")
    assert result.exit_code == 2 and "ConfigMap kube-system/eni-config does not exist" in result.stderr


def test_add_to_a_per_node_configmap(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    cluster.create(node("big-1", "ecs.g7.4xlarge", "cn-hangzhou-j", **{"terway-config": "eni-config-big"}))
    cluster.create(configmap("eni-config-big", json.dumps({"max_pool_size": 20})))
    refused = run(cli, cluster, cloud, "add", "vsw-newi", "--configmap", "eni-config-big")
    assert refused.exit_code == 2 and "zone cn-hangzhou-i, where the cluster has no nodes" in refused.stderr
    result = run(cli, cluster, cloud, "add", "vsw-newj", "--configmap", "eni-config-big", "--no-restart")
    assert result.exit_code == 0, result.stderr
    assert eni_conf(cluster, "eni-config-big") == {"max_pool_size": 20, "vswitches": {"cn-hangzhou-j": ["vsw-newj"]}}
    cluster.create(configmap("lonely", "{}"))
    unused = run(cli, cluster, cloud, "add", "vsw-newj", "--configmap", "lonely")
    assert unused.exit_code == 2 and "no node has the label terway-config=lonely" in unused.stderr
    missing = run(cli, cluster, cloud, "add", "vsw-newj", "--configmap", "nobody")
    assert missing.exit_code == 2 and "ConfigMap kube-system/nobody does not exist" in missing.stderr


def test_add_stops_at_the_first_batch_that_does_not_become_ready(cli: Cli, cluster: RunningKubeApi,
                                                                 cloud: RunningEmulator) -> None:
    cluster.controller.unready_nodes = {"node-1"}  # read by recreate_daemonset_pods: node-1's new pod crashes
    before = terway_pods(cluster)
    result = run(cli, cluster, cloud, "add", "vsw-newi", "--timeout", "0.2s")
    assert result.exit_code == 1
    assert "stopped: the terway pods of node-1 did not become ready; 0/2 node(s) restarted" in result.stdout
    assert "on node node-1: CrashLoopBackOff" in result.stdout
    assert terway_pods(cluster)["node-2"] == before["node-2"]  # the next batch never started
    assert "vsw-newi" in eni_conf(cluster)["vswitches"]["cn-hangzhou-i"]


def test_exclusive_mode_daemonset_is_restarted(cli: Cli, kube_api: RunningKubeApi, cloud: RunningEmulator,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seed_cluster(kube_api, daemonset_name="terway-eni")
    recreate_daemonset_pods(kube_api, monkeypatch)
    result = run(cli, kube_api, cloud, "add", "vsw-newi")
    assert result.exit_code == 0 and "(daemonset kube-system/terway-eni, batches of 1): all ready" in result.stdout


def test_concurrent_adds_from_two_processes_both_land(cluster: RunningKubeApi, cloud: RunningEmulator,
                                                      tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    args = ["--kubeconfig", str(cluster.kubeconfig), "--endpoint", cloud.url, "vswitch", "add", "--no-restart"]
    procs = [subprocess.Popen([sys.executable, "-m", "terwayctl", *args, vsw], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for vsw in ("vsw-newi", "vsw-newj")]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert eni_conf(cluster)["vswitches"] == {"cn-hangzhou-i": ["vsw-podi", "vsw-newi"],
                                              "cn-hangzhou-j": ["vsw-podj", "vsw-newj"]}


def test_list(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    table = run(cli, cluster, cloud, "list")
    assert table.exit_code == 0, table.stderr
    assert table.stdout.splitlines() == [
        "ZONE           VSWITCH   CIDR             FREE-IPS  NODES",
        "cn-hangzhou-i  vsw-podi  192.168.32.0/19      8188      2",
        "cn-hangzhou-j  vsw-podj  192.168.96.0/19      8188      1",
    ]
    as_json = json.loads(run(cli, cluster, cloud, "list", "-o", "json").stdout)
    assert as_json[0] == {"zone": "cn-hangzhou-i", "vswitch_id": "vsw-podi", "cidr": "192.168.32.0/19",
                          "free_ips": 8188, "nodes": 2, "vpc_id": "vpc-cluster", "exists": True}
    assert "vswitch_id: vsw-podj" in run(cli, cluster, cloud, "list", "-o", "yaml").stdout


def test_list_flags_deleted_vswitches_and_bare_zones(cli: Cli, kube_api: RunningKubeApi,
                                                    cloud: RunningEmulator) -> None:
    seed_cluster(kube_api)
    kube_api.create(node("node-k", "ecs.g7.xlarge", "cn-hangzhou-k"))
    kube_api.server.store.patch(
        kube_api.server.resource_for({"apiVersion": "v1", "kind": "ConfigMap"}), "kube-system", "eni-config",
        "application/merge-patch+json",
        json.dumps({"data": {"eni_conf": json.dumps({"vswitches": {"cn-hangzhou-i": ["vsw-gone"],
                                                                   "cn-hangzhou-j": ["vsw-podj"]}})}}).encode(),
        manager="test")
    result = run(cli, kube_api, cloud, "list")
    assert "warning: vsw-gone does not exist in the cloud" in result.stdout
    assert "warning: zone cn-hangzhou-k has 1 node(s) but no vSwitch" in result.stdout


def test_remove(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    assert run(cli, cluster, cloud, "add", "vsw-newi", "--no-restart").exit_code == 0
    result = run(cli, cluster, cloud, "remove", "vsw-podi", "--timeout", "10s")
    assert result.exit_code == 0, result.stderr
    assert "removed vsw-podi from configmap kube-system/eni-config" in result.stdout
    assert "restarted the terway pods of 2 node(s)" in result.stdout
    assert eni_conf(cluster)["vswitches"] == {"cn-hangzhou-i": ["vsw-newi"], "cn-hangzhou-j": ["vsw-podj"]}


def test_remove_refusals(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    last = run(cli, cluster, cloud, "remove", "vsw-podj")
    assert last.exit_code == 2
    assert "vsw-podj is the last vSwitch of zone cn-hangzhou-j, which has 1 node(s)" in last.stderr
    assert "add another vSwitch" in last.stderr
    unknown = run(cli, cluster, cloud, "remove", "vsw-newi")
    assert unknown.exit_code == 2 and "vSwitch vsw-newi is not configured" in unknown.stderr


def test_remove_dry_run(cli: Cli, cluster: RunningKubeApi, cloud: RunningEmulator) -> None:
    assert run(cli, cluster, cloud, "add", "vsw-newi", "--no-restart").exit_code == 0
    before = cluster.get("v1", "ConfigMap", "eni-config", "kube-system")
    result = run(cli, cluster, cloud, "remove", "vsw-newi", "--dry-run")
    assert result.exit_code == 0 and '-      "vsw-newi"' in result.stdout
    assert cluster.get("v1", "ConfigMap", "eni-config", "kube-system") == before


def test_bad_kubeconfig(cli: Cli, cloud: RunningEmulator, tmp_path: Path) -> None:
    result = cli("--kubeconfig", str(tmp_path / "missing"), "vswitch", "list")
    assert result.exit_code == 2 and "does not exist" in result.stderr and "hint:" in result.stderr
