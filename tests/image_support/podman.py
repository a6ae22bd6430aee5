"""podman with its own storage, run directories and containers.conf, never the machine's defaults.

Every call passes ``--root``/``--runroot``/``--tmpdir`` and sets ``CONTAINERS_CONF`` to a file
written here: the CNI network backend (its config and plugin dirs chosen per instance), cgroupfs,
file events, and ulimits that fit under this machine's hard limits (podman's default nofile of
1048576 is above them). Nothing here creates a podman network: containers run either with
``--network ns:<path>`` (a lab namespace) or, for the node's own runtime, on the terway network
whose conflist the init container installed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"

[network]
network_backend = "cni"
network_config_dir = "{network_config_dir}"
cni_plugin_dirs = [{cni_plugin_dirs}]
"""


class PodmanError(RuntimeError):
    pass


@dataclass
class Podman:
    """One podman installation: storage under `root`, state under `runroot`, config in `conf_dir`."""

    root: Path
    runroot: Path
    conf_dir: Path
    network_config_dir: Path | None = None
    cni_plugin_dirs: Sequence[Path] = ()
    storage_driver: str = "overlay"
    prefix: Sequence[str] = ()  # e.g. nsenter --net=... for the node's runtime
    env_extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for path in (self.root, self.runroot, self.conf_dir):
            path.mkdir(parents=True, exist_ok=True)
        net_dir = self.network_config_dir or (self.conf_dir / "net.d")
        net_dir.mkdir(parents=True, exist_ok=True)
        plugin_dirs = ", ".join(f'"{p}"' for p in self.cni_plugin_dirs) or '"/usr/lib/cni"'
        (self.conf_dir / "containers.conf").write_text(CONTAINERS_CONF.format(
            events=self.conf_dir / "events.log", network_config_dir=net_dir, cni_plugin_dirs=plugin_dirs))
        (self.conf_dir / "storage.conf").write_text(
            f'[storage]\ndriver = "{self.storage_driver}"\ngraphroot = "{self.root}"\nrunroot = "{self.runroot}"\n')
        (self.conf_dir / "registries.conf").write_text('unqualified-search-registries = []\n')
        (self.conf_dir / "policy.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')

    @property
    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TERM")}
        return {
            **keep,
            "CONTAINERS_CONF": str(self.conf_dir / "containers.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(self.conf_dir / "registries.conf"),
            "CONTAINERS_STORAGE_CONF": str(self.conf_dir / "storage.conf"),
            "TMPDIR": str(self.runroot / "tmp"),
            **self.env_extra,
        }

    def argv(self, args: Sequence[str]) -> list[str]:
        return [*self.prefix, "podman", "--root", str(self.root), "--runroot", str(self.runroot),
                "--tmpdir", str(self.runroot / "libpod"), "--storage-driver", self.storage_driver,
                "--cgroup-manager", "cgroupfs", "--events-backend", "file", *args]

    def run(self, args: Sequence[str], *, check: bool = True, timeout: float = 300,
            stdin: IO[bytes] | None = None, input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        (self.runroot / "tmp").mkdir(parents=True, exist_ok=True)
        done = subprocess.run(self.argv(args), env=self.env, stdin=stdin,
                              input=input.decode() if input is not None else None,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise PodmanError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr[-4000:]}\n"
                              f"{done.stdout[-2000:]}")
        return done

    def image_exists(self, ref: str) -> bool:
        return self.run(["image", "exists", ref], check=False).returncode == 0

    def build(self, context: Path, containerfile: Path, tag: str, build_args: Mapping[str, str],
              timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        args = ["build", "--network=host", "--layers", "-f", str(containerfile), "-t", tag]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        return self.run([*args, str(context)], timeout=timeout)

    def rm_all(self) -> None:
        """Remove every container of this installation (ignoring errors)."""
        self.run(["rm", "-af", "-t", "0"], check=False, timeout=120)
