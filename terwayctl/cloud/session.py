"""Build a `CloudClient` from the global options, and the VPC layout read for `plan --live`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

from terwayctl.cloud.api import VpcLayoutReader
from terwayctl.cloud.client import ClientSettings, CloudClient, Endpoint
from terwayctl.cloud.credentials import (
    CredentialFiles,
    CredentialsProvider,
    StaticCredentials,
    resolve_credentials,
    resolve_region,
)
from terwayctl.cloud.errors import CloudNotFound
from terwayctl.cloud.metadata import MetadataService
from terwayctl.core.errors import InvalidInput

ENV_ENDPOINT = "TERWAYCTL_ENDPOINT"


class CloudOptions(Protocol):
    """What the client needs of the CLI's GlobalOptions (terwayctl.cli.context satisfies it)."""

    @property
    def region(self) -> str | None: ...

    @property
    def profile(self) -> str | None: ...

    @property
    def endpoint(self) -> str | None: ...


def parse_endpoint(url: str) -> Endpoint:
    """`http://127.0.0.1:8080` -> Endpoint("127.0.0.1:8080", "http"); a bare host means https."""
    text = url.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(
            f"--endpoint {url!r} is not an http(s) URL",
            hint="e.g. --endpoint http://127.0.0.1:8080 or --endpoint https://ecs-vpc.cn-hangzhou.aliyuncs.com",
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise InvalidInput(
            f"--endpoint {url!r} must be scheme://host[:port] only (no path, query or user)",
            hint="e.g. --endpoint http://127.0.0.1:8080",
        )
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput(f"--endpoint {url!r} has a bad port", hint="e.g. http://127.0.0.1:8080") from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return Endpoint(f"{host}:{port}" if port else host, parts.scheme)


def build_client(
    *,
    region: str | None = None,
    profile: str | None = None,
    endpoint: str | None = None,
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    security_token: str | None = None,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    metadata: MetadataService | None = None,
    settings: ClientSettings | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    credential_path: Path | None = None,
    provider: CredentialsProvider | None = None,
) -> CloudClient:
    """Resolve credentials and region along their chains and return a ready client (close it).

    `endpoint` (else TERWAYCTL_ENDPOINT) is one URL for both ECS and VPC; without it the SDK's
    regional endpoints are used over HTTPS. `environ` defaults to os.environ; `metadata` to the
    instance metadata service as the environment configures it.

    Credentials: `provider` when given; else `credential_path` (the daemon's eni_conf
    credential_path: files re-read when they change, InvalidInput naming the file when one is
    missing or empty) unless explicit keys or an explicit `profile` (--profile) are given; else the
    chain of `resolve_credentials` (explicit keys, environment, profile file, ECS RAM role).
    """
    env = os.environ if environ is None else environ
    service = metadata or MetadataService.from_environ(env)
    if provider is None:
        provider = _provider(
            access_key_id=access_key_id, access_key_secret=access_key_secret, security_token=security_token,
            profile=profile, config_path=config_path, environ=env, metadata=service, credential_path=credential_path,
        )
    resolved_region = resolve_region(
        region=region, profile=profile, config_path=config_path, environ=env, metadata=service
    )
    endpoint_url = endpoint or env.get(ENV_ENDPOINT) or None
    parsed = parse_endpoint(endpoint_url) if endpoint_url else None
    chosen = settings or ClientSettings()

    from terwayctl.cloud.sdk import SdkSession, Timeouts

    session = SdkSession(
        region=resolved_region,
        provider=provider,
        timeouts=Timeouts(chosen.connect_timeout, chosen.read_timeout),
        pool_size=chosen.pool_size,
    )
    return CloudClient(
        session,
        region=resolved_region,
        endpoint=parsed,
        settings=chosen,
        sleep=sleep,
        clock=clock,
        credentials_source=provider.source,
    )


def _provider(
    *,
    access_key_id: str | None,
    access_key_secret: str | None,
    security_token: str | None,
    profile: str | None,
    config_path: Path | None,
    environ: Mapping[str, str],
    metadata: MetadataService,
    credential_path: Path | None,
) -> CredentialsProvider:
    explicit = bool(access_key_id or access_key_secret or profile)
    if credential_path is not None and not explicit:
        return CredentialFiles(credential_path)
    return StaticCredentials(
        resolve_credentials(
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            security_token=security_token,
            profile=profile,
            config_path=config_path,
            environ=environ,
            metadata=metadata,
        )
    )


def client_from_options(
    options: CloudOptions,
    *,
    environ: Mapping[str, str] | None = None,
    metadata: MetadataService | None = None,
    settings: ClientSettings | None = None,
    config_path: Path | None = None,
) -> CloudClient:
    """`build_client` with --region, --profile and --endpoint from the CLI's global options."""
    return build_client(
        region=options.region,
        profile=options.profile,
        endpoint=options.endpoint,
        environ=environ,
        metadata=metadata,
        settings=settings,
        config_path=config_path,
    )


class ExistingVSwitch(NamedTuple):
    cidr: str
    zone_id: str
    vswitch_id: str


class VpcLayout(NamedTuple):
    """A VPC's CIDR and the vSwitches already in it; unpacks as ``(vpc_cidr, vswitches)``."""

    vpc_cidr: str
    vswitches: list[ExistingVSwitch]


def describe_vpc_layout(client: VpcLayoutReader, vpc_id: str) -> VpcLayout:
    """The VPC's primary CIDR and every vSwitch in it (cidr, zone, id), sorted by CIDR."""
    vpcs = [v for v in client.describe_vpcs(vpc_ids=[vpc_id]) if v.vpc_id == vpc_id]
    if not vpcs:
        raise CloudNotFound(
            f"VPC {vpc_id} does not exist in this region",
            hint="check the VPC id and --region",
            code="InvalidVpcId.NotFound",
            action="DescribeVpcs",
        )
    vswitches = [
        ExistingVSwitch(v.cidr_block, v.zone_id, v.vswitch_id)
        for v in client.describe_vswitches(vpc_id=vpc_id)
        if v.vpc_id in ("", vpc_id)
    ]
    return VpcLayout(vpcs[0].cidr_block, sorted(vswitches))
