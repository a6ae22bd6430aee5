"""Forget a deleted pod's marked connections (ctnetlink, raw: no conntrack binary needed).

A hostPort connection that arrived on the primary ENI carries the symmetric-routing connection
mark (docs/datapath.md); its conntrack entry outlives the pod (TCP's TIME_WAIT and established
timeouts are minutes to days) and keeps pointing at the pod's address, which the pool hands to the
next pod. On DEL the datapath deletes the entries with that mark whose original source or reply
source is the pod's IP. The dump is filtered by mark in the kernel (CTA_MARK/CTA_MARK_MASK), so the
cost is the node's hostPort connections, never its whole table; each match is deleted by its
original tuple, copied as the kernel reported it.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from ipaddress import IPv4Address

from terwayctl.kernel import netns
from terwayctl.kernel.netns import Namespace

NETLINK_NETFILTER = 12
_NFNL_SUBSYS_CTNETLINK = 1
_IPCTNL_MSG_CT_NEW, _IPCTNL_MSG_CT_GET, _IPCTNL_MSG_CT_DELETE = 0, 1, 2
_CTA_TUPLE_ORIG, _CTA_TUPLE_REPLY, _CTA_MARK, _CTA_MARK_MASK = 1, 2, 8, 21
_CTA_TUPLE_IP, _CTA_IP_V4_SRC = 1, 1
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_NLM_F_REQUEST, _NLM_F_ACK, _NLM_F_DUMP = 0x1, 0x4, 0x300
_HDR = struct.Struct("=IHHII")
_NFGEN = struct.Struct("=BBH")
_ATTR = struct.Struct("=HH")
_seq = itertools.count(1)
TIMEOUT = 10.0


def _attrs(data: bytes) -> dict[int, bytes]:
    """type -> raw attribute (header included) of a netlink attribute list."""
    found: dict[int, bytes] = {}
    pos = 0
    while pos + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, pos)
        if length < _ATTR.size:
            break
        found[kind & 0x3FFF] = data[pos : pos + length]
        pos += (length + 3) & ~3
    return found


def _source(tuple_attr: bytes | None) -> str | None:
    """The IPv4 source of a CTA_TUPLE_ORIG/REPLY attribute."""
    if tuple_attr is None:
        return None
    ip = _attrs(tuple_attr[_ATTR.size :]).get(_CTA_TUPLE_IP)
    src = _attrs(ip[_ATTR.size :]).get(_CTA_IP_V4_SRC) if ip is not None else None
    return socket.inet_ntoa(src[_ATTR.size : _ATTR.size + 4]) if src is not None and len(src) >= 8 else None


def _message(kind: int, flags: int, seq: int, payload: bytes) -> bytes:
    body = _NFGEN.pack(socket.AF_INET, 0, 0) + payload
    return _HDR.pack(_HDR.size + len(body), (_NFNL_SUBSYS_CTNETLINK << 8) | kind, flags, seq, 0) + body


def _u32_attr(kind: int, value: int) -> bytes:
    return _ATTR.pack(_ATTR.size + 4, kind) + struct.pack("!I", value)


def _replies(sock: socket.socket, seq: int) -> list[tuple[int, bytes]]:
    """(message type, payload after nfgenmsg) of the answers to `seq`, up to DONE or the ACK."""
    out: list[tuple[int, bytes]] = []
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset + _HDR.size <= len(data):
            length, kind, _flags, msg_seq, _pid = _HDR.unpack_from(data, offset)
            if length < _HDR.size:
                raise OSError(errno.EPROTO, "malformed netlink message")
            start, offset = offset + _HDR.size, offset + ((length + 3) & ~3)
            if msg_seq != seq:
                continue
            if kind == _NLMSG_DONE:
                return out
            if kind == _NLMSG_ERROR:
                code = -struct.unpack_from("=i", data, start)[0]
                if code:
                    raise OSError(code, os.strerror(code))
                return out  # the ACK
            out.append((kind & 0xFF, data[start + _NFGEN.size : start - _HDR.size + length]))


def forget_pod(node_netns: Namespace, pod_ip: IPv4Address, mark: int, mask: int) -> int:
    """Delete the conntrack entries carrying `mark`/`mask` from or to (as reply source) `pod_ip`;
    the number deleted. Entries that vanish meanwhile are fine."""
    with netns.entered(netns.path_of(node_netns)):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.settimeout(TIMEOUT)
    try:
        seq = next(_seq) & 0xFFFFFFFF
        sock.send(_message(_IPCTNL_MSG_CT_GET, _NLM_F_REQUEST | _NLM_F_DUMP, seq,
                           _u32_attr(_CTA_MARK, mark) + _u32_attr(_CTA_MARK_MASK, mask)))
        wanted = str(pod_ip)
        doomed = []
        for kind, payload in _replies(sock, seq):
            if kind != _IPCTNL_MSG_CT_NEW:
                continue
            attrs = _attrs(payload)
            if wanted in (_source(attrs.get(_CTA_TUPLE_ORIG)), _source(attrs.get(_CTA_TUPLE_REPLY))):
                doomed.append(attrs[_CTA_TUPLE_ORIG])
        deleted = 0
        for orig in doomed:
            seq = next(_seq) & 0xFFFFFFFF
            sock.send(_message(_IPCTNL_MSG_CT_DELETE, _NLM_F_REQUEST | _NLM_F_ACK, seq, orig))
            try:
                _replies(sock, seq)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                continue
            deleted += 1
        return deleted
    finally:
        sock.close()
