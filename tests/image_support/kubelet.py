"""A mini kubelet: run the pod template of a rendered DaemonSet with podman, on a lab node.

Everything comes from the manifests `terwayctl render` printed (nothing is retyped here): the
containers' image, command/args, env, securityContext and volumeMounts, the pod's hostNetwork,
hostPID and volumes. What kubelet adds is added the same way: the downward-API env (fieldRef
spec.nodeName, metadata.namespace, metadata.name), the service-account env and token mount
(KUBERNETES_SERVICE_HOST/PORT, /var/run/secrets/kubernetes.io/serviceaccount with token, ca.crt
and namespace). The "node" is a lab network namespace plus a directory standing for its root
filesystem: a hostPath ``/x`` is ``<host_root>/x``.

    hostNetwork: true        -> --network ns:/run/netns/<node ns>
    hostPID: true            -> --pid host
    privileged: true         -> --privileged
    mountPropagation: HostToContainer / Bidirectional -> bind propagation rslave / rshared
    configMap / secret       -> files in a temporary dir (secret files with defaultMode), read-only
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.image_support.podman import Podman

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
PROPAGATION = {"HostToContainer": "rslave", "Bidirectional": "rshared", "None": "rprivate"}


class KubeletError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodeHost:
    name: str  # the Node's name (spec.nodeName)
    netns: str  # the lab namespace that is the node's network
    root: Path  # stands for the node's root filesystem


@dataclass(frozen=True)
class ApiAccess:
    host: str
    port: int
    ca_cert: Path
    token: str = "terway-sa-token"


def daemonset(objects: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    found = [o for o in objects if o and o.get("kind") == "DaemonSet"]
    if len(found) != 1:
        raise KubeletError(f"expected one DaemonSet in the manifests, found {len(found)}")
    return dict(found[0])


@dataclass
class MiniKubelet:
    podman: Podman
    host: NodeHost
    objects: Sequence[Mapping[str, Any]]
    api: ApiAccess
    work: Path
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # Secret name -> data
    started: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ds = daemonset(self.objects)
        self.namespace = str(self.ds["metadata"].get("namespace") or "default")
        # as the DaemonSet controller names pods: <ds>-<random suffix> (also unique among test runs)
        self.pod_name = f"{self.ds['metadata']['name']}-{secrets.token_hex(3)}"
        self.spec: dict[str, Any] = self.ds["spec"]["template"]["spec"]
        self._volumes: dict[str, tuple[Path, bool]] = {}

    # --- volumes ---------------------------------------------------------------------------------

    def _configmap(self, name: str) -> Mapping[str, str]:
        for obj in self.objects:
            if obj and obj.get("kind") == "ConfigMap" and obj["metadata"]["name"] == name:
                return dict(obj.get("data") or {})
        raise KubeletError(f"ConfigMap {name} is not in the manifests")

    def _materialise(self, volume: Mapping[str, Any]) -> tuple[Path, bool]:
        """(host path, read-only) of a pod volume."""
        name = str(volume["name"])
        if "hostPath" in volume:
            spec = volume["hostPath"]
            path = self.host.root / str(spec["path"]).lstrip("/")
            kind = spec.get("type", "")
            if kind == "Directory" and not path.is_dir():
                raise KubeletError(f"hostPath {spec['path']} is not a directory on the node")
            if kind in ("DirectoryOrCreate", ""):  # "" as docker does: a missing path becomes a directory
                path.mkdir(parents=True, exist_ok=True)
            return path, False
        if "configMap" in volume or "secret" in volume:
            is_secret = "secret" in volume
            spec = volume["secret" if is_secret else "configMap"]
            if is_secret:
                source_name = str(spec["secretName"])
                if source_name not in self.secrets:
                    raise KubeletError(f"Secret {source_name} was not given to the mini kubelet")
                data: Mapping[str, str] = self.secrets[source_name]
            else:
                data = self._configmap(str(spec["name"]))
            mode = int(spec.get("defaultMode", 0o644))
            items = spec.get("items") or [{"key": k, "path": k} for k in data]
            target = self.work / "volumes" / name
            target.mkdir(parents=True, exist_ok=True)
            for item in items:
                file = target / str(item["path"])
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_text(data[str(item["key"])])
                file.chmod(int(item.get("mode", mode)))
            return target, True
        if "emptyDir" in volume:
            target = self.work / "volumes" / name
            target.mkdir(parents=True, exist_ok=True)
            return target, False
        raise KubeletError(f"volume {name}: unsupported source {sorted(volume)}")

    def volume(self, name: str) -> tuple[Path, bool]:
        if name not in self._volumes:
            volume = next((v for v in self.spec.get("volumes", []) if v["name"] == name), None)
            if volume is None:
                raise KubeletError(f"volumeMount of an undeclared volume {name}")
            self._volumes[name] = self._materialise(volume)
        return self._volumes[name]

    def _service_account(self) -> Path:
        target = self.work / "serviceaccount"
        target.mkdir(parents=True, exist_ok=True)
        (target / "token").write_text(self.api.token)
        (target / "ca.crt").write_bytes(self.api.ca_cert.read_bytes())
        (target / "namespace").write_text(self.namespace)
        return target

    # --- containers ------------------------------------------------------------------------------

    def _env(self, container: Mapping[str, Any]) -> list[str]:
        fields = {"spec.nodeName": self.host.name, "metadata.namespace": self.namespace,
                  "metadata.name": self.pod_name, "spec.serviceAccountName": str(self.spec.get("serviceAccountName", ""))}
        env = {
            "KUBERNETES_SERVICE_HOST": self.api.host, "KUBERNETES_SERVICE_PORT": str(self.api.port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.api.port), "KUBERNETES_PORT": f"tcp://{self.api.host}:{self.api.port}",
        }
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "fieldRef" in (item.get("valueFrom") or {}):
                path = item["valueFrom"]["fieldRef"]["fieldPath"]
                if path not in fields:
                    raise KubeletError(f"env {item['name']}: fieldRef {path} is not supported here")
                env[item["name"]] = fields[path]
            else:
                raise KubeletError(f"env {item['name']}: unsupported source {item.get('valueFrom')}")
        args: list[str] = []
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        return args

    def podman_args(self, container: Mapping[str, Any], *, name: str, detach: bool) -> list[str]:
        spec = self.spec
        args = ["run", "--name", name, "--hostname", self.host.name]
        args += ["-d"] if detach else ["--rm"]
        if (container.get("securityContext") or {}).get("privileged"):
            args.append("--privileged")
        args += ["--network", f"ns:/run/netns/{self.host.netns}"] if spec.get("hostNetwork") else ["--network", "none"]
        if spec.get("hostPID"):
            args += ["--pid", "host"]
        args += self._env(container)
        if spec.get("automountServiceAccountToken", True) and spec.get("serviceAccountName"):
            args += ["--volume", f"{self._service_account()}:{SA_DIR}:ro"]
        for mount in container.get("volumeMounts", []):
            source, read_only = self.volume(str(mount["name"]))
            if mount.get("subPath"):
                source = source / str(mount["subPath"])
            options = ["ro"] if read_only or mount.get("readOnly") else ["rw"]
            propagation = mount.get("mountPropagation")
            if propagation:
                options.append(PROPAGATION[str(propagation)])
            args += ["--volume", f"{source}:{mount['mountPath']}:{','.join(options)}"]
        command = [str(c) for c in container.get("command", [])]
        if command:
            args += ["--entrypoint", json.dumps(command)]
        args.append(str(container["image"]))
        args += [str(a) for a in container.get("args", [])]
        return args

    def run_init_containers(self, timeout: float = 120) -> list[subprocess.CompletedProcess[str]]:
        """Run each init container to completion, in order; KubeletError when one fails."""
        results = []
        for container in self.spec.get("initContainers", []):
            name = f"{self.pod_name}-{container['name']}"
            done = self.podman.run(self.podman_args(container, name=name, detach=False), check=False, timeout=timeout)
            results.append(done)
            if done.returncode != 0:
                raise KubeletError(f"init container {container['name']} exited {done.returncode}:\n"
                                   f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return results

    def start_containers(self) -> list[str]:
        """Start every container of the pod, detached; returns the podman container names."""
        names = []
        for container in self.spec["containers"]:
            name = f"{self.pod_name}-{container['name']}"
            self.podman.run(self.podman_args(container, name=name, detach=True), timeout=120)
            self.started.append(name)
            names.append(name)
        return names

    def exec(self, container: str, argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.podman.run(["exec", f"{self.pod_name}-{container}", *argv], check=False, timeout=timeout)

    def logs(self, container: str) -> str:
        done = self.podman.run(["logs", f"{self.pod_name}-{container}"], check=False, timeout=30)
        return done.stdout + done.stderr

    def stop(self) -> None:
        for name in reversed(self.started):
            self.podman.run(["rm", "-f", "-t", "5", name], check=False, timeout=60)
        self.started.clear()
