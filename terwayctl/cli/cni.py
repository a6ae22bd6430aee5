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
    from terwayctl.cni.client import main

    raise typer.Exit(main(os.environ, sys.stdin.buffer, sys.stdout, sys.stderr))


@cni.command("build-shim")
def build_shim(
    out: Annotated[Optional[Path], typer.Option("--out", metavar="FILE", help="Where to write the shim (default: a cache under ~/.cache/terwayctl).")] = None,  # noqa: UP045
) -> None:
    """Build the static CNI shim 'terway' (needs Go; offline, reproducible) and print its path."""
    from terwayctl.cni.shim import ShimUnavailable, build, ensure_built
    from terwayctl.core.errors import TerwayctlError

    try:
        path = build(out) if out is not None else ensure_built()
    except ShimUnavailable as exc:
        raise TerwayctlError(exc.message, hint=exc.hint) from None
    typer.echo(str(path))


@cni.command("install")
def install(
    bin_dir: Annotated[Path, typer.Option("--bin-dir", metavar="DIR", help="CNI bin dir: the shim and the chained plugins go here.")] = Path("/opt/cni/bin"),
    conf_dir: Annotated[Optional[Path], typer.Option("--conf-dir", metavar="DIR", help="CNI conf dir: the conflist goes here.")] = None,  # noqa: UP045
    conflist: Annotated[Optional[Path], typer.Option("--conflist", metavar="FILE", help="The conflist to install (e.g. 10-terway.conflist).")] = None,  # noqa: UP045
    shim: Annotated[Optional[Path], typer.Option("--shim", metavar="FILE", help="The static CNI shim to install as 'terway' (without it: the Python debugging client).")] = None,  # noqa: UP045
    plugin_dir: Annotated[Path, typer.Option("--plugin-dir", metavar="DIR", help="Where the chained plugins of the conflist (portmap, bandwidth, ...) are copied from.")] = Path("/usr/lib/cni"),
) -> None:
    """Copy the static shim as 'terway' and every plugin the --conflist chains into --bin-dir, write
    the conflist into --conf-dir and remove a stale 10-terway.conf of terway's, each atomically."""
    from terwayctl.cni.install import InstallError
    from terwayctl.cni.install import install as do_install

    if conflist is not None and conf_dir is None:
        conf_dir = Path("/etc/cni/net.d")
    try:
        changed = do_install(bin_dir, conf_dir if conflist is not None else None, conflist,
                             shim=shim, plugin_dir=plugin_dir)
    except InstallError as exc:
        raise InvalidInput(str(exc), hint=exc.hint or None) from None
    for path in changed:
        typer.echo(f"{'installed' if path.exists() else 'removed'} {path}")
    if shim is None:
        typer.echo("warning: 'terway' is the Python debugging client (no --shim): it needs this Python "
                   "on the host; kubelet on a real node needs the static shim", err=True)
