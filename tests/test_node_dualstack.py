"""Dual stack end to end (docs/node.md "Dual stack"): the emulator with IPv6 vSwitches, the VPC router
namespace routing both families, daemons with eni_conf `ip_stack: dual` and the real `terway` plugin.
Pods get one IPv4 and one IPv6 address and reach each other over both on one node and across nodes;
a node whose type is not dual-stack eligible runs IPv4 only and says so; a vSwitch without IPv6 is
refused; DEL leaves nothing of either family; a lost AssignIpv6Addresses reply is resolved as the
IPv4 one; CHECK and `ipam check` judge both families; the IPv6 internet only with bandwidth."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

import pytest

from terwayctl.kernel import netns as nsmod
from terwayctl.lab.vpcsim6 import INTERNET_HOST, connect_internet
from terwayctl.node.config import NodeIdentity
from terwayctl.node.ipv6 import addresses as ipv6_addresses
from tests.fixtures.dualstack import ip, ping6
from tests.fixtures.netns import NetnsFactory, ping
from tests.fixtures.node import (
    ENI_CONF,
    SCENARIO,
    TERWAY,
    ZONE,
    CniResult,
    Lab,
    Node,
    Pod,
    new_client,
    running_lab,
    wait_for,
)

DUAL_CONF: dict[str, Any] = {**ENI_CONF, "ip_stack": "dual"}


def _scenario() -> dict[str, Any]:
    s = copy.deepcopy(SCENARIO)
    s["vpcs"][0]["ipv6"] = True
    s["vswitches"][0]["ipv6_cidr_block"] = 0
    s["vswitches"][1]["ipv6_cidr_block"] = 1
    s["vswitches"].append({"id": "vsw-pods4", "zone": ZONE, "cidr": "10.0.64.0/19"})  # no IPv6
    s["instances"].append({"id": "i-node3", "type": "ecs.g6.large", "vswitch": "vsw-nodes",
                           "primary_eni": "eni-node3"})  # 6 IPv4 and 1 IPv6 per ENI: not eligible
    return s


@pytest.fixture
def dual_lab(netns: NetnsFactory, tmp_path: Path) -> Iterator[Lab]:
    """The node fixtures' lab with a dual-stack VPC: three nodes (i-node3 an ineligible type)."""
    with running_lab(netns, tmp_path, _scenario(), nodes=3) as lab:
        yield lab


def addresses(result: CniResult) -> tuple[IPv4Address, IPv6Address]:
    found = [r["address"].split("/")[0] for r in result.out["ips"]]
    v4 = [IPv4Address(a) for a in found if ":" not in a]
    v6 = [IPv6Address(a) for a in found if ":" in a]
    assert len(v4) == 1 and len(v6) == 1, result.out
    return v4[0], v6[0]


def start_dual(node: Node, **overrides: Any) -> Any:
    return node.start(eni_conf=DUAL_CONF, ip_stack="dual", **overrides)


def v6_state(node: Node) -> str:
    return ip(node.ns, "-6", "rule") + ip(node.ns, "-6", "route", "show", "table", "all")


def test_dual_stack_pods_reach_each_other_over_both_families_on_one_node_and_across_nodes(dual_lab: Lab) -> None:
    one, two = dual_lab.node(0), dual_lab.node(1)
    start_dual(one)
    start_dual(two)
    a, b, c = one.pod("a"), one.pod("b"), two.pod("c")
    ra, rb, rc = one.cni("ADD", a), one.cni("ADD", b), two.cni("ADD", c)
    assert ra.code == 0 and rb.code == 0 and rc.code == 0, (ra.out, rb.out, rc.out)
    (a4, a6), (b4, b6), (c4, c6) = addresses(ra), addresses(rb), addresses(rc)
    assert all(v in IPv6Network("2001:db8:0:1::/64") for v in (a6, b6, c6))  # vsw-pods' /64
    assert len({a6, b6, c6}) == 3
    assert {"dst": "::/0", "gw": "fe80::1"} in ra.out["routes"]
    assert ping6(a.ns, b6) and ping6(b.ns, a6)  # one node
    assert ping6(a.ns, c6) and ping6(c.ns, a6)  # across nodes, through the VPC router
    assert ping(a.ns, b4) and ping(a.ns, c4) and ping(c.ns, a4)
    again = one.cni("ADD", a)
    assert addresses(again) == (a4, a6)  # a repeated ADD: the same pair
    legacy = one.cni("ADD", one.pod("legacy"), cni_version="0.3.1")
    assert legacy.code == 0, legacy.out
    assert sorted(i["version"] for i in legacy.out["ips"]) == ["4", "6"]
    status: dict[str, Any] = one.running.daemon.status() if one.running else {}
    assert status["ip_stack"]["running"] == "dual", status["ip_stack"]


