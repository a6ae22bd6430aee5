"""The ENI device plugin: tells kubelet how many pods with their own ENI this node can hold.

As upstream Terway's `deviceplugin/eni.go` (AliyunContainerService/terway @89aadf8): in exclusive-ENI
mode the daemon serves kubelet's device-plugin API v1beta1 on a unix socket in
`/var/lib/kubelet/device-plugins/`, registers the resource `aliyun/eni` with kubelet (`Register` on
`kubelet.sock`) and advertises one healthy device per ENI a pod can get (`eni-0` ... `eni-<n-1>`).
kubelet then reports `aliyun/eni: <n>` in the Node's capacity and allocatable, and the scheduler
places a pod that requests `aliyun/eni: 1` only where an ENI is left. `aliyun/member-eni` (trunk
member ENIs) is the same server under another resource name; this daemon has no trunk ENI and
never registers it.

The count comes from a callable, read on every tick of the watcher (default every second): the
pool's ENI limit (`usable_enis(EniQuantity, eni_conf caps)`, lowered when the cloud answers
EniPerInstanceLimitExceeded). A change is pushed to every open ListAndWatch stream at once.

kubelet removes every socket in the directory when it restarts and recreates `kubelet.sock`; the
watcher notices its own socket gone or `kubelet.sock` replaced (another inode), restarts the
server on a fresh socket and registers again (upstream watches its own socket only).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

from terwayctl.node import deviceplugin_api as api

log = logging.getLogger("terwayctl.node.deviceplugin")

ENI_RESOURCE = "aliyun/eni"
MEMBER_ENI_RESOURCE = "aliyun/member-eni"
REGISTER_TIMEOUT = 5.0


def socket_kind(resource: str) -> str:
    """The socket name's suffix for a resource: ``eni`` for aliyun/eni, ``member-eni`` for aliyun/member-eni."""
    return resource.rsplit("/", 1)[-1]


