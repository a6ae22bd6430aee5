"""The emulator's ClientToken semantics and per-call address limits for the calls the daemon's intent
log relies on (raw signed HTTP, as the SDK sends them)."""

from __future__ import annotations

from tests.fixtures.emulator import RunningEmulator

VSW, SG = "vsw-emupodi", "sg-emudefault"


def _eni(emulator: RunningEmulator, **extra: str) -> str:
    reply = emulator.call("CreateNetworkInterface", VSwitchId=VSW, SecurityGroupId=SG, extra=extra)
    assert reply.status == 200, reply.body
    return str(reply.body["NetworkInterfaceId"])


def _ips(emulator: RunningEmulator, eni: str) -> list[str]:
    reply = emulator.call("DescribeNetworkInterfaces", extra={"NetworkInterfaceId.1": eni})
    sets = reply.body["NetworkInterfaceSets"]["NetworkInterfaceSet"]
    return [s["PrivateIpAddress"] for s in sets[0]["PrivateIpSets"]["PrivateIpSet"]] if sets else []


def test_assign_with_a_token_whose_reply_was_lost_answers_the_same_ips_again(emulator: RunningEmulator) -> None:
    eni = _eni(emulator)
    emulator.set_fault("AssignPrivateIpAddresses", failure_ratio=1.0, fail_after_commit=True)
    lost = emulator.call("AssignPrivateIpAddresses", NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=3,
                         ClientToken="tok-a")
    assert (lost.status, lost.body["Code"]) == (500, "InternalError")
    emulator.clear_faults()
    assert len(_ips(emulator, eni)) == 4  # the cloud did the work
    again = emulator.call("AssignPrivateIpAddresses", NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=3,
                          ClientToken="tok-a")
    assert again.status == 200
    assert len(again.body["AssignedPrivateIpAddressesSet"]["PrivateIpSet"]["PrivateIpAddress"]) == 3
    assert len(_ips(emulator, eni)) == 4  # no second set of addresses
    other = emulator.call("AssignPrivateIpAddresses", NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=2,
                          ClientToken="tok-a")
    assert (other.status, other.body["Code"]) == (400, "IdempotentParameterMismatch")


def test_create_with_a_token_whose_reply_was_lost_makes_one_eni(emulator: RunningEmulator) -> None:
    emulator.set_fault("CreateNetworkInterface", failure_ratio=1.0, fail_after_commit=True)
    lost = emulator.call("CreateNetworkInterface", VSwitchId=VSW, SecurityGroupId=SG, ClientToken="tok-c")
    assert lost.status == 500
    emulator.clear_faults()
    first = _eni(emulator, ClientToken="tok-c")
    assert _eni(emulator, ClientToken="tok-c") == first
    listed = emulator.call("DescribeNetworkInterfaces", VSwitchId=VSW).body["TotalCount"]
    assert listed == 1


def test_at_most_ten_addresses_per_assign_and_unassign(emulator: RunningEmulator) -> None:
    eni = _eni(emulator, SecondaryPrivateIpAddressCount="12")
    too_many = emulator.call("AssignPrivateIpAddresses", NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=11)
    assert (too_many.status, too_many.body["Code"]) == (400, "InvalidParam.IpCount")
    secondary = _ips(emulator, eni)[1:]
    assert len(secondary) == 12
    eleven = {f"PrivateIpAddress.{i}": ip for i, ip in enumerate(secondary[:11], start=1)}
    reply = emulator.call("UnassignPrivateIpAddresses", NetworkInterfaceId=eni, extra=eleven)
    assert (reply.status, reply.body["Code"]) == (400, "InvalidParam.IpCount")
    assert len(_ips(emulator, eni)) == 13  # nothing released
    ten = {f"PrivateIpAddress.{i}": ip for i, ip in enumerate(secondary[:10], start=1)}
    assert emulator.call("UnassignPrivateIpAddresses", NetworkInterfaceId=eni, extra=ten).status == 200
    assert len(_ips(emulator, eni)) == 3
