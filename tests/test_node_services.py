"""Services from exclusive-ENI pods (issue #16 A): with eni_conf `service_cidr`, an exclusive-ENI
pod gets a second veth to the node and routes the service CIDR and the node's IP through it, so a
ClusterIP that kube-proxy DNATs on the node answers (docs/datapath.md).

The lab: two nodes whose primary ENI is wired as `eth0` (as `terwayctl lab` does); node-1 runs
eni mode (exclusive ENI), node-2 eniip (veth). "kube-proxy" is an nftables table inside each
node namespace: a ClusterIP DNAT to a pod on the other node, and the masquerade of DNATed
connections that kube-proxy's masqueradeAll installs (which this mode needs: the backend's reply
must come back through the node, AliyunContainerService/terway#134). Root only; every namespace
is the test's own.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import SymmetricRouting, host_veth_name, symmetric_routing_off
from terwayctl.node.config import PoolMode
from tests.fixtures.netns import ping
from tests.fixtures.node import ENI_CONF, Lab, Node, cloud_environ, wait_for
from tests.test_cni_chain import env, ok, rendered_conflist, runtime, terway, wire_primary
from tests.test_cni_hostport import HOST_PORT, HostPortLab, _run, hostport_lab, stop
from tests.test_cni_hostport import connect as hostport_connect
from tests.test_cni_hostport import serve as hostport_serve
from tests.test_node_exclusive import EXCLUSIVE_CONF

__all__ = ["hostport_lab"]  # the fixture, imported

SERVICE_CIDR = "10.96.0.0/12"
SERVICE_TO_NODE2 = "10.96.0.10"  # on node-1: -> a pod of node-2
SERVICE_TO_NODE1 = "10.96.0.20"  # on node-2: -> the exclusive-ENI pod of node-1
PORT = 80



def kube_proxy(ns: str, service: str, backend: str) -> None:
    """What kube-proxy (nftables mode, masqueradeAll) installs for one ClusterIP, in `ns`."""
    script = (
        "table ip twkubeproxy {\n"
        "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
        f"    ip daddr {service} tcp dport {PORT} dnat to {backend}:{PORT}\n  }}\n"
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
        '    ct status dnat masquerade comment "masqueradeAll"\n  }\n}\n'
    )
    done = _run(ns, ["nft", "-f", "-"], input=script)
    assert done.returncode == 0, done.stderr


def connect(ns: str, address: str, timeout: float = 3.0) -> str | None:
    """One TCP connection to address:80 (a ClusterIP) from `ns`: the server's greeting, or None."""
    return hostport_connect(ns, address, timeout, port=PORT)


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for server in started:
        stop(server)


def serve(pod_ns: str, started: list[subprocess.Popen[str]]) -> None:
    started.append(hostport_serve(pod_ns))


def _links(ns: str) -> dict[str, str]:
    """ifname -> kind ('' for none) of every link in `ns`."""
    with nsmod.iproute(ns) as nl:
        found: dict[str, str] = {}
        for m in nl.link("dump"):
            info = m.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            found[str(m.get_attr("IFLA_IFNAME"))] = str(kind or "")
        return found


def ipam_check(node: Node) -> subprocess.CompletedProcess[str]:
    """`terwayctl ipam check --mode eni` of the node."""
    argv = [sys.executable, "-m", "terwayctl", "ipam", "check", "--mode", "eni", "--instance-id", node.instance_id,
            "--state-dir", str(node.state_dir), "--node-netns", node.ns]
    return subprocess.run(argv, env=cloud_environ(node.lab.url), capture_output=True, text=True, timeout=60,
                          check=False)


def _route_dev(ns: str, dst: str) -> str:
    """The device `ip route get` picks for `dst` in `ns`."""
    words = _run(ns, ["ip", "-o", "route", "get", dst]).stdout.split()
    return words[words.index("dev") + 1] if "dev" in words else ""


