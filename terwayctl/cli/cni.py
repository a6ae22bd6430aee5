"""`terwayctl cni`: run the CNI plugin (the same program as the `terway` binary) by hand, or
`terwayctl cni install` it into a node's CNI directories (the DaemonSet's init container).

The plugin reads CNI_COMMAND and the other CNI_* variables from the environment and the network
config from stdin, and prints a CNI result or error object (docs/cni.md).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from terwayctl.core.errors import InvalidInput

cni = typer.Typer(
    help="Run the CNI plugin (CNI_* variables from the environment, the network config on stdin), "
    "or install it with 'install'.",
    invoke_without_command=True,
)


@cni.callback()
def run_plugin(ctx: typer.Context) -> None:
    """Run the CNI plugin: CNI_* variables from the environment, the network config on stdin."""
    if ctx.invoked_subcommand is not None:
        return
    from terwayctl.cni.main import main

    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    raise typer.Exit(main(os.environ, stdin, sys.stdout))


@cni.command("install")
def install(
    bin_dir: Annotated[Path, typer.Option("--bin-dir", help="CNI bin dir: the 'terway' launcher goes here.")] = Path("/opt/cni/bin"),
    conf_dir: Annotated[Optional[Path], typer.Option("--conf-dir", help="CNI conf dir: the conflist goes here.")] = None,  # noqa: UP045
    conflist: Annotated[Optional[Path], typer.Option("--conflist", help="The conflist to install (e.g. 10-terway.conflist).")] = None,  # noqa: UP045
) -> None:
    """Write the 'terway' plugin launcher (this Python with -I -S, no site-packages) into --bin-dir
    and the --conflist into --conf-dir, each atomically."""
    from terwayctl.cni.install import InstallError
    from terwayctl.cni.install import install as do_install

    if conflist is not None and conf_dir is None:
        conf_dir = Path("/etc/cni/net.d")
    try:
        written = do_install(bin_dir, conf_dir if conflist is not None else None, conflist)
    except InstallError as exc:
        raise InvalidInput(str(exc)) from None
    for path in written:
        typer.echo(f"installed {path}")
