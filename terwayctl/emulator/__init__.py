"""The local ECS + VPC OpenAPI emulator (docs/emulator.md).

It speaks the RPC wire protocol of the aliyun SDK (signed query, JSON replies, errors with Code,
Message and the real HTTP status), keeps its world in SQLite and can inject latency, throttling
and failures. It imports no SDK, no typer and no rich.
"""

from __future__ import annotations

from terwayctl.emulator.errors import ApiError
from terwayctl.emulator.faults import FaultInjector, FaultSpec
from terwayctl.emulator.hooks import EniHook, EniInfo, NoopEniHook
from terwayctl.emulator.server import ECS_VERSION, VPC_VERSION, Emulator, Response
from terwayctl.emulator.world import DEFAULT_SCENARIO, World, default_world, load_scenario, parse_scenario

__all__ = [
    "DEFAULT_SCENARIO",
    "ECS_VERSION",
    "VPC_VERSION",
    "ApiError",
    "Emulator",
    "EniHook",
    "EniInfo",
    "FaultInjector",
    "FaultSpec",
    "NoopEniHook",
    "Response",
    "World",
    "default_world",
    "load_scenario",
    "parse_scenario",
]
