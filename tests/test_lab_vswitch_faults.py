"""The lab capabilities docs/vswitch.md runs on: `lab fault partial-snat`, `lab fault no-route` (the VPC
API of the emulator, the router's NAT and route tables follow) and `lab up --kube --node-config`
(a per-node ConfigMap the node's daemon really reads).

Without root: the emulator's CreateRouteTable / AssociateRouteTable / UnassociateRouteTable /
DeleteRouteTable over signed HTTP, and the validation of the new options. As root: a --kube lab where
a pod's curl to the lab's internet host fails and succeeds with the faults, `doctor` and `vswitch add`
see them, `fault clear` undoes them, and the node with --node-config runs with its ConfigMap."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from terwayctl.core.errors import InvalidInput
from terwayctl.emulator import VPC_VERSION
from terwayctl.lab import LabDir, build_topology, clear_faults, nodeconfig
from terwayctl.lab.model import LabSpec
from tests.fixtures.emulator import EmulatorFactory, RunningEmulator
from tests.fixtures.lab import RunningLab
from tests.vswitch_support import VSWITCH_SCENARIO

TERWAYCTL = (sys.executable, "-m", "terwayctl")
ZONES = ("cn-hangzhou-i", "cn-hangzhou-j")


# --- without root: the emulator's route table actions ------------------------------------------------------


def _vpc(world: RunningEmulator, action: str, **params: str) -> tuple[int, dict[str, Any]]:
    """One signed VPC call over HTTP: (status, reply)."""
    reply = world.call(action, VPC_VERSION, **params)
    return reply.status, dict(reply.body)


def _table_of(world: RunningEmulator, vswitch: str) -> tuple[str, str]:
    _, body = _vpc(world, "DescribeVSwitches", VSwitchId=vswitch)
    table = body["VSwitches"]["VSwitch"][0]["RouteTable"]
    return table["RouteTableId"], table["RouteTableType"]


def test_route_table_create_associate_unassociate_delete(emulator_factory: EmulatorFactory) -> None:
    world = emulator_factory(VSWITCH_SCENARIO)
    assert _table_of(world, "vsw-barei") == ("vtb-cluster", "System")

    code, created = _vpc(world, "CreateRouteTable", VpcId="vpc-cluster", RouteTableName="private")
    assert code == 200 and created["RouteTableId"].startswith("vtb-") and created["VRouterId"] == "vrt-cluster"
    table = created["RouteTableId"]
    assert _vpc(world, "AssociateRouteTable", RouteTableId=table, VSwitchId="vsw-barei")[0] == 200
    assert _table_of(world, "vsw-barei") == (table, "Custom")
    _, listed = _vpc(world, "DescribeRouteTableList", RouteTableId=table)
    [row] = listed["RouterTableList"]["RouterTableListType"]
    assert (row["RouteTableName"], row["RouteTableType"], row["VSwitchIds"]["VSwitchId"]) == (
        "private", "Custom", ["vsw-barei"])
    _, routes = _vpc(world, "DescribeRouteEntryList", RouteTableId=table)
    assert routes["RouteEntrys"]["RouteEntry"] == []  # a new custom table routes nothing to the internet

    def error(action: str, **params: str) -> tuple[int, str]:
        status, body = _vpc(world, action, **params)
        return status, str(body.get("Code"))

    assert error("AssociateRouteTable", RouteTableId="vtb-private", VSwitchId="vsw-barei") == (
        400, "ResourceAlreadyAssociated.RouteTable")
    assert error("AssociateRouteTable", RouteTableId="vtb-cluster", VSwitchId="vsw-halfi") == (
        400, "IncorrectRouteTableType")
    assert error("AssociateRouteTable", RouteTableId="vtb-nope", VSwitchId="vsw-halfi") == (
        404, "InvalidRouteTableId.NotFound")
    assert error("AssociateRouteTable", RouteTableId=table, VSwitchId="vsw-nope") == (404, "InvalidVSwitchId.NotFound")
    assert error("CreateRouteTable", VpcId="vpc-nope") == (404, "InvalidVpcId.NotFound")
    assert error("DeleteRouteTable", RouteTableId=table) == (400, "DependencyViolation.VSwitch")
    assert error("UnassociateRouteTable", RouteTableId=table, VSwitchId="vsw-halfi") == (400, "IncorrectStatus.VSwitch")

    assert _vpc(world, "UnassociateRouteTable", RouteTableId=table, VSwitchId="vsw-barei")[0] == 200
    assert _table_of(world, "vsw-barei") == ("vtb-cluster", "System")
    assert _vpc(world, "CreateRouteEntry", RouteTableId=table, DestinationCidrBlock="0.0.0.0/0",
                NextHopType="NatGateway", NextHopId="ngw-cluster")[0] == 200
    assert error("DeleteRouteTable", RouteTableId=table) == (400, "IncorrectRouteTableStatus.RouteEntryExist")
    assert error("DeleteRouteTable", RouteTableId="vtb-cluster") == (400, "IncorrectRouteTableType")
    _, empty = _vpc(world, "CreateRouteTable", VpcId="vpc-cluster")
    assert _vpc(world, "DeleteRouteTable", RouteTableId=empty["RouteTableId"])[0] == 200
    assert error("DeleteRouteTable", RouteTableId=empty["RouteTableId"]) == (404, "InvalidRouteTableId.NotFound")


# --- without root: the options -------------------------------------------------------------------------------


def test_node_config_values_are_checked_before_anything_is_built(tmp_path: Path) -> None:
    extra = tmp_path / "big.yaml"
    extra.write_text("max_pool_size: 5\n")
    [config] = nodeconfig.parse([f"node2={extra}"], kube=True, nodes=2)
    assert (config.node, config.configmap, dict(config.eni_conf)) == ("node2", "eni-config-node2", {"max_pool_size": 5})
    topology = build_topology(LabSpec(name="n1", nodes=2, zones=ZONES, kube=True))
    assert nodeconfig.eni_conf_for(topology, config) == {"vswitches": {"cn-hangzhou-j": ["vsw-n1podj"]},
                                                        "max_pool_size": 5}
    for values, kube, message in (
        (["node2"], False, "--node-config needs --kube"),
        (["node3"], True, "'node3' is not a node of the lab"),
        (["node1", "node1"], True, "names node1 twice"),
        (["node1="], True, "names no file"),
        ([f"node1={tmp_path / 'missing.yaml'}"], True, "cannot read --config"),
    ):
        with pytest.raises(InvalidInput, match=re.escape(message)):
            nodeconfig.parse(values, kube=kube, nodes=2)


def test_bad_options_exit_2_and_build_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "TERWAYCTL_LAB_DIR": str(tmp_path)}
    for args, message in (
        (("lab", "up", "--lab", "bad1", "--node-config", "node1"), "--node-config needs --kube"),
        (("lab", "up", "--lab", "bad1", "--kube", "--node-config", "node5"), "is not a node of the lab"),
    ):
        done = subprocess.run([*TERWAYCTL, *args], capture_output=True, text=True, timeout=60, check=False, env=env)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert not (tmp_path / "bad1").exists()


# --- as root: a --kube lab with the faults -------------------------------------------------------------------


@pytest.fixture
def lab(make_lab: Callable[..., RunningLab], tmp_path: Path) -> Iterator[RunningLab]:
    """Two nodes (node1 in zone i, node2 in zone j with ConfigMap eni-config-node2: min 0, max 5 IPs), pod a
    on node1; every fault cleared at the end (also when the test fails), the lab taken down by make_lab."""
    made = make_lab(nodes=2, zones=ZONES, kube=True)
    extra = tmp_path / "node2.yaml"
    extra.write_text("min_pool_size: 0\nmax_pool_size: 5\n")
    nodeconfig.apply(made.name, nodeconfig.parse([f"node2={extra}"], kube=True, nodes=2))
    made.pod("a", "node1")
    try:
        yield made
    finally:
        clear_faults(made.name)


def _terwayctl(lab: RunningLab, *args: str) -> subprocess.CompletedProcess[str]:
    """terwayctl on this host, pointed at the lab's cloud and API server by `lab env`, as an operator runs it."""
    exports = lab.cli("env")
    assert exports.code == 0, exports
    env = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in exports.stdout.splitlines())
    return subprocess.run([*TERWAYCTL, *args], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, **env})


