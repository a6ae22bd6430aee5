"""Input validation of the CNI semantics (spec 1.1.0): every bad input is one CNI error object, exit 1.

The semantics run in the daemon (`cni.main.run`, behind the static shim). Here they run in-process
with a service that answers every request with code 11, so code 11 means the validation let the
input through. The real-process tests run the Python twin of the shim against a test daemon.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from terwayctl.cni import main as cni_main
from terwayctl.cni import protocol
from terwayctl.cni.spec import SUPPORTED_VERSIONS
from tests.cni_support.daemon import TestDaemon
from tests.cni_support.runtime import Outcome, assert_error, cni_env, netconf, run_plugin


def _no_service(request: protocol.Request) -> protocol.Reply:
    return protocol.Reply.failure(11, "no daemon service in this test")


def run_in_process(env: Mapping[str, str], stdin: bytes | str) -> Outcome:
    """The daemon-side semantics, as the daemon's server runs them for a forwarded invocation."""
    text = stdin.decode(errors="replace") if isinstance(stdin, bytes) else stdin
    outcome = cni_main.run(env, text, _no_service)
    return Outcome(outcome.exit, outcome.stdout, outcome.stderr)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Path]:
    """A test daemon that runs the semantics; bad input must never reach its service."""
    with TestDaemon(tmp_path / "backend.sock") as daemon:
        yield daemon.socket_path
    assert daemon.requests == []


@pytest.fixture
def netns(tmp_path: Path) -> str:
    """Stands in for /var/run/netns/cni-...: ADD and CHECK only need the path to exist."""
    path = tmp_path / "netns"
    path.touch()
    return str(path)


@pytest.fixture
def no_daemon(tmp_path: Path) -> Path:
    return tmp_path / "absent.sock"


def add(netns: str, socket_path: Path, **env_extra: str) -> dict[str, str]:
    return cni_env("ADD", netns=netns, extra={"TERWAY_DAEMON_SOCKET": str(socket_path), **env_extra})


# --- the command and stdin ---------------------------------------------------------------------


def test_missing_cni_command() -> None:
    doc = assert_error(run_in_process({}, json.dumps(netconf())), 4)
    assert "CNI_COMMAND" in doc["msg"]


def test_unknown_cni_command() -> None:
    doc = assert_error(run_in_process({"CNI_COMMAND": "UPDATE"}, json.dumps(netconf())), 4)
    assert "UPDATE" in doc["msg"]


@pytest.mark.parametrize(
    "stdin",
    [b"", b"   \n", b"{", b"{'cniVersion': '1.1.0'}", b"[]", b"null", b"42", b'"text"', b"\xff\xfe\x00{", b"[" * 100_000],
    ids=["empty", "blank", "truncated", "single-quotes", "array", "null", "number", "string", "binary", "deep"],
)
def test_bad_json_is_decode_failure(netns: str, no_daemon: Path, stdin: bytes) -> None:
    assert_error(run_in_process(add(netns, no_daemon), stdin), 6)


def test_bad_json_in_a_real_process_has_no_traceback(netns: str, backend: Path) -> None:
    outcome = run_plugin(add(netns, backend), b"{not json")
    assert_error(outcome, 6)
    assert outcome.stderr == ""


# --- the environment --------------------------------------------------------------------------

REQUIRED = {
    "ADD": ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
    "CHECK": ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
    "DEL": ["CNI_CONTAINERID", "CNI_IFNAME"],
}


@pytest.mark.parametrize(
    ("command", "variable"), [(command, variable) for command, names in REQUIRED.items() for variable in names]
)
def test_missing_variable_is_invalid_environment(netns: str, no_daemon: Path, command: str, variable: str) -> None:
    env = cni_env(command, netns=netns, extra={"TERWAY_DAEMON_SOCKET": str(no_daemon)})
    del env[variable]
    config = netconf(prevResult={"ips": [{"address": "10.0.0.10/24"}]})
    doc = assert_error(run_in_process(env, json.dumps(config)), 4)
    assert variable in doc["msg"]


@pytest.mark.parametrize("variable", ["CNI_CONTAINERID", "CNI_IFNAME"])
def test_empty_variable_counts_as_missing(netns: str, no_daemon: Path, variable: str) -> None:
    assert_error(run_in_process(add(netns, no_daemon, **{variable: ""}), json.dumps(netconf())), 4)


def test_missing_variable_in_a_real_process(netns: str, backend: Path) -> None:
    env = add(netns, backend)
    del env["CNI_IFNAME"]
    outcome = run_plugin(env, json.dumps(netconf()))
    assert "CNI_IFNAME" in assert_error(outcome, 4)["msg"]


