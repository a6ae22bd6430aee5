"""The typed boundary over pyroute2 (which ships no type information).

`Netlink` lists the part of pyroute2's ``IPRoute`` the datapath calls; `Message` the part of a
netlink message it reads. Values crossing the boundary are ``Any`` and are converted to plain
Python types by the helpers here, so the rest of the package is fully typed.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Any, Protocol

from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTNH_F_ONLINK = 4
NUD_PERMANENT = 0x80
AF_INET = 2

__all__ = ["Message", "Netlink", "NetlinkError", "errcode", "is_absent", "is_exists"]


class Message(Protocol):
    """A parsed netlink message."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def get_attr(self, name: str, default: Any = None) -> Any: ...

    def __getitem__(self, key: str) -> Any: ...


class Netlink(Protocol):
    """What the datapath uses of ``pyroute2.IPRoute``."""

    def link(self, command: str, **kwargs: Any) -> Sequence[Message]: ...

    def addr(self, command: str, **kwargs: Any) -> Sequence[Message]: ...

    def route(self, command: str, **kwargs: Any) -> Sequence[Message]: ...

    def rule(self, command: str, **kwargs: Any) -> Sequence[Message]: ...

    def neigh(self, command: str, **kwargs: Any) -> Sequence[Message]: ...

    def tc(
        self, command: str, kind: str | None = None, index: int = 0, handle: Any = 0, **kwargs: Any
    ) -> Sequence[Message]: ...

    def link_lookup(self, **kwargs: Any) -> list[int]: ...

    def close(self) -> None: ...


def errcode(exc: BaseException) -> int | None:
    """The errno of a NetlinkError (or OSError), else None."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    return exc.errno if isinstance(exc, OSError) else None


def is_absent(exc: BaseException) -> bool:
    """The object asked for is not there (ENOENT, ENODEV, ESRCH, EADDRNOTAVAIL)."""
    return errcode(exc) in {errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL}


def is_exists(exc: BaseException) -> bool:
    return errcode(exc) == errno.EEXIST
