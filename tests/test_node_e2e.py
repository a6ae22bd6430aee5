"""End to end on one machine: emulator + VPC router namespace + node namespaces + daemons + the real
`terway` plugin run as kubelet/containerd run it, as root (docs/node.md). Skipped when not root."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address
from typing import Any

from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import inspect_node
from terwayctl.node.metrics import parse_text
from tests.fixtures.netns import ping
from tests.fixtures.node import Lab, Node, Pod, cloud_environ, wait_for


def _links(ns: str) -> list[str]:
    with nsmod.iproute(ns) as nl:
        return sorted(str(m.get_attr("IFLA_IFNAME")) for m in nl.link("dump"))


def _assert_clean(node: Node, *pods: Pod) -> None:
    state = inspect_node(node.ns)
    assert state.veths == ()
    assert state.rules == ()
    for pod in pods:
        assert _links(pod.ns) == ["lo"]


def test_add_ping_same_node_then_del_leaves_nothing(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    node.start()
    a, b = node.pod("a"), node.pod("b")
    ra, rb = node.cni("ADD", a), node.cni("ADD", b)
    assert ra.code == 0, ra.out
    assert rb.code == 0, rb.out
    assert ra.ip != rb.ip
    assert ra.out["ips"][0]["address"].endswith("/32")
    assert ping(a.ns, IPv4Address(rb.ip))
    again = node.cni("ADD", a)  # a repeated ADD of the same container: the same IP
    assert again.code == 0 and again.ip == ra.ip
    assert node.ipam_check().returncode == 0
    for pod in (a, b):
        assert node.cni("DEL", pod).code == 0
        assert node.cni("DEL", pod).code == 0  # idempotent
    _assert_clean(node, a, b)


def test_pods_reach_each_other_across_nodes_through_the_vpc_router(vpc_lab: Lab) -> None:
    one, two = vpc_lab.node(0), vpc_lab.node(1)
    one.start()
    two.start()
    a, b = one.pod(), two.pod()
    ra, rb = one.cni("ADD", a), two.cni("ADD", b)
    assert ra.code == 0 and rb.code == 0, (ra.out, rb.out)
    assert wait_for(lambda: rb.ip in set().union(*vpc_lab.vpc.routes().values()), timeout=5)
    assert ping(a.ns, IPv4Address(rb.ip))
    assert ping(b.ns, IPv4Address(ra.ip))
    assert one.cni("DEL", a).code == 0 and two.cni("DEL", b).code == 0
    _assert_clean(one, a)
    _assert_clean(two, b)


def test_delete_only_by_the_owner_and_check_of_unknown_container(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    daemon = node.start()
    a = node.pod("owner")
    assert node.cni("ADD", a).code == 0
    stranger = Pod(a.ns, a.namespace, a.name, "f" * 64, a.uid)
    assert node.cni("DEL", stranger).code == 0  # not its IP: success, nothing released
    assert daemon.store is not None and daemon.store.allocation_of(a.container_id) is not None
    check = node.cni("CHECK", stranger, cni_version="1.1.0")
    assert check.code == 1  # CHECK needs prevResult: the plugin refuses (7) before asking
    assert node.cni("DEL", a).code == 0
    _assert_clean(node, a)


def test_fifty_concurrent_adds_get_distinct_ips_with_batched_cloud_calls(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    node.start()
    pods = [node.pod(f"burst-{i}") for i in range(50)]
    before = vpc_lab.calls["AssignPrivateIpAddresses"]
    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(lambda p: node.cni("ADD", p), pods))
    assert [r.code for r in results] == [0] * 50, [r.out for r in results if r.code]
    ips = {r.ip for r in results}
    assert len(ips) == 50
    assigns = vpc_lab.calls["AssignPrivateIpAddresses"] - before
    creates = vpc_lab.calls["CreateNetworkInterface"]
    assert assigns + creates <= 15, (assigns, creates)  # ~ceil(50/10) + ENI creation, never 50
    assert node.ipam_check().returncode == 0
    with ThreadPoolExecutor(max_workers=25) as pool:
        assert all(r.code == 0 for r in pool.map(lambda p: node.cni("DEL", p), pods))
    _assert_clean(node, *pods[:3])


def test_kill_9_in_a_burst_then_restart_loses_nothing_and_leaks_nothing(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    node.spawn()
    pods = [node.pod(f"k9-{i}") for i in range(20)]
    first: dict[str, str] = {}

    def add(pod: Pod) -> None:
        result = node.cni("ADD", pod)
        if result.code == 0:
            first[pod.container_id] = result.ip

    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(add, p) for p in pods]
        wait_for(lambda: len(first) >= 3, timeout=20, step=0.01)
        node.kill()  # SIGKILL in the middle of the burst
        for future in futures:
            future.result(timeout=60)
    assert first  # some ADDs were answered before the kill (usually not all 20)
    node.spawn()
    final = {}
    for pod in pods:  # kubelet retries every failed ADD; a retried ADD of a done pod is answered again
        result = node.cni("ADD", pod)
        assert result.code == 0, result.out
        final[pod.container_id] = result.ip
    for container, ip in first.items():
        assert final[container] == ip  # nothing answered before the kill was lost
    assert len(set(final.values())) == 20
    check = node.ipam_check()
    assert check.returncode == 0, check.stdout + check.stderr
    for pod in pods:
        assert node.cni("DEL", pod).code == 0
    check = node.ipam_check()
    assert check.returncode == 0, check.stdout + check.stderr
    _assert_clean(node, *pods)


def _iperf(client: Pod, server: Pod, server_ip: str, seconds: int = 3) -> float:
    """Bits per second received by an iperf3 server in `server` from a client in `client`."""
    srv = subprocess.Popen(nsmod.command(server.ns, ["iperf3", "-s", "-1", "-p", "5201"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out: dict[str, Any] = {}
        for _ in range(40):  # the server needs a moment to listen (bounded: ~8 s)
            done = subprocess.run(nsmod.command(client.ns, ["iperf3", "-c", server_ip, "-p", "5201", "-t",
                                                            str(seconds), "-J"]),
                                  capture_output=True, text=True, timeout=seconds + 20, check=False)
            out = json.loads(done.stdout or "{}")
            if done.returncode == 0 and "error" not in out:
                break
            time.sleep(0.2)
        return float(out["end"]["sum_received"]["bits_per_second"])
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(timeout=10)


def test_bandwidth_limits_from_runtime_config_and_annotations(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    node.start()
    sender, receiver = node.pod("sender"), node.pod("receiver")
    egress_bits = 40_000_000
    node.set_annotations(receiver, {"k8s.aliyun.com/ingress-bandwidth": "2M"})  # 2 x 2^20 bytes/s
    rs = node.cni("ADD", sender, runtime_config={"bandwidth": {"egressRate": egress_bits,
                                                               "egressBurst": 2147483647}})
    rr = node.cni("ADD", receiver)
    assert rs.code == 0 and rr.code == 0, (rs.out, rr.out)
    measured = _iperf(sender, receiver, rr.ip)  # both limits apply: the lower one, ingress of receiver
    expected = 2 * 2**20 * 8
    assert abs(measured - expected) / expected < 0.15, (measured, expected)
    assert node.cni("DEL", receiver).code == 0
    other = node.pod("free")
    ro = node.cni("ADD", other)
    assert ro.code == 0
    measured = _iperf(sender, other, ro.ip)  # only the sender's egress limit
    assert abs(measured - egress_bits) / egress_bits < 0.15, (measured, egress_bits)
    for pod in (sender, other):
        assert node.cni("DEL", pod).code == 0
    _assert_clean(node, sender, receiver, other)


def test_daemon_status_metrics_and_gc(vpc_lab: Lab) -> None:
    node = vpc_lab.node(0)
    node.spawn("--metrics", "127.0.0.1:0", "--log-format", "json")
    env = cloud_environ(vpc_lab.url)
    argv = [sys.executable, "-m", "terwayctl", "daemon", "--socket", str(node.socket), "status"]
    assert wait_for(lambda: subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode == 0,
                    timeout=20, step=0.2)
    pods = [node.pod(f"gc-{i}") for i in range(3)]
    for pod in pods:
        assert node.cni("ADD", pod).code == 0
    done = subprocess.run([*argv, "-o", "json"], env=env, capture_output=True, text=True, timeout=30)
    doc = json.loads(done.stdout)
    assert doc["ready"] is True and doc["pool"]["allocated"] == 3
    assert {a["pod"] for a in doc["allocations"]} == {f"default/gc-{i}" for i in range(3)}
    table = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30).stdout
    assert "ready: yes" in table and "default/gc-0" in table
    log = (node.dir / "daemon.log").read_text()
    url = next(json.loads(line)["msg"].split(" on ")[1] for line in log.splitlines()
               if "metrics on" in line)
    with urllib.request.urlopen(url, timeout=10) as reply:
        metrics = parse_text(reply.read().decode())
    assert metrics["terway_pool_allocated_ips"] == 3
    assert metrics['terway_cni_requests_total{verb="ADD",result="ok"}'] == 3
    assert metrics['terway_cloud_api_calls_total{action="AssignPrivateIpAddresses"}'] >= 0
    # GC keeps only the first pod
    keep = pods[0]
    conf = node.netconf(cni_version="1.1.0")
    conf["cni.dev/valid-attachments"] = [{"containerID": keep.container_id, "ifname": "eth0"}]
    gc_env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "GC", "CNI_PATH": "/opt/cni/bin"}
    from tests.fixtures.node import TERWAY

    gc = subprocess.run([TERWAY], input=json.dumps(conf).encode(), env=gc_env, capture_output=True, timeout=30)
    assert gc.returncode == 0, gc.stdout
    doc = json.loads(subprocess.run([*argv, "-o", "json"], env=env, capture_output=True, text=True,
                                    timeout=30).stdout)
    assert [a["container_id"] for a in doc["allocations"]] == [keep.container_id]
    assert node.ipam_check().returncode == 0
    node.kill(15)
    down = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and "error: cannot ask the daemon" in down.stderr