def test_cluster_ip_from_exclusive_eni_and_eniip_pods_to_pods_on_another_node(
    vpc_lab: Lab, servers: list[subprocess.Popen[str]]
) -> None:
    node1, node2 = vpc_lab.node(0), vpc_lab.node(1)
    ip1, ip2 = (wire_primary(vpc_lab, n) for n in vpc_lab.nodes)
    daemon = node1.start(PoolMode.ENI, {**EXCLUSIVE_CONF, "service_cidr": SERVICE_CIDR})
    node2.start(PoolMode.ENIIP, {**ENI_CONF, "service_cidr": SERVICE_CIDR})
    assert daemon.status()["datapath"]["exclusive_host_routes"] == [SERVICE_CIDR, f"{ip1}/32"]  # type: ignore[index]
    a, b, c = node1.pod("db-0"), node2.pod("web-0"), node2.pod("client")
    added = {}
    for node, pod in ((node1, a), (node2, b), (node2, c)):
        result = node.cni("ADD", pod)
        assert result.code == 0, result.out
        added[pod.name] = result
    ra, rb = added["db-0"], added["web-0"]
    kube_proxy(node1.ns, SERVICE_TO_NODE2, rb.ip)
    kube_proxy(node2.ns, SERVICE_TO_NODE1, ra.ip)
    serve(a.ns, servers)
    serve(b.ns, servers)
    assert wait_for(lambda: {ra.ip, rb.ip} <= set().union(*vpc_lab.vpc.routes().values()), timeout=5)

    # the layout: the ENI as eth0 plus veth1 to the node, the service CIDR and the node's IP through it
    veth = host_veth_name("default", "db-0")
    assert _links(a.ns) == {"lo": "", "eth0": "veth", "veth1": "veth"}  # (the lab's ENIs are veths too)
    assert _links(node1.ns)[veth] == "veth"
    assert _route_dev(a.ns, SERVICE_TO_NODE2) == "veth1"
    assert _route_dev(a.ns, ip1) == "veth1"
    assert _route_dev(a.ns, ip2) == "eth0"  # everything else still through its own ENI
    assert _route_dev(node1.ns, ra.ip) == veth  # the node's answers come back through the veth
    assert f"{ra.ip} dev {veth} proto static scope link src {ip1}" in _run(node1.ns, ["ip", "route"]).stdout
    # the node's own traffic to the pod leaves from the node's IP even with another address on lo
    # (the lab's metadata service has 100.100.100.200 there): the pod answers it through veth1
    assert _run(node1.ns, ["ip", "addr", "add", "100.100.100.200/32", "dev", "lo"]).returncode == 0
    assert ping(node1.ns, IPv4Address(ra.ip))
    assert [i["name"] for i in ra.out["interfaces"]] == ["eth0"]  # the result names the ENI only
    assert ping(a.ns, IPv4Address(ip1))

    # the ClusterIPs answer, DNATed by "kube-proxy" to a pod on the other node, masqueraded
    assert connect(a.ns, SERVICE_TO_NODE2) == f"hello {ip1}"  # exclusive-ENI pod -> veth pod on node-2
    assert connect(c.ns, SERVICE_TO_NODE1) == f"hello {ip2}"  # veth pod -> exclusive-ENI pod on node-1
    assert connect(a.ns, rb.ip) == f"hello {ra.ip}"  # pod to pod stays on the ENI, not masqueraded

    # CHECK judges the service veth; a repeated ADD repairs it
    conf = {**node1.netconf(), "prevResult": ra.out}
    ok(terway(node1, "CHECK", conf, a))
    assert _run(a.ns, ["ip", "route", "del", SERVICE_CIDR]).returncode == 0
    broken = terway(node1, "CHECK", conf, a)
    assert broken.exit_code == 1, broken
    assert broken.json["msg"] == f"CHECK: route {SERVICE_CIDR} via 169.254.1.1 dev veth1 is missing in the pod namespace"
    assert node1.cni("ADD", a).ip == ra.ip
    ok(terway(node1, "CHECK", conf, a))
    assert connect(a.ns, SERVICE_TO_NODE2) == f"hello {ip1}"

    # ipam check: the veth is part of an exclusive-ENI allocation, its loss is reported
    check = ipam_check(node1)
    assert check.returncode == 0, check.stdout + check.stderr
    assert _run(node1.ns, ["ip", "link", "del", veth]).returncode == 0
    lost = ipam_check(node1)
    assert lost.returncode != 0 and "allocation-without-veth" in lost.stdout and ra.ip in lost.stdout, lost.stdout
    assert node1.cni("ADD", a).ip == ra.ip  # ADD rebuilds it
    assert ipam_check(node1).returncode == 0

    # DEL leaves nothing of the veth: not in the pod, not on the node, no route to the pod's IP
    assert node1.cni("DEL", a).code == 0
    assert node1.cni("DEL", a).code == 0
    assert _links(a.ns) == {"lo": ""}
    assert veth not in _links(node1.ns)
    assert _route_dev(node1.ns, ra.ip) == "eth0"
    assert ipam_check(node1).returncode == 0

    # a veth left behind (its pod gone while the daemon was down) is reported, then removed at start
    for argv in (["ip", "link", "add", "cali0leftover1", "type", "veth", "peer", "name", "lp1"],
                 ["ip", "link", "set", "cali0leftover1", "up"], ["ip", "link", "set", "lp1", "up"],
                 ["ip", "route", "add", "10.0.40.40/32", "dev", "cali0leftover1"]):
        assert _run(node1.ns, argv).returncode == 0, argv
    leftover = ipam_check(node1)
    assert leftover.returncode != 0 and "kernel-leftover" in leftover.stdout and "10.0.40.40" in leftover.stdout
    node1.stop()
    daemon = node1.start(PoolMode.ENI, {**EXCLUSIVE_CONF, "service_cidr": SERVICE_CIDR})
    assert daemon.repairs.kernel_leftovers == ["10.0.40.40 (cali0leftover1)"]
    assert "cali0leftover1" not in _links(node1.ns)
    assert ipam_check(node1).returncode == 0
    # a running pod's veth survives a restart, and its services still answer
    d = node1.pod("db-1")
    assert node1.cni("ADD", d).code == 0
    node1.stop()
    daemon = node1.start(PoolMode.ENI, {**EXCLUSIVE_CONF, "service_cidr": SERVICE_CIDR})
    assert daemon.repairs.kernel_leftovers == []
    assert host_veth_name("default", "db-1") in _links(node1.ns)
    assert connect(d.ns, SERVICE_TO_NODE2) == f"hello {ip1}"
    assert node1.cni("DEL", d).code == 0
    for node, pod in ((node2, b), (node2, c)):
        assert node.cni("DEL", pod).code == 0


