"""Error codes -> typed exceptions with hints; secrets scrubbed from every message."""

from __future__ import annotations

import pytest

from terwayctl.cloud import errors as e
from terwayctl.core.errors import InvalidInput, NotFound, QuotaExceeded, TerwayctlError

PARAMS = {"VSwitchId": "vsw-x", "NetworkInterfaceId": "eni-1", "InstanceId": "i-1"}


@pytest.mark.parametrize(
    ("code", "kind", "base", "exit_code", "in_hint"),
    [
        ("InvalidVSwitchId.IpNotEnough", e.CloudQuotaExceeded, QuotaExceeded, 1, "vsw-x has no free IPs; add one with terwayctl vswitch add"),
        ("QuotaExceeded.PrivateIpAddress", e.CloudQuotaExceeded, QuotaExceeded, 1, "max_pool_size"),
        ("InvalidOperation.Ipv4CountExceeded", e.CloudQuotaExceeded, QuotaExceeded, 1, "10 per call"),
        ("EniPerInstanceLimitExceeded", e.CloudQuotaExceeded, QuotaExceeded, 1, "EniQuantity"),
        ("InvalidEniId.NotFound", e.CloudNotFound, NotFound, 2, "DescribeNetworkInterfaces"),
        ("InvalidOperation.InvalidEniState", e.CloudInvalidState, TerwayctlError, 1, "Available"),
        ("Throttling", e.CloudThrottled, e.CloudRetryableError, 1, "rate"),
        ("Throttling.User", e.CloudThrottled, e.CloudRetryableError, 1, "rate"),
        ("ServiceUnavailable", e.CloudUnavailable, e.CloudRetryableError, 1, "retry later"),
        ("InternalError", e.CloudUnavailable, e.CloudRetryableError, 1, "RequestId"),
        ("Operation.Conflict", e.CloudConflict, e.CloudRetryableError, 1, "retry"),
        ("IdempotentFailed", e.CloudIdempotentFailed, TerwayctlError, 1, "ClientToken"),
        ("Forbidden.RAM", e.CloudForbidden, TerwayctlError, 1, "RAM policy for CreateNetworkInterface"),
        ("InvalidAccessKeyId.NotFound", e.CloudAuthError, InvalidInput, 2, "ALIBABA_CLOUD_ACCESS_KEY_ID"),
        ("SignatureDoesNotMatch", e.CloudAuthError, InvalidInput, 2, "secret"),
        ("InvalidAccessKeySecret", e.CloudAuthError, InvalidInput, 2, "secret"),
        ("InvalidSecurityToken.Expired", e.CloudAuthError, InvalidInput, 2, "STS"),
    ],
)
def test_every_code_maps_to_a_typed_error(code: str, kind: type, base: type, exit_code: int, in_hint: str) -> None:
    err = e.translate_server_error(
        action="CreateNetworkInterface", code=code, message="server says no", request_id="req-1",
        http_status=400, params=PARAMS,
    )
    assert type(err) is kind
    assert isinstance(err, base) and isinstance(err, e.CloudError)
    assert err.exit_code == exit_code
    assert err.code == code and err.request_id == "req-1" and err.http_status == 400
    assert in_hint in (err.hint or "")
    assert code in err.message
    assert e.is_retryable_code(code) == isinstance(err, e.CloudRetryableError)


def test_unknown_code_keeps_code_and_message() -> None:
    err = e.translate_server_error(
        action="DescribeVpcs", code="Weird.Code", message="odd", request_id=None, http_status=400, params={}
    )
    assert type(err) is e.CloudError
    assert err.message == "DescribeVpcs failed: Weird.Code (odd)"
    assert err.hint is None


def test_any_not_found_code_is_not_found() -> None:
    err = e.translate_server_error(
        action="DescribeSnatTableEntries", code="InvalidSnatTableId.NotFound", message="m", request_id=None,
        http_status=404, params={},
    )
    assert isinstance(err, e.CloudNotFound) and err.exit_code == 2


def test_missing_template_field_reads_as_question_mark() -> None:
    err = e.translate_server_error(
        action="AssignPrivateIpAddresses", code="InvalidVSwitchId.IpNotEnough", message="", request_id=None,
        http_status=403, params={},
    )
    assert err.message.startswith("vSwitch ? has no free IPs")


def test_signature_error_never_echoes_the_server_message() -> None:
    echoed = "Specified signature is not matched with our calculation. server string to sign is:GET&%2F&AccessKeyId%3DLTAIsecretid"
    err = e.translate_server_error(
        action="DescribeVpcs", code="SignatureDoesNotMatch", message=echoed, request_id="r", http_status=400,
        params={}, secrets=["LTAIsecretid"],
    )
    assert "LTAIsecretid" not in str(err) and "LTAIsecretid" not in err.message
    assert "string to sign" not in err.message


def test_scrub_removes_secrets_and_credential_params() -> None:
    text = "key LTAI5tSecretKeyId secret=abc AccessKeyId=LTAIother&SecurityToken=tok123 sts_token: zzz"
    out = e.scrub(text, ["LTAI5tSecretKeyId"])
    for secret in ("LTAI5tSecretKeyId", "LTAIother", "tok123", "zzz"):
        assert secret not in out
    assert "AccessKeyId=***" in out


def test_message_names_code_and_request_id() -> None:
    err = e.translate_server_error(
        action="DeleteNetworkInterface", code="InvalidEniId.NotFound", message="The ENI does not exist.",
        request_id="ABC-123", http_status=404, params={"NetworkInterfaceId": "eni-9"},
    )
    assert str(err) == err.message == (
        "ENI eni-9 does not exist (InvalidEniId.NotFound: The ENI does not exist.; RequestId ABC-123)"
    )
