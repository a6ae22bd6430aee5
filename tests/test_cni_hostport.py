"""hostPort from anywhere (issue #12): the conflist's `symmetric_routing` read and honoured, and
the plugin's own conflist keys validated (code 7 for a bad value, unknown keys ignored).

The lab here: two nodes whose primary ENI is wired as `eth0` (node address, default route via the
vSwitch gateway, as `terwayctl lab` does), the VPC's source check on the router (a packet whose
source is not routed back through the ENI it arrives on is dropped, nftables in the router
namespace), and a host on another vSwitch (10.0.200.0/24) behind the router. A pod on node-1 is
added through the rendered conflist (terway, then the real portmap) with hostPort 18080; it must
answer on node-1 itself, from node-2 and from the other vSwitch. Root only; every namespace is the
test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from terwayctl.cni import main as cni_main
from terwayctl.cni import protocol
from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import SymmetricRouting, symmetric_routing_off
from terwayctl.node.config import PoolMode
from tests.cni_support.runtime import PLUGIN_DIR, Outcome, assert_error, cni_env, netconf
from tests.fixtures.node import Lab
from tests.test_cni_chain import (
    allocated,
    env,
    ok,
    rendered_conflist,
    runtime,
    terway,
    wire_primary,
)
from tests.test_node_exclusive import EXCLUSIVE_CONF

OTHER_VSWITCH = ("10.0.200.1", "10.0.200.10", 24)  # router side, host, prefix
HOST_PORT = 18080

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80))
s.listen(16)
s.settimeout(60)
print("listening", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(("hello " + peer[0]).encode())
    c.close()
"""
CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
print(s.recv(100).decode())
"""


@dataclass
class HostPortLab:
    lab: Lab
    node_ips: list[str]
    other_host: str


def _run(ns: str, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(nsmod.command(ns, argv), capture_output=True, text=True, timeout=30, check=False, **kwargs)


@pytest.fixture
def hostport_lab(vpc_lab: Lab) -> Iterator[HostPortLab]:
    if not os.access(PLUGIN_DIR / "portmap", os.X_OK):
        pytest.skip("needs the reference portmap plugin in /usr/lib/cni")
    ips = [wire_primary(vpc_lab, node) for node in vpc_lab.nodes]
    router = vpc_lab.router
    source_check = (
        "table ip vpccheck {\n  chain prerouting {\n    type filter hook prerouting priority raw; policy accept;\n"
        '    fib saddr . iif oif missing counter drop comment "VPC source check"\n  }\n}\n'
    )
    done = _run(router, ["nft", "-f", "-"], input=source_check)
    assert done.returncode == 0, done.stderr
    other = vpc_lab.make_ns()
    gateway, host, prefix = OTHER_VSWITCH
    with nsmod.iproute(router) as nl:
        nl.link("add", ifname="vrother", kind="veth", peer={"ifname": "eth0", "net_ns_fd": str(nsmod.path_of(other))})
        index = nl.link_lookup(ifname="vrother")[0]
        nl.addr("add", index=index, address=gateway, prefixlen=prefix)
        nl.link("set", index=index, state="up")
    with nsmod.iproute(other) as nl:
        for name in ("lo", "eth0"):
            nl.link("set", index=nl.link_lookup(ifname=name)[0], state="up")
        index = nl.link_lookup(ifname="eth0")[0]
        nl.addr("add", index=index, address=host, prefixlen=prefix)
        nl.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
    yield HostPortLab(vpc_lab, ips, other)


def connect(ns: str, address: str, timeout: float = 3.0, port: int = HOST_PORT) -> str | None:
    """One TCP connection to address:port from `ns`: the server's greeting, or None."""
    done = _run(ns, [sys.executable, "-c", CLIENT, address, str(port), str(timeout)])
    return done.stdout.strip() if done.returncode == 0 else None


