"""Checks every command gets before it runs: ids by form, and the files its options name.

`terwayctl.cli.app` walks the command line once (`lift_global_options`) and hands the options it
found here: an id of the wrong form (`--zones '☃'`), a file too large, not UTF-8 or nested too
deeply is bad input (exit 2) naming the option, before any command code parses it. The same
names are used when a parser deep down still fails on a file (RecursionError, a garbage SQLite
state file): `bad_file_error` turns that into an `error:` line naming the option and the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from terwayctl.core.errors import InvalidInput

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_NESTING = 64
SQLITE_HEADER = b"SQLite format 3\x00"
# Files that are not documents to parse: a state database, a program (`cni install --shim`).
BINARY_HEADERS = (SQLITE_HEADER, b"\x7fELF")

_NAME = r"[a-z0-9]+(?:-[a-z0-9]+)*"
# option -> (pattern of one value, what it is, an example); repeatable options may be comma-separated
FORMS: dict[str, tuple[re.Pattern[str], str, str]] = {
    "--region": (re.compile(r"[a-z]+(?:-[a-z0-9]+)+"), "region id", "cn-hangzhou"),
    "--zone": (re.compile(_NAME), "zone id", "cn-hangzhou-i"),
    "--zones": (re.compile(_NAME), "zone id", "cn-hangzhou-i,cn-hangzhou-j"),
    "--vswitch-id": (re.compile(r"vsw-" + _NAME), "vSwitch id", "vsw-bp1abc"),
    "--vswitch": (re.compile(r"vsw-" + _NAME), "vSwitch id", "vsw-bp1abc"),
    "--vpc-id": (re.compile(r"vpc-" + _NAME), "VPC id", "vpc-bp1abc"),
    "--instance-id": (re.compile(r"i-" + _NAME), "instance id", "i-bp1abc"),
    "--security-group": (re.compile(r"sg-" + _NAME), "security group id", "sg-bp1abc"),
}
MAX_ID_LENGTH = 128


def check_forms(values: Sequence[tuple[str, str]]) -> None:
    """Refuse an id of the wrong form: (option as typed, value) pairs."""
    for option, value in values:
        form = FORMS.get(option)
        if form is None:
            continue
        pattern, what, example = form
        for part in (value.split(",") if option == "--zones" else [value]):
            part = part.strip()
            if option == "--zones" and not part:
                continue
            if len(part) > MAX_ID_LENGTH or not pattern.fullmatch(part):
                article = "an" if what[0] in "aeiou" else "a"
                raise InvalidInput(f"{option} {_shown(part)}: not {article} {what}", hint=f"e.g. {option} {example}")


# option -> (lowest, highest) that makes sense; any other number option: finite, |x| <= MAX_NUMBER
# (lower bounds the commands check themselves, with their own words, are left to them)
RANGES: dict[str, tuple[float, float]] = {
    "--host-network-pods": (0, 1_000),
    "--min-pods": (0, 100_000),
    "--pods-per-node": (0, 10_000),
    "--growth": (1.0, 100.0),
    "--low-ips": (0, 1_000_000),
    "--event-window": (0, 30 * 86_400),
    "--probe-timeout": (0.1, 600.0),
    "--port": (1, 65_535),
    "--seed": (0, 2**63 - 1),
}
MAX_NUMBER = 1_000_000_000


def check_numbers(values: Sequence[tuple[str, str]]) -> None:
    """Refuse a number outside the range that makes sense for its option (exit 2)."""
    import math

    for option, text in values:
        try:
            number = float(text)
        except ValueError:
            continue  # not a number at all: the parser says so
        low, high = RANGES.get(option, (-MAX_NUMBER, MAX_NUMBER))
        if not math.isfinite(number) or not low <= number <= high:
            shown = text if len(text) <= 24 else text[:21] + "..."
            raise InvalidInput(f"{option} {shown}: out of range, give {_num(low)} to {_num(high)}")


def _num(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:g}"


def check_files(files: Sequence[tuple[str, Path]]) -> None:
    """Refuse a given file that is too large, not UTF-8 text or nested too deeply (exit 2)."""
    for option, path in files:
        try:
            if not path.is_file():
                continue  # missing files and directories: the command says what it needs
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise InvalidInput(f"{option} {path}: {size} bytes, more than the limit of {MAX_FILE_BYTES} bytes",
                                   hint="give the right file")
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise InvalidInput(f"{option} {path}: cannot read it: {exc.strerror or exc}") from None
        if data.startswith(BINARY_HEADERS):
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{option} {path}: not UTF-8 text (byte {exc.start})",
                               hint="save the file as UTF-8") from None
        depth = nesting(text)
        if depth > MAX_NESTING:
            raise InvalidInput(f"{option} {path}: nested {depth} levels deep, more than {MAX_NESTING}",
                               hint="give the right file")


def nesting(text: str) -> int:
    """The deepest nesting of JSON/YAML flow brackets outside quotes, or of YAML block indentation."""
    deepest = depth = 0
    quote = ""
    escaped = False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = ""
        elif char == '"':
            quote = char
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth = max(0, depth - 1)
    indents: list[int] = []
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped) + (2 if stripped.startswith("- ") else 0)
        while indents and indents[-1] >= indent:
            indents.pop()
        indents.append(indent)
        deepest = max(deepest, len(indents))
    return deepest


def bad_file_error(exc: BaseException, files: Sequence[tuple[str, Path]]) -> InvalidInput | None:
    """An exception a parser raised on a given file, as bad input naming it; None when it is not one."""
    if not files:
        return None  # not about a file the user gave: a bug or a failure, reported as such
    names = {type(c).__name__ for c in type(exc).__mro__}
    if isinstance(exc, RecursionError):
        what = "nested too deeply"
    elif isinstance(exc, UnicodeDecodeError):
        what = "not UTF-8 text"
    elif "DatabaseError" in names and type(exc).__module__.startswith("sqlite3"):
        what = f"not a usable state database ({exc})"
    else:
        return None
    given = ", ".join(f"{option} {path}" for option, path in files)
    return InvalidInput(f"{given}: {what}", hint="give the right file (or remove a garbage state file)")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


# (command path prefix, old option) -> the new spelling; the old one works for one more release
DEPRECATED_OPTIONS: dict[tuple[tuple[str, ...], str], str] = {
    (("lab", "pod"), "--name"): "--lab",
}


def warn_deprecated(path: Sequence[str], options: Sequence[str]) -> None:
    """A warning on stderr for each old spelling of an option on the command line."""
    from terwayctl.cli.options import deprecated

    for (prefix, old), new in DEPRECATED_OPTIONS.items():
        if tuple(path[: len(prefix)]) == prefix and old in options:
            deprecated(f"'{' '.join(prefix)} ... {old}' (the lab's name)", new)
