"""The real node reader and prober: sysctls, nft / iptables dumps, /proc, the datapath, the daemon.

Everything that enters a namespace goes through `terwayctl.kernel.netns` (sysctls and sockets via
`run_in` / `socket_in`, commands via `netns.command`, i.e. ``ip netns exec``). The current namespace
(netns None) is read directly, without setns, so an unprivileged user can run the checks that do
not need root. Imported at run time only (see `doctor.sources._system`).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import socket
import stat
import struct
import subprocess
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from terwayctl.cni import protocol
from terwayctl.core.errors import TerwayctlError
from terwayctl.doctor.model import CheckSkipped
from terwayctl.doctor.readers import (
    Attempt,
    DaemonAllocation,
    DaemonNotAnswering,
    DaemonStatus,
    DatapathState,
    PublishedPort,
    Target,
)
from terwayctl.kernel import netns as nsmod

COMMAND_TIMEOUT = 10.0
PROBE_PREFIX = "twdoctor-"
POD_GATEWAY = "169.254.1.1"
LISTEN = "0A"


def _proc_net(ns: str | None, name: str) -> str | None:
    """/proc/net/<name> as seen in `ns` (the calling thread's view: /proc/thread-self/net)."""

    def read() -> str | None:
        try:
            return Path(f"/proc/thread-self/net/{name}").read_text()
        except OSError:
            return None

    return read() if ns is None else nsmod.run_in(ns, read)


def _run(ns: str | None, argv: list[str], timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
    full = argv if ns is None else nsmod.command(ns, argv)
    return subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)


def _listening_tcp(ns: str | None) -> dict[int, int]:
    """socket inode -> port of TCP sockets in LISTEN state in `ns`."""
    found: dict[int, int] = {}
    for name in ("tcp", "tcp6"):
        text = _proc_net(ns, name) or ""
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN:
                found[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def _arg(argv: list[str], flag: str) -> str | None:
    for i, value in enumerate(argv[:-1]):
        if value in (flag, "-" + flag):
            return argv[i + 1]
    return None


class SystemNode:
    """`NodeReader` of one namespace: a name in /run/netns, a path, or None for the current one."""

    def __init__(self, ns: str | None) -> None:
        if ns is not None and not nsmod.exists(ns):
            raise CheckSkipped(f"network namespace {ns} does not exist")
        self.ns = ns

    @property
    def netns(self) -> str:
        return "current" if self.ns is None else self.ns

    def sysctl(self, key: str) -> str | None:
        try:
            if self.ns is None:
                return (Path("/proc/sys") / key.replace(".", "/")).read_text().strip()
            return nsmod.read_sysctl(self.ns, key)
        except FileNotFoundError:
            return None

    def nft_ruleset(self) -> list[dict[str, Any]] | None:
        if shutil.which("nft") is None:
            return None
        done = _run(self.ns, ["nft", "-j", "list", "ruleset"])
        if done.returncode != 0:
            if "not permitted" in done.stderr.lower():
                raise CheckSkipped(f"nft -j list ruleset needs root: {done.stderr.strip()}")
            raise TerwayctlError(f"nft -j list ruleset failed in netns {self.netns}: {done.stderr.strip()}",
                                 "nft --version; run doctor as root")
        try:
            data = json.loads(done.stdout or '{"nftables": []}')
        except ValueError as exc:
            raise TerwayctlError(f"nft -j list ruleset printed no readable JSON in netns {self.netns} ({exc})",
                                 "nft --version; a mismatch of nft and the kernel's nf_tables shows this way") from None
        items = data.get("nftables", []) if isinstance(data, dict) else []
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    def iptables_legacy_save(self) -> str | None:
        if shutil.which("iptables-legacy-save") is None:
            return None
        tables = (_proc_net(self.ns, "ip_tables_names") or "").split()
        if not tables:
            return None  # no legacy table exists here; listing would create one
        done = _run(self.ns, ["iptables-legacy-save"])
        if done.returncode != 0:
            raise CheckSkipped(f"iptables-legacy-save failed: {done.stderr.strip()}")
        return done.stdout

    def docker_proxies(self) -> list[PublishedPort]:
        listening = _listening_tcp(self.ns)
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if not argv or "docker-proxy" not in Path(argv[0]).name:
                continue
            try:
                inodes = [int(os.readlink(fd)[8:-1]) for fd in (proc / "fd").iterdir()
                          if os.readlink(fd).startswith("socket:[")]
            except OSError:
                continue
            ports = sorted({listening[i] for i in inodes if i in listening})
            destination = f"{_arg(argv, '-container-ip') or '?'}:{_arg(argv, '-container-port') or '?'}"
            found += [PublishedPort(_arg(argv, "-proto") or "tcp", port, destination, f"docker-proxy pid {proc.name}")
                      for port in ports]
        return found

    def datapath(self) -> DatapathState:
        from terwayctl.kernel.datapath import FROM_POD_PRIORITY, TO_POD_PRIORITY, inspect_node

        state = inspect_node(self.ns or "/proc/self/ns/net")
        return DatapathState(
            veths={v.name: tuple(str(ip) for ip in v.pod_ips) for v in state.veths},
            to_pod_rules=frozenset(str(r.dst) for r in state.rules if r.priority == TO_POD_PRIORITY and r.dst),
            from_pod_rules={str(r.src): int(r.table) for r in state.rules if r.priority == FROM_POD_PRIORITY and r.src},
            eni_tables={t.table: t.device for t in state.eni_tables},
        )

    def daemon_status(self, socket_path: str, timeout: float) -> DaemonStatus:
        path = Path(socket_path)
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            raise DaemonNotAnswering(f"no socket at {socket_path}: the daemon is not running", missing=True) from None
        except OSError as exc:
            raise DaemonNotAnswering(f"cannot look at {socket_path}: {exc.strerror or exc}") from None
        if not stat.S_ISSOCK(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a symbolic link" if stat.S_ISLNK(mode) else \
                "a regular file" if stat.S_ISREG(mode) else "not a socket"
            if not (stat.S_ISLNK(mode) and path.exists() and stat.S_ISSOCK(path.stat().st_mode)):
                raise DaemonNotAnswering(f"{socket_path} exists but is {kind}, not a socket: the daemon cannot listen "
                                         "there and no client can reach it", not_socket=True)
        request = protocol.Request(verb="STATUS", cni_version="1.1.0")
        try:
            reply = protocol.call(request, socket_path, timeout)
        except protocol.ExchangeError as exc:
            stale = "refused" in exc.reason.lower()
            why = (f"{socket_path} is a socket nobody listens on (connection refused): the daemon is not running "
                   "(it died without removing its socket)") if stale else f"STATUS failed: {exc.reason}"
            raise DaemonNotAnswering(why, stale=stale) from None
        if not reply.ok:
            error = reply.error
            return DaemonStatus(ready=False, detail={"code": error.code if error else None,
                                                     "msg": error.msg if error else ""})
        return _detailed_status(socket_path, timeout)

    def ipvlan_supported(self) -> bool:
        from terwayctl.kernel.datapath import ipvlan_supported

        return bool(ipvlan_supported())

    def kernel_release(self) -> str:
        return platform.release()


def _detailed_status(socket_path: str, timeout: float) -> DaemonStatus:
    """The daemon's status document (``terwayctl daemon status``), when this daemon has one."""
    try:
        from terwayctl.node.client import ask_status
    except ImportError:  # pragma: no cover - the daemon package is optional for doctor
        return DaemonStatus(ready=True)
    try:
        document = ask_status(Path(socket_path), timeout)
    except Exception:  # noqa: BLE001 - an older daemon answers STATUS without the detail
        return DaemonStatus(ready=True)
    raw = document.get("allocations")
    allocations = None
    if isinstance(raw, list):
        allocations = tuple(DaemonAllocation(str(a.get("ip", "")), str(a.get("pod", "")), str(a.get("eni_id", "")))
                            for a in raw if isinstance(a, dict) and a.get("ip"))
    return DaemonStatus(ready=bool(document.get("ready", True)), mode=str(document.get("mode") or ""),
                        allocations=allocations, detail=document)


# --- probes ----------------------------------------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _socket(ns: str | None, family: int, kind: int, proto: int = 0) -> socket.socket:
    return socket.socket(family, kind, proto) if ns is None else nsmod.socket_in(ns, family, kind, proto)


def _icmp_echo(ns: str | None, host: str, timeout: float) -> tuple[bool, str]:
    ident = secrets.randbits(16)
    payload = b"terwayctl-doctor"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, 1) + payload
    started = time.monotonic()
    with _socket(ns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        try:
            sock.sendto(packet, (host, 0))
        except OSError as exc:
            return False, exc.strerror or str(exc)
        deadline = started + timeout
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (src, _) = sock.recvfrom(2048)
            except TimeoutError:
                break
            ihl = (data[0] & 0x0F) * 4
            kind, code, _, rid, _ = struct.unpack("!BBHHH", data[ihl: ihl + 8])
            if kind == 0 and rid == ident and src == host:
                return True, f"echo reply in {(time.monotonic() - started) * 1000:.0f} ms"
            if kind == 3:
                return False, f"destination unreachable (ICMP code {code}) from {src}"
    return False, f"no echo reply within {timeout:g}s"


def _tcp_connect(ns: str | None, host: str, port: int, timeout: float) -> tuple[bool, str]:
    started = time.monotonic()
    with _socket(ns, socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except TimeoutError:
            return False, f"no answer within {timeout:g}s (packets dropped on the way)"
        except ConnectionRefusedError:
            return False, "connection refused (the path works, nothing listens on the port)"
        except OSError as exc:
            return False, exc.strerror or str(exc)
    return True, f"connected in {(time.monotonic() - started) * 1000:.0f} ms"


def attempt(ns: str | None, where: str, target: Target, timeout: float) -> Attempt:
    how = "tcp connect" if target.port else "icmp echo"
    route = _run(ns, ["ip", "-o", "route", "get", target.host], timeout=timeout)
    if route.returncode != 0:
        return Attempt(where, False, how, route.stderr.strip() or "no route", None)
    path = " ".join(route.stdout.split("\\")[0].split())  # the route, without -o's "\ cache" continuation
    if target.port:
        reached, detail = _tcp_connect(ns, target.host, target.port, timeout)
    else:
        reached, detail = _icmp_echo(ns, target.host, timeout)
    return Attempt(where, reached, how, detail, path)


class SystemProber:
    """`Prober`: attempts from the node namespace and from the pod side (--probe-from or a temporary namespace)."""

    def __init__(self, node_ns: str | None, probe_from: str | None, source: str | None) -> None:
        if probe_from is not None and not nsmod.exists(probe_from):
            raise CheckSkipped(f"--probe-from {probe_from}: no such network namespace")
        self.node_ns = node_ns
        self.probe_from = probe_from
        self.source = IPv4Address(source) if source else IPv4Address(f"169.254.199.{secrets.randbelow(240) + 10}")
        self.temporary: str | None = None

    def from_node(self, target: Target, timeout: float) -> Attempt:
        return attempt(self.node_ns, f"node netns {self.node_ns or 'current'}", target, timeout)

    def from_pod(self, target: Target, timeout: float) -> Attempt:
        if self.probe_from is not None:
            return attempt(self.probe_from, f"pod netns {self.probe_from}", target, timeout)
        ns = self._temporary()
        return attempt(ns, f"temporary netns {ns} (source {self.source})", target, timeout)

    def _temporary(self) -> str:
        if self.temporary is None:
            name = f"{PROBE_PREFIX}{secrets.token_hex(4)}"
            nsmod.create(name)
            self.temporary = name
            try:
                _veth_to_node(self.node_ns, name, f"twd{name[-8:]}", self.source)
            except Exception:
                self.close()
                raise
        return self.temporary

    def close(self) -> None:
        if self.temporary is not None:
            nsmod.delete(self.temporary)
            self.temporary = None


def _must(ns: str | None, argv: list[str]) -> str:
    done = _run(ns, argv)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def _veth_to_node(node_ns: str | None, probe_ns: str, host: str, source: IPv4Address) -> None:
    """A pod-like veth: eth0 with source/32 and default via 169.254.1.1 onlink in `probe_ns`."""
    _must(node_ns, ["ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", probe_ns])
    _must(node_ns, ["ip", "link", "set", host, "up"])
    mac = json.loads(_must(node_ns, ["ip", "-j", "link", "show", host]))[0]["address"]
    for argv in (["ip", "link", "set", "lo", "up"], ["ip", "link", "set", "eth0", "up"],
                 ["ip", "addr", "add", f"{source}/32", "dev", "eth0"],
                 ["ip", "route", "add", POD_GATEWAY, "dev", "eth0", "scope", "link"],
                 ["ip", "route", "add", "default", "via", POD_GATEWAY, "dev", "eth0", "onlink"],
                 ["ip", "neigh", "replace", POD_GATEWAY, "lladdr", mac, "dev", "eth0", "nud", "permanent"]):
        _must(probe_ns, argv)
    _must(node_ns, ["ip", "route", "replace", f"{source}/32", "dev", host])
