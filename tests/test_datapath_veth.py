"""Shared-ENI veth datapath against real namespaces: routes, rules, neighbours, tables, sysctls
exactly as Terway lays it out (docs/datapath.md); connectivity; idempotency; rollback; teardown."""

from __future__ import annotations

import json
import subprocess
from ipaddress import IPv4Address

import pytest

from terwayctl.core.bandwidth import PodBandwidth
from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import (
    DatapathError,
    DatapathMode,
    EniTable,
    PodNetwork,
    PolicyRule,
    eni_table_id,
    host_veth_name,
    inspect_node,
    setup_pod,
    teardown_pod,
    veth,
)
from tests.fixtures.netns import ENI, GATEWAY, World, ping

POD_A = IPv4Address("192.168.40.2")
POD_B = IPv4Address("192.168.40.3")


def spec_for(name: str, ip: IPv4Address, **kw: object) -> PodNetwork:
    return PodNetwork.for_pod("default", name, pod_ip=ip, prefix=19, gateway=GATEWAY, eni_ifname=ENI, **kw)  # type: ignore[arg-type]


def ip_json(ns: str, *args: str) -> list[dict[str, object]]:
    out = subprocess.run(nsmod.command(ns, ["ip", "-j", *args]), capture_output=True, text=True, timeout=10, check=True)
    return json.loads(out.stdout or "[]")  # type: ignore[no-any-return]


def eni_ifindex(world: World) -> int:
    with nsmod.iproute(world.node) as nl:
        return nl.link_lookup(ifname=ENI)[0]


def test_host_veth_name_matches_upstream() -> None:
    # sha1("default.nginx") = 6f4b2e8e6c...; upstream: "cali" + first 11 hex chars
    import hashlib

    assert host_veth_name("default", "nginx") == "cali" + hashlib.sha1(b"default.nginx").hexdigest()[:11]
    assert len(host_veth_name("kube-system", "a" * 200)) == 15
    assert host_veth_name("ns", "p", "eth1") != host_veth_name("ns", "p")
    assert eni_table_id(3) == 1003


def test_two_pods_reach_each_other_and_the_gateway(datapath_world: World) -> None:
    w = datapath_world
    pod_a, pod_b = w.pod(), w.pod()
    a = setup_pod(w.node, pod_a, "eth0", spec_for("a", POD_A))
    b = setup_pod(w.node, pod_b, "eth0", spec_for("b", POD_B))
    w.route_pod(POD_A)
    w.route_pod(POD_B)
    assert a.mode is DatapathMode.VETH and b.mode is DatapathMode.VETH
    assert ping(pod_a, POD_B)
    assert ping(pod_b, POD_A)
    assert ping(pod_a, GATEWAY)
    assert ping(pod_b, GATEWAY)


def test_layout_is_exactly_as_designed(datapath_world: World) -> None:
    w = datapath_world
    pod = w.pod()
    spec = spec_for("a", POD_A)
    att = setup_pod(w.node, pod, "eth0", spec)
    table = 1000 + eni_ifindex(w)
    assert att.eni_table == table
    assert att.host_ifname == host_veth_name("default", "a")

    # pod side: /32 address, default via 169.254.1.1 onlink, permanent neighbour = host veth MAC
    addrs = ip_json(pod, "-4", "addr", "show", "dev", "eth0")[0]["addr_info"]
    assert [(x["local"], x["prefixlen"]) for x in addrs] == [(str(POD_A), 32)]  # type: ignore[index]
    routes = ip_json(pod, "-4", "route", "show")
    assert routes == [{"dst": "default", "gateway": "169.254.1.1", "dev": "eth0", "protocol": "static", "flags": ["onlink"]}]
    neigh = [n for n in ip_json(pod, "-4", "neigh", "show", "dev", "eth0") if n["dst"] == "169.254.1.1"]
    assert neigh == [{"dst": "169.254.1.1", "lladdr": att.host_mac, "state": ["PERMANENT"]}]

    # node side: host route, the two rules, the ENI table
    main = [r for r in ip_json(w.node, "-4", "route", "show", "table", "main") if r["dst"] == str(POD_A)]
    assert main == [{"dst": str(POD_A), "dev": att.host_ifname, "protocol": "static", "scope": "link", "flags": []}]
    rules = {(r["priority"], r.get("src"), r.get("dst"), r["table"]) for r in ip_json(w.node, "-4", "rule", "show")}
    assert (512, "all", str(POD_A), "main") in rules
    assert (2048, str(POD_A), None, str(table)) in rules
    eni_routes = ip_json(w.node, "-4", "route", "show", "table", str(table))
    assert eni_routes == [{"dst": "default", "gateway": str(GATEWAY), "dev": ENI, "protocol": "static", "flags": ["onlink"]}]

    # sysctls in the node namespace
    assert nsmod.read_sysctl(w.node, "net.ipv4.ip_forward") == "1"
    for ifname in (ENI, att.host_ifname):
        assert nsmod.read_sysctl(w.node, f"net/ipv4/conf/{ifname}/rp_filter") == "0"
    assert nsmod.read_sysctl(w.node, f"net/ipv4/conf/{att.host_ifname}/proxy_arp") == "1"

    # the same, read back as dataclasses
    seen = inspect_node(w.node)
    assert [(v.name, v.pod_ips) for v in seen.veths] == [(att.host_ifname, (POD_A,))]
    assert set(seen.rules) == {PolicyRule(512, 254, None, POD_A), PolicyRule(2048, table, POD_A, None)}
    assert seen.eni_tables == (EniTable(table, ENI, GATEWAY),)
    assert seen.pod_ips() == {POD_A}


