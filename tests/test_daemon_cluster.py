"""The daemon's API server side (docs/node.md, "With an API server"): the real `kubernetes` client
against the test API server (`kube_api`), and, as root, the lab's datapath (`vpc_lab`):
bandwidth annotations read from the pod object, a pod the API server does not know still gets its
IP, GC of pods deleted from the API server (and not of fresh ones), eni_conf from eni-config merged
with the node's terway-config ConfigMap."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from terwayctl.cli.context import GlobalOptions
from terwayctl.cli.daemon import cluster_configured
from terwayctl.core.errors import InvalidInput
from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath.model import host_veth_name
from terwayctl.kube.client import KubeClient, connect, resource_path
from terwayctl.kube.errors import KubeNotFound
from terwayctl.lab.kubeapi.seed import configmap, node
from terwayctl.node.cluster import (
    KubeCluster,
    NodeUnknown,
    PodRef,
    eni_conf_from_cluster,
    stale_allocations,
)
from terwayctl.node.metrics import parse_text
from terwayctl.node.store import IpRecord, Owner
from tests.fixtures.kube import RunningKubeApi
from tests.fixtures.node import ENI_CONF, Lab, Node, Pod, cloud_environ, wait_for

NODE = "node-1"


def _record(ip: str, name: str, uid: str = "", allocated: float | None = 100.0, namespace: str = "default") -> IpRecord:
    return IpRecord(ip, "eni-1", Owner(f"c-{ip}", "eth0", "", namespace, name, uid), "cali", "veth", allocated)


# --- the GC decision, pure -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "pods", "stale"),
    [
        (_record("10.0.0.1", "a"), [PodRef("default", "a", "u1")], False),  # alive
        (_record("10.0.0.1", "a"), [], True),  # gone
        (_record("10.0.0.1", "a"), [PodRef("other", "a")], True),  # same name, other namespace
        (_record("10.0.0.1", "a", uid="u1"), [PodRef("default", "a", "u1")], False),
        (_record("10.0.0.1", "a", uid="u1"), [PodRef("default", "a", "u2")], True),  # recreated: another pod
        (_record("10.0.0.1", "a", uid="u1"), [PodRef("default", "a", "")], False),  # uid unknown: alive
        (_record("10.0.0.1", "a", allocated=200.0), [], False),  # younger than the grace period
        (_record("10.0.0.1", "a", allocated=150.0), [], False),  # exactly at the cutoff: kept
        (_record("10.0.0.1", "", allocated=1.0), [], False),  # not a Kubernetes sandbox
        (IpRecord("10.0.0.1", "eni-1", None), [], False),  # idle
    ],
    ids=["alive", "gone", "other-namespace", "same-uid", "recreated", "no-uid", "fresh", "cutoff",
         "no-pod-name", "idle"],
)
def test_stale_allocations(record: IpRecord, pods: list[PodRef], stale: bool) -> None:
    assert stale_allocations([record], pods, cutoff=150.0) == ([record] if stale else [])


@pytest.mark.parametrize(
    ("options", "environ", "configured"),
    [
        (GlobalOptions(), {}, False),  # nothing: no cluster, as without an API server
        (GlobalOptions(), {"HOME": "/root"}, False),  # ~/.kube/config alone does not turn it on
        (GlobalOptions(kubeconfig="/k"), {}, True),  # --kubeconfig or KUBECONFIG (typer fills it)
        (GlobalOptions(context="prod"), {}, True),
        (GlobalOptions(), {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, True),  # in a pod: in-cluster
    ],
    ids=["none", "home-only", "kubeconfig", "context", "in-cluster"],
)
def test_when_the_daemon_uses_an_api_server(options: GlobalOptions, environ: dict[str, str],
                                            configured: bool) -> None:
    assert cluster_configured(options, environ) is configured


def test_daemon_refuses_a_kubeconfig_that_does_not_exist(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "terwayctl", "--kubeconfig", str(tmp_path / "nope"), "daemon", "--instance-id",
            "i-1", "--state-dir", str(tmp_path / "state"), "--socket", str(tmp_path / "eni.socket")]
    done = subprocess.run(argv, env=cloud_environ("http://127.0.0.1:9"), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert f"error: the kubeconfig {tmp_path / 'nope'} does not exist" in done.stderr
    assert not (tmp_path / "state").exists()


# --- the reader against the test API server ---------------------------------------------------------


def _api_pod(name: str, node_name: str = NODE, namespace: str = "default", **annotations: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations)},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running"}}


@pytest.fixture
def kube(kube_api: RunningKubeApi) -> Iterator[KubeClient]:
    with connect(str(kube_api.kubeconfig), request_timeout=5.0) as client:
        yield client


def test_kube_cluster_reads_annotations_and_lists_only_this_nodes_pods(kube_api: RunningKubeApi,
                                                                       kube: KubeClient) -> None:
    kube_api.create(node(NODE, "ecs.g7.4xlarge", "cn-hangzhou-i"))
    kube_api.create(_api_pod("web", **{"k8s.aliyun.com/ingress-bandwidth": "10M", "other": "x"}))
    kube_api.create(_api_pod("elsewhere", node_name="node-2"))
    cluster = KubeCluster(kube, NODE)
    assert cluster.pod_annotations("default", "web") == {"k8s.aliyun.com/ingress-bandwidth": "10M", "other": "x"}
    with pytest.raises(KubeNotFound):
        cluster.pod_annotations("default", "nope")
    pods = cluster.pods_on_node()
    uid = kube_api.get("v1", "Pod", "web", "default")["metadata"]["uid"]
    assert pods == [PodRef("default", "web", uid)]
    with pytest.raises(NodeUnknown):  # a wrong --node-name must never look like "no pods here"
        KubeCluster(kube, "node-9").pods_on_node()
    with pytest.raises(NodeUnknown):
        KubeCluster(kube, "").pods_on_node()


def test_eni_conf_from_eni_config_merged_with_the_node_terway_config(kube_api: RunningKubeApi,
                                                                    kube: KubeClient) -> None:
    kube_api.create(configmap("eni-config", json.dumps(ENI_CONF)))
    kube_api.create(configmap("terway-big", json.dumps({"max_pool_size": 7, "min_pool_size": 3,
                                                        "vswitch_selection_policy": None})))
    kube_api.create(node(NODE, "ecs.g7.4xlarge", "cn-hangzhou-i", **{"terway-config": "terway-big"}))
    kube_api.create(node("node-2", "ecs.g7.4xlarge", "cn-hangzhou-i"))
    merged = eni_conf_from_cluster(kube, "kube-system", NODE)
    expected = {**ENI_CONF, "max_pool_size": 7, "min_pool_size": 3}
    del expected["vswitch_selection_policy"]  # RFC 7396: null deletes
    assert merged == expected
    assert eni_conf_from_cluster(kube, "kube-system", "node-2") == ENI_CONF  # no label: the default
    assert eni_conf_from_cluster(kube, "kube-system") == ENI_CONF
    with pytest.raises(InvalidInput, match=r"kube-system/terway-gone .*does not exist"):
        kube_api.create(node("node-3", "ecs.g7.4xlarge", "cn-hangzhou-i", **{"terway-config": "terway-gone"}))
        eni_conf_from_cluster(kube, "kube-system", "node-3")
    with pytest.raises(InvalidInput, match="other/eni-config does not exist"):
        eni_conf_from_cluster(kube, "other")
    with pytest.raises(InvalidInput, match="no node 'node-9'"):
        eni_conf_from_cluster(kube, "kube-system", "node-9")


# --- with the datapath (root) -------------------------------------------------------------------------


def _tbf_rate(ns: str, ifname: str) -> int | None:
    out = subprocess.run(nsmod.command(ns, ["tc", "-j", "qdisc", "show", "dev", ifname]), capture_output=True,
                         text=True, timeout=10, check=True)
    roots = [q for q in json.loads(out.stdout) if q.get("root") and q["kind"] == "tbf"]
    return int(roots[0]["options"]["rate"]) if roots else None


def _seed_pod(kube_api: RunningKubeApi, lab_node: Node, name: str, **annotations: str) -> Pod:
    """The pod in the API server, and its sandbox with the uid the API server gave it."""
    obj = kube_api.create(_api_pod(name, **annotations))
    return lab_node.pod(name, uid=obj["metadata"]["uid"])


def _delete_pod(kube: KubeClient, name: str) -> None:
    kube.request("DELETE", resource_path("v1", "pods", "default", name), what=f"pods/{name}")


def test_annotations_from_the_pod_object_unknown_pod_and_gc(vpc_lab: Lab, kube_api: RunningKubeApi,
                                                            kube: KubeClient) -> None:
    lab_node = vpc_lab.node(0)
    kube_api.create(node(NODE, "ecs.g7.4xlarge", "cn-hangzhou-i"))
    # gc_period long: this test drives the passes itself (the loop's first pass runs at start, on nothing)
    daemon = lab_node.start(cluster=KubeCluster(kube, NODE), node_name=NODE, gc_period=3600.0, gc_grace=1.0)

    # bandwidth from the pod object: binary bytes, ingress on the host veth, egress on the pod's eth0
    shaped = _seed_pod(kube_api, lab_node, "shaped", **{"k8s.aliyun.com/ingress-bandwidth": "2M",
                                                        "k8s.aliyun.com/egress-bandwidth": "512K"})
    result = lab_node.cni("ADD", shaped)
    assert result.code == 0, result.out
    host = host_veth_name("default", "shaped")
    assert _tbf_rate(lab_node.ns, host) == 2 * 2**20
    assert _tbf_rate(shaped.ns, "eth0") == 512 * 2**10

    # runtimeConfig (kubernetes.io/*, passed by kubelet) keeps winning over the pod's aliyun annotation
    both = _seed_pod(kube_api, lab_node, "both", **{"k8s.aliyun.com/egress-bandwidth": "1M"})
    result = lab_node.cni("ADD", both, runtime_config={"bandwidth": {"egressRate": 8_000_000}})
    assert result.code == 0, result.out
    assert _tbf_rate(both.ns, "eth0") == 1_000_000

    # a pod the API server does not know: its IP all the same, unshaped
    ghost = lab_node.pod("ghost")
    ghost_result = lab_node.cni("ADD", ghost)
    assert ghost_result.code == 0, ghost_result.out
    assert _tbf_rate(lab_node.ns, host_veth_name("default", "ghost")) is None

    # GC: "shaped" is deleted from the API server; "fresh" (unknown to it) is younger than the grace
    time.sleep(1.3)
    _delete_pod(kube, "shaped")
    fresh = lab_node.pod("fresh")
    assert lab_node.cni("ADD", fresh).code == 0
    assert daemon.gc_cluster() == 2  # shaped (deleted) and ghost (never there, now old): as DEL does
    store = daemon.store
    assert store is not None
    assert {r.owner.pod_name for r in store.allocations() if r.owner} == {"both", "fresh"}
    assert sorted(_links(shaped.ns)) == ["lo"] and sorted(_links(ghost.ns)) == ["lo"]
    veths = {v.name for v in _veths(lab_node)}
    assert host not in veths and host_veth_name("default", "both") in veths
    assert daemon.gc_cluster() == 0  # fresh is still within the grace period
    time.sleep(1.1)
    assert daemon.gc_cluster() == 1  # now it is not
    metrics = parse_text(daemon.metrics.render())
    assert metrics['terway_gc_released_ips_total{source="apiserver"}'] == 3
    assert metrics['terway_kube_requests_total{op="pod",result="notfound"}'] == 2

    # the API server goes away: ADD still works (no annotations), GC releases nothing
    kube_api.server.stop()
    late = lab_node.pod("late")
    assert lab_node.cni("ADD", late).code == 0
    assert daemon.gc_cluster() == 0
    metrics = parse_text(daemon.metrics.render())
    assert metrics['terway_gc_runs_total{source="apiserver",result="error"}'] == 1
    assert metrics['terway_kube_requests_total{op="pod",result="error"}'] == 1
    for pod in (both, fresh, late):
        assert lab_node.cni("DEL", pod).code == 0
    assert lab_node.ipam_check().returncode == 0


def _links(ns: str) -> list[str]:
    with nsmod.iproute(ns) as nl:
        return [str(m.get_attr("IFLA_IFNAME")) for m in nl.link("dump")]


def _veths(lab_node: Node) -> tuple[Any, ...]:
    from terwayctl.kernel.datapath import inspect_node

    return inspect_node(lab_node.ns).veths


def test_subprocess_daemon_with_kubeconfig_eni_conf_from_configmaps_and_gc_loop(
    vpc_lab: Lab, kube_api: RunningKubeApi, kube: KubeClient
) -> None:
    lab_node = vpc_lab.node(0)
    kube_api.create(configmap("eni-config", json.dumps(ENI_CONF)))
    kube_api.create(configmap("terway-node-1", json.dumps({"min_pool_size": 1, "max_pool_size": 9})))
    kube_api.create(node(NODE, "ecs.g7.4xlarge", "cn-hangzhou-i", **{"terway-config": "terway-node-1"}))
    lab_node.spawn("--node-name", NODE, "--gc-period", "500ms", "--gc-grace", "1s",
                   global_args=["--kubeconfig", str(kube_api.kubeconfig)], with_config=False)
    env = cloud_environ(vpc_lab.url)
    status = [sys.executable, "-m", "terwayctl", "daemon", "--socket", str(lab_node.socket), "status", "-o", "json"]

    def doc() -> dict[str, Any]:
        done = subprocess.run(status, env=env, capture_output=True, text=True, timeout=30, check=True)
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    pool = doc()["pool"]
    assert (pool["min_pool_size"], pool["max_pool_size"]) == (1, 9)  # terway-node-1 merged over eni-config
    kept = _seed_pod(kube_api, lab_node, "kept")
    gone = _seed_pod(kube_api, lab_node, "gone")
    assert lab_node.cni("ADD", kept).code == 0 and lab_node.cni("ADD", gone).code == 0
    _delete_pod(kube, "gone")
    assert wait_for(lambda: [a["pod"] for a in doc()["allocations"]] == ["default/kept"], timeout=15, step=0.2)
    assert sorted(_links(gone.ns)) == ["lo"]
    log = (lab_node.dir / "daemon.log").read_text()
    assert "pod GC released" in log and "default/gone" in log
    assert lab_node.cni("DEL", kept).code == 0
    lab_node.kill(15)
