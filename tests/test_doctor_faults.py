"""The fault matrix: faults made by hand the way they happen on real machines, and the one check that finds each.

Nothing here uses `lab fault` or doctor's own helpers to make a fault. Each fault is made:

- node: with nft, iptables-nft, iptables-legacy, sysctl, ip and plain files inside a namespace this
  test creates (a node with eth0, an ENI device eth1 and its table 1001, a pod veth with its policy
  rules, a Terway CNI directory, and a fake daemon answering on its socket);
- cloud: through the real SDK against the emulator (DeleteSnatEntry, CreateSnatEntry,
  CreateNetworkInterface, AttachNetworkInterface, AssignPrivateIpAddresses), or by editing the
  eni_conf file the node reads;
- cluster: through the real Kubernetes client against the test API server;
- probe: in namespaces this test creates (a node, an "internet", a pod).

Every case asserts the exact set of checks that fail (usually one), some evidence of it, and that
the healthy world has no failure. The non-node host gets skips and no failure.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from terwayctl.cloud.client import CloudClient
from terwayctl.doctor import DoctorOptions, Inputs, Report, Status, Target, real_inputs, run
from terwayctl.kernel import netns as nsmod
from terwayctl.lab.kubeapi.seed import configmap, daemonset, eni_conf_text
from terwayctl.lab.kubeapi.seed import node as node_object
from tests.fixtures.doctor import StatusDaemon
from tests.fixtures.emulator import EmulatorFactory, RunningEmulator
from tests.fixtures.kube import RunningKubeApi
from tests.fixtures.netns import NetnsFactory

POD_IP = "192.168.32.5"
POD_VETH = "cali5a5a5a5a5a5"
ENI_TABLE = "1001"
CONFLIST: dict[str, Any] = {"cniVersion": "1.0.0", "name": "terway", "plugins": [{"type": "terway"}]}
HOSTPORT_CONFLIST: dict[str, Any] = {"cniVersion": "1.0.0", "name": "terway", "plugins": [
    {"type": "terway", "symmetric_routing": True}, {"type": "portmap", "capabilities": {"portMappings": True}}]}


def failed(report: Report) -> set[str]:
    return {f.check_id for f in report.findings if f.status is Status.FAIL}


def text(report: Report, check_id: str) -> str:
    return "\n".join(report.finding(check_id).evidence)


# --- a node built by hand -----------------------------------------------------------------------------------


def sh(ns: str, *argv: str) -> None:
    done = subprocess.run(nsmod.command(ns, list(argv)), capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, (argv, done.stderr)


def nft(ns: str, script: str) -> None:
    script = script.replace("}", "}\n")  # one block per line, as nft -f wants them
    done = subprocess.run(nsmod.command(ns, ["nft", "-f", "-"]), input=script, capture_output=True, text=True,
                          timeout=10, check=False)
    assert done.returncode == 0, (script, done.stderr)


@dataclass
class NodeWorld:
    ns: str
    pod: str
    conf_dir: Path
    bin_dir: Path
    socket: Path
    document: dict[str, Any]
    daemon: StatusDaemon | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def doctor(self, *ids: str, **options: Any) -> Report:
        opts = DoctorOptions(scopes=frozenset({"node"}), check_ids=ids, netns=self.ns, cni_conf_dir=self.conf_dir,
                             cni_bin_dir=self.bin_dir, socket=self.socket, **options)
        return run(opts, real_inputs(opts))

    def write_conf(self, name: str, content: Any) -> None:
        (self.conf_dir / name).write_text(content if isinstance(content, str) else json.dumps(content))

    def restart_daemon(self, document: dict[str, Any] | None = None) -> None:
        if self.daemon is not None:
            self.daemon.close()
        self.socket.unlink(missing_ok=True)
        self.daemon = StatusDaemon(self.socket, document if document is not None else self.document)


@pytest.fixture
def node_world(netns: NetnsFactory, tmp_path: Path) -> Iterator[NodeWorld]:
    """A healthy Terway node (shared ENI): eth0, ENI eth1 with table 1001, one pod on a cali veth."""
    ns, pod = netns(), netns()
    sh(ns, "ip", "link", "set", "lo", "up")
    for name, address in (("eth0", "192.168.0.10/19"), ("eth1", "192.168.32.10/32")):
        sh(ns, "ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p")  # no dummy module here
        sh(ns, "ip", "addr", "add", address, "dev", name)
        sh(ns, "ip", "link", "set", f"{name}p", "up")
        sh(ns, "ip", "link", "set", name, "up")
    sh(ns, "ip", "route", "add", "default", "via", "192.168.31.253", "dev", "eth0")
    sh(ns, "ip", "route", "add", "default", "dev", "eth1", "table", ENI_TABLE)
    sh(ns, "ip", "link", "add", POD_VETH, "type", "veth", "peer", "name", "eth0", "netns", pod)
    sh(ns, "ip", "link", "set", POD_VETH, "up")
    sh(ns, "ip", "route", "add", f"{POD_IP}/32", "dev", POD_VETH)
    sh(ns, "ip", "rule", "add", "to", POD_IP, "lookup", "main", "priority", "512")
    sh(ns, "ip", "rule", "add", "from", POD_IP, "lookup", ENI_TABLE, "priority", "2048")
    for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"),
                       ("net.ipv4.conf.default.rp_filter", "0"), ("net.ipv4.conf.eth0.rp_filter", "0"),
                       ("net.ipv4.conf.eth1.rp_filter", "0"), (f"net.ipv4.conf.{POD_VETH}.rp_filter", "0")):
        nsmod.write_sysctl(ns, key, value)
    conf_dir, bin_dir = tmp_path / "net.d", tmp_path / "bin"
    conf_dir.mkdir()
    bin_dir.mkdir()
    (conf_dir / "10-terway.conflist").write_text(json.dumps(CONFLIST))
    for name in ("terway", "portmap"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    document = {"ready": True, "mode": "eniip", "pool": {"last_error": "", "vswitch_errors": []}, "allocations": [{"ip": POD_IP, "pod": "default/web",
                                                                  "eni_id": "eni-1"}],
                "enis": [{"eni_id": "eni-1", "ifname": "eth1"}]}
    world = NodeWorld(ns, pod, conf_dir, bin_dir, tmp_path / "eni.socket", document)
    world.restart_daemon()
    try:
        yield world
    finally:
        if world.daemon is not None:
            world.daemon.close()
        proc = world.extra.get("proc")
        if proc is not None:
            proc.kill()
            proc.wait(5)
            proc.stdout.close()


NODE_CHECKS = ("node.rp-filter", "node.forwarding", "node.forward-policy", "node.cni-config", "node.cni-plugin",
               "node.daemon-socket", "node.daemon-ip-errors", "node.datapath-rules", "node.datapath-kernel", "node.hostport-published",
               "node.hostport-config")


def test_the_healthy_node_has_no_failure(node_world: NodeWorld) -> None:
    report = node_world.doctor()
    assert {f.check_id: f.status for f in report.findings if f.check_id in NODE_CHECKS} == \
        dict.fromkeys(NODE_CHECKS, Status.OK), report.findings
    assert "1 pod veth(s), ENI device(s) eth1" in text(report, "node.forwarding")


@dataclass(frozen=True)
class NodeFault:
    name: str
    make: Callable[[NodeWorld], None]
    fails: frozenset[str]
    """The checks that must fail, and no other (empty: a look-alike that must not fail)."""
    evidence: tuple[str, ...] = ()
    """Substrings of the evidence of the first failing check (or of `look` when nothing fails)."""
    fix: str | None = None
    """How the fix of that check starts."""
    look: str | None = None
    """For a look-alike: the check whose evidence is asserted, and which must not fail."""
    look_status: Status = Status.WARN


def _iptables_docker(ns: str, tool: str) -> None:
    """docker's own FORWARD rule set, as dockerd writes it (policy DROP, DOCKER-USER, isolation stages)."""
    for argv in (["-N", "DOCKER"], ["-N", "DOCKER-USER"], ["-N", "DOCKER-ISOLATION-STAGE-1"],
                 ["-N", "DOCKER-ISOLATION-STAGE-2"], ["-P", "FORWARD", "DROP"],
                 ["-A", "FORWARD", "-j", "DOCKER-USER"], ["-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1"],
                 ["-A", "FORWARD", "-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j",
                  "ACCEPT"],
                 ["-A", "FORWARD", "-o", "docker0", "-j", "DOCKER"],
                 ["-A", "FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT"],
                 ["-A", "FORWARD", "-i", "docker0", "-o", "docker0", "-j", "ACCEPT"],
                 ["-A", "DOCKER-ISOLATION-STAGE-1", "-i", "docker0", "!", "-o", "docker0", "-j",
                  "DOCKER-ISOLATION-STAGE-2"],
                 ["-A", "DOCKER-ISOLATION-STAGE-1", "-j", "RETURN"],
                 ["-A", "DOCKER-ISOLATION-STAGE-2", "-o", "docker0", "-j", "DROP"],
                 ["-A", "DOCKER-ISOLATION-STAGE-2", "-j", "RETURN"], ["-A", "DOCKER-USER", "-j", "RETURN"]):
        sh(ns, tool, *argv)


