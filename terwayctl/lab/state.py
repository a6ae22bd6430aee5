"""The lab dir: ``lab.json`` (the topology, written once by `lab up`) and ``state.json`` (processes,
pods and faults, changed under an flock by every command), plus per-node directories.

    <labs root>/<name>/
      lab.json  state.json  lock  emulator.sqlite  supervisor.log  supervisor.json  control.sock  kubeconfig  values.yaml
      node1/  bin/terway  conf/10-terway.conflist  eni_conf.json  annotations.json  state/  eni.socket  daemon.log
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terwayctl.core.errors import NotFound, TerwayctlError
from terwayctl.lab import naming
from terwayctl.lab.model import NodePlan, Topology

TOPOLOGY_FILE = "lab.json"
STATE_FILE = "state.json"
READY_FILE = "supervisor.json"
CONTROL_SOCKET = "control.sock"
EMULATOR_STATE = "emulator.sqlite"
KUBECONFIG_FILE = "kubeconfig"
VALUES_FILE = "values.yaml"


@dataclass
class PodRecord:
    name: str
    node: str
    ns: str
    container_id: str
    namespace: str = "default"
    ip: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    bandwidth: dict[str, int] = field(default_factory=dict)


@dataclass
class FaultRecord:
    kind: str
    target: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.target}"


@dataclass
class LabState:
    """Mutable state of a lab: pids of the processes it started, its pods, its active faults."""

    supervisor_pid: int = 0
    daemon_pids: dict[str, int] = field(default_factory=dict)
    pods: dict[str, PodRecord] = field(default_factory=dict)
    faults: dict[str, FaultRecord] = field(default_factory=dict)

    @staticmethod
    def from_json(data: dict[str, Any]) -> LabState:
        return LabState(
            supervisor_pid=int(data.get("supervisor_pid", 0)),
            daemon_pids={k: int(v) for k, v in data.get("daemon_pids", {}).items()},
            pods={k: PodRecord(**v) for k, v in data.get("pods", {}).items()},
            faults={k: FaultRecord(**v) for k, v in data.get("faults", {}).items()},
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LabDir:
    """Paths of one lab, and locked access to its state."""

    def __init__(self, name: str) -> None:
        self.name = naming.check_name(name)
        self.path = naming.lab_dir(name)

    def exists(self) -> bool:
        return (self.path / TOPOLOGY_FILE).exists()

    @property
    def control_socket(self) -> Path:
        return self.path / CONTROL_SOCKET

    @property
    def ready_file(self) -> Path:
        return self.path / READY_FILE

    @property
    def emulator_state(self) -> Path:
        return self.path / EMULATOR_STATE

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig of the lab's API server (`lab up --kube`); the same file works in the nodes."""
        return self.path / KUBECONFIG_FILE

    @property
    def values(self) -> Path:
        """`lab up --kube`: the values it applied, a file for `terwayctl apply -f` (terwayctl.lab.cluster)."""
        return self.path / VALUES_FILE

    def node_dir(self, node: str) -> Path:
        return self.path / node

    def node_socket(self, node: str) -> Path:
        return self.node_dir(node) / "eni.socket"

    def node_state_dir(self, node: str) -> Path:
        return self.node_dir(node) / "state"

    def node_bin(self, node: str) -> Path:
        return self.node_dir(node) / "bin"

    def node_conf(self, node: str) -> Path:
        return self.node_dir(node) / "conf"

    def conflist(self, node: str) -> Path:
        return self.node_conf(node) / "10-terway.conflist"

    def annotations(self, node: str) -> Path:
        return self.node_dir(node) / "annotations.json"

    def topology(self) -> Topology:
        try:
            data = json.loads((self.path / TOPOLOGY_FILE).read_text())
        except FileNotFoundError:
            raise NotFound(f"lab {self.name} is not up", hint=f"start it: terwayctl lab up --name {self.name}") from None
        except (OSError, ValueError) as exc:
            raise TerwayctlError(f"cannot read {self.path / TOPOLOGY_FILE}: {exc}",
                                 hint=f"remove the lab: terwayctl lab down --name {self.name}") from None
        return Topology.from_json(data)

    def write_topology(self, topology: Topology) -> None:
        _write_atomic(self.path / TOPOLOGY_FILE, json.dumps(topology.to_json(), indent=2))

    def ready(self) -> dict[str, Any]:
        """What the supervisor published once it serves (pid, url, port); {} before."""
        try:
            data: dict[str, Any] = json.loads(self.ready_file.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def read_state(self) -> LabState:
        try:
            return LabState.from_json(json.loads((self.path / STATE_FILE).read_text()))
        except FileNotFoundError:
            return LabState()
        except (OSError, ValueError, TypeError):
            return LabState()

    @contextlib.contextmanager
    def locked(self) -> Iterator[LabState]:
        """The state under an exclusive lock; written back when the block ends without error."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self.read_state()
                yield state
                _write_atomic(self.path / STATE_FILE, json.dumps(state.to_json(), indent=2))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def node_env(self, topology: Topology, node: NodePlan, url: str) -> dict[str, str]:
        """The environment of a process in the node: the cloud (through the node's endpoint proxy),
        the daemon socket, and the node identity that ``terwayctl doctor`` (and scripts) read where a
        real node has fixed paths: its instance, eni_conf, CNI conf and bin dirs."""
        kube = {"KUBECONFIG": str(self.kubeconfig)} if topology.kube else {}
        return {
            **cloud_env(url, topology.region),
            **kube,
            "TERWAY_DAEMON_SOCKET": str(self.node_socket(node.name)),
            "TERWAYCTL_LAB": self.name,
            "TERWAYCTL_LAB_NODE": node.name,
            "TERWAYCTL_INSTANCE_ID": node.instance_id,
            "TERWAYCTL_STATE_DIR": str(self.node_state_dir(node.name)),
            "TERWAYCTL_ENI_CONF": str(self.node_dir(node.name) / "eni_conf.json"),
            "TERWAYCTL_CNI_CONF_DIR": str(self.node_conf(node.name)),
            "TERWAYCTL_CNI_BIN_DIR": str(self.node_bin(node.name)),
        }


def cloud_env(url: str, region: str) -> dict[str, str]:
    """Environment variables that point terwayctl (and the aliyun SDK) at the lab's emulator."""
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "LC_ALL", "TERM", "PYTHONPATH", "VIRTUAL_ENV", naming.LAB_DIR_ENV,
                     "TERWAYCTL_NODE_CHECKS_PERIOD")}
    from terwayctl.lab.model import ACCESS_KEY_ID, ACCESS_KEY_SECRET

    return {
        **keep,
        "TERWAYCTL_ENDPOINT": url,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
        "ALIBABA_CLOUD_REGION_ID": region,
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
        "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
    }


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
