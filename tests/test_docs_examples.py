"""Every shell example of README.md and docs/*.md runs for real and prints what the doc shows.

See tests/docs_examples.py for the block format, the markers and the normalisers. Regenerate the
shown output of the examples that no longer match with:

    TERWAYCTL_UPDATE_DOCS=1 python -m pytest tests/test_docs_examples.py
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.docs_examples import (
    INTERRUPT,
    Block,
    Command,
    all_blocks,
    carry,
    normalise,
    output_matches,
    parse_file,
    rewrite,
    until_interrupt,
)

UPDATE = os.environ.get("TERWAYCTL_UPDATE_DOCS") == "1"
BLOCKS = all_blocks()
ENVS = {"catalog", "emulator", "lab"}
LAB_OPTION = re.compile(r"--lab[ =]([a-z0-9]+)")
SCRUBBED = ("TERWAYCTL_", "ALIBABA_CLOUD_", "KUBECONFIG", "XDG_", "NODE_NAME")
ENDPOINT = re.compile(r"http://127\.0\.0\.1:\d+")
TIMEOUT = 120


def _terwayctl_dir() -> str:
    script = shutil.which("terwayctl")
    if script:
        return str(Path(script).parent)
    shim = Path(tempfile.mkdtemp(prefix="twdocs-bin-")) / "terwayctl"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m terwayctl "$@"\n')
    shim.chmod(0o755)
    return str(shim.parent)


def missing_programs(block: Block) -> list[str]:
    """The programs of the block's `needs=` that are not on PATH."""
    return [program for program in block.needs if shutil.which(program) is None]


