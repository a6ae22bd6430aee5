"""`terwayctl doctor --all-nodes`, `--node NAME` and `--probe-from pod/NS/NAME` in a 3-node `lab up --kube`
(docs/doctor.md, "Across the cluster"): every daemon runs doctor's node checks every second and publishes
them on its Node (condition TerwayNetworkReady + the findings annotation). A host firewall that rejects pod
traffic, made inside node2's namespace with nft (as an administrator does, not through doctor or `lab
fault`), fails node2's line naming node.forward-policy while node1 and node3 pass; node3's daemon stopped
(SIGTERM to the pid the lab recorded) is reported as not reporting. Root only (the lab needs it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from terwayctl.doctor.publish import ANNOTATION, CONDITION_TYPE
from terwayctl.lab import LabDir
from tests.fixtures.lab import RunningLab

TERWAYCTL = [shutil.which("terwayctl") or sys.executable, *([] if shutil.which("terwayctl") else ["-m", "terwayctl"])]
PERIOD = "1s"
HOST_FIREWALL = """table inet hostfw {
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname "cali*" reject
  }
}
"""


def _doctor(lab: RunningLab, *args: str) -> tuple[int, str, str]:
    done = lab.exec("node1", *TERWAYCTL, "doctor", *args, timeout=60)
    return done.code, done.stdout, done.stderr


def _fleet(lab: RunningLab) -> dict[str, dict[str, Any]]:
    code, out, err = _doctor(lab, "--all-nodes", "-o", "json")
    try:
        rows = json.loads(out)
    except ValueError:
        raise AssertionError(f"no JSON (exit {code}): {out!r} {err!r}") from None
    assert code == (0 if all(r["status"] == "ok" for r in rows) else 1), (code, rows)
    return {r["node"]: r for r in rows}


def _until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


@pytest.fixture
def kube_lab(make_lab: Callable[..., RunningLab], monkeypatch: pytest.MonkeyPatch) -> RunningLab:
    monkeypatch.setenv("TERWAYCTL_NODE_CHECKS_PERIOD", PERIOD)  # the lab hands it to its daemons
    return make_lab(nodes=3, zones=("cn-hangzhou-i", "cn-hangzhou-j"), kube=True)


def test_all_nodes_node_and_probe_from_a_pod(kube_lab: RunningLab) -> None:
    lab = kube_lab
    labdir = LabDir(lab.name)
    topology = labdir.topology()
    web_ip = lab.pod("web", "node1")

    # healthy: every node publishes True, and the table has one ✓ line per node
    fleet = _until("three healthy nodes", lambda: (f := _fleet(lab)) and all(
        r["status"] == "ok" for r in f.values()) and f)
    assert sorted(fleet) == ["node1", "node2", "node3"]
    for row in fleet.values():
        assert row["condition"]["type"] == CONDITION_TYPE and row["condition"]["status"] == "True"
        assert row["condition"]["reason"] == "NodeChecksPassed" and row["period_seconds"] == 1.0
        assert row["failing"] == [] and {f["status"] for f in row["findings"]} <= {"ok", "skip"}
        assert any(f["check_id"] == "node.forward-policy" and f["status"] == "ok" for f in row["findings"])

    # a host firewall on node2 rejects pod traffic (nft inside node2's namespace)
    node2 = topology.node("node2").ns
    subprocess.run(["ip", "netns", "exec", node2, "nft", "-f", "-"], input=HOST_FIREWALL, text=True, check=True)
    fleet = _until("node2 failing", lambda: (f := _fleet(lab)) and f["node2"]["status"] == "fail" and f)
    assert fleet["node2"]["failing"] == ["node.forward-policy"]
    assert fleet["node2"]["condition"]["status"] == "False"
    assert fleet["node2"]["condition"]["message"].startswith("failing node checks: node.forward-policy (")
    assert fleet["node1"]["status"] == "ok" and fleet["node3"]["status"] == "ok"
    code, table, _ = _doctor(lab, "--all-nodes")
    assert code == 1, table
    lines = table.splitlines()
    assert lines[0].startswith("✓ node1  ready for ") and lines[-1] == "3 node(s): 2 ok, 1 failing, 0 not reporting"
    at = next(i for i, line in enumerate(lines) if line.startswith("✗ node2  failing for "))
    assert lines[at].endswith(": node.forward-policy"), lines[at]
    assert lines[at + 1] == "    ✗ node.forward-policy: The FORWARD hook does not drop pod traffic"
    assert any("nft inet hostfw forward" in line for line in lines[at + 2:]), table
    assert any(line.startswith("        fix: ") and "inet hostfw forward" in line for line in lines[at + 2:]), table
    assert next(line for line in lines if line.startswith("✓ node3"))

    # --node: the whole report node2 published
    code, report, _ = _doctor(lab, "--node", "node2")
    assert code == 1, report
    assert report.startswith("✗ node2  failing for ")
    assert f"    condition {CONDITION_TYPE}=False (NodeChecksFailed): failing node checks: node.forward-policy" in report
    assert "✓ node.rp-filter: " in report and "✗ node.forward-policy: " in report
    code, one, _ = _doctor(lab, "--node", "node1", "-o", "json")
    assert code == 0 and json.loads(one)["node"] == "node1" and json.loads(one)["status"] == "ok"
    code, _, err = _doctor(lab, "--node", "node9")
    assert code == 2 and "node9" in err and "node1, node2, node3" in err

    # the firewall removed: node2 is ready again (its transition time moves)
    subprocess.run(["ip", "netns", "exec", node2, "nft", "delete", "table", "inet", "hostfw"], check=True)
    _until("node2 ok again", lambda: _fleet(lab)["node2"]["status"] == "ok")

    # node3's daemon stopped (the pid this lab recorded): not reporting once its heartbeat is 3 periods old
    pid = labdir.read_state().daemon_pids["node3"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert str(labdir.node_socket("node3")) in cmdline  # our lab's daemon, nobody else's
    os.kill(pid, signal.SIGTERM)
    fleet = _until("node3 not reporting", lambda: (f := _fleet(lab)) and f["node3"]["status"] == "not-reporting"
                   and f)
    assert fleet["node3"]["reason"].startswith("last heartbeat ") and "more than 3 x its 1s period" in (
        fleet["node3"]["reason"])
    assert fleet["node1"]["status"] == "ok" and fleet["node2"]["status"] == "ok"
    code, table, _ = _doctor(lab, "--all-nodes")
    assert code == 1 and "✗ node3  not reporting: last heartbeat " in table, table
    assert table.splitlines()[-1] == "3 node(s): 2 ok, 0 failing, 1 not reporting"
    annotations = json.loads(subprocess.run(
        [*TERWAYCTL, "--kubeconfig", str(labdir.kubeconfig), "doctor", "--node", "node3", "-o", "json"],
        capture_output=True, text=True, check=False).stdout)
    assert annotations["findings"], annotations  # what it published last is still shown
    assert ANNOTATION.startswith("terway.aliyun.com/")

    # --probe-from pod/NS/NAME: the pod's namespace found through node1's daemon
    probe = ("-o", "json", "--check", "probe.external", "--probe-from", "pod/default/web",
             "--external-target", "203.0.113.10:80", "--probe-timeout", "1")
    code, out, err = _doctor(lab, *probe)
    assert code == 0, (out, err)
    evidence = json.loads(out)[0]["evidence"]
    pod_ns = labdir.read_state().pods["web"].ns
    assert any(f"from pod netns /run/netns/{pod_ns}: connected" in e and f"src {web_ip}" in e
               for e in evidence), evidence
    # from another node: the pod is not there, and doctor says where it is
    done = lab.exec("node2", *TERWAYCTL, "doctor", *probe, timeout=60)
    assert done.code == 2, done
    assert "holds no IP for pod default/web: it runs on node node1" in done.stderr, done.stderr
