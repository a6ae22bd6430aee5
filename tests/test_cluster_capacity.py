"""`capacity --cluster`: the pure report (core.cluster_capacity) and the command against the test API server."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from terwayctl.core.catalog import InstanceType
from terwayctl.core.cluster_capacity import (
    FLAG_BELOW_ACK_MINIMUM,
    FLAG_ENI_DEVICES,
    FLAG_MAX_PODS_ABOVE_IPS,
    FLAG_OVER_CAPACITY,
    FLAG_UNKNOWN_TYPE,
    NodeRecord,
    cluster_capacity,
    node_capacity,
)
from terwayctl.core.eniconf import EniCaps
from terwayctl.lab.kubeapi.seed import configmap, daemonset, node, pod
from tests.conftest import CliResult
from tests.fixtures.cloud import CloudEnv
from tests.fixtures.emulator import RunningEmulator
from tests.fixtures.kube import RunningKubeApi

Cli = Callable[..., CliResult]
G7 = InstanceType("ecs.g7.xlarge", "ecs.g7", 4, 16.0, 4, 15, 15, 10, True)
TINY = InstanceType("ecs.g6.large", "ecs.g6", 2, 8.0, 2, 6, 6, None, None)


def record(**overrides: object) -> NodeRecord:
    values: dict[str, object] = {"name": "n", "instance_type": "ecs.g7.xlarge", "zone": "z", "max_pods": 47,
                                 "allocatable_pods": 47, "pods": 10, "host_network_pods": 2}
    values.update(overrides)
    return NodeRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("rec", "it", "mode", "ips", "flags"), [
    pytest.param(record(), G7, "eniip", 45, (), id="healthy"),
    pytest.param(record(max_pods=110), G7, "eniip", 45, (FLAG_MAX_PODS_ABOVE_IPS,), id="max-pods-too-high"),
    pytest.param(record(max_pods=None, allocatable_pods=110), G7, "eniip", 45, (FLAG_MAX_PODS_ABOVE_IPS,),
                 id="allocatable-when-no-capacity"),
    pytest.param(record(pods=60), G7, "eniip", 45, (FLAG_OVER_CAPACITY,), id="flannel-leftovers"),
    pytest.param(record(max_pods=8, pods=0, instance_type="ecs.g6.large"), TINY, "eniip", 6, (FLAG_BELOW_ACK_MINIMUM,),
                 id="below-ack-minimum"),
    pytest.param(record(max_pods=5, pods=0, allocatable_enis=3), G7, "eni", 3, (FLAG_BELOW_ACK_MINIMUM,),
                 id="exclusive"),
    pytest.param(record(max_pods=5, pods=0), G7, "eni", 3, (FLAG_BELOW_ACK_MINIMUM, FLAG_ENI_DEVICES),
                 id="exclusive-no-device-plugin"),
    pytest.param(record(max_pods=3, pods=0, allocatable_enis=2, caps=EniCaps(max_eni=1)), G7, "eni", 1,
                 (FLAG_BELOW_ACK_MINIMUM, FLAG_ENI_DEVICES), id="exclusive-device-plugin-disagrees"),
    pytest.param(record(caps=EniCaps(max_eni=1), max_pods=17), G7, "eniip", 15, (), id="max-eni-cap"),
    pytest.param(record(instance_type="ecs.new.xlarge"), None, "eniip", None, (FLAG_UNKNOWN_TYPE,), id="unknown"),
])
def test_node_capacity(rec: NodeRecord, it: InstanceType | None, mode: str, ips: int | None,
                       flags: tuple[str, ...]) -> None:
    row = node_capacity(rec, it, mode, "test")
    assert (row.ip_capacity, row.flags) == (ips, flags)
    assert len(row.problems) == len(flags)


def test_host_network_pods_raise_the_allowed_max_pods() -> None:
    row = node_capacity(record(max_pods=50, host_network_pods=5), G7, "eniip", "test")
    assert row.recommended_max_pods == 50 and row.flags == ()


def test_cluster_capacity_sorts_by_name() -> None:
    rows = cluster_capacity([record(name="b"), record(name="a")], {"ecs.g7.xlarge": G7}, "eniip",
                            {"ecs.g7.xlarge": "catalog"})
    assert [(r.name, r.type_source) for r in rows] == [("a", "catalog"), ("b", "catalog")]


def seed(kube: RunningKubeApi) -> None:
    kube.create(node("node-1", "ecs.g7.xlarge", "cn-hangzhou-i", max_pods=110))
    kube.create(node("node-2", "ecs.g7.4xlarge", "cn-hangzhou-j", max_pods=62, **{"terway-config": "small"}))
    kube.create(node("node-3", "ecs.g6.large", "cn-hangzhou-i", max_pods=8))
    kube.create(node("node-4", "ecs.mystery.large", "cn-hangzhou-i", max_pods=20))
    kube.create(configmap("eni-config", json.dumps({"vswitches": {}, "max_eni": 0})))
    kube.create(configmap("small", json.dumps({"max_eni": 2})))
    kube.create(daemonset())
    for i in range(4):
        kube.create(pod(f"web-{i}", "node-3"))


def test_cli_cluster_table(cli: Cli, kube_api: RunningKubeApi, cloud_env: CloudEnv) -> None:
    seed(kube_api)
    result = cli("--kubeconfig", str(kube_api.kubeconfig), "capacity", "--cluster")
    assert result.exit_code == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:5]}
    assert rows["node-1"][3:] == ["45", "110", "110", "0", "1", "max-pods-above-ips"]
    assert rows["node-2"][3:] == ["60", "62", "62", "0", "1", "-"]  # max_eni 2 from terway-config=small
    assert rows["node-3"][3:] == ["6", "8", "8", "4", "1", "below-ack-minimum"]
    assert rows["node-4"][3] == "?" and rows["node-4"][-1] == "unknown-type"
    assert "Terway mode: shared ENI (terway-eniip)" in result.stdout
    assert "node-1: kubelet max-pods 110 > 45 pod IPs + 2 host-network pods" in result.stdout
    assert "ecs.mystery.large not in the catalog and not looked up live" in result.stdout


def test_cli_cluster_json_and_exclusive_mode(cli: Cli, kube_api: RunningKubeApi, cloud_env: CloudEnv) -> None:
    kube_api.create(node("node-1", "ecs.g7.xlarge", "cn-hangzhou-i", max_pods=10))
    kube_api.create(daemonset("terway-eni"))
    result = cli("--kubeconfig", str(kube_api.kubeconfig), "capacity", "--cluster", "-o", "json")
    data = json.loads(result.stdout)
    assert data[0]["mode"] == "eni" and data[0]["ip_capacity"] == 3
    assert data[0]["flags"] == ["below-ack-minimum", "max-pods-above-ips", "eni-devices"]
    assert data[0]["allocatable_enis"] is None
    assert "no aliyun/eni in allocatable" in data[0]["problems"][-1]


def test_cli_cluster_compares_allocatable_aliyun_eni(cli: Cli, kube_api: RunningKubeApi, cloud_env: CloudEnv) -> None:
    for name, advertised in (("node-1", "3"), ("node-2", "2")):
        obj = node(name, "ecs.g7.xlarge", "cn-hangzhou-i", max_pods=5)
        obj["status"]["allocatable"]["aliyun/eni"] = advertised
        kube_api.create(obj)
    kube_api.create(daemonset("terway-eni"))
    result = cli("--kubeconfig", str(kube_api.kubeconfig), "capacity", "--cluster")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NODE", "TYPE", "ZONE", "POD-IPS", "MAX-PODS", "ALLOCATABLE", "ALLOC-ENI", "PODS",
                                "HOST-NET", "FLAGS"]
    assert lines[1].split()[3:7] == ["3", "5", "5", "3"] and lines[1].split()[-1] == "below-ack-minimum"
    assert lines[2].split()[6] == "2" and lines[2].split()[-1] == "below-ack-minimum,eni-devices"
    assert "node-2: allocatable aliyun/eni 2 != 3 ENIs for pods" in result.stdout


def test_cli_cluster_looks_unknown_types_up_live(cli: Cli, kube_api: RunningKubeApi, emulator: RunningEmulator,
                                                 cloud_env: CloudEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(kube_api)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", emulator.access_key_secret)
    monkeypatch.setenv("ALIBABA_CLOUD_REGION_ID", emulator.region)
    result = cli("--kubeconfig", str(kube_api.kubeconfig), "--endpoint", emulator.url, "capacity", "--cluster")
    assert result.exit_code == 0, result.stderr
    assert "ecs.mystery.large unknown to the catalog and to DescribeInstanceTypes" in result.stdout


def test_cli_cluster_needs_a_kubeconfig(cli: Cli, cloud_env: CloudEnv) -> None:
    result = cli("--kubeconfig", str(cloud_env.home / "missing"), "capacity", "--cluster")
    assert result.exit_code == 2 and "hint:" in result.stderr
