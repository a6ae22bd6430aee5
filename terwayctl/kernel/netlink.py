"""The typed boundary over pyroute2 (which ships no type information).

`Netlink` lists the part of pyroute2's ``IPRoute`` the datapath calls; `Message` the part of a
netlink message it reads. Values crossing the boundary are ``Any`` and are converted to plain
Python types by the helpers here, so the rest of the package is fully typed.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from collections.abc import Sequence
from typing import Any, Protocol

from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RTNH_F_ONLINK = 4
NUD_PERMANENT = 0x80
AF_INET = 2

__all__ = ["Message", "Netlink", "NetlinkError", "RawEntry", "dump", "errcode", "is_absent", "is_exists"]


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


# --- raw dumps ----------------------------------------------------------------------------------
#
# pyroute2 decodes every message of a dump into a full object (about 50 us each), so dumping the
# rules and routes of a node with 100 pods costs 10-15 ms, on every ADD and DEL. `dump` reads the
# same dumps from a plain netlink socket and decodes only the header and the attributes the
# datapath compares (a few us per message). Read-only: changes still go through pyroute2.

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLM_F_DUMP_INTR = 0x10
RTM_GETROUTE = 26
RTM_GETRULE = 34
RTA_DST, RTA_SRC, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 2, 4, 5, 6, 15
FRA_DST, FRA_SRC, FRA_PRIORITY, FRA_TABLE = 1, 2, 6, 15

_NLMSGHDR = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg and fib_rule_hdr share this layout
_NLATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_seq = itertools.count(1)


class RawEntry:
    """One route or rule of a raw dump: the header fields and the raw attributes."""

    __slots__ = ("attrs", "dst_len", "family", "src_len", "table")

    def __init__(self, family: int, dst_len: int, src_len: int, table: int, attrs: dict[int, bytes]) -> None:
        self.family, self.dst_len, self.src_len, self.attrs = family, dst_len, src_len, attrs
        table_attr = attrs.get(RTA_TABLE)  # RTA_TABLE == FRA_TABLE; the header holds 252 above 255
        self.table = _U32.unpack_from(table_attr)[0] if table_attr else table

    def ip(self, kind: int) -> str | None:
        value = self.attrs.get(kind)
        return socket.inet_ntoa(value[:4]) if value is not None and len(value) >= 4 else None

    def u32(self, kind: int) -> int | None:
        value = self.attrs.get(kind)
        return _U32.unpack_from(value)[0] if value is not None and len(value) >= 4 else None


def dump(sock: socket.socket, msg_type: int, family: int = AF_INET, *, attempts: int = 3) -> list[RawEntry]:
    """Dump routes (RTM_GETROUTE) or rules (RTM_GETRULE) of `family` over a netlink socket of the
    namespace; a dump the kernel marks interrupted is retried."""
    for _ in range(attempts):
        entries, interrupted = _dump_once(sock, msg_type, family)
        if not interrupted:
            return entries
    raise OSError(errno.EINTR, "netlink dump interrupted repeatedly")


def _dump_once(sock: socket.socket, msg_type: int, family: int) -> tuple[list[RawEntry], bool]:
    seq = next(_seq) & 0xFFFFFFFF
    body = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
    entries: list[RawEntry] = []
    interrupted = False
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                raise OSError(errno.EPROTO, "malformed netlink message")
            start, offset = offset + _NLMSGHDR.size, offset + ((length + 3) & ~3)
            if msg_seq != seq:
                continue  # a late answer to an earlier request
            interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
            if kind == NLMSG_DONE:
                return entries, interrupted
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, start)[0]
                raise OSError(code, os.strerror(code))
            fam, dst_len, src_len, _tos, table = _RTMSG.unpack_from(data, start)[:5]
            attrs: dict[int, bytes] = {}
            pos, end = start + _RTMSG.size, start - _NLMSGHDR.size + length
            while pos + _NLATTR.size <= end:
                alen, atype = _NLATTR.unpack_from(data, pos)
                if alen < _NLATTR.size:
                    break
                attrs[atype & 0x3FFF] = data[pos + _NLATTR.size : pos + alen]
                pos += (alen + 3) & ~3
            entries.append(RawEntry(fam, dst_len, src_len, table, attrs))