class EniDevicePlugin:
    """One resource's device plugin: its gRPC server, its registration and the watcher thread."""

    def __init__(
        self,
        count: Callable[[], int],
        *,
        resource: str = ENI_RESOURCE,
        directory: Path = Path(api.DEVICE_PLUGIN_PATH),
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.count_source = count
        self.resource = resource
        self.directory = directory
        self.interval = interval
        self.clock = clock
        self.kind = socket_kind(resource)
        self._own = re.compile(rf"\d+-{re.escape(self.kind)}\.sock")
        self.socket: Path | None = None
        self.registrations = 0
        """How many times kubelet accepted the registration (1 after start, +1 per kubelet restart)."""
        self._server: Any = None
        self._count = 0
        self._changed = threading.Condition()
        self._generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._kubelet_inode: tuple[int, int, int] | None = None
        self._registered = False

    @property
    def kubelet_socket(self) -> Path:
        return self.directory / api.KUBELET_SOCKET

    @property
    def count(self) -> int:
        return self._count

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> EniDevicePlugin:
        """Serve, register (retried by the watcher while kubelet is not there) and watch."""
        self._stop.clear()
        self._count = self._read_count()
        self._serve()
        self._try_register()
        self._thread = threading.Thread(target=self._watch, name=f"device-plugin-{self.kind}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._shutdown()

    def __enter__(self) -> EniDevicePlugin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the server ------------------------------------------------------------------------------

    def _serve(self) -> None:
        import grpc

        self._cleanup()
        self.socket = self.directory / f"{int(self.clock())}-{self.kind}.sock"
        m = api.messages()
        handlers = {
            "GetDevicePluginOptions": grpc.unary_unary_rpc_method_handler(
                self._options, m["Empty"].FromString, m["DevicePluginOptions"].SerializeToString),
            "ListAndWatch": grpc.unary_stream_rpc_method_handler(
                self._list_and_watch, m["Empty"].FromString, m["ListAndWatchResponse"].SerializeToString),
            "GetPreferredAllocation": grpc.unary_unary_rpc_method_handler(
                self._preferred, m["PreferredAllocationRequest"].FromString,
                m["PreferredAllocationResponse"].SerializeToString),
            "Allocate": grpc.unary_unary_rpc_method_handler(
                self._allocate, m["AllocateRequest"].FromString, m["AllocateResponse"].SerializeToString),
            "PreStartContainer": grpc.unary_unary_rpc_method_handler(
                self._pre_start, m["PreStartContainerRequest"].FromString,
                m["PreStartContainerResponse"].SerializeToString),
        }
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"dp-{self.kind}"),
                             handlers=[grpc.method_handlers_generic_handler(api.DEVICE_PLUGIN_SERVICE, handlers)])
        server.add_insecure_port(f"unix:{self.socket}")
        server.start()
        self._server = server
        log.info("device plugin %s serving on %s", self.resource, self.socket)

    def _shutdown(self) -> None:
        if self._server is not None:
            self._generation += 1
            self._notify()
            self._server.stop(grace=0).wait(5)
            self._server = None
        if self.socket is not None:
            self.socket.unlink(missing_ok=True)

    def _cleanup(self) -> None:
        """Remove sockets an earlier run of this plugin left (same kind only), as upstream does."""
        try:
            entries = list(self.directory.iterdir())
        except FileNotFoundError:
            return
        for entry in entries:
            if self._own.fullmatch(entry.name):
                entry.unlink(missing_ok=True)

    def _devices(self) -> Any:
        m = api.messages()
        return m["ListAndWatchResponse"](
            devices=[m["Device"](ID=f"eni-{i}", health=api.HEALTHY) for i in range(self._count)])

    def _options(self, request: Any, context: Any) -> Any:
        return api.messages()["DevicePluginOptions"]()

    def _list_and_watch(self, request: Any, context: Any) -> Iterator[Any]:
        generation = self._generation
        with self._changed:
            sent = self._count
        yield self._devices()
        while not self._stop.is_set() and context.is_active() and generation == self._generation:
            with self._changed:
                self._changed.wait_for(functools.partial(self._moved, sent, generation), timeout=1.0)
                current = self._count
            if self._stop.is_set() or generation != self._generation:
                return
            if current != sent:
                sent = current
                log.info("device plugin %s: %d devices", self.resource, current)
                yield self._devices()

    def _moved(self, sent: int, generation: int) -> bool:
        """A stream has something to do: the count changed, the plugin stops or serves anew."""
        return self._count != sent or self._stop.is_set() or generation != self._generation

    def _preferred(self, request: Any, context: Any) -> Any:
        """Any ENI does: the first ones of the available list (kubelet calls this only when asked to)."""
        m = api.messages()
        responses = [m["ContainerPreferredAllocationResponse"](
            deviceIDs=list(r.must_include_deviceIDs) + [d for d in r.available_deviceIDs
                                                        if d not in r.must_include_deviceIDs]
            [: max(r.allocation_size - len(r.must_include_deviceIDs), 0)])
            for r in request.container_requests]
        return m["PreferredAllocationResponse"](container_responses=responses)

    def _allocate(self, request: Any, context: Any) -> Any:
        """An empty response per container: the ENI is wired by the CNI ADD, not by kubelet."""
        m = api.messages()
        log.info("device plugin %s: allocate %s", self.resource,
                 [list(r.devices_ids) for r in request.container_requests])
        return m["AllocateResponse"](
            container_responses=[m["ContainerAllocateResponse"]() for _ in request.container_requests])

    def _pre_start(self, request: Any, context: Any) -> Any:
        return api.messages()["PreStartContainerResponse"]()

    # --- registration and the watcher ------------------------------------------------------------

    def _kubelet_identity(self) -> tuple[int, int, int] | None:
        """Which kubelet.sock is there: device, inode and change time (an inode number can be reused)."""
        try:
            st = os.stat(self.kubelet_socket)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino, st.st_ctime_ns)

    def _try_register(self) -> bool:
        import grpc

        inode = self._kubelet_identity()
        if inode is None:
            return False
        assert self.socket is not None
        m = api.messages()
        request = m["RegisterRequest"](version=api.API_VERSION, endpoint=self.socket.name, resource_name=self.resource,
                                       options=m["DevicePluginOptions"]())
        try:
            with grpc.insecure_channel(f"unix:{self.kubelet_socket}") as channel:
                register = channel.unary_unary(api.method_path("Registration", "Register"),
                                               request_serializer=m["RegisterRequest"].SerializeToString,
                                               response_deserializer=m["Empty"].FromString)
                register(request, timeout=REGISTER_TIMEOUT)
        except grpc.RpcError as exc:
            log.warning("device plugin %s: kubelet refused or did not answer the registration: %s", self.resource,
                        exc.details() if hasattr(exc, "details") else exc)
            return False
        self._kubelet_inode = inode
        self._registered = True
        self.registrations += 1
        log.info("device plugin %s registered with kubelet (%s), %d devices", self.resource, self.kubelet_socket,
                 self._count)
        return True

    def _read_count(self) -> int:
        try:
            return max(int(self.count_source()), 0)
        except Exception:
            log.exception("device plugin %s: cannot read the capacity; keeping %d", self.resource, self._count)
            return self._count

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:
                log.exception("device plugin %s: watch pass failed", self.resource)

    def tick(self) -> None:
        """One watcher pass: follow the capacity, and re-serve / re-register after a kubelet restart."""
        count = self._read_count()
        if count != self._count:
            with self._changed:
                self._count = count
                self._changed.notify_all()
        inode = self._kubelet_identity()
        own_gone = self.socket is None or not self.socket.exists()
        kubelet_new = inode is not None and inode != self._kubelet_inode
        if own_gone or (self._registered and kubelet_new):
            log.info("device plugin %s: kubelet restarted (%s); serving again and registering",
                     self.resource, "our socket was removed" if own_gone else "kubelet.sock was recreated")
            self._registered = False
            self._shutdown()
            self._serve()
        if inode is None:
            self._registered = False
        elif not self._registered or inode != self._kubelet_inode:
            self._try_register()


def start_for_daemon(daemon: Any, directory: Path) -> EniDevicePlugin | None:
    """The `aliyun/eni` plugin of a started exclusive-ENI daemon, or None (eniip mode, no kubelet dir).

    Upstream registers the ENI resources only in exclusive-ENI (and trunk) mode: in eniip mode pods
    share ENIs and the node's limit is kubelet's max-pods. The count is the pool's ENI limit, so an
    EniPerInstanceLimitExceeded that lowers it is advertised within a tick.
    """
    from terwayctl.node.config import PoolMode

    if daemon.config.mode is not PoolMode.ENI:
        return None
    if not directory.is_dir():
        log.info("device plugin %s off: %s does not exist (no kubelet on this host?)", ENI_RESOURCE, directory)
        return None

    def capacity() -> int:
        pool = daemon.pool
        return int(pool.max_enis) if pool is not None else 0

    plugin = EniDevicePlugin(capacity, directory=directory)
    try:
        return plugin.start()
    except (OSError, RuntimeError) as exc:  # grpc raises RuntimeError when it cannot bind the socket
        # The CNI side works without it; the scheduler then does not know the ENI limit (doctor says so).
        log.error("device plugin %s not started: %s", ENI_RESOURCE, exc)
        plugin.stop()
        return None
