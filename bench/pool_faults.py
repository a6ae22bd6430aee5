"""The IP pool under cloud faults: a pod burst on a cold pool on two nodes, per fault profile (docs/benchmarks.md).

For each profile a fresh VPC in `twbench-` namespaces (router + two nodes), the emulator with the
VpcRouter datapath and the profile's faults, two `terwayctl daemon` subprocesses (min_pool_size 0:
cold, max_pool_size 5, ip_pool_sync_period 5s), then the real `terway` plugin for every pod at once,
failed ADDs retried as kubelet retries them. Then DEL of every pod, the faults lifted, and a wait (for
a condition, bounded) until both daemons' stores agree with the cloud. Reported per profile: pods that
got an IP, time to the last IP, API calls, and what must be 0: leaked ENIs (attached ENIs no store
holds, Available ENIs with the daemon's tag), leaked cloud IPs (assigned to a node's ENI, in no store),
store IPs not in the cloud, idle IPs above max_pool_size after DEL, duplicate IPs across the nodes.

    sudo python bench/pool_faults.py [--pods 50] [--profile all|none|throttling|internal|lost|kill]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pod_burst import env_for

from terwayctl.cni.install import install as install_plugin
from terwayctl.cni.shim import ensure_built
from terwayctl.emulator import Emulator, parse_scenario
from terwayctl.kernel import netns as nsmod
from terwayctl.lab.vpcsim import VpcRouter, prepare_router
from terwayctl.node.client import DaemonUnavailable, ask_status

PREFIX = "twbench-"
ZONE = "cn-hangzhou-i"
TAG = "terway.node"
NODES = ("i-node1", "i-node2")
MUTATING = ("CreateNetworkInterface", "AttachNetworkInterface", "DetachNetworkInterface", "DeleteNetworkInterface",
            "AssignPrivateIpAddresses", "UnassignPrivateIpAddresses")
MAX_POOL = 5
SCENARIO: dict[str, Any] = {
    "region": "cn-hangzhou",
    "zones": [ZONE],
    "vpcs": [{"id": "vpc-lab", "cidr": "10.0.0.0/16"}],
    "vswitches": [
        {"id": "vsw-nodes", "zone": ZONE, "cidr": "10.0.0.0/24"},
        {"id": "vsw-pods", "zone": ZONE, "cidr": "10.0.32.0/19"},
    ],
    "security_groups": [{"id": "sg-lab"}],
    "instances": [
        {"id": "i-node1", "type": "ecs.g7.4xlarge", "vswitch": "vsw-nodes", "primary_eni": "eni-node1"},
        {"id": "i-node2", "type": "ecs.g7.4xlarge", "vswitch": "vsw-nodes", "primary_eni": "eni-node2"},
    ],
}
CONF = {"vswitches": {ZONE: ["vsw-pods"]}, "security_group": "sg-lab", "min_pool_size": 0,
        "max_pool_size": MAX_POOL, "ip_pool_sync_period": "5s"}


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    faults: Mapping[str, Mapping[str, Any]]
    kill: bool = False


def _on(actions: tuple[str, ...], **spec: Any) -> dict[str, dict[str, Any]]:
    return {a: dict(spec) for a in actions}


PROFILES = (
    Profile("none", "no faults", {}),
    Profile("throttling", "30% Throttling", {"*": {"failure_ratio": 0.3, "failure_code": "Throttling"}}),
    Profile("internal", "200 ms + 10% InternalError", {"*": {"latency_ms": 200, "failure_ratio": 0.1}}),
    Profile("lost", "20% lost replies", _on(MUTATING, failure_ratio=0.2, fail_after_commit=True)),
    Profile("kill", "5% lost replies + kill -9 mid-burst", _on(MUTATING, failure_ratio=0.05, fail_after_commit=True),
            kill=True),
)


@dataclass
class Node:
    instance_id: str
    ns: str
    dir: Path
    daemon: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.dir / "eni.socket"

    @property
    def store(self) -> Path:
        return self.dir / "state" / "daemon.sqlite"

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        if not self.store.exists():
            return []
        conn = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=10)
        try:
            return list(conn.execute(query).fetchall())
        finally:
            conn.close()


@dataclass
class Lab:
    emulator: Emulator
    nodes: list[Node]
    dir: Path
    calls: Counter[str] = field(default_factory=Counter)
    namespaces: list[str] = field(default_factory=list)

    @property
    def plugin(self) -> str:
        return str(self.dir / "bin" / "terway")

    def new_ns(self) -> str:
        name = PREFIX + secrets.token_hex(4)
        nsmod.create(name)
        self.namespaces.append(name)
        return name

    def start(self, node: Node) -> None:
        conf = node.dir / "eni_conf.json"
        conf.write_text(json.dumps(CONF))
        argv = [sys.executable, "-m", "terwayctl", "daemon", "--config", str(conf), "--instance-id", node.instance_id,
                "--zone", ZONE, "--socket", str(node.socket), "--state-dir", str(node.dir / "state"),
                "--node-netns", node.ns, "--log-level", "warning"]  # fmt: skip
        with open(node.dir / "daemon.log", "ab") as log:
            node.daemon = subprocess.Popen(argv, env=env_for(self.emulator.url), stdout=log, stderr=log)
        if not wait(lambda: _ready(node), 60):
            raise SystemExit("the daemon did not become ready; see " + str(node.dir / "daemon.log"))

    def cni(self, verb: str, node: Node, pod_ns: str, name: str) -> tuple[int, str]:
        conf = {"cniVersion": "1.0.0", "name": "terway", "type": "terway", "daemon_socket": str(node.socket)}
        env = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": verb, "CNI_CONTAINERID": name,
               "CNI_NETNS": str(nsmod.path_of(pod_ns)), "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
               "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={name}"}  # fmt: skip
        done = subprocess.run([self.plugin], input=json.dumps(conf).encode(), env=env, capture_output=True,
                              timeout=120, check=False)
        return done.returncode, done.stdout.decode()


def _ready(node: Node) -> bool:
    with contextlib.suppress(DaemonUnavailable):
        return bool(ask_status(node.socket, 2).get("ready"))
    return False


def wait(predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@contextlib.contextmanager
def lab(profile: Profile) -> Iterator[Lab]:
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    with tempfile.TemporaryDirectory(prefix="twbench-") as tmp:
        work = Path(tmp)
        install_plugin(work / "bin", shim=ensure_built())  # the static shim, as on a node
        created: list[str] = []
        names = [PREFIX + secrets.token_hex(4) for _ in range(3)]
        for name in names:
            nsmod.create(name)
            created.append(name)
        router, *node_ns = names
        prepare_router(router)
        for ns in node_ns:
            with nsmod.iproute(ns) as nl:
                nl.link("set", index=nl.link_lookup(ifname="lo")[0], state="up")
            for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
                nsmod.write_sysctl(ns, key, "0")
        vpc = VpcRouter(router, dict(zip(NODES, node_ns, strict=True)))
        emulator = Emulator(work / "emulator.sqlite", world=parse_scenario(SCENARIO), hook=vpc, fault_seed=7).start()
        nodes = []
        for instance, ns in zip(NODES, node_ns, strict=True):
            (work / instance).mkdir()
            nodes.append(Node(instance, ns, work / instance))
        the_lab = Lab(emulator, nodes, work)
        original, lock = emulator.handle, threading.Lock()

        def counting(method: str, params: Mapping[str, str]) -> Any:
            with lock:
                the_lab.calls[params.get("Action", "?")] += 1
            return original(method, params)

        emulator.handle = counting  # type: ignore[method-assign]
        try:
            yield the_lab
        finally:
            for node in nodes:
                if node.daemon is not None and node.daemon.poll() is None:
                    os.kill(node.daemon.pid, signal.SIGTERM)
                    node.daemon.wait(timeout=60)
            emulator.stop()
            for name in reversed(created + the_lab.namespaces):
                nsmod.delete(name)


@dataclass
class Outcome:
    profile: str
    pods: int
    got_ip: int = 0
    seconds_to_last_ip: float = 0.0
    api_calls: int = 0
    leaked_enis: int = 0
    leaked_cloud_ips: int = 0
    store_ips_not_in_cloud: int = 0
    ips_above_max_after_del: int = 0
    duplicate_ips: int = 0
    settled_seconds: float = 0.0


def audit(the_lab: Lab) -> dict[str, int]:
    """Cloud vs the two stores."""
    from terwayctl.cloud.session import build_client

    client = build_client(endpoint=the_lab.emulator.url, environ=env_for(the_lab.emulator.url))
    try:
        enis = client.describe_network_interfaces()
    finally:
        client.close()
    stored_enis = {e for node in the_lab.nodes for (e,) in node.rows("SELECT eni_id FROM enis")}
    store_ips = [{ip for (ip,) in node.rows("SELECT ip FROM ips")} for node in the_lab.nodes]
    ours = [ni for ni in enis if ni.type != "Primary" and ni.instance_id in NODES]
    leaked_enis = [ni for ni in ours if ni.network_interface_id not in stored_enis]
    leaked_enis += [ni for ni in enis if ni.status == "Available" and any(k == TAG for k, _ in ni.tags)]
    cloud_ips = {ip for ni in ours for ip in ni.private_ips}
    all_store = set().union(*store_ips)
    idle_above = 0
    for node in the_lab.nodes:
        idle = node.rows("SELECT COUNT(*) FROM ips WHERE container_id IS NULL")[0][0]
        idle_above += max(0, int(idle) - MAX_POOL)
    intents = sum(len(node.rows("SELECT id FROM intents")) for node in the_lab.nodes)
    return {
        "leaked_enis": len(leaked_enis),
        "leaked_cloud_ips": len(cloud_ips - all_store),
        "store_ips_not_in_cloud": len(all_store - cloud_ips),
        "ips_above_max_after_del": idle_above,
        "duplicate_ips": len(store_ips[0] & store_ips[1]),
        "intents": intents,
    }


def run(profile: Profile, pods_total: int) -> Outcome:
    outcome = Outcome(profile.name, pods_total)
    with lab(profile) as the_lab:
        for node in the_lab.nodes:
            the_lab.start(node)
        for action, spec in profile.faults.items():
            the_lab.emulator.faults.set(action, **spec)
        the_lab.calls.clear()  # API calls of the burst (and of the restart in the kill profile)
        pods = [(the_lab.nodes[i % 2], the_lab.new_ns(), f"pod-{i}") for i in range(pods_total)]
        answered: dict[str, str] = {}
        seen: dict[str, list[str]] = {}
        lock = threading.Lock()
        started = time.perf_counter()
        last_ip = [0.0]

        def add(item: tuple[Node, str, str]) -> None:
            node, ns, name = item
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                code, out = the_lab.cni("ADD", node, ns, name)
                if code == 0:
                    ip = json.loads(out)["ips"][0]["address"].split("/")[0]
                    with lock:
                        answered[name] = ip
                        seen.setdefault(ip, []).append(f"{node.instance_id}/{name}")
                        last_ip[0] = time.perf_counter() - started
                    return
                time.sleep(0.5)  # kubelet retries a failed ADD

        killer = None
        if profile.kill:
            def kill_mid_burst() -> None:
                node = the_lab.nodes[0]
                wait(lambda: len(answered) >= pods_total // 4, 120, 0.01)
                assert node.daemon is not None
                os.kill(node.daemon.pid, signal.SIGKILL)
                node.daemon.wait(timeout=30)
                the_lab.start(node)

            killer = threading.Thread(target=kill_mid_burst)
            killer.start()
        with ThreadPoolExecutor(max_workers=pods_total) as pool:
            list(pool.map(add, pods))
        if killer is not None:
            killer.join()
        outcome.got_ip = len(answered)
        outcome.seconds_to_last_ip = round(last_ip[0], 2)
        outcome.api_calls = sum(the_lab.calls.values())
        dup_in_burst = sum(1 for owners in seen.values() if len({o.split("/")[1] for o in owners}) > 1)
        with ThreadPoolExecutor(max_workers=pods_total) as pool:
            list(pool.map(lambda p: the_lab.cni("DEL", p[0], p[1], p[2]), pods))
        the_lab.emulator.faults.clear()
        settle_from = time.perf_counter()
        keys = ("leaked_enis", "leaked_cloud_ips", "store_ips_not_in_cloud", "ips_above_max_after_del",
                "duplicate_ips", "intents")
        wait(lambda: not any(audit(the_lab)[k] for k in keys), 60, 0.5)
        outcome.settled_seconds = round(time.perf_counter() - settle_from, 1)
        final = audit(the_lab)
        outcome.leaked_enis = final["leaked_enis"]
        outcome.leaked_cloud_ips = final["leaked_cloud_ips"]
        outcome.store_ips_not_in_cloud = final["store_ips_not_in_cloud"]
        outcome.ips_above_max_after_del = final["ips_above_max_after_del"]
        outcome.duplicate_ips = final["duplicate_ips"] + dup_in_burst
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=50, help="pods in the burst, spread over the two nodes")
    parser.add_argument("--profile", default="all", choices=["all", *(p.name for p in PROFILES)])
    args = parser.parse_args()
    chosen = [p for p in PROFILES if args.profile in ("all", p.name)]
    header = ("profile", "pods with IP", "s to last IP", "API calls", "leaked ENIs", "leaked cloud IPs",
              "store IPs not in cloud", "IPs above max after DEL", "duplicate IPs", "settled (s)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    failed = False
    for profile in chosen:
        o = run(profile, args.pods)
        zeros = (o.leaked_enis, o.leaked_cloud_ips, o.store_ips_not_in_cloud, o.ips_above_max_after_del,
                 o.duplicate_ips)
        failed |= any(zeros) or o.got_ip != o.pods
        print(f"| {profile.title} | {o.got_ip}/{o.pods} | {o.seconds_to_last_ip} | {o.api_calls} | "
              + " | ".join(str(z) for z in zeros) + f" | {o.settled_seconds} |", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
