"""Alibaba Cloud errors as typed exceptions, and the one table that maps API codes onto them.

Every exception carries the API code, the request id, the HTTP status and a user-facing hint.
Messages never contain credentials: `translate_server_error` drops whatever the server echoed
for signature failures (it contains the string to sign, including the AccessKeyId) and
`scrub` removes known secrets from any text that leaves this package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from terwayctl.core.errors import InvalidInput, NotFound, QuotaExceeded, TerwayctlError


class CloudError(TerwayctlError):
    """A failed Alibaba Cloud API call (exit 1 unless a subclass says otherwise)."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        code: str = "",
        request_id: str | None = None,
        http_status: int | None = None,
        action: str = "",
    ) -> None:
        super().__init__(message, hint)
        self.code = code
        self.request_id = request_id
        self.http_status = http_status
        self.action = action



class CloudRetryableError(CloudError):
    """Transient: retried with backoff; raised only when the retry budget is spent."""


class CloudThrottled(CloudRetryableError):
    """Throttling: the API's rate limit was hit."""


class CloudUnavailable(CloudRetryableError):
    """ServiceUnavailable / InternalError, or the endpoint could not be reached."""


class CloudConnectionError(CloudUnavailable):
    """The HTTP connection failed or timed out (no API code)."""


class CloudConflict(CloudRetryableError):
    """Operation.Conflict: another operation on the same resource is in progress."""


class CloudNotFound(CloudError, NotFound):
    """A resource named in the call does not exist (exit 2)."""


class CloudQuotaExceeded(CloudError, QuotaExceeded):
    """No free IPs in a vSwitch, or an ENI / IP / instance quota is reached."""


class CloudInvalidState(CloudError):
    """The resource is in a state that does not allow the operation (e.g. an ENI still attaching)."""


class CloudIdempotentFailed(CloudError):
    """A ClientToken was reused with different parameters."""


class CloudForbidden(CloudError):
    """The RAM user or role lacks a permission."""


class CloudAuthError(CloudError, InvalidInput):
    """The access key is unknown, the secret is wrong, or the STS token is invalid (exit 2)."""


class CloudInvalidParameter(CloudError, InvalidInput):
    """The API rejected a parameter (exit 2)."""


class CredentialsNotFound(InvalidInput):
    """No credentials anywhere in the chain."""


class RegionNotFound(InvalidInput):
    """No region from the flag, the environment, the profile or the instance metadata."""


CREDENTIALS_HINT = (
    "set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, "
    "or configure a profile with 'aliyun configure' (select it with --profile), "
    "or run on an ECS instance with a RAM role"
)


@dataclass(frozen=True)
class ErrorSpec:
    """How one API code becomes an exception: the class, a message and a hint.

    Templates use `{VSwitchId}`, `{NetworkInterfaceId}`, `{InstanceId}`, `{action}`, `{message}`,
    filled from the request's parameters; a missing parameter reads as "?".
    """

    kind: type[CloudError]
    message: str
    hint: str | None


_AUTH_HINT = "check the AccessKey id and secret (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET or the --profile)"

