"""The ENI device plugin against a kubelet stand-in speaking the same gRPC API (device plugin v1beta1).

The stand-in is the kubelet side, written here: a Registration server on `kubelet.sock` in a temp
directory; on Register it dials the plugin's endpoint in that directory, asks GetDevicePluginOptions
and opens ListAndWatch, queueing every device list it is sent. No sleeps: every wait is a queue
read or a condition with a deadline.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from terwayctl.node import deviceplugin_api as api
from terwayctl.node.config import PoolMode
from terwayctl.node.deviceplugin import ENI_RESOURCE, EniDevicePlugin, start_for_daemon

WAIT = 10.0


class KubeletStandIn:
    """kubelet's side of the device-plugin API: Registration, then a ListAndWatch client per plugin."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.registrations: queue.Queue[Any] = queue.Queue()
        self.device_lists: queue.Queue[list[tuple[str, str]]] = queue.Queue()
        self.options: list[Any] = []
        self.channels: list[grpc.Channel] = []
        m = api.messages()
        handler = grpc.method_handlers_generic_handler(api.REGISTRATION_SERVICE, {
            "Register": grpc.unary_unary_rpc_method_handler(
                self._register, m["RegisterRequest"].FromString, m["Empty"].SerializeToString),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
        self.server.add_insecure_port(f"unix:{directory / api.KUBELET_SOCKET}")

    def start(self) -> KubeletStandIn:
        self.server.start()
        return self

    def _register(self, request: Any, context: Any) -> Any:
        m = api.messages()
        if request.version != api.API_VERSION:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported version {request.version}")
        channel = grpc.insecure_channel(f"unix:{self.directory / request.endpoint}")
        self.channels.append(channel)
        options = channel.unary_unary(api.method_path("DevicePlugin", "GetDevicePluginOptions"),
                                      request_serializer=m["Empty"].SerializeToString,
                                      response_deserializer=m["DevicePluginOptions"].FromString)
        self.options.append(options(m["Empty"](), timeout=WAIT))
        stream = channel.unary_stream(api.method_path("DevicePlugin", "ListAndWatch"),
                                      request_serializer=m["Empty"].SerializeToString,
                                      response_deserializer=m["ListAndWatchResponse"].FromString)
        responses = stream(m["Empty"]())

        def follow() -> None:
            try:
                for response in responses:
                    self.device_lists.put([(d.ID, d.health) for d in response.devices])
            except grpc.RpcError:
                pass  # the plugin stopped or the stand-in went away

        threading.Thread(target=follow, daemon=True).start()
        self.registrations.put(request)
        return m["Empty"]()

    def call(self, endpoint: str, method: str, request: Any, response: str) -> Any:
        m = api.messages()
        with grpc.insecure_channel(f"unix:{self.directory / endpoint}") as channel:
            rpc = channel.unary_unary(api.method_path("DevicePlugin", method),
                                      request_serializer=type(request).SerializeToString,
                                      response_deserializer=m[response].FromString)
            return rpc(request, timeout=WAIT)

    def stop(self, *, remove_sockets: bool = True) -> None:
        """As a kubelet restart does: stop serving, drop kubelet.sock and (by default) every plugin socket."""
        for channel in self.channels:
            channel.close()
        self.server.stop(grace=0).wait(WAIT)
        (self.directory / api.KUBELET_SOCKET).unlink(missing_ok=True)
        if remove_sockets:
            for entry in self.directory.iterdir():
                entry.unlink()


class Capacity:
    def __init__(self, value: int) -> None:
        self.value = value

    def __call__(self) -> int:
        return self.value


@pytest.fixture
def plugin_dir() -> Iterator[Path]:
    # A short path: a unix socket path has at most 107 bytes.
    directory = Path(tempfile.mkdtemp(prefix="dp-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def eventually(condition: Callable[[], bool]) -> bool:
    """True as soon as `condition` holds, False after WAIT seconds (polled; no fixed sleep)."""
    deadline = time.monotonic() + WAIT
    done = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        done.wait(0.01)
    return True


def next_devices(kubelet: KubeletStandIn) -> list[tuple[str, str]]:
    return kubelet.device_lists.get(timeout=WAIT)


def test_registers_and_advertises_the_capacity(plugin_dir: Path) -> None:
    kubelet = KubeletStandIn(plugin_dir).start()
    try:
        with EniDevicePlugin(Capacity(3), directory=plugin_dir, interval=0.05) as plugin:
            request = kubelet.registrations.get(timeout=WAIT)
            assert request.version == "v1beta1"
            assert request.resource_name == ENI_RESOURCE == "aliyun/eni"
            assert plugin.socket is not None and request.endpoint == plugin.socket.name
            assert request.endpoint.endswith("-eni.sock") and "/" not in request.endpoint
            assert next_devices(kubelet) == [("eni-0", "Healthy"), ("eni-1", "Healthy"), ("eni-2", "Healthy")]
            assert kubelet.options[0].pre_start_required is False
        assert not list(plugin_dir.glob("*-eni.sock"))  # stop removes the plugin's socket
    finally:
        kubelet.stop()


def test_follows_capacity_changes(plugin_dir: Path) -> None:
    capacity = Capacity(4)
    kubelet = KubeletStandIn(plugin_dir).start()
    try:
        with EniDevicePlugin(capacity, directory=plugin_dir, interval=0.05):
            kubelet.registrations.get(timeout=WAIT)
            assert len(next_devices(kubelet)) == 4
            capacity.value = 2  # e.g. EniPerInstanceLimitExceeded lowered the pool's ENI limit
            assert next_devices(kubelet) == [("eni-0", "Healthy"), ("eni-1", "Healthy")]
            capacity.value = 6
            assert [d for d, _ in next_devices(kubelet)] == [f"eni-{i}" for i in range(6)]
            assert kubelet.registrations.empty()  # a count change is no new registration
    finally:
        kubelet.stop()


@pytest.mark.parametrize("remove_sockets", [True, False], ids=["kubelet-wipes-dir", "only-kubelet-sock-recreated"])
def test_registers_again_after_a_kubelet_restart(plugin_dir: Path, remove_sockets: bool) -> None:
    first = KubeletStandIn(plugin_dir).start()
    with EniDevicePlugin(Capacity(5), directory=plugin_dir, interval=0.05) as plugin:
        assert first.registrations.get(timeout=WAIT).resource_name == ENI_RESOURCE
        assert len(next_devices(first)) == 5
        first.stop(remove_sockets=remove_sockets)
        second = KubeletStandIn(plugin_dir).start()
        try:
            request = second.registrations.get(timeout=WAIT)
            assert request.resource_name == ENI_RESOURCE
            assert plugin.socket is not None and request.endpoint == plugin.socket.name
            assert (plugin_dir / request.endpoint).exists()
            assert len(next_devices(second)) == 5
            assert eventually(lambda: plugin.registrations == 2)  # counted once kubelet's answer is back
            assert second.registrations.empty()
        finally:
            second.stop()


def test_waits_for_kubelet_then_registers(plugin_dir: Path) -> None:
    with EniDevicePlugin(Capacity(1), directory=plugin_dir, interval=0.05) as plugin:
        assert plugin.registrations == 0
        kubelet = KubeletStandIn(plugin_dir).start()
        try:
            assert kubelet.registrations.get(timeout=WAIT).resource_name == ENI_RESOURCE
            assert next_devices(kubelet) == [("eni-0", "Healthy")]
        finally:
            kubelet.stop()


def test_allocate_prestart_and_options(plugin_dir: Path) -> None:
    m = api.messages()
    kubelet = KubeletStandIn(plugin_dir).start()
    try:
        with EniDevicePlugin(Capacity(2), directory=plugin_dir, interval=0.05, resource="aliyun/member-eni") as plugin:
            request = kubelet.registrations.get(timeout=WAIT)
            assert request.resource_name == "aliyun/member-eni" and request.endpoint.endswith("-member-eni.sock")
            assert plugin.socket is not None
            endpoint = plugin.socket.name
            allocate = m["AllocateRequest"](container_requests=[
                m["ContainerAllocateRequest"](devices_ids=["eni-0"]), m["ContainerAllocateRequest"](devices_ids=["eni-1"])])
            answer = kubelet.call(endpoint, "Allocate", allocate, "AllocateResponse")
            assert len(answer.container_responses) == 2
            assert all(not r.envs and not r.mounts and not r.devices for r in answer.container_responses)
            pre = kubelet.call(endpoint, "PreStartContainer", m["PreStartContainerRequest"](devices_ids=["eni-0"]),
                               "PreStartContainerResponse")
            assert pre == m["PreStartContainerResponse"]()
            options = kubelet.call(endpoint, "GetDevicePluginOptions", m["Empty"](), "DevicePluginOptions")
            assert options.pre_start_required is False and options.get_preferred_allocation_available is False
    finally:
        kubelet.stop()


def test_an_earlier_runs_socket_is_removed(plugin_dir: Path) -> None:
    stale = plugin_dir / "1700000000-eni.sock"
    stale.touch()
    other = plugin_dir / "1700000000-member-eni.sock"
    other.touch()
    with EniDevicePlugin(Capacity(1), directory=plugin_dir, interval=0.05) as plugin:
        assert not stale.exists() and other.exists()
        assert plugin.socket is not None and plugin.socket.exists()


class FakePool:
    def __init__(self, max_enis: int) -> None:
        self.max_enis = max_enis


class FakeDaemon:
    """What start_for_daemon reads of terwayctl.node.service.Daemon: config.mode and pool.max_enis."""

    def __init__(self, mode: PoolMode, pool: FakePool | None) -> None:
        self.config = SimpleNamespace(mode=mode)
        self.pool = pool


def test_the_daemon_advertises_its_pools_eni_limit(plugin_dir: Path) -> None:
    pool = FakePool(7)  # usable_enis(EniQuantity 8, no caps)
    kubelet = KubeletStandIn(plugin_dir).start()
    plugin = start_for_daemon(FakeDaemon(PoolMode.ENI, pool), plugin_dir)
    assert plugin is not None
    try:
        assert kubelet.registrations.get(timeout=WAIT).resource_name == "aliyun/eni"
        assert len(next_devices(kubelet)) == 7
        pool.max_enis = 5  # EniPerInstanceLimitExceeded lowered the limit
        assert len(next_devices(kubelet)) == 5
    finally:
        plugin.stop()
        kubelet.stop()


def test_no_plugin_in_shared_eni_mode_or_without_kubelet(plugin_dir: Path) -> None:
    assert start_for_daemon(FakeDaemon(PoolMode.ENIIP, FakePool(7)), plugin_dir) is None
    assert start_for_daemon(FakeDaemon(PoolMode.ENI, FakePool(7)), plugin_dir / "absent") is None
    assert not list(plugin_dir.iterdir())


def test_a_socket_that_cannot_be_served_does_not_stop_the_daemon(plugin_dir: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EniDevicePlugin, "_serve", _failing_serve)
        assert start_for_daemon(FakeDaemon(PoolMode.ENI, FakePool(3)), plugin_dir) is None


def _failing_serve(self: EniDevicePlugin) -> None:
    raise RuntimeError("Failed to bind to address unix:/nonexistent/x.sock")
