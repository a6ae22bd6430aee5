"""The plugin against a real unix-socket daemon (tests/cni_support/daemon.py): every verb, in process
and as `python -m terwayctl.cni` with the variables containerd sets, chained in a conflist, and the
failure modes (daemon down, hanging, broken) with their CNI codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from terwayctl.cni.spec import SUPPORTED_VERSIONS
from tests.cni_support.daemon import TestDaemon
from tests.cni_support.runtime import (
    CONTAINER_ID,
    ROOT,
    Outcome,
    Runner,
    assert_error,
    cni_env,
    netconf,
    run_in_process,
    run_plugin,
)

RUNNERS: dict[str, Runner] = {"in-process": run_in_process, "subprocess": run_plugin}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[TestDaemon]:
    with TestDaemon(tmp_path / "eni.sock") as running:
        yield running


@pytest.fixture
def netns(tmp_path: Path) -> str:
    path = tmp_path / "cni-3f0c2b9e"
    path.touch()
    return str(path)


def ok(outcome: Outcome) -> Outcome:
    assert outcome.exit_code == 0, outcome
    assert "Traceback" not in outcome.stderr
    return outcome


# --- the full exchange ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_add_check_del_in_each_version(daemon: TestDaemon, netns: str, version: str) -> None:
    config = netconf(version, daemon.socket_path)
    added = ok(run_in_process(cni_env("ADD", netns=netns), json.dumps(config))).json
    assert added["cniVersion"] == version
    assert "sandbox" not in added["interfaces"][0] and added["interfaces"][1]["sandbox"] == netns
    ip = added["ips"][0]
    assert ip["address"] == "10.0.0.10/24" and ip["interface"] == 1
    assert ("version" in ip) == version.startswith("0.")
    if version != "0.3.0" and version != "0.3.1":  # CHECK exists since 0.4.0
        ok(run_in_process(cni_env("CHECK", netns=netns), json.dumps({**config, "prevResult": added})))
        assert daemon.requests[-1].prev_result == {k: v for k, v in added.items() if k != "cniVersion"} | {
            "ips": [{k: v for k, v in i.items() if k != "version"} for i in added["ips"]],
        }
    deleted = ok(run_in_process(cni_env("DEL", netns=netns), json.dumps({**config, "prevResult": added})))
    assert deleted.stdout == ""
    assert daemon.released == [(CONTAINER_ID, "eth0")]


@pytest.mark.parametrize("runner", RUNNERS, ids=str)
def test_every_verb_with_containerd_environment(daemon: TestDaemon, netns: str, runner: str) -> None:
    run = RUNNERS[runner]
    daemon.dual_stack = True
    config = netconf("1.1.0", daemon.socket_path)
    runtime_config = {
        "bandwidth": {"ingressRate": 10_000_000, "ingressBurst": 2_147_483_647, "egressRate": 5_000_000, "egressBurst": 2_147_483_647},
        "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}],
    }
    added = ok(run(cni_env("ADD", netns=netns), json.dumps({**config, "runtimeConfig": runtime_config}))).json
    assert [ip["address"] for ip in added["ips"]] == ["10.0.0.10/24", "fd00::a/64"]
    assert added["dns"]["nameservers"] == ["172.21.0.10"]

    request = daemon.requests[-1]
    assert (request.verb, request.cni_version, request.network_name) == ("ADD", "1.1.0", "terway")
    assert (request.container_id, request.netns, request.ifname) == (CONTAINER_ID, netns, "eth0")
    assert (request.pod_namespace, request.pod_name) == ("default", "nginx-7c5ddbdf54-x2lqp")
    assert request.infra_container_id == CONTAINER_ID
    assert request.pod_uid == "0c5b0a2e-6f1d-4c35-9a51-0e6c0d9b7f3a"
    assert request.runtime_config == runtime_config
    assert request.netconf == {"cniVersion": "1.1.0", "name": "terway", "type": "terway", "daemon_socket": str(daemon.socket_path)}
    assert request.prev_result is None

    ok(run(cni_env("CHECK", netns=netns), json.dumps({**config, "prevResult": added})))
    ok(run(cni_env("STATUS"), json.dumps(config)))
    other = ("b" * 64, "eth0")
    daemon.allocations[other] = {"ips": []}
    gc = {**config, "cni.dev/valid-attachments": [{"containerID": CONTAINER_ID, "ifname": "eth0"}]}
    ok(run(cni_env("GC"), json.dumps(gc)))
    assert daemon.requests[-1].valid_attachments == [{"container_id": CONTAINER_ID, "ifname": "eth0"}]
    assert daemon.released == [other]
    ok(run(cni_env("DEL", netns=netns), json.dumps({**config, "prevResult": added})))
    assert [r.verb for r in daemon.requests] == ["ADD", "CHECK", "STATUS", "GC", "DEL"]
    assert daemon.allocations == {}


def test_socket_from_the_environment_wins_over_the_netconf_key(daemon: TestDaemon, netns: str, tmp_path: Path) -> None:
    config = netconf("1.0.0", tmp_path / "elsewhere.sock")
    env = cni_env("ADD", netns=netns, extra={"TERWAY_DAEMON_SOCKET": str(daemon.socket_path)})
    assert ok(run_plugin(env, json.dumps(config))).json["ips"][0]["address"] == "10.0.0.10/24"


def test_add_is_repeatable_and_del_idempotent(daemon: TestDaemon, netns: str) -> None:
    config = json.dumps(netconf("1.0.0", daemon.socket_path))
    first = ok(run_in_process(cni_env("ADD", netns=netns), config)).json
    assert ok(run_in_process(cni_env("ADD", netns=netns), config)).json == first
    for _ in range(2):
        assert ok(run_in_process(cni_env("DEL", netns=netns), config)).stdout == ""
    assert daemon.released == [(CONTAINER_ID, "eth0")]


@pytest.mark.parametrize("netns", [None, "/var/run/netns/cni-gone-0000"], ids=["unset", "vanished"])
def test_del_of_unknown_container_succeeds_whatever_the_netns(daemon: TestDaemon, netns: str | None) -> None:
    env = cni_env("DEL", container_id="c" * 64, netns=netns)
    assert ok(run_plugin(env, json.dumps(netconf("0.3.1", daemon.socket_path)))).stdout == ""
    assert daemon.requests[-1].verb == "DEL"


def test_check_of_unknown_container_is_code_3(daemon: TestDaemon, netns: str) -> None:
    prev = {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.99/24"}]}
    config = netconf("1.1.0", daemon.socket_path, prevResult=prev)
    assert_error(run_in_process(cni_env("CHECK", netns=netns), json.dumps(config)), 3)


def test_status_of_a_daemon_not_ready_is_code_50(daemon: TestDaemon) -> None:
    daemon.ready = False
    doc = assert_error(run_in_process(cni_env("STATUS"), json.dumps(netconf(socket_path=daemon.socket_path))), 50)
    assert "not warmed up" in doc["msg"]


def test_daemon_errors_pass_through(daemon: TestDaemon, netns: str) -> None:
    daemon.pool_empty = True
    doc = assert_error(run_in_process(cni_env("ADD", netns=netns), json.dumps(netconf(socket_path=daemon.socket_path))), 11)
    assert (doc["msg"], doc["details"]) == ("no IP in the pool", "InvalidVSwitchId.IpNotEnough")


def test_add_with_an_unusable_result_is_rolled_back(daemon: TestDaemon, netns: str) -> None:
    daemon.corrupt_results = True
    outcome = run_in_process(cni_env("ADD", netns=netns), json.dumps(netconf("0.4.0", daemon.socket_path)))
    assert "invalid result" in assert_error(outcome, 5, "0.4.0")["msg"]
    assert [r.verb for r in daemon.requests] == ["ADD", "DEL"]
    assert daemon.allocations == {}


# --- the daemon is absent, hangs or breaks -------------------------------------------------------


@pytest.mark.parametrize("runner", RUNNERS, ids=str)
@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK", "GC"])
def test_daemon_not_running_is_try_again_later(tmp_path: Path, netns: str, runner: str, command: str) -> None:
    sock = tmp_path / "eni.sock"
    config = netconf("1.1.0", sock, prevResult={"ips": [{"address": "10.0.0.10/24"}]})
    doc = assert_error(RUNNERS[runner](cni_env(command, netns=netns), json.dumps(config)), 11)
    assert str(sock) in doc["msg"] and "not running" in doc["msg"]


def test_status_with_daemon_not_running_is_code_50(tmp_path: Path) -> None:
    sock = tmp_path / "eni.sock"
    doc = assert_error(run_plugin(cni_env("STATUS"), json.dumps(netconf("1.1.0", sock))), 50)
    assert str(sock) in doc["msg"]


def test_stale_socket_file_is_try_again_later(tmp_path: Path, netns: str) -> None:
    sock = tmp_path / "eni.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(sock))  # bound, never listening: what a crashed daemon leaves behind
        doc = assert_error(run_in_process(cni_env("ADD", netns=netns), json.dumps(netconf(socket_path=sock))), 11)
    assert "refused" in doc["msg"].lower()


@pytest.mark.parametrize("source", ["netconf", "env"])
def test_daemon_that_never_answers_times_out_within_the_bound(daemon: TestDaemon, netns: str, source: str) -> None:
    daemon.mode = "hang"
    extra = {"TERWAY_DAEMON_TIMEOUT": "0.5"} if source == "env" else {}
    config = netconf(socket_path=daemon.socket_path)
    if source == "netconf":
        config["daemon_timeout"] = 0.5
    started = time.monotonic()
    outcome = run_in_process(cni_env("ADD", netns=netns, extra=extra), json.dumps(config))
    elapsed = time.monotonic() - started
    doc = assert_error(outcome, 11)
    assert 0.4 <= elapsed < 3.0
    assert str(daemon.socket_path) in doc["msg"] and "0.5s" in doc["msg"]


@pytest.mark.parametrize("mode", ["garbage", "close"])
def test_broken_daemon_is_io_failure(daemon: TestDaemon, netns: str, mode: str) -> None:
    daemon.mode = mode
    doc = assert_error(run_in_process(cni_env("ADD", netns=netns), json.dumps(netconf(socket_path=daemon.socket_path))), 5)
    assert str(daemon.socket_path) in doc["msg"]


# --- packaging: stdlib only, lean, and reachable from the CLI -------------------------------------


def test_importing_the_plugin_loads_only_the_standard_library() -> None:
    code = (
        "import sys, json; before = set(sys.modules); import terwayctl.cni.main; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT)
    loaded: list[str] = json.loads(done.stdout)
    foreign = [
        name for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names and name not in ("terwayctl",) and not name.startswith("terwayctl.cni")
    ]
    assert foreign == []
    assert "terwayctl.cni.main" in loaded
    # Heavy standard-library modules the plugin has no use for stay out of its start-up.
    assert not {"typing", "dataclasses", "inspect", "ipaddress", "asyncio", "logging", "subprocess"} & set(loaded)


def test_terwayctl_cni_runs_the_plugin(daemon: TestDaemon, netns: str) -> None:
    env = {"PATH": "/usr/bin:/bin", **cni_env("ADD", netns=netns)}
    config = json.dumps(netconf("0.3.1", daemon.socket_path))
    done = subprocess.run(
        [sys.executable, "-m", "terwayctl", "cni"], input=config, env=env, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ips"][0] == {"version": "4", "address": "10.0.0.10/24", "gateway": "10.0.0.1", "interface": 1}
    env["CNI_COMMAND"] = "CHECK"
    done = subprocess.run(
        [sys.executable, "-m", "terwayctl", "cni"], input=config, env=env, capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["code"] == 1  # CHECK needs cniVersion 0.4.0 or later

