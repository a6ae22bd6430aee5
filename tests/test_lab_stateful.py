"""Stable IPs for StatefulSet pods in the lab with its API server (`lab up --kube`; docs/node.md,
"Stable IPs for StatefulSet pods"; docs/lab.md). Everything through the lab's CLI, as a user runs it:
`lab pod add NAME --owner StatefulSet/web` (the Pod with its ownerReferences in the lab's API server
before the ADD), `lab pod del`, `lab status`, `daemon status` through `lab exec`.

Root only: a StatefulSet pod deleted and re-added gets its IP back, a Deployment pod does not, other
pods never get the leased IP, kill -9 of the node's daemon (the pid the lab recorded) between DEL and
re-ADD loses nothing (the lab restarts it when its terway pod is deleted, as the DaemonSet
controller and kubelet do), and expiry releases the IP (eni-config's `stateful_ip_lease` shortened,
the daemon restarted the same way). The lab's pieces without root: `--owner` parsing and the Pod the
lab's API server holds.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from terwayctl.core.errors import InvalidInput
from terwayctl.kube.client import KubeClient, connect, resource_path
from terwayctl.lab import LabSpec, build_topology, down, procs
from terwayctl.lab.cluster import NAMESPACE, LabCluster
from terwayctl.lab.pods import parse_owner
from tests.fixtures.lab import RunningLab, leftovers, new_name

NODE = "node1"
LEASE_CONF = {"stateful_ip_lease": "10m", "min_pool_size": 0, "max_pool_size": 10}


# --- without root -------------------------------------------------------------------------------------


def test_owner_spelling() -> None:
    assert parse_owner("StatefulSet/web") == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web"}
    assert parse_owner("Job/backup")["apiVersion"] == "batch/v1"
    for bad in ("StatefulSet", "/web", "StatefulSet/", "a/b/c"):
        with pytest.raises(InvalidInput, match="--owner must be KIND/NAME"):
            parse_owner(bad)


def test_the_lab_api_server_holds_the_pods_owner(tmp_path: Path) -> None:
    topology = build_topology(LabSpec(name="s1", nodes=1, kube=True))
    cluster = LabCluster(topology, tmp_path / "kubeconfig", daemon_ready=lambda n: True,
                         restart=lambda n: None).start(loop=False)
    try:
        owner = parse_owner("StatefulSet/web")
        first = cluster.pod_put({"name": "web-0", "namespace": "default", "node": NODE, "owners": [owner]})
        cluster.pod_put({"name": "web-0", "namespace": "default", "node": NODE, "ip": "192.168.32.5"})
        pod = cluster.server.get("v1", "Pod", "web-0", "default")
        refs = pod["metadata"]["ownerReferences"]
        assert [(r["apiVersion"], r["kind"], r["name"], r["controller"]) for r in refs] == [
            ("apps/v1", "StatefulSet", "web", True)]
        assert pod["status"]["podIP"] == "192.168.32.5"  # the IP update keeps the owner
        assert cluster.pod_delete({"name": "web-0", "namespace": "default"}) == {"deleted": True}
        again = cluster.pod_put({"name": "web-0", "namespace": "default", "node": NODE, "owners": [owner]})
        assert again["uid"] != first["uid"]  # re-created as the StatefulSet controller does: a new uid
        refs2 = cluster.server.get("v1", "Pod", "web-0", "default")["metadata"]["ownerReferences"]
        assert refs2[0]["uid"] == refs[0]["uid"]  # the same owner
        cluster.pod_put({"name": "plain", "namespace": "default", "node": NODE})
        assert "ownerReferences" not in cluster.server.get("v1", "Pod", "plain", "default")["metadata"]
    finally:
        cluster.stop()


# --- as root: the lab -----------------------------------------------------------------------------------


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class StatefulLab:
    def __init__(self, lab: RunningLab, kube: KubeClient) -> None:
        self.lab, self.kube = lab, kube

    def add(self, pod: str, owner: str = "") -> str:
        args = ["pod", "add", pod, "--node", NODE, "-o", "json"] + (["--owner", owner] if owner else [])
        done = self.lab.cli(*args)
        assert done.code == 0, done.stderr
        return str(json.loads(done.stdout)["ip"])

    def delete(self, pod: str) -> str:
        done = self.lab.cli("pod", "del", pod)
        assert done.code == 0, done.stderr
        return done.stdout

    def daemon(self, table: bool = False) -> Any:
        done = self.lab.exec(NODE, "terwayctl", "daemon", "status", *([] if table else ["-o", "json"]))
        assert done.code == 0, done.stderr
        return done.stdout if table else json.loads(done.stdout)

    def leases(self) -> list[tuple[str, str, str]]:
        return [(x["ip"], x["pod"], x["reason"]) for x in self.daemon()["leases"]]

    def status(self) -> dict[str, Any]:
        done = self.lab.cli("status", "-o", "json")
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def node(self) -> dict[str, Any]:
        return next(n for n in self.status()["nodes"] if n["name"] == NODE)

    def restart_by_deleting_the_terway_pod(self) -> int:
        """`kubectl -n kube-system delete pod <the node's terway pod>`: the lab (playing the DaemonSet
        controller and kubelet) restarts the node's daemon and records its pid; wait until it is ready."""
        old = self.node()["daemon_pid"]
        pods = self.kube.request("GET", resource_path("v1", "pods", NAMESPACE), what="pods")["items"]
        mine = [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") == NODE
                and any(o.get("kind") == "DaemonSet" for o in p["metadata"].get("ownerReferences") or [])]
        assert len(mine) == 1, mine
        self.kube.request("DELETE", resource_path("v1", "pods", NAMESPACE, mine[0]), what=f"pods/{mine[0]}")
        _wait(lambda: self.node()["daemon_pid"] not in (0, old) and self.node()["ready"], 120,
              "the restarted daemon to be ready")
        new: int = self.node()["daemon_pid"]
        return new

    def set_lease(self, duration: str) -> None:
        """eni-config's eni_conf in the lab's API server, as `kubectl edit cm eni-config` does."""
        path = resource_path("v1", "configmaps", NAMESPACE, "eni-config")
        cm = self.kube.request("GET", path, what="configmaps/eni-config")
        conf = json.loads(cm["data"]["eni_conf"])
        conf["stateful_ip_lease"] = duration
        cm["data"]["eni_conf"] = json.dumps(conf)
        self.kube.request("PUT", path, what="configmaps/eni-config", body=cm)