def go_caches() -> dict[str, str]:
    """The caller's Go build cache and GOPATH (Go's defaults under the real HOME): a session's HOME is
    empty, and building the CNI shim (`cni build-shim`, every `lab up`) with a cold cache takes ~30 s."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return {"GOCACHE": os.environ.get("GOCACHE") or str(Path(cache_home) / "go-build"),
            "GOPATH": os.environ.get("GOPATH") or str(Path.home() / "go")}


@dataclass
class Emulator:
    process: subprocess.Popen[str]
    url: str
    exports: dict[str, str]
    reader: threading.Thread
    lines: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=10)  # it ends at EOF, once the process is gone
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_emulator(cwd: Path, env: dict[str, str]) -> Emulator:
    """As docs/emulator.md tells a newcomer: `terwayctl cloud emulate`, then export what it prints."""
    process = subprocess.Popen(["terwayctl", "cloud", "emulate", "--listen", "127.0.0.1:0", "--state",
                                str(cwd / "emulator.sqlite")], cwd=cwd, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    lines: list[str] = []
    exports: dict[str, str] = {}
    url = ""
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url_box.append(found[1])
            export = re.match(r"\s*export (\w+)=(\S+)", line)
            if export:
                exports[export[1]] = export[2]
            if line.startswith("stop with"):
                ready.set()
        ready.set()

    url_box: list[str] = []
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not ready.wait(timeout=60) or not url_box:
        Emulator(process, "", exports, reader, lines).stop()
        raise AssertionError("the emulator did not start:\n" + "\n".join(lines))
    url = url_box[0]
    return Emulator(process, url, exports, reader, lines)


@dataclass
class Session:
    """One doc file's environment: a working directory, the variables exported so far, an emulator."""

    cwd: Path
    env: dict[str, str]
    state: list[str] = field(default_factory=list)   # export / eval / cd / VAR=... lines so far
    emulator: Emulator | None = None
    status: int = 0   # the exit status of the last command, for a shown `echo $?`
    labs: dict[str, str] = field(default_factory=dict)   # lab name shown in the doc -> the one run

    def lab(self, shown: str) -> str:
        """A unique lab name per name the doc shows, so two runs (and the lab tests) never collide."""
        if shown not in self.labs:
            size = min(max(len(shown), 5), 10)   # the same width keeps the doc's tables aligned
            self.labs[shown] = "d" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                                             for _ in range(size - 1))
        return self.labs[shown]

    def lab_names_in(self, text: str) -> str:
        """The doc's lab names in a command (`--lab NAME`, `twlab-NAME-`, `/lab/NAME/`) -> the run's."""
        text = LAB_OPTION.sub(lambda match: f"--lab {self.lab(match[1])}", text)
        for shown, real in self.labs.items():
            text = text.replace(f"twlab-{shown}-", f"twlab-{real}-").replace(f"/lab/{shown}/", f"/lab/{real}/")
        return text

    def run(self, block: Block, command: Command, cwd: Path) -> list[str]:
        text = command.text
        if os.geteuid() == 0:
            text = re.sub(r"(^|[|;&(`]\s*|\$\()sudo ", r"\1", text)
        shown_url = None
        if block.env == "emulator":
            assert self.emulator is not None
            shown_url = (ENDPOINT.findall(text) or [None])[0]
            text = ENDPOINT.sub(self.emulator.url, text)
        if block.env == "lab":
            text = self.lab_names_in(text)
        self._given_file(block, text, command, cwd)
        script = "\n".join([*(f"{{ {line}\n}} >/dev/null 2>&1" for line in self.state), f"(exit {self.status})", text])
        wait_for = until_interrupt(command)
        if wait_for is None:
            done = subprocess.run(["bash", "-c", script], cwd=cwd, env=self.env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT,
                                  check=False)
            self.status, output = done.returncode, done.stdout
        else:
            self.status, output = self._until_interrupt(script, cwd, wait_for, block.vary)
        if re.match(r"(export|eval|cd)\s|[A-Za-z_]\w*=\S*$|[A-Za-z_]\w*=\$\(.*\)$", text):
            self.state.append(text)
        output = self._as_shown(output, shown_url)
        return output.rstrip("\n").split("\n") if output.strip() else []

    def _as_shown(self, output: str, shown_url: str | None = None) -> str:
        """The run's HOME, emulator URL and lab names in `output` made the doc's."""
        output = output.replace(self.env["HOME"], "/home/me")
        if shown_url and self.emulator is not None:
            output = output.replace(self.emulator.url, shown_url)
        if "default" in self.labs:   # the lab named by TERWAYCTL_LAB: the doc shows no --lab
            output = re.sub(rf" --(?:lab|name) {self.labs['default']}\b", "", output)
        for shown, real in self.labs.items():
            output = output.replace(real, shown)
        return output

    def _until_interrupt(self, script: str, cwd: Path, wait_for: list[str], vary: str | None) -> tuple[int, str]:
        """Run a foreground command until the lines shown before `^C` appeared (or TIMEOUT), then
        SIGINT its process group as a terminal's Ctrl-C does; `^C` goes where the interrupt came."""
        process = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=self.env, text=True, start_new_session=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines: list[str] = []
        arrived = threading.Condition()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                with arrived:
                    lines.append(line.rstrip("\n"))
                    arrived.notify_all()
            with arrived:
                arrived.notify_all()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def shown_yet() -> bool:
            return process.poll() is not None or output_matches(
                [*wait_for, "..."], [self._as_shown(line) for line in lines], vary)

        with arrived:
            arrived.wait_for(shown_yet, timeout=TIMEOUT)
            interrupted_at = len(lines)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        output = [*lines[:interrupted_at], INTERRUPT, *lines[interrupted_at:]]
        return process.returncode, "\n".join(output) + "\n"

    def _given_file(self, block: Block, text: str, command: Command, cwd: Path) -> None:
        """`$ cat FILE` of a file that is not there yet: the shown output is the example's input
        (in a lab, with the doc's lab names made the run's, as in the commands)."""
        given = re.fullmatch(r"cat ([\w.-]+)", text.strip())
        if given and not (cwd / given[1]).exists():
            content = "\n".join(command.output) + "\n"
            if block.env == "lab":
                content = self.lab_names_in(content)
            (cwd / given[1]).write_text(content, encoding="utf-8")


