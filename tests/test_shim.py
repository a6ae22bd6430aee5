"""The static CNI shim `terway` (shim/, Go), driven as a real binary against a fake daemon.

The fake daemon is a unix-socket server in a thread: it records every connection, the request
frame and the descriptors passed with it, and answers as scripted (protocol 2, docs/cni.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from terwayctl import __version__
from terwayctl.cni.shim import ShimUnavailable, build, copy_sources, ensure_built

MIB = 1 << 20
DEFAULT_SOCKET = "/var/run/eni/eni.socket"
GO_MISSING = "go is not installed (apt-get install golang-go)"
RUN_LIMIT = 20.0  # no shim run in these tests may take longer; a hang fails instead of blocking
OK_REPLY = b'{"protocol":2,"exit":0,"stdout":""}\n'


@pytest.fixture(scope="module")
def shim() -> Path:
    """The shim, built once (or taken from $TERWAY_SHIM / the cache)."""
    try:
        return ensure_built()
    except ShimUnavailable:
        if shutil.which("go") is None:
            pytest.skip(GO_MISSING)
        raise


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Not tmp_path: a unix socket path must stay under 108 bytes.
    with tempfile.TemporaryDirectory(prefix="shim") as name:
        yield Path(name)


class FakeDaemon:
    """Accepts connections one after the other; `mode` scripts what it does with each."""

    def __init__(self, path: Path, mode: str = "reply", reply: bytes = OK_REPLY) -> None:
        self.path = path
        self.mode = mode  # reply | hang | close
        self.reply = reply
        self.connections = 0
        self.requests: list[dict[str, object]] = []
        self.passed_fds: list[list[os.stat_result]] = []
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        self.thread = threading.Thread(target=self._accept_loop)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.thread.join(timeout=RUN_LIMIT)
        self.listener.close()

    def wait_for_connections(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.connections >= count, timeout=RUN_LIMIT)

    def _accept_loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                with self.changed:
                    self.connections += 1
                    self.changed.notify_all()
                self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(RUN_LIMIT)
        try:
            frame = self._read_frame(conn)
        except OSError:
            return
        if frame is not None:
            with self.changed:
                self.requests.append(json.loads(frame))
                self.changed.notify_all()
        if self.mode == "hang":
            self.stop.wait(RUN_LIMIT)
        elif self.mode == "reply":
            with contextlib.suppress(OSError):  # the shim may be gone already
                conn.sendall(self.reply)

    def _read_frame(self, conn: socket.socket) -> bytes | None:
        data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        stats = [os.fstat(fd) for fd in fds]
        for fd in fds:
            os.close(fd)
        with self.changed:
            self.passed_fds.append(stats)
        buffer = bytearray(data)
        while b"\n" not in buffer:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            buffer += chunk
        return bytes(buffer)


@pytest.fixture
def daemon(sock_dir: Path) -> Iterator[FakeDaemon]:
    fake = FakeDaemon(sock_dir / "d.sock")
    yield fake
    fake.close()


def run_shim(shim: Path, stdin: bytes, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(shim), *args], input=stdin, env=env, capture_output=True, timeout=RUN_LIMIT, check=False)


def base_env(socket_path: Path | str | None, **extra: str) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "ADD", "TERWAY_DAEMON_TIMEOUT": "5", **extra}
    if socket_path is not None:
        env["TERWAY_DAEMON_SOCKET"] = str(socket_path)
    return env


def cni_error(proc: subprocess.CompletedProcess[bytes]) -> dict[str, object]:
    assert proc.returncode == 1, proc
    error = json.loads(proc.stdout)
    assert isinstance(error, dict)
    assert set(error) == {"cniVersion", "code", "msg", "details"}
    return error


# --- the binary -----------------------------------------------------------------------------------


def test_binary_is_statically_linked(shim: Path) -> None:
    described = subprocess.run(["file", str(shim)], capture_output=True, text=True, check=True, timeout=RUN_LIMIT)
    assert "statically linked" in described.stdout


def test_builds_are_reproducible(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip(GO_MISSING)
    first, second = build(tmp_path / "a" / "terway"), build(tmp_path / "b" / "terway")
    assert first.read_bytes() == second.read_bytes()
    assert os.access(first, os.X_OK)
    assert sorted(p.name for p in first.parent.iterdir()) == ["terway"]  # no temporary left behind


def test_version_names_the_release_and_protocol(shim: Path) -> None:
    proc = run_shim(shim, b"", {}, "--version")
    assert (proc.returncode, proc.stdout) == (0, f"terway CNI shim {__version__} (protocol 2)\n".encode())


def test_go_unit_tests_pass(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip(GO_MISSING)
    copy_sources(tmp_path, include_tests=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOPROXY": "off", "GOFLAGS": "", "GOTOOLCHAIN": "local", "GOWORK": "off"}
    proc = subprocess.run(["go", "test", "-count=1", "./..."], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- forwarding -----------------------------------------------------------------------------------


def test_env_and_stdin_forwarded_and_reply_relayed_verbatim(shim: Path, daemon: FakeDaemon) -> None:
    daemon.reply = json.dumps({"protocol": 2, "exit": 7, "stdout": "{\n  \"r\": \"é ☃\"\n}", "stderr": "warn: x\n"}).encode() + b"\n"
    stdin = '{"cniVersion":"1.0.0","name":"n\\n","x":"é ☃ <&>"}\n'.encode()
    cni = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
           "CNI_ARGS": "K8S_POD_NAME=a;IgnoreUnknown=1", "CNI_PATH": "/opt/cni/bin"}
    env = {**base_env(daemon.path), **cni, "TERWAY_EXTRA": "a=b", "HOME": "/root", "NOT_CNI": "1", "CNIX": "1"}
    proc = run_shim(shim, stdin, env)
    assert proc.returncode == 7
    assert proc.stdout == "{\n  \"r\": \"é ☃\"\n}".encode()
    assert proc.stderr == b"warn: x\n"
    [request] = daemon.requests
    assert request == {
        "protocol": 2,
        "env": {**cni, "TERWAY_EXTRA": "a=b", "TERWAY_DAEMON_TIMEOUT": "5", "TERWAY_DAEMON_SOCKET": str(daemon.path)},
        "stdin": stdin.decode(),
        "netns_fd": False,
    }


def test_netns_descriptor_passed_when_it_opens(shim: Path, daemon: FakeDaemon, tmp_path: Path) -> None:
    netns = tmp_path / "netns"
    netns.write_bytes(b"")  # the shim only opens the path read-only: a regular file will do
    proc = run_shim(shim, b"{}", base_env(daemon.path, CNI_NETNS=str(netns)))
    assert proc.returncode == 0, proc
    assert daemon.requests[0]["netns_fd"] is True
    [[passed]] = daemon.passed_fds
    expected = os.stat(netns)
    assert (passed.st_ino, passed.st_dev) == (expected.st_ino, expected.st_dev)


@pytest.mark.parametrize("netns", ["/nonexistent/netns", ""])
def test_no_descriptor_when_netns_cannot_be_opened(shim: Path, daemon: FakeDaemon, netns: str) -> None:
    proc = run_shim(shim, b"{}", base_env(daemon.path, CNI_NETNS=netns))
    assert proc.returncode == 0, proc
    assert daemon.requests[0]["netns_fd"] is False
    assert daemon.passed_fds == [[]]


# --- errors the shim answers itself -------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "version"),
    [(b'{"cniVersion":"0.3.1"}', "0.3.1"), (b'{"cniVersion":"1.1.0"}', "1.1.0"), (b"not json", "1.1.0"),
     (b'{"cniVersion":3}', "1.1.0")],
)
def test_daemon_not_running(shim: Path, sock_dir: Path, stdin: bytes, version: str) -> None:
    missing = sock_dir / "missing.sock"
    error = cni_error(run_shim(shim, stdin, base_env(missing)))
    assert error["cniVersion"] == version
    assert error["code"] == 11
    assert str(error["msg"]).startswith(f"terway daemon is not running: {missing}: ")
    assert error["details"] == "the runtime retries; check the terway pod on this node"


def test_status_without_a_daemon_is_plugin_not_available(shim: Path, sock_dir: Path) -> None:
    missing = sock_dir / "missing.sock"
    env = {**base_env(missing), "CNI_COMMAND": "STATUS"}
    error = cni_error(run_shim(shim, b'{"cniVersion":"1.1.0"}', env))
    assert error["code"] == 50
    assert str(error["msg"]).startswith(f"plugin not available: terway daemon is not running: {missing}: ")


def test_socket_file_without_listener_is_not_running(shim: Path, sock_dir: Path) -> None:
    stale = sock_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))  # bound, never listening: connect is refused
        error = cni_error(run_shim(shim, b"{}", base_env(stale)))
    assert error["code"] == 11
    assert "connection refused" in str(error["msg"])


def test_daemon_that_never_answers_times_out(shim: Path, daemon: FakeDaemon) -> None:
    daemon.mode = "hang"
    env = base_env(daemon.path)
    del env["TERWAY_DAEMON_TIMEOUT"]
    started = time.monotonic()
    error = cni_error(run_shim(shim, b'{"cniVersion":"1.0.0","daemon_timeout":0.5}', env))
    assert time.monotonic() - started < 10
    assert error["code"] == 11
    assert error["cniVersion"] == "1.0.0"
    assert error["msg"] == f"terway daemon did not answer in time: {daemon.path}: no reply within 0.5s"


@pytest.mark.parametrize(
    ("mode", "reply"),
    [
        ("reply", b"garbage\n"),
        ("reply", b'{"protocol":2,"exit":0,"stdout":""}'),  # no newline before EOF
        ("reply", b'{"protocol":1,"exit":0,"stdout":""}\n'),
        ("reply", b'{"protocol":2,"exit":300,"stdout":""}\n'),
        ("close", b""),
    ],
)
def test_broken_reply_is_an_io_failure(shim: Path, daemon: FakeDaemon, mode: str, reply: bytes) -> None:
    daemon.mode, daemon.reply = mode, reply
    error = cni_error(run_shim(shim, b'{"cniVersion":"0.4.0"}', base_env(daemon.path)))
    assert error["code"] == 5
    assert error["cniVersion"] == "0.4.0"
    assert str(error["msg"]).startswith(f"talking to the terway daemon at {daemon.path} failed: ")


def test_oversized_stdin_refused_without_connecting(shim: Path, daemon: FakeDaemon) -> None:
    written = 0
    with subprocess.Popen([str(shim)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
                          env=base_env(daemon.path)) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        chunk = b" " * 65536
        try:  # an endless stdin: the shim must stop reading after 1 MiB + 1 and answer
            while written < 64 * MIB:
                proc.stdin.write(chunk)
                written += len(chunk)
        except BrokenPipeError:
            pass
        proc.stdin.close()
        out = proc.stdout.read()
        assert proc.wait(timeout=RUN_LIMIT) == 1
    assert written < 4 * MIB
    error = json.loads(out)
    assert error["code"] == 6
    assert error["msg"] == "network config on stdin is larger than 1048576 bytes"
    # A probe connection after the shim's exit: once the daemon counted it, it would have counted
    # any earlier connection of the shim too (accept() is first come, first served).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.connect(str(daemon.path))
        daemon.wait_for_connections(1)
    assert daemon.connections == 1


def test_stdin_of_exactly_the_limit_is_forwarded(shim: Path, daemon: FakeDaemon) -> None:
    stdin = b'{"cniVersion":"1.1.0"}'.ljust(MIB, b" ")
    proc = run_shim(shim, stdin, base_env(daemon.path))
    assert proc.returncode == 0, proc.stdout
    assert daemon.requests[0]["stdin"] == stdin.decode()


# --- socket path selection ------------------------------------------------------------------------


def test_env_socket_wins_over_config(shim: Path, daemon: FakeDaemon, sock_dir: Path) -> None:
    config = json.dumps({"daemon_socket": str(sock_dir / "missing.sock")}).encode()
    proc = run_shim(shim, config, base_env(daemon.path))
    assert proc.returncode == 0, proc.stdout
    assert daemon.connections == 1


@pytest.mark.parametrize("env_socket", [None, ""])
def test_config_socket_used_without_env(shim: Path, daemon: FakeDaemon, env_socket: str | None) -> None:
    config = json.dumps({"daemon_socket": str(daemon.path)}).encode()
    proc = run_shim(shim, config, base_env(env_socket))
    assert proc.returncode == 0, proc.stdout
    assert daemon.connections == 1


def test_default_socket(shim: Path) -> None:
    if os.path.exists(DEFAULT_SOCKET):
        pytest.skip(f"a daemon socket exists on this machine: {DEFAULT_SOCKET}")
    error = cni_error(run_shim(shim, b'{"daemon_socket": ""}', base_env(None)))
    assert error["code"] == 11
    assert f"terway daemon is not running: {DEFAULT_SOCKET}: " in str(error["msg"])
