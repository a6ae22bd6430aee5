"""`lab up --kube` (docs/lab.md, docs/vswitch.md "Rehearse it in the lab"): the lab's Kubernetes API
server, the daemons reading eni-config from it, the supervisor restarting a node's daemon when its
terway pod is deleted; the whole `vswitch add --create --snat` rehearsal as root; `capacity --cluster`
against the lab. The kubelet loop's logic is also tested without root (no namespaces needed)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from terwayctl.lab import LabSpec, build_topology, down
from terwayctl.lab.cluster import NAMESPACE, LabCluster, node_object, rendered_objects
from terwayctl.lab.kubeapi.server import CORE_PODS
from tests.fixtures.lab import RunningLab, leftovers, new_name

ZONES = "cn-hangzhou-i,cn-hangzhou-j"


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


# --- without root: what the API server holds, and the kubelet loop --------------------------------------


def test_rendered_eni_config_lists_every_zone_and_takes_the_config_file() -> None:
    topology = build_topology(LabSpec(name="r1", nodes=3, zones=("cn-hangzhou-i", "cn-hangzhou-j"),
                                      eni_conf={"max_pool_size": 7}))
    objects = rendered_objects(topology)
    kinds = [o["kind"] for o in objects]
    assert "ConfigMap" in kinds and "DaemonSet" in kinds
    cm = next(o for o in objects if o["kind"] == "ConfigMap")
    conf = json.loads(cm["data"]["eni_conf"])
    assert conf["vswitches"] == {"cn-hangzhou-i": ["vsw-r1podi"], "cn-hangzhou-j": ["vsw-r1podj"]}
    assert conf["security_groups"] == ["sg-r1"] and conf["region_id"] == "cn-hangzhou"
    assert conf["max_pool_size"] == 7 and conf["min_pool_size"] == 2  # --config over the rendered default
    node = node_object(topology, topology.node("node2"))
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "cn-hangzhou-j"
    assert node["metadata"]["labels"]["node.kubernetes.io/instance-type"] == "ecs.g7.xlarge"


def test_a_deleted_terway_pod_restarts_only_that_nodes_daemon(tmp_path: Path) -> None:
    topology = build_topology(LabSpec(name="r2", nodes=3, zones=("cn-hangzhou-i", "cn-hangzhou-j"),
                                      external_daemons=("node3",)))
    ready = {"node1": True, "node2": True}
    restarted: list[str] = []

    def restart(node: str) -> None:
        restarted.append(node)
        ready[node] = False  # the new daemon is starting

    cluster = LabCluster(topology, tmp_path / "kubeconfig", daemon_ready=lambda n: ready.get(n, False),
                         restart=restart).start(loop=False)
    try:
        kubeconfig = yaml.safe_load((tmp_path / "kubeconfig").read_text())
        assert kubeconfig["clusters"][0]["cluster"]["server"] == cluster.url
        assert [n["metadata"]["name"] for n in cluster.server.objects("v1", "Node")] == ["node1", "node2", "node3"]
        assert cluster.terway_pods("node3") == []  # an external daemon: no terway pod of the lab's
        cluster.sync()
        old = {n: cluster.terway_pods(n)[0] for n in ("node1", "node2")}
        assert all(_ready(p) for p in old.values())

        cluster.server.store.delete(CORE_PODS, NAMESPACE, old["node1"]["metadata"]["name"])  # the rollout's DELETE
        cluster.sync()
        assert restarted == ["node1"]
        fresh = cluster.terway_pods("node1")
        assert len(fresh) == 1 and fresh[0]["metadata"]["uid"] != old["node1"]["metadata"]["uid"]
        assert not _ready(fresh[0])  # not before the new daemon answers ready
        ready["node1"] = True
        cluster.sync()
        assert _ready(cluster.terway_pods("node1")[0])
        assert cluster.terway_pods("node2")[0]["metadata"]["uid"] == old["node2"]["metadata"]["uid"]
        assert restarted == ["node1"]
        ds = cluster.server.get("apps/v1", "DaemonSet", "terway-eniip", NAMESPACE)
        assert ds["status"]["numberReady"] == 2 and ds["status"]["desiredNumberScheduled"] == 2

        cluster.pod_put({"name": "web", "namespace": "default", "node": "node1", "ip": ""})
        cluster.pod_put({"name": "web", "namespace": "default", "node": "node1", "ip": "192.168.32.5"})
        pod = cluster.server.get("v1", "Pod", "web", "default")
        assert pod["spec"]["nodeName"] == "node1" and pod["status"]["podIP"] == "192.168.32.5"
        assert cluster.pod_delete({"name": "web", "namespace": "default"}) == {"deleted": True}
    finally:
        cluster.stop()


# --- as root: the rehearsal --------------------------------------------------------------------------


def _pids(lab: RunningLab) -> dict[str, int]:
    result = lab.cli("status", "-o", "json")
    assert result.code == 0, result.stderr
    return {n["name"]: n["daemon_pid"] for n in json.loads(result.stdout)["nodes"]}


def test_rehearse_vswitch_add_in_the_lab(lab_root: Path) -> None:
    """Exhaust the pod vSwitch, see ADD fail with IpNotEnough, `vswitch add --zone --create --snat`
    against the lab's API server: only that zone's daemons restart, new pods get IPs from the new
    vSwitch and reach the internet."""
    lab = RunningLab(new_name(), lab_root)
    try:
        started = lab.cli("up", "--nodes", "3", "--zones", ZONES, "--kube")
        assert started.code == 0, started.stderr
        kubeconfig = lab_root / lab.name / "kubeconfig"
        assert f"kubeconfig {kubeconfig}" in started.stdout and "api server: http://127.0.0.1:" in started.stdout
        state = json.loads(lab.cli("status", "-o", "json").stdout)
        assert state["kube_api"].startswith("http://127.0.0.1:") and state["kubeconfig"] == str(kubeconfig)
        # the daemons read eni-config from the API server, not a file
        log = (lab_root / lab.name / "node1" / "daemon.log").read_text()
        assert "API server http://127.0.0.1:" in log
        before = _pids(lab)

        assert lab.cli("fault", "exhaust").code == 0
        failed = None
        for i in range(12):  # the idle pool serves a few pods, then ADD fails
            added = lab.cli("pod", "add", f"p{i}", "--node", "node1")
            if added.code != 0:
                failed = added
                break
        assert failed is not None and "InvalidVSwitchId.IpNotEnough" in failed.stderr, failed

        # on this host, as an operator would: `lab env` points terwayctl at the lab's cloud
        exports = lab.cli("env")
        assert exports.code == 0, exports
        env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in exports.stdout.splitlines())
        assert env["KUBECONFIG"] == str(kubeconfig) and env["TERWAYCTL_ENDPOINT"].startswith("http://127.0.0.1:")
        add = subprocess.run([sys.executable, "-m", "terwayctl", "--kubeconfig", str(kubeconfig), "vswitch", "add",
                              "--zone", "cn-hangzhou-i", "--create", "--snat", "--timeout", "90s"], capture_output=True, text=True,
                             timeout=180, check=False, env={**os.environ, **env})
        assert add.returncode == 0, (add.stdout, add.stderr)
        created = re.search(r"created vSwitch (vsw-\w+) \(([\d./]+)\) in zone cn-hangzhou-i", add.stdout)
        assert created, add.stdout
        new_vsw, new_cidr = created.groups()
        assert "restarted the terway pods of 2 node(s)" in add.stdout and "all ready" in add.stdout, add.stdout

        after = _pids(lab)  # zone i: node1 and node3 restarted; zone j's node2 untouched
        assert after["node1"] != before["node1"] and after["node3"] != before["node3"]
        assert after["node2"] == before["node2"]
        assert lab.cli("status").code == 0  # every daemon ready again

        ip = lab.pod("fresh", "node1")
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(new_cidr), (ip, new_vsw)
        web = lab.http("fresh")
        assert web.code == 0 and "you came from 203.0.113.1" in web.stdout, web
        vswitches = {v["vswitch_id"]: v for v in json.loads(lab.cli("status", "-o", "json").stdout)["vswitches"]}
        assert vswitches[new_vsw]["snat"] and vswitches[new_vsw]["role"] == "pod"

        removed = lab.cli("down")
        assert removed.code == 0, removed
        assert leftovers(lab.name, lab_root) == []
    finally:
        down(lab.name)
    assert leftovers(lab.name, lab_root) == []


def test_capacity_cluster_against_the_lab(make_lab: Callable[..., RunningLab], lab_root: Path) -> None:
    lab = make_lab(nodes=2, zones=("cn-hangzhou-i", "cn-hangzhou-j"), kube=True)
    lab.pod("web", "node2")
    done = subprocess.run([sys.executable, "-m", "terwayctl", "--kubeconfig", str(lab_root / lab.name / "kubeconfig"),
                           "capacity", "--cluster", "-o", "json"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    nodes = rows["nodes"] if isinstance(rows, dict) else rows
    by_name = {r["name"] if "name" in r else r["node"]: r for r in nodes}
    assert set(by_name) == {"node1", "node2"}
    assert by_name["node2"]["zone"] == "cn-hangzhou-j" and by_name["node1"]["zone"] == "cn-hangzhou-i"
    assert by_name["node2"]["pods"] == 1 and by_name["node1"]["pods"] == 0  # the lab's pod, on its node


def test_only_a_kube_lab_points_its_daemons_at_the_api_server() -> None:
    topology = build_topology(LabSpec(name="r3"))
    assert topology.kube is False
    from terwayctl.lab.lifecycle import _daemon_argv
    from terwayctl.lab.state import LabDir

    argv = _daemon_argv(LabDir("r3"), topology, topology.node("node1"))
    assert "--config" in argv and "--kubeconfig" not in argv
    with_kube = build_topology(LabSpec(name="r3", kube=True))
    argv = _daemon_argv(LabDir("r3"), with_kube, with_kube.node("node1"))
    assert "--config" not in argv and argv[argv.index("--kubeconfig") + 1].endswith("/r3/kubeconfig")
    assert argv[argv.index("--node-name") + 1] == "node1"