class Sessions:
    def __init__(self) -> None:
        self.by_key: dict[tuple[Path, str], Session] = {}
        self.bin_dir = _terwayctl_dir()
        self.updates: dict[Path, list[tuple[Command, list[str]]]] = {}

    def get(self, block: Block) -> Session:
        key = (block.path, block.env + ("" if block.exports else " exports=none"))
        if key not in self.by_key:
            cwd = Path(tempfile.mkdtemp(prefix="twdocs-"))
            env = {name: value for name, value in os.environ.items() if not name.startswith(SCRUBBED)}
            env.update(HOME=str(cwd / "home"), PATH=f"{self.bin_dir}:{env.get('PATH', '/usr/bin:/bin')}",
                       NO_COLOR="1", TERM="dumb", COLUMNS="200", LC_ALL="C.UTF-8", **go_caches())
            (cwd / "home").mkdir()
            session = Session(cwd, env)
            if block.env == "lab":
                if os.geteuid() != 0:
                    pytest.skip("the lab needs root")
                env["TERWAYCTL_LAB"] = session.lab("default")
            if block.env == "emulator":
                session.emulator = start_emulator(cwd, env)
                if block.exports:
                    env.update(session.emulator.exports)
            self.by_key[key] = session
        return self.by_key[key]

    def close(self) -> None:
        for session in self.by_key.values():
            for name in session.labs.values():
                subprocess.run(["terwayctl", "lab", "down", "--lab", name], env=session.env, timeout=TIMEOUT,
                               capture_output=True, check=False)
            if session.emulator is not None:
                session.emulator.stop()
            shutil.rmtree(session.cwd, ignore_errors=True)
        for path, replacements in self.updates.items():
            rewrite(path, replacements)


@pytest.fixture(scope="module")
def sessions() -> Iterator[Sessions]:
    opened = Sessions()
    yield opened
    opened.close()


def test_examples_are_found() -> None:
    assert len(BLOCKS) > 50
    assert all(block.env in ENVS or block.skip for block in BLOCKS), [
        block.id for block in BLOCKS if block.env not in ENVS and not block.skip]


def test_a_wrong_shown_output_fails() -> None:
    assert output_matches(["TYPE  vCPU", "ecs.g6.xlarge  4"], ["TYPE vCPU", "ecs.g6.xlarge     4"])
    assert not output_matches(["ecs.g6.xlarge  4"], ["ecs.g6.xlarge  8"])
    assert output_matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert not output_matches(["a", "...", "z"], ["a", "b"])
    assert output_matches(["error: ... failed"], ["error: CNI ADD failed"])
    assert normalise("eni-bp1fed2bc46075480004 at 2026-12-04T16:47:10Z on 127.0.0.1:39563") == \
        "eni-bp1<ID> at <TIME> on 127.0.0.1:<PORT>"
    assert normalise("(STATUS, kernel 6.18.44-fc-v1252)") == normalise("(STATUS, kernel 5.15.0-91-generic)") == \
        "(STATUS, kernel <KERNEL>)"