@pytest.mark.parametrize(
    "ifname",
    ["x" * 16, "eth/0", "eth 0", "\teth0", "eth0\n", ".", "..", "eth:0", "ethé123456789ab"],
    ids=["16-chars", "slash", "space", "tab", "newline", "dot", "dotdot", "colon", "16-bytes-utf8"],
)
def test_bad_ifname(netns: str, no_daemon: Path, ifname: str) -> None:
    doc = assert_error(run_in_process(add(netns, no_daemon, CNI_IFNAME=ifname), json.dumps(netconf())), 4)
    assert "CNI_IFNAME" in doc["msg"]


def test_ifname_of_15_chars_passes_validation(netns: str, no_daemon: Path) -> None:
    # It gets as far as the daemon, which is not running: 11, not 4.
    assert_error(run_in_process(add(netns, no_daemon, CNI_IFNAME="x" * 15), json.dumps(netconf())), 11)


@pytest.mark.parametrize("container_id", ["-abc", "_abc", "abc def", "abc/def", "abc;def"])
def test_bad_container_id(netns: str, no_daemon: Path, container_id: str) -> None:
    doc = assert_error(run_in_process(add(netns, no_daemon, CNI_CONTAINERID=container_id), json.dumps(netconf())), 4)
    assert "CNI_CONTAINERID" in doc["msg"]


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
@pytest.mark.parametrize("path", ["/var/run/netns/cni-does-not-exist-7f3a", "relative/netns"])
def test_bad_netns_path(no_daemon: Path, command: str, path: str) -> None:
    env = cni_env(command, netns=path, extra={"TERWAY_DAEMON_SOCKET": str(no_daemon)})
    config = netconf(prevResult={"ips": [{"address": "10.0.0.10/24"}]})
    doc = assert_error(run_in_process(env, json.dumps(config)), 4)
    assert "CNI_NETNS" in doc["msg"] and path in doc["msg"]


@pytest.mark.parametrize(
    "cni_args",
    [
        "K8S_POD_NAME",
        "=nginx",
        "K8S_POD_NAME=a=b",
        "K8S_POD_NAME=nginx;",
        "K8S_POD_NAME=nginx;;K8S_POD_NAMESPACE=default",
        "K8S_POD_NAME=nginx;FOO=bar",
        "IgnoreUnknown=maybe;K8S_POD_NAME=nginx",
    ],
    ids=["no-equals", "no-key", "two-equals", "trailing-semicolon", "empty-pair", "unknown-key", "bad-ignore"],
)
def test_bad_cni_args(netns: str, no_daemon: Path, cni_args: str) -> None:
    doc = assert_error(run_in_process(add(netns, no_daemon, CNI_ARGS=cni_args), json.dumps(netconf())), 4)
    assert "CNI_ARGS" in doc["msg"]


def test_unknown_cni_args_pass_with_ignore_unknown(netns: str, no_daemon: Path) -> None:
    env = add(netns, no_daemon, CNI_ARGS="IgnoreUnknown=true;FOO=bar;K8S_POD_NAME=nginx")
    assert_error(run_in_process(env, json.dumps(netconf())), 11)


@pytest.mark.parametrize(
    ("variable", "value"), [("TERWAY_DAEMON_TIMEOUT", "soon"), ("TERWAY_DAEMON_TIMEOUT", "0"),
                            ("TERWAY_DAEMON_TIMEOUT", "nan"), ("TERWAY_DAEMON_SOCKET", "/" + "s" * 120)]
)
def test_bad_daemon_variables(netns: str, no_daemon: Path, variable: str, value: str) -> None:
    env = add(netns, no_daemon) | {variable: value}
    assert variable in assert_error(run_in_process(env, json.dumps(netconf())), 4)["msg"]


# --- the network config ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "1.2.0", "2.0.0", "1.1", "latest"])
def test_unknown_cni_version_is_incompatible(netns: str, no_daemon: Path, version: str) -> None:
    doc = assert_error(run_in_process(add(netns, no_daemon), json.dumps(netconf(version))), 1)
    assert version in doc["msg"]


@pytest.mark.parametrize(
    ("command", "version"), [("CHECK", "0.3.1"), ("CHECK", "0.3.0"), ("STATUS", "1.0.0"), ("GC", "0.4.0")]
)
def test_verb_newer_than_config_version_is_incompatible(netns: str, command: str, version: str) -> None:
    env = cni_env(command, netns=netns)
    config = netconf(version, prevResult={"ips": [{"version": "4", "address": "10.0.0.10/24"}]})
    doc = assert_error(run_in_process(env, json.dumps(config)), 1, version)
    assert command in doc["msg"]