def test_del_leaves_nothing_of_either_family(dual_lab: Lab) -> None:
    node = dual_lab.node(0)
    start_dual(node)
    warm = node.pod("warm")
    assert node.cni("ADD", warm).code == 0  # the ENI table's routes exist from here on
    assert node.cni("DEL", warm).code == 0
    before = v6_state(node), ip(node.ns, "rule")
    pod = node.pod("gone")
    added = node.cni("ADD", pod)
    v4, v6 = addresses(added)
    assert str(v6) in v6_state(node) and str(v4) in ip(node.ns, "rule")
    assert node.ipam_check().returncode == 0
    assert node.cni("DEL", pod).code == 0
    assert node.cni("DEL", pod).code == 0
    after = v6_state(node), ip(node.ns, "rule")
    assert str(v6) not in after[0] and str(v4) not in after[1]
    assert after == before
    with nsmod.iproute(pod.ns) as nl:
        assert sorted(str(m.get_attr("IFLA_IFNAME")) for m in nl.link("dump")) == ["lo"]


def test_an_ineligible_instance_type_runs_ipv4_only_and_says_so(dual_lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    node = dual_lab.node(2)
    caplog.set_level(logging.WARNING, logger="terwayctl.node.ipv6")
    identity = NodeIdentity(node.instance_id, ZONE, "vsw-nodes", "ecs.g6.large")
    daemon = start_dual(node, identity=identity)
    status = daemon.status()["ip_stack"]
    assert status["running"] == "ipv4" and status["wanted"] == "dual"
    assert "ecs.g6.large is not dual-stack eligible: 1 IPv6 and 6 IPv4" in status["reason"]
    assert any("running IPv4 only" in r.getMessage() and "not dual-stack eligible" in r.getMessage()
               for r in caplog.records)
    result = node.cni("ADD", node.pod())
    assert result.code == 0 and [r["address"].count(":") for r in result.out["ips"]] == [0]
    assert "::/0" not in json.dumps(result.out)
    assert "2001:db8" not in v6_state(node)


def test_a_vswitch_without_ipv6_is_refused_for_a_dual_stack_node(dual_lab: Lab) -> None:
    node = dual_lab.node(0)
    conf = {**DUAL_CONF, "vswitches": {ZONE: ["vsw-pods4", "vsw-pods"]}}
    daemon = node.start(eni_conf=conf, ip_stack="dual")
    status: dict[str, Any] = daemon.status()
    refused = status["ip_stack"]["refused_vswitches"]
    assert list(refused) == ["vsw-pods4"] and "has no IPv6 CIDR block" in refused["vsw-pods4"]
    result = node.cni("ADD", node.pod())
    assert result.code == 0
    after: dict[str, Any] = daemon.status()
    assert after["enis"] and all(e["vswitch_id"] == "vsw-pods" for e in after["enis"])


def test_a_lost_assign_ipv6_reply_is_resolved_like_the_ipv4_one(dual_lab: Lab) -> None:
    from terwayctl.emulator import FaultSpec

    node = dual_lab.node(0)
    dual_lab.emulator.faults.set("AssignIpv6Addresses", FaultSpec(failure_ratio=1.0, fail_after_commit=True))
    daemon = start_dual(node)
    pods = [node.pod(f"p{i}") for i in range(3)]
    results = [node.cni("ADD", p) for p in pods]
    assert all(r.code == 0 for r in results), [r.out for r in results]
    v6 = [addresses(r)[1] for r in results]
    assert len(set(v6)) == 3
    dual_lab.emulator.faults.clear()
    store = daemon.store
    assert store is not None
    assert wait_for(lambda: store.intents() == [], 60)  # the worker's refill (and its IPv6) settled
    with new_client(dual_lab.url) as client:
        enis = client.describe_network_interfaces(instance_id=node.instance_id)
    cloud6 = {a for ni in enis for a in ni.ipv6_addresses}
    cloud4 = {a for ni in enis if ni.type == "Secondary" for a in ni.private_ips}
    assert set(map(str, v6)) <= cloud6 and len(cloud6) <= len(cloud4)
    held = {a for found in ipv6_addresses(store).values() for a in found}
    assert held == cloud6  # every address the lost replies gave was adopted: none leaked, none asked twice
    assert ping6(pods[0].ns, v6[1])


def _terway(node: Node, verb: str, conf: dict[str, Any], pod: Pod) -> tuple[int, dict[str, Any]]:
    env = {**node.cni_env(verb, pod), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run([TERWAY], input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=60,
                          check=False)
    text = done.stdout.decode()
    return done.returncode, json.loads(text) if text.strip() else {}


def test_check_and_ipam_check_judge_both_families(dual_lab: Lab) -> None:
    node = dual_lab.node(0)
    start_dual(node)
    pod = node.pod("checked")
    conf = node.netconf()
    code, added = _terway(node, "ADD", conf, pod)
    assert code == 0, added
    v6 = next(r["address"].split("/")[0] for r in added["ips"] if ":" in r["address"])
    check = {**conf, "prevResult": added}
    assert _terway(node, "CHECK", check, pod)[0] == 0
    lacking = json.loads(json.dumps(added))
    lacking["ips"] = [i for i in lacking["ips"] if ":" not in i["address"]]
    code, out = _terway(node, "CHECK", {**conf, "prevResult": lacking}, pod)
    assert code != 0 and out["code"] == 7 and v6 in out["msg"]
    ip(node.ns, "-6", "rule", "del", "from", v6, "pref", "2048")
    code, out = _terway(node, "CHECK", check, pod)
    assert code != 0 and out["code"] == 100 and f"rule 2048 from {v6}" in out["msg"] + out.get("details", "")
    report = node.ipam_check()
    assert report.returncode != 0 and v6 in report.stdout + report.stderr


def test_the_ipv6_internet_needs_the_address_internet_bandwidth(dual_lab: Lab) -> None:
    from aliyunsdkvpc.request.v20160428.AllocateIpv6InternetBandwidthRequest import (
        AllocateIpv6InternetBandwidthRequest,
    )
    from aliyunsdkvpc.request.v20160428.CreateIpv6GatewayRequest import CreateIpv6GatewayRequest
    from aliyunsdkvpc.request.v20160428.DescribeIpv6AddressesRequest import DescribeIpv6AddressesRequest

    from tests.fixtures.emulator import RunningEmulator, SdkCaller

    internet = dual_lab.make_ns()
    host = connect_internet(dual_lab.router, internet)
    node = dual_lab.node(0)
    start_dual(node)
    pod, other = node.pod("web"), node.pod("other")
    _, v6 = addresses(node.cni("ADD", pod))
    assert node.cni("ADD", other).code == 0
    assert host == INTERNET_HOST
    assert not ping6(pod.ns, host, attempts=1)  # no IPv6 gateway, no bandwidth: no internet
    sdk = SdkCaller(RunningEmulator(dual_lab.emulator, dual_lab.tmp / "emulator.sqlite", None))
    try:
        gateway = CreateIpv6GatewayRequest()
        gateway.set_VpcId("vpc-lab")
        gateway_id = sdk.call(gateway)["Ipv6GatewayId"]
        assert not ping6(pod.ns, host, attempts=1)  # a gateway alone opens nothing
        lookup = DescribeIpv6AddressesRequest()
        lookup.set_Ipv6Address(str(v6))
        address_id = sdk.call(lookup)["Ipv6Addresses"]["Ipv6Address"][0]["Ipv6AddressId"]
        bandwidth = AllocateIpv6InternetBandwidthRequest()
        bandwidth.set_Ipv6AddressId(address_id)
        bandwidth.set_Ipv6GatewayId(gateway_id)
        bandwidth.set_Bandwidth(5)
        sdk.call(bandwidth)
    finally:
        sdk.close()
    assert ping6(pod.ns, host)
    assert not ping6(other.ns, host, attempts=1)  # bandwidth is per address
    assert ping6(other.ns, v6)  # inside the VPC IPv6 needs no gateway


def test_results_of_every_cni_version_carry_both_families(dual_lab: Lab) -> None:
    from terwayctl.cni.spec import SUPPORTED_VERSIONS, is_legacy

    node = dual_lab.node(0)
    start_dual(node)
    for version in SUPPORTED_VERSIONS:
        pod = node.pod()
        result = node.cni("ADD", pod, cni_version=version)
        assert result.code == 0 and result.out["cniVersion"] == version, (version, result.out)
        v4, v6 = addresses(result)
        if is_legacy(version):
            assert {i["version"] for i in result.out["ips"]} == {"4", "6"}
        assert {r["dst"] for r in result.out["routes"]} == {"0.0.0.0/0", "::/0"}
        assert node.cni("DEL", pod, cni_version=version).code == 0
        assert str(v6) not in v6_state(node) and str(v4) not in ip(node.ns, "rule")
