"""Find, normalise and rewrite the shell examples of README.md and docs/*.md.

An example is a fenced block (```console, or a bare ```) whose first line is a `$ command`. Each
`$ ` line (plus its `\\`-continued lines) is a command; the lines up to the next `$ ` line are its
shown output. An HTML comment right before the fence declares how to run it (invisible in Markdown):

    <!-- docs-test: env=catalog -->        the default: the embedded catalog, no network, no root
    <!-- docs-test: env=emulator -->       a `terwayctl cloud emulate` started as docs/emulator.md says
    <!-- docs-test: env=lab -->            root: the commands bring up their own lab (`sudo terwayctl lab up`);
                                           every lab name (the default, `--lab NAME`) is made unique
                                           per run and shown as the doc's name; labs go down at the end
    <!-- docs-test: env=lab vary=REGEX -->  what else legitimately varies in this block (pod IPs
                                           when two daemons pre-warm their pools at once)
    <!-- docs-test: skip=<reason> -->      not run here; the reason is shown by pytest
    <!-- docs-test: not-run=kubectl -->    run the block but not the commands of these programs
    <!-- docs-test: env=emulator exports=none -->  the emulator runs, but its TERWAYCTL_ENDPOINT,
                                           ALIBABA_CLOUD_* are not exported (the block sets its own)
    <!-- docs-test: needs=go -->           skipped (with the reason) where these programs are not
                                           on PATH (comma-separated); CI installs them

In every environment `sudo ` is dropped when running as root, the commands of one doc file share a
HOME and what they `export` / `eval` / `cd` (each block starts in a fresh working directory of its own,
so the files one block writes are not another's input), `echo $?` shows the status of the command
before it, and `$ cat FILE` of a FILE that is not there yet writes the shown output to it
first (the doc shows the example's input; for env=lab with the doc's lab names made the run's). For
env=emulator every http://127.0.0.1:PORT in a command is the emulator the harness started. GOCACHE and
GOPATH are the caller's (or Go's defaults under the caller's HOME), so `cni build-shim` and `lab up`
reuse the Go build cache although HOME is the session's.

A command runs in the foreground until interrupted (`terwayctl cloud emulate`, a daemon) when its
shown output has a line `^C`: the harness starts it in its own process group, waits until the lines
shown before `^C` have appeared (a trailing `...` there is not waited for; at most the timeout), sends
SIGINT to the group as a terminal's Ctrl-C does, and compares what it printed, with `^C` where the
interrupt came, against the whole shown output.

Shown output is compared after NORMALISERS (applied to both sides); a line `...` in the shown output
matches any number of lines, and `...` inside a line matches any text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INTERRUPT = "^C"   # a shown output line: the command runs until the harness sends SIGINT here
MARKER = re.compile(r"^<!--\s*docs-test:\s*(?P<spec>.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")

#: What legitimately changes between runs, replaced on both sides before comparing.
NORMALISERS: list[tuple[re.Pattern[str], str]] = [
    # cloud ids minted by the emulator: eni-bp1fed2bc46075480004, vsw-bp10ebc73782b85a000a
    (re.compile(r"\b([a-z]+)-bp1[0-9a-z]{8,}\b"), r"\1-bp1<ID>"),
    (re.compile(r"\b([a-z]+)-emu[0-9a-f]{10,}\b"), r"\1-emu<ID>"),
    # request ids
    (re.compile(r"\b[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\b", re.I), "<UUID>"),
    # timestamps and dates
    (re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?"), "<TIME>"),
    (re.compile(r"\b20\d\d-\d\d(?:-\d\d)?\b"), "<DATE>"),
    # loopback ports
    (re.compile(r"\b127\.0\.0\.1:\d+"), "127.0.0.1:<PORT>"),
    (re.compile(r'"age_seconds": \d+'), '"age_seconds": <N>'),
    # pids
    (re.compile(r"\bpid \d+"), "pid <PID>"),
    (re.compile(r"\bready \(\d+\)"), "ready (<PID>)"),
    # durations and ages
    (re.compile(r"\b\d+(?:\.\d+)?(?:ms|s)\b"), "<DUR>"),
    (re.compile(r"time=\d+(?:\.\d+)? ms"), "time=<DUR>"),
    (re.compile(r"= [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms"), "= <RTT> ms"),
    (re.compile(r"\b\d+(?:\.\d+)? ms\b"), "<DUR>"),
    # MACs and interface names of ENIs the emulator minted
    (re.compile(r"\b00:16:3e(?::[0-9a-f]{2}){3}\b"), "00:16:3e:<MAC>"),
    (re.compile(r"\beni[0-9a-f]{12}\b"), "eni<IFNAME>"),
    # the running kernel's release: "kernel 6.18.44-fc-v1252)" on one machine, another in CI
    (re.compile(r"\bkernel \d+\.\d+[^\s),;]*"), "kernel <KERNEL>"),
    # container ids
    (re.compile(r"\b[0-9a-f]{12}\b"), "<CID>"),
    # temporary and per-user paths
    (re.compile(r"(?:/[\w.+-]+)*/\.cache/terwayctl"), "~/.cache/terwayctl"),
    (re.compile(r"/tmp/[\w.+-]+"), "/tmp/<TMP>"),
    (re.compile(r"(?:/[\w.+-]+)*/site-packages/"), "<SITE>/"),
    (re.compile(r"/\S*/terwayctl/data/"), "<SITE>/terwayctl/data/"),
    # table alignment follows the width of the values above
    (re.compile(r"[ \t]{2,}"), " "),
]


@dataclass
class Command:
    text: str           # the command as shown, continuation lines joined with newlines
    output: list[str]   # the shown output lines
    first: int          # 0-based line index of the `$ ` line in the file
    end: int            # 0-based index one past its last output line


@dataclass
class Block:
    path: Path
    start: int          # 0-based index of the opening fence
    lang: str
    env: str
    skip: str | None
    not_run: tuple[str, ...] = ()   # programs not run here (e.g. kubectl): such commands show no output
    exports: bool = True            # env=emulator: export what the emulator prints (exports=none: not)
    vary: str | None = None         # a regex of what else varies between runs in this block (<VARY>)
    needs: tuple[str, ...] = ()     # programs the block needs on PATH (skipped without them)
    commands: list[Command] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.start + 1}"


def until_interrupt(command: Command) -> list[str] | None:
    """A foreground command's shown lines before `^C` (what to wait for, without a trailing `...`),
    or None when the command is not interrupted."""
    if INTERRUPT not in command.output:
        return None
    before = command.output[:command.output.index(INTERRUPT)]
    while before and before[-1].strip() in ("...", "\u2026"):
        before.pop()
    return before


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def parse_spec(spec: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for part in re.split(r"\s+(?=\w+=)", spec.strip()):
        if "=" in part:
            key, _, value = part.partition("=")
            values[key.strip()] = value.strip()
    return values


def parse_file(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        close = index + 1
        while close < len(lines) and not lines[close].startswith("```"):
            close += 1
        if index + 1 < close and lines[index + 1].startswith("$ ") and fence["lang"] in ("", "console"):
            before = index - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            marker = MARKER.match(lines[before]) if before >= 0 else None
            spec = parse_spec(marker["spec"]) if marker else {}
            block = Block(path, index, fence["lang"], spec.get("env", "catalog"), spec.get("skip"),
                          tuple(filter(None, spec.get("not-run", "").split(","))),
                          spec.get("exports") != "none", spec.get("vary"),
                          tuple(filter(None, spec.get("needs", "").split(","))))
            block.commands = _commands(lines, index + 1, close)
            blocks.append(block)
        index = close + 1
    return blocks


def _commands(lines: list[str], start: int, stop: int) -> list[Command]:
    commands: list[Command] = []
    index = start
    while index < stop:
        first = index
        text = [lines[index][2:]]
        while text[-1].endswith("\\") and index + 1 < stop:
            index += 1
            text.append(lines[index])
        index += 1
        out_start = index
        while index < stop and not lines[index].startswith("$ "):
            index += 1
        output = lines[out_start:index]
        end = index
        while output and not output[-1].strip():
            output.pop()
            end -= 1
        commands.append(Command("\n".join(text), output, first, end))
    return commands


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in parse_file(path)]


def normalise(text: str, vary: str | None = None) -> str:
    if vary:
        text = re.sub(vary, "<VARY>", text)
    for pattern, replacement in NORMALISERS:
        text = pattern.sub(replacement, text)
    return text.rstrip()


def _line_matches(shown: str, real: str) -> bool:
    if "..." not in shown and "…" not in shown:
        return shown == real
    parts = re.split(r"\.\.\.|…", shown)
    return re.fullmatch(".*".join(re.escape(part) for part in parts), real, re.S) is not None


def output_matches(shown: list[str], real: list[str], vary: str | None = None) -> bool:
    """`shown` against `real`, both normalised: `...` lines match any lines."""
    shown = [normalise(line, vary) for line in shown]
    real = [normalise(line, vary) for line in real]

    def match(i: int, j: int) -> bool:
        if i == len(shown):
            return j == len(real)
        if shown[i].strip() in ("...", "…"):
            return any(match(i + 1, k) for k in range(j, len(real) + 1))
        return j < len(real) and _line_matches(shown[i], real[j]) and match(i + 1, j + 1)

    return match(0, 0)


def carry(shown: list[str], real: list[str], vary: str | None = None) -> list[str]:
    """The real output to write, keeping the shown values of what the normalisers replace (ids, times,
    ports, paths) where a real line matches its shown line, so a regeneration changes only what changed."""
    if output_matches(shown, real, vary):
        return shown
    kept: list[str] = []
    for index, line in enumerate(real):
        before = shown[index] if index < len(shown) else None
        if before is not None and normalise(before, vary) == normalise(line, vary):
            kept.append(before)
            continue
        if before is not None:
            for pattern, _ in NORMALISERS[:-1]:
                old, new = list(pattern.finditer(before)), list(pattern.finditer(line))
                if old and len(old) == len(new):
                    line = _put_back(pattern, line, [match[0] for match in old])
        kept.append(line)
    return kept


def _put_back(pattern: re.Pattern[str], line: str, values: list[str]) -> str:
    """Each match of `pattern` in `line` replaced by the next of `values` (the shown ones)."""
    shown = iter(values)

    def next_value(_match: re.Match[str]) -> str:
        return next(shown)

    return pattern.sub(next_value, line)


def rewrite(path: Path, replacements: list[tuple[Command, list[str]]]) -> None:
    """Put the real output under each command (done bottom-up so the indexes stay valid)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    # the file may have been edited by someone else since parsing: locate each command anew
    for command, real in sorted(replacements, key=lambda item: item[0].first, reverse=True):
        first_line = command.text.split("\n")[0]
        found = command.first if lines[command.first:command.first + 1] == ["$ " + first_line] else None
        if found is None:
            raise AssertionError(f"{path}: cannot find '$ {first_line}' again; rerun")
        continuation = command.text.count("\n")
        out_start = found + 1 + continuation
        lines[out_start:command.end] = real
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


Runner = Callable[[Command], list[str]]
