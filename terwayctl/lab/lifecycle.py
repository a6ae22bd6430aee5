"""`lab up`, `lab down` and `lab status`: the lab's processes and namespaces over time.

Process model: `up` builds the namespaces and links, starts the supervisor
(``terwayctl lab serve --name N``, detached) and one ``terwayctl daemon`` per node inside the
node's namespace (``ip netns exec``), records their pids in ``state.json`` and returns. Every later
command is a new process that reads the lab dir. `down` stops the recorded pids (checking their
command lines first), then whatever still runs inside the lab's namespaces, deletes every
namespace with the lab's prefix and the lab dir; it works on any leftover, in any order.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terwayctl.core.errors import InvalidInput, TerwayctlError
from terwayctl.kernel import netns
from terwayctl.lab import naming, network, procs
from terwayctl.lab.control import SupervisorUnavailable, ask
from terwayctl.lab.model import LabSpec, NodePlan, Topology, build_topology
from terwayctl.lab.state import LabDir, cloud_env

Progress = Callable[[str], None]
READY_TIMEOUT_S = 60.0
CNI_VERSION = "1.0.0"


class LabError(TerwayctlError):
    """A lab step failed (exit 1)."""


@dataclass(frozen=True)
class NodeStatus:
    name: str
    instance_id: str
    zone: str
    namespace: str
    primary_ip: str
    daemon_pid: int
    daemon_running: bool
    ready: bool
    enis: int
    pool_ips: int
    idle_ips: int
    pods: int
    external: bool = False  # the daemon runs outside the lab's control (LabSpec.external_daemons)


@dataclass(frozen=True)
class VSwitchStatus:
    vswitch_id: str
    zone: str
    role: str
    cidr: str
    gateway: str
    free_ips: int
    snat: bool


@dataclass(frozen=True)
class LabStatus:
    name: str
    lab_dir: str
    mode: str
    instance_type: str
    emulator: str
    supervisor_pid: int
    supervisor_running: bool
    nodes: list[NodeStatus] = field(default_factory=list)
    vswitches: list[VSwitchStatus] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    kube_api: str = ""  # `lab up --kube`: the API server's URL ('' without)
    kubeconfig: str = ""

    @property
    def healthy(self) -> bool:
        return self.supervisor_running and all(n.daemon_running and n.ready for n in self.nodes if not n.external)


@dataclass(frozen=True)
class DownReport:
    name: str
    stopped_pids: list[int]
    namespaces: list[str]
    removed_dir: bool

    @property
    def anything(self) -> bool:
        return bool(self.stopped_pids or self.namespaces or self.removed_dir)


def supervisor_marker(name: str) -> str:
    """What the supervisor's command line holds (NUL-separated arguments read as spaces)."""
    return f"lab serve --name {name} "


def daemon_marker(lab: LabDir) -> str:
    return f"{lab.path}/"


def _quiet(_: str) -> None:
    return None


# --- up -------------------------------------------------------------------------------------------


def up(spec: LabSpec, progress: Progress = _quiet) -> LabStatus:
    """Bring the lab up and return its status; on failure everything made so far is removed."""
    topology = build_topology(spec)
    lab = LabDir(topology.name)
    _refuse_leftovers(lab)
    longest = lab.node_socket("node" + str(len(topology.nodes)))
    if len(str(longest)) > naming.MAX_SOCKET_PATH:
        raise InvalidInput(f"the lab dir {lab.path} is too deep for unix sockets ({len(str(longest))} bytes)",
                           hint=f"point {naming.LAB_DIR_ENV} at a shorter directory")
    try:
        _up(lab, topology, progress)
    except BaseException:
        progress("failed; removing what was made")
        down(topology.name)
        raise
    return status(topology.name)


def _refuse_leftovers(lab: LabDir) -> None:
    if lab.exists() or lab.path.exists() or network.lab_namespaces(lab.name):
        raise InvalidInput(f"lab {lab.name} already exists (or left something behind)",
                           hint=f"'terwayctl lab status --name {lab.name}', or remove it: "
                                f"terwayctl lab down --name {lab.name}")


