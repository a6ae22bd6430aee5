"""`lab up --kube` installs Terway as `terwayctl apply -f <lab>/values.yaml` does, and its DaemonSet controller
rolls a changed pod template out as a RollingUpdate (docs/install.md, docs/lab.md "--kube").

Without root: the values and extras the lab derives, and the controller's batches driven pass by pass
(`LabCluster.sync`, the daemons faked by two callables). As root: a 3-node lab, `apply --diff` of its values
exits 0, a template change restarts the daemons one batch at a time, an image the lab cannot run stalls
the rollout in ImagePullBackOff (`apply --wait --timeout` exits 1 naming the pod), the lab's values put back
recover it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from terwayctl.kube.client import connect
from terwayctl.lab import LabSpec, build_topology
from terwayctl.lab.cluster import NAMESPACE, LabCluster, lab_install, rendered_objects
from terwayctl.lab.kubeapi.server import APPS_DAEMONSETS, CORE_PODS
from terwayctl.lab.state import LabDir
from tests.fixtures.lab import RunningLab

NODES = ("node1", "node2", "node3")
ZONES = ("cn-hangzhou-i", "cn-hangzhou-j")
BAD_IMAGE = "registry.example.com/terway:v2"
DEADLINE_S = 90.0


def _apply(kubeconfig: Path, values: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`terwayctl apply -f VALUES ...` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "terwayctl", "--kubeconfig", str(kubeconfig), "apply", "-f",
                           str(values), *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"})


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _reason(pod: dict[str, Any]) -> str:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return str(waiting.get("reason"))
    return ""


# --- without root: values, extras and the controller's batches --------------------------------------------


def test_the_labs_values_hold_what_it_installs_and_config_keys_become_values() -> None:
    topology = build_topology(LabSpec(name="v1", nodes=3, zones=ZONES, kube=True,
                                      eni_conf={"max_pool_size": 7, "stateful_ip_lease": "10m", "min_pool_size": "x"}))
    install = lab_install(topology)
    assert install.values["vswitches"] == {"cn-hangzhou-i": ["vsw-v1podi"], "cn-hangzhou-j": ["vsw-v1podj"]}
    assert install.values["security_groups"] == ["sg-v1"] and install.values["mode"] == "eniip"
    assert install.values["pool"] == {"min_size": 2, "max_size": 7, "sync_period": "30s"}  # a value when it is one
    # what no value holds (and a pool size no value takes) is merged over eni_conf, as before
    assert install.extras == {"stateful_ip_lease": "10m", "min_pool_size": "x"}
    conf = json.loads(next(o for o in rendered_objects(topology) if o["kind"] == "ConfigMap")["data"]["eni_conf"])
    assert conf["max_pool_size"] == 7 and conf["stateful_ip_lease"] == "10m" and conf["min_pool_size"] == "x"
    text = install.values_yaml("v1")
    assert "stateful_ip_lease" in text.split("\nmode:")[0]  # named in the header comment
    assert yaml.safe_load(text) == install.values


@dataclass
class FakeNodes:
    """The daemons as the supervisor reports them: `ready` per node, every restart and stop in order."""

    ready: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(NODES, True))
    events: list[tuple[str, str]] = field(default_factory=list)

    def restart(self, node: str) -> None:
        self.events.append(("restart", node))
        self.ready[node] = False  # the new daemon is starting

    def stop(self, node: str) -> None:
        self.events.append(("stop", node))
        self.ready[node] = False


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[LabCluster, FakeNodes]]:
    nodes = FakeNodes()
    topology = build_topology(LabSpec(name="v2", nodes=3, zones=ZONES, kube=True))
    lab = LabCluster(topology, tmp_path / "kubeconfig", daemon_ready=lambda n: nodes.ready[n],
                     restart=nodes.restart, stop=nodes.stop).start(loop=False)
    try:
        lab.sync()
        yield lab, nodes
    finally:
        lab.stop()


def _status(lab: LabCluster) -> dict[str, Any]:
    ds = lab.server.get("apps/v1", "DaemonSet", "terway-eniip", NAMESPACE)
    return {"generation": ds["metadata"]["generation"], **ds["status"]}


def _pods(lab: LabCluster) -> dict[str, dict[str, Any]]:
    return {n: lab.terway_pods(n)[0] for n in NODES}


def test_the_lab_installs_its_values_with_terwayctl_apply(cluster: tuple[LabCluster, FakeNodes], tmp_path: Path) -> None:
    lab, _ = cluster
    values = tmp_path / "values.yaml"
    assert values.exists()
    for obj in ("ConfigMap", "DaemonSet"):
        live = lab.server.objects("apps/v1" if obj == "DaemonSet" else "v1", obj, NAMESPACE)[0]
        managers = {(m["manager"], m["operation"]) for m in live["metadata"]["managedFields"]}
        assert ("terwayctl", "Apply") in managers, managers
    diff = _apply(tmp_path / "kubeconfig", values, "--diff")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "configured" not in diff.stdout and diff.stdout.count("unchanged (server dry run)") == 5


def test_a_template_change_rolls_one_batch_at_a_time(cluster: tuple[LabCluster, FakeNodes], tmp_path: Path) -> None:
    lab, nodes = cluster
    assert _status(lab)["numberReady"] == 3
    before = {n: p["metadata"]["uid"] for n, p in _pods(lab).items()}
    # maxUnavailable 50% of 3 nodes rounds up to 2; a new template (what `kubectl rollout restart` does)
    ds = lab.server.get("apps/v1", "DaemonSet", "terway-eniip", NAMESPACE)
    ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "50%"
    ds["spec"]["template"].setdefault("metadata", {}).setdefault("annotations", {})["restartedAt"] = "now"
    lab.server.store.replace(APPS_DAEMONSETS, NAMESPACE, "terway-eniip", ds, manager="kubectl-edit")
    status = _status(lab)  # observed at once: no pod runs the new template yet
    assert status["observedGeneration"] == status["generation"] and status["updatedNumberScheduled"] == 0
    assert status["numberReady"] == 3 and nodes.events == []

    lab.sync()  # the first batch: two nodes
    assert nodes.events == [("restart", "node1"), ("restart", "node2")]
    status = _status(lab)
    assert status["observedGeneration"] == status["generation"]
    assert (status["updatedNumberScheduled"], status["numberReady"], status["numberUnavailable"]) == (2, 1, 2)
    lab.sync()
    assert len(nodes.events) == 2  # node3 waits while the batch is not ready

    nodes.ready["node1"] = True
    lab.sync()  # one new pod ready frees one unit of the budget (the controller's window): node3 goes
    assert nodes.events[2:] == [("restart", "node3")]
    for node in NODES:
        nodes.ready[node] = True
    lab.sync()
    status = _status(lab)
    assert (status["updatedNumberScheduled"], status["numberReady"], status["numberUnavailable"]) == (3, 3, 0)
    assert all(p["metadata"]["uid"] != before[n] for n, p in _pods(lab).items())
    assert [n for kind, n in nodes.events if kind == "restart"] == ["node1", "node2", "node3"]


def test_an_image_the_lab_cannot_run_stalls_in_image_pull_back_off(cluster: tuple[LabCluster, FakeNodes],
                                                                     tmp_path: Path) -> None:
    lab, nodes = cluster
    kubeconfig, values = tmp_path / "kubeconfig", tmp_path / "values.yaml"
    changed = _apply(kubeconfig, values, "--set", f"image={BAD_IMAGE}")
    assert changed.returncode == 0 and "daemonset/terway-eniip configured" in changed.stdout, changed.stderr
    lab.sync()
    assert nodes.events == [("stop", "node1")]  # 10% of 3 nodes rounds up to 1; its new pod never starts
    pod = _pods(lab)["node1"]
    assert not _ready(pod) and _reason(pod) == "ErrImagePull" and pod["status"]["phase"] == "Pending"
    deadline = time.monotonic() + 10
    while _reason(_pods(lab)["node1"]) != "ImagePullBackOff" and time.monotonic() < deadline:
        time.sleep(0.1)
        lab.sync()
    assert _reason(_pods(lab)["node1"]) == "ImagePullBackOff"
    assert nodes.events == [("stop", "node1")]  # stalled: node2 and node3 keep their pods and daemons
    status = _status(lab)
    assert (status["updatedNumberScheduled"], status["numberReady"], status["numberUnavailable"]) == (1, 2, 1)

    back = _apply(kubeconfig, values)  # the lab's values again: the bad pod is replaced at once
    assert back.returncode == 0 and "daemonset/terway-eniip configured" in back.stdout, back.stdout
    lab.sync()
    assert nodes.events[1:] == [("restart", "node1")]
    nodes.ready["node1"] = True
    lab.sync()
    status = _status(lab)
    assert (status["updatedNumberScheduled"], status["numberReady"]) == (3, 3)
    assert len(lab.server.store.list(CORE_PODS, NAMESPACE)["items"]) == 3


# --- as root: a real lab ----------------------------------------------------------------------------------


def _node_pids(lab: RunningLab) -> dict[str, int]:
    """The daemons' pids, as `lab status` shows them (the lab's state, read directly: quick to sample)."""
    return dict(LabDir(lab.name).read_state().daemon_pids)


def test_apply_against_the_lab(make_lab: Callable[..., RunningLab], lab_root: Path) -> None:
    lab = make_lab(nodes=3, zones=ZONES, kube=True)
    kubeconfig, values = LabDir(lab.name).kubeconfig, LabDir(lab.name).values
    assert values == lab_root / lab.name / "values.yaml"
    diff = _apply(kubeconfig, values, "--diff")
    assert diff.returncode == 0, diff.stdout + diff.stderr
    initial = _node_pids(lab)

    # an image the lab cannot run: the first batch's pod stays in ImagePullBackOff, the rollout stalls
    stuck = _apply(kubeconfig, values, "--set", f"image={BAD_IMAGE}", "--wait", "--timeout", "5s")
    assert stuck.returncode == 1, stuck.stdout + stuck.stderr
    assert "not ready after 5s: 2/3 pods ready" in stuck.stdout, stuck.stdout
    unready = [line for line in stuck.stdout.splitlines() if line.startswith("  pod ")]
    assert len(unready) == 1 and unready[0].endswith("on node node1: ImagePullBackOff"), stuck.stdout
    held = _node_pids(lab)
    assert held["node2"] == initial["node2"] and held["node3"] == initial["node3"]
    assert lab.cli("status").code == 1  # node1 runs no daemon: its terway pod cannot start

    back = _apply(kubeconfig, values, "--wait", "--timeout", "90s")
    assert back.returncode == 0, back.stdout + back.stderr
    assert "rolled out: 3/3 pods ready" in back.stdout
    assert lab.cli("status").code == 0
    recovered = _node_pids(lab)
    assert recovered["node2"] == initial["node2"] and recovered["node3"] == initial["node3"]  # only node1's
    assert recovered["node1"] != initial["node1"]
    assert lab.pod("fresh", "node1")  # node1's daemon serves pods again

    # a template change: node by node (10% of 3 rounds up to 1), the next once the previous pod is ready
    before = _node_pids(lab)
    rolled = subprocess.Popen([sys.executable, "-m", "terwayctl", "--kubeconfig", str(kubeconfig), "apply", "-f",
                               str(values), "--set", "resources.cpu_request=200m", "--wait", "--timeout", "90s"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    worst = 0
    changed_order: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    with connect(str(kubeconfig), request_timeout=10.0) as kube:
        while rolled.poll() is None and time.monotonic() < deadline:
            pods = kube.list("v1", "pods", NAMESPACE, label_selector="app=terway-eniip")
            worst = max(worst, sum(1 for p in pods if not _ready(p)) + (3 - len(pods)))
            pids = _node_pids(lab)
            changed_order += [n for n in NODES if pids[n] != before[n] and n not in changed_order]
            time.sleep(0.05)
    output, _ = rolled.communicate(timeout=30)
    assert rolled.returncode == 0, output
    assert "daemonset kube-system/terway-eniip rolled out: 3/3 pods ready" in output
    after = _node_pids(lab)
    assert all(after[n] != before[n] for n in NODES), (before, after)
    assert worst == 1, "more than maxUnavailable (1) terway pods were unavailable at once"
    assert changed_order[0] == "node1" and sorted(changed_order) == list(NODES)

