"""A burst of 100 pods on one node with a cold pool and 200 ms emulated cloud latency (budget in docs/benchmarks.md).

Builds a VPC in `twbench-` namespaces (router + node), starts the emulator with the VpcRouter
datapath and `--latency-ms` on every action, runs `terwayctl daemon` as a subprocess in the node
namespace (min_pool_size 0: cold), then runs the real `terway` plugin (installed as
`terwayctl cni install` installs it) for N pods at once (as kubelet would, one process per pod) and reports: time until all are ready, cloud API calls by
action, and the daemon's resident memory with N pods. Everything is removed at the end.

    sudo python bench/pod_burst.py [--pods 100] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terwayctl.cni.install import install as install_plugin
from terwayctl.cni.shim import ensure_built
from terwayctl.emulator import Emulator, parse_scenario
from terwayctl.kernel import netns as nsmod
from terwayctl.lab.vpcsim import VpcRouter, prepare_router
from terwayctl.node.client import DaemonUnavailable, ask_status

PREFIX = "twbench-"
ZONE = "cn-hangzhou-i"
SCENARIO: dict[str, Any] = {
    "region": "cn-hangzhou",
    "zones": [ZONE],
    "vpcs": [{"id": "vpc-lab", "cidr": "10.0.0.0/16"}],
    "vswitches": [
        {"id": "vsw-nodes", "zone": ZONE, "cidr": "10.0.0.0/24"},
        {"id": "vsw-pods", "zone": ZONE, "cidr": "10.0.32.0/19"},
    ],
    "security_groups": [{"id": "sg-lab"}],
    "instances": [{"id": "i-node1", "type": "ecs.g7.4xlarge", "vswitch": "vsw-nodes", "primary_eni": "eni-node1"}],
}


def env_for(url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TERWAYCTL_ENDPOINT": url,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "emulator",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "emulator",
        "ALIBABA_CLOUD_REGION_ID": "cn-hangzhou",
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
    }


@dataclass
class Lab:
    router: str
    node: str
    emulator: Emulator
    vpc: VpcRouter
    dir: Path
    calls: Counter[str] = field(default_factory=Counter)
    namespaces: list[str] = field(default_factory=list)
    daemon: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.dir / "eni.socket"

    @property
    def plugin(self) -> str:
        """The plugin as `terwayctl cni install` writes it into a node's CNI bin dir."""
        return str(self.dir / "bin" / "terway")

    def new_ns(self) -> str:
        name = PREFIX + secrets.token_hex(4)
        nsmod.create(name)
        self.namespaces.append(name)
        return name

    def start_daemon(self, eni_conf: Mapping[str, Any]) -> int:
        conf = self.dir / "eni_conf.json"
        conf.write_text(json.dumps(eni_conf))
        argv = [sys.executable, "-m", "terwayctl", "daemon", "--config", str(conf), "--instance-id", "i-node1",
                "--zone", ZONE, "--socket", str(self.socket), "--state-dir", str(self.dir / "state"),
                "--node-netns", self.node, "--log-level", "warning"]  # fmt: skip
        with open(self.dir / "daemon.log", "ab") as log:
            self.daemon = subprocess.Popen(argv, env=env_for(self.emulator.url), stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(DaemonUnavailable):
                if ask_status(self.socket, 2).get("ready"):
                    return self.daemon.pid
            time.sleep(0.05)
        raise SystemExit("the daemon did not become ready; see " + str(self.dir / "daemon.log"))

    def status(self) -> dict[str, Any]:
        return ask_status(self.socket)

    def cni(self, verb: str, pod_ns: str, name: str, *, wrap: bool = False) -> tuple[int, float, str]:
        conf = {"cniVersion": "1.0.0", "name": "terway", "type": "terway", "daemon_socket": str(self.socket)}
        env = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": verb, "CNI_CONTAINERID": name,
               "CNI_NETNS": str(nsmod.path_of(pod_ns)), "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
               "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={name}"}  # fmt: skip
        argv = nsmod.command(self.node, [self.plugin]) if wrap else [self.plugin]
        started = time.perf_counter()
        done = subprocess.run(argv, input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=120,
                              check=False)
        return done.returncode, time.perf_counter() - started, done.stdout.decode()


