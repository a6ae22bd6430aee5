"""`terwayctl doctor` inside a lab node, as a user runs it: `terwayctl lab exec NODE -- terwayctl doctor`.

One shared 2-node lab (pods `a` on node1, `b` on node2): healthy, doctor finds no failure; each fault
`lab fault` can inject makes doctor fail the right check with the right evidence, and clearing it
makes that check ok again. The node identity (instance, eni_conf, CNI dirs, daemon socket) comes
from the environment `lab exec` sets; doctor is given no path. Root only (the lab needs it).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from terwayctl.lab import FAULT_KINDS, LabDir, clear_faults, inject_fault, list_pods
from terwayctl.lab.model import Topology
from tests.fixtures.lab import RunningLab

TERWAYCTL = [shutil.which("terwayctl") or sys.executable, *([] if shutil.which("terwayctl") else ["-m", "terwayctl"])]
INTERNET = "203.0.113.10:80"
CLUSTER_CHECKS = ("cluster.daemonset", "cluster.eni-config", "cluster.max-pods", "cluster.ip-errors")


@dataclass(frozen=True)
class Doctor:
    code: int
    rows: list[dict[str, Any]]
    stderr: str

    def status(self, check_id: str) -> str:
        return str(self.find(check_id)["status"])

    def find(self, check_id: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["check_id"] == check_id)

    def failed(self) -> list[str]:
        return [r["check_id"] for r in self.rows if r["status"] == "fail"]


def doctor(lab: RunningLab, node: str, *args: str) -> Doctor:
    """`terwayctl lab exec NODE -- terwayctl doctor -o json ARGS` (two processes, as a user runs it)."""
    done = lab.exec(node, *TERWAYCTL, "doctor", "-o", "json", *args, timeout=60)
    try:
        rows = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"doctor printed no JSON (exit {done.code}): {done.stdout!r} {done.stderr!r}") from None
    return Doctor(done.code, rows, done.stderr)


def doctor_table(lab: RunningLab, node: str, *args: str) -> tuple[int, str]:
    done = lab.exec(node, *TERWAYCTL, "doctor", *args, timeout=60)
    return done.code, done.stdout


def _counts() -> tuple[int, int, int]:
    """How many cloud checks, node checks and probes doctor declares (other changes add checks)."""
    from terwayctl.doctor import CHECKS

    probes = sum(1 for c in CHECKS if c.id.startswith("probe."))
    return (sum(1 for c in CHECKS if c.scope.value == "cloud"),
            sum(1 for c in CHECKS if c.scope.value == "node") - probes, probes)


@pytest.fixture(scope="module")
def world(shared_lab: RunningLab) -> Topology:
    return LabDir(shared_lab.name).topology()


@pytest.fixture
def lab(shared_lab: RunningLab) -> Iterator[RunningLab]:
    """The shared lab, every fault cleared after the test (also when it fails)."""
    try:
        yield shared_lab
    finally:
        clear_faults(shared_lab.name)


# --- healthy ------------------------------------------------------------------------------------------


def test_healthy_lab_has_no_failure(lab: RunningLab) -> None:
    for node in ("node1", "node2"):
        found = doctor(lab, node)
        assert found.code == 0 and found.failed() == [], (found.failed(), [r for r in found.rows if r["status"] == "fail"])
        by_status = {r["check_id"]: r["status"] for r in found.rows}
        # cloud and node checks run for real (the environment of `lab exec` names the node) and pass
        for check_id, status in by_status.items():
            if check_id.startswith(("cloud.", "node.")):
                assert status == "ok", found.find(check_id)
        # no API server in the lab: the cluster checks say so; no --probe: the probes say so
        for check_id in CLUSTER_CHECKS:
            assert found.status(check_id) == "skip"
            assert found.find(check_id)["evidence"][0].startswith("no cluster: ")
        assert found.find("probe.external")["evidence"] == ["active probes are off (pass --probe)"]
        inputs = found.find("cloud.snat-coverage")["evidence"][0]
        # from the environment `lab exec` sets: the evidence names the variables, not flags nobody typed
        assert inputs == (f"inputs: TERWAYCTL_ENI_CONF {LabDir(lab.name).node_dir(node) / 'eni_conf.json'}; "
                          "1 instance(s) from TERWAYCTL_INSTANCE_ID")
    for scope in ("cloud", "node"):
        code, table = doctor_table(lab, "node1", "--scope", scope)
        assert code == 0, table
        assert not [line for line in table.splitlines() if line.startswith(("✗", "!"))], table
        cloud, node, probes = _counts()
        expected = f"{cloud} ok, 0 warn, 0 fail, 0 skipped" if scope == "cloud" else \
            f"{node} ok, 0 warn, 0 fail, {probes} skipped"
        assert table.splitlines()[-1] == expected, table


def test_every_fault_kind_is_covered() -> None:
    assert set(FAULT_KINDS) == {"no-snat", "exhaust", "rp-filter", "forward-drop", "docker-port", "del-rule",
                                "forward-rule", "leaked-rule", "leaked-eni", "partial-snat", "no-route"}
    assert set(FAULT_KINDS) == set(EXPECTED)


# --- each fault: doctor fails the right check with the right evidence, and is ok once cleared --------------


@dataclass(frozen=True)
class Expected:
    check_id: str
    target: Callable[[RunningLab], str | None]
    """The fault's target (None: the lab's default)."""
    evidence: Callable[[Topology, dict[str, Any]], list[str]]
    """Lines the failing finding's evidence must contain (from the topology and the fault's detail)."""
    fix: Callable[[Topology, dict[str, Any]], str]
    """How the fix starts."""


def _pod_vsw(t: Topology) -> str:
    return t.pod_vswitches()[0].id


def _pod_a(lab: RunningLab) -> str:
    return "a"


def _default(lab: RunningLab) -> None:
    return None


EXPECTED: dict[str, Expected] = {
    "no-snat": Expected(
        "cloud.snat-coverage", _default,
        lambda t, d: [f"{_pod_vsw(t)} (pod, 192.168.32.0/19, cn-hangzhou-i): no SNAT entry",
                      f"pods on {_pod_vsw(t)} have no internet access (Terway never masquerades pods)"],
        lambda t, d: (f"aliyun vpc CreateSnatEntry --RegionId cn-hangzhou --SnatTableId {t.snat_table} "
                      f"--SourceVSwitchId {_pod_vsw(t)} --SnatIp {t.nat_eip}")),
    "exhaust": Expected(
        "cloud.vswitch-free-ips", _default,
        lambda t, d: [f"{_pod_vsw(t)} (pod, cn-hangzhou-i, 192.168.32.0/19): 0 free IPs (empty, threshold 64)",
                      "pods on nodes using an empty vSwitch stay in ContainerCreating (InvalidVSwitchId.IpNotEnough)"],
        lambda t, d: "add a pod vSwitch in the same zone (terwayctl vswitch add"),
    "rp-filter": Expected(
        "node.rp-filter", _default,
        lambda t, d: ["net.ipv4.conf.all.rp_filter = 1 in netns current",
                      "net.ipv4.conf.default.rp_filter = 1 in netns current"],
        lambda t, d: "sysctl -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0"),
    "forward-drop": Expected(
        "node.forward-policy", _default,
        lambda t, d: ["forward hook, IPv4 in netns current: nft ip filter FORWARD (prio 0, policy drop, 0 rule(s))",
                      "IPv4 pod -> VPC/internet (new connection), iif cali"],
        lambda t, d: "iptables-nft -I FORWARD -i cali+ -j ACCEPT\niptables-nft -I FORWARD -o cali+ -j ACCEPT"),
    "forward-rule": Expected(
        "node.forward-policy", _default,
        lambda t, d: ["forward hook, IPv4 in netns current: nft inet hostfw forward (prio 0, policy accept, 1 rule(s))"],
        lambda t, d: 'nft insert rule inet hostfw forward iifname "cali*" accept'),
    "leaked-rule": Expected(
        "node.datapath-rules", _default,
        lambda t, d: [f"{d['ip']}: ip rules left behind: no allocation holds this IP"],
        lambda t, d: f"ip rule del from {d['ip']} lookup {d['table']} priority 2048"),
    "leaked-eni": Expected(
        "cloud.leaked-enis", _default,
        lambda t, d: [f"{d['eni']} ({_pod_vsw(t)}, 1 IP(s)): Available, created by the daemon of i-deleted-node "
                      "(terway.node), attached to nothing"],
        lambda t, d: f"aliyun ecs DeleteNetworkInterface --RegionId cn-hangzhou --NetworkInterfaceId {d['eni']}"),
    "partial-snat": Expected(
        "cloud.snat-coverage", _default,
        lambda t, d: [f"{_pod_vsw(t)} (pod, 192.168.32.0/19, cn-hangzhou-i): only partly covered: 192.168.48.0/20 by "
                      f"{d['entry_id']} in {t.snat_table} (-> {t.nat_eip}); not covered: 192.168.32.0/20",
                      f"pods on {_pod_vsw(t)} (with an address in the part not covered) have no internet access"],
        lambda t, d: (f"aliyun vpc CreateSnatEntry --RegionId cn-hangzhou --SnatTableId {t.snat_table} "
                      f"--SourceVSwitchId {_pod_vsw(t)} --SnatIp {t.nat_eip}")),
    "no-route": Expected(
        "cloud.pod-routes", _default,
        lambda t, d: [f"{_pod_vsw(t)} (pod): route table {d['route_table_id']} (Custom): no 0.0.0.0/0 route, not to "
                      f"a NAT gateway: pods on {_pod_vsw(t)} never reach the SNAT entries of {t.nat_id}"],
        lambda t, d: (f"aliyun vpc CreateRouteEntry --RegionId cn-hangzhou --RouteTableId {d['route_table_id']} "
                      f"--DestinationCidrBlock 0.0.0.0/0 --NextHopType NatGateway --NextHopId {t.nat_id}")),
    "docker-port": Expected(
        "node.hostport-published", _default,
        lambda t, d: ["tcp/8080 -> 172.17.0.2:80 (nft ip nat DOCKER) in netns current"],
        lambda t, d: "run the service as a pod with hostPort"),
    "del-rule": Expected(
        "node.datapath-rules", _pod_a,
        lambda t, d: [f"{d['ip']} (default/a): missing ip rule 'from {d['ip']} lookup {d['table']}' (priority 2048, "
                      f"the table of "],
        lambda t, d: f"ip rule add from {d['ip']} lookup {d['table']} priority 2048"),
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_doctor_finds_the_fault(lab: RunningLab, world: Topology, kind: str) -> None:
    expected = EXPECTED[kind]
    record = inject_fault(lab.name, kind, expected.target(lab))
    found = doctor(lab, "node1")
    assert found.code == 1, found.rows
    failed = found.failed()
    if kind == "exhaust" and "node.daemon-ip-errors" in failed:
        # the daemon may have tried to grow its pool since: the same fault, seen from the node
        assert "InvalidVSwitchId.IpNotEnough" in found.find("node.daemon-ip-errors")["evidence"][0], found.rows
        failed.remove("node.daemon-ip-errors")
    assert failed == [expected.check_id], found.rows  # that check, and no other
    finding = found.find(expected.check_id)
    for line in expected.evidence(world, record.detail):
        assert any(e.startswith(line) for e in finding["evidence"]), (line, finding["evidence"])
    assert finding["fix"].startswith(expected.fix(world, record.detail)), finding["fix"]
    if kind == "no-snat":
        # the lab's nodes have no EIP, so the node-reaches-but-pods-do-not trap is not sprung
        assert found.find("cloud.eip-trap")["evidence"] == ["none of the 1 instance(s) has an EIP"]
    if kind == "docker-port":
        assert finding["evidence"][-1].startswith(
            "shared-ENI mode (eniip, from the daemon's STATUS): pods on this node cannot reach tcp/8080: after the DNAT")
    clear_faults(lab.name, kind)
    again = doctor(lab, "node1", "--check", expected.check_id)
    assert again.code == 0 and again.status(expected.check_id) == "ok", again.rows


def test_a_fault_shows_in_the_table_as_a_user_sees_it(lab: RunningLab, world: Topology) -> None:
    inject_fault(lab.name, "rp-filter", "node2")
    code, table = doctor_table(lab, "node2", "--scope", "node")
    assert code == 1
    lines = table.splitlines()
    at = lines.index("✗ node.rp-filter: Reverse-path filtering is off")
    assert lines[at + 1:at + 3] == ["    net.ipv4.conf.all.rp_filter = 1 in netns current",
                                    "    net.ipv4.conf.default.rp_filter = 1 in netns current (what new pod veths get)"]
    fix = next(line for line in lines[at:] if line.startswith("    fix: "))
    # 'default' propagated to the interfaces never set by hand (the ENI, the pod veths): each is named too
    assert fix.startswith("    fix: sysctl -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0"), fix
    assert fix.endswith("; persist it in /etc/sysctl.d/99-terway.conf so a reboot keeps it"), fix
    _, node, probes = _counts()
    assert lines[-1] == f"{node - 1} ok, 0 warn, 1 fail, {probes} skipped"
    # the fault is on node2 only
    assert doctor(lab, "node1", "--check", "node.rp-filter").status("node.rp-filter") == "ok"


# --- --probe from a pod to the lab's internet -------------------------------------------------------------


def test_probe_from_a_pod_to_the_internet(lab: RunningLab, world: Topology) -> None:
    pod = next(p for p in list_pods(lab.name) if p.name == "a")
    probe = ("--check", "probe.external", "--probe", "--probe-from", pod.ns, "--external-target", INTERNET,
             "--probe-timeout", "1")
    healthy = doctor(lab, "node1", *probe)
    assert healthy.code == 0 and healthy.status("probe.external") == "ok", healthy.rows
    assert f"from pod netns {pod.ns}: connected" in healthy.find("probe.external")["evidence"][1]

    inject_fault(lab.name, "no-snat")
    broken = doctor(lab, "node1", *probe)
    assert broken.code == 1, broken.rows
    evidence = broken.find("probe.external")["evidence"]
    assert evidence[0].startswith(f"tcp connect {INTERNET} from node netns current: connected")
    assert evidence[1].startswith(f"tcp connect {INTERNET} from pod netns {pod.ns}: no answer within 1s")
    assert f"src {pod.ip}" in evidence[1]
    assert "not on the node: node.forwarding, node.rp-filter, node.forward-policy are ok in netns current" in evidence
    assert evidence[-1] == "failed hop: NAT (the pod's vSwitch has no SNAT entry)"
    assert evidence[-2] == (
        f"where: the VPC's NAT gateway: the pod's source {pod.ip} is in {_pod_vsw(world)} (192.168.32.0/19), which "
        "has no SNAT entry, so its packets are not translated and get no answer (cloud.snat-coverage)")
    assert broken.find("probe.external")["fix"] == (
        f"aliyun vpc CreateSnatEntry --RegionId cn-hangzhou --SnatTableId {world.snat_table} "
        f"--SourceVSwitchId {_pod_vsw(world)} --SnatIp {world.nat_eip}")


# --- exclusive ENI: a docker-published port is a warning, not a failure ------------------------------------


def test_docker_port_in_exclusive_eni_mode_warns(make_lab: Callable[..., RunningLab]) -> None:
    lab = make_lab(nodes=1, mode="eni")
    inject_fault(lab.name, "docker-port")
    found = doctor(lab, "node1", "--check", "node.hostport-published")
    assert found.code == 0 and found.status("node.hostport-published") == "warn", found.rows
    assert found.find("node.hostport-published")["evidence"][-1].startswith(
        "eni mode (from the daemon's STATUS): pods reach the node's address through the VPC like any other host")
