"""The wire protocol: signing (GET and POST), key pairs, STS tokens, RAM denials and error bodies."""

from __future__ import annotations

import time
import uuid
from typing import Any

from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest

from terwayctl.emulator import VPC_VERSION
from terwayctl.emulator.signing import sign, string_to_sign
from tests.fixtures.emulator import RunningEmulator, SdkCaller, raw_request

ERROR_KEYS = {"RequestId", "HostId", "Code", "Message", "Recommend"}


def test_signed_get_and_post_form_are_both_served(emulator: RunningEmulator) -> None:
    for method in ("GET", "POST"):
        reply = emulator.call("DescribeVpcs", version=VPC_VERSION, method=method, PageSize=5)
        assert reply.status == 200, reply.body
        assert reply.body["Vpcs"]["Vpc"][0]["VpcId"] == "vpc-emudefault"
        assert reply.body["PageSize"] == 5 and reply.body["RequestId"]


def test_string_to_sign_matches_the_sdk() -> None:
    from aliyunsdkcore.auth.composer import rpc_signature_composer

    params = {"Action": "DescribeVpcs", "Name": "a b*c~d/é", "Tag.1.Key": "k=v&x"}
    url, sdk_text = rpc_signature_composer.get_signed_url(dict(params), "ak", "secret", "JSON", "POST", {})
    sent = dict(kv.split("=", 1) for kv in url.removeprefix("/?").split("&"))
    from urllib.parse import unquote

    received = {k: unquote(v) for k, v in sent.items()}
    assert string_to_sign("POST", received) == sdk_text
    assert sign(sdk_text, "secret") == received["Signature"]


def test_unknown_access_key(emulator: RunningEmulator) -> None:
    reply = emulator.call("DescribeInstances", access_key_id="nobody")
    assert reply.status == 404
    assert reply.body["Code"] == "InvalidAccessKeyId.NotFound"
    assert set(reply.body) == ERROR_KEYS


def test_wrong_signature(emulator: RunningEmulator) -> None:
    reply = emulator.call("DescribeInstances", access_key_secret="wrong")
    assert (reply.status, reply.body["Code"]) == (400, "SignatureDoesNotMatch")
    assert "server string to sign is:GET&%2F&" in reply.body["Message"]
    assert reply.body["HostId"] == "ecs.aliyuncs.com"


def test_wrong_secret_through_the_sdk_is_reported_as_invalid_secret(emulator: RunningEmulator) -> None:
    # The SDK compares the server's string-to-sign with its own and renames the code when they agree.
    caller = SdkCaller(emulator, access_key_secret="wrong")
    try:
        error = caller.error(DescribeInstancesRequest())
    finally:
        caller.close()
    assert (error.get_error_code(), error.get_http_status()) == ("InvalidAccessKeySecret", 400)


def test_tampered_parameters_fail_the_signature(emulator: RunningEmulator) -> None:
    params = _signed(emulator, "DescribeInstances")
    params["PageSize"] = "2"
    reply = raw_request(emulator.url, "GET", params)
    assert reply.body["Code"] == "SignatureDoesNotMatch"


def test_replayed_nonce_and_stale_timestamp(emulator: RunningEmulator) -> None:
    params = _signed(emulator, "DescribeInstances")
    assert raw_request(emulator.url, "GET", params).status == 200
    replay = raw_request(emulator.url, "GET", params)
    assert (replay.status, replay.body["Code"]) == (400, "SignatureNonceUsed")
    stale = _signed(emulator, "DescribeInstances", Timestamp="2020-01-01T00:00:00Z")
    assert raw_request(emulator.url, "GET", stale).body["Code"] == "InvalidTimeStamp.Expired"


def test_unknown_action_and_wrong_version(emulator: RunningEmulator) -> None:
    reply = emulator.call("RunInstances")
    assert (reply.status, reply.body["Code"]) == (404, "InvalidAction.NotFound")
    reply = emulator.call("DescribeVpcs")  # a VPC action under the ECS version
    assert (reply.status, reply.body["Code"]) == (404, "InvalidAction.NotFound")
    reply = emulator.call("DescribeInstances", version="2099-01-01")
    assert (reply.status, reply.body["Code"]) == (400, "InvalidVersion")
    reply = emulator.call("DescribeInstances", extra={"RegionId": "cn-beijing"})
    assert (reply.status, reply.body["Code"]) == (404, "InvalidRegionId.NotFound")


def test_missing_signature_parameters(emulator: RunningEmulator) -> None:
    reply = raw_request(emulator.url, "GET", {"Action": "DescribeInstances", "Version": "2014-05-26"})
    assert (reply.status, reply.body["Code"]) == (400, "MissingAccessKeyId")


STS_WORLD: dict[str, Any] = {
    "key_pairs": [
        {"access_key_id": "STS.temp", "access_key_secret": "temp-secret", "security_token": "token-123"},
        {"access_key_id": "reader", "access_key_secret": "reader-secret", "denied_actions": ["CreateNetworkInterface"]},
    ],
}


def test_sts_token_through_the_sdk(emulator_factory: Any) -> None:
    running = emulator_factory(STS_WORLD)
    good = SdkCaller(running, credential=StsTokenCredential("STS.temp", "temp-secret", "token-123"))
    bad = SdkCaller(running, credential=StsTokenCredential("STS.temp", "temp-secret", "stolen"))
    try:
        assert good.call(DescribeVpcsRequest())["Vpcs"]["Vpc"] == []
        error = bad.error(DescribeVpcsRequest())
        assert error.get_error_code() == "InvalidSecurityToken.MismatchWithAccessKey"
    finally:
        good.close()
        bad.close()
    reply = running.call("DescribeInstances")  # the first key pair, without its token
    assert reply.body["Code"] == "MissingSecurityToken"


def test_ram_denial(emulator_factory: Any) -> None:
    running = emulator_factory({**STS_WORLD, "vpcs": [{"cidr": "10.0.0.0/8"}],
                                "vswitches": [{"cidr": "10.0.0.0/24", "zone": "cn-hangzhou-i"}],
                                "security_groups": [{"name": "sg"}]})
    reply = running.call("CreateNetworkInterface", access_key_id="reader", access_key_secret="reader-secret",
                         VSwitchId="vsw-x", SecurityGroupId="sg-x")
    assert (reply.status, reply.body["Code"]) == (403, "Forbidden.RAM")
    reply = running.call("DescribeInstances", access_key_id="reader", access_key_secret="reader-secret")
    assert reply.status == 200


def _signed(emulator: RunningEmulator, action: str, **overrides: str) -> dict[str, str]:
    params = {
        "Action": action, "Version": "2014-05-26", "Format": "JSON", "RegionId": emulator.region,
        "AccessKeyId": emulator.access_key_id, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
        "SignatureNonce": uuid.uuid4().hex, "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **overrides,
    }
    params["Signature"] = sign(string_to_sign("GET", params), emulator.access_key_secret)
    return params
