"""`terwayctl lab up` + `lab down` of 2 nodes, against a shell reference in the same run.

The lab: 4 namespaces (router, internet, 2 nodes), their links, the supervisor (emulator, VPC
router, NAT in nftables, proxies, web server) and 2 daemons ready with a warm pool. The reference
does the bare minimum by shell: `ip netns add` of the same 4 namespaces, 3 veth pairs with an
address each, then `ip netns del`. Reported: median seconds of each and their ratio.

    sudo python bench/lab_up.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REFERENCE = """
set -e
p=twbench-{tag}
for n in router inet node1 node2; do ip netns add $p-$n; done
ip -n $p-router link add wan type veth peer name eth0 netns $p-inet
ip -n $p-router link add vr1 type veth peer name eth0 netns $p-node1
ip -n $p-router link add vr2 type veth peer name eth0 netns $p-node2
ip -n $p-router addr add 203.0.113.1/24 dev wan
ip -n $p-inet addr add 203.0.113.10/24 dev eth0
ip -n $p-node1 addr add 192.168.0.1/19 dev eth0
ip -n $p-node2 addr add 192.168.0.2/19 dev eth0
for n in router inet node1 node2; do ip -n $p-$n link set lo up; done
for n in router inet node1 node2; do ip netns del $p-$n; done
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    root = tempfile.mkdtemp(prefix="twbench", dir="/tmp")
    env = {**os.environ, "TERWAYCTL_LAB_DIR": root}
    name = "b" + secrets.token_hex(3)
    lab = [sys.executable, "-m", "terwayctl", "lab"]
    ups, downs, refs = [], [], []
    try:
        for _ in range(max(1, args.runs)):
            ups.append(timed([*lab, "up", "--name", name, "--nodes", "2"], env))
            downs.append(timed([*lab, "down", "--name", name], env))
            refs.append(timed(["sh", "-c", REFERENCE.format(tag=secrets.token_hex(3))], env))
    finally:
        subprocess.run([*lab, "down", "--name", name], env=env, capture_output=True, timeout=120, check=False)
        shutil.rmtree(root, ignore_errors=True)
    up_s, down_s, ref_s = statistics.median(ups), statistics.median(downs), statistics.median(refs)
    print(f"runs: {len(ups)} (median)")
    print(f"lab up   (2 nodes, daemons ready): {up_s:6.2f} s   runs {', '.join(f'{x:.2f}' for x in ups)}")
    print(f"lab down                         : {down_s:6.2f} s   runs {', '.join(f'{x:.2f}' for x in downs)}")
    print(f"up + down                        : {up_s + down_s:6.2f} s")
    print(f"reference (4 netns + 3 veths, sh): {ref_s:6.2f} s   runs {', '.join(f'{x:.2f}' for x in refs)}")
    print(f"ratio (up + down) / reference    : {(up_s + down_s) / ref_s:6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
