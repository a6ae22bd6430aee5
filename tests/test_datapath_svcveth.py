"""The service veth of an exclusive-ENI pod (kernel/datapath/svcveth.py) at the datapath level: built
with the ENI, judged by CHECK, rolled back with it on failure, removed by teardown even when the pod
namespace is already gone. Root; skipped otherwise (tests/fixtures/netns.py)."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Network

import pytest

from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import DatapathError, check_pod, setup_pod, svcveth, teardown_pod
from tests.fixtures.netns import EXCLUSIVE_ENI, World
from tests.test_datapath_exclusive import POD_IP, _links, _spec
from tests.test_datapath_veth import ip_json

SERVICE = IPv4Network("10.96.0.0/12")
NODE_IP = IPv4Network("192.168.0.10/32")
VETH = "calitestsvc0001"


def test_service_veth_is_built_checked_and_removed(datapath_world: World) -> None:
    w = datapath_world
    pod = w.pod()
    spec = dataclasses.replace(_spec(), host_routes=(SERVICE, NODE_IP), service_veth=VETH,
                               host_src=NODE_IP.network_address)
    with nsmod.iproute(w.node) as nl:  # the node's IP, local as on a node's eth0
        nl.addr("add", index=nl.link_lookup(ifname="lo")[0], address=str(NODE_IP.network_address), prefixlen=32)
    setup_pod(w.node, pod, "eth0", spec)
    assert _links(pod) == {"lo", "eth0", "veth1"} and VETH in _links(w.node)
    routes = {(r["dst"], r.get("gateway"), r["dev"]) for r in ip_json(pod, "-4", "route", "show")}
    assert {("10.96.0.0/12", "169.254.1.1", "veth1"), ("192.168.0.10", "169.254.1.1", "veth1"),
            ("169.254.1.1", None, "veth1")} <= routes
    node_routes = [r for r in ip_json(w.node, "-4", "route", "show") if r["dst"] == str(POD_IP)]
    assert [(r["dev"], r.get("prefsrc")) for r in node_routes] == [(VETH, "192.168.0.10")]
    assert check_pod(w.node, pod, "eth0", spec) == []
    assert setup_pod(w.node, pod, "eth0", spec).pod_ip == POD_IP  # a repeated ADD converges
    assert _links(pod) == {"lo", "eth0", "veth1"}

    with nsmod.iproute(w.node) as nl:
        nl.link("set", index=nl.link_lookup(ifname=VETH)[0], state="down")
    problems = check_pod(w.node, pod, "eth0", spec)
    assert f"host veth {VETH} is down" in problems, problems

    teardown_pod(w.node, pod, "eth0", spec)
    assert _links(pod) == {"lo"} and VETH not in _links(w.node)
    assert EXCLUSIVE_ENI in _links(w.node)
    teardown_pod(w.node, pod, "eth0", spec)  # nothing left: still fine

    # a source the node does not have: the route is made without it (and the ADD does not fail)
    elsewhere = dataclasses.replace(spec, host_src=IPv4Address("192.0.2.7"))
    setup_pod(w.node, pod, "eth0", elsewhere)
    node_routes = [r for r in ip_json(w.node, "-4", "route", "show") if r["dst"] == str(POD_IP)]
    assert [(r["dev"], r.get("prefsrc")) for r in node_routes] == [(VETH, None)]
    teardown_pod(w.node, pod, "eth0", elsewhere)


def test_without_the_pod_namespace_teardown_removes_the_node_side(datapath_world: World) -> None:
    w = datapath_world
    pod = w.pod()
    spec = dataclasses.replace(_spec(), host_routes=(SERVICE,), service_veth=VETH)
    setup_pod(w.node, pod, "eth0", spec)
    with nsmod.iproute(pod) as pn:  # the pod side moves away (as if its namespace were unreachable)
        pn.link("set", index=pn.link_lookup(ifname="veth1")[0], ifname="keep1")
    teardown_pod(w.node, None, "eth0", spec)
    assert VETH not in _links(w.node)
    assert str(POD_IP) not in {r["dst"] for r in ip_json(w.node, "-4", "route", "show")}
    teardown_pod(w.node, pod, "eth0", spec)


def test_a_failure_rolls_back_the_veth_and_the_eni(datapath_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = datapath_world
    pod = w.pod()
    spec = dataclasses.replace(_spec(), host_routes=(SERVICE,), service_veth=VETH)

    def broken(*args: object, **kwargs: object) -> bool:
        raise DatapathError("host route broke")

    monkeypatch.setattr(svcveth.policy, "ensure_host_route", broken)
    with pytest.raises(DatapathError, match="host route broke"):
        setup_pod(w.node, pod, "eth0", spec)
    assert _links(pod) == {"lo"}
    assert VETH not in _links(w.node) and EXCLUSIVE_ENI in _links(w.node)
