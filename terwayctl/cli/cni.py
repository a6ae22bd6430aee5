"""`terwayctl cni`: run the CNI plugin (the same program as the `terway` binary) by hand.

The plugin reads CNI_COMMAND and the other CNI_* variables from the environment and the network
config from stdin, and prints a CNI result or error object (docs/cni.md).
"""

from __future__ import annotations

import os
import sys

import typer


def cni() -> None:
    """Run the CNI plugin: CNI_* variables from the environment, the network config on stdin."""
    from terwayctl.cni.main import main

    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    raise typer.Exit(main(os.environ, stdin, sys.stdout))
