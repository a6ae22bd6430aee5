"""The datapath's entry points: set up and tear down one pod, whatever the mode.

`setup_pod` is idempotent (a repeated ADD converges to the same state) and undoable: each mode
registers an undo step per resource it creates on an ExitStack, and a failure part-way runs them
(newest first) before the error propagates. `teardown_pod` treats a missing namespace, link, rule
or route as success.

`setup_pod` / `teardown_pod` open the node namespace's netlink sockets for the call and close
them. `Datapath` offers the same two calls for a long-running user (the daemon): it keeps the node
namespace's sockets open and runs every call on one worker thread of its own (pyroute2 binds a
socket to a thread), so a pod costs only its own netlink work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from terwayctl.kernel import netns
from terwayctl.kernel.datapath import check, conntrack, exclusive, hostport, ipvlan, svcveth, veth
from terwayctl.kernel.datapath.conn import NodeConn
from terwayctl.kernel.datapath.model import DatapathError, DatapathMode, PodAttachment, PodNetwork
from terwayctl.kernel.netns import Namespace

log = logging.getLogger("terwayctl.kernel.datapath")
T = TypeVar("T")


def effective_mode(spec: PodNetwork) -> DatapathMode:
    """The mode that will run: ipvlan falls back to veth (logged) where the kernel lacks it."""
    if spec.mode is DatapathMode.IPVLAN and not ipvlan.ipvlan_supported():
        log.warning(
            "ipvlan is not supported by this kernel (%s); falling back to veth for %s",
            ".".join(map(str, ipvlan.kernel_version())),
            spec.host_ifname,
        )
        return DatapathMode.VETH
    return spec.mode


def _setup(conn: NodeConn, pod_netns: Namespace, ifname: str, spec: PodNetwork) -> PodAttachment:
    if not netns.exists(pod_netns):
        raise DatapathError(f"pod network namespace {pod_netns} does not exist")
    mode = effective_mode(spec)
    try:
        with netns.iproute(pod_netns) as pn, contextlib.ExitStack() as undo:
            if mode is DatapathMode.EXCLUSIVE_ENI:
                attachment = exclusive.setup(undo, conn, pod_netns, pn, ifname, spec)
            elif mode is DatapathMode.IPVLAN:
                attachment = ipvlan.setup(undo, conn, pod_netns, pn, ifname, spec)
            else:
                attachment = veth.setup(undo, conn, pod_netns, pn, ifname, spec)
            undo.pop_all()
    except DatapathError:
        raise
    except OSError as exc:
        raise DatapathError(f"setting up {ifname} for {spec.pod_ip} failed: {exc}") from exc
    return attachment


def _teardown(conn: NodeConn | None, pod_netns: Namespace | None, ifname: str, spec: PodNetwork) -> None:
    pod = pod_netns if pod_netns is not None and netns.exists(pod_netns) else None
    if spec.mode is DatapathMode.EXCLUSIVE_ENI:
        if conn is not None:
            exclusive.teardown(conn, pod, ifname, spec)
        else:
            svcveth.teardown(None, pod, spec)
        return
    if spec.mode is DatapathMode.IPVLAN:
        ipvlan.teardown(conn.ns if conn else "", pod, ifname, spec)
    # veth state may exist for an ipvlan spec too (the fallback), and cleaning it is harmless
    veth.teardown(conn, pod, ifname, dataclasses.replace(spec, mode=DatapathMode.VETH))


def setup_pod(node_netns: Namespace, pod_netns: Namespace, ifname: str, spec: PodNetwork) -> PodAttachment:
    """Attach the pod in `pod_netns` (a path such as /proc/<pid>/ns/net, or a name) as `ifname`.

    Raises DatapathError (nothing left behind) when a step fails, e.g. when the pod IP is
    already routed to another pod's veth.
    """
    if not netns.exists(node_netns):
        raise DatapathError(f"node network namespace {node_netns} does not exist")
    if not netns.exists(pod_netns):
        raise DatapathError(f"pod network namespace {pod_netns} does not exist")
    with NodeConn(node_netns) as conn:
        return _setup(conn, pod_netns, ifname, spec)


def teardown_pod(node_netns: Namespace, pod_netns: Namespace | None, ifname: str, spec: PodNetwork) -> None:
    """Detach the pod; `pod_netns` may be None or already gone. Never fails on absence."""
    if not netns.exists(node_netns):
        _teardown(None, pod_netns, ifname, spec)
        return
    with NodeConn(node_netns) as conn:
        _teardown(conn, pod_netns, ifname, spec)


class Datapath:
    """`setup_pod` / `teardown_pod` for one node namespace over netlink sockets kept open.

    Every call runs on the instance's worker thread (calls are serialized; each one is a few
    milliseconds of netlink work). A call that fails with anything but DatapathError reopens the
    sockets on the next call. `close()` closes them and stops the thread.
    """

    def __init__(self, node_netns: Namespace) -> None:
        self.node_netns = node_netns
        self._conn: NodeConn | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datapath")
        self._marks: set[tuple[int, int]] = set()
        """the symmetric-routing connection marks in use (their entries are forgotten on teardown)"""

    def setup_pod(self, pod_netns: Namespace, ifname: str, spec: PodNetwork) -> PodAttachment:
        return self._call(lambda conn: _setup(conn, pod_netns, ifname, spec))

    def teardown_pod(self, pod_netns: Namespace | None, ifname: str, spec: PodNetwork) -> None:
        if not netns.exists(self.node_netns):
            self._worker.submit(self._drop).result()
            _teardown(None, pod_netns, ifname, spec)
            return
        self._call(lambda conn: _teardown(conn, pod_netns, ifname, spec))
        for mark, mask in sorted(self._marks):
            try:
                conntrack.forget_pod(self.node_netns, spec.pod_ip, mark, mask)
            except OSError as exc:  # stale entries expire on their own: never fail a DEL for them
                log.warning("cannot forget the connections of %s (mark %#x): %s", spec.pod_ip, mark, exc)

    def check_pod(self, pod_netns: Namespace, ifname: str, spec: PodNetwork, reported: check.Reported) -> list[str]:
        """CNI CHECK: the differences between the kernel and the pod's datapath (docs/datapath.md)."""
        return self._call(lambda conn: check.check_on(conn, pod_netns, ifname, spec, reported))

    def ensure_symmetric_routing(self, cfg: hostport.SymmetricRouting) -> None:
        """hostPort replies back through the primary ENI (docs/datapath.md); idempotent."""
        self._call(lambda conn: hostport.ensure_symmetric_routing(conn, cfg))
        self._marks.add((cfg.mark, cfg.mask))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # already shut down
            self._worker.submit(self._drop).result()
        self._worker.shutdown(wait=True)

    def _call(self, fn: Callable[[NodeConn], T]) -> T:
        if not netns.exists(self.node_netns):
            raise DatapathError(f"node network namespace {self.node_netns} does not exist")
        return self._worker.submit(self._run, fn).result()

    def _run(self, fn: Callable[[NodeConn], T]) -> T:
        if self._conn is None:
            self._conn = NodeConn(self.node_netns)
        try:
            return fn(self._conn)
        except DatapathError:
            raise
        except BaseException:
            self._drop()
            raise

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
