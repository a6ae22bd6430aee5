"""The static shim as kubelet execs it, against the real daemon: the pod's namespace exists only in
the runtime's mount namespace, as it does when the daemon runs in a container. The shim passes it
as a descriptor; the daemon, which cannot see the path, still plumbs and tears down the pod."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import inspect_node
from tests.fixtures.node import TERWAY, Lab, Node, Pod

pytestmark = pytest.mark.skipif(shutil.which("go") is None or shutil.which("unshare") is None,
                                reason="needs Go (the static shim) and unshare (util-linux)")


def _private_netns_run(node: Node, verb: str, pod: Pod, hidden: Path) -> subprocess.CompletedProcess[bytes]:
    """Exec the shim in a private mount namespace where the pod's namespace is bind-mounted at a
    path that does not exist in the daemon's mount namespace (a tmpfs only this one sees)."""
    target = hidden / "podns"
    script = (f"mount -t tmpfs twtest {hidden} && touch {target} && "
              f"mount --bind {nsmod.path_of(pod.ns)} {target} && exec {TERWAY}")
    env = {**node.cni_env(verb, pod), "CNI_NETNS": str(target)}
    config = json.dumps(node.netconf()).encode()
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          input=config, env=env, capture_output=True, timeout=60, check=False)


def test_the_shim_passes_a_namespace_the_daemon_cannot_see(vpc_lab: Lab, tmp_path: Path) -> None:
    assert "statically linked" in subprocess.run(["file", "-L", TERWAY], capture_output=True, text=True,
                                                 check=True).stdout
    node = vpc_lab.node(0)
    node.start()
    pod = node.pod("hidden")
    hidden = tmp_path / "runtime-only"
    hidden.mkdir()
    added = _private_netns_run(node, "ADD", pod, hidden)
    assert added.returncode == 0, added
    result = json.loads(added.stdout)
    assert result["interfaces"][result["ips"][0]["interface"]]["sandbox"] == str(hidden / "podns")  # as named
    assert not (hidden / "podns").exists()  # not in this (the daemon's) mount namespace
    with nsmod.iproute(pod.ns) as nl:
        addresses = [m.get_attr("IFA_ADDRESS") for m in nl.get_addr(family=2)]
    assert result["ips"][0]["address"].split("/")[0] in addresses
    deleted = _private_netns_run(node, "DEL", pod, hidden)
    assert deleted.returncode == 0, deleted
    state = inspect_node(node.ns)
    assert state.veths == () and state.rules == ()
    with nsmod.iproute(pod.ns) as nl:
        assert sorted(str(m.get_attr("IFLA_IFNAME")) for m in nl.link("dump")) == ["lo"]
