"""Generate docs/cli-reference.md and completions/ from the app itself.

`python -m terwayctl.cli.docgen` rewrites them; the tests fail when the checked-in copies differ.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from terwayctl.cli.app import full_command
from terwayctl.cli.completion import Shell, completion_script

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path("docs/cli-reference.md")
COMPLETIONS = {shell.value: Path(f"completions/terwayctl.{shell.value}") for shell in Shell}


def walk(command: Any, path: tuple[str, ...] = ("terwayctl",)) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group, depth first, in name order."""
    yield path, command
    for name in sorted(getattr(command, "commands", {})):
        yield from walk(command.commands[name], (*path, name))


def _param_line(param: Any) -> str:
    if getattr(param, "param_type_name", "") == "argument":
        name = f"`{param.name.upper()}`" + (" (repeatable)" if getattr(param, "nargs", 1) == -1 else "")
    else:
        name = ", ".join(f"`{opt}`" for opt in [*param.opts, *getattr(param, "secondary_opts", [])])
        if not getattr(param, "is_flag", False) and param.metavar:
            name += f" {param.metavar}"
    help_text = getattr(param, "help", None) or ""
    default = param.default
    extra = ""
    if param.required:
        extra = " Required."
    elif default not in (None, False, (), []) and not callable(default):
        shown = getattr(default, "value", default)
        extra = f" Default: `{shown}`."
    envvar = getattr(param, "envvar", None)
    if envvar:
        extra += f" Env: `{envvar}`."
    return f"- {name}: {help_text}{extra}".rstrip()


def reference() -> str:
    lines = [
        "# terwayctl command reference",
        "",
        "Generated from the app by `python -m terwayctl.cli.docgen`; do not edit by hand.",
        "",
    ]
    for path, command in walk(full_command()):
        lines += [f"{'#' * min(len(path) + 1, 4)} `{' '.join(path)}`", ""]
        lines += [(command.help or "").strip(), ""]
        params = [p for p in command.params if p.name not in ("help",) and not getattr(p, "hidden", False)]
        lines += [_param_line(p) for p in params]
        if params:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def generated() -> dict[Path, str]:
    files = {REFERENCE: reference()}
    files.update({path: completion_script(shell) for shell, path in COMPLETIONS.items()})
    return files


def main() -> None:
    for relative, text in generated().items():
        target = ROOT / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        print(f"wrote {relative}", file=sys.stderr)


if __name__ == "__main__":
    main()
