"""Fault injection (latency, throttling above a QPS, failure ratios), attach delays and the ENI hook."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from aliyunsdkecs.request.v20140526.AssignPrivateIpAddressesRequest import AssignPrivateIpAddressesRequest
from aliyunsdkecs.request.v20140526.AttachNetworkInterfaceRequest import AttachNetworkInterfaceRequest
from aliyunsdkecs.request.v20140526.CreateNetworkInterfaceRequest import CreateNetworkInterfaceRequest
from aliyunsdkecs.request.v20140526.DescribeNetworkInterfacesRequest import DescribeNetworkInterfacesRequest
from aliyunsdkecs.request.v20140526.DetachNetworkInterfaceRequest import DetachNetworkInterfaceRequest
from aliyunsdkecs.request.v20140526.UnassignPrivateIpAddressesRequest import UnassignPrivateIpAddressesRequest

from terwayctl.emulator import EniInfo, FaultInjector, FaultSpec
from tests.fixtures.emulator import RunningEmulator, SdkCaller


def test_latency_is_added(emulator: RunningEmulator) -> None:
    emulator.set_fault("DescribeInstances", latency_ms=150)
    started = time.monotonic()
    assert emulator.call("DescribeInstances").status == 200
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    assert emulator.call("DescribeNetworkInterfaces").status == 200
    assert time.monotonic() - started < 0.15


def test_throttling_above_qps(emulator: RunningEmulator) -> None:
    emulator.set_fault("DescribeInstances", qps=3)
    replies = [emulator.call("DescribeInstances") for _ in range(6)]
    assert [r.status for r in replies[:3]] == [200, 200, 200]
    throttled = [r for r in replies if r.status != 200]
    assert throttled and all((r.status, r.body["Code"]) == (400, "Throttling") for r in throttled)
    assert emulator.call("DescribeNetworkInterfaces").status == 200  # other actions are not limited


def test_throttling_through_the_sdk_with_its_retries(emulator: RunningEmulator) -> None:
    emulator.set_fault("*", qps=1)
    caller = SdkCaller(emulator)
    try:
        caller.call(DescribeNetworkInterfacesRequest())
        error = caller.error(DescribeNetworkInterfacesRequest())
    finally:
        caller.close()
    assert (error.get_error_code(), error.get_http_status()) == ("Throttling", 400)


@pytest.mark.parametrize(
    ("code", "status"),
    [("InternalError", 500), ("ServiceUnavailable", 503), ("Operation.Conflict", 403), ("Throttling", 400)],
)
def test_failure_ratio_one_always_fails_with_the_documented_status(
    emulator: RunningEmulator, code: str, status: int
) -> None:
    emulator.set_fault("CreateNetworkInterface", failure_ratio=1.0, failure_code=code)
    reply = emulator.call("CreateNetworkInterface", VSwitchId="vsw-emupodi", SecurityGroupId="sg-emudefault")
    assert (reply.status, reply.body["Code"]) == (status, code)
    # a failure before the action changes nothing
    assert emulator.call("DescribeNetworkInterfaces", VSwitchId="vsw-emupodi").body["TotalCount"] == 0


def test_failure_draws_are_deterministic_with_a_seed() -> None:
    def draws(seed: int) -> list[bool]:
        injector = FaultInjector(seed=seed)
        injector.set("*", FaultSpec(failure_ratio=0.5, jitter_ms=10))
        return [injector.decide("DescribeInstances").error is not None for _ in range(40)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    assert 5 < sum(draws(7)) < 35


def test_seeded_ratio_over_http(emulator_factory: Any) -> None:
    outcomes = []
    for _ in range(2):
        running = emulator_factory(seed=3)
        running.set_fault("DescribeVpcs", failure_ratio=0.5, failure_code="ServiceUnavailable")
        outcomes.append([running.call("DescribeVpcs", version="2016-04-28").status for _ in range(12)])
        running.stop()
    assert outcomes[0] == outcomes[1]
    assert set(outcomes[0]) == {200, 503}


def test_faults_from_the_scenario(emulator_factory: Any) -> None:
    running = emulator_factory({"faults": {"seed": 1, "actions": {"DescribeVpcs": {
        "failure_ratio": 1.0, "failure_code": "InternalError"}}}})
    assert running.call("DescribeVpcs", version="2016-04-28").status == 500
    running.clear_faults()
    assert running.call("DescribeVpcs", version="2016-04-28").status == 200


class RecordingHook:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, EniInfo]] = []
        self.changed = threading.Event()

    def on_attach(self, instance_id: str, eni: EniInfo) -> None:
        self.events.append(("attach", instance_id, eni))
        self.changed.set()

    def on_detach(self, instance_id: str, eni: EniInfo) -> None:
        self.events.append(("detach", instance_id, eni))
        self.changed.set()

    def on_ips_changed(self, instance_id: str, eni: EniInfo) -> None:
        self.events.append(("ips", instance_id, eni))
        self.changed.set()


def _status(caller: SdkCaller, eni: str) -> str:
    request = DescribeNetworkInterfacesRequest()
    request.set_NetworkInterfaceIds([eni])
    status: str = caller.call(request)["NetworkInterfaceSets"]["NetworkInterfaceSet"][0]["Status"]
    return status


def test_attach_and_detach_delays_and_the_hook(emulator_factory: Any) -> None:
    hook = RecordingHook()
    running = emulator_factory({"settings": {"attach_delay_ms": 150, "detach_delay_ms": 150},
                                **{k: v for k, v in _default().items() if k != "settings"}}, hook=hook)
    caller = SdkCaller(running)
    try:
        request = CreateNetworkInterfaceRequest()
        request.set_VSwitchId("vsw-emupodi")
        request.set_SecurityGroupId("sg-emudefault")
        eni = caller.call(request)["NetworkInterfaceId"]
        attach = AttachNetworkInterfaceRequest()
        attach.set_InstanceId("i-emunode1")
        attach.set_NetworkInterfaceId(eni)
        caller.call(attach)
        assert _status(caller, eni) == "Attaching"
        detach = DetachNetworkInterfaceRequest()
        detach.set_InstanceId("i-emunode1")
        detach.set_NetworkInterfaceId(eni)
        assert caller.error(detach).get_error_code() == "InvalidOperation.InvalidEniState"
        assert hook.changed.wait(5)  # the settler finishes the attach without another API call
        assert _status(caller, eni) == "InUse"
        kind, instance, info = hook.events[0]
        assert (kind, instance, info.eni_id, info.primary_ip) == ("attach", "i-emunode1", eni, "192.168.32.1")
        assert info.gateway == "192.168.63.253" and info.vswitch_cidr == "192.168.32.0/19"
        hook.changed.clear()
        caller.call(detach)
        assert _status(caller, eni) == "Detaching"
        assert hook.changed.wait(5)
        assert _status(caller, eni) == "Available"
        assert [e[0] for e in hook.events] == ["attach", "detach"]
    finally:
        caller.close()


def test_the_hook_hears_of_ip_changes_on_attached_enis_only(emulator_factory: Any) -> None:
    hook = RecordingHook()
    running = emulator_factory(_default(), hook=hook)
    caller = SdkCaller(running)
    try:
        create = CreateNetworkInterfaceRequest()
        create.set_VSwitchId("vsw-emupodi")
        create.set_SecurityGroupId("sg-emudefault")
        eni = caller.call(create)["NetworkInterfaceId"]
        assign = AssignPrivateIpAddressesRequest()
        assign.set_NetworkInterfaceId(eni)
        assign.set_SecondaryPrivateIpAddressCount(1)
        caller.call(assign)
        assert hook.events == []  # not attached: no datapath to tell
        attach = AttachNetworkInterfaceRequest()
        attach.set_InstanceId("i-emunode1")
        attach.set_NetworkInterfaceId(eni)
        caller.call(attach)
        assign.set_SecondaryPrivateIpAddressCount(2)
        added = caller.call(assign)["AssignedPrivateIpAddressesSet"]["PrivateIpSet"]["PrivateIpAddress"]
        kind, instance, info = hook.events[-1]
        assert (kind, instance) == ("ips", "i-emunode1")
        assert set(added) <= set(info.private_ips) and len(info.private_ips) == 4
        unassign = UnassignPrivateIpAddressesRequest()
        unassign.set_NetworkInterfaceId(eni)
        unassign.set_PrivateIpAddresss(added[:1])
        caller.call(unassign)
        kind, _, info = hook.events[-1]
        assert kind == "ips" and added[0] not in info.private_ips and len(info.private_ips) == 3
    finally:
        caller.close()


def _default() -> dict[str, Any]:
    from terwayctl.emulator import DEFAULT_SCENARIO

    return dict(DEFAULT_SCENARIO)
