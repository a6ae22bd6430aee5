"""doctor's cluster.network-policy against the test API server (the real kubernetes client)."""

from __future__ import annotations

from typing import Any

from terwayctl.doctor import DoctorOptions, Status, real_inputs, run
from terwayctl.lab.kubeapi.seed import daemonset, node
from tests.fixtures.kube import RunningKubeApi


def policy_daemonset() -> dict[str, Any]:
    ds = daemonset()
    ds["spec"]["template"]["spec"]["containers"].append({"name": "policy", "image": "terway:v1.16.7"})
    return ds


def netpol(name: str, namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}


def check(kube_api: RunningKubeApi) -> Any:
    opts = DoctorOptions(scopes=frozenset({"cluster"}), check_ids=("cluster.network-policy",))
    return run(opts, real_inputs(opts, kubeconfig=str(kube_api.kubeconfig))).finding("cluster.network-policy")


def test_policies_while_policy_is_off_fail_with_the_fix(kube_api: RunningKubeApi) -> None:
    kube_api.create(node("node-a", "ecs.g7.4xlarge", "cn-hangzhou-i"))
    kube_api.create(daemonset())
    quiet = check(kube_api)
    assert quiet.status is Status.OK
    assert quiet.evidence == ("kube-system/terway-eniip has no policy container: NetworkPolicy is off; "
                              "no NetworkPolicy objects",)
    kube_api.create(netpol("deny-all"))
    kube_api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    kube_api.create(netpol("db-only", "shop"))
    found = check(kube_api)
    assert found.status is Status.FAIL
    assert found.evidence[1] == "2 NetworkPolicy object(s) are not enforced: default/deny-all, shop/db-only"
    assert "terwayctl apply --set network_policy=true" in (found.fix or "")


def test_policy_container_not_ready_names_the_node(kube_api: RunningKubeApi) -> None:
    kube_api.controller.mode = "stuck"
    kube_api.controller.unready_nodes = {"node-b"}
    kube_api.create(node("node-a", "ecs.g7.4xlarge", "cn-hangzhou-i"))
    kube_api.create(node("node-b", "ecs.g7.4xlarge", "cn-hangzhou-i"))
    kube_api.create(netpol("deny-all"))
    kube_api.create(policy_daemonset())
    found = check(kube_api)
    assert found.status is Status.FAIL
    assert found.evidence[0] == "kube-system/terway-eniip: NetworkPolicy on (policy container), 2 pod(s)"
    assert len(found.evidence) == 2 and found.evidence[1].startswith("node node-b: policy container of ")
    assert "not ready" in found.evidence[1] and "node-a" not in found.evidence[1]
    pod = found.evidence[1].split()[5]
    assert found.fix == f"kubectl -n kube-system logs {pod} -c policy  # on node-b"


def test_policy_on_and_ready(kube_api: RunningKubeApi) -> None:
    kube_api.create(node("node-a", "ecs.g7.4xlarge", "cn-hangzhou-i"))
    kube_api.create(netpol("deny-all"))
    kube_api.create(policy_daemonset())
    found = check(kube_api)
    assert found.status is Status.OK, found.evidence


# --- cluster.eni-devices: the exclusive-ENI device plugin as the nodes report it ------------------------


def eni_node(name: str, advertised: str | None) -> dict[str, Any]:
    obj = node(name, "ecs.g7.4xlarge", "cn-hangzhou-i", max_pods=64)  # EniQuantity 8: 7 ENIs for pods
    if advertised is not None:
        obj["status"]["allocatable"]["aliyun/eni"] = advertised
        obj["status"]["capacity"]["aliyun/eni"] = advertised
    return obj


def eni_devices(kube_api: RunningKubeApi) -> Any:
    opts = DoctorOptions(scopes=frozenset({"cluster"}), check_ids=("cluster.eni-devices",))
    return run(opts, real_inputs(opts, kubeconfig=str(kube_api.kubeconfig))).finding("cluster.eni-devices")


def test_eni_devices_compares_allocatable_with_the_capacity(kube_api: RunningKubeApi) -> None:
    kube_api.create(eni_node("node-a", "7"))
    kube_api.create(eni_node("node-b", None))
    kube_api.create(eni_node("node-c", "3"))
    kube_api.create(daemonset("terway-eni"))
    found = eni_devices(kube_api)
    assert found.status is Status.FAIL
    assert found.evidence[0] == "node-a (ecs.g7.4xlarge): allocatable aliyun/eni 7 = 7 ENIs for pods"
    assert found.evidence[1].startswith("node-b: no aliyun/eni in allocatable: the daemon's device plugin is not")
    assert found.evidence[2].startswith("node-c: allocatable aliyun/eni 3 != 7 ENIs for pods")
    assert "node-b, node-c" in (found.fix or "")


def test_eni_devices_ok(kube_api: RunningKubeApi) -> None:
    kube_api.create(eni_node("node-a", "7"))
    kube_api.create(daemonset("terway-eni"))
    assert eni_devices(kube_api).status is Status.OK


def test_eni_devices_skipped_in_shared_eni_mode(kube_api: RunningKubeApi) -> None:
    kube_api.create(eni_node("node-a", None))
    kube_api.create(daemonset())
    found = eni_devices(kube_api)
    assert found.status is Status.SKIP
    assert found.evidence[0] == ("kube-system/terway-eniip runs shared ENIs (eniip): the aliyun/eni device plugin "
                                 "runs in exclusive-ENI mode only")