def _doctor(lab: RunningLab, check: str) -> dict[str, Any]:
    done = lab.exec("node1", *TERWAYCTL, "doctor", "-o", "json", "--check", check, timeout=60)
    rows = json.loads(done.stdout)
    found = rows["checks"] if isinstance(rows, dict) else rows
    [row] = [r for r in found if r.get("check_id") == check]
    return dict(row)


def _private_vswitch(lab: RunningLab, cidr: str) -> str:
    """A vSwitch nobody routes to the internet yet: created with --no-internet, then removed from eni-config."""
    made = _terwayctl(lab, "vswitch", "add", "--zone", "cn-hangzhou-i", "--create", "--cidr", cidr, "--no-internet",
                      "--no-restart")
    assert made.returncode == 0, (made.stdout, made.stderr)
    found = re.search(r"created vSwitch (vsw-\w+)", made.stdout)
    assert found, made.stdout
    removed = _terwayctl(lab, "vswitch", "remove", found[1], "--no-restart")
    assert removed.returncode == 0, removed.stderr
    return found[1]


def _internet(lab: RunningLab, pod: str) -> bool:
    web = lab.http(pod)
    return web.code == 0 and "you came from 203.0.113.1" in web.stdout


def test_partial_snat_cuts_the_uncovered_part_only(lab: RunningLab) -> None:
    ip = lab.exec("a", "ip", "-4", "-o", "addr", "show", "eth0").stdout.split()[3].split("/")[0]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("192.168.32.0/20")  # the lower half (lowest first)
    assert _internet(lab, "a")
    injected = lab.cli("fault", "partial-snat")  # the pod vSwitch's entry -> its upper half only
    assert injected.code == 0, injected.stderr
    assert "covers 192.168.48.0/20 of" in injected.stdout and "no internet for 192.168.32.0/20" in injected.stdout
    assert not _internet(lab, "a")
    finding = _doctor(lab, "cloud.snat-coverage")
    assert finding["status"] == "fail" and any("only partly covered: 192.168.48.0/20" in e and
                                               "not covered: 192.168.32.0/20" in e for e in finding["evidence"])
    listed = lab.cli("fault", "list", "-o", "json")
    assert any(r["kind"] == "partial-snat" and r["active"] for r in json.loads(listed.stdout))
    assert lab.cli("fault", "clear", "partial-snat").code == 0
    assert _internet(lab, "a")
    assert _doctor(lab, "cloud.snat-coverage")["status"] == "ok"

    # the part covering the pod: it keeps the internet; doctor still names the rest
    assert lab.cli("fault", "partial-snat", "--cidr", "192.168.32.0/20").code == 0
    assert _internet(lab, "a")
    assert _doctor(lab, "cloud.snat-coverage")["status"] == "fail"
    assert lab.cli("fault", "clear").code == 0

    # a vSwitch made after `up`: `vswitch add` names the uncovered part; bad input exits 2
    private = _private_vswitch(lab, "192.168.224.0/21")
    assert lab.cli("fault", "partial-snat", "--vswitch", private, "--cidr", "192.168.224.0/22").code == 0
    refused = _terwayctl(lab, "vswitch", "add", private)
    assert refused.returncode == 2 and "would only partly reach the internet" in refused.stderr, refused.stderr
    assert "uncovered: 192.168.228.0/22" in refused.stderr
    for args in (("--cidr", "10.0.0.0/8"), ("--cidr", "192.168.224.0/21", "--vswitch", private),
                 ("--vswitch", "vsw-nope")):
        bad = lab.cli("fault", "partial-snat", *args)
        assert bad.code == 2 and bad.stderr.startswith("error: "), (args, bad.stderr)