def _docker_proxy(world: NodeWorld) -> None:
    listener = ("import socket,sys,time\ns=socket.socket();s.bind(('0.0.0.0',18080));s.listen()\n"
                "print('ready',flush=True)\ntime.sleep(60)")
    argv = ["bash", "-c", f'exec -a docker-proxy python3 -c "{listener}" -proto tcp -host-port 18080 '
            "-container-ip 172.17.0.9 -container-port 80"]
    proc = subprocess.Popen(nsmod.command(world.ns, argv), stdout=subprocess.PIPE, text=True)
    world.extra["proc"] = proc
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"


def _stale_socket(world: NodeWorld) -> None:
    assert world.daemon is not None
    world.daemon.close()
    world.daemon = None
    world.socket.unlink(missing_ok=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(world.socket))  # a socket file nobody listens on: what a killed daemon leaves
    dead.close()


def _regular_file_at_socket(world: NodeWorld) -> None:
    assert world.daemon is not None
    world.daemon.close()
    world.daemon = None
    world.socket.unlink(missing_ok=True)
    world.socket.write_text("")  # e.g. a hostPath volume mounted as a file


def _ip_not_enough(world: NodeWorld) -> None:
    """What the daemon keeps after CreateNetworkInterface failed on an empty vSwitch (daemon status shows it)."""
    world.restart_daemon({**world.document, "pool": {"last_error": "", "vswitch_errors": [
        {"vswitch_id": "vsw-podi", "code": "InvalidVSwitchId.IpNotEnough", "request_id": "4F3A-77",
         "message": "The specified VSwitch \"vsw-podi\" has not enough IpAddress.", "at": "2026-12-04T10:00:00Z",
         "backed_off_for": 27.5, "fix": "add a pod vSwitch in this zone"}]}})


def _not_ready(world: NodeWorld) -> None:
    world.restart_daemon({**world.document, "ready": False})


def _without_portmap(world: NodeWorld) -> None:
    world.write_conf("10-terway.conflist", HOSTPORT_CONFLIST)
    (world.bin_dir / "portmap").unlink()


def _leftover_veth(world: NodeWorld) -> None:
    sh(world.ns, "ip", "link", "add", "cali0000dead000", "type", "veth", "peer", "name", "x0")
    sh(world.ns, "ip", "link", "set", "cali0000dead000", "up")


def _conflist(content: Any) -> Callable[[NodeWorld], None]:
    return lambda w: w.write_conf("10-terway.conflist", content)