ERROR_TABLE: Mapping[str, ErrorSpec] = {
    "InvalidVSwitchId.IpNotEnough": ErrorSpec(
        CloudQuotaExceeded,
        "vSwitch {VSwitchId} has no free IPs",
        "vSwitch {VSwitchId} has no free IPs; add one with terwayctl vswitch add",
    ),
    "QuotaExceeded.PrivateIpAddress": ErrorSpec(
        CloudQuotaExceeded,
        "ENI {NetworkInterfaceId} cannot take more private IPs",
        "the ENI reached EniPrivateIpAddressQuantity of its instance type; "
        "lower max_pool_size or use a larger instance type (terwayctl capacity)",
    ),
    "InvalidOperation.Ipv4CountExceeded": ErrorSpec(
        CloudQuotaExceeded,
        "too many IPv4 addresses for ENI {NetworkInterfaceId}",
        "an ENI takes at most EniPrivateIpAddressQuantity addresses, and 10 per call; "
        "see terwayctl capacity for the instance type",
    ),
    "EniPerInstanceLimitExceeded": ErrorSpec(
        CloudQuotaExceeded,
        "instance {InstanceId} has no free ENI slot",
        "the instance reached EniQuantity of its type; detach an unused ENI or use a larger "
        "instance type (terwayctl capacity)",
    ),
    "InvalidEniId.NotFound": ErrorSpec(
        CloudNotFound,
        "ENI {NetworkInterfaceId} does not exist",
        "list the node's ENIs with aliyun ecs DescribeNetworkInterfaces; the ENI may have been deleted",
    ),
    "InvalidInstanceId.NotFound": ErrorSpec(
        CloudNotFound,
        "instance {InstanceId} does not exist",
        "check the instance id and the region (--region)",
    ),
    "InvalidVSwitchId.NotFound": ErrorSpec(
        CloudNotFound,
        "vSwitch {VSwitchId} does not exist",
        "check the vSwitch id and the region (--region)",
    ),
    "InvalidVpcId.NotFound": ErrorSpec(
        CloudNotFound,
        "VPC {VpcId} does not exist",
        "check the VPC id and the region (--region)",
    ),
    "InvalidOperation.InvalidEniState": ErrorSpec(
        CloudInvalidState,
        "ENI {NetworkInterfaceId} is not in a state that allows {action}",
        "wait until the ENI is Available (detached) or InUse (attached) and retry",
    ),
    "Throttling": ErrorSpec(
        CloudThrottled,
        "{action} was throttled by Alibaba Cloud",
        "lower the request rate (the client's per-API QPS) or retry later",
    ),
    "ServiceUnavailable": ErrorSpec(
        CloudUnavailable,
        "the {action} service is unavailable",
        "retry later; if it persists check the Alibaba Cloud status page",
    ),
    "InternalError": ErrorSpec(
        CloudUnavailable,
        "Alibaba Cloud had an internal error in {action}",
        "retry later; report the RequestId to Alibaba Cloud support if it persists",
    ),
    "Operation.Conflict": ErrorSpec(
        CloudConflict,
        "another operation on the same resource is in progress ({action})",
        "retry when the other operation has finished",
    ),
    "IdempotentFailed": ErrorSpec(
        CloudIdempotentFailed,
        "{action} reused a ClientToken with different parameters",
        "this is a bug in the caller: a ClientToken must be unique per request; report it",
    ),
    "IdempotentParameterMismatch": ErrorSpec(
        CloudIdempotentFailed,
        "{action} reused a ClientToken with different parameters",
        "this is a bug in the caller: a ClientToken must be unique per request; report it",
    ),
    "Forbidden.RAM": ErrorSpec(
        CloudForbidden,
        "the RAM user or role is not allowed to call {action}",
        "grant the RAM policy for {action} (e.g. AliyunECSFullAccess / AliyunVPCReadOnlyAccess) "
        "to the user or role",
    ),
    "InvalidAccessKeyId.NotFound": ErrorSpec(
        CloudAuthError,
        "the AccessKey id is unknown to Alibaba Cloud",
        _AUTH_HINT,
    ),
    "SignatureDoesNotMatch": ErrorSpec(
        CloudAuthError,
        "the request signature does not match: the AccessKey secret is wrong",
        _AUTH_HINT,
    ),
    "InvalidAccessKeySecret": ErrorSpec(
        CloudAuthError,
        "the AccessKey secret is wrong",
        _AUTH_HINT,
    ),
}

# Codes that share a prefix with a table entry (Throttling.User, Throttling.Api, Forbidden.*, ...).
_PREFIX_TABLE: Mapping[str, ErrorSpec] = {
    "Throttling": ERROR_TABLE["Throttling"],
    "ServiceUnavailable": ERROR_TABLE["ServiceUnavailable"],
    "InternalError": ERROR_TABLE["InternalError"],
    "Forbidden": ERROR_TABLE["Forbidden.RAM"],
    "InvalidSecurityToken": ErrorSpec(
        CloudAuthError,
        "the STS security token is invalid or expired",
        "refresh the STS token (ALIBABA_CLOUD_SECURITY_TOKEN or the profile's sts_token)",
    ),
    "MissingSecurityToken": ErrorSpec(
        CloudAuthError,
        "this AccessKey is an STS key and needs its security token",
        "set ALIBABA_CLOUD_SECURITY_TOKEN (or use a StsToken profile) together with the STS AccessKey",
    ),
    "InvalidAccessKeyId": ERROR_TABLE["InvalidAccessKeyId.NotFound"],
    "IncompleteSignature": ERROR_TABLE["SignatureDoesNotMatch"],
}