@pytest.mark.parametrize(
    "change",
    [
        {"cniVersion": None},
        {"cniVersion": 1.1},
        {"name": None},
        {"name": ""},
        {"name": "my net"},
        {"type": None},
        {"type": 7},
        {"daemon_socket": 5},
        {"daemon_socket": ""},
        {"daemon_timeout": 0},
        {"daemon_timeout": "30"},
        {"daemon_timeout": True},
        {"daemon_timeout": 10_000},
        {"runtimeConfig": []},
        {"runtimeConfig": {"bandwidth": "10M"}},
        {"runtimeConfig": {"bandwidth": {"ingressRate": -1}}},
        {"runtimeConfig": {"bandwidth": {"egressRate": "1000"}}},
        {"runtimeConfig": {"bandwidth": {"egressBurst": 1.5}}},
        {"runtimeConfig": {"portMappings": {}}},
        {"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}},
        {"runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 70000}]}},
        {"runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "icmp"}]}},
        {"runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "hostIP": "example"}]}},
        {"prevResult": []},
        {"prevResult": {"ips": [{"address": "10.0.0.300/24"}]}},
        {"prevResult": {"ips": [{"address": "10.0.0.10"}]}},
        {"prevResult": {"ips": [{"address": "10.0.0.10/33"}]}},
        {"prevResult": {"ips": [{"address": "10.0.0.10/24", "interface": 0}]}},
        {"prevResult": {"ips": [{"address": "10.0.0.10/24", "gateway": "fd00::1"}]}},
        {"prevResult": {"interfaces": [{"mac": "02:00:00:00:00:01"}]}},
        {"prevResult": {"routes": [{"gw": "10.0.0.1"}]}},
        {"prevResult": {"dns": {"nameservers": "10.0.0.2"}}},
    ],
    ids=lambda change: json.dumps(change),
)
def test_bad_network_config(netns: str, no_daemon: Path, change: dict[str, Any]) -> None:
    config = netconf()
    for key, value in change.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    assert_error(run_in_process(add(netns, no_daemon), json.dumps(config)), 7)


def test_prev_result_version_must_match_address(netns: str, no_daemon: Path) -> None:
    config = netconf("0.4.0", prevResult={"ips": [{"version": "6", "address": "10.0.0.10/24"}]})
    env = cni_env("DEL", netns=netns, extra={"TERWAY_DAEMON_SOCKET": str(no_daemon)})
    assert "version" in assert_error(run_in_process(env, json.dumps(config)), 7, "0.4.0")["details"]


def test_check_needs_prev_result(netns: str, no_daemon: Path) -> None:
    env = cni_env("CHECK", netns=netns, extra={"TERWAY_DAEMON_SOCKET": str(no_daemon)})
    assert "prevResult" in assert_error(run_in_process(env, json.dumps(netconf())), 7)["msg"]


@pytest.mark.parametrize(
    "attachments", [{}, [["abc", "eth0"]], [{"containerID": "abc"}], [{"containerID": 1, "ifname": "eth0"}]]
)
def test_bad_gc_attachments(no_daemon: Path, attachments: Any) -> None:
    env = cni_env("GC", extra={"TERWAY_DAEMON_SOCKET": str(no_daemon)})
    config = netconf(**{"cni.dev/valid-attachments": attachments})
    assert "valid-attachments" in assert_error(run_in_process(env, json.dumps(config)), 7)["msg"]


def test_error_reports_the_requested_version(netns: str, no_daemon: Path) -> None:
    env = add(netns, no_daemon, CNI_IFNAME="x" * 20)
    assert_error(run_in_process(env, json.dumps(netconf("0.3.1"))), 4, "0.3.1")


# --- VERSION ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_version_echoes_the_requested_version(version: str) -> None:
    outcome = run_in_process({"CNI_COMMAND": "VERSION"}, json.dumps({"cniVersion": version}))
    assert outcome.exit_code == 0
    assert outcome.json == {"cniVersion": version, "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


@pytest.mark.parametrize("stdin", ["", '{"cniVersion": "0.2.0"}', "{}"])
def test_version_without_a_supported_request_answers_the_latest(stdin: str) -> None:
    outcome = run_in_process({"CNI_COMMAND": "VERSION"}, stdin)
    assert outcome.exit_code == 0
    assert outcome.json["cniVersion"] == "1.1.0"


def test_version_with_bad_json() -> None:
    assert_error(run_in_process({"CNI_COMMAND": "VERSION"}, "{"), 6)


def test_version_in_a_real_process(backend: Path) -> None:
    env = {"CNI_COMMAND": "VERSION", "CNI_PATH": "/opt/cni/bin", "TERWAY_DAEMON_SOCKET": str(backend)}
    outcome = run_plugin(env, '{"cniVersion": "0.4.0"}')
    assert outcome.exit_code == 0, outcome
    assert outcome.json["cniVersion"] == "0.4.0"
    assert outcome.json["supportedVersions"][-1] == "1.1.0"