@pytest.fixture
def stateful_lab(lab_root: Path) -> Iterator[StatefulLab]:
    lab = RunningLab(new_name(), lab_root)
    conf = lab_root / "eni_conf.json"
    conf.write_text(json.dumps(LEASE_CONF))
    try:
        started = lab.cli("up", "--kube", "--nodes", "1", "--config", str(conf), timeout=300)
        assert started.code == 0, started.stderr
        with connect(str(lab_root / lab.name / "kubeconfig"), request_timeout=10.0) as kube:
            yield StatefulLab(lab, kube)
    finally:
        down(lab.name)
    assert leftovers(lab.name, lab_root) == []


def test_statefulset_ips_in_the_lab(stateful_lab: StatefulLab, lab_root: Path) -> None:
    s = stateful_lab
    doc = s.daemon()
    assert doc["pool"]["stateful_ip_lease"] == 600  # `lab up --config` reached the daemon through eni-config

    # a StatefulSet pod and a Deployment's pod, added and deleted
    web_ip = s.add("web-0", "StatefulSet/web")
    api_ip = s.add("api-5d8f-x", "ReplicaSet/api-5d8f")
    assert f"({web_ip} kept for default/web-0 on {NODE}: StatefulSet, until " in s.delete("web-0")
    assert f"({api_ip} released on {NODE})" in s.delete("api-5d8f-x")
    assert s.leases() == [(web_ip, "default/web-0", "StatefulSet")]
    doc = s.daemon()
    assert doc["pool"]["leased"] == 1 and doc["allocations"] == []
    table = s.daemon(table=True)
    assert "1 leased" in table and "LEASED IP" in table
    assert any(line.split()[:3] == [web_ip, "default/web-0", "StatefulSet"] for line in table.splitlines())

    # kill -9 of the node's daemon between DEL and re-ADD: by the pid the lab recorded, checked first
    pid = s.node()["daemon_pid"]
    cmdline = procs.cmdline(pid)
    assert f"{lab_root / s.lab.name}/" in cmdline and " daemon " in cmdline, cmdline
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not s.node()["daemon_running"], 30, "the killed daemon to be reported down")
    assert s.lab.cli("status").code == 1  # a daemon down: the lab is not healthy
    new_pid = s.restart_by_deleting_the_terway_pod()
    assert new_pid != pid and s.lab.cli("status").code == 0
    after = s.daemon()
    assert [(x["ip"], x["pod"]) for x in after["leases"]] == [(web_ip, "default/web-0")]
    assert after["pool"]["leased"] == 1 and after["allocations"] == []

    # other pods drain the idle IPs and one more (a refill): never the leased IP; the Deployment
    # pod's IP went back to the pool and to one of them
    others = [s.add(f"o{i}") for i in range(int(after["pool"]["idle"]) + 1)]
    assert web_ip not in others
    assert api_ip in others

    # both come back under the same names (new Pods, new uids): only the StatefulSet pod gets its IP
    assert s.add("web-0", "StatefulSet/web") == web_ip
    assert s.add("api-5d8f-x", "ReplicaSet/api-5d8f") != api_ip
    assert s.leases() == []
    web = s.lab.http("web-0")  # the returned IP works
    assert web.code == 0 and "hello from the internet" in web.stdout, web

    # expiry: a short lease in eni-config, the daemon restarted the lab's way, the pod deleted again
    s.set_lease("4s")
    s.restart_by_deleting_the_terway_pod()
    assert s.daemon()["pool"]["stateful_ip_lease"] == 4
    s.delete("web-0")
    log = lab_root / s.lab.name / NODE / "daemon.log"
    _wait(lambda: f"{web_ip} kept for default/web-0 (StatefulSet)" in log.read_text(errors="replace"), 30,
          "the DEL to lease the IP")
    _wait(lambda: s.leases() == [], 60, "the lease to expire")
    assert f"lease of {web_ip} for default/web-0 expired: back to the pool" in log.read_text(errors="replace")
    doc = s.daemon()
    assert doc["pool"]["leased"] == 0 and web_ip not in [a["ip"] for a in doc["allocations"]]
