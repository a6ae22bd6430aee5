"""What the daemon uses of ECS and VPC: the cloud layer's own narrow Protocols.

`terwayctl.cloud.client.CloudClient` satisfies `EniCloud`. Errors are read through
`terwayctl.core.errors` (every cloud error is a `TerwayctlError`, quota errors a `QuotaExceeded`)
and their `code` attribute (the API error code).
"""

from __future__ import annotations

from typing import Protocol

from terwayctl.cloud.api import EcsApi, Observable, VpcLayoutReader


class EniCloud(EcsApi, VpcLayoutReader, Observable, Protocol):
    """The ECS/VPC calls of the pool, reconciliation and `ipam check`, and request metering."""


def error_code(exc: BaseException) -> str:
    """The API error code of a cloud error ('' for anything else)."""
    code = getattr(exc, "code", "")
    return code if isinstance(code, str) else ""
