"""A real runtime (issue #12): podman 4.3 with its CNI backend and runc, in a lab node's network
namespace, running the rendered conflist (the static shim, then the real portmap) against a real
daemon: `podman run -p` with a bandwidth limit (the `k8s.aliyun.com/*-bandwidth` annotations from
the daemon's annotations file: podman passes no bandwidth to CNI), `podman restart` (DEL with the
cached result, then ADD), `podman rm` (nothing left: veth, rules, routes, NAT rules, allocation,
libcni cache, podman's netns). Root only; podman gets private --root/--runroot and containers.conf
(tests/image_support/podman.py); the container is a busybox-static root filesystem (no registry)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from terwayctl.cni.install import install
from terwayctl.cni.protocol import Reply, Request
from terwayctl.kernel import netns as nsmod
from terwayctl.kernel.datapath import inspect_node
from tests.fixtures.node import TERWAY, Node
from tests.image_support.podman import Podman
from tests.image_support.runtime import busybox_rootfs
from tests.test_cni_chain import allocated, iptables_save, rendered_conflist, tbf_rates
from tests.test_cni_hostport import HostPortLab, hostport_lab  # noqa: F401 - the fixture

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("podman", "runc", "conntrack")) or not Path("/bin/busybox").exists(),
    reason="needs podman, runc, conntrack and busybox-static",
)

HOST_PORT = 18080
INGRESS, EGRESS = "2M", "1M"  # k8s.aliyun.com annotations: binary bytes per second
LIBCNI_CACHE = Path("/var/lib/cni/results")
HTTP_GET = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
data = b""
while chunk := s.recv(4096):
    data += chunk
print(data.decode().split("\\r\\n\\r\\n", 1)[-1], end="")
"""


@dataclass
class PodmanNode:
    node: Node
    podman: Podman
    rootfs: Path
    requests: list[Request]


@pytest.fixture
def podman_node(hostport_lab: HostPortLab, tmp_path: Path,  # noqa: F811 - the imported fixture
                monkeypatch: pytest.MonkeyPatch) -> Iterator[PodmanNode]:
    """node-1 with a daemon, its CNI dirs as `terwayctl cni install` fills them, and podman."""
    node = hostport_lab.lab.node(0)
    daemon = node.start()
    requests: list[Request] = []
    handle = daemon.handle

    def recording(request: Request) -> Reply:
        requests.append(request)
        return handle(request)

    monkeypatch.setattr(daemon, "handle", recording)
    source = tmp_path / "10-terway.conflist"
    source.write_text(json.dumps(rendered_conflist(node)))
    bin_dir, conf_dir = tmp_path / "cni-bin", tmp_path / "cni-net.d"
    install(bin_dir, conf_dir, source, shim=Path(TERWAY))
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    (rootfs / "www").mkdir()
    (rootfs / "www" / "index.html").write_text("hello from podman\n")
    runroot = Path(tempfile.mkdtemp(prefix="twrt-", dir="/run"))  # podman: a short run root
    podman = Podman(
        root=tmp_path / "podman-root", runroot=runroot, conf_dir=tmp_path / "podman-conf", storage_driver="vfs",
        network_config_dir=conf_dir, cni_plugin_dirs=[bin_dir],
        prefix=["nsenter", f"--net={nsmod.path_of(node.ns)}"],
        # libcni asks every plugin for VERSION with a bare config: the shim then needs the socket here
        env_extra={"TERWAY_DAEMON_SOCKET": str(node.socket)},
    )
    try:
        yield PodmanNode(node, podman, rootfs, requests)
    finally:
        podman.rm_all()
        shutil.rmtree(runroot, ignore_errors=True)


def http_get(ns: str, address: str) -> str | None:
    done = subprocess.run(nsmod.command(ns, [sys.executable, "-c", HTTP_GET, address, str(HOST_PORT)]),
                          capture_output=True, text=True, timeout=30, check=False)
    return done.stdout if done.returncode == 0 else None


def marked(ns: str, ip: str) -> int:
    """Conntrack entries with the symmetric-routing mark from or answered by `ip`."""
    done = subprocess.run(nsmod.command(ns, ["conntrack", "-L", "-m", "0x10/0x10"]), capture_output=True,
                          text=True, timeout=10, check=True)
    return sum(1 for line in done.stdout.splitlines() if f"src={ip} " in line)


