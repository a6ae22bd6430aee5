"""The `terwayctl` command: the root app, its global options and the entry point."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from terwayctl import __version__
from terwayctl.cli import capacity, completion, plan
from terwayctl.cli.context import GlobalOptions
from terwayctl.cli.errors import run_guarded

app = typer.Typer(
    name="terwayctl",
    help="Plan, install, run and diagnose the Terway container network on Alibaba Cloud.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"terwayctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    region: Annotated[
        str | None,
        typer.Option(envvar="ALIBABA_CLOUD_REGION_ID", help="Alibaba Cloud region, e.g. cn-hangzhou."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(envvar="ALIBABA_CLOUD_PROFILE", help="Profile of the aliyun CLI config (~/.aliyun/config.json)."),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(envvar="TERWAYCTL_ENDPOINT", help="OpenAPI endpoint URL for ECS and VPC (e.g. the emulator)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of failures.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Plan, install, run and diagnose the Terway container network on Alibaba Cloud."""
    ctx.obj = GlobalOptions(region=region, profile=profile, endpoint=endpoint, debug=debug)


app.command("capacity")(capacity.capacity)
app.add_typer(plan.app, name="plan")
app.command("completion")(completion.completion)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on `argv` (default sys.argv) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_guarded(
        lambda: app(args=args, prog_name="terwayctl", standalone_mode=False),
        debug="--debug" in args,
    )


def main() -> None:
    sys.exit(run())