def test_regenerate_rewrites_only_what_changed(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("text\n\n<!-- docs-test: env=emulator -->\n```console\n$ tool a \\\n    --b\n"
                   "eni-bp1fed2bc46075480004 up at 2026-11-21T05:40:58Z\nrows 941\n$ echo $?\n0\n```\nmore\n",
                   encoding="utf-8")
    [block] = parse_file(doc)
    assert block.env == "emulator" and [command.text for command in block.commands] == ["tool a \\\n    --b", "echo $?"]
    first = block.commands[0]
    real = ["eni-bp1aaaaaaaaaaaaaaaaaaaa up at 2026-12-04T16:00:00Z", "rows 1468"]
    rewrite(doc, [(first, carry(first.output, real))])
    assert doc.read_text(encoding="utf-8").splitlines()[6:8] == [
        "eni-bp1fed2bc46075480004 up at 2026-11-21T05:40:58Z", "rows 1468"]
    assert doc.read_text(encoding="utf-8").endswith("$ echo $?\n0\n```\nmore\n")


def _session(tmp_path: Path) -> Session:
    env = {name: value for name, value in os.environ.items() if not name.startswith(SCRUBBED)}
    (tmp_path / "home").mkdir()
    env.update(HOME=str(tmp_path / "home"), LC_ALL="C.UTF-8")
    return Session(tmp_path, env)


def test_a_foreground_command_runs_until_interrupted(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    serve = ("python3 -c 'import signal as s; s.pthread_sigmask(s.SIG_BLOCK, {s.SIGINT}); "
             "print(\"serving\", flush=True); s.sigwait({s.SIGINT}); print(\"stopped\")'")
    doc.write_text(f"```console\n$ {serve}\nserving\n...\n^C\nstopped\n$ echo $?\n0\n```\n", encoding="utf-8")
    [block] = parse_file(doc)
    session = _session(tmp_path)
    serving, status = block.commands
    assert until_interrupt(serving) == ["serving"] and until_interrupt(status) is None
    real = session.run(block, serving, tmp_path)
    assert real == ["serving", "^C", "stopped"]   # SIGINT came after "serving", and it stopped cleanly
    assert output_matches(serving.output, real) and not output_matches(["serving", "stopped", "^C"], real)
    assert session.run(block, status, tmp_path) == ["0"]


def test_a_given_file_in_a_lab_names_the_runs_lab(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- docs-test: env=lab -->\n```console\n$ cat conf.json\n"
                   '{"daemon_socket": "/run/terwayctl/lab/cni/node1/eni.socket", "ns": "twlab-cni-pod"}\n```\n',
                   encoding="utf-8")
    [block] = parse_file(doc)
    session = _session(tmp_path)
    real_lab = session.lab("cni")
    [cat] = block.commands
    assert session.run(block, cat, tmp_path) == cat.output   # shown with the doc's name
    written = (tmp_path / "conf.json").read_text(encoding="utf-8")
    assert f"/lab/{real_lab}/node1/" in written and f"twlab-{real_lab}-pod" in written


def test_a_block_needing_a_missing_program_is_skipped(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- docs-test: needs=sh,no-such-program-here -->\n```console\n$ true\n```\n", encoding="utf-8")
    [block] = parse_file(doc)
    assert block.needs == ("sh", "no-such-program-here") and block.env == "catalog" and block.skip is None
    assert missing_programs(block) == ["no-such-program-here"]


def test_go_builds_reuse_the_callers_cache() -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("no go")
    real = subprocess.run([go, "env", "GOCACHE", "GOPATH"], capture_output=True, text=True, check=True).stdout.split()
    assert [go_caches()["GOCACHE"], go_caches()["GOPATH"]] == real


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_doc_example(block: Block, sessions: Sessions) -> None:
    if block.skip:
        pytest.skip(block.skip)
    missing = missing_programs(block)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH")
    session = sessions.get(block)
    cwd = Path(tempfile.mkdtemp(prefix="block-", dir=session.cwd))   # files of one block only
    failures: list[str] = []
    for command in block.commands:
        if command.text.split()[0] in block.not_run:
            assert not command.output, f"{block.id}: a command that is not run shows output"
            continue
        real = session.run(block, command, cwd)
        if output_matches(command.output, real, block.vary):
            continue
        if UPDATE:
            sessions.updates.setdefault(block.path, []).append((command, carry(command.output, real, block.vary)))
            continue
        shown = "\n".join(command.output)
        failures.append(f"$ {command.text}\n--- shown in {block.id}\n{shown}\n--- real\n" + "\n".join(real))
    assert not failures, "\n\n".join(failures)
