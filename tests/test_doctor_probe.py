"""Active probes: the diagnosis from fake attempts, and real probes between namespaces we create."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from terwayctl.doctor import DoctorOptions, Status, Target, real_inputs, run
from terwayctl.kernel import netns as nsmod
from tests.fixtures.doctor import FakeCloud, FakeNode, FakeProber, RunOne, instance, nat, snat_entry, vswitch
from tests.fixtures.netns import NetnsFactory

TARGET = Target("198.51.100.1", 8443)


def test_probes_skip_without_probe_or_target(run_one: RunOne) -> None:
    off = run_one("probe.external", node=FakeNode(), external_target=TARGET)
    assert off.status is Status.SKIP and off.evidence == ("active probes are off (pass --probe)",)
    no_target = run_one("probe.external", node=FakeNode(), prober=FakeProber())
    assert no_target.status is Status.SKIP and "--external-target" in no_target.evidence[0]


def test_diagnosis(run_one: RunOne) -> None:
    def status_and_last(prober: FakeProber) -> tuple[Status, str]:
        found = run_one("probe.external", node=FakeNode(), prober=prober, external_target=TARGET)
        if found.status is Status.FAIL:
            assert found.evidence[-1].startswith("failed hop: ")
            return found.status, found.evidence[-2]
        return found.status, found.evidence[-1]

    assert status_and_last(FakeProber())[0] is Status.OK
    status, last = status_and_last(FakeProber(pod_route=None))
    assert status is Status.FAIL and last.startswith("hop 1 (pod): no route to 198.51.100.1")
    found = run_one("probe.external", node=FakeNode(), prober=FakeProber(pod_reaches=False), external_target=TARGET)
    assert found.status is Status.FAIL
    assert "the node reaches the external target 198.51.100.1:8443 but the pod side" in found.evidence[2]
    assert found.evidence[3] == ("not on the node: node.forwarding, node.rp-filter, node.forward-policy are ok in "
                                 "netns fake")
    status, last = status_and_last(FakeProber(node_reaches=False, pod_reaches=False))
    assert status is Status.FAIL and "the node itself cannot reach" in last
    found = run_one("probe.hostport", node=FakeNode(), prober=FakeProber(pod_reaches=False),
                    hostport_target=Target("10.0.0.1", 30080))
    assert found.status is Status.FAIL and "the node reaches the hostPort 10.0.0.1:30080" in found.evidence[2]
    assert "SNAT" not in found.evidence[2]


def test_where_the_pod_side_breaks(run_one: RunOne, tmp_path: Path) -> None:
    """Node reached, pod side not: the probe names the node check that fails, or the pod vSwitch without SNAT."""
    no_forwarding = FakeNode(sysctls={**FakeNode().sysctls, "net.ipv4.ip_forward": "0"})
    found = run_one("probe.external", node=no_forwarding, prober=FakeProber(pod_reaches=False), external_target=TARGET)
    assert found.evidence[3] == "where: on the node: node.forwarding fails (net.ipv4.ip_forward = 0 in netns fake)"
    assert found.fix is not None and found.fix.startswith("sysctl -w net.ipv4.ip_forward=1")

    conf = tmp_path / "eni_conf.json"
    conf.write_text(json.dumps({"vswitches": {"z1": ["vsw-pod1"]}}))
    cloud = FakeCloud(vswitches=[vswitch("vsw-node1", "z1", "10.0.0.0/24"), vswitch("vsw-pod1", "z1", "10.0.32.0/19")],
                      instances=[instance("i-1", "z1", "vsw-node1")], nats=[nat()],
                      snat={"stb-1": [snat_entry("snat-node", vsw="vsw-node1")]})
    from_pod = FakeProber(pod_reaches=False, pod_route="198.51.100.1 via 169.254.1.1 dev eth0 src 10.0.32.7 uid 0")
    found = run_one("probe.external", node=FakeNode(), cloud=cloud, prober=from_pod, external_target=TARGET,
                    eni_conf_file=conf, instance_ids=("i-1",))
    assert found.status is Status.FAIL
    assert found.evidence[-1] == "failed hop: NAT (the pod's vSwitch has no SNAT entry)"
    assert found.evidence[-2] == (
        "where: the VPC's NAT gateway: the pod's source 10.0.32.7 is in vsw-pod1 (10.0.32.0/19), which has no SNAT "
        "entry, so its packets are not translated and get no answer (cloud.snat-coverage)")
    assert found.fix == ("aliyun vpc CreateSnatEntry --RegionId cn-test --SnatTableId stb-1 --SourceVSwitchId vsw-pod1 "
                         "--SnatIp 203.0.113.10")
    temporary = FakeProber(pod_reaches=False, pod_route="198.51.100.1 via 169.254.1.1 dev eth0 src 169.254.199.9")
    found = run_one("probe.external", node=FakeNode(), cloud=cloud, prober=temporary, external_target=TARGET,
                    eni_conf_file=conf, instance_ids=("i-1",))
    assert found.evidence[-2].startswith("where: the VPC: the source 169.254.199.9 belongs to no vSwitch of the VPC")
    assert found.evidence[-1].startswith("failed hop: VPC router")


# --- end to end: node and "internet" namespaces, a temporary probe namespace -------------------------------


def _sh(ns: str, *argv: str) -> None:
    subprocess.run(nsmod.command(ns, list(argv)), check=True, capture_output=True, timeout=10)


@dataclass
class ProbeWorld:
    node: str
    internet: str


@pytest.fixture
def probe_world(netns: NetnsFactory) -> Iterator[ProbeWorld]:
    """node (10.99.0.1, default via the internet) -- internet (10.99.0.2, 198.51.100.1:8443 listening)."""
    node, internet = netns(), netns()
    _sh(node, "ip", "link", "add", "wan", "type", "veth", "peer", "name", "eth0", "netns", internet)
    for ns, ifname, address in ((node, "wan", "10.99.0.1/24"), (internet, "eth0", "10.99.0.2/24")):
        _sh(ns, "ip", "addr", "add", address, "dev", ifname)
        _sh(ns, "ip", "link", "set", ifname, "up")
        _sh(ns, "ip", "link", "set", "lo", "up")
    _sh(internet, "ip", "addr", "add", "198.51.100.1/32", "dev", "lo")
    _sh(node, "ip", "route", "add", "default", "via", "10.99.0.2")
    nsmod.write_sysctl(node, "net.ipv4.ip_forward", "1")
    server = nsmod.socket_in(internet, socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind(("198.51.100.1", 8443))
        server.listen(16)
        yield ProbeWorld(node, internet)
    finally:
        server.close()


def _probe(world: ProbeWorld, **options: object) -> tuple[Status, tuple[str, ...]]:
    opts = DoctorOptions(check_ids=("probe.external",), netns=world.node, probe=True, external_target=TARGET,
                         probe_timeout=1.0, **options)  # type: ignore[arg-type]
    found = run(opts, real_inputs(opts)).finding("probe.external")
    assert not nsmod.list_named("twdoctor-"), "the temporary namespace was left behind"
    return found.status, found.evidence


def test_probe_from_a_temporary_namespace(probe_world: ProbeWorld) -> None:
    _sh(probe_world.internet, "ip", "route", "add", "169.254.199.0/24", "via", "10.99.0.1")
    status, evidence = _probe(probe_world)
    assert status is Status.OK, evidence
    assert evidence[0].startswith(f"tcp connect 198.51.100.1:8443 from node netns {probe_world.node}: connected")
    assert "from temporary netns twdoctor-" in evidence[1] and ": connected" in evidence[1]


def test_probe_without_a_return_path_blames_the_translation(probe_world: ProbeWorld) -> None:
    # the "internet" does not route the pod's source back: what a missing SNAT entry looks like
    status, evidence = _probe(probe_world, probe_source="169.254.199.7")
    assert status is Status.FAIL
    assert "(source 169.254.199.7): no answer within 1s" in evidence[1]
    assert "the node reaches the external target 198.51.100.1:8443 but the pod side does not" in evidence[2]


def test_probe_from_a_pod_namespace_blocked_by_forward_drop(probe_world: ProbeWorld, netns: NetnsFactory,
                                                            tmp_path: Path) -> None:
    pod = netns()
    _sh(probe_world.node, "ip", "link", "add", "calipod", "type", "veth", "peer", "name", "eth0", "netns", pod)
    _sh(probe_world.node, "ip", "link", "set", "calipod", "up")
    _sh(probe_world.node, "ip", "route", "add", "10.99.1.5/32", "dev", "calipod")
    _sh(pod, "ip", "addr", "add", "10.99.1.5/32", "dev", "eth0")
    _sh(pod, "ip", "link", "set", "eth0", "up")
    _sh(pod, "ip", "route", "add", "10.99.0.1/32", "dev", "eth0")
    _sh(pod, "ip", "route", "add", "default", "via", "10.99.0.1", "dev", "eth0")
    _sh(probe_world.internet, "ip", "route", "add", "10.99.1.0/24", "via", "10.99.0.1")
    status, evidence = _probe(probe_world, probe_from=pod)
    assert status is Status.OK, evidence
    _sh(probe_world.node, "nft", "add table inet filter; add chain inet filter forward "
        "{ type filter hook forward priority 0; policy drop; }")
    status, evidence = _probe(probe_world, probe_from=pod)
    assert status is Status.FAIL
    assert evidence[1].startswith(f"tcp connect 198.51.100.1:8443 from pod netns {pod}: no answer")
    empty = DoctorOptions(check_ids=("probe.external",), netns=pod, probe=True, probe_from=pod,
                          external_target=Target("203.0.113.99"), probe_timeout=1.0)
    _sh(pod, "ip", "route", "del", "default")
    found = run(empty, real_inputs(empty)).finding("probe.external")
    assert found.status is Status.FAIL
    assert found.evidence[-2].startswith(f"hop 1 (pod netns {pod}): no route to 203.0.113.99")
    assert found.evidence[-1] == "failed hop: pod (its namespace has no route)"