RETRYABLE_CODES = frozenset({"Throttling", "ServiceUnavailable", "InternalError", "Operation.Conflict"})

# Codes whose server message may echo the string to sign (which carries the AccessKeyId).
_CODES_WITH_SECRET_ECHO = frozenset({"SignatureDoesNotMatch", "InvalidAccessKeySecret", "IncompleteSignature"})


def spec_for(code: str) -> ErrorSpec | None:
    """The table entry for an API code (exact, then by dotted prefix, then *.NotFound)."""
    if code in ERROR_TABLE:
        return ERROR_TABLE[code]
    head = code.split(".", 1)[0]
    if head in _PREFIX_TABLE:
        return _PREFIX_TABLE[head]
    if code.endswith(".NotFound"):
        return ErrorSpec(CloudNotFound, "{action}: " + code, "check the id and the region (--region)")
    if code.startswith(("InvalidParameter", "MissingParameter", "InvalidParam")):
        return ErrorSpec(CloudInvalidParameter, "{action} rejected a parameter: {message}", None)
    return None


def is_retryable_code(code: str) -> bool:
    return code in RETRYABLE_CODES or code.split(".", 1)[0] in ("Throttling", "ServiceUnavailable", "InternalError")


def translate_server_error(
    *,
    action: str,
    code: str,
    message: str,
    request_id: str | None,
    http_status: int | None,
    params: Mapping[str, object],
    secrets: Iterable[str] = (),
) -> CloudError:
    """One API error reply as the matching typed exception."""
    server_message = "" if code in _CODES_WITH_SECRET_ECHO else scrub(message, secrets)
    fields = _Fields(params, action=action, message=server_message or code)
    spec = spec_for(code)
    request = f"RequestId {request_id}" if request_id else ""
    if spec is None:
        detail = "; ".join(p for p in (server_message, request) if p)
        text = f"{action} failed: {code}" + (f" ({detail})" if detail else "")
        return CloudError(text, None, code=code, request_id=request_id, http_status=http_status, action=action)
    text = spec.message.format_map(fields)
    said = f"{code}: {server_message}" if server_message and server_message not in text else code
    if spec.kind is CloudInvalidParameter or code in text:
        said = ""
    detail = "; ".join(p for p in (said, request) if p)
    if detail:
        text += f" ({detail})"
    hint = spec.hint.format_map(fields) if spec.hint else None
    return spec.kind(text, hint, code=code, request_id=request_id, http_status=http_status, action=action)


def connection_error(action: str, detail: str, endpoint: str, secrets: Iterable[str] = ()) -> CloudConnectionError:
    return CloudConnectionError(
        f"cannot reach the {action} endpoint {endpoint}: {scrub(_first_line(detail), secrets)}",
        "check the network, --region and --endpoint / TERWAYCTL_ENDPOINT (refused connections and timeouts "
        "are retried for a bounded time)",
        code="SDK.HttpError",
        action=action,
    )


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


class _Fields(dict[str, str]):
    """Template fields: request parameters by name; unknown names read as '?'."""

    def __init__(self, params: Mapping[str, object], *, action: str, message: str) -> None:
        super().__init__({k: str(v) for k, v in params.items()})
        self["action"] = action
        self["message"] = message

    def __missing__(self, key: str) -> str:
        return "?"


_SECRET_PARAMS = re.compile(
    r"(AccessKeyId|AccessKeySecret|SecurityToken|Signature|access_key_id|access_key_secret|sts_token)"
    r"(%3D|=|:\s*|\"\s*:\s*\")([^&\s\"',]+)",
    re.IGNORECASE,
)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secret values and without key=value pairs of credential params."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _SECRET_PARAMS.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