def test_without_service_cidr_an_exclusive_eni_pod_gets_no_veth(vpc_lab: Lab) -> None:
    node1 = vpc_lab.node(0)
    daemon = node1.start(PoolMode.ENI, EXCLUSIVE_CONF)
    assert daemon.status()["datapath"]["exclusive_host_routes"] == []  # type: ignore[index]
    pod = node1.pod("db-0")
    assert node1.cni("ADD", pod).code == 0
    assert sorted(_links(pod.ns)) == ["eth0", "lo"]
    assert not [n for n in _links(node1.ns) if n.startswith("cali")]
    assert node1.cni("DEL", pod).code == 0


def test_host_port_of_an_exclusive_eni_pod_with_its_service_veth(hostport_lab: HostPortLab) -> None:
    """The veth to the node must not break hostPort (docs/datapath.md): the marked request still
    leaves through eth0 (rule 600 before main), masqueraded; the pod answers the node's address
    through veth1, even with strict reverse-path filtering in the pod."""
    w = hostport_lab
    node1, node2 = w.lab.node(0), w.lab.node(1)
    node1.start(PoolMode.ENI, {**EXCLUSIVE_CONF, "service_cidr": SERVICE_CIDR})
    node_ip = w.node_ips[0]
    pod = node1.pod("db")
    for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
        nsmod.write_sysctl(pod.ns, key, "1")
    chain = runtime(node1, rendered_conflist(node1),
                    {"portMappings": [{"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp"}]})
    ok(chain.add(env(node1, pod)))
    assert "veth1" in _links(pod.ns)
    server = hostport_serve(pod.ns)
    try:
        assert hostport_connect(node1.ns, node_ip) == f"hello {node_ip}"
        assert hostport_connect(node2.ns, node_ip) == f"hello {node_ip}"
        assert hostport_connect(w.other_host, node_ip) == f"hello {node_ip}"
    finally:
        stop(server)
    ok(chain.delete(env(node1, pod)))
    assert _links(pod.ns) == {"lo": ""}
    symmetric_routing_off(node1.ns, SymmetricRouting())
