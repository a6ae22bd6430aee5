"""Options shared by commands, as typed aliases, and the output formats."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class TabularOutput(StrEnum):
    """Output formats of commands whose rows are flat enough for CSV."""

    table = "table"
    json = "json"
    yaml = "yaml"
    csv = "csv"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="Output format.", case_sensitive=False)
]
TabularOutputOption = Annotated[
    TabularOutput, typer.Option("--output", "-o", help="Output format.", case_sensitive=False)
]
