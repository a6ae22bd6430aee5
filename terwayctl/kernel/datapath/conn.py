"""`NodeConn`: the netlink handles of one node namespace, opened once and reused.

A pyroute2 ``IPRoute`` makes the changes; a plain netlink socket reads the rule and route dumps
(`terwayctl.kernel.netlink.dump`, cheap even with hundreds of pods). Both sockets are created
inside the namespace without forking (`netns.netlink_socket`). pyroute2 binds an IPRoute to the
thread that uses it, so a NodeConn is used from one thread only: `setup_pod` and `teardown_pod`
open one per call; the daemon's `Datapath` keeps one on its own worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable

from terwayctl.kernel import netns
from terwayctl.kernel.netlink import RTM_GETROUTE, RTM_GETRULE, Netlink, RawEntry, dump
from terwayctl.kernel.netns import Namespace

DUMP_TIMEOUT = 10.0


class NodeConn:
    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.raw = netns.netlink_socket(ns)
        self.raw.settimeout(DUMP_TIMEOUT)
        try:
            self.nl: Netlink = netns.open_iproute(ns)
        except BaseException:
            self.raw.close()
            raise

    def rules(self) -> list[RawEntry]:
        """Every IPv4 rule of the namespace."""
        return dump(self.raw, RTM_GETRULE)

    def routes(self) -> list[RawEntry]:
        """Every IPv4 route of the namespace, all tables."""
        return dump(self.raw, RTM_GETROUTE)

    def sysctls(self, items: Iterable[tuple[str, str]]) -> None:
        """Set sysctls of the namespace (one entry of this thread; equal values are not written)."""
        netns.write_sysctls(self.ns, items)

    def close(self) -> None:
        try:
            self.nl.close()
        finally:
            self.raw.close()

    def __enter__(self) -> NodeConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