def inspect(podman: Podman, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(podman.run(["inspect", name]).stdout)
    return found[0]


def test_podman_run_restart_rm(podman_node: PodmanNode, hostport_lab: HostPortLab) -> None:  # noqa: F811
    w, pm = podman_node, podman_node.podman
    node, node_ip = w.node, hostport_lab.node_ips[0]
    (node.dir / "annotations.json").write_text(json.dumps(
        {"/web": {"k8s.aliyun.com/ingress-bandwidth": INGRESS, "k8s.aliyun.com/egress-bandwidth": EGRESS}}))
    pm.run(["run", "-d", "--name", "web", "--network", "terway", "-p", f"{HOST_PORT}:80", "--rootfs",
            str(w.rootfs), "/bin/httpd", "-f", "-p", "80", "-h", "/www"])
    first = inspect(pm, "web")
    container_id, sandbox = first["Id"], first["NetworkSettings"]["SandboxKey"]
    pod_ip = first["NetworkSettings"]["Networks"]["terway"]["IPAddress"]
    assert allocated(node.running.daemon) == [container_id]  # type: ignore[union-attr]

    def wired() -> str:
        """The pod's host veth, shaped once per direction from the annotations."""
        veths = inspect_node(node.ns).veths
        assert [v.pod_ips for v in veths] == [(IPv4Address(pod_ip),)], veths
        assert tbf_rates(node.ns, veths[0].name) == [2 * 2**20]
        assert subprocess.run(["nsenter", f"--net={inspect(pm, 'web')['NetworkSettings']['SandboxKey']}", "tc", "-j",
                               "qdisc", "show", "dev", "eth0"], capture_output=True, text=True, timeout=10,
                              check=True).stdout.count('"tbf"') == 1
        return veths[0].name

    wired()
    for client in (node.ns, hostport_lab.lab.node(1).ns, hostport_lab.other_host):
        assert http_get(client, node_ip) == "hello from podman\n", client
    assert (LIBCNI_CACHE / f"terway-{container_id}-eth0").exists()
    assert marked(node.ns, pod_ip) >= 2  # the hostPort connections from node-2 and the other vSwitch

    # restart: DEL with the cached result, then ADD (podman keeps the container, a new netns)
    w.requests.clear()
    pm.run(["restart", "-t", "0", "web"])
    verbs = [r.verb for r in w.requests if r.verb in ("ADD", "DEL")]
    assert verbs == ["DEL", "ADD"], verbs
    deleted = next(r for r in w.requests if r.verb == "DEL")
    assert deleted.prev_result is not None and deleted.prev_result["ips"][0]["address"] == f"{pod_ip}/32"  # type: ignore[index]
    assert marked(node.ns, pod_ip) == 0  # DEL forgot them
    again = inspect(pm, "web")
    assert again["Id"] == container_id and again["NetworkSettings"]["SandboxKey"] != sandbox
    pod_ip = again["NetworkSettings"]["Networks"]["terway"]["IPAddress"]
    wired()
    assert allocated(node.running.daemon) == [container_id]  # type: ignore[union-attr]
    for client in (node.ns, hostport_lab.lab.node(1).ns):
        assert http_get(client, node_ip) == "hello from podman\n", client
    assert marked(node.ns, pod_ip) >= 1

    # rm: nothing left
    pm.run(["rm", "-f", "-t", "0", "web"])
    state = inspect_node(node.ns)
    assert state.veths == () and state.rules == (), state
    assert container_id not in iptables_save(node.ns)
    assert allocated(node.running.daemon) == []  # type: ignore[union-attr]
    assert marked(node.ns, pod_ip) == 0
    assert not (LIBCNI_CACHE / f"terway-{container_id}-eth0").exists()
    assert not Path(again["NetworkSettings"]["SandboxKey"]).exists()
    routes = subprocess.run(nsmod.command(node.ns, ["ip", "route", "show", "table", "all"]), capture_output=True,
                            text=True, timeout=10, check=True).stdout
    assert pod_ip not in routes, routes
