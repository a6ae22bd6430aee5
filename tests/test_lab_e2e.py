"""`terwayctl lab` end to end, as root: a 2-node lab from the CLI, pods on both nodes, pod to pod on a
node and across nodes, the internet through the NAT gateway's SNAT, none with --no-snat, a
bandwidth-limited pod, `lab down` leaving nothing behind (docs/lab.md)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from terwayctl.lab import down, status
from tests.fixtures.lab import RunningLab, leftovers, new_name


def test_two_node_lab_end_to_end(lab_root: Path) -> None:
    lab = RunningLab(new_name(), lab_root)
    try:
        started = lab.cli("up", "--nodes", "2")
        assert started.code == 0, started.stderr
        assert re.search(r"node1\s+i-\w+-node1\s+cn-hangzhou-i\s+twlab-\w+-node1\s+192\.168\.0\.\d+\s+ready", started.stdout)
        assert "vsw-" in started.stdout and "next:" in started.stdout
        assert "lab " in started.stderr  # plain progress lines when not on a TTY

        for pod, node, extra in (("a", "node1", ()), ("b", "node1", ()),
                                 ("c", "node2", ("--bandwidth-out", "20M", "--bandwidth-in", "16M"))):
            added = lab.cli("pod", "add", pod, "--node", node, *extra)
            assert added.code == 0, added.stderr
        listed = lab.cli("pods", "-o", "json")
        pods = {p["name"]: p for p in json.loads(listed.stdout)}
        assert {p["node"] for p in pods.values()} == {"node1", "node2"}
        assert len({p["ip"] for p in pods.values()}) == 3

        assert lab.ping("a", pods["b"]["ip"])  # same node
        assert lab.ping("a", pods["c"]["ip"])  # across nodes, through the VPC router
        assert lab.ping("c", pods["a"]["ip"])

        web = lab.http("c")  # the internet, through the NAT gateway's SNAT
        assert web.code == 0 and "you came from 203.0.113.1" in web.stdout, web

        # the bandwidth-limited pod: tbf on its eth0 (egress) and on its host veth (ingress)
        egress = subprocess.run(["tc", "-n", pods["c"]["ns"], "qdisc", "show", "dev", "eth0"], capture_output=True,
                                text=True, check=True).stdout
        assert "tbf" in egress and "rate 20Mbit" in egress, egress

        node = lab.exec("node1", "terwayctl", "daemon", "status")  # the node's environment reaches its daemon
        assert node.code == 0 and "ready: yes" in node.stdout, node
        check = lab.exec("node2", "sh", "-c",
                         "terwayctl ipam check --instance-id $TERWAYCTL_INSTANCE_ID --state-dir $TERWAYCTL_STATE_DIR")
        assert check.code == 0 and "agree" in check.stdout, check  # ... and its cloud, through the proxy

        assert lab.cli("status").code == 0
        deleted = lab.cli("pod", "del", "b")
        assert deleted.code == 0, deleted.stderr
        assert not Path(f"/run/netns/{pods['b']['ns']}").exists()

        removed = lab.cli("down")
        assert removed.code == 0 and "removed" in removed.stdout, removed
        assert leftovers(lab.name, lab_root) == []
        again = lab.cli("down")  # idempotent
        assert again.code == 0 and "nothing to remove" in again.stdout
    finally:
        down(lab.name)
    assert leftovers(lab.name, lab_root) == []


def test_no_snat_leaves_pods_without_internet_but_nodes_with(make_lab: Callable[..., RunningLab]) -> None:
    lab = make_lab(nodes=1, snat=False)
    lab.pod("p", "node1")
    assert lab.http("p").code != 0  # no SNAT entry for the pod vSwitch: no internet
    node = lab.http("node1")  # the node vSwitch keeps its entry
    assert node.code == 0 and "203.0.113.1" in node.stdout
    pod_vsw = next(v for v in status(lab.name).vswitches if v.role == "pod")
    assert pod_vsw.snat is False