NODE_FAULTS = [
    # the FORWARD hook, every table and chain in order
    NodeFault("nft accept policy, a rule rejects the pod veths",
              lambda w: nft(w.ns, 'table inet host { chain forward { type filter hook forward priority 0; '
                                  'policy accept; iifname "cali*" reject; } }'),
              frozenset({"node.forward-policy"}),
              ("IPv4 pod -> VPC/internet (new connection), iif cali5a5a5a5a5a5, oif eth1: dropped by "
               "'iifname \"cali*\" reject'",),
              'ip netns exec {ns} nft insert rule inet host forward iifname "cali*" accept'),
    NodeFault("nft drop of the pod vSwitch's source addresses",
              lambda w: nft(w.ns, "table ip fw { chain forward { type filter hook forward priority 0; policy accept; "
                                  "ip saddr 192.168.32.0/19 counter drop; } }"),
              frozenset({"node.forward-policy"}), ("dropped by 'ip saddr 192.168.32.0/19 drop'",)),
    NodeFault("nft drop in a regular chain jumped to",
              lambda w: nft(w.ns, "table inet fw { chain pods { oifname \"eth1\" drop; } chain forward { type filter "
                                  "hook forward priority 0; policy accept; jump pods; } }"),
              frozenset({"node.forward-policy"}), ("dropped by 'oifname \"eth1\" drop'",)),
    NodeFault("two base chains: the first accepts, the second drops",
              lambda w: nft(w.ns, "table inet a { chain f { type filter hook forward priority -10; policy accept; "
                                  "accept; } } table inet b { chain f { type filter hook forward priority 10; "
                                  "policy drop; } }"),
              frozenset({"node.forward-policy"}), ("dropped by policy drop (no rule decided) in nft inet b f",)),
    NodeFault("nft policy drop that accepts only one port",
              lambda w: nft(w.ns, "table inet fw { chain forward { type filter hook forward priority 0; policy drop; "
                                  "tcp dport 443 accept; } }"),
              frozenset({"node.forward-policy"}), ("whenever 'tcp dport 443 accept' (handle 2) does not match (only ports or protocols decide",)),
    NodeFault("docker's rule set through iptables-nft (policy DROP)", lambda w: _iptables_docker(w.ns, "iptables-nft"),
              frozenset({"node.forward-policy"}),
              ("dropped by policy drop (no rule decided) in nft ip filter FORWARD",),
              "ip netns exec {ns} iptables-nft -I DOCKER-USER -i cali+ -j ACCEPT"),
    NodeFault("docker's rule set through iptables-legacy (policy DROP)",
              lambda w: _iptables_docker(w.ns, "iptables-legacy"), frozenset({"node.forward-policy"}),
              ("in iptables-legacy filter FORWARD",), "ip netns exec {ns} iptables-legacy -I DOCKER-USER -i cali+"),
    NodeFault("iptables-legacy accept policy, a rule drops the pod veths",
              lambda w: sh(w.ns, "iptables-legacy", "-A", "FORWARD", "-i", "cali+", "-j", "DROP"),
              frozenset({"node.forward-policy"}), ("dropped by '-i cali+ -j DROP'",)),
    NodeFault("an ip6 table drops: pod IPv4 traffic never traverses it",
              lambda w: nft(w.ns, "table ip6 fw { chain forward { type filter hook forward priority 0; "
                                  "policy drop; } }"),
              frozenset(), ("nft ip6 fw forward (policy drop): family ip6, pod ipv4 traffic never traverses it",),
              look="node.forward-policy", look_status=Status.OK),
    NodeFault("a bridge-family drop: routed pod traffic never traverses it",
              lambda w: nft(w.ns, "table bridge fw { chain forward { type filter hook forward priority 0; "
                                  "policy drop; } }"),
              frozenset(), ("family bridge, pod ipv4 traffic never traverses it",), look="node.forward-policy",
              look_status=Status.OK),
    # sysctls as the kernel resolves them
    NodeFault("rp_filter strict in 'all'", lambda w: nsmod.write_sysctl(w.ns, "net.ipv4.conf.all.rp_filter", "1"),
              frozenset({"node.rp-filter"}), ("eth0 (primary ENI): rp_filter 0, effective max(all 1, eth0 0) = 1",),
              "ip netns exec {ns} sysctl -w net.ipv4.conf.all.rp_filter=0"),
    NodeFault("rp_filter strict on the ENI only",
              lambda w: nsmod.write_sysctl(w.ns, "net.ipv4.conf.eth1.rp_filter", "1"),
              frozenset({"node.rp-filter"}), ("eth1 (ENI): rp_filter 1, effective max(all 0, eth1 1) = 1",),
              "ip netns exec {ns} sysctl -w net.ipv4.conf.eth1.rp_filter=0"),
    NodeFault("rp_filter strict in 'default': every new pod veth gets it",
              lambda w: nsmod.write_sysctl(w.ns, "net.ipv4.conf.default.rp_filter", "1"),
              frozenset({"node.rp-filter"}), ("net.ipv4.conf.default.rp_filter = 1", ", default: pod packets arriving"),
              "ip netns exec {ns} sysctl -w net.ipv4.conf.default.rp_filter=0"),
    NodeFault("rp_filter loose on a pod veth: a warning",
              lambda w: nsmod.write_sysctl(w.ns, f"net.ipv4.conf.{POD_VETH}.rp_filter", "2"),
              frozenset(), ("loose reverse-path filtering on cali5a5a5a5a5a5",), look="node.rp-filter"),
    NodeFault("ip_forward off", lambda w: nsmod.write_sysctl(w.ns, "net.ipv4.ip_forward", "0"),
              frozenset({"node.forwarding"}), ("net.ipv4.ip_forward = 0",),
              "ip netns exec {ns} sysctl -w net.ipv4.ip_forward=1"),
    NodeFault("forwarding off on the pod veth only",
              lambda w: nsmod.write_sysctl(w.ns, f"net.ipv4.conf.{POD_VETH}.forwarding", "0"),
              frozenset({"node.forwarding"}), (f"net.ipv4.conf.{POD_VETH}.forwarding = 0",),
              f"ip netns exec {{ns}} sysctl -w net.ipv4.conf.{POD_VETH}.forwarding=1"),
    # the CNI directories
    NodeFault("a stale 10-terway.conf beside the conflist",
              lambda w: w.write_conf("10-terway.conf", {"cniVersion": "0.4.0", "name": "terway", "type": "terway"}),
              frozenset({"node.cni-config"}), ("stale 10-terway.conf beside 10-terway.conflist",), "rm "),
    NodeFault("another network sorts first",
              lambda w: w.write_conf("05-flannel.conflist", {"cniVersion": "1.0.0", "name": "cbr0",
                                                             "plugins": [{"type": "flannel"}]}),
              frozenset({"node.cni-config"}), ("the runtime uses 05-flannel.conflist",)),
    NodeFault("a conflist with a plugin type that is a number", _conflist({**CONFLIST, "plugins": [{"type": 5}]}),
              frozenset({"node.cni-config"}), ("plugin 0: type must be a plugin name, not 5",)),
    NodeFault("portmap capabilities given as a string",
              _conflist({**HOSTPORT_CONFLIST, "plugins": [HOSTPORT_CONFLIST["plugins"][0],
                                                          {"type": "portmap", "capabilities": "portMappings"}]}),
              frozenset({"node.hostport-config"}), ("portmap capabilities must be an object, not str",)),
    NodeFault("symmetric_routing given as a string",
              _conflist({**HOSTPORT_CONFLIST, "plugins": [{"type": "terway", "symmetric_routing": "true"},
                                                          HOSTPORT_CONFLIST["plugins"][1]]}),
              frozenset({"node.hostport-config"}), ("symmetric_routing must be true or false, not str",)),
    NodeFault("portmap chained, its binary missing",
              lambda w: _without_portmap(w),
              frozenset({"node.cni-plugin"}), ("portmap: missing",)),
    NodeFault("the terway binary not executable", lambda w: (w.bin_dir / "terway").chmod(0o644),
              frozenset({"node.cni-plugin"}), ("terway: not executable",)),
    # the daemon socket
    NodeFault("a regular file where the socket belongs", _regular_file_at_socket, frozenset({"node.daemon-socket"}),
              ("exists but is a regular file, not a socket",), "rm -r "),
    NodeFault("a socket nobody listens on", _stale_socket, frozenset({"node.daemon-socket"}),
              ("is a socket nobody listens on (connection refused)",), "# the daemon is not running"),
    NodeFault("the daemon answers, not ready", _not_ready, frozenset({"node.daemon-socket"}),
              ("the daemon answers STATUS but is not ready",)),
    NodeFault("the daemon met IpNotEnough filling its pool", _ip_not_enough, frozenset({"node.daemon-ip-errors"}),
              ("vsw-podi: InvalidVSwitchId.IpNotEnough at 2026-12-04T10:00:00Z (request 4F3A-77), backing off 27.5s",),
              "terwayctl vswitch add <a vSwitch of the same zone>"),
    # the pod datapath against the daemon's allocations
    NodeFault("a leaked policy rule no pod holds",
              lambda w: sh(w.ns, "ip", "rule", "add", "from", "192.168.32.77", "lookup", ENI_TABLE, "priority",
                           "2048"),
              frozenset({"node.datapath-rules"}), ("192.168.32.77: ip rules left behind",),
              f"ip netns exec {{ns}} ip rule del from 192.168.32.77 lookup {ENI_TABLE} priority 2048"),
    NodeFault("the pod's from-rule deleted",
              lambda w: sh(w.ns, "ip", "rule", "del", "from", POD_IP, "lookup", ENI_TABLE, "priority", "2048"),
              frozenset({"node.datapath-rules"}),
              (f"missing ip rule 'from {POD_IP} lookup {ENI_TABLE}' (priority 2048, the table of eni-1)",),
              f"ip netns exec {{ns}} ip rule add from {POD_IP} lookup {ENI_TABLE} priority 2048"),
    NodeFault("a leftover pod veth without a route",
              lambda w: _leftover_veth(w),
              frozenset({"node.datapath-rules"}), ("cali0000dead000: a pod veth without a route or allocation",),
              "ip netns exec {ns} ip link del cali0000dead000"),
    # ports published outside Kubernetes
    NodeFault("docker publishes a port with a DNAT rule (shared ENI)",
              lambda w: nft(w.ns, "table ip nat { chain DOCKER { iifname != \"docker0\" tcp dport 8080 dnat to "
                                  "172.17.0.2:80; } chain PREROUTING { type nat hook prerouting priority dstnat; "
                                  "policy accept; fib daddr type local jump DOCKER; } }"),
              frozenset({"node.hostport-published"}),
              ("shared-ENI mode (eniip, from the daemon's STATUS): pods on this node cannot reach tcp/8080",)),
    NodeFault("a DNAT rule in a DOCKER chain nothing jumps to: no effect",
              lambda w: nft(w.ns, "table ip nat { chain DOCKER { tcp dport 8080 dnat to 172.17.0.2:80; } }"),
              frozenset(), ("not jumped to from the nat PREROUTING hook",), look="node.hostport-published"),
    NodeFault("docker-proxy listens, no DNAT rule: pods reach it", _docker_proxy, frozenset(),
              ("only docker-proxy (a userland listener) serves it",), look="node.hostport-published"),
]


