"""The node side AS PACKAGED (docs/image.md): the image built from the Containerfile, the rendered
DaemonSet's containers run by a mini kubelet on a lab node, and a real container runtime on that
node starting a container through the CNI shim the init container installed.

Stages (each asserted): a cached Debian base (debootstrap + podman import) -> `podman build` of the
Containerfile -> `lab up` with node1's daemon external -> `terwayctl render` for that lab -> the
init container writes the static shim, portmap, bandwidth and the conflist into the node's dirs ->
the daemon container (in-cluster config against the HTTPS test API server, identity from the lab's
metadata service, credentials from the Secret volume) becomes ready -> podman on the node, with
this Python and the source tree hidden, runs a busybox container on the terway network: it gets a
pool IP, pings a pod on node2, and `podman rm -f` leaves no veth, rule or allocation.

Root only; the first run on a machine takes a few minutes (debootstrap, pip wheel), later runs
reuse /var/cache/terwayctl-tests/ (base tarball, dependency wheels, image layers).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.root

TOOLS = ("podman", "debootstrap", "go", "nsenter", "unshare", "file")
SECRET_NAME = "terway-credentials"
READY_TIMEOUT_S = 90.0


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return f"the packaged-node test needs root (running as uid {os.geteuid()})"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"the packaged-node test needs {', '.join(missing)} (apt-get install podman debootstrap golang-go ...)"
    if not Path("/bin/busybox").exists():
        return "the packaged-node test needs /bin/busybox (apt-get install busybox-static)"
    return None


def terwayctl(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "terwayctl", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)


def in_ns(ns: str, *argv: str) -> str:
    done = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30, check=False)
    return done.stdout


@dataclass
class Lab:
    name: str
    env: dict[str, str]
    status: dict[str, Any]

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.status["nodes"] if n["name"] == name)

    @property
    def emulator_port(self) -> int:
        return int(str(self.status["emulator"]).rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def node_image() -> Iterator[str]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from tests.image_support.image import build_node_image, remove_image

    work = Path(tempfile.mkdtemp(prefix="twimg-build-"))
    started = time.monotonic()
    tag = build_node_image(work)
    print(f"node image {tag} built in {time.monotonic() - started:.1f} s")
    try:
        yield tag
    finally:
        remove_image(tag)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def lab() -> Iterator[Lab]:
    name = "pk" + secrets.token_hex(3)
    root = Path(tempfile.mkdtemp(prefix="twpk-"))
    env = {"TERWAYCTL_LAB_DIR": str(root)}
    try:
        done = terwayctl("lab", "up", "--name", name, "--nodes", "2", "--external-daemon", "node1", "-o", "json",
                         env=env)
        assert done.returncode == 0, done.stderr
        yield Lab(name, env, json.loads(done.stdout))
    finally:
        terwayctl("lab", "down", "--name", name, env=env)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def api_server(work: Path, node_ns: str) -> Iterator[tuple[Any, Any]]:
    """The HTTPS test API server, also on 127.0.0.1:<port> inside the node namespace."""
    from terwayctl.lab.kubeapi import KubeApiServer
    from terwayctl.lab.supervisor import EndpointProxy
    from tests.image_support.tls import self_signed

    cert = self_signed(work / "pki")
    server = KubeApiServer(tls=cert.server_context()).start()
    proxy = None
    try:
        for ns in ("kube-system", "default"):
            server.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        proxy = EndpointProxy(node_ns, server.port)
        yield server, cert
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()


@contextlib.contextmanager
def shared_netns_dir(host_root: Path) -> Iterator[Path]:
    """The node's /var/run/netns as `ip netns` leaves /run/netns: a shared bind mount of itself, so
    namespaces mounted there later propagate to the daemon container's HostToContainer copy."""
    path = host_root / "var/run/netns"
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True, timeout=10)
    try:
        subprocess.run(["mount", "--make-shared", str(path)], check=True, timeout=10)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, timeout=10)