def _snapshot(world: World, pod: str) -> tuple[object, ...]:
    return (
        inspect_node(world.node),
        ip_json(world.node, "-4", "route", "show", "table", "all"),
        ip_json(pod, "-4", "route", "show"),
        ip_json(pod, "-4", "addr", "show"),
        [n for n in ip_json(pod, "-4", "neigh", "show") if "PERMANENT" in n.get("state", [])],  # type: ignore[operator]
    )


def test_repeated_setup_is_idempotent(datapath_world: World) -> None:
    w = datapath_world
    pod = w.pod()
    spec = spec_for("a", POD_A)
    first = setup_pod(w.node, pod, "eth0", spec)
    before = _snapshot(w, pod)
    again = setup_pod(w.node, pod, "eth0", spec)
    assert again == first
    assert _snapshot(w, pod) == before


def test_teardown_leaves_nothing_and_tolerates_absence(datapath_world: World) -> None:
    w = datapath_world
    pod_a, pod_b = w.pod(), w.pod()
    spec_a, spec_b = spec_for("a", POD_A), spec_for("b", POD_B)
    setup_pod(w.node, pod_a, "eth0", spec_a)
    setup_pod(w.node, pod_b, "eth0", spec_b)
    teardown_pod(w.node, pod_a, "eth0", spec_a)
    seen = inspect_node(w.node)
    assert [v.name for v in seen.veths] == [spec_b.host_ifname]
    assert {r.src or r.dst for r in seen.rules} == {POD_B}
    links = {link["ifname"] for link in ip_json(pod_a, "link", "show")}
    assert links == {"lo"}
    # again, with the pod namespace gone, and with no namespace at all
    teardown_pod(w.node, pod_a, "eth0", spec_a)
    nsmod.delete(pod_b)
    teardown_pod(w.node, pod_b, "eth0", spec_b)
    teardown_pod(w.node, None, "eth0", spec_b)
    teardown_pod("twtest-ffffffff", "twtest-fffffffe", "eth0", spec_b)
    seen = inspect_node(w.node)
    assert seen.veths == () and seen.rules == ()
    assert [r for r in ip_json(w.node, "-4", "route", "show", "table", "main")] == []


def test_pod_ip_taken_by_another_pod_rolls_back(datapath_world: World) -> None:
    w = datapath_world
    pod_a, pod_b = w.pod(), w.pod()
    setup_pod(w.node, pod_a, "eth0", spec_for("a", POD_A))
    before = inspect_node(w.node)
    with pytest.raises(DatapathError, match="already routed"):
        setup_pod(w.node, pod_b, "eth0", spec_for("b", POD_A))
    assert inspect_node(w.node) == before
    assert {link["ifname"] for link in ip_json(pod_b, "link", "show")} == {"lo"}


def test_failure_in_the_last_step_undoes_everything(datapath_world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    w = datapath_world
    pod = w.pod()

    def broken(*args: object, **kwargs: object) -> None:
        raise DatapathError("tc broke")

    monkeypatch.setattr(veth.tc, "shape", broken)
    with pytest.raises(DatapathError, match="tc broke"):
        setup_pod(w.node, pod, "eth0", spec_for("a", POD_A, bandwidth=PodBandwidth(egress=1_000_000)))
    seen = inspect_node(w.node)
    assert seen.veths == () and seen.rules == () and seen.eni_tables == ()
    assert ip_json(w.node, "-4", "route", "show", "table", "main") == []
    assert {link["ifname"] for link in ip_json(pod, "link", "show")} == {"lo"}


def test_missing_namespace_or_eni_is_an_error(datapath_world: World) -> None:
    w = datapath_world
    pod = w.pod()
    with pytest.raises(DatapathError, match="does not exist"):
        setup_pod(w.node, "twtest-ffffffff", "eth0", spec_for("a", POD_A))
    bad = PodNetwork.for_pod("default", "a", pod_ip=POD_A, prefix=19, gateway=GATEWAY, eni_ifname="eth9")
    with pytest.raises(DatapathError, match="eth9 not found"):
        setup_pod(w.node, pod, "eth0", bad)
    assert inspect_node(w.node).veths == ()
