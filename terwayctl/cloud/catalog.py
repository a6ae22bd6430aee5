"""The live instance-type catalog: every DescribeInstanceTypes page as a core Catalog."""

from __future__ import annotations

from terwayctl.cloud.api import InstanceTypeSource
from terwayctl.core.catalog import Catalog


def live_source(region: str) -> str:
    return f"live {region}"


def fetch_catalog(api: InstanceTypeSource) -> Catalog:
    """All instance types of the client's region (all pages), sorted by name, source "live <region>"."""
    by_name = {info.instance_type_id: info.to_instance_type() for info in api.describe_instance_types()}
    types = tuple(by_name[name] for name in sorted(by_name) if name)
    return Catalog(types=types, source=live_source(api.region))
