"""OpenAPI errors as the emulator returns them: a code, a message and the real HTTP status."""

from __future__ import annotations

# HTTP status per error code, as Alibaba Cloud documents them for ECS 2014-05-26 and VPC 2016-04-28.
# A code not listed here (e.g. a MissingXxx code) is a client error: 400.
STATUS_BY_CODE: dict[str, int] = {
    "InvalidAccessKeyId.NotFound": 404,
    "InvalidAction.NotFound": 404,
    "InvalidEniId.NotFound": 404,
    "InvalidInstanceId.NotFound": 404,
    "InvalidVSwitchId.NotFound": 404,
    "InvalidVpcId.NotFound": 404,
    "InvalidSecurityGroupId.NotFound": 404,
    "InvalidNatGatewayId.NotFound": 404,
    "InvalidSnatTableId.NotFound": 404,
    "Forbidden.RAM": 403,
    "EniPerInstanceLimitExceeded": 403,
    "InvalidOperation.Ipv4CountExceeded": 403,
    "InvalidOperation.Ipv6CountExceeded": 403,
    "QuotaExceeded.PrivateIpAddress": 403,
    "InvalidVSwitchId.IpNotEnough": 403,
    "InvalidOperation.DetachPrimaryEniNotAllowed": 403,
    "InvalidOperation.DeletePrimaryIp": 403,
    "Operation.Conflict": 403,
    "InternalError": 500,
    "ServiceUnavailable": 503,
}


def status_for(code: str) -> int:
    """The HTTP status Alibaba Cloud answers `code` with (400 when not listed)."""
    return STATUS_BY_CODE.get(code, 400)


class ApiError(Exception):
    """An OpenAPI error reply: `{RequestId, HostId, Code, Message, Recommend}` with `status`."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else status_for(code)


def missing(name: str) -> ApiError:
    """A required parameter is absent: Alibaba Cloud's `Missing<Name>` code."""
    return ApiError(f"Missing{name.replace('.', '')}", f"The input parameter \"{name}\" that is mandatory "
                    "for processing this request is not supplied.")


def invalid_parameter(name: str, detail: str) -> ApiError:
    return ApiError("InvalidParameter", f"The specified parameter \"{name}\" is not valid: {detail}")


def not_found(kind: str, resource_id: str) -> ApiError:
    """`Invalid<Kind>Id.NotFound` (404) for an unknown id."""
    return ApiError(f"Invalid{kind}Id.NotFound", f"The specified {kind} \"{resource_id}\" does not exist.")
