"""The CLI's shared behaviour: version, help texts, completion, error handling, lean start-up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from terwayctl import __version__
from terwayctl.cli import docgen
from terwayctl.cli.app import full_app
from terwayctl.cli.errors import run_guarded
from terwayctl.core.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[1]


def terwayctl_command() -> list[str]:
    """The installed console script if there is one, else the module."""
    script = shutil.which("terwayctl")
    return [script] if script else [sys.executable, "-m", "terwayctl"]


def test_version(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"terwayctl {__version__}"


def test_no_arguments_shows_help_and_exits_2(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli()
    assert result.exit_code == 2
    assert "capacity" in result.stdout + result.stderr


def test_every_command_has_help_text() -> None:
    for path, command in docgen.walk(typer.main.get_command(full_app())):
        assert (command.help or "").strip(), f"{' '.join(path)} has no help text"
        for param in command.params:
            if param.name != "help":
                assert getattr(param, "help", None), f"{' '.join(path)} {param.name} has no help text"


def test_generated_reference_and_completions_are_current() -> None:
    for relative, text in docgen.generated().items():
        assert (ROOT / relative).read_text(encoding="utf-8") == text, (
            f"{relative} is stale: run python -m terwayctl.cli.docgen"
        )


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(cli, shell: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("completion", shell)
    assert result.exit_code == 0
    assert "_TERWAYCTL_COMPLETE" in result.stdout


def test_completion_bad_shell(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("completion", "tcsh")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")


def test_completion_completes_commands_for_real() -> None:
    env = {**os.environ, "_TERWAYCTL_COMPLETE": "complete_bash", "COMP_WORDS": "terwayctl cap", "COMP_CWORD": "1"}
    done = subprocess.run(terwayctl_command(), env=env, capture_output=True, text=True, timeout=60, check=False)
    assert "capacity" in done.stdout


def test_expected_failure_without_traceback() -> None:
    def boom() -> object:
        raise InvalidInput("bad thing", hint="do the good thing")

    assert run_guarded(boom, debug=False) == 2


def test_internal_error_exits_1_and_hides_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> object:
        raise RuntimeError("kaput")

    assert run_guarded(boom, debug=False) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: internal error: RuntimeError: kaput")
    assert "Traceback" not in err
    assert run_guarded(boom, debug=True) == 1
    assert "Traceback" in capsys.readouterr().err


def test_installed_command_end_to_end() -> None:
    ok = subprocess.run([*terwayctl_command(), "capacity", "ecs.g6.xlarge", "-o", "json"], capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)[0]["shared_eni_pods"] == 20
    bad = subprocess.run([*terwayctl_command(), "capacity", "ecs.g6.xlargee"], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "error: unknown instance type 'ecs.g6.xlargee' (not in the catalog: embedded catalog 2026-11)",
        "hint: did you mean ecs.g6.xlarge, ecs.g6t.xlarge, ecs.g6r.xlarge?",
    ]


def test_startup_imports_stay_lean() -> None:
    """The CLI module must not pull heavy libraries at import time (docs/architecture.md, Start-up)."""
    heavy = ["rich", "yaml", "pydantic", "aliyunsdkcore", "alibabacloud_credentials", "tenacity", "kubernetes", "pyroute2", "jinja2",
             "grpc", "google.protobuf"]
    code = (
        "import sys, terwayctl.cli.app; "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""
