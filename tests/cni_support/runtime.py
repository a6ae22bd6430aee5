"""Run the plugin the way kubelet/containerd do: CNI_* variables, config on stdin, JSON on stdout.

`run_plugin` execs `python -m terwayctl.cni` (a real process, the environment libcni builds);
`run_in_process` calls `terwayctl.cni.main.main` with the same inputs. `ConflistRuntime` executes a
conflist as libcni does (name and cniVersion injected, runtimeConfig for declared capabilities,
prevResult chained on ADD and the cached result on CHECK/DEL, DEL in reverse order), with the
real chained plugins (Debian's containernetworking-plugins in /usr/lib/cni) exec'd in the node's
namespace.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terwayctl.cni import client

ROOT = Path(__file__).resolve().parents[2]
CNI_PATH = "/opt/cni/bin"
ERROR_KEYS = {"cniVersion", "code", "msg", "details"}
CONTAINER_ID = "5f1e0a9c3b7d4e2f8a6c1b0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f"


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str = ""

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def assert_error(outcome: Outcome, code: int, version: str = "1.1.0") -> dict[str, Any]:
    """The outcome is exactly one CNI error object with `code`, and a non-zero exit."""
    assert outcome.exit_code == 1, outcome
    document = json.loads(outcome.stdout)  # exactly one JSON document, nothing else
    assert isinstance(document, dict)
    assert set(document) == ERROR_KEYS, document
    assert document["code"] == code, document
    assert document["cniVersion"] == version
    assert isinstance(document["msg"], str) and document["msg"]
    assert isinstance(document["details"], str)
    assert "Traceback" not in outcome.stdout + outcome.stderr
    return document


def cni_env(
    command: str,
    *,
    container_id: str = CONTAINER_ID,
    netns: str | None = None,
    ifname: str = "eth0",
    pod: tuple[str, str] = ("default", "nginx-7c5ddbdf54-x2lqp"),
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The CNI_* variables containerd (go-cni + libcni) sets for a pod sandbox."""
    env = {"CNI_COMMAND": command, "CNI_PATH": CNI_PATH}
    if command in ("ADD", "DEL", "CHECK"):
        namespace, name = pod
        env |= {
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns or "",
            "CNI_IFNAME": ifname,
            "CNI_ARGS": (
                f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};"
                f"K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID=0c5b0a2e-6f1d-4c35-9a51-0e6c0d9b7f3a"
            ),
        }
        if netns is None:
            del env["CNI_NETNS"]
    return env | dict(extra or {})


def run_plugin(env: Mapping[str, str], stdin: bytes | str, timeout: float = 30.0) -> Outcome:
    """`python -m terwayctl.cni` as a real process; only PATH is inherited, as a runtime would."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run(
        [sys.executable, "-m", "terwayctl.cni"],
        input=data,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    return Outcome(done.returncode, done.stdout.decode(), done.stderr.decode())


def run_in_process(env: Mapping[str, str], stdin: bytes | str) -> Outcome:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    out, err = io.StringIO(), io.StringIO()
    code = client.main(env, io.BytesIO(data), out, err)
    return Outcome(code, out.getvalue(), err.getvalue())


Runner = Callable[[Mapping[str, str], "bytes | str"], Outcome]

PLUGIN_DIR = Path("/usr/lib/cni")
"""Debian's containernetworking-plugins: the real bandwidth, portmap, ... binaries."""


def exec_runner(binary: str | Path, netns_path: str | Path | None = None, timeout: float = 60.0) -> Runner:
    """A runner that execs `binary` as a runtime does (only PATH inherited); inside the network
    namespace `netns_path` (nsenter --net) when given: the runtime's namespace, the node's."""

    def run(env: Mapping[str, str], stdin: bytes | str) -> Outcome:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        argv = [str(binary)] if netns_path is None else ["nsenter", f"--net={netns_path}", str(binary)]
        done = subprocess.run(argv, input=data, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                              capture_output=True, timeout=timeout, check=False)
        return Outcome(done.returncode, done.stdout.decode(), done.stderr.decode())

    return run


@dataclass
class ConflistRuntime:
    """Executes a conflist whose first plugin is terway, as libcni does: `name` and `cniVersion`
    injected into each plugin's config, `runtimeConfig` only for the capabilities a plugin
    declares, ADD in order with each plugin's result as the next one's `prevResult`, the chain's
    final result cached and handed as `prevResult` to every plugin on CHECK and DEL, DEL in
    reverse order. terway runs through `runner`; every other plugin is the real binary from
    `plugin_dir` (CNI_PATH), exec'd in `netns_path` (the runtime's namespace, the node's)."""

    conflist: Mapping[str, Any]
    runner: Runner
    runtime_config: Mapping[str, Any] = field(default_factory=dict)
    plugin_dir: Path = PLUGIN_DIR
    netns_path: str | Path | None = None
    cached: dict[str, Any] | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def _config(self, plugin: Mapping[str, Any], prev: Mapping[str, Any] | None) -> dict[str, Any]:
        config = {**plugin, "name": self.conflist["name"], "cniVersion": self.conflist["cniVersion"]}
        capabilities = [key for key, on in plugin.get("capabilities", {}).items() if on]
        runtime = {key: self.runtime_config[key] for key in capabilities if key in self.runtime_config}
        if runtime:
            config["runtimeConfig"] = runtime
        if prev is not None:
            config["prevResult"] = prev
        return config

    def _invoke(self, command: str, plugin: Mapping[str, Any], prev: Mapping[str, Any] | None, env: Mapping[str, str]) -> Outcome:
        config = json.dumps(self._config(plugin, prev))
        env = {**env, "CNI_COMMAND": command, "CNI_PATH": str(self.plugin_dir)}
        self.calls.append((command, plugin["type"]))
        if plugin["type"] == "terway":
            outcome = self.runner(env, config)
        else:
            outcome = exec_runner(self.plugin_dir / plugin["type"], self.netns_path)(env, config)
        self.outcomes.append(outcome)
        return outcome

    def add(self, env: Mapping[str, str]) -> Outcome:
        prev: dict[str, Any] | None = None
        for plugin in self.conflist["plugins"]:
            outcome = self._invoke("ADD", plugin, prev, env)
            if outcome.exit_code != 0:
                return outcome
            prev = outcome.json
        self.cached = prev
        return Outcome(0, json.dumps(prev))

    def check(self, env: Mapping[str, str]) -> Outcome:
        for plugin in self.conflist["plugins"]:
            outcome = self._invoke("CHECK", plugin, self.cached, env)
            if outcome.exit_code != 0:
                return outcome
        return Outcome(0, "")

    def delete(self, env: Mapping[str, str]) -> Outcome:
        for plugin in reversed(self.conflist["plugins"]):
            outcome = self._invoke("DEL", plugin, self.cached, env)
            if outcome.exit_code != 0:
                return outcome
        self.cached = None
        return Outcome(0, "")


def netconf(cni_version: str = "1.1.0", socket_path: Path | None = None, **extra: Any) -> dict[str, Any]:
    """A single plugin's network config (what the runtime puts on stdin for terway)."""
    config: dict[str, Any] = {"cniVersion": cni_version, "name": "terway", "type": "terway", **extra}
    if socket_path is not None:
        config["daemon_socket"] = str(socket_path)
    return config
