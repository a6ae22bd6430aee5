"""Node checks: unit tests with a fake node reader (and real tmp CNI dirs), end to end in namespaces."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from terwayctl.doctor import DoctorOptions, Inputs, Status, real_inputs, run
from terwayctl.doctor.readers import (
    DaemonAllocation,
    DaemonNotAnswering,
    DaemonSetState,
    DaemonStatus,
    DatapathState,
    PublishedPort,
)
from terwayctl.kernel import netns as nsmod
from tests.fixtures.doctor import FakeKube, FakeNode, RunOne, StatusDaemon, terway_conf_dir
from tests.fixtures.netns import NetnsFactory

CONFLIST = {"cniVersion": "1.0.0", "name": "terway", "plugins": [{"type": "terway"}]}
HOSTPORT_CONFLIST = {"cniVersion": "1.0.0", "name": "terway", "plugins": [
    {"type": "terway", "symmetric_routing": True},
    {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]}


def conf_dir(tmp_path: Path, files: dict[str, Any]) -> Path:
    path = tmp_path / "net.d"
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def bin_dir(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "bin"
    path.mkdir(exist_ok=True)
    for name in names:
        (path / name).write_text("#!/bin/sh\n")
        (path / name).chmod(0o755)
    return path


# --- unit ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "status"), [("0", Status.OK), ("2", Status.WARN), ("1", Status.FAIL)])
def test_rp_filter(run_one: RunOne, value: str, status: Status) -> None:
    fake = FakeNode()
    fake.sysctls["net.ipv4.conf.all.rp_filter"] = value
    found = run_one("node.rp-filter", node=fake)
    assert found.status is status
    assert f"net.ipv4.conf.all.rp_filter = {value} in netns fake" in found.evidence
    if status is Status.FAIL:
        assert found.fix is not None and found.fix.startswith("sysctl -w net.ipv4.conf.all.rp_filter=0")


def test_rp_filter_without_eth0_and_forwarding(run_one: RunOne) -> None:
    fake = FakeNode()
    del fake.sysctls["net.ipv4.conf.eth0.rp_filter"]
    found = run_one("node.rp-filter", node=fake)
    assert found.status is Status.OK and "net.ipv4.conf.eth0.rp_filter: no such interface in netns fake" in found.evidence
    fake.sysctls["net.ipv4.ip_forward"] = "0"
    found = run_one("node.forwarding", node=fake, netns="lab-node1")
    assert found.status is Status.FAIL
    assert found.fix is not None and found.fix.startswith("ip netns exec lab-node1 sysctl -w net.ipv4.ip_forward=1")


def test_node_checks_skip_when_not_on_a_node(run_one: RunOne) -> None:
    found = run_one("node.rp-filter")
    assert found.status is Status.SKIP and found.evidence == ("not looking at a node",)


def _chain(policy: str) -> dict[str, Any]:
    return {"chain": {"family": "inet", "table": "filter", "name": "forward", "hook": "forward", "policy": policy}}


def _rule() -> dict[str, Any]:
    return {"rule": {"family": "inet", "table": "filter", "chain": "forward", "expr": [{"accept": None}]}}


def test_forward_policy(run_one: RunOne) -> None:
    assert run_one("node.forward-policy", node=FakeNode(ruleset=[_chain("accept")])).status is Status.OK
    dropped = run_one("node.forward-policy", node=FakeNode(ruleset=[_chain("drop")]))
    assert dropped.status is Status.FAIL
    assert dropped.evidence[0] == ("forward hook, IPv4 in netns fake: nft inet filter forward (prio 0, policy drop, "
                                   "0 rule(s))")
    assert dropped.evidence[1] == ("IPv4 pod -> VPC/internet (new connection), iif cali*, oif an ENI: dropped by "
                                   "policy drop (no rule decided) in nft inet filter forward")
    assert dropped.fix == ('nft insert rule inet filter forward iifname "cali*" accept\n'
                           'nft insert rule inet filter forward oifname "cali*" accept')
    assert run_one("node.forward-policy", node=FakeNode(ruleset=[_chain("drop"), _rule()])).status is Status.OK
    legacy = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\nCOMMIT\n"
    found = run_one("node.forward-policy", node=FakeNode(ruleset=None, legacy=legacy), netns="node-1")
    assert found.status is Status.FAIL and "iptables-legacy filter FORWARD (prio 0, policy drop" in found.evidence[0]
    assert found.fix is not None
    assert found.fix.splitlines()[0] == "ip netns exec node-1 iptables-legacy -I FORWARD -i cali+ -j ACCEPT"
    assert run_one("node.forward-policy", node=FakeNode(ruleset=None)).status is Status.SKIP


def test_cni_config(run_one: RunOne, tmp_path: Path) -> None:
    good = conf_dir(tmp_path / "a", {"10-terway.conflist": CONFLIST})
    found = run_one("node.cni-config", node=FakeNode(), cni_conf_dir=good)
    assert found.status is Status.OK
    assert "the runtime uses 10-terway.conflist: cniVersion 1.0.0, plugins terway" in found.evidence
    stale = conf_dir(tmp_path / "b", {"10-terway.conflist": CONFLIST, "10-terway.conf": {
        "cniVersion": "0.4.0", "name": "terway", "type": "terway"}})
    found = run_one("node.cni-config", node=FakeNode(), cni_conf_dir=stale)
    assert found.status is Status.FAIL
    assert found.fix == f"rm {stale / '10-terway.conf'}"
    other = conf_dir(tmp_path / "c", {"10-terway.conflist": CONFLIST, "05-flannel.conflist": {
        "cniVersion": "1.0.0", "name": "cbr0", "plugins": [{"type": "flannel"}]}})
    found = run_one("node.cni-config", node=FakeNode(), cni_conf_dir=other)
    assert found.status is Status.FAIL and "the runtime uses 05-flannel.conflist" in found.evidence[-1]
    broken = conf_dir(tmp_path / "d", {"10-terway.conflist": "{"})
    assert run_one("node.cni-config", node=FakeNode(), cni_conf_dir=broken).status is Status.FAIL
    empty = conf_dir(tmp_path / "e", {})
    assert run_one("node.cni-config", node=FakeNode(), cni_conf_dir=empty).status is Status.SKIP  # not a Terway node
    (tmp_path / "eni.socket").touch()
    found = run_one("node.cni-config", node=FakeNode(), cni_conf_dir=empty, socket=tmp_path / "eni.socket")
    assert found.status is Status.FAIL and "without its CNI configuration" in found.evidence[-1]
    missing = run_one("node.cni-config", node=FakeNode(), cni_conf_dir=tmp_path / "nowhere")
    assert missing.status is Status.SKIP


def test_cni_plugin(run_one: RunOne, tmp_path: Path) -> None:
    confs = conf_dir(tmp_path, {"10-terway.conflist": HOSTPORT_CONFLIST})
    found = run_one("node.cni-plugin", node=FakeNode(), cni_conf_dir=confs, cni_bin_dir=bin_dir(tmp_path, ["terway"]))
    assert found.status is Status.FAIL
    assert f"{tmp_path / 'bin' / 'portmap'}: missing" in found.evidence
    found = run_one("node.cni-plugin", node=FakeNode(), cni_conf_dir=confs,
                    cni_bin_dir=bin_dir(tmp_path, ["terway", "portmap"]))
    assert found.status is Status.OK


def test_hostport_config(run_one: RunOne, tmp_path: Path) -> None:
    def check(conflist: dict[str, Any]) -> Status:
        path = conf_dir(tmp_path, {"10-terway.conflist": conflist})
        return run_one("node.hostport-config", node=FakeNode(), cni_conf_dir=path).status

    assert check(CONFLIST) is Status.OK
    assert check(HOSTPORT_CONFLIST) is Status.OK
    no_symmetric = json.loads(json.dumps(HOSTPORT_CONFLIST))
    del no_symmetric["plugins"][0]["symmetric_routing"]
    assert check(no_symmetric) is Status.FAIL
    assert check({**CONFLIST, "plugins": [{"type": "terway", "symmetric_routing": True}]}) is Status.FAIL


def test_daemon_socket(run_one: RunOne, tmp_path: Path) -> None:
    confs = conf_dir(tmp_path, {"10-terway.conflist": CONFLIST})
    assert run_one("node.daemon-socket", node=FakeNode(), cni_conf_dir=confs).status is Status.OK
    down = FakeNode(status=DaemonNotAnswering("no socket at /x", missing=True))
    found = run_one("node.daemon-socket", node=down, cni_conf_dir=confs)
    assert found.status is Status.FAIL
    assert run_one("node.daemon-socket", node=down, cni_conf_dir=tmp_path / "none").status is Status.SKIP
    unready = run_one("node.daemon-socket", node=FakeNode(status=DaemonStatus(False)), cni_conf_dir=confs)
    assert unready.status is Status.FAIL


def test_datapath_rules(run_one: RunOne) -> None:
    state = DatapathState({"cali1": ("10.0.1.2",), "cali2": ("10.0.1.3",), "cali3": ()},
                          frozenset({"10.0.1.2", "10.0.1.3"}), {"10.0.1.2": 1002, "10.0.1.3": 1002}, {1002: "eth1"})
    allocations = (DaemonAllocation("10.0.1.2", "default/web"), DaemonAllocation("10.0.1.9", "default/db"))
    found = run_one("node.datapath-rules", node=FakeNode(state=state, status=DaemonStatus(True, "eniip", allocations)))
    assert found.status is Status.FAIL
    assert found.evidence[1:] == (
        "10.0.1.9 (default/db): allocated but no host veth routes it",
        "10.0.1.9 (default/db): missing ip rule 'to 10.0.1.9 lookup main' (priority 512) and 'from 10.0.1.9 lookup "
        "<ENI table>' (priority 2048): the pod's packets leave through the main table (the primary ENI), where the "
        "VPC's source check drops them",
        "10.0.1.3: cali2 left behind: no allocation holds this IP",
        "cali3: a pod veth without a route or allocation",
    )
    clean = DatapathState({"cali1": ("10.0.1.2",)}, frozenset({"10.0.1.2"}), {"10.0.1.2": 1002}, {1002: "eth1"})
    ok = run_one("node.datapath-rules", node=FakeNode(state=clean, status=DaemonStatus(True, "eniip", allocations[:1])))
    assert ok.status is Status.OK
    # the daemon names the ENI's interface: the missing rule, its table and the command that restores it
    enis = {"enis": [{"eni_id": "eni-1", "ifname": "eth1"}]}
    one_rule = DatapathState({"cali1": ("10.0.1.2",)}, frozenset({"10.0.1.2"}), {}, {1002: "eth1"})
    status = DaemonStatus(True, "eniip", (DaemonAllocation("10.0.1.2", "default/web", "eni-1"),), enis)
    found = run_one("node.datapath-rules", node=FakeNode(state=one_rule, status=status), netns="node-1")
    assert found.evidence[1].startswith("10.0.1.2 (default/web): missing ip rule 'from 10.0.1.2 lookup 1002' "
                                        "(priority 2048, the table of eni-1): ")
    assert found.fix is not None
    assert found.fix.splitlines()[0] == "ip netns exec node-1 ip rule add from 10.0.1.2 lookup 1002 priority 2048"
    unknown = run_one("node.datapath-rules", node=FakeNode(status=DaemonStatus(True, "eniip", None)))
    assert unknown.status is Status.SKIP
    down = run_one("node.datapath-rules", node=FakeNode(status=DaemonNotAnswering("refused")))
    assert down.status is Status.SKIP and "refused" in down.evidence[0]


def test_datapath_kernel(run_one: RunOne, tmp_path: Path) -> None:
    assert run_one("node.datapath-kernel", node=FakeNode()).status is Status.OK
    path = conf_dir(tmp_path, {"10-terway.conflist": {**CONFLIST, "plugins": [
        {"type": "terway", "eniip_virtual_type": "IPVlan"}]}})
    found = run_one("node.datapath-kernel", node=FakeNode(ipvlan=False), cni_conf_dir=path)
    assert found.status is Status.WARN and "has no ipvlan" in found.evidence[0]
    assert run_one("node.datapath-kernel", node=FakeNode(ipvlan=True), cni_conf_dir=path).status is Status.OK


def test_hostport_published(run_one: RunOne) -> None:
    assert run_one("node.hostport-published", node=FakeNode()).status is Status.OK
    legacy = ("*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n"
              "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
              "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n")
    proxy = PublishedPort("tcp", 9000, "172.17.0.3:9000", "docker-proxy pid 42")
    found = run_one("node.hostport-published", node=FakeNode(legacy=legacy, proxies=[proxy]))
    assert found.status is Status.FAIL  # shared ENI (the fake daemon's mode eniip): pods cannot reach them
    assert found.evidence[:2] == ("tcp/8080 -> 172.17.0.2:80 (iptables-legacy nat DOCKER) in netns fake",
                                  "tcp/9000 -> 172.17.0.3:9000 (docker-proxy pid 42) in netns fake")
    assert found.evidence[2].startswith("shared-ENI mode (eniip, from the daemon's STATUS): pods on this node cannot "
                                        "reach tcp/8080: after the DNAT")
    assert found.evidence[3].startswith("tcp/9000: only docker-proxy (a userland listener) serves it, no DNAT rule")
    only_proxy = run_one("node.hostport-published", node=FakeNode(proxies=[proxy]))
    assert only_proxy.status is Status.WARN
    exclusive = run_one("node.hostport-published", node=FakeNode(legacy=legacy, status=DaemonStatus(True, "eni", ())))
    assert exclusive.status is Status.WARN and exclusive.evidence[-1].startswith("eni mode (from the daemon's STATUS)")
    unhooked = legacy.replace("-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n", "")
    found = run_one("node.hostport-published", node=FakeNode(legacy=unhooked))
    assert found.status is Status.WARN
    assert "not jumped to from the nat PREROUTING hook, so the DNAT applies to no packet" in found.evidence[1]
    down = FakeNode(legacy=legacy, status=DaemonNotAnswering("no socket at /x", missing=True))
    unknown = run_one("node.hostport-published", node=down)
    assert unknown.status is Status.WARN and unknown.evidence[-1].startswith("Terway mode unknown (the daemon does not answer): in shared-ENI")
    daemonset = DaemonSetState("terway-eniip", "kube-system", "eniip", 2, 2, 2, 2)
    from_cluster = run_one("node.hostport-published", node=down, kube=FakeKube(daemonset=daemonset))
    assert from_cluster.status is Status.FAIL
    assert "(eniip, from DaemonSet kube-system/terway-eniip)" in from_cluster.evidence[-1]


def test_an_exploding_reader_is_a_fail_not_a_crash(run_one: RunOne) -> None:
    class Broken(FakeNode):
        def sysctl(self, key: str) -> str | None:
            raise PermissionError(13, "Permission denied")

    found = run_one("node.forwarding", node=Broken())
    assert found.status is Status.FAIL
    assert found.evidence == ("error: PermissionError: [Errno 13] Permission denied",)


# --- end to end in namespaces we create ------------------------------------------------------------------


def _sh(ns: str, *argv: str) -> None:
    subprocess.run(nsmod.command(ns, list(argv)), check=True, capture_output=True, timeout=10)


def _healthy(ns: str) -> None:
    for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"),
                       ("net.ipv4.conf.default.rp_filter", "0")):
        nsmod.write_sysctl(ns, key, value)


def _node_run(ns: str, tmp_path: Path, *ids: str, **options: Any) -> Any:
    opts = DoctorOptions(scopes=frozenset({"node"}), check_ids=ids, netns=ns,
                         cni_conf_dir=terway_conf_dir(tmp_path / "net.d"), cni_bin_dir=tmp_path / "no-bin",
                         socket=tmp_path / "no.socket", **options)
    return run(opts, real_inputs(opts))


SYSTEM_CHECKS = ("node.rp-filter", "node.forwarding", "node.forward-policy", "node.hostport-published")


def test_healthy_namespace(netns: NetnsFactory, tmp_path: Path) -> None:
    ns = netns()
    _healthy(ns)
    report = _node_run(ns, tmp_path, *SYSTEM_CHECKS)
    assert [f.status for f in report.findings] == [Status.OK] * 4, report.findings
    assert f"net.ipv4.ip_forward = 1 in netns {ns}" in report.finding("node.forwarding").evidence


def test_rp_filter_and_forwarding_off(netns: NetnsFactory, tmp_path: Path) -> None:
    ns = netns()
    _healthy(ns)
    nsmod.write_sysctl(ns, "net.ipv4.conf.all.rp_filter", "1")
    nsmod.write_sysctl(ns, "net.ipv4.ip_forward", "0")
    report = _node_run(ns, tmp_path, "node.rp-filter", "node.forwarding")
    rp = report.finding("node.rp-filter")
    assert rp.status is Status.FAIL
    assert f"net.ipv4.conf.all.rp_filter = 1 in netns {ns}" in rp.evidence
    assert rp.fix is not None and rp.fix.startswith(f"ip netns exec {ns} sysctl -w net.ipv4.conf.all.rp_filter=0")
    forwarding = report.finding("node.forwarding")
    assert forwarding.status is Status.FAIL
    assert f"net.ipv4.ip_forward = 0 in netns {ns}" in forwarding.evidence


def test_nft_forward_drop(netns: NetnsFactory, tmp_path: Path) -> None:
    ns = netns()
    _healthy(ns)
    _sh(ns, "nft", "add table inet filter; add chain inet filter forward "
        "{ type filter hook forward priority 0; policy drop; }")
    found = _node_run(ns, tmp_path, "node.forward-policy").finding("node.forward-policy")
    assert found.status is Status.FAIL
    assert found.evidence[0] == (f"forward hook, IPv4 in netns {ns}: nft inet filter forward (prio 0, policy drop, "
                                 "0 rule(s))")


def test_legacy_iptables_forward_drop_and_docker_dnat(netns: NetnsFactory, tmp_path: Path) -> None:
    ns = netns()
    _healthy(ns)
    _sh(ns, "iptables-legacy", "-P", "FORWARD", "DROP")
    _sh(ns, "iptables-legacy", "-t", "nat", "-N", "DOCKER")
    _sh(ns, "iptables-legacy", "-t", "nat", "-A", "DOCKER", "!", "-i", "docker0", "-p", "tcp", "--dport", "8080",
        "-j", "DNAT", "--to-destination", "172.17.0.2:80")
    report = _node_run(ns, tmp_path, "node.forward-policy", "node.hostport-published")
    assert report.finding("node.forward-policy").status is Status.FAIL
    published = report.finding("node.hostport-published")
    assert published.status is Status.WARN
    assert published.evidence[0] == f"tcp/8080 -> 172.17.0.2:80 (iptables-legacy nat DOCKER) in netns {ns}"


def test_docker_style_dnat_in_nft(netns: NetnsFactory, tmp_path: Path) -> None:
    ns = netns()
    _healthy(ns)
    _sh(ns, "nft", "add table ip nat; add chain ip nat DOCKER; "
        "add rule ip nat DOCKER iifname != \"docker0\" tcp dport 8080 dnat to 172.17.0.2:80")
    _sh(ns, "iptables-nft", "-t", "nat", "-A", "DOCKER", "-p", "udp", "--dport", "5353", "-j", "DNAT",
        "--to-destination", "172.17.0.3:53")
    found = _node_run(ns, tmp_path, "node.hostport-published").finding("node.hostport-published")
    assert found.status is Status.WARN
    assert found.evidence[:2] == (f"tcp/8080 -> 172.17.0.2:80 (nft ip nat DOCKER) in netns {ns}",
                                  f"udp/5353 -> (iptables DNAT) (nft ip nat DOCKER) in netns {ns}")


LISTENER = ("import socket,sys,time\ns=socket.socket();s.bind(('0.0.0.0',int(sys.argv[4])));s.listen()\n"
            "print('ready',flush=True)\ntime.sleep(30)")


@pytest.fixture
def docker_proxy(netns: NetnsFactory) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A process named docker-proxy (argv[0]) listening on TCP 18080 in a fresh namespace."""
    ns = netns()
    _healthy(ns)
    argv = ["bash", "-c", f'exec -a docker-proxy python3 -c "{LISTENER}" -proto tcp -host-port 18080 '
            "-container-ip 172.17.0.9 -container-port 80"]
    proc = subprocess.Popen(nsmod.command(ns, argv), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield ns, proc
    finally:
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def test_listening_docker_proxy(docker_proxy: tuple[str, subprocess.Popen[str]], tmp_path: Path) -> None:
    ns, proc = docker_proxy
    found = _node_run(ns, tmp_path, "node.hostport-published").finding("node.hostport-published")
    assert found.status is Status.WARN
    assert found.evidence[0] == f"tcp/18080 -> 172.17.0.9:80 (docker-proxy pid {proc.pid}) in netns {ns}"


def test_datapath_rules_against_the_kernel_and_a_daemon(netns: NetnsFactory, tmp_path: Path) -> None:
    ns = netns()
    _healthy(ns)
    _sh(ns, "ip", "link", "add", "cali0123456789a", "type", "veth", "peer", "name", "peer0")
    _sh(ns, "ip", "link", "set", "cali0123456789a", "up")
    _sh(ns, "ip", "route", "add", "192.168.40.2/32", "dev", "cali0123456789a")
    _sh(ns, "ip", "rule", "add", "to", "192.168.40.2", "lookup", "main", "priority", "512")
    _sh(ns, "ip", "rule", "add", "from", "192.168.40.2", "lookup", "1002", "priority", "2048")
    daemon = StatusDaemon(tmp_path / "eni.socket", {"ready": True, "mode": "eniip",
                                                  "allocations": [{"ip": "192.168.40.7", "pod": "default/db", "eni_id": "eni-1"}]})
    try:
        opts = DoctorOptions(check_ids=("node.daemon-socket", "node.datapath-rules"), netns=ns,
                             cni_conf_dir=tmp_path, socket=tmp_path / "eni.socket")
        report = run(opts, real_inputs(opts))
    finally:
        daemon.close()
    assert report.finding("node.daemon-socket").status is Status.OK
    found = report.finding("node.datapath-rules")
    assert found.status is Status.FAIL
    assert found.evidence[1:] == (
        "192.168.40.7 (default/db): allocated but no host veth routes it",
        "192.168.40.7 (default/db): missing ip rule 'to 192.168.40.7 lookup main' (priority 512) and 'from "
        "192.168.40.7 lookup <ENI table>' (priority 2048): the pod's packets leave through the main table (the "
        "primary ENI), where the VPC's source check drops them",
        "192.168.40.2: cali0123456789a left behind: no allocation holds this IP",
    )


def test_unknown_netns_is_skipped_by_the_reader(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    opts = DoctorOptions(check_ids=("node.forwarding",), netns="twtest-doesnotexist")
    found = run(opts, real_inputs(opts)).finding("node.forwarding")
    assert found.status is Status.SKIP and "does not exist" in found.evidence[0]


def test_inputs_default_to_unavailable() -> None:
    report = run(DoctorOptions(check_ids=("node.forwarding", "probe.external")), Inputs())
    assert [f.evidence for f in report.findings] == [("not looking at a node",),
                                                     ("not looking at a node",)]


def test_a_probe_that_reaches_the_port_overrules_hostport_published(run_one: RunOne) -> None:
    from terwayctl.doctor import Target
    from tests.fixtures.doctor import FakeProber

    legacy = ("*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
              "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\nCOMMIT\n")
    target = Target("192.168.0.10", 8080)
    found = run_one("node.hostport-published", node=FakeNode(legacy=legacy), prober=FakeProber(), probe=True,
                    hostport_target=target)
    assert found.status is Status.WARN
    assert found.evidence[-1].startswith("probe.hostport: tcp connect 192.168.0.10:8080 from pod: connected: the "
                                         "static reading says unreachable, the probe says the pod reaches it")
    blocked = run_one("node.hostport-published", node=FakeNode(legacy=legacy), prober=FakeProber(pod_reaches=False),
                      probe=True, hostport_target=target)
    assert blocked.status is Status.FAIL