def render(lab: Lab, image: str) -> list[dict[str, Any]]:
    vsw = next(v for v in lab.status["vswitches"] if v["role"] == "pod")
    node1 = lab.node("node1")
    done = terwayctl(
        "render", "--set", f"image={image}", "--set", "image_pull_policy=Never",
        "--set", f"security_groups=sg-{lab.name}", "--set", f"vswitches.{node1['zone']}={vsw['vswitch_id']}",
        "--set", "region_id=cn-hangzhou", "--set", f"credentials.secret={SECRET_NAME}",
        "--set", f"endpoint=http://127.0.0.1:{lab.emulator_port}", "--set", "host_port=true", "--set", "bandwidth=true",
        "--set", "pool.min_size=2",
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def wait_ready(kubelet: Any) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        done = kubelet.exec("terway", ["terwayctl", "daemon", "status", "-o", "json"])
        if done.returncode == 0:
            status: dict[str, Any] = json.loads(done.stdout)
            if status.get("ready"):
                return status
        last = done.stdout + done.stderr
        running = kubelet.podman.run(["inspect", "-f", "{{.State.Running}}", f"{kubelet.pod_name}-terway"],
                                     check=False)
        if running.stdout.strip() != "true":
            pytest.fail(f"the daemon container exited:\n{kubelet.logs('terway')[-4000:]}")
        time.sleep(1)
    pytest.fail(f"the daemon container did not become ready in {READY_TIMEOUT_S:.0f} s: {last}\n"
                f"{kubelet.logs('terway')[-4000:]}")


def _assert_reproducible(shim: Path) -> None:
    """The image's shim is byte for byte what `terwayctl.cni.shim.ensure_built` builds here, when
    this machine's Go is the one the image was built with (the build is offline and reproducible)."""
    from terwayctl.cni.shim import ensure_built

    def go_of(binary: Path) -> str:
        done = subprocess.run(["go", "version", str(binary)], capture_output=True, text=True, check=False)
        return done.stdout.rsplit(":", 1)[-1].strip()

    host_go = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=False).stdout.strip()
    if go_of(shim) != host_go:
        return
    assert shim.read_bytes() == ensure_built().read_bytes(), "the image's shim differs from ensure_built()'s"


def _assert_netns_propagates(kubelet: Any, host: Any) -> None:
    """The fallback for a client that sends only a path: a namespace bind-mounted into the node's
    /var/run/netns after the daemon started shows in the container (HostToContainer, as rslave)."""
    probe = host.root / "var/run/netns" / f"probe-{secrets.token_hex(3)}"
    probe.touch()
    try:
        subprocess.run(["mount", "--bind", f"/run/netns/{host.netns}", str(probe)], check=True, timeout=10)
        try:
            seen = kubelet.exec("terway", ["stat", "-f", "-c", "%T", f"/var/run/netns/{probe.name}"])
            assert seen.stdout.strip() == "nsfs", (seen.stdout, seen.stderr)
        finally:
            subprocess.run(["umount", str(probe)], check=False, timeout=10)
    finally:
        probe.unlink()


def allocations(kubelet: Any) -> list[dict[str, Any]]:
    done = kubelet.exec("terway", ["terwayctl", "daemon", "status", "-o", "json"])
    assert done.returncode == 0, done.stderr
    found: list[dict[str, Any]] = json.loads(done.stdout).get("allocations", [])
    return found