def _up(lab: LabDir, topology: Topology, progress: Progress) -> None:
    lab.path.mkdir(parents=True, exist_ok=False)
    lab.write_topology(topology)
    with lab.locked():
        pass
    progress(f"namespaces: {topology.router_ns}, {topology.internet_ns} and {len(topology.nodes)} node(s)")
    network.create_namespaces([topology.router_ns, topology.internet_ns, *(n.ns for n in topology.nodes)])
    network.setup_router(topology)
    shim = _shim(progress)
    for node in topology.nodes:
        network.setup_node(node.ns)
        _node_files(lab, topology, node, shim)
    progress("supervisor: emulator, VPC router, NAT gateway, internet"
             + (f", Kubernetes API server, Terway applied from {lab.values}" if topology.kube else ""))
    env = {**cloud_env("", topology.region), "PYTHONUNBUFFERED": "1"}
    pid = procs.spawn([sys.executable, "-m", "terwayctl", "lab", "serve", "--name", lab.name],
                      lab.path / "supervisor.log", env)
    with lab.locked() as state:
        state.supervisor_pid = pid
    ready = _wait_supervisor(lab, pid)
    managed = [n for n in topology.nodes if n.name not in topology.external_daemons]
    external = f" (not started: {', '.join(topology.external_daemons)})" if topology.external_daemons else ""
    progress(f"daemons: {len(managed)} x terwayctl daemon --mode {topology.mode}{external}")
    with lab.locked() as state:
        for node in managed:
            state.daemon_pids[node.name] = spawn_daemon(lab, topology, node, str(ready["url"]))
        pids = dict(state.daemon_pids)
    if managed:
        with ThreadPoolExecutor(max_workers=len(managed)) as pool:
            list(pool.map(lambda n: _wait_daemon(lab, n, pids[n.name]), managed))
    progress("ready")


def _shim(progress: Progress) -> Path | None:
    """The static CNI shim the nodes exec (built once and cached), or None for the Python client."""
    from terwayctl.cni.shim import ShimUnavailable, ensure_built

    try:
        shim = ensure_built()
    except ShimUnavailable as exc:
        progress(f"plugin: the Python debugging client, not the static shim ({exc}; {exc.hint})")
        return None
    progress(f"plugin: the static CNI shim {shim}")
    return shim


def _node_files(lab: LabDir, topology: Topology, node: NodePlan, shim: Path | None) -> None:
    """What a node's terway pod would install: the plugin in the CNI bin dir, 10-terway.conflist
    in the CNI conf dir (through `terwayctl.cni.install`, as ``terwayctl cni install`` does)."""
    for path in (lab.node_dir(node.name), lab.node_state_dir(node.name)):
        path.mkdir(parents=True, exist_ok=True)
    (lab.node_dir(node.name) / "eni_conf.json").write_text(json.dumps(topology.node_eni_conf(node), indent=2))
    lab.annotations(node.name).write_text("{}")
    conflist = {
        "cniVersion": CNI_VERSION, "name": "terway",
        "plugins": [{"type": "terway", "capabilities": {"bandwidth": True},
                     "daemon_socket": str(lab.node_socket(node.name))}],
    }
    source = lab.node_dir(node.name) / lab.conflist(node.name).name
    source.write_text(json.dumps(conflist, indent=2) + "\n")
    from terwayctl.cni.install import InstallError, install

    try:
        install(lab.node_bin(node.name), lab.node_conf(node.name), source, shim=shim)
    except InstallError as exc:
        raise LabError(f"cannot install the plugin on {node.name}: {exc}") from None



def _wait_supervisor(lab: LabDir, pid: int) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        ready = lab.ready()
        if ready.get("pid") == pid:
            return ready
        if procs.exited(pid, supervisor_marker(lab.name)):
            raise LabError(f"the lab supervisor exited: {_tail(lab.path / 'supervisor.log')}")
        time.sleep(0.02)
    raise LabError(f"the lab supervisor did not become ready within {READY_TIMEOUT_S:.0f} s",
                   hint=f"see {lab.path / 'supervisor.log'}")


def _daemon_argv(lab: LabDir, topology: Topology, node: NodePlan) -> list[str]:
    d = lab.node_dir(node.name)
    # --kube: eni_conf from the lab's API server (eni-config + the Node's terway-config), as in a cluster
    source = (["--node-name", node.name] if topology.kube else ["--config", str(d / "eni_conf.json")])
    cluster = ["--kubeconfig", str(lab.kubeconfig)] if topology.kube else []
    return ["ip", "netns", "exec", node.ns, sys.executable, "-m", "terwayctl", *cluster, "daemon",
            "--mode", topology.mode, *source, "--instance-id", node.instance_id,
            "--zone", node.zone, "--vswitch-id", node.vswitch_id, "--instance-type", topology.instance_type,
            "--socket", str(lab.node_socket(node.name)), "--state-dir", str(lab.node_state_dir(node.name)),
            "--pod-annotations", str(lab.annotations(node.name))]


def spawn_daemon(lab: LabDir, topology: Topology, node: NodePlan, url: str) -> int:
    """Start the node's daemon (detached, logged to <node>/daemon.log) and return its pid; `up`, and the
    supervisor when a --kube lab's terway pod is deleted."""
    env = {**lab.node_env(topology, node, url), "PYTHONUNBUFFERED": "1"}
    return procs.spawn(_daemon_argv(lab, topology, node), lab.node_dir(node.name) / "daemon.log", env)


