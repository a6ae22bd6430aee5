"""The one place where failures become `error:` / `hint:` lines and exit codes."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import TextIO

import typer

from terwayctl.core.errors import TerwayctlError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def print_error(message: str, hint: str | None = None, stream: TextIO | None = None) -> None:
    """`error:` and `hint:`, one line each (a parser's multi-line message is joined)."""
    out = stream or sys.stderr
    print(f"error: {one_line(message)}", file=out)
    if hint:
        print(f"hint: {one_line(hint)}", file=out)


def one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def run_guarded(invoke: Callable[[], object], debug: bool) -> int:
    """Run the click command; translate every outcome into an exit code, never a traceback."""
    try:
        result = invoke()
    except typer.Abort:
        print_error("aborted")
        return 130
    except typer.TyperException as exc:
        return _report_typer_error(exc)
    except TerwayctlError as exc:
        if debug:
            traceback.print_exc()
        print_error(exc.message, exc.hint)
        return exc.exit_code
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the last line of defence for the user
        if debug:
            traceback.print_exc()
        print_error(
            f"internal error: {type(exc).__name__}: {exc}",
            None if debug else "rerun with --debug for the traceback and report it",
        )
        return EXIT_FAILURE
    return result if isinstance(result, int) else EXIT_OK


def _report_typer_error(exc: typer.TyperException) -> int:
    """Usage errors from the parser: one line, a hint pointing at the command's help."""
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else exc.message
    code = int(getattr(exc, "exit_code", EXIT_FAILURE))
    ctx = getattr(exc, "ctx", None)
    hint = f"see '{ctx.command_path} --help'" if code == EXIT_USAGE and ctx is not None else None
    print_error(str(message), hint)
    return code
