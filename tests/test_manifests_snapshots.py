"""Rendered YAML compared byte for byte with tests/snapshots/.

After an intended change, regenerate and review the diff:
    TERWAYCTL_UPDATE_SNAPSHOTS=1 python -m pytest -q tests/test_manifests_snapshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from terwayctl.manifests import load_values, render_yaml

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("TERWAYCTL_UPDATE_SNAPSHOTS") == "1"
# A fixed image: the default one carries the package version, which must not churn the snapshots.
IMAGE = "image=registry.example.com/terwayctl/terwayctl:v0.0.0-snapshot"
CASES = {
    "render-default": [IMAGE, "security_groups=sg-bp1snapshot", "vswitches.cn-hangzhou-i=vsw-bp1snapshoti"],
    "render-eni-full": [
        IMAGE,
        "mode=eni",
        "region_id=cn-hangzhou",
        "vswitches.cn-hangzhou-i=vsw-bp1snapshoti,vsw-bp1snapshotii",
        "vswitches.cn-hangzhou-j=vsw-bp1snapshotj",
        "security_groups=sg-bp1snapshot,sg-bp1snapshotb",
        "ip_stack=ipv4",
        "service_cidr=172.21.0.0/20",
        "pool.max_size=10",
        "pool.min_size=2",
        "pool.sync_period=30s",
        "vswitch_selection_policy=random",
        "network_policy=false",
        "host_port=true",
        "bandwidth=true",
        "credentials.secret=terway-credentials",
    ],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_snapshot(name: str) -> None:
    rendered = render_yaml(load_values(None, CASES[name]))
    path = SNAPSHOTS / f"{name}.yaml"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with TERWAYCTL_UPDATE_SNAPSHOTS=1"
    assert rendered == path.read_text(encoding="utf-8"), (
        f"{path.name} differs from the render: if intended, rerun with TERWAYCTL_UPDATE_SNAPSHOTS=1 and review the diff"
    )


def test_snapshot_through_the_cli_is_the_same(cli) -> None:  # type: ignore[no-untyped-def]
    args = [arg for value in CASES["render-default"] for arg in ("--set", value)]
    result = cli("render", *args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (SNAPSHOTS / "render-default.yaml").read_text(encoding="utf-8")


def test_no_stray_snapshots() -> None:
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.yaml")) == sorted(CASES)
