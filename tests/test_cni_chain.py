"""The conflist chain under a real runtime's rules, with the REAL chained plugins (Debian's
containernetworking-plugins in /usr/lib/cni), against a real daemon in the lab's node namespace
(issue #12): ADD results per spec (host veth + pod interface), the chained `bandwidth` and
`portmap` working from them, bandwidth shaped exactly once (measured with iperf3), CHECK against
the kernel and the store, GC only with `cni.dev/valid-attachments`. Root only (the lab fixtures
skip otherwise); nothing touches the root namespace: every plugin runs in the node's namespace."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from terwayctl.emulator.hooks import EniInfo
from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import inspect_node
from terwayctl.lab.network import configure_primary
from terwayctl.manifests.render import render_objects
from terwayctl.manifests.values import load_values
from terwayctl.node.service import Daemon
from tests.cni_support.runtime import PLUGIN_DIR, ConflistRuntime, Outcome, exec_runner
from tests.fixtures.node import TERWAY, ZONE, Lab, Node, Pod, new_client

pytestmark = pytest.mark.skipif(
    not all(os.access(PLUGIN_DIR / p, os.X_OK) for p in ("bandwidth", "portmap")) or shutil.which("iperf3") is None,
    reason="needs the reference plugins in /usr/lib/cni (containernetworking-plugins) and iperf3",
)

INGRESS_BITS = 16_000_000
EGRESS_BITS = 20_000_000
SHAPING = {"ingressRate": INGRESS_BITS, "ingressBurst": 160_000, "egressRate": EGRESS_BITS, "egressBurst": 200_000}
HOST_PORT = {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}
NODE_CIDR = "10.0.0.0/24"


def rendered_conflist(node: Node, version: str | None = None) -> dict[str, Any]:
    """`terwayctl render --set host_port=true --set bandwidth=true`'s 10-terway.conflist, aimed at
    the node's daemon socket (and at `version` when given)."""
    objects = render_objects(load_values(None, ["security_groups=sg-lab", "vswitches.cn-hangzhou-i=vsw-pods",
                                                "host_port=true", "bandwidth=true"]))
    data = next(o for o in objects if o["kind"] == "ConfigMap")["data"]
    conflist: dict[str, Any] = json.loads(data["10-terway.conflist"])
    conflist["plugins"][0]["daemon_socket"] = str(node.socket)
    if version is not None:
        conflist["cniVersion"] = version
    return conflist


