"""Processes a lab starts: detached (own session), logged to a file, recorded by pid, stopped by pid.

A pid is only signalled when its command line still carries the lab's marker (the lab dir path or
``lab serve --name <name>``), so a recycled pid of someone else's process is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# Popen objects of the processes started here, kept so that they are not collected while the
# process runs (a ResourceWarning) and are reaped through their own Popen when stopped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def reap_exited() -> None:
    """Collect every child started here that has exited, so none lingers as a zombie."""
    for pid, child in list(_CHILDREN.items()):
        if child.poll() is not None:
            del _CHILDREN[pid]


def spawn(argv: Sequence[str], log: Path, env: Mapping[str, str]) -> int:
    """Start `argv` detached (new session, stdin /dev/null, output to `log`) and return its pid."""
    reap_exited()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=dict(env), start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[process.pid] = process
    return process.pid


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int, marker: str) -> bool:
    """The pid runs and its command line holds `marker` (a zombie child counts as gone)."""
    if pid <= 0:
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if status.rpartition(")")[2].split()[0] == "Z":
        _reap(pid)
        return False
    return marker in cmdline(pid)


def exited(pid: int, marker: str) -> bool:
    """For a process started by this process: it has exited (its Popen says so; right after the
    fork its command line is still ours). For any other pid: not `alive`."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is not None
    return not alive(pid, marker)


def stop_all(targets: list[tuple[int, str]], timeout: float = 5.0) -> list[int]:
    """`stop` for many processes at once: SIGTERM to all, one shared wait, SIGKILL to the rest."""
    mine = [(pid, marker) for pid, marker in targets if alive(pid, marker)]
    for pid, _ in mine:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(pid, marker) for pid, marker in mine):
        time.sleep(0.02)
    for pid, marker in mine:
        if alive(pid, marker):
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(alive(pid, marker) for pid, marker in mine):
        time.sleep(0.02)
    return [pid for pid, _ in mine]


def stop(pid: int, marker: str, timeout: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True when a process of ours was there."""
    if not alive(pid, marker):
        return False
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, marker):
            return True
        time.sleep(0.02)
    _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and alive(pid, marker):
        time.sleep(0.02)
    return True


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    _reap(pid)


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            del _CHILDREN[pid]
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
