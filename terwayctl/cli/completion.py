"""`terwayctl completion`: the shell completion script."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

PROG = "terwayctl"
COMPLETE_VAR = "_TERWAYCTL_COMPLETE"


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completion_script(shell: str) -> str:
    # typer has no public call for the script text; this is what its --show-completion prints.
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def completion(
    shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.", case_sensitive=False)],
) -> None:
    """Print the completion script for a shell, e.g. `terwayctl completion bash > /etc/bash_completion.d/terwayctl`."""
    typer.echo(completion_script(shell.value), nl=False)