@pytest.mark.parametrize("fault", NODE_FAULTS, ids=[f.name for f in NODE_FAULTS])
def test_node_fault(node_world: NodeWorld, fault: NodeFault) -> None:
    fault.make(node_world)
    report = node_world.doctor()
    assert failed(report) == set(fault.fails), report.findings
    check_id = fault.look or sorted(fault.fails)[0]
    found = report.finding(check_id)
    for line in fault.evidence:
        assert line in "\n".join(found.evidence), (line, found.evidence)
    if fault.look is not None:
        assert found.status is fault.look_status, found
    if fault.fix is not None:
        assert found.fix is not None and found.fix.startswith(fault.fix.format(ns=node_world.ns)), found.fix
    assert report.failed is bool(fault.fails)


def test_a_host_that_is_not_a_terway_node_gets_skips(netns: NetnsFactory, tmp_path: Path) -> None:
    ns = netns()
    nsmod.write_sysctl(ns, "net.ipv4.ip_forward", "0")  # an ordinary host: no forwarding, and that is right
    nsmod.write_sysctl(ns, "net.ipv4.conf.all.rp_filter", "1")
    nft(ns, "table inet filter { chain forward { type filter hook forward priority 0; policy drop; } }")
    opts = DoctorOptions(netns=ns, cni_conf_dir=tmp_path / "net.d", cni_bin_dir=tmp_path / "bin",
                         socket=tmp_path / "eni.socket")
    report = run(opts, real_inputs(opts, kubeconfig=str(tmp_path / "no-kubeconfig")))
    assert not report.failed, report.findings
    for check_id in NODE_CHECKS:
        found = report.finding(check_id)
        assert found.status is Status.SKIP and found.fix is None, found
    assert report.finding("node.forwarding").evidence[0].startswith("not a Terway node: no Terway CNI configuration")


# --- the cloud, through the real SDK against the emulator ------------------------------------------------------


def _healthy_scenario() -> dict[str, Any]:
    from terwayctl.emulator.world import DEFAULT_SCENARIO

    scenario: dict[str, Any] = json.loads(json.dumps(DEFAULT_SCENARIO))
    gateway = scenario["nat_gateways"][0]
    gateway["snat_entries"] += [
        {"id": "snat-emupodi", "source_vswitch": "vsw-emupodi", "snat_ip": "203.0.113.10"},
        {"id": "snat-emupodj", "source_cidr": "192.168.96.0/19", "snat_ip": "203.0.113.10"},
        {"id": "snat-emutiny", "source_vswitch": "vsw-emutiny", "snat_ip": "203.0.113.10"},
        {"id": "snat-emunew", "source_vswitch": "vsw-emunew", "snat_ip": "203.0.113.10"},
    ]
    # a vSwitch someone gave its own route table (and no default route): not a pod vSwitch yet
    scenario["route_tables"] = [{"id": "vtb-emucustom", "vpc": "vpc-emudefault", "name": "custom",
                                 "vswitches": ["vsw-emunew"], "routes": []}]
    scenario["vswitches"] += [{"id": "vsw-emutiny", "zone": "cn-hangzhou-j", "cidr": "192.168.128.0/29"},
                              {"id": "vsw-emuold", "zone": "cn-hangzhou-i", "cidr": "192.168.160.0/19"},
                              {"id": "vsw-emunew", "zone": "cn-hangzhou-j", "cidr": "192.168.192.0/19"}]
    scenario["instances"].append({"id": "i-emusmall", "type": "ecs.t5-lc1m1.small", "vswitch": "vsw-emunodei",
                                  "primary_eni": "eni-emusmall", "name": "small"})
    return scenario


