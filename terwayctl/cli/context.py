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


def offline_region(options: GlobalOptions) -> str | None:
    """The region from --region, ALIBABA_CLOUD_REGION_ID or the aliyun CLI profile; never the network."""
    if options.region:
        return options.region
    from terwayctl.cloud.credentials import find_region
    from terwayctl.cloud.metadata import MetadataService

    return find_region(region=None, profile=options.profile, metadata=MetadataService(enabled=False))
