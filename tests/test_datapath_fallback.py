"""The veth fallback of `eniip_virtual_type: ipvlan` (issue #16 B), end to end and on any kernel.

The kernel probe's answer is set to "no ipvlan" for the test process (`ipvlan._supported`, the
probe's cache: the only thing replaced, the rest is the real daemon, datapath, plugin, emulator and
doctor), so the fallback is observed whether or not this kernel has ipvlan: the daemon logs the
reason once, attaches pods with veth + policy routing, reports the mode in `daemon status` and
doctor `node.datapath-mode` warns. Pods of the fallback ping each other and a pod on the other
node; CHECK passes; DEL leaves nothing. Root; skipped otherwise.
"""

from __future__ import annotations

import logging
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from terwayctl.doctor import DoctorOptions, Status, real_inputs, run
from terwayctl.kernel.datapath import inspect_node, ipvlan
from terwayctl.node.config import PoolMode, VirtualType
from tests.fixtures.doctor import terway_conf_dir
from tests.fixtures.netns import ping
from tests.fixtures.node import Lab, wait_for
from tests.test_cni_chain import ok, terway
from tests.test_datapath_veth import ip_json


def test_ipvlan_asked_veth_used_reported_and_working(vpc_lab: Lab, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    monkeypatch.setattr(ipvlan, "_supported", False)  # the probe's cached answer: this kernel has no ipvlan
    node, other = vpc_lab.node(0), vpc_lab.node(1)
    with caplog.at_level(logging.INFO, logger="terwayctl.node"):
        daemon = node.start(PoolMode.ENIIP, virtual_type=VirtualType.IPVLAN)
    other.start()
    choice = daemon.datapath_choice
    assert choice is not None and (choice.mode, choice.fallback) == ("veth", True)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "ipvlan" in r.getMessage()]
    assert warned == [f"datapath veth: {choice.reason}"], warned
    assert "eniip_virtual_type is ipvlan, but this kernel" in choice.reason
    assert daemon.status()["datapath"] == {"mode": "veth", "reason": choice.reason, "fallback": True,
                                           "exclusive_host_routes": []}

    a, b, c = node.pod("web-0"), node.pod("web-1"), other.pod("db-0")
    added = {}
    for owner, pod in ((node, a), (node, b), (other, c)):
        result = owner.cni("ADD", pod)
        assert result.code == 0, result.out
        added[pod.name] = result
    ra, rb, rc = added["web-0"], added["web-1"], added["db-0"]
    # the veth layout, not ipvlan: a veth eth0 in the pod, its host veth and policy rules on the node
    (eth0,) = ip_json(a.ns, "-d", "link", "show", "eth0")
    assert eth0["linkinfo"]["info_kind"] == "veth"  # type: ignore[index]
    assert ra.out["ips"][0]["gateway"] == "169.254.1.1" and ra.out["ips"][0]["address"] == f"{ra.ip}/32"
    assert ra.out["interfaces"][0]["name"].startswith("cali")  # the host veth first, as veth mode reports
    state = inspect_node(node.ns)
    assert {str(ip) for ip in state.pod_ips()} == {ra.ip, rb.ip}
    assert wait_for(lambda: rc.ip in set().union(*vpc_lab.vpc.routes().values()), timeout=5)
    assert ping(a.ns, IPv4Address(rb.ip))  # same node
    assert ping(a.ns, IPv4Address(rc.ip))  # the other node, through the VPC router
    ok(terway(node, "CHECK", {**node.netconf(), "prevResult": ra.out}, a))
    assert node.ipam_check().returncode == 0

    # doctor, with its real readers against this daemon: the mode in use and the fallback
    opts = DoctorOptions(scopes=frozenset({"node"}), check_ids=("node.datapath-mode",), netns=node.ns,
                         cni_conf_dir=terway_conf_dir(tmp_path / "net.d"), cni_bin_dir=tmp_path / "no-bin",
                         socket=node.socket)
    finding = run(opts, real_inputs(opts)).finding("node.datapath-mode")
    assert finding.status is Status.WARN, finding
    assert finding.evidence[0].startswith(f"datapath veth: {choice.reason}")
    assert finding.fix is not None and "modprobe ipvlan" in finding.fix

    for owner, pod in ((node, a), (node, b), (other, c)):
        assert owner.cni("DEL", pod).code == 0
    assert [link["ifname"] for link in ip_json(a.ns, "link", "show")] == ["lo"]
    after = inspect_node(node.ns)
    assert not after.veths and not after.rules
    assert node.ipam_check().returncode == 0


def test_doctor_reports_the_veth_mode_of_a_plain_daemon(vpc_lab: Lab, tmp_path: Path) -> None:
    node = vpc_lab.node(0)
    node.start()
    opts = DoctorOptions(scopes=frozenset({"node"}), check_ids=("node.datapath-mode",), netns=node.ns,
                         cni_conf_dir=terway_conf_dir(tmp_path / "net.d"), cni_bin_dir=tmp_path / "no-bin",
                         socket=node.socket)
    finding = run(opts, real_inputs(opts)).finding("node.datapath-mode")
    assert finding.status is Status.OK, finding
    assert finding.evidence[0].startswith("datapath veth: eniip_virtual_type is veth (the default)")