CLOUD_CONF: dict[str, Any] = {"vswitches": {"cn-hangzhou-i": ["vsw-emupodi"],
                                            "cn-hangzhou-j": ["vsw-emupodj", "vsw-emutiny"]},
                              "security_group": "sg-emudefault"}
NODES = ("i-emunode1", "i-emunode2", "i-emunode3")


@dataclass
class CloudWorld:
    emu: RunningEmulator
    client: CloudClient
    conf: Path
    instances: list[str]
    options: dict[str, Any] = field(default_factory=dict)

    def doctor(self) -> Report:
        opts = DoctorOptions(scopes=frozenset({"cloud"}), eni_conf_file=self.conf, instance_ids=tuple(self.instances),
                             low_free_ips=1, **self.options)
        return run(opts, Inputs(cloud=lambda: self.client))

    def edit_conf(self, **changes: Any) -> None:
        conf = {**json.loads(self.conf.read_text()), **changes}
        self.conf.write_text(json.dumps(conf))

    def vpc(self, action: str, **params: Any) -> dict[str, Any]:
        from terwayctl.emulator import VPC_VERSION

        reply = self.emu.call(action, VPC_VERSION, extra={k: str(v) for k, v in params.items()})
        assert reply.status == 200, reply.body
        return reply.body


@pytest.fixture
def cloud_world(emulator_factory: EmulatorFactory, make_client: Callable[..., CloudClient],
                tmp_path: Path) -> CloudWorld:
    emu = emulator_factory(_healthy_scenario())
    conf = tmp_path / "eni_conf.json"
    conf.write_text(json.dumps(CLOUD_CONF))
    return CloudWorld(emu, make_client(emu), conf, list(NODES))


def test_the_healthy_cloud_has_no_failure(cloud_world: CloudWorld) -> None:
    report = cloud_world.doctor()
    assert [f.status for f in report.findings] == [Status.OK] * len(report.findings), report.findings


def _tagged_eni(world: CloudWorld, vswitch: str = "vsw-emupodi", instance: str = "i-emunode1") -> str:
    eni = world.client.create_network_interface(vswitch_id=vswitch, security_group_ids=["sg-emudefault"],
                                                tags={"terway.node": instance})
    return eni.network_interface_id


def _truncate(path: Path) -> None:
    path.write_text('{"vswitches": {"cn-hangzhou-i": ')  # a write cut short (disk full, a killed copy)


def _leak(world: CloudWorld) -> None:
    _tagged_eni(world)


def _fill(world: CloudWorld, vswitch: str) -> None:
    while True:
        eni = world.client.create_network_interface(vswitch_id=vswitch, security_group_ids=["sg-emudefault"])
        if not [v for v in world.client.describe_vswitches(vswitch_ids=[vswitch]) if v.available_ip_count]:
            return
        assert eni.network_interface_id


def _delete_snat(world: CloudWorld, entry: str) -> None:
    world.vpc("DeleteSnatEntry", RegionId=world.emu.region, SnatTableId="stb-emudefault", SnatEntryId=entry)


def test_a_tagged_eni_on_an_instance_that_left_the_cluster(cloud_world: CloudWorld, kube_api: RunningKubeApi) -> None:
    """The cluster's nodes (providerID) are node-1 and node-3: i-emunode2 left it, the ENI its daemon made stayed."""
    kube_api.create(configmap("eni-config", eni_conf_text(CLOUD_CONF)))
    for name, instance in (("node-1", "i-emunode1"), ("node-3", "i-emunode3")):
        obj = node_object(name, "ecs.g7.xlarge", "cn-hangzhou-i", max_pods=20)
        obj["spec"] = {"providerID": f"cn-hangzhou.{instance}"}
        kube_api.create(obj)
    opts = DoctorOptions(scopes=frozenset({"cloud"}), low_free_ips=1)
    inputs = real_inputs(opts, kubeconfig=str(kube_api.kubeconfig))
    inputs.cloud = lambda: cloud_world.client
    assert not run(opts, inputs).failed
    eni = _tagged_eni(cloud_world, "vsw-emupodi", "i-emunode2")
    cloud_world.client.attach_network_interface(eni, "i-emunode2")
    report = run(opts, inputs)
    assert failed(report) == {"cloud.leaked-enis"}, report.findings
    found = report.finding("cloud.leaked-enis")
    assert f"{eni}: attached to i-emunode2, which is not a node of the cluster" in found.evidence
    assert found.fix == (f"aliyun ecs DetachNetworkInterface --RegionId cn-hangzhou --InstanceId i-emunode2 "
                         f"--NetworkInterfaceId {eni}")


def _drift(world: CloudWorld) -> None:
    eni = world.client.create_network_interface(vswitch_id="vsw-emuold", security_group_ids=["sg-emudefault"])
    world.client.attach_network_interface(eni.network_interface_id, "i-emunode1")


def _fill_node(world: CloudWorld) -> None:
    for _ in range(2):  # i-emunode2 is an ecs.g6.xlarge: 3 ENIs x 10 IPs
        ni = world.client.create_network_interface(vswitch_id="vsw-emupodi", security_group_ids=["sg-emudefault"],
                                                   secondary_ip_count=9)
        world.client.attach_network_interface(ni.network_interface_id, "i-emunode2")
    world.client.assign_private_ip_addresses("eni-emunode2", count=9)


def _new_pod_vswitch(world: CloudWorld) -> None:
    """`terwayctl vswitch add vsw-emunew`, as an operator does: its custom route table has no default route."""
    world.edit_conf(vswitches={**CLOUD_CONF["vswitches"],
                               "cn-hangzhou-j": [*CLOUD_CONF["vswitches"]["cn-hangzhou-j"], "vsw-emunew"]})


def _route_via_instance(world: CloudWorld) -> None:
    _new_pod_vswitch(world)
    world.vpc("CreateRouteEntry", RegionId=world.emu.region, RouteTableId="vtb-emucustom",
              DestinationCidrBlock="0.0.0.0/0", NextHopType="Instance", NextHopId="i-emunode3")


