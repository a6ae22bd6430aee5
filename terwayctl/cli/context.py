"""Global options, collected once by the root callback and handed to commands via ctx.obj."""

from __future__ import annotations

from dataclasses import dataclass

import typer


@dataclass(frozen=True)
class GlobalOptions:
    """Options every command may read; None means 'resolve from the environment or profile'."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = "kube-system"
    region: str | None = None
    profile: str | None = None
    endpoint: str | None = None
    debug: bool = False


def global_options(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, GlobalOptions) else GlobalOptions()