def test_no_route_cuts_the_vswitch_until_cleared(lab: RunningLab) -> None:
    injected = lab.cli("fault", "no-route")
    assert injected.code == 0, injected.stderr
    table = re.search(r"route table (vtb-\w+)", injected.stdout)
    assert table, injected.stdout
    assert not _internet(lab, "a")
    finding = _doctor(lab, "cloud.pod-routes")
    assert finding["status"] == "fail" and any(f"route table {table[1]} (Custom): no 0.0.0.0/0 route" in e
                                               for e in finding["evidence"]), finding
    assert _doctor(lab, "cloud.snat-coverage")["status"] == "ok"  # the SNAT entries are intact
    assert lab.cli("fault", "clear", "no-route").code == 0
    assert _internet(lab, "a")

    private = _private_vswitch(lab, "192.168.240.0/21")
    assert lab.cli("fault", "no-route", "--vswitch", private).code == 0
    refused = _terwayctl(lab, "vswitch", "add", private, "--snat")  # --snat cannot fix a route table
    assert refused.returncode == 2 and "has no 0.0.0.0/0 route" in refused.stderr, refused.stderr
    assert lab.cli("fault", "clear").code == 0
    added = _terwayctl(lab, "vswitch", "add", private, "--snat", "--no-restart")
    assert added.returncode == 0 and f"outbound ok: {private}" in added.stdout, (added.stdout, added.stderr)


def test_node_config_is_read_by_the_nodes_daemon(lab: RunningLab) -> None:
    own = lab.exec("node2", *TERWAYCTL, "daemon", "status", timeout=30)
    assert own.code == 0 and "(min 0, max 5)" in own.stdout, own.stdout
    default = lab.exec("node1", *TERWAYCTL, "daemon", "status", timeout=30)
    assert "(min 2, max 10)" in default.stdout, default.stdout
    listed = _terwayctl(lab, "vswitch", "list")
    assert listed.returncode == 0, listed.stderr
    assert "node(s) of zone cn-hangzhou-j (node2) use the vSwitches of ConfigMap eni-config-node2" in listed.stdout
    topology = LabDir(lab.name).topology()
    podj = next(v.id for v in topology.pod_vswitches() if v.zone == "cn-hangzhou-j")
    own_list = _terwayctl(lab, "vswitch", "list", "--configmap", "eni-config-node2", "-o", "json")
    assert [r["vswitch_id"] for r in json.loads(own_list.stdout)] == [podj]