def _wait_daemon(lab: LabDir, node: NodePlan, pid: int) -> None:
    from terwayctl.node.client import DaemonUnavailable, ask_status

    marker = daemon_marker(lab)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if procs.exited(pid, marker):
            raise LabError(f"the daemon of {node.name} exited: {_tail(lab.node_dir(node.name) / 'daemon.log')}")
        try:
            if ask_status(lab.node_socket(node.name), timeout=2).get("ready"):
                return
        except DaemonUnavailable:
            pass
        time.sleep(0.02)
    raise LabError(f"the daemon of {node.name} did not become ready within {READY_TIMEOUT_S:.0f} s",
                   hint=f"see {lab.node_dir(node.name) / 'daemon.log'}")


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- down -----------------------------------------------------------------------------------------


def down(name: str, progress: Progress = _quiet) -> DownReport:
    """Remove the lab: its processes, namespaces and files. Idempotent; works after a crash."""
    lab = LabDir(name)
    stopped: list[int] = []
    state = lab.read_state()
    marker = daemon_marker(lab)
    pids = [(pid, marker) for pid in state.daemon_pids.values()]
    pids.append((state.supervisor_pid, supervisor_marker(name)))
    ready_pid = int(lab.ready().get("pid", 0) or 0)
    if ready_pid and ready_pid != state.supervisor_pid:
        pids.append((ready_pid, supervisor_marker(name)))
    progress("stopping processes")
    stopped.extend(procs.stop_all(pids))
    namespaces = network.lab_namespaces(name)
    # what still runs inside the lab's namespaces (lab exec, servers started in pods)
    inside = [(pid, "") for ns in namespaces for pid in network.namespace_pids(ns) if pid != os.getpid()]
    stopped.extend(procs.stop_all(inside, timeout=2))
    progress(f"deleting {len(namespaces)} namespace(s)")
    network.delete_namespaces(namespaces)
    removed = lab.path.exists()
    if removed:
        shutil.rmtree(lab.path, ignore_errors=True)
    procs.reap_exited()
    return DownReport(name, stopped, namespaces, removed)


# --- status ---------------------------------------------------------------------------------------


def status(name: str) -> LabStatus:
    from terwayctl.node.client import DaemonUnavailable, ask_status

    lab = LabDir(name)
    topology = lab.topology()
    state = lab.read_state()
    ready = lab.ready()
    running = procs.alive(state.supervisor_pid, supervisor_marker(name))
    summary: Mapping[str, Any] = {}
    if running:
        try:
            summary = ask(lab.control_socket, "summary")
        except (SupervisorUnavailable, TerwayctlError):
            summary = {}
    nodes = []
    for node in topology.nodes:
        pid = state.daemon_pids.get(node.name, 0)
        doc: Mapping[str, Any] = {}
        with contextlib.suppress(DaemonUnavailable):
            doc = ask_status(lab.node_socket(node.name), timeout=3)
        pool = doc.get("pool", {})
        enis = summary.get("enis", {}).get(node.name, [])
        primary = next((e["primary_ip"] for e in enis if e["type"] == "Primary"), "")
        nodes.append(NodeStatus(
            name=node.name, instance_id=node.instance_id, zone=node.zone, namespace=node.ns, primary_ip=primary,
            daemon_pid=pid, daemon_running=procs.alive(pid, daemon_marker(lab)), ready=bool(doc.get("ready")),
            enis=len(enis), pool_ips=int(pool.get("ips", 0) or 0), idle_ips=int(pool.get("idle", 0) or 0),
            pods=sum(1 for p in state.pods.values() if p.node == node.name),
            external=node.name in topology.external_daemons,
        ))
    vswitches = [VSwitchStatus(**v) for v in summary.get("vswitches", [])]
    return LabStatus(
        name=name, lab_dir=str(lab.path), mode=topology.mode, instance_type=topology.instance_type,
        emulator=str(ready.get("url", "")), supervisor_pid=state.supervisor_pid, supervisor_running=running,
        nodes=nodes, vswitches=vswitches, namespaces=network.lab_namespaces(name),
        faults=sorted(state.faults), kube_api=str(ready.get("kube_url", "")) if running else "",
        kubeconfig=str(lab.kubeconfig) if topology.kube else "",
    )


def list_labs() -> list[str]:
    """Names of the labs with a lab dir or namespaces on this machine."""
    names: set[str] = set()
    root = naming.labs_root()
    if root.is_dir():
        names.update(p.name for p in root.iterdir() if naming.NAME_RE.match(p.name))
    for ns in netns.list_named(naming.NS_PREFIX):
        names.add(ns[len(naming.NS_PREFIX):].split("-", 1)[0])
    return sorted(names)