def test_packaged_node_runs_a_container_through_the_shim(node_image: str, lab: Lab, tmp_path: Path) -> None:
    from terwayctl.lab.kubeapi.seed import node as seed_node
    from tests.image_support.image import image_podman
    from tests.image_support.kubelet import ApiAccess, MiniKubelet, NodeHost
    from tests.image_support.runtime import NodeRuntime, busybox_rootfs

    node1 = lab.node("node1")
    host = NodeHost(name="node1", netns=node1["namespace"], root=tmp_path / "host")
    manifests = render(lab, node_image)
    kubelet = runtime = None
    with api_server(tmp_path, host.netns) as (api, cert), shared_netns_dir(host.root):
        try:
            for obj in manifests:
                if obj["kind"] in ("ConfigMap", "DaemonSet", "ServiceAccount"):
                    api.create(obj)
            api.create(seed_node("node1", "ecs.g7.xlarge", node1["zone"]))
            kubelet = MiniKubelet(
                image_podman(), host, manifests, ApiAccess("127.0.0.1", api.port, cert.cert), tmp_path / "kubelet",
                secrets={SECRET_NAME: {"access_key": "emulator", "access_secret": "emulator"}},
            )

            # --- the init container installs the shim, the chained plugins and the conflist ------
            kubelet.run_init_containers()
            bin_dir, conf_dir = host.root / "opt/cni/bin", host.root / "etc/cni/net.d"
            shim = bin_dir / "terway"
            kind = subprocess.run(["file", "-L", str(shim)], capture_output=True, text=True, check=True).stdout
            assert "statically linked" in kind, kind
            _assert_reproducible(shim)
            assert os.access(bin_dir / "portmap", os.X_OK), sorted(os.listdir(bin_dir))
            conflist = json.loads((conf_dir / "10-terway.conflist").read_text())
            rendered = next(o for o in manifests if o["kind"] == "ConfigMap")["data"]["10-terway.conflist"]
            assert conflist == json.loads(rendered)
            assert conflist["plugins"][0]["type"] == "terway"
            assert [p["type"] for p in conflist["plugins"]] == ["terway", "portmap"]  # terway shapes itself
            assert conflist["plugins"][0]["capabilities"] == {"bandwidth": True}
            leftovers = [p.name for d in (bin_dir, conf_dir) for p in d.iterdir() if p.name.startswith(".")]
            assert leftovers == [], leftovers

            # --- the daemon container becomes ready (identity from metadata, cluster over HTTPS) --
            kubelet.start_containers()
            status = wait_ready(kubelet)
            assert status["instance_id"] == node1["instance_id"], status
            assert status["zone_id"] == node1["zone"], status
            _assert_netns_propagates(kubelet, host)

            # --- a real runtime on the node runs a container through the shim --------------------
            runtime = NodeRuntime(tmp_path / "runtime", host.netns, host.root)
            hidden = runtime.sh(f"find {' '.join(str(p) for p in runtime.hidden)} -mindepth 1")
            assert hidden.returncode == 0 and hidden.stdout == "", (hidden.stdout[:500], hidden.stderr)
            assert runtime.sh("ls -A /var/run/eni").stdout.split() == ["eni.socket"]  # the daemon container's
            rootfs = busybox_rootfs(tmp_path / "rootfs")
            peer = terwayctl("lab", "pod", "add", "peer", "--node", "node2", "--name", lab.name, "-o", "json",
                             env=lab.env)
            assert peer.returncode == 0, peer.stderr
            peer_ip = json.loads(peer.stdout)["ip"]
            name = f"web-{secrets.token_hex(3)}"
            runtime.podman.run(["run", "-d", "--name", name, "--network", "terway", "--rootfs", str(rootfs),
                                "sleep", "600"], timeout=120)
            addr = runtime.podman.run(["exec", name, "ip", "-4", "-o", "addr", "show", "eth0"]).stdout
            ip = addr.split("inet ", 1)[1].split("/", 1)[0]
            owned = {a["ip"]: a for a in allocations(kubelet)}
            assert ip in owned, (ip, owned)
            # the pod's namespace is a bind mount in the runtime's private mount namespace only: the
            # daemon wired it through the descriptor the shim passed, not by its path
            sandbox = runtime.podman.run(["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name]).stdout.strip()
            assert sandbox.startswith("/run/netns/"), sandbox
            assert runtime.sh(f"test -e {sandbox}").returncode == 0
            assert kubelet.exec("terway", ["test", "-e", sandbox]).returncode != 0, sandbox
            ping = runtime.podman.run(["exec", name, "ping", "-c", "2", "-W", "2", peer_ip], check=False)
            assert ping.returncode == 0, ping.stdout + ping.stderr
            assert in_ns(host.netns, "ip", "rule", "show").count(f"{ip} ") >= 1

            # --- podman rm -f: CNI DEL through the shim leaves nothing -------------------------
            runtime.podman.run(["rm", "-f", "-t", "0", name], timeout=120)
            links = in_ns(host.netns, "ip", "-o", "link", "show")
            assert "cali" not in links, links
            assert f"{ip} " not in in_ns(host.netns, "ip", "rule", "show")
            assert ip not in {a["ip"] for a in allocations(kubelet)}
        finally:
            if runtime is not None:
                runtime.close()
            if kubelet is not None:
                kubelet.stop()
