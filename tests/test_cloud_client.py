"""terwayctl.cloud end to end: the real aliyun SDK over HTTP against the emulator on 127.0.0.1."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from terwayctl.cloud import errors as e
from terwayctl.cloud.client import CloudClient
from terwayctl.cloud.metadata import MetadataService
from terwayctl.cloud.retry import RetryPolicy
from terwayctl.cloud.session import ExistingVSwitch, build_client, describe_vpc_layout
from terwayctl.emulator.world import DEFAULT_SCENARIO
from tests.fixtures.cloud import CloudEnv
from tests.fixtures.emulator import EmulatorFactory, RunningEmulator

KEY_ID = "LTAI5tTerwayTestKey01"
SECRET = "TerwaySecretValue0123456789abc"
STS_ID = "STS.TerwayTestStsKey02"
STS_SECRET = "StsSecretValue0123456789xyz"
STS_TOKEN = "CAIStsSecurityTokenValue0123456789"
SECRETS = (KEY_ID, SECRET, STS_ID, STS_SECRET, STS_TOKEN)
POD_VSW, NODE_VSW, SG = "vsw-emupodi", "vsw-emunodei", "sg-emudefault"

MakeClient = Callable[..., CloudClient]


def scenario(**changes: Any) -> dict[str, Any]:
    """The default world with distinctive keys (so leaks are detectable) and `changes` applied."""
    world = copy.deepcopy(DEFAULT_SCENARIO)
    world["key_pairs"] = [
        {"access_key_id": KEY_ID, "access_key_secret": SECRET},
        {"access_key_id": STS_ID, "access_key_secret": STS_SECRET, "security_token": STS_TOKEN},
        {"access_key_id": "LTAI5tDeniedKey", "access_key_secret": "DeniedSecret000",
         "denied_actions": ["DeleteNetworkInterface"]},
    ]
    world.update(changes)
    return world


@pytest.fixture
def world(emulator_factory: EmulatorFactory) -> RunningEmulator:
    return emulator_factory(scenario(), seed=7)


@pytest.fixture
def client(world: RunningEmulator, make_client: MakeClient) -> CloudClient:
    return make_client(world)


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"secret leaked into: {text}"


def client_side_log(caplog: pytest.LogCaptureFixture) -> str:
    """Every log line of the run: the SDK, terwayctl.cloud and the emulator serving it."""
    return "\n".join(r.getMessage() for r in caplog.records)


def assert_error(exc: e.CloudError) -> None:
    """Every cloud error carries a code, a request id (when the API replied), a hint and no secret."""
    assert exc.code
    assert exc.hint
    assert_no_secret(exc, exc.message, exc.hint, repr(exc), exc.args)


# ------------------------------------------------------------------------------------ reads


def test_describe_calls(client: CloudClient) -> None:
    types = {t.instance_type_id: t for t in client.describe_instance_types()}
    assert len(types) == 1468
    g7 = types["ecs.g7.4xlarge"].to_instance_type()
    assert (g7.eni_quantity, g7.eni_private_ip_quantity) == (8, 30)
    assert [t.instance_type_id for t in client.describe_instance_types(["ecs.g7.xlarge"])] == ["ecs.g7.xlarge"]
    twelve = sorted(types)[:12]  # more names than one call takes
    assert sorted(t.instance_type_id for t in client.describe_instance_types(twelve)) == twelve

    instances = client.describe_instances()
    assert sorted(i.instance_id for i in instances) == ["i-emunode1", "i-emunode2", "i-emunode3"]
    one = client.describe_instances(instance_ids=["i-emunode3"])
    assert [(i.instance_type, i.zone_id, i.vswitch_id) for i in one] == [("ecs.g7.4xlarge", "cn-hangzhou-j", "vsw-emunodej")]

    enis = client.describe_network_interfaces(instance_id="i-emunode1")
    assert [(n.network_interface_id, n.type, n.status) for n in enis] == [("eni-emunode1", "Primary", "InUse")]

    vpcs = client.describe_vpcs()
    assert [(v.vpc_id, v.cidr_block) for v in vpcs] == [("vpc-emudefault", "192.168.0.0/16")]
    vswitches = client.describe_vswitches(vpc_id="vpc-emudefault")
    assert {v.vswitch_id for v in vswitches} == {"vsw-emunodei", "vsw-emupodi", "vsw-emunodej", "vsw-emupodj"}
    assert client.describe_vswitches(vswitch_ids=[POD_VSW])[0].cidr_block == "192.168.32.0/19"
    assert all(v.available_ip_count and v.available_ip_count > 8000 for v in vswitches)

    (nat,) = client.describe_nat_gateways(vpc_id="vpc-emudefault")
    assert nat.snat_table_ids == ("stb-emudefault",)
    snat = client.describe_snat_table_entries(nat.snat_table_ids[0])
    assert {s.source_vswitch_id for s in snat} == {"vsw-emunodei", "vsw-emunodej"}  # pod vSwitches have none
    assert client.describe_snat_table_entries(nat.snat_table_ids[0], source_vswitch_id=POD_VSW) == []

    eips = client.describe_eip_addresses()
    assert {(x.ip_address, x.instance_id) for x in eips} == {("203.0.113.10", "ngw-emudefault"), ("203.0.113.11", "i-emunode1")}
    assert [x.allocation_id for x in client.describe_eip_addresses(associated_instance_id="i-emunode1")] == ["eip-emunode1"]


def test_paging_returns_everything(world: RunningEmulator, make_client: MakeClient) -> None:
    small = make_client(world, page_sizes={
        "DescribeInstanceTypes": 100, "DescribeInstances": 1, "DescribeNetworkInterfaces": 1,
        "DescribeVSwitches": 1, "DescribeEipAddresses": 1, "DescribeSnatTableEntries": 1, "DescribeVpcs": 1,
    })
    full = make_client(world)
    assert small.describe_instance_types() == full.describe_instance_types()
    assert len(small.describe_instances()) == 3
    assert len(small.describe_network_interfaces()) == 3
    assert len(small.describe_vswitches()) == 4
    assert len(small.describe_eip_addresses()) == 2
    assert len(small.describe_snat_table_entries("stb-emudefault")) == 2
    assert len(small.describe_vpcs()) == 1


def test_vpc_layout(client: CloudClient) -> None:
    cidr, vswitches = describe_vpc_layout(client, "vpc-emudefault")
    assert cidr == "192.168.0.0/16"
    assert vswitches[:2] == [ExistingVSwitch("192.168.0.0/19", "cn-hangzhou-i", "vsw-emunodei"),
                             ExistingVSwitch("192.168.32.0/19", "cn-hangzhou-i", "vsw-emupodi")]
    assert len(vswitches) == 4
    with pytest.raises(e.CloudNotFound):
        describe_vpc_layout(client, "vpc-nope")


# ------------------------------------------------------------------------------- ENI life


def test_eni_lifecycle(client: CloudClient) -> None:
    eni = client.create_network_interface(
        vswitch_id=POD_VSW, security_group_ids=[SG], secondary_ip_count=2, name="pool", tags={"creator": "terway"}
    )
    assert eni.status == "Available" and eni.vswitch_id == POD_VSW and len(eni.private_ips) == 3
    client.attach_network_interface(eni.network_interface_id, "i-emunode1")
    (seen,) = client.describe_network_interfaces(network_interface_ids=[eni.network_interface_id])
    assert (seen.status, seen.instance_id) == ("InUse", "i-emunode1")
    assert seen.tags == (("creator", "terway"),)

    added = client.assign_private_ip_addresses(eni.network_interface_id, count=12)  # 10 + 2: two calls
    assert len(added) == len(set(added)) == 12
    (seen,) = client.describe_network_interfaces(network_interface_ids=[eni.network_interface_id])
    assert len(seen.private_ips) == 15
    free = [ip for ip in seen.secondary_ips if ip not in added]
    client.unassign_private_ip_addresses(eni.network_interface_id, [*added, *free])  # 14: two calls
    (seen,) = client.describe_network_interfaces(network_interface_ids=[eni.network_interface_id])
    assert seen.private_ips == (eni.primary_ip,)

    again = client.assign_private_ip_addresses(eni.network_interface_id, addresses=added[:3])
    assert again == added[:3]

    client.detach_network_interface(eni.network_interface_id, "i-emunode1")
    client.delete_network_interface(eni.network_interface_id)
    assert client.describe_network_interfaces(network_interface_ids=[eni.network_interface_id]) == []


def test_assign_needs_count_or_addresses(client: CloudClient) -> None:
    with pytest.raises(e.CloudInvalidParameter):
        client.assign_private_ip_addresses("eni-emunode1")
    with pytest.raises(e.CloudInvalidParameter):
        client.create_network_interface(vswitch_id=POD_VSW, security_group_ids=[])


# ---------------------------------------------------------------------------------- errors


def test_ip_not_enough(emulator_factory: EmulatorFactory, make_client: MakeClient) -> None:
    world = scenario()
    world["vswitches"][1]["cidr"] = "192.168.32.0/29"  # 8 addresses, 4 reserved
    client = make_client(emulator_factory(world))
    with pytest.raises(e.CloudQuotaExceeded) as caught:
        client.create_network_interface(vswitch_id=POD_VSW, security_group_ids=[SG], secondary_ip_count=5)
    err = caught.value
    assert err.code == "InvalidVSwitchId.IpNotEnough" and err.http_status == 403 and err.request_id
    assert err.hint == f"vSwitch {POD_VSW} has no free IPs; add one with terwayctl vswitch add"
    assert_error(err)


def test_ipv4_count_exceeded_on_the_instance_type(client: CloudClient) -> None:
    with pytest.raises(e.CloudQuotaExceeded) as caught:
        client.assign_private_ip_addresses("eni-emunode1", count=20)  # g7.xlarge: 15 per ENI
    assert caught.value.code == "InvalidOperation.Ipv4CountExceeded"
    assert_error(caught.value)


def test_eni_per_instance_limit(client: CloudClient) -> None:
    for _ in range(3):  # ecs.g6.xlarge takes 3 ENIs, the primary included
        eni = client.create_network_interface(vswitch_id=POD_VSW, security_group_ids=[SG])
        try:
            client.attach_network_interface(eni.network_interface_id, "i-emunode2")
        except e.CloudQuotaExceeded as exc:
            assert exc.code == "EniPerInstanceLimitExceeded"
            assert "i-emunode2" in exc.message
            assert_error(exc)
            break
    else:
        pytest.fail("the third ENI was attached")


def test_not_found_and_wrong_state(client: CloudClient) -> None:
    with pytest.raises(e.CloudNotFound) as missing:
        client.delete_network_interface("eni-nope")
    assert missing.value.code == "InvalidEniId.NotFound" and missing.value.exit_code == 2
    assert "eni-nope" in missing.value.message
    assert_error(missing.value)
    eni = client.create_network_interface(vswitch_id=POD_VSW, security_group_ids=[SG])
    client.attach_network_interface(eni.network_interface_id, "i-emunode1")
    with pytest.raises(e.CloudInvalidState) as state:
        client.delete_network_interface(eni.network_interface_id)
    assert state.value.code == "InvalidOperation.InvalidEniState"
    assert_error(state.value)


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("QuotaExceeded.PrivateIpAddress", e.CloudQuotaExceeded),
        ("IdempotentFailed", e.CloudIdempotentFailed),
        ("Forbidden.RAM", e.CloudForbidden),
        ("Throttling", e.CloudThrottled),
        ("ServiceUnavailable", e.CloudUnavailable),
        ("InternalError", e.CloudUnavailable),
        ("Operation.Conflict", e.CloudConflict),
    ],
)
def test_injected_codes(world: RunningEmulator, make_client: MakeClient, code: str, kind: type[e.CloudError]) -> None:
    sleeps: list[float] = []
    client = make_client(world, retry=RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002),
                         sleep=sleeps.append)
    world.set_fault("AssignPrivateIpAddresses", failure_ratio=1.0, failure_code=code)
    with pytest.raises(kind) as caught:
        client.assign_private_ip_addresses("eni-emunode1", count=1)
    err = caught.value
    assert err.code == code and err.request_id and err.action == "AssignPrivateIpAddresses"
    assert_error(err)
    retryable = code in e.RETRYABLE_CODES
    assert len(sleeps) == (2 if retryable else 0)
    assert ("gave up after 3 attempts" in err.message) == retryable


def test_observers_hear_every_request_retries_included(world: RunningEmulator, make_client: MakeClient) -> None:
    client = make_client(world, retry=RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.002))
    heard: list[tuple[str, float, str | None]] = []
    client.observe(lambda action, seconds, error: heard.append((action, seconds, error)))
    client.assign_private_ip_addresses("eni-emunode1", count=12)  # two requests: 10 + 2
    assert [(a, err) for a, _, err in heard] == [("AssignPrivateIpAddresses", None)] * 2
    assert all(seconds >= 0 for _, seconds, _ in heard)
    heard.clear()
    world.set_fault("DescribeVpcs", failure_ratio=1.0, failure_code="InternalError")
    with pytest.raises(e.CloudUnavailable):
        client.describe_vpcs()
    assert [(a, err) for a, _, err in heard] == [("DescribeVpcs", "InternalError")] * 3


def test_ram_denial(world: RunningEmulator, make_client: MakeClient) -> None:
    client = make_client(world, access_key_id="LTAI5tDeniedKey", access_key_secret="DeniedSecret000")
    eni = client.create_network_interface(vswitch_id=POD_VSW, security_group_ids=[SG])
    with pytest.raises(e.CloudForbidden) as caught:
        client.delete_network_interface(eni.network_interface_id)
    assert caught.value.code == "Forbidden.RAM" and "DeleteNetworkInterface" in (caught.value.hint or "")


def test_client_token_reused_with_other_parameters(client: CloudClient) -> None:
    client.create_network_interface(vswitch_id=POD_VSW, security_group_ids=[SG], client_token="tok-1")
    same = client.describe_network_interfaces(vswitch_id=POD_VSW)
    client.create_network_interface(vswitch_id=POD_VSW, security_group_ids=[SG], client_token="tok-1")
    assert client.describe_network_interfaces(vswitch_id=POD_VSW) == same  # same token: created once
    with pytest.raises(e.CloudIdempotentFailed) as caught:
        client.create_network_interface(vswitch_id=POD_VSW, security_group_ids=[SG], client_token="tok-1", name="other")
    assert_error(caught.value)


def test_wrong_secret(world: RunningEmulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(world, access_key_secret="WrongSecretValue987654321")
    with pytest.raises(e.CloudAuthError) as caught:
        client.describe_vpcs()
    err = caught.value
    assert err.code in ("SignatureDoesNotMatch", "InvalidAccessKeySecret") and err.exit_code == 2
    assert "AccessKey" in (err.hint or "")
    assert_error(err)
    log_text = client_side_log(caplog)
    assert "ServerException occurred" in log_text  # the SDK did log, scrubbed
    assert "WrongSecretValue987654321" not in str(err) + log_text
    assert_no_secret(log_text)


def test_unknown_key_id(world: RunningEmulator, make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(world, access_key_id="LTAI5tNoSuchKeyAnywhere", access_key_secret=SECRET)
    with pytest.raises(e.CloudAuthError) as caught:
        client.describe_instance_types()
    assert caught.value.code == "InvalidAccessKeyId.NotFound" and caught.value.http_status == 404
    assert_error(caught.value)
    log_text = client_side_log(caplog)
    assert "LTAI5tNoSuchKeyAnywhere" not in str(caught.value) + log_text
    assert_no_secret(log_text)


def test_sts_credentials(world: RunningEmulator) -> None:
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": STS_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": STS_SECRET}
    without = build_client(region=world.region, endpoint=world.url, environ=env, metadata=MetadataService(enabled=False),
                           settings=_no_retry())
    with without, pytest.raises(e.CloudAuthError) as caught:
        without.describe_vpcs()
    assert caught.value.code == "MissingSecurityToken"
    env["ALIBABA_CLOUD_SECURITY_TOKEN"] = STS_TOKEN
    with build_client(region=world.region, endpoint=world.url, environ=env, metadata=MetadataService(enabled=False)) as client:
        assert client.credentials_source == "environment"
        assert client.describe_vpcs()


def test_profile_file_credentials(world: RunningEmulator, cloud_env: CloudEnv) -> None:
    cloud_env.write_aliyun_config({"current": "emu", "profiles": [
        {"name": "emu", "mode": "AK", "access_key_id": KEY_ID, "access_key_secret": SECRET, "region_id": world.region},
        {"name": "sts", "mode": "StsToken", "access_key_id": STS_ID, "access_key_secret": STS_SECRET,
         "sts_token": STS_TOKEN, "region_id": world.region},
    ]})
    for profile in (None, "sts"):
        with build_client(profile=profile, endpoint=world.url) as client:  # region from the profile too
            assert client.region == world.region
            assert client.describe_vswitches(vswitch_ids=[POD_VSW])
            assert_no_secret(repr(client))


# -------------------------------------------------------------------------------- retries


def test_throttled_call_succeeds_after_retries(world: RunningEmulator, make_client: MakeClient,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="terwayctl.cloud")
    world.set_fault("DescribeVSwitches", qps=2)
    client = make_client(world, retry=RetryPolicy(max_attempts=20, max_elapsed=10, initial_backoff=0.05, max_backoff=0.3))
    for _ in range(3):
        assert len(client.describe_vswitches()) == 4
    assert "DescribeVSwitches: Throttling, retry" in caplog.text


def test_rate_limiter_keeps_under_the_server_limit(world: RunningEmulator, make_client: MakeClient,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    from terwayctl.cloud.ratelimit import RateLimits

    caplog.set_level(logging.DEBUG, logger="terwayctl.cloud")
    world.set_fault("DescribeVpcs", qps=4)
    client = make_client(world, rate_limits=RateLimits(read_qps=3), retry=RetryPolicy(max_attempts=1))
    started = time.monotonic()
    for _ in range(4):
        client.describe_vpcs()
    assert time.monotonic() - started >= 0.9  # 4 calls at 3 QPS
    assert "Throttling" not in caplog.text


def test_persistent_failure_stops_within_its_bounds(world: RunningEmulator, make_client: MakeClient) -> None:
    world.set_fault("DescribeVpcs", failure_ratio=1.0, failure_code="ServiceUnavailable", latency_ms=100)
    client = make_client(world, retry=RetryPolicy(max_attempts=50, max_elapsed=0.5, initial_backoff=0.01, max_backoff=0.05))
    started = time.monotonic()
    with pytest.raises(e.CloudUnavailable) as caught:
        client.describe_vpcs()
    assert time.monotonic() - started < 1.5
    assert caught.value.http_status == 503 and "gave up after" in caught.value.message


def test_connection_errors_are_retried_then_typed(cloud_env: CloudEnv) -> None:
    sleeps: list[float] = []
    from terwayctl.cloud.client import ClientSettings
    from terwayctl.cloud.ratelimit import RateLimits

    client = build_client(
        region="cn-hangzhou", endpoint="http://127.0.0.1:9", access_key_id=KEY_ID, access_key_secret=SECRET,
        environ={}, metadata=MetadataService(enabled=False), sleep=sleeps.append,
        settings=ClientSettings(connect_timeout=1, read_timeout=1, rate_limits=RateLimits(read_qps=0),
                                retry=RetryPolicy(max_attempts=3, initial_backoff=0.001)),
    )
    with client, pytest.raises(e.CloudConnectionError) as caught:
        client.describe_vpcs()
    assert len(sleeps) == 2
    assert "127.0.0.1:9" in caught.value.message and caught.value.exit_code == 1
    assert_error(caught.value)


def test_read_timeout_is_retried(world: RunningEmulator, make_client: MakeClient) -> None:
    world.set_fault("DescribeVpcs", latency_ms=700)
    sleeps: list[float] = []

    def clear_then_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        world.clear_faults()

    client = make_client(world, read_timeout=0.2, sleep=clear_then_sleep,
                         retry=RetryPolicy(max_attempts=3, initial_backoff=0.001))
    assert client.describe_vpcs()
    assert len(sleeps) == 1


@pytest.mark.parametrize("action", ["CreateNetworkInterface", "AssignPrivateIpAddresses"])
def test_retry_after_a_lost_reply_creates_once(world: RunningEmulator, make_client: MakeClient, action: str) -> None:
    """The first attempt does the work but its reply is lost (InternalError after commit); the retry
    carries the same ClientToken, so the emulator answers with the first result instead of acting again."""
    sleeps: list[float] = []

    def clear_then_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        world.clear_faults()

    client = make_client(world, sleep=clear_then_sleep)
    before_enis = client.describe_network_interfaces(vswitch_id=POD_VSW)
    target = client.create_network_interface(vswitch_id=POD_VSW, security_group_ids=[SG])
    world.set_fault(action, failure_ratio=1.0, failure_code="InternalError", fail_after_commit=True)
    if action == "CreateNetworkInterface":
        made = client.create_network_interface(vswitch_id=POD_VSW, security_group_ids=[SG])
        after = client.describe_network_interfaces(vswitch_id=POD_VSW)
        assert len(after) == len(before_enis) + 2  # `target` and `made`: one each, no duplicate
        assert made.network_interface_id in {n.network_interface_id for n in after}
    else:
        got = client.assign_private_ip_addresses(target.network_interface_id, count=4)
        (seen,) = client.describe_network_interfaces(network_interface_ids=[target.network_interface_id])
        assert len(got) == 4 and len(seen.private_ips) == 5  # primary + 4, not + 8
    assert len(sleeps) == 1


def _no_retry() -> Any:
    from terwayctl.cloud.client import ClientSettings

    return ClientSettings(retry=RetryPolicy(max_attempts=1))
