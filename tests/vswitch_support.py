"""What the `vswitch` tests share: an emulator scenario with a NAT gateway and route tables, and a
DaemonSet controller that recreates a terway pod when it is deleted (as the real one does)."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from terwayctl.lab.kubeapi.seed import SCENARIO, seed_cluster
from tests.conftest import CliResult
from tests.fixtures.cloud import CloudEnv
from tests.fixtures.emulator import EmulatorFactory, RunningEmulator
from tests.fixtures.kube import RunningKubeApi

# terwayctl/lab/kubeapi/seed.py's VPC plus: a NAT gateway (the system route table sends 0.0.0.0/0 to it) whose
# SNAT entries cover the node, pod and "new" vSwitches; vsw-halfi covered by a smaller SourceCIDR
# only; vsw-barei with no entry; vsw-privi behind a custom route table without 0.0.0.0/0; vsw-gwi
# behind one that sends 0.0.0.0/0 to an instance. 192.168.64.0/19 stays free for --create.
VSWITCH_SCENARIO: dict[str, Any] = copy.deepcopy(SCENARIO)
VSWITCH_SCENARIO["vswitches"] += [
    {"id": "vsw-halfi", "vpc": "vpc-cluster", "zone": "cn-hangzhou-i", "cidr": "192.168.224.0/21"},
    {"id": "vsw-barei", "vpc": "vpc-cluster", "zone": "cn-hangzhou-i", "cidr": "192.168.232.0/21"},
    {"id": "vsw-privi", "vpc": "vpc-cluster", "zone": "cn-hangzhou-i", "cidr": "192.168.240.0/21"},
    {"id": "vsw-gwi", "vpc": "vpc-cluster", "zone": "cn-hangzhou-i", "cidr": "192.168.248.0/21"},
]
VSWITCH_SCENARIO["nat_gateways"] = [{
    "id": "ngw-cluster", "vswitch": "vsw-nodei", "snat_table_id": "stb-cluster",
    "snat_entries": [
        *({"id": f"snat-{v.removeprefix('vsw-')}", "source_vswitch": v, "snat_ip": "203.0.113.10"}
          for v in ("vsw-nodei", "vsw-podi", "vsw-podj", "vsw-newi", "vsw-newj", "vsw-tinyi", "vsw-privi",
                    "vsw-gwi")),
        {"id": "snat-halfi", "source_cidr": "192.168.224.0/22", "snat_ip": "203.0.113.10"},
    ],
}]
VSWITCH_SCENARIO["eips"] = [{"id": "eip-cluster", "ip": "203.0.113.10", "instance": "ngw-cluster",
                             "instance_type": "Nat"}]
VSWITCH_SCENARIO["instances"] = [{"id": "i-gateway", "type": "ecs.g7.xlarge", "vswitch": "vsw-nodei",
                                  "security_groups": ["sg-terway"], "primary_eni": "eni-gateway"}]
VSWITCH_SCENARIO["route_tables"] = [
    {"id": "vtb-private", "vpc": "vpc-cluster", "vswitches": ["vsw-privi"],
     "routes": [{"destination": "10.0.0.0/8", "next_hop": "ngw-cluster"}]},
    {"id": "vtb-gateway", "vpc": "vpc-cluster", "vswitches": ["vsw-gwi"],
     "routes": [{"destination": "0.0.0.0/0", "next_hop": "i-gateway"}]},
]


def terway_pods(kube: RunningKubeApi, namespace: str = "kube-system") -> dict[str, str]:
    """node -> uid of its terway pod (the DaemonSet's pods carry ownerReferences kind DaemonSet)."""
    found = {}
    for pod in kube.list("v1", "Pod", namespace):
        if any(o.get("kind") == "DaemonSet" for o in pod["metadata"].get("ownerReferences") or []):
            found[pod["spec"]["nodeName"]] = pod["metadata"]["uid"]
    return found


def recreate_daemonset_pods(kube: RunningKubeApi, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """When a DaemonSet's pod is deleted, create its replacement on the same node, as the DaemonSet
    controller does; ready unless its node is in `kube.controller.unready_nodes`. Returns the list the
    deleted pods' nodes are appended to, in order."""
    from terwayctl.lab.kubeapi.server import CORE_PODS, _pod_status

    store = kube.server.store
    original = store.delete
    deleted: list[str] = []

    def delete(rt: Any, namespace: str, name: str, *, dry_run: bool = False) -> dict[str, Any]:
        old = store.objects.get(store.key(rt, namespace, name))
        reply: dict[str, Any] = original(rt, namespace, name, dry_run=dry_run)
        owners = (old or {}).get("metadata", {}).get("ownerReferences") or []
        if old is None or dry_run or rt is not CORE_PODS or not any(o.get("kind") == "DaemonSet" for o in owners):
            return reply
        node = old["spec"]["nodeName"]
        deleted.append(node)
        suffix = hashlib.sha1(f"{name}/{len(deleted)}".encode()).hexdigest()[:5]
        meta = {k: copy.deepcopy(v) for k, v in old["metadata"].items() if k in ("labels", "annotations",
                                                                                  "ownerReferences")}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {**meta, "name": f"{name[:-6]}-{suffix}",
                                                               "namespace": namespace},
               "spec": copy.deepcopy(old["spec"])}
        created = store.create(CORE_PODS, namespace, pod, manager="kube-controller-manager")
        ready = node not in kube.controller.unready_nodes
        created["status"] = _pod_status(ready, [c.get("name", "c") for c in old["spec"].get("containers") or []])
        store.replace(CORE_PODS, namespace, created["metadata"]["name"], created, status_only=True)
        return reply

    monkeypatch.setattr(store, "delete", delete)
    return deleted


# --- fixtures shared by the vswitch tests (a pytest plugin of tests/conftest.py) ---------------------


@pytest.fixture
def cloud(emulator_factory: EmulatorFactory, cloud_env: CloudEnv, monkeypatch: pytest.MonkeyPatch) -> RunningEmulator:
    """The emulator with VSWITCH_SCENARIO; its keys and region in the environment; fast SNAT polling."""
    running = emulator_factory(VSWITCH_SCENARIO)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", running.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", running.access_key_secret)
    monkeypatch.setenv("ALIBABA_CLOUD_REGION_ID", running.region)
    monkeypatch.setattr("terwayctl.cli.vswitch_cloud.POLL", 0.01)
    return running


@pytest.fixture
def cluster(kube_api: RunningKubeApi, monkeypatch: pytest.MonkeyPatch) -> RunningKubeApi:
    """The test API server seeded with the cluster, and a stand-in controller that recreates pods."""
    seed_cluster(kube_api)
    recreate_daemonset_pods(kube_api, monkeypatch)
    return kube_api


def run(cli: Callable[..., CliResult], kube: RunningKubeApi, cloud: RunningEmulator, *args: str) -> CliResult:
    return cli("--kubeconfig", str(kube.kubeconfig), "--endpoint", cloud.url, "vswitch", *args)
