"""Every command, every option, bad values of the option's type (issue #15, "Bad input everywhere").

The cases come from the click tree itself, so a new command or option is fuzzed without editing
this file. Each invocation must end within 10 s with exit 2, an `error:` line naming the option or
the file, and no traceback. Numbers get garbage, 31 digits and non-finite values; files get
non-UTF-8 bytes, 5,000 levels of nesting and 9 MB; ids of a known form and choices get '☃'.
Free-text options (names, addresses) are left to the commands' own tests.

Commands that would start something long-lived if a bad value slipped through (the daemon, the lab,
the emulator) run as subprocesses that are killed at the deadline; the others run in-process.
A Kubernetes API server that accepts and never answers is a listening socket.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from terwayctl.cli.app import full_command, run
from terwayctl.cli.docgen import walk
from terwayctl.cli.inputs import FORMS, MAX_FILE_BYTES
from tests.fixtures.kube import write_kubeconfig

DEADLINE = 10.0
ROOT = full_command()
# Good values for the required parameters, so the bad one is the only thing wrong.
GOOD: dict[str, list[str]] = {
    "shell": ["bash"], "target": ["node1"], "pod": ["web"], "vswitch": ["vsw-abc"],
    "instance_id": ["--instance-id", "i-abc"], "node": ["--node", "node1"], "vpc": ["--vpc", "192.168.0.0/16"],
    "node_vswitch": ["--node-vswitch", "192.168.0.0/19"], "pod_vswitch": ["--pod-vswitch", "192.168.32.0/19"],
}
# Commands that run until stopped, or change the machine, once their input is accepted.
LONG_LIVED = {("daemon",), ("cloud", "emulate"), ("lab", "up"), ("lab", "serve"), ("cni", "install")}
BAD_NUMBERS = ["abc", "1" * 31, "-" + "9" * 31, "1e400"]
BAD_FLOATS = ["nan", "inf", "1e308"]
BAD_FILES = ["not-utf8", "deep-json", "deep-yaml", "huge"]


@dataclass(frozen=True)
class Case:
    path: tuple[str, ...]
    option: str
    value: str  # a literal, or one of BAD_FILES
    required: tuple[str, ...] = ()

    def argv(self, files: dict[str, Path]) -> list[str]:
        value = str(files[self.value]) if self.value in files else self.value
        return [*self.path, *self.required, self.option, value]

    @property
    def id(self) -> str:
        return f"{' '.join(self.path) or 'root'} {self.option} {self.value[:12]}"


def _required(command: Any, skip: str) -> tuple[str, ...]:
    args: list[str] = []
    for param in command.params:
        if param.required and param.name != skip:
            args += GOOD[str(param.name)]
    return tuple(args)


def _bad_values(param: Any, option: str) -> list[str]:
    kind = str(getattr(param.type, "name", ""))
    if "float" in kind:
        return BAD_NUMBERS[:2] + BAD_FLOATS
    if "int" in kind:
        return BAD_NUMBERS
    if (kind in ("path", "file") and param.metavar != "DIR") or option == "--kubeconfig":
        return BAD_FILES
    if kind == "choice" or option in FORMS:
        return ["☃"]
    return []


def cases() -> list[Case]:
    found: list[Case] = []
    for path, command in walk(ROOT):
        runnable = not hasattr(command, "commands") or getattr(command, "invoke_without_command", False)
        if not runnable and len(path) > 1:
            continue
        for param in command.params:
            if param.param_type_name != "option" or param.is_flag or param.hidden or param.name == "version":
                continue
            option = max(param.opts, key=len)
            where = path[1:] if len(path) > 1 else ("capacity", "ecs.g6.xlarge")  # root options: any command
            for value in _bad_values(param, option):
                found.append(Case(where, option, value, _required(command, str(param.name)) if len(path) > 1 else ()))
    return found


CASES = cases()


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("bad")
    files = {name: where / name for name in BAD_FILES}
    files["not-utf8"].write_bytes(b'{"max_eni": "\xff\xfe\xfa"}\n')
    files["deep-json"].write_text("[" * 5000 + "]" * 5000, encoding="utf-8")
    files["deep-yaml"].write_text("".join(" " * i + "k:\n" for i in range(200)), encoding="utf-8")
    with files["huge"].open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: refused by its size before it is read
    return files


def _in_process(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    result: list[int] = []

    def target() -> None:
        with redirect_stdout(out), redirect_stderr(err):
            result.append(run(argv))

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(DEADLINE)
    assert result, f"terwayctl {' '.join(argv)} did not finish within {DEADLINE:g} s"
    return result[0], out.getvalue(), err.getvalue()


def _subprocess(argv: list[str]) -> tuple[int, str, str]:
    try:
        done = subprocess.run([sys.executable, "-m", "terwayctl", *argv], capture_output=True, text=True,
                              timeout=DEADLINE, check=False, env={**os.environ, "HOME": os.environ.get("HOME", "/")})
    except subprocess.TimeoutExpired:
        pytest.fail(f"terwayctl {' '.join(argv)} did not finish within {DEADLINE:g} s")
    return done.returncode, done.stdout, done.stderr


def assert_bad_input(code: int, err: str, names: list[str]) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert any(name in errors[0] for name in names), f"{errors[0]!r} names none of {names}"


def test_the_fuzz_covers_every_kind() -> None:
    options = {c.option for c in CASES}
    assert {"--host-network-pods", "--pods-per-node", "--growth", "--eni-conf", "--values", "--config",
            "--kubeconfig", "--region", "--zones", "--zone", "--state", "--scenario", "--output"} <= options
    assert len(CASES) > 100


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_value_is_bad_input(case: Case, bad_files: dict[str, Path]) -> None:
    argv = case.argv(bad_files)
    long_lived = any(case.path[: len(p)] == p for p in LONG_LIVED)
    code, _, err = (_subprocess if long_lived else _in_process)(argv)
    names = [case.option] + ([str(bad_files[case.value])] if case.value in bad_files else [])
    assert_bad_input(code, err, names)


@pytest.fixture
def silent_api(tmp_path: Path) -> Iterator[Path]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{sock.getsockname()[1]}")
    sock.close()


def test_cluster_commands_give_up_on_an_api_server_that_never_answers(silent_api: Path) -> None:
    commands = [
        ["vswitch", "list"], ["capacity", "--cluster"], ["doctor", "--scope", "cluster"],
        ["apply", "--set", "security_groups=sg-bp1aaa"],
    ]
    running = [subprocess.Popen([sys.executable, "-m", "terwayctl", *c, "--kubeconfig", str(silent_api)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    try:
        for command, process in zip(commands, running, strict=True):
            out, err = process.communicate(timeout=DEADLINE)
            assert "Traceback" not in err, err
            if command[0] == "doctor":  # doctor reports the cluster checks as skipped, with the reason
                assert "skipped: no cluster: cannot reach the Kubernetes API server" in out, out
                assert "no answer to API discovery in 5 s" in out
                continue
            assert process.returncode == 1, (command, err)
            errors = [line for line in err.splitlines() if line.startswith("error: ")]
            assert len(errors) == 1 and "no answer to API discovery in 5 s" in errors[0], (command, err)
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize("content", [b"garbage, not sqlite\n" * 10, b"\x00" * 4096])
def test_garbage_emulator_state_file(tmp_path: Path, content: bytes) -> None:
    state = tmp_path / "state.db"
    state.write_bytes(content)
    code, _, err = _subprocess(["cloud", "emulate", "--state", str(state)])
    assert_bad_input(code, err, [str(state)])


def test_unknown_log_level_of_the_daemon() -> None:
    code, _, err = _subprocess(["daemon", "--log-level", "loud"])
    assert_bad_input(code, err, ["--log-level"])