def serve(pod_ns: str) -> subprocess.Popen[str]:
    server = subprocess.Popen(nsmod.command(pod_ns, [sys.executable, "-c", SERVER]), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "listening"
    return server


def stop(server: subprocess.Popen[str]) -> None:
    if server.poll() is None:
        server.kill()
    server.wait(timeout=10)
    if server.stdout is not None:
        server.stdout.close()


def test_host_port_answers_from_the_node_another_node_and_another_vswitch(hostport_lab: HostPortLab) -> None:
    w = hostport_lab
    node1, node2 = w.lab.node(0), w.lab.node(1)
    node1.start()
    node_ip = w.node_ips[0]
    mappings = {"portMappings": [{"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp"}]}

    # control: symmetric_routing off, the reply leaves through the pod's ENI and the VPC drops it
    plain = rendered_conflist(node1)
    plain["plugins"][0]["symmetric_routing"] = False
    pod = node1.pod("web")
    chain = runtime(node1, plain, mappings)
    ok(chain.add(env(node1, pod)))
    server = serve(pod.ns)
    try:
        assert connect(node1.ns, node_ip) == f"hello {node_ip}"  # on the node itself it always worked
        assert connect(node2.ns, node_ip, timeout=1.5) is None
    finally:
        stop(server)
    ok(chain.delete(env(node1, pod)))

    # the rendered conflist: symmetric_routing true
    conflist = rendered_conflist(node1)
    assert conflist["plugins"][0]["symmetric_routing"] is True
    pod = node1.pod("web")
    chain = runtime(node1, conflist, mappings)
    ok(chain.add(env(node1, pod)))
    server = serve(pod.ns)
    try:
        assert connect(node1.ns, node_ip) == f"hello {node_ip}"
        assert connect(node2.ns, node_ip) == f"hello {w.node_ips[1]}"  # the client's address, not SNATed
        assert connect(w.other_host, node_ip) == f"hello {OTHER_VSWITCH[1]}"
    finally:
        stop(server)
    rules = _run(node1.ns, ["ip", "rule", "show"]).stdout
    assert "600:\tfrom all fwmark 0x10/0x10 lookup 100" in rules, rules
    assert "default via 10.0.0.253 dev eth0" in _run(node1.ns, ["ip", "route", "show", "table", "100"]).stdout
    table = _run(node1.ns, ["nft", "list", "table", "ip", "terway_symmetric"]).stdout
    assert 'iifname "eth0" ct mark set ct mark | 0x00000010' in table, table
    ok(chain.delete(env(node1, pod)))

    # node-level state, not per pod: removed by its own call, nothing else left behind
    symmetric_routing_off(node1.ns, SymmetricRouting())
    assert "fwmark" not in _run(node1.ns, ["ip", "rule", "show"]).stdout
    assert _run(node1.ns, ["nft", "list", "table", "ip", "terway_symmetric"]).returncode != 0


def test_host_port_in_exclusive_eni_mode(hostport_lab: HostPortLab) -> None:
    """The pod's own ENI sits in its namespace: the node reaches it through the VPC, and the DNATed
    hostPort connection is masqueraded on its way out of eth0, so the reply comes back to the node."""
    w = hostport_lab
    node1, node2 = w.lab.node(0), w.lab.node(1)
    node1.start(PoolMode.ENI, EXCLUSIVE_CONF)
    node_ip = w.node_ips[0]
    pod = node1.pod("db")
    chain = runtime(node1, rendered_conflist(node1),
                    {"portMappings": [{"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp"}]})
    result = ok(chain.add(env(node1, pod))).json
    assert [i["name"] for i in result["interfaces"]] == ["eth0"] and result["ips"][0]["interface"] == 0
    server = serve(pod.ns)
    try:
        assert connect(node1.ns, node_ip) == f"hello {node_ip}"
        assert connect(node2.ns, node_ip) == f"hello {node_ip}"  # masqueraded to the node's address
        assert connect(w.other_host, node_ip) == f"hello {node_ip}"
    finally:
        stop(server)
    # CHECK of an exclusive-ENI pod: the pod side only (there is no host side)
    check = {**node1.netconf(), "prevResult": result}
    ok(terway(node1, "CHECK", check, pod))
    address = result["ips"][0]["address"]
    subprocess.run(nsmod.command(pod.ns, ["ip", "addr", "del", address, "dev", "eth0"]), check=True, timeout=10)
    broken = terway(node1, "CHECK", check, pod)
    assert broken.exit_code == 1 and broken.json["msg"] == f"CHECK: eth0 lacks {address}", broken
    ok(chain.delete(env(node1, pod)))
    symmetric_routing_off(node1.ns, SymmetricRouting())


def test_symmetric_routing_without_the_primary_interface_fails_the_add(hostport_lab: HostPortLab) -> None:
    node = hostport_lab.lab.node(0)
    node.start()
    conf = node.netconf()
    conf |= {"symmetric_routing": True, "symmetric_routing_config": {"interface": "eth7"}}
    pod = node.pod("web")
    failed = terway(node, "ADD", conf, pod)
    assert failed.exit_code == 1 and failed.json["code"] == 100, failed
    assert "interface eth7 not found" in failed.json["msg"]
    assert node.running is not None and allocated(node.running.daemon) == []


# --- the plugin's conflist keys ----------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.requests: list[protocol.Request] = []

    def __call__(self, request: protocol.Request) -> protocol.Reply:
        self.requests.append(request)
        return protocol.Reply.success()


@pytest.mark.parametrize(
    "extra",
    [
        {"symmetric_routing": "yes"},
        {"symmetric_routing": 1},
        {"symmetric_routing_config": []},
        {"symmetric_routing_config": {"mark": 0}},
        {"symmetric_routing_config": {"table_id": "100"}},
        {"symmetric_routing_config": {"rule_priority": 40000}},
        {"symmetric_routing_config": {"interface": "eth0/1"}},
        {"symmetric_routing_config": {"comment": 5}},
        {"capabilities": {"bandwidth": "true"}},
        {"capabilities": ["bandwidth"]},
        {"dns": {"nameservers": "10.0.0.1"}},
        {"dns": "10.0.0.1"},
    ],
)
def test_a_known_key_with_a_bad_value_is_code_7(extra: Mapping[str, Any]) -> None:
    service = Recorder()
    outcome = cni_main.run(cni_env("DEL"), json.dumps({**netconf("1.0.0"), **extra}), service)
    assert_error(Outcome(outcome.exit, outcome.stdout, outcome.stderr), 7, "1.0.0")
    assert service.requests == []


def test_unknown_keys_are_ignored_and_known_ones_reach_the_daemon() -> None:
    service = Recorder()
    extra = {"symmetric_routing": True, "symmetric_routing_config": {"interface": "eth1", "mark": 32},
             "capabilities": {"bandwidth": True}, "dns": {"nameservers": ["10.0.0.10"]}, "some_future_key": {"x": 1}}
    outcome = cni_main.run(cni_env("DEL"), json.dumps({**netconf("1.0.0"), **extra}), service)
    assert outcome.exit == 0, outcome
    assert service.requests[0].netconf["symmetric_routing_config"] == {"interface": "eth1", "mark": 32}
    assert service.requests[0].netconf["some_future_key"] == {"x": 1}