def _partial_snat(world: CloudWorld) -> None:
    _delete_snat(world, "snat-emupodj")
    world.vpc("CreateSnatEntry", RegionId=world.emu.region, SnatTableId="stb-emudefault",
              SourceCIDR="192.168.96.0/20", SnatIp="203.0.113.10")


@dataclass(frozen=True)
class CloudFault:
    name: str
    make: Callable[[CloudWorld], None]
    fails: frozenset[str]
    evidence: tuple[str, ...]
    fix: str | None = None


CLOUD_FAULTS = [
    CloudFault("the pod vSwitch's SNAT entry deleted", lambda w: _delete_snat(w, "snat-emutiny"),
               frozenset({"cloud.snat-coverage"}), ("vsw-emutiny (pod, 192.168.128.0/29, cn-hangzhou-j): no SNAT entry",),
               "aliyun vpc CreateSnatEntry --RegionId cn-hangzhou --SnatTableId stb-emudefault --SourceVSwitchId "
               "vsw-emutiny --SnatIp 203.0.113.10"),
    CloudFault("a SourceCIDR covering half of the pod vSwitch", _partial_snat, frozenset({"cloud.snat-coverage"}),
               ("vsw-emupodj (pod, 192.168.96.0/19, cn-hangzhou-j): only partly covered: 192.168.96.0/20 by ",
                "not covered: 192.168.112.0/20"),
               "aliyun vpc CreateSnatEntry --RegionId cn-hangzhou --SnatTableId stb-emudefault --SourceVSwitchId "
               "vsw-emupodj"),
    CloudFault("a node with an EIP, its pods without SNAT", lambda w: _delete_snat(w, "snat-emupodi"),
               frozenset({"cloud.snat-coverage", "cloud.eip-trap"}),
               ("i-emunode1 (cn-hangzhou-i) has EIP 203.0.113.11: the node reaches the internet, but its pods on "
                "vsw-emupodi do not",)),
    CloudFault("the pod vSwitch out of addresses", lambda w: _fill(w, "vsw-emutiny"),
               frozenset({"cloud.vswitch-free-ips"}), ("vsw-emutiny (pod, cn-hangzhou-j, 192.168.128.0/29): 0 free IPs",),
               "add a pod vSwitch"),
    CloudFault("an instance out of ENIs and IPs", _fill_node, frozenset({"cloud.eni-slots"}),
               ("i-emunode2 (ecs.g6.xlarge): 3/3 ENIs attached, 30/30 private IPs (exhausted",)),
    CloudFault("an ENI the daemon created, left Available", lambda w: _leak(w),
               frozenset({"cloud.leaked-enis"}), ("Available, created by the daemon of i-emunode1 (terway.node)",),
               "aliyun ecs DeleteNetworkInterface --RegionId cn-hangzhou --NetworkInterfaceId eni-"),
    CloudFault("a node's ENI on a vSwitch removed from eni_conf", _drift, frozenset({"cloud.eni-drift"}),
               ("on vsw-emuold, which eni_conf no longer lists for cn-hangzhou-i",),
               "# after moving the pods off i-emunode1 (kubectl drain <its node>):\naliyun ecs DetachNetworkInterface "
               "--RegionId cn-hangzhou --InstanceId i-emunode1 --NetworkInterfaceId eni-"),
    CloudFault("a pod vSwitch whose route table has no default route", _new_pod_vswitch,
               frozenset({"cloud.pod-routes"}),
               ("vsw-emunew (pod): route table vtb-emucustom (Custom): no 0.0.0.0/0 route, not to a NAT gateway",),
               "aliyun vpc CreateRouteEntry --RegionId cn-hangzhou --RouteTableId vtb-emucustom --DestinationCidrBlock "
               "0.0.0.0/0 --NextHopType NatGateway --NextHopId ngw-emudefault"),
    CloudFault("a pod vSwitch routing 0.0.0.0/0 to an instance", _route_via_instance,
               frozenset({"cloud.pod-routes"}), ("0.0.0.0/0 -> Instance:i-emunode3, not to a NAT gateway",)),
    CloudFault("a zone with nodes, its vSwitches removed from eni_conf",
               lambda w: w.edit_conf(vswitches={"cn-hangzhou-i": ["vsw-emupodi"]}),
               frozenset({"cloud.vswitch-zones"}), ("zone cn-hangzhou-j has 1 node(s) but no pod vSwitch in eni_conf",)),
    CloudFault("a vSwitch configured under the wrong zone",
               lambda w: w.edit_conf(vswitches={"cn-hangzhou-i": ["vsw-emupodi", "vsw-emutiny"],
                                                "cn-hangzhou-j": ["vsw-emupodj"]}),
               frozenset({"cloud.vswitch-zones"}), ("vsw-emutiny is configured under zone cn-hangzhou-i but lives in "
                                                    "cn-hangzhou-j",)),
    CloudFault("a node that no longer exists", lambda w: w.instances.append("i-emugone"),
               frozenset({"cloud.vswitch-zones"}), ("instance i-emugone (from --instance-id) does not exist",)),
    CloudFault("a node of a type below the ACK minimum joins", lambda w: w.instances.append("i-emusmall"),
               frozenset({"cloud.instance-types"}),
               ("ecs.t5-lc1m1.small (i-emusmall): EniQuantity 2, 2 IPv4 / 1 IPv6 per ENI, trunk no: shared ENI mode "
                "needs (EniQuantity - 1) x IPs per ENI > 11, has (2 - 1) x 2 = 2",)),
    # terwayctl's daemon refuses trunking: the eni_conf check says so as well; dual stack it runs,
    # but a node of an ineligible type falls back to IPv4 only
    CloudFault("trunking on types without trunk ENIs", lambda w: w.edit_conf(enable_eni_trunking=True),
               frozenset({"cloud.instance-types", "cloud.eni-conf"}), ("ENI trunking is on, but the type does not support trunk ENIs",)),
    CloudFault("dual stack on a type with fewer IPv6 than IPv4 per ENI", lambda w: w.edit_conf(ip_stack="dual"),
               frozenset({"cloud.instance-types"}),
               ("ecs.g6.xlarge (i-emunode2): EniQuantity 3, 10 IPv4 / 1 IPv6 per ENI",
                "dual stack needs as many IPv6 as IPv4 addresses per ENI")),
    CloudFault("the node's eni_conf file corrupted", lambda w: _truncate(w.conf),
               frozenset({"cloud.eni-conf"}), ("not valid JSON",)),
]


