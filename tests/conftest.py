"""Shared fixtures. Each area keeps its fixtures in tests/fixtures/<area>.py, loaded here."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import pytest

from terwayctl.cli.app import run

pytest_plugins: list[str] = ["tests.fixtures.cloud", "tests.fixtures.emulator", "tests.fixtures.kube", "tests.fixtures.netns", "tests.fixtures.node", "tests.fixtures.doctor", "tests.fixtures.lab",
                            "tests.vswitch_support"]


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Run terwayctl in-process through the real entry point (error handler included)."""

    def invoke(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = run(list(args))
        return CliResult(code, out.getvalue(), err.getvalue())

    return invoke
