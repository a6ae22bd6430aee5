"""CNI ADD and DEL latency of terway (warm pool) against the reference bridge + host-local plugins,
side by side in one run, inside namespaces created here (budget: within 1.5x, docs/benchmarks.md).
terway runs as kubelet runs it on a node: the static shim, forwarding to the daemon.

Both plugins are executed the same way: `ip netns exec <node-ns> <plugin>` with the same CNI
variables (the bridge plugin must run inside the node namespace so that it never touches the root
namespace; terway runs there too so that both pay the same wrapper cost). Pods alternate between
the two plugins so that machine noise hits both equally.

    sudo python bench/cni_latency.py [--pods 30] [--dual]

--dual: a dual-stack VPC (IPv6 /56, the pod vSwitch with a /64) and eni_conf ip_stack dual: every terway
pod gets an IPv4 and an IPv6 address and both layouts (docs/datapath.md "Dual stack").
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pod_burst import SCENARIO, ZONE, lab

from terwayctl.kernel import netns as nsmod

BRIDGE = "/usr/lib/cni/bridge"


def bridge_cni(node: str, verb: str, pod_ns: str, name: str, data_dir: Path) -> tuple[int, float]:
    conf = {"cniVersion": "1.0.0", "name": "bench-bridge", "type": "bridge", "bridge": "cni0", "isGateway": True,
            "ipMasq": False, "ipam": {"type": "host-local", "subnet": "10.88.0.0/16", "dataDir": str(data_dir)}}
    env = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": verb, "CNI_CONTAINERID": name,
           "CNI_NETNS": str(nsmod.path_of(pod_ns)), "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni",
           "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME={name}"}  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(nsmod.command(node, [BRIDGE]), input=json.dumps(conf).encode(), env=env,
                          capture_output=True, timeout=60, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bridge {verb} failed: {done.stdout.decode()} {done.stderr.decode()}")
    return done.returncode, elapsed


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[int(len(ordered) * 0.9) - 1] if len(ordered) >= 10 else ordered[-1]
    return f"median {statistics.median(values) * 1000:6.1f} ms  p90 {p90 * 1000:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument("--dual", action="store_true", help="dual stack: an IPv4 and an IPv6 address per pod")
    args = parser.parse_args()
    conf: dict[str, object] = {"vswitches": {ZONE: ["vsw-pods"]}, "security_group": "sg-lab",
                               "min_pool_size": args.pods + 2, "max_pool_size": args.pods + 10,
                               "ip_pool_sync_period": "60s"}
    scenario = None
    if args.dual:
        scenario = copy.deepcopy(SCENARIO)
        scenario["vpcs"][0]["ipv6"] = True
        scenario["vswitches"][0]["ipv6_cidr_block"] = 0
        scenario["vswitches"][1]["ipv6_cidr_block"] = 1
        conf["ip_stack"] = "dual"
    times: dict[str, list[float]] = {"terway ADD": [], "terway DEL": [], "bridge ADD": [], "bridge DEL": []}
    with lab(scenario=scenario) as the_lab:
        the_lab.start_daemon(conf)
        deadline = time.monotonic() + 60
        while the_lab.status()["pool"]["idle"] < args.pods and time.monotonic() < deadline:
            time.sleep(0.1)  # warm pool: every ADD below finds an idle IP
        data_dir = the_lab.dir / "host-local"
        for i in range(args.pods):
            t_ns, b_ns = the_lab.new_ns(), the_lab.new_ns()
            code, elapsed, out = the_lab.cni("ADD", t_ns, f"t{i}", wrap=True)
            if code != 0:
                raise SystemExit(f"terway ADD failed: {out}")
            if args.dual and not any(":" in ip["address"] for ip in json.loads(out)["ips"]):
                raise SystemExit(f"terway ADD gave no IPv6 address: {out}")
            times["terway ADD"].append(elapsed)
            times["bridge ADD"].append(bridge_cni(the_lab.node, "ADD", b_ns, f"b{i}", data_dir)[1])
            code, elapsed, out = the_lab.cni("DEL", t_ns, f"t{i}", wrap=True)
            if code != 0:
                raise SystemExit(f"terway DEL failed: {out}")
            times["terway DEL"].append(elapsed)
            times["bridge DEL"].append(bridge_cni(the_lab.node, "DEL", b_ns, f"b{i}", data_dir)[1])
    stack = "dual stack (IPv4 + IPv6 per terway pod)" if args.dual else "IPv4"
    print(f"{args.pods} pods each, warm pool, {stack}, both plugins run as 'ip netns exec <node> <plugin>'")
    for key, values in times.items():
        print(f"{key:11s} {summary(values)}")
    for verb in ("ADD", "DEL"):
        ratio = statistics.median(times[f"terway {verb}"]) / statistics.median(times[f"bridge {verb}"])
        print(f"{verb} ratio terway / bridge+host-local (median): {ratio:.2f}x (budget 1.5x)")


if __name__ == "__main__":
    main()