@contextlib.contextmanager
def lab(latency_ms: float = 0.0, scenario: Mapping[str, Any] | None = None) -> Iterator[Lab]:
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    with tempfile.TemporaryDirectory(prefix="twbench-") as tmp:
        work = Path(tmp)
        # What `terwayctl cni install --shim` does on a node: the static shim kubelet execs.
        install_plugin(work / "bin", shim=ensure_built())
        created: list[str] = []
        router, node = PREFIX + secrets.token_hex(4), PREFIX + secrets.token_hex(4)
        for name in (router, node):
            nsmod.create(name)
            created.append(name)
        prepare_router(router)
        with nsmod.iproute(node) as nl:
            nl.link("set", index=nl.link_lookup(ifname="lo")[0], state="up")
        for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
            nsmod.write_sysctl(node, key, "0")
        vpc = VpcRouter(router, {"i-node1": node})
        emulator = Emulator(work / "emulator.sqlite", world=parse_scenario(scenario or SCENARIO), hook=vpc).start()
        the_lab = Lab(router, node, emulator, vpc, work)
        original, lock = emulator.handle, threading.Lock()

        def counting(method: str, params: Mapping[str, str]) -> Any:
            if params.get("Action") != "DescribeNetworkInterfaces" or params.get("VpcId") != "vpc-lab":
                with lock:
                    the_lab.calls[params.get("Action", "?")] += 1
            return original(method, params)

        emulator.handle = counting  # type: ignore[method-assign]
        if latency_ms:
            emulator.faults.set("*", latency_ms=latency_ms)
        try:
            yield the_lab
        finally:
            if the_lab.daemon is not None and the_lab.daemon.poll() is None:
                os.kill(the_lab.daemon.pid, signal.SIGTERM)
                the_lab.daemon.wait(timeout=60)
            emulator.stop()
            for name in reversed(created + the_lab.namespaces):
                nsmod.delete(name)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    conf = {"vswitches": {ZONE: ["vsw-pods"]}, "security_group": "sg-lab", "min_pool_size": 0,
            "max_pool_size": args.pods + 10, "ip_pool_sync_period": "60s"}
    with lab(args.latency_ms) as the_lab:
        pid = the_lab.start_daemon(conf)
        idle_rss = rss_mib(pid)
        pods = [the_lab.new_ns() for _ in range(args.pods)]
        the_lab.calls.clear()
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.pods) as pool:
            results = list(pool.map(lambda p: the_lab.cni("ADD", p[1], f"pod-{p[0]}"), enumerate(pods)))
        elapsed = time.perf_counter() - started
        failed = [r for r in results if r[0] != 0]
        status = the_lab.status()
        ips = {json.loads(r[2])["ips"][0]["address"] for r in results if r[0] == 0}
        print(f"pods: {args.pods}  emulated latency: {args.latency_ms:g} ms per API call  cold pool (min_pool_size 0)")
        print(f"all ready in {elapsed:.2f} s; failed ADDs: {len(failed)}; distinct IPs: {len(ips)}")
        slowest = sorted(r[1] for r in results)
        print(f"per-pod ADD: median {slowest[len(slowest) // 2]:.2f} s, max {slowest[-1]:.2f} s")
        print("cloud API calls during the burst: " + ", ".join(f"{k}={v}" for k, v in sorted(the_lab.calls.items())))
        print(f"ENIs: {status['pool']['enis']}  allocated: {status['pool']['allocated']}")
        print(f"daemon RSS: {idle_rss:.1f} MiB idle, {rss_mib(pid):.1f} MiB with {status['pool']['allocated']} pods")
        if failed:
            print("first failure:", failed[0][2][:500])


if __name__ == "__main__":
    main()