@pytest.mark.parametrize("fault", CLOUD_FAULTS, ids=[f.name for f in CLOUD_FAULTS])
def test_cloud_fault(cloud_world: CloudWorld, fault: CloudFault) -> None:
    fault.make(cloud_world)
    report = cloud_world.doctor()
    assert failed(report) == set(fault.fails), report.findings
    evidence = "\n".join(e for check_id in fault.fails for e in report.finding(check_id).evidence)
    for line in fault.evidence:
        assert line in evidence, (line, evidence)
    found = report.finding(min(fault.fails))
    if fault.fix is not None:
        assert found.fix is not None and found.fix.startswith(fault.fix), found.fix


# --- the cluster, through the real client against the test API server ---------------------------------------

CLUSTER_CONF = {"vswitches": {"cn-hangzhou-i": ["vsw-podi"]}, "security_groups": ["sg-a"]}


def _kube(kube_api: RunningKubeApi) -> Any:
    from terwayctl.kube.client import connect

    return connect(str(kube_api.kubeconfig), None, request_timeout=10.0)


def _seed_healthy(kube_api: RunningKubeApi) -> None:
    kube_api.create(node_object("node-1", "ecs.g7.4xlarge", "cn-hangzhou-i", max_pods=64))
    kube_api.create(node_object("node-2", "ecs.g7.4xlarge", "cn-hangzhou-i", max_pods=64))
    kube_api.create(configmap("eni-config", eni_conf_text(CLUSTER_CONF)))
    kube_api.create(daemonset())


def _replace_config(kube_api: RunningKubeApi, **data: str) -> None:
    client = _kube(kube_api)
    try:
        obj = client.get("v1", "configmaps", "eni-config", "kube-system")
        obj["data"] = {**obj.get("data", {}), **data}
        client.replace("v1", "configmaps", obj)
    finally:
        client.close()


def _delete_config(kube_api: RunningKubeApi) -> None:
    client = _kube(kube_api)
    try:
        client.request("DELETE", "/api/v1/namespaces/kube-system/configmaps/eni-config", what="delete eni-config")
    finally:
        client.close()


def _label_node(kube_api: RunningKubeApi, name: str, **labels: str) -> None:
    client = _kube(kube_api)
    try:
        client.patch("v1", "nodes", name, {"metadata": {"labels": labels}},
                     content_type="application/merge-patch+json")
    finally:
        client.close()


def _event(kube_api: RunningKubeApi) -> None:
    client = _kube(kube_api)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        client.request("POST", "/api/v1/namespaces/default/events", what="create event", body={
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "reason": "FailedCreatePodSandBox", "type": "Warning", "count": 2, "lastTimestamp": now,
            "message": "plugin type=terway failed: InvalidVSwitchId.IpNotEnough (vsw-podi)"})
    finally:
        client.close()


def _unready(kube_api: RunningKubeApi) -> None:
    kube_api.server.roll_daemonset("kube-system", "terway-eniip", unready_nodes={"node-2"})


def _big_node(kube_api: RunningKubeApi) -> None:
    kube_api.create(node_object("node-3", "ecs.g6.xlarge", "cn-hangzhou-i", max_pods=110))


CLUSTER_FAULTS: list[tuple[str, Callable[[RunningKubeApi], None], str, str]] = [
    ("eni-config deleted", _delete_config, "cluster.eni-config", "ConfigMap kube-system/eni-config does not exist"),
    ("eni_conf not JSON", lambda k: _replace_config(k, eni_conf="{\"vswitches\": "), "cluster.eni-config",
     "not valid JSON"),
    ("the conflist key broken", lambda k: _replace_config(k, **{"10-terway.conflist": "{"}), "cluster.eni-config",
     "10-terway.conflist: not valid JSON"),
    ("a node labelled with a missing override", lambda k: _label_node(k, "node-1", **{"terway-config": "gone"}),
     "cluster.eni-config", "terway-config=gone"),
    ("a Terway pod not ready", _unready, "cluster.daemonset", "1 node(s) without a ready Terway pod"),
    ("IpNotEnough in the events", _event, "cluster.ip-errors", "InvalidVSwitchId.IpNotEnough"),
    ("a node whose max-pods exceeds its pod IPs", _big_node, "cluster.max-pods", "node-3: kubelet max-pods 110 >"),
]


def _cluster_report(kube_api: RunningKubeApi) -> Report:
    opts = DoctorOptions(scopes=frozenset({"cluster"}))
    return run(opts, real_inputs(opts, kubeconfig=str(kube_api.kubeconfig)))


def test_the_healthy_cluster_has_no_failure(kube_api: RunningKubeApi) -> None:
    _seed_healthy(kube_api)
    report = _cluster_report(kube_api)
    assert not report.failed, report.findings
    for check_id in ("cluster.daemonset", "cluster.eni-config", "cluster.max-pods", "cluster.ip-errors"):
        assert report.finding(check_id).status is Status.OK, report.finding(check_id)


@pytest.mark.parametrize(("make", "check_id", "evidence"), [c[1:] for c in CLUSTER_FAULTS],
                         ids=[c[0] for c in CLUSTER_FAULTS])
def test_cluster_fault(kube_api: RunningKubeApi, make: Callable[[RunningKubeApi], None], check_id: str,
                       evidence: str) -> None:
    _seed_healthy(kube_api)
    make(kube_api)
    report = _cluster_report(kube_api)
    assert failed(report) == {check_id}, report.findings
    assert evidence in text(report, check_id)


# --- probes between namespaces this test creates --------------------------------------------------------------

TARGET = Target("198.51.100.1", 8443)


@dataclass
class ProbeWorld:
    node: str
    internet: str
    pod: str
    conf_dir: Path
    server: socket.socket

    def doctor(self, target: Target = TARGET) -> Report:
        opts = DoctorOptions(check_ids=("node.forward-policy", "node.forwarding", "node.rp-filter", "probe.external"),
                             netns=self.node, probe=True, probe_from=self.pod, external_target=target,
                             probe_timeout=1.0, cni_conf_dir=self.conf_dir)
        return run(opts, real_inputs(opts))