def chained_bandwidth_conflist(node: Node) -> dict[str, Any]:
    """A hand-written chain where the bandwidth plugin shapes (terway without the capability)."""
    return {
        "cniVersion": "1.0.0", "name": "terway",
        "plugins": [
            {"type": "terway", "daemon_socket": str(node.socket)},
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def wire_primary(lab: Lab, node: Node) -> str:
    """The node's primary ENI as `terwayctl lab` wires it: `eth0`, its address, the default route."""
    client = new_client(lab.url)
    lab.clients.append(client)
    eni = next(e for e in client.describe_network_interfaces(instance_id=node.instance_id) if e.type == "Primary")
    gateway = str(ipaddress.IPv4Network(NODE_CIDR).broadcast_address - 2)
    info = EniInfo(eni.network_interface_id, eni.mac_address, eni.primary_ip, (eni.primary_ip,), eni.vswitch_id,
                   NODE_CIDR, gateway, eni.vpc_id, ZONE)
    lab.vpc.on_attach(node.instance_id, info)
    configure_primary(node.ns, info.eni_id, info.primary_ip, NODE_CIDR, gateway)
    return eni.primary_ip


def runtime(node: Node, conflist: Mapping[str, Any], runtime_config: Mapping[str, Any] | None = None) -> ConflistRuntime:
    return ConflistRuntime(conflist, exec_runner(TERWAY), dict(runtime_config or {}),
                           netns_path=nsmod.path_of(node.ns))


def env(node: Node, pod: Pod) -> dict[str, str]:
    return {k: v for k, v in node.cni_env("ADD", pod).items() if k != "CNI_COMMAND"}


def ok(outcome: Outcome) -> Outcome:
    assert outcome.exit_code == 0, (outcome.stdout, outcome.stderr)
    return outcome


def check_chain(chain: ConflistRuntime, environ: Mapping[str, str]) -> None:
    """CHECK through the chain: terway and bandwidth pass. Debian's portmap 1.1.1 fails the CHECK of
    every IPv4-only pod once ip6tables works ('could not check ipv6 dnat', fixed upstream:
    containernetworking/plugins#819); that one known message is tolerated, nothing else."""
    first = len(chain.outcomes)
    outcome = chain.check(environ)
    ran = list(zip(chain.calls[first:], chain.outcomes[first:], strict=True))
    for (_, kind), done in ran:
        if kind != "portmap":
            assert done.exit_code == 0, (kind, done)
    if outcome.exit_code != 0:
        assert ran[-1][0][1] == "portmap" and "could not check ipv6 dnat" in outcome.stdout, outcome
    assert [kind for (_, kind), _ in ran] == [p["type"] for p in chain.conflist["plugins"]]


def tbf_rates(ns: str, ifname: str) -> list[int]:
    """The rates (bytes/s) of the tbf qdiscs on a link, wherever they hang."""
    done = subprocess.run(nsmod.command(ns, ["tc", "-j", "qdisc", "show", "dev", ifname]), capture_output=True,
                          text=True, timeout=10, check=True)
    return [int(q["options"]["rate"]) for q in json.loads(done.stdout) if q["kind"] == "tbf"]


def links(ns: str) -> list[str]:
    with nsmod.iproute(ns) as nl:
        return sorted(str(m.get_attr("IFLA_IFNAME")) for m in nl.link("dump"))


def iptables_save(ns: str) -> str:
    return subprocess.run(nsmod.command(ns, ["iptables-save"]), capture_output=True, text=True, timeout=20,
                          check=True).stdout


def iperf(client: Pod, server: Pod, server_ip: str, *, reverse: bool, seconds: int = 3) -> float:
    """Bits per second received: client -> server, or server -> client with `reverse` (-R)."""
    srv = subprocess.Popen(nsmod.command(server.ns, ["iperf3", "-s", "-1", "-p", "5201"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out: dict[str, Any] = {}
        argv = ["timeout", str(seconds + 8), "iperf3", "-c", server_ip, "-p", "5201", "-t", str(seconds), "-J",
                *(["-R"] if reverse else [])]
        for _ in range(40):  # the server needs a moment to listen (bounded)
            done = subprocess.run(nsmod.command(client.ns, argv), capture_output=True, text=True,
                                  timeout=seconds + 20, check=False)
            try:
                out = json.loads(done.stdout or "{}")
            except json.JSONDecodeError:
                out = {"error": "no JSON"}
            if done.returncode == 0 and "error" not in out:
                return float(out["end"]["sum_received"]["bits_per_second"])
            time.sleep(0.2)
        raise AssertionError(f"iperf3 did not run: {out}")
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(timeout=10)


def assert_measured(shaped: Pod, peer: Pod, peer_ip: str) -> None:
    egress = iperf(shaped, peer, peer_ip, reverse=False)
    ingress = iperf(shaped, peer, peer_ip, reverse=True)
    assert abs(egress - EGRESS_BITS) <= 0.15 * EGRESS_BITS, (egress, EGRESS_BITS)
    assert abs(ingress - INGRESS_BITS) <= 0.15 * INGRESS_BITS, (ingress, INGRESS_BITS)


def assert_spec_result(result: Mapping[str, Any], pod: Pod, legacy: bool = False) -> tuple[str, str]:
    """Host veth first (name, MAC, no sandbox), then the pod interface with its sandbox; the IP
    points at the pod interface. Returns (host veth name, pod IP)."""
    host, container = result["interfaces"][0], result["interfaces"][1]
    assert host["name"].startswith("cali") and "sandbox" not in host and len(host["mac"]) == 17, result
    assert container["name"] == "eth0" and container["sandbox"] == str(nsmod.path_of(pod.ns)), result
    ip = result["ips"][0]
    assert ip["interface"] == 1 and ip["address"].endswith("/32"), result
    assert ("version" in ip) is legacy
    with nsmod.iproute(pod.ns) as nl:
        macs = {str(m.get_attr("IFLA_IFNAME")): str(m.get_attr("IFLA_ADDRESS")) for m in nl.link("dump")}
    assert macs["eth0"] == container["mac"]
    return str(host["name"]), str(ip["address"].split("/")[0])


def assert_clean(node: Node, *pods: Pod) -> None:
    """DEL left nothing: veths, rules, ifb devices, portmap's NAT rules, allocations."""
    state = inspect_node(node.ns)
    assert state.veths == () and state.rules == (), state
    assert [n for n in links(node.ns) if n.startswith(("bwp", "cali"))] == []
    saved = iptables_save(node.ns)
    for pod in pods:
        assert links(pod.ns) == ["lo"]
        assert pod.container_id not in saved, saved
    assert node.running is not None
    assert allocated(node.running.daemon) == []


def allocated(daemon: Daemon) -> list[str]:
    """The container ids the daemon holds an IP for."""
    rows: list[dict[str, Any]] = daemon.status()["allocations"]  # type: ignore[assignment]
    return [str(row["container_id"]) for row in rows]


# --- 1. results per spec, with the real bandwidth and portmap chained ---------------------------


def test_real_bandwidth_plugin_shapes_from_terways_result(vpc_lab: Lab) -> None:
    """The chained bandwidth plugin finds the host veth in terway's result (it failed every ADD with
    'no veth peer of container interface found in host ns' when only eth0 was listed)."""
    node = vpc_lab.node(0)
    node.start()
    shaped, peer = node.pod("shaped"), node.pod("peer")
    chain = runtime(node, chained_bandwidth_conflist(node), {"bandwidth": SHAPING, "portMappings": [HOST_PORT]})
    plain = runtime(node, chained_bandwidth_conflist(node))
    result = ok(chain.add(env(node, shaped))).json
    host, ip = assert_spec_result(result, shaped)
    ifb = [str(i["name"]) for i in result["interfaces"]][2:]  # the bandwidth plugin's ifb device
    assert len(ifb) == 1 and ifb[0].startswith("bwp"), result
    _, peer_ip = assert_spec_result(ok(plain.add(env(node, peer))).json, peer)

    # shaped once: ingress by the bandwidth plugin's tbf on the host veth, egress on its ifb
    assert tbf_rates(node.ns, host) == [INGRESS_BITS // 8]
    assert tbf_rates(node.ns, ifb[0]) == [EGRESS_BITS // 8]
    assert tbf_rates(shaped.ns, "eth0") == []
    assert f"{ip}:80" in iptables_save(node.ns)  # portmap's DNAT for the hostPort
    assert_measured(shaped, peer, peer_ip)

    check_chain(chain, env(node, shaped))
    ok(chain.delete(env(node, shaped)))
    ok(chain.delete(env(node, shaped)))  # DEL again (the runtime retries): still fine
    ok(plain.delete(env(node, peer)))
    assert chain.calls[-3:] == [("DEL", "portmap"), ("DEL", "bandwidth"), ("DEL", "terway")]
    assert_clean(node, shaped, peer)


def test_both_owners_declared_fails_instead_of_shaping_twice(vpc_lab: Lab) -> None:
    """The reason for one owner: with the capability on terway AND the chained bandwidth plugin,
    the runtime hands the limits to both and the second tbf on the host veth is refused."""
    node = vpc_lab.node(0)
    node.start()
    conflist = chained_bandwidth_conflist(node)
    conflist["plugins"][0]["capabilities"] = {"bandwidth": True}
    pod = node.pod("twice")
    chain = runtime(node, conflist, {"bandwidth": SHAPING})
    failed = chain.add(env(node, pod))
    assert failed.exit_code == 1 and "create qdisc: file exists" in failed.stdout, failed
    assert chain.calls == [("ADD", "terway"), ("ADD", "bandwidth")]
    ok(chain.delete(env(node, pod)))  # the runtime's DEL after a failed ADD cleans up
    assert_clean(node, pod)


def test_rendered_conflist_terway_shapes_exactly_once(vpc_lab: Lab) -> None:
    """`render --set host_port=true --set bandwidth=true`: terway owns bandwidth (no chained
    bandwidth plugin), portmap chained; one tbf per direction, rates measured."""
    node = vpc_lab.node(0)
    wire_primary(vpc_lab, node)  # the conflist's symmetric_routing needs the primary ENI (eth0)
    node.start()
    conflist = rendered_conflist(node)
    assert [p["type"] for p in conflist["plugins"]] == ["terway", "portmap"]
    shaped, peer = node.pod("shaped"), node.pod("peer")
    chain = runtime(node, conflist, {"bandwidth": SHAPING, "portMappings": [HOST_PORT]})
    plain = runtime(node, conflist)
    host, ip = assert_spec_result(ok(chain.add(env(node, shaped))).json, shaped)
    _, peer_ip = assert_spec_result(ok(plain.add(env(node, peer))).json, peer)
    assert tbf_rates(node.ns, host) == [INGRESS_BITS // 8]
    assert tbf_rates(shaped.ns, "eth0") == [EGRESS_BITS // 8]
    assert [n for n in links(node.ns) if n.startswith("bwp")] == []
    assert f"{ip}:80" in iptables_save(node.ns)
    assert_measured(shaped, peer, peer_ip)
    check_chain(chain, env(node, shaped))
    ok(chain.delete(env(node, shaped)))
    ok(plain.delete(env(node, peer)))
    assert_clean(node, shaped, peer)


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
def test_result_shape_per_version_through_portmap(vpc_lab: Lab, version: str) -> None:
    node = vpc_lab.node(0)
    wire_primary(vpc_lab, node)
    node.start()
    pod = node.pod("web")
    chain = runtime(node, rendered_conflist(node, version), {"portMappings": [HOST_PORT]})
    result = ok(chain.add(env(node, pod))).json
    assert result["cniVersion"] == version
    _, ip = assert_spec_result(result, pod, legacy=version != "1.0.0")
    assert "mtu" not in result["interfaces"][1]  # a field of spec 1.1.0
    assert f"{ip}:80" in iptables_save(node.ns)
    if version != "0.3.1":
        check_chain(chain, env(node, pod))
    ok(chain.delete(env(node, pod)))
    assert_clean(node, pod)


def test_result_shape_1_1_0(vpc_lab: Lab) -> None:
    """1.1.0 (no reference plugin of Debian's 1.1.1 speaks it: terway alone) carries the mtu."""
    node = vpc_lab.node(0)
    node.start()
    pod = node.pod("new")
    result = ok(terway(node, "ADD", node.netconf(cni_version="1.1.0"), pod)).json
    assert_spec_result(result, pod)
    assert result["interfaces"][0]["mtu"] == result["interfaces"][1]["mtu"] == 1500
    ok(terway(node, "DEL", node.netconf(cni_version="1.1.0"), pod))
    assert_clean(node, pod)


# --- 2. CHECK against store and kernel; GC only with valid-attachments ---------------------------


def terway(node: Node, command: str, conf: Mapping[str, Any], pod: Pod | None = None) -> Outcome:
    base = node.cni_env(command, pod) if pod is not None else {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                                               "CNI_PATH": "/opt/cni/bin"}
    return exec_runner(TERWAY)({**base, "CNI_COMMAND": command}, json.dumps(conf))


def test_check_compares_prev_result_with_the_store_and_the_kernel(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    node.start()
    pod = node.pod("checked")
    shaping = {"bandwidth": {"ingressRate": INGRESS_BITS, "egressRate": EGRESS_BITS}}
    conf = node.netconf(shaping)
    added = ok(terway(node, "ADD", conf, pod)).json
    host, ip = assert_spec_result(added, pod)
    check = {**conf, "prevResult": added}

    def code(prev: Mapping[str, Any] | None = None) -> tuple[int, str]:
        outcome = terway(node, "CHECK", {**check, "prevResult": prev or added}, pod)
        if outcome.exit_code == 0:
            return 0, ""
        return outcome.json["code"], f"{outcome.json['msg']} {outcome.json['details']}".strip()

    def repaired() -> None:
        ok(terway(node, "ADD", conf, pod))  # a repeated ADD converges back
        assert code() == (0, "")

    assert code() == (0, "")
    # prevResult against the store: another IP, no pod interface
    other = json.loads(json.dumps(added))
    other["ips"][0]["address"] = "10.0.63.1/32"
    assert code(other)[0] == 7
    renamed = json.loads(json.dumps(added))
    renamed["interfaces"][1]["name"] = "eth9"
    assert code(renamed)[0] == 7
    # prevResult against the kernel: MACs
    wrong_mac = json.loads(json.dumps(added))
    wrong_mac["interfaces"][0]["mac"] = "02:00:00:00:00:01"
    assert code(wrong_mac) == (100, f"CHECK: host veth {host} has MAC "
                                    f"{added['interfaces'][0]['mac']}, the result says 02:00:00:00:00:01")
    # the kernel changed under the pod: rule, host route, qdisc, address, link state
    tampering = [
        (["ip", "rule", "del", "from", ip, "priority", "2048"], node.ns, "rule 2048"),
        (["ip", "route", "del", f"{ip}/32", "dev", host], node.ns, f"no route {ip} dev {host}"),
        (["tc", "qdisc", "del", "dev", host, "root"], node.ns, "(ingress) has no tbf"),
        (["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "1mbit", "burst", "3000b", "latency",
          "25ms"], pod.ns, "eth0 (egress) is shaped to 1000000 bit/s"),
        (["ip", "addr", "del", f"{ip}/32", "dev", "eth0"], pod.ns, f"eth0 lacks {ip}/32"),
        (["ip", "link", "set", host, "down"], node.ns, "is down"),
    ]
    for argv, ns, message in tampering:
        subprocess.run(nsmod.command(ns, argv), check=True, timeout=10)
        got = code()
        assert got[0] == 100 and message in got[1], (argv, got)
        repaired()
    # the pod's interface gone entirely
    subprocess.run(nsmod.command(pod.ns, ["ip", "link", "del", "eth0"]), check=True, timeout=10)
    gone = code()
    assert gone[0] == 100 and gone[1].startswith("CHECK: eth0 is missing in the pod namespace"), gone
    ok(terway(node, "DEL", conf, pod))
    assert code()[0] == 3  # unknown container after DEL


def test_gc_needs_valid_attachments_and_spares_requests_in_flight(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    daemon = node.start()
    kept, busy, stale = node.pod("kept"), node.pod("busy"), node.pod("stale")
    for pod in (kept, busy, stale):
        ok(terway(node, "ADD", node.netconf(), pod))
    gc = node.netconf(cni_version="1.1.0")

    missing = terway(node, "GC", gc)  # no cni.dev/valid-attachments: not "release everything"
    assert missing.exit_code == 1 and missing.json["code"] == 7, missing
    assert len(allocated(daemon)) == 3
    assert len(inspect_node(node.ns).veths) == 3

    gc["cni.dev/valid-attachments"] = [{"containerID": kept.container_id, "ifname": "eth0"}]
    held, release = threading.Event(), threading.Event()

    def in_flight() -> None:  # a request of `busy` is in progress (it holds its container's lock)
        with daemon._locks.hold(busy.container_id):
            held.set()
            release.wait(30)

    worker = threading.Thread(target=in_flight)
    worker.start()
    try:
        assert held.wait(10)
        ok(terway(node, "GC", gc))
        left = set(allocated(daemon))
        assert left == {kept.container_id, busy.container_id}
    finally:
        release.set()
        worker.join(10)
    ok(terway(node, "GC", gc))  # settled now: released
    assert allocated(daemon) == [kept.container_id]
    assert links(busy.ns) == ["lo"] and links(stale.ns) == ["lo"]
    ok(terway(node, "DEL", node.netconf(), kept))
    assert_clean(node, kept, busy, stale)
