"""The IPv6 twin of the veth datapath (kernel/datapath/v6.py, docs/datapath.md "Dual stack") against
real namespaces: the layout, both families reach the gateway and each other, CHECK judges both, and
teardown leaves nothing of either family. An IPv4 spec builds no IPv6 at all."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv6Address

from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import PodNetwork, check_pod, setup_pod, teardown_pod
from tests.fixtures.dualstack import ip, ping6
from tests.fixtures.netns import ENI, EXCLUSIVE_ENI, GATEWAY, World, ping

GATEWAY6 = IPv6Address("2001:db8:0:1:ffff:ffff:ffff:fffd")
POD_A, POD_A6 = IPv4Address("192.168.40.2"), IPv6Address("2001:db8:0:1::a")
POD_B, POD_B6 = IPv4Address("192.168.40.3"), IPv6Address("2001:db8:0:1::b")


def dual(name: str, ip4: IPv4Address, ip6: IPv6Address | None) -> PodNetwork:
    return PodNetwork.for_pod("default", name, pod_ip=ip4, prefix=19, gateway=GATEWAY, eni_ifname=ENI,
                              pod_ip6=ip6, gateway6=GATEWAY6 if ip6 is not None else None)


def ipv6_router(w: World) -> None:
    """The vSwitch's IPv6 gateway on the router end of the ENI; the ENI without DAD, as the daemon
    brings a dual-stack ENI up."""
    nsmod.write_sysctls(w.router, [("net/ipv6/conf/all/forwarding", "1"), ("net/ipv6/conf/vsw0/accept_dad", "0")])
    nsmod.write_sysctls(w.node, [(f"net/ipv6/conf/{ENI}/accept_dad", "0")])
    ip(w.router, "-6", "addr", "add", f"{GATEWAY6}/64", "dev", "vsw0", "nodad")
    ip(w.node, "link", "set", ENI, "down")
    ip(w.node, "link", "set", ENI, "up")


def route6(w: World, pod6: IPv6Address) -> None:
    mac = json.loads(ip(w.node, "-j", "link", "show", ENI))[0]["address"]
    ip(w.router, "-6", "neigh", "replace", str(pod6), "lladdr", mac, "dev", "vsw0", "nud", "permanent")
    ip(w.router, "-6", "route", "replace", f"{pod6}/128", "dev", "vsw0")


def v6_state(w: World) -> tuple[str, str]:
    rules = ip(w.node, "-6", "rule")
    routes = ip(w.node, "-6", "route", "show", "table", "all")
    return rules, routes


def test_dual_stack_pods_reach_the_gateway_and_each_other(datapath_world: World) -> None:
    w = datapath_world
    ipv6_router(w)
    pod_a, pod_b = w.pod(), w.pod()
    setup_pod(w.node, pod_a, "eth0", dual("a", POD_A, POD_A6))
    setup_pod(w.node, pod_b, "eth0", dual("b", POD_B, POD_B6))
    for ip4, ip6 in ((POD_A, POD_A6), (POD_B, POD_B6)):
        w.route_pod(ip4)
        route6(w, ip6)
    assert ping6(pod_a, GATEWAY6, attempts=1)  # the first echo: no DAD, no lost packet
    assert ping6(pod_a, POD_B6) and ping6(pod_b, POD_A6)
    assert ping(pod_a, POD_B) and ping(pod_b, GATEWAY)


def test_layout_and_teardown_of_both_families(datapath_world: World) -> None:
    w = datapath_world
    ipv6_router(w)
    before = v6_state(w)
    pod = w.pod()
    spec = dual("a", POD_A, POD_A6)
    att = setup_pod(w.node, pod, "eth0", spec)
    table = att.eni_table
    assert f"inet6 {POD_A6}/128" in ip(pod, "-6", "addr", "show", "dev", "eth0")
    assert "default via fe80::1 dev eth0" in ip(pod, "-6", "route")
    assert f"fe80::1 dev eth0 lladdr {att.host_mac} PERMANENT" in ip(pod, "-6", "neigh")
    rules = ip(w.node, "-6", "rule")
    assert f"512:\tfrom all to {POD_A6} lookup main" in rules
    assert f"2048:\tfrom {POD_A6} lookup {table}" in rules
    assert f"{POD_A6} dev {spec.host_ifname}" in ip(w.node, "-6", "route")
    assert f"default via {GATEWAY6} dev {ENI}" in ip(w.node, "-6", "route", "show", "table", str(table))
    assert check_pod(w.node, pod, "eth0", spec) == []
    ip(w.node, "-6", "rule", "del", "pref", "2048", "from", str(POD_A6))
    assert check_pod(w.node, pod, "eth0", spec) == [f"rule 2048 from {POD_A6} lookup {table} is missing"]
    ip(pod, "-6", "route", "del", "default")
    assert "eth0 has no IPv6 default route via fe80::1" in check_pod(w.node, pod, "eth0", spec)
    teardown_pod(w.node, pod, "eth0", spec)
    rules, routes = v6_state(w)
    assert str(POD_A6) not in rules and str(POD_A6) not in routes
    assert str(POD_A) not in ip(w.node, "rule") and str(POD_A) not in ip(w.node, "route", "show", "table", "all")
    assert rules == before[0]


def test_an_ipv4_spec_builds_no_ipv6(datapath_world: World) -> None:
    w = datapath_world
    before = v6_state(w)
    pod = w.pod()
    setup_pod(w.node, pod, "eth0", dual("a", POD_A, None))
    assert v6_state(w)[0] == before[0]
    assert "fe80::1" not in ip(pod, "-6", "neigh") and "default" not in ip(pod, "-6", "route")


def test_two_enis_of_one_vswitch_share_the_ipv6_gateway(datapath_world: World) -> None:
    """ENIs of one vSwitch share its IPv6 gateway; each ENI table gets its onlink default route (the
    kernel checks an IPv6 onlink gateway against main, so main's /128 follows the ENI set up last)."""
    w = datapath_world
    ipv6_router(w)
    first = setup_pod(w.node, w.pod(), "eth0", dual("a", POD_A, POD_A6))
    second_spec = PodNetwork.for_pod("default", "b", pod_ip=POD_B, prefix=19, gateway=GATEWAY, eni_ifname=EXCLUSIVE_ENI,
                                     pod_ip6=POD_B6, gateway6=GATEWAY6)
    second = setup_pod(w.node, w.pod(), "eth0", second_spec)
    for att, eni in ((first, ENI), (second, EXCLUSIVE_ENI)):
        table = ip(w.node, "-6", "route", "show", "table", str(att.eni_table))
        assert f"default via {GATEWAY6} dev {eni}" in table
