"""The only module that enters a network namespace.

A namespace is named by a name (``/run/netns/<name>``, as ``ip netns`` keeps them) or by a path
(``/proc/<pid>/ns/net``, the ``CNI_NETNS`` a runtime hands over). Prefer not entering at all:

- netlink work goes through `iproute(ns)`, a pyroute2 ``IPRoute`` over a netlink socket that
  `netlink_socket` creates inside the namespace (a socket keeps the namespace it was created in).
  The calling thread enters the namespace only for the socket(2) call; nothing forks (pyroute2's
  own ``IPRoute(netns=...)`` forks a helper process per socket, about 5 ms each);
- sysctls through /proc/sys: `write_sysctls` enters briefly in the calling thread (one entry
  for several keys, each read before it is written); `run_in`, `read_sysctl`, `write_sysctl` and
  `socket_in` enter in a dedicated thread that exits afterwards.

`entered(ns)` is the low-level context manager both use. It calls setns(2) on the *calling thread*
only and always restores the thread's original namespace, also on error. Caveat: setns is per
thread, so code running in other threads is not moved, and anything that hands work to another
thread (thread pools, asyncio executors, pyroute2's own helpers) inside the block runs in the
wrong namespace. Keep such blocks short and synchronous, and prefer `run_in`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2 import netns as _pyroute2_netns

from terwayctl.kernel.netlink import Netlink

NETNS_RUN_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0

T = TypeVar("T")
Namespace = str | Path
"""A namespace name (``twtest-1a2b3c4d``) or a path to a namespace file."""

_libc: ctypes.CDLL | None = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def path_of(ns: Namespace) -> Path:
    """The file of a namespace: a bare name lives in /run/netns, anything with a slash is a path."""
    text = str(ns)
    if "/" in text:
        return Path(text)
    if not text or text in {".", ".."}:
        raise ValueError(f"invalid namespace name {text!r}")
    return NETNS_RUN_DIR / text


def exists(ns: Namespace) -> bool:
    """True when the namespace file exists and is a network namespace."""
    path = path_of(ns)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        # an nsfs file (bind mount or /proc/<pid>/ns/net) lives on another device than its directory;
        # a bare placeholder left in /run/netns by a crashed ``ip netns add`` does not
        return os.fstat(fd).st_dev != os.stat(path.parent).st_dev
    finally:
        os.close(fd)


def create(name: str) -> Path:
    """Create the named namespace (like ``ip netns add``); an existing one is kept. Returns its path."""
    path = path_of(name)
    if path.parent != NETNS_RUN_DIR:
        raise ValueError(f"create takes a bare name, got {name!r}")
    if not exists(name):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a stale placeholder without a mount
        _pyroute2_netns.create(name)
    return path


def delete(name: str) -> bool:
    """Delete the named namespace (like ``ip netns del``). False when it did not exist."""
    path = path_of(name)
    if not path.exists():
        return False
    try:
        _pyroute2_netns.remove(name)
    except FileNotFoundError:
        return False
    return True


def list_named(prefix: str = "") -> list[str]:
    """Names in /run/netns starting with `prefix`, sorted."""
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(prefix))


@contextlib.contextmanager
def entered(ns: Namespace) -> Iterator[None]:
    """Move the calling thread into `ns` for the block; always move it back (see module caveat)."""
    target = os.open(path_of(ns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        original = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(original)
        finally:
            os.close(original)
    finally:
        os.close(target)


def run_in(ns: Namespace, fn: Callable[[], T], *, timeout: float = 30.0) -> T:
    """Run `fn()` in a dedicated thread inside `ns` and return its result (or raise its error)."""

    def worker() -> T:
        with entered(ns):
            return fn()

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netns:{ns}")
    try:
        return pool.submit(worker).result(timeout)
    finally:
        pool.shutdown(wait=False)


def socket_in(ns: Namespace, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket living in `ns` (a socket keeps the namespace it was created in)."""
    return run_in(ns, lambda: socket.socket(family, kind, proto))


def read_sysctl(ns: Namespace, key: str) -> str:
    """Read a sysctl such as ``net.ipv4.ip_forward`` as seen inside `ns`."""
    path = _sysctl_path(key)
    return run_in(ns, lambda: path.read_text().strip())


def write_sysctls(ns: Namespace, items: Iterable[tuple[str, str]]) -> int:
    """Write several sysctls inside `ns` with one entry of the calling thread (short and
    synchronous, see `entered`); a key already holding its value is not written. Returns how
    many were written."""
    paths = [(_sysctl_path(key), value) for key, value in items]
    written = 0
    with entered(ns):
        for path, value in paths:
            if path.read_text().strip() != value:
                path.write_text(value)
                written += 1
    return written


def write_sysctl(ns: Namespace, key: str, value: str) -> None:
    """Write a sysctl inside `ns` (net.* sysctls are per namespace); no write when already equal."""
    path = _sysctl_path(key)

    def write() -> None:
        if path.read_text().strip() != value:
            path.write_text(value)

    run_in(ns, write)


def _sysctl_path(key: str) -> Path:
    """``net.ipv4.ip_forward`` or, for interface names with dots, ``net/ipv4/conf/eth0.100/rp_filter``."""
    if ".." in key.split("/") or key.startswith(("/", ".")) or "/." in key:
        raise ValueError(f"invalid sysctl key {key!r}")
    return Path("/proc/sys") / (key if "/" in key else key.replace(".", "/"))


def netlink_socket(ns: Namespace) -> socket.socket:
    """A NETLINK_ROUTE socket living in `ns` (never creates the namespace), made without forking:
    the calling thread enters `ns` for the socket(2) call only."""
    path = path_of(ns)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "network namespace not found", str(path))
    with entered(path):
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)


def open_iproute(ns: Namespace) -> Netlink:
    """A pyroute2 IPRoute bound to `ns`; the caller closes it. pyroute2 binds an IPRoute to the
    thread that first uses it: keep each one on one thread."""
    sock = netlink_socket(ns)
    try:
        return IPRoute(fileno=sock.detach())  # type: ignore[no-any-return]
    except BaseException:
        sock.close()
        raise


@contextlib.contextmanager
def iproute(ns: Namespace) -> Iterator[Netlink]:
    """A pyroute2 IPRoute bound to `ns` (never creates it); closed at the end of the block."""
    ipr = open_iproute(ns)
    try:
        yield ipr
    finally:
        ipr.close()


def command(ns: Namespace, argv: list[str]) -> list[str]:
    """The argv that runs `argv` inside `ns` as a separate process (``ip netns exec`` / nsenter)."""
    path = path_of(ns)
    if path.parent == NETNS_RUN_DIR:
        return ["ip", "netns", "exec", path.name, *argv]
    nsenter = shutil.which("nsenter") or "nsenter"
    return [nsenter, f"--net={path}", "--", *argv]
