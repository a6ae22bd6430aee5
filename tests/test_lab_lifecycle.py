"""Labs side by side, `lab down` after a crash, exclusive-ENI mode, and bad input (exit 2, error + hint)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from terwayctl.lab import LabDir, LabSpec, build_topology, down, status
from terwayctl.lab.lifecycle import supervisor_marker
from terwayctl.lab.procs import alive
from tests.conftest import CliResult
from tests.fixtures.lab import RunningLab, leftovers


def test_two_labs_side_by_side_then_one_goes(make_lab: Callable[..., RunningLab], lab_root: Path) -> None:
    one, two = make_lab(nodes=1), make_lab(nodes=1)
    ip_one, ip_two = one.pod("p", "node1"), two.pod("p", "node1")
    assert ip_one == ip_two  # the same plan in each lab: same addresses, separate namespaces
    assert one.http("p").code == 0 and two.http("p").code == 0
    down(one.name)
    assert leftovers(one.name, lab_root) == []
    assert status(two.name).healthy
    assert two.http("p").code == 0


def test_down_after_the_supervisor_was_killed(make_lab: Callable[..., RunningLab], lab_root: Path) -> None:
    lab = make_lab(nodes=2)
    lab.pod("p", "node1")
    state = LabDir(lab.name).read_state()
    os.kill(state.supervisor_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and alive(state.supervisor_pid, supervisor_marker(lab.name)):
        time.sleep(0.05)
    broken = lab.cli("status")
    assert broken.code == 1 and "NOT RUNNING" in broken.stdout
    removed = lab.cli("down")
    assert removed.code == 0 and "2 process(es)" in removed.stdout, removed
    assert leftovers(lab.name, lab_root) == []


def test_down_finds_namespaces_without_a_lab_dir(lab_root: Path) -> None:
    from terwayctl.kernel import netns

    name = "tcrash1"
    netns.create(f"twlab-{name}-node1")  # as a crash in the middle of `lab up` would leave it
    try:
        report = down(name)
        assert report.namespaces == [f"twlab-{name}-node1"]
        assert down(name).anything is False
    finally:
        netns.delete(f"twlab-{name}-node1")


def test_exclusive_eni_mode(make_lab: Callable[..., RunningLab]) -> None:
    lab = make_lab(nodes=1, mode="eni", instance_type="ecs.g7.xlarge")
    ip = lab.pod("x", "node1")
    assert lab.http("x").code == 0
    assert lab.ping("node1", ip)


def test_external_daemon_node_and_its_metadata_service(make_lab: Callable[..., RunningLab]) -> None:
    lab = make_lab(nodes=2, external_daemons=("node1",))
    result = status(lab.name)
    assert [(n.name, n.external, n.ready) for n in result.nodes] == [("node1", True, False), ("node2", False, True)]
    assert result.healthy  # an external daemon does not count
    assert "external" in lab.cli("status").stdout
    topo = LabDir(lab.name).topology()
    node1 = topo.node("node1")
    expected = {"instance-id": node1.instance_id, "zone-id": node1.zone, "vswitch-id": node1.vswitch_id,
                "region-id": topo.region, "instance/instance-type": topo.instance_type}
    for key, value in expected.items():
        got = lab.exec("node1", "curl", "-s", "-f", "-m", "2", f"http://100.100.100.200/latest/meta-data/{key}")
        assert (got.code, got.stdout) == (0, value), key
    token = lab.exec("node1", "curl", "-s", "-f", "-X", "PUT", "http://100.100.100.200/latest/api/token")
    assert token.code == 0 and token.stdout
    assert lab.exec("node1", "curl", "-s", "-f", "http://100.100.100.200/latest/meta-data/nope").code != 0
    # node2's service answers for node2
    node2 = lab.exec("node2", "curl", "-s", "-m", "2", "http://100.100.100.200/latest/meta-data/instance-id")
    assert node2.stdout == topo.node("node2").instance_id
    assert lab.pod("p", "node2")  # the lab's own daemon still serves node2


def test_external_daemon_must_name_a_node() -> None:
    from terwayctl.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="--external-daemon names no node"):
        build_topology(LabSpec(name="x", nodes=1, external_daemons=("node2",)))


@pytest.mark.parametrize(("args", "message"), [
    (["up", "--name", "Bad-Name"], "invalid lab name"),
    (["up", "--name", "ok", "--nodes", "0"], "--nodes must be 1 to 8"),
    (["up", "--name", "ok", "--mode", "ipvlan"], "--mode must be eniip or eni"),
    (["up", "--name", "ok", "--zones", "us-east-1a"], "is not a zone of the lab's region"),
    (["up", "--name", "ok", "--instance-type", "ecs.nope"], "has no ENI quota"),
    (["up", "--name", "ok", "--vpc", "10.0.0.1/8"], "has host bits set"),
    (["status", "--name", "nolab"], "lab nolab is not up"),
    (["pods", "--name", "nolab"], "lab nolab is not up"),
    (["pod", "add", "UPPER", "--node", "node1", "--name", "nolab"], "is not up"),
    (["exec", "x", "--name", "nolab", "--", "true"], "is not up"),
    (["fault", "list", "--name", "nolab"], "is not up"),
])
def test_bad_input_exits_2_with_error_and_hint(
    cli: Callable[..., CliResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str,
) -> None:
    monkeypatch.setenv("TERWAYCTL_LAB_DIR", str(tmp_path))
    result = cli("lab", *args)
    assert result.exit_code == 2, result
    assert message in result.stderr and "error: " in result.stderr and "hint: " in result.stderr, result.stderr


def test_bad_input_on_a_running_lab(make_lab: Callable[..., RunningLab]) -> None:
    lab = make_lab(nodes=1)
    for args, message in (
        (("up",), "already exists"),
        (("pod", "add", "p", "--node", "node7"), "has no node 'node7'"),
        (("pod", "add", "Bad_Pod", "--node", "node1"), "invalid pod name"),
        (("pod", "add", "p", "--node", "node1", "--annotation", "novalue"), "KEY=VALUE"),
        (("pod", "add", "p", "--node", "node1", "--bandwidth-in", "fast"), "fast"),
        (("pod", "del", "ghost"), "has no pod 'ghost'"),
        (("exec", "ghost", "--", "true"), "has no node or pod 'ghost'"),
    ):
        result = lab.cli(*args)
        assert result.code == 2 and message in result.stderr and "hint: " in result.stderr, (args, result)
    assert lab.cli("pods").stdout.splitlines()[1:] == []  # nothing half-made


def test_topology_is_pure_and_round_trips() -> None:
    from terwayctl.lab import Topology

    topo = build_topology(LabSpec(name="x", nodes=3, zones=("cn-hangzhou-i", "cn-hangzhou-j"), snat=False))
    assert [n.zone for n in topo.nodes] == ["cn-hangzhou-i", "cn-hangzhou-j", "cn-hangzhou-i"]
    assert {v.id: v.snat for v in topo.vswitches} == {"vsw-xnodei": True, "vsw-xpodi": False,
                                                      "vsw-xnodej": True, "vsw-xpodj": False}
    assert Topology.from_json(topo.to_json()) == topo
    assert topo.node_eni_conf(topo.nodes[1])["vswitches"] == {"cn-hangzhou-j": ["vsw-xpodj"]}


def test_ip_stack_dual_gives_the_lab_a_dual_stack_vpc() -> None:
    """`lab up --config` with ip_stack dual: an IPv6 /64 on every vSwitch, which the daemons need to
    run dual stack (docs/datapath.md, "Dual stack"); IPv4 labs stay as they were."""
    from terwayctl.emulator.world import parse_scenario

    dual = build_topology(LabSpec(name="x", nodes=1, eni_conf={"ip_stack": "dual"}))
    world = parse_scenario(dual.scenario())
    assert {v.id: v.ipv6_cidr for v in world.vswitches} == {"vsw-xnodei": "2001:db8::/64",
                                                           "vsw-xpodi": "2001:db8:0:1::/64"}
    plain = build_topology(LabSpec(name="x", nodes=1))
    assert all(not v.ipv6_cidr for v in parse_scenario(plain.scenario()).vswitches)