@pytest.fixture
def probe_world(netns: NetnsFactory, tmp_path: Path) -> Iterator[ProbeWorld]:
    """pod (10.99.1.5) -- cali veth -- node (10.99.0.1) -- internet (10.99.0.2, 198.51.100.1:8443 listening)."""
    node, internet, pod = netns(), netns(), netns()
    sh(node, "ip", "link", "add", "wan", "type", "veth", "peer", "name", "eth0", "netns", internet)
    for ns, ifname, address in ((node, "wan", "10.99.0.1/24"), (internet, "eth0", "10.99.0.2/24")):
        sh(ns, "ip", "addr", "add", address, "dev", ifname)
        sh(ns, "ip", "link", "set", ifname, "up")
        sh(ns, "ip", "link", "set", "lo", "up")
    sh(internet, "ip", "addr", "add", "198.51.100.1/32", "dev", "lo")
    sh(internet, "ip", "route", "add", "10.99.1.0/24", "via", "10.99.0.1")
    sh(node, "ip", "route", "add", "default", "via", "10.99.0.2")
    nsmod.write_sysctl(node, "net.ipv4.ip_forward", "1")
    sh(node, "ip", "link", "add", "calipod", "type", "veth", "peer", "name", "eth0", "netns", pod)
    sh(node, "ip", "link", "set", "calipod", "up")
    sh(node, "ip", "route", "add", "10.99.1.5/32", "dev", "calipod")
    sh(pod, "ip", "addr", "add", "10.99.1.5/32", "dev", "eth0")
    sh(pod, "ip", "link", "set", "eth0", "up")
    sh(pod, "ip", "route", "add", "10.99.0.1/32", "dev", "eth0")
    sh(pod, "ip", "route", "add", "default", "via", "10.99.0.1", "dev", "eth0")
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-terway.conflist").write_text(json.dumps(CONFLIST))
    server = nsmod.socket_in(internet, socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind(("198.51.100.1", 8443))
        server.listen(16)
        yield ProbeWorld(node, internet, pod, conf_dir, server)
    finally:
        server.close()


def test_the_healthy_probe_path_has_no_failure(probe_world: ProbeWorld) -> None:
    report = probe_world.doctor()
    assert not report.failed, report.findings
    assert report.finding("probe.external").status is Status.OK


def _node_drops(world: ProbeWorld) -> Target:
    nft(world.node, 'table inet fw { chain forward { type filter hook forward priority 0; policy accept; '
                    'iifname "cali*" drop; } }')
    return TARGET


def _no_return_route(world: ProbeWorld) -> Target:
    sh(world.internet, "ip", "route", "del", "10.99.1.0/24")
    return TARGET


def _no_default_route(world: ProbeWorld) -> Target:
    sh(world.pod, "ip", "route", "del", "default")
    return TARGET


PROBE_FAULTS: list[tuple[str, Callable[[ProbeWorld], Target], set[str], str]] = [
    ("the node drops forwarded pod traffic", _node_drops,
     {"probe.external", "node.forward-policy"}, "failed hop: node (it does not forward the pod's packets)"),
    ("nothing routes the pod's source back", _no_return_route,
     {"probe.external"}, "failed hop: between the node and the target (node checks are ok; the VPC part is unknown "
                         "without cloud inputs)"),
    ("the target's port is closed", lambda w: Target("198.51.100.1", 8444),
     {"probe.external"}, "failed hop: target (it answers, but nothing listens on the port)"),
    ("the pod has no default route", _no_default_route,
     {"probe.external"}, "failed hop: pod (its namespace has no route)"),
]


@pytest.mark.parametrize(("make", "fails", "hop"), [p[1:] for p in PROBE_FAULTS], ids=[p[0] for p in PROBE_FAULTS])
def test_probe_fault(probe_world: ProbeWorld, make: Callable[[ProbeWorld], Target], fails: set[str],
                     hop: str) -> None:
    target = make(probe_world)
    report = probe_world.doctor(target)
    assert failed(report) == fails, report.findings
    assert report.finding("probe.external").evidence[-1] == hop


def test_a_probe_that_gets_through_overrules_the_static_reading(probe_world: ProbeWorld) -> None:
    # a drop rule for a port the probe does not use: the static reading says some pod traffic is dropped,
    # the probe to 8443 gets through; doctor says both, and trusts the probe
    nft(probe_world.node, "table inet fw { chain forward { type filter hook forward priority 0; policy drop; "
                          "tcp dport 8443 accept; tcp sport 8443 accept; } }")
    report = probe_world.doctor()
    assert not report.failed, report.findings
    policy = report.finding("node.forward-policy")
    assert policy.status is Status.WARN
    assert "the static reading says dropped, the probe says the pod reaches it; trusting the probe" in policy.evidence[-1]


def test_the_metadata_service(probe_world: ProbeWorld) -> None:
    opts = DoctorOptions(check_ids=("probe.metadata",), netns=probe_world.node, probe=True, probe_timeout=1.0,
                         cni_conf_dir=probe_world.conf_dir)
    # nothing answers at 100.100.100.200: the route leads to the "internet", which drops it
    found = run(opts, real_inputs(opts)).finding("probe.metadata")
    assert found.status is Status.FAIL
    assert found.evidence[0].startswith(f"tcp connect 100.100.100.200:80 from node netns {probe_world.node}: ")
    assert found.evidence[1].startswith("failed hop: node or VPC router")
    sh(probe_world.internet, "ip", "addr", "add", "100.100.100.200/32", "dev", "lo")
    metadata = nsmod.socket_in(probe_world.internet, socket.AF_INET, socket.SOCK_STREAM)
    try:
        metadata.bind(("100.100.100.200", 80))
        metadata.listen(4)
        assert run(opts, real_inputs(opts)).finding("probe.metadata").status is Status.OK
        sh(probe_world.node, "ip", "route", "del", "default")
        found = run(opts, real_inputs(opts)).finding("probe.metadata")
        assert found.status is Status.FAIL and found.evidence[1] == ("failed hop: node (no route to the metadata "
                                                                     "service)")
        assert found.fix is not None and found.fix.startswith(
            f"ip netns exec {probe_world.node} ip route add 100.100.100.200/32 via $(ip netns exec {probe_world.node} "
            "ip -4 route show default dev eth0")
    finally:
        metadata.close()


def test_the_route_fix_as_printed_repairs_it(cloud_world: CloudWorld) -> None:
    _new_pod_vswitch(cloud_world)
    fix = cloud_world.doctor().finding("cloud.pod-routes").fix
    assert fix is not None
    argv = fix.split()
    assert argv[:3] == ["aliyun", "vpc", "CreateRouteEntry"]
    cloud_world.vpc(argv[2], **{argv[i].removeprefix("--"): argv[i + 1] for i in range(3, len(argv), 2)})
    report = cloud_world.doctor()
    assert report.finding("cloud.pod-routes").status is Status.OK, report.finding("cloud.pod-routes")
    assert not report.failed
