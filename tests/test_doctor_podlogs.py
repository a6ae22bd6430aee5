"""cluster.ip-errors reads the Terway pods' logs through the API server.

- without root: the lab's API server (terwayctl.lab.kubeapi, with `LabCluster` serving a node's daemon.log as
  its terway pod's log) answers GET .../pods/NAME/log as the real one does (text/plain, 404, 400, sinceSeconds,
  tailLines), and doctor, through the real `kubernetes` client, finds the daemon's IpNotEnough lines;
- as root: a `lab up --kube` lab whose pod vSwitch is exhausted through the emulator (one
  CreateNetworkInterface taking every free address, with the real SDK): the real daemon logs IpNotEnough when a
  pod is added, and doctor names the node, the vSwitch, the line and `terwayctl vswitch add`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from terwayctl.doctor import DoctorOptions, Report, Status, real_inputs, run
from terwayctl.lab import LabSpec, build_topology
from terwayctl.lab.cluster import NAMESPACE, LabCluster
from terwayctl.node.logfmt import LogfmtFormatter
from tests.fixtures.lab import RunningLab

ZONES = ("cn-hangzhou-i", "cn-hangzhou-j")


def _line(message: str, created: float, level: int = logging.WARNING, name: str = "terwayctl.node.pool") -> str:
    """A daemon log line exactly as the daemon writes it (terwayctl.node.logfmt)."""
    record = logging.LogRecord(name, level, __file__, 1, message, None, None)
    record.created, record.msecs = created, 0.0
    return LogfmtFormatter().format(record)


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def _doctor(kubeconfig: Path) -> Report:
    opts = DoctorOptions(scopes=frozenset({"cluster"}), check_ids=("cluster.ip-errors",))
    return run(opts, real_inputs(opts, kubeconfig=str(kubeconfig)))


def test_the_lab_api_server_serves_a_terway_pods_log_and_doctor_reads_it(tmp_path: Path) -> None:
    topology = build_topology(LabSpec(name="pl", nodes=2, zones=ZONES))
    cluster = LabCluster(topology, tmp_path / "kubeconfig", daemon_ready=lambda n: True,
                         restart=lambda n: None).start(loop=False)
    try:
        now = time.time()
        log = tmp_path / "node2" / "daemon.log"
        log.parent.mkdir()
        vsw = topology.pod_vswitches()[1].id  # zone j: node2's
        lines = [
            _line("daemon started", now - 7200, logging.INFO, "terwayctl.node"),
            _line(f"vSwitch {vsw} has no free IPs; backing it off for 60s", now - 7100),  # outside the window
            _line("pool refill: 2 IPs wanted, 1 job(s)", now - 30, logging.INFO),
            _line(f'pool job failed: CreateNetworkInterface failed: InvalidVSwitchId.IpNotEnough (The specified '
                  f'VSwitch "{vsw}" has not enough IpAddress.)', now - 20),
            _line(f"vSwitch {vsw} has no free IPs; backing it off for 60s", now - 20),
        ]
        log.write_text("\n".join(lines) + "\n")
        (tmp_path / "node1").mkdir()
        (tmp_path / "node1" / "daemon.log").write_text(_line("daemon started", now - 10, logging.INFO) + "\n")
        cluster.sync()
        pod = cluster.terway_pods("node2")[0]["metadata"]["name"]
        base = f"{cluster.url}/api/v1/namespaces/{NAMESPACE}/pods"

        code, kind, text = _get(f"{base}/{pod}/log?container=terway")
        assert (code, kind) == (200, "text/plain") and text.splitlines() == lines
        assert _get(f"{base}/{pod}/log")[2].splitlines() == lines  # the only container: no name needed
        assert _get(f"{base}/{pod}/log?container=terway&tailLines=2")[2].splitlines() == lines[-2:]
        assert _get(f"{base}/{pod}/log?container=terway&sinceSeconds=3600")[2].splitlines() == lines[2:]
        assert _get(f"{base}/{pod}/log?container=install-cni")[:2] == (200, "text/plain")  # an init container
        code, kind, text = _get(f"{base}/{pod}/log?container=policy")
        assert (code, kind) == (400, "application/json")
        assert json.loads(text)["message"] == f"container policy is not valid for pod {pod}"
        code, _, text = _get(f"{base}/terway-eniip-nope/log")
        assert code == 404 and json.loads(text)["message"] == 'pods "terway-eniip-nope" not found'
        assert _get(f"{base}/{pod}/log?tailLines=x")[0] == 400
        cluster.server.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two", "namespace": NAMESPACE},
                               "spec": {"nodeName": "node1", "containers": [{"name": "a"}, {"name": "b"}]}})
        code, _, text = _get(f"{base}/two/log")
        assert code == 400 and json.loads(text)["message"] == ("a container name must be specified for pod two, "
                                                               "choose one of: [a b]")
        assert _get(f"{base}/two/log?container=b")[:2] == (200, "text/plain")

        report = _doctor(tmp_path / "kubeconfig")
        found = report.finding("cluster.ip-errors")
        assert found.status is Status.FAIL, found
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now - 20))
        assert found.evidence[0] == (f"node node2 (log of kube-system/{pod}): InvalidVSwitchId.IpNotEnough on {vsw}, "
                                     f"2 line(s) from {stamp} to {stamp}: {lines[3]}"), found.evidence
        assert "2 Terway pod log(s) read through the API server (the last 2000 lines of 60 min each)" in found.evidence
        assert found.fix == (f"{vsw} (zone cn-hangzhou-j) is out of IPs: terwayctl vswitch add --zone cn-hangzhou-j "
                             "vsw-<another vSwitch of the zone with free IPs> (or: terwayctl vswitch add --zone "
                             "cn-hangzhou-j --create --snat)")

        log.write_text("\n".join(lines[:3]) + "\n")  # nothing recent: ok
        quiet = _doctor(tmp_path / "kubeconfig").finding("cluster.ip-errors")
        assert quiet.status is Status.OK, quiet
    finally:
        cluster.stop()


# --- as root: the real daemon, the real fault --------------------------------------------------------------


def _lab_client(lab: RunningLab) -> Any:
    from terwayctl.cloud.session import build_client

    exports = lab.cli("env")
    assert exports.code == 0, exports
    env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in exports.stdout.splitlines())
    return build_client(endpoint=env["TERWAYCTL_ENDPOINT"], environ={**os.environ, **env})


def test_an_exhausted_pod_vswitch_shows_in_the_daemons_log(make_lab: Callable[..., RunningLab],
                                                           lab_root: Path) -> None:
    lab = make_lab(nodes=1, zones=("cn-hangzhou-i",), kube=True, eni_conf={"min_pool_size": 0, "max_pool_size": 2})
    kubeconfig = lab_root / lab.name / "kubeconfig"
    healthy = _doctor(kubeconfig).finding("cluster.ip-errors")
    assert healthy.status is Status.OK, healthy

    vsw = f"vsw-{lab.name}podi"
    client = _lab_client(lab)
    try:  # every free address of the pod vSwitch taken by ENIs of 50 addresses, as a runaway user would
        free = client.describe_vswitches(vswitch_ids=[vsw])[0].available_ip_count
        assert free
        for _ in range(free // 50 + 1):
            client.create_network_interface(vswitch_id=vsw, security_group_ids=[f"sg-{lab.name}"],
                                            secondary_ip_count=min(free, 50) - 1)
            free = client.describe_vswitches(vswitch_ids=[vsw])[0].available_ip_count
            if not free:
                break
        assert free == 0
    finally:
        client.close()
    added = lab.cli("pod", "add", "web", "--node", "node1")
    assert added.code != 0 and "InvalidVSwitchId.IpNotEnough" in added.stderr, added

    found = _doctor(kubeconfig).finding("cluster.ip-errors")
    assert found.status is Status.FAIL, found
    assert found.evidence[0].startswith("node node1 (log of kube-system/terway-eniip-"), found.evidence
    assert f": InvalidVSwitchId.IpNotEnough on {vsw}, " in found.evidence[0], found.evidence
    assert found.fix is not None and found.fix.startswith(
        f"{vsw} (zone cn-hangzhou-i) is out of IPs: terwayctl vswitch add --zone cn-hangzhou-i "), found.fix
    shown = re.search(r", request [0-9A-F-]{36}: (ts=.*)$", found.evidence[0])  # the cloud's request id, the line
    assert shown is not None, found.evidence
    daemon_log = (lab_root / lab.name / "node1" / "daemon.log").read_text().splitlines()
    # the evidence is the daemon's own line (the pool's report of it), shortened
    assert " logger=terwayctl.node.pool " in shown.group(1), shown.group(1)
    assert any(line.startswith(shown.group(1).removesuffix("...")) for line in daemon_log), \
        (shown.group(1), [ln for ln in daemon_log if "IpNotEnough" in ln])


@pytest.fixture(autouse=True)
def _no_kube_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
