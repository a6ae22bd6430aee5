"""The only module that touches aliyun-python-sdk-core, -ecs and -vpc.

It builds an `AcsClient` (SDK retries off, explicit timeouts), builds the SDK's own typed request
for an action, sends it, and turns the SDK's exceptions into `SdkServerError` / `SdkClientError`
so the rest of the package never sees SDK types. The SDK has no type stubs: the Protocols below
describe the few methods used, and the SDK objects are cast to them here.

Imported lazily (it imports the SDK), never at import time of terwayctl.cli.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from aliyunsdkcore.acs_exception.exceptions import (  # type: ignore[import-untyped]
    ClientException,
    ServerException,
)
from aliyunsdkcore.auth.credentials import (  # type: ignore[import-untyped]
    AccessKeyCredential,
    StsTokenCredential,
)
from aliyunsdkcore.auth.signers.access_key_signer import AccessKeySigner  # type: ignore[import-untyped]
from aliyunsdkcore.auth.signers.sts_token_signer import StsTokenSigner  # type: ignore[import-untyped]
from aliyunsdkcore.client import AcsClient  # type: ignore[import-untyped]

from terwayctl.cloud.errors import scrub

if TYPE_CHECKING:
    from terwayctl.cloud.credentials import CloudCredentials, CredentialsProvider

# product -> (request package, API version)
PRODUCTS: Mapping[str, str] = {
    "ecs": "aliyunsdkecs.request.v20140526",
    "vpc": "aliyunsdkvpc.request.v20160428",
}

SDK_HTTP_ERROR = "SDK.HttpError"
NOT_OPENAPI = "SDK.NotOpenAPI"


class AcsRequest(Protocol):
    def add_query_param(self, k: str, v: object) -> None: ...
    def set_endpoint(self, endpoint: str) -> None: ...
    def set_protocol_type(self, protocol_type: str) -> None: ...


class AcsTransport(Protocol):
    def do_action_with_exception(self, acs_request: AcsRequest) -> bytes: ...


class SdkServerError(Exception):
    """The API answered with an error: its code, message, HTTP status and request id."""

    def __init__(self, code: str, message: str, http_status: int | None, request_id: str | None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.request_id = request_id


class SdkClientError(Exception):
    """The SDK failed before or without an API reply (connection, timeout, bad endpoint...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 10.0


def _sdk_credential(found: CloudCredentials) -> Any:
    if found.security_token:
        return StsTokenCredential(found.access_key_id, found.access_key_secret, found.security_token)
    return AccessKeyCredential(found.access_key_id, found.access_key_secret)


class _ProviderSigner:
    """The AcsClient's signer: asks the provider on every signing, then signs as the SDK's own
    AccessKeySigner / StsTokenSigner do (aliyunsdkcore 2.x has no provider hook of its own)."""

    def __init__(self, session: SdkSession, provider: CredentialsProvider) -> None:
        self._session = session
        self._provider = provider

    def sign(self, region_id: str, request: Any) -> Any:
        found = self._provider.get_credentials()
        self._session.remember(found.secrets())
        credential = _sdk_credential(found)
        if found.security_token:
            return StsTokenSigner(credential).sign(region_id, request)
        return AccessKeySigner(credential).sign(region_id, request)


class SdkSession:
    """An AcsClient (with its HTTP connection pool) and the secrets to scrub from its output.

    The credentials come from `provider` at each signing, so a provider that re-reads its source
    (terwayctl.cloud.credentials.CredentialFiles) rotates keys without a new client.
    """

    def __init__(
        self,
        *,
        region: str,
        provider: CredentialsProvider,
        timeouts: Timeouts,
        pool_size: int = 10,
    ) -> None:
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()
        first = provider.get_credentials()
        self.remember(first.secrets())
        self._client: Any = AcsClient(
            region_id=region,
            credential=_sdk_credential(first),
            auto_retry=False,
            max_retry_time=0,
            connect_timeout=timeouts.connect,
            timeout=timeouts.read,
            pool_size=pool_size,
        )
        self._client._signer = _ProviderSigner(self, provider)
        self.transport = cast(AcsTransport, self._client)

    def remember(self, secrets: Iterable[str]) -> None:
        """Scrub these values from messages and SDK logs from now on (every key ever used)."""
        fresh = tuple(s for s in secrets if s and s not in self._secrets)
        if fresh:
            with self._lock:
                self._secrets = (*self._secrets, *(s for s in fresh if s not in self._secrets))
            install_log_scrubber(fresh)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def close(self) -> None:
        session = getattr(self._client, "session", None)
        if session is not None:
            session.close()


def new_request(product: str, action: str) -> AcsRequest:
    """The SDK's typed request class for `action` (e.g. ecs DescribeInstanceTypes), instantiated."""
    module = importlib.import_module(f"{PRODUCTS[product]}.{action}Request")
    request_class = getattr(module, f"{action}Request")
    return cast(AcsRequest, request_class())


def send(transport: AcsTransport, request: AcsRequest, secrets: Iterable[str]) -> dict[str, Any]:
    """Send one request; the JSON reply as a dict, or SdkServerError / SdkClientError."""
    secrets = tuple(secrets)
    try:
        body = transport.do_action_with_exception(request)
    except ServerException as exc:
        code = str(exc.get_error_code() or "")
        status = _as_int(exc.get_http_status())
        if code == "SDK.UnknownServerError":
            # The reply has no API error code: an HTML page, a proxy, anything but the OpenAPI.
            where = getattr(request, "endpoint", None)
            raise SdkClientError(
                NOT_OPENAPI,
                f"{where or 'the endpoint'} is not an Alibaba Cloud API endpoint: HTTP {status} without an API error code",
            ) from None
        raise SdkServerError(code, scrub(str(exc.get_error_msg() or ""), secrets), status, exc.get_request_id()) from None
    except ClientException as exc:
        code = str(exc.get_error_code() or "")
        message = str(exc.get_error_msg() or "")
        raise SdkClientError(code, connection_failure(message) if code == SDK_HTTP_ERROR else scrub(message, secrets)) from None
    except OSError as exc:
        raise SdkClientError(SDK_HTTP_ERROR, connection_failure(str(exc))) from None
    try:
        reply = json.loads(body.decode("utf-8") if isinstance(body, bytes) else body)
    except ValueError:
        raise SdkClientError(NOT_OPENAPI, "the reply is not JSON: not an Alibaba Cloud API endpoint") from None
    if not isinstance(reply, dict):
        raise SdkClientError(NOT_OPENAPI, "the reply is not a JSON object: not an Alibaba Cloud API endpoint")
    return reply


_READ_TIMEOUT = re.compile(r"read timeout=([0-9.]+)")
_CONNECT_TIMEOUT = re.compile(r"connect timeout=([0-9.]+)")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def connection_failure(text: str) -> str:
    """What failed, in a few words, from the HTTP library's message (which carries the signed URL)."""
    lowered = text.lower()
    read = _READ_TIMEOUT.search(text)
    if "read timed out" in lowered:
        return f"connected, but no answer in {float(read.group(1)):g} s" if read else "connected, but no answer"
    connect = _CONNECT_TIMEOUT.search(text)
    if "timed out" in lowered or "timeout" in lowered:
        return f"no answer to the connection in {float(connect.group(1)):g} s" if connect else "the connection timed out"
    if "refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "getaddrinfo" in lowered:
        return "the host name does not resolve"
    if "ssl" in lowered or "certificate" in lowered:
        return "the TLS handshake failed (certificate or protocol)"
    if "reset by peer" in lowered or "remotedisconnected" in lowered or "connection aborted" in lowered:
        return "the server closed the connection without an HTTP reply"
    found = _ERRNO.search(text)
    return found.group(1).strip() if found else "the HTTP request failed"


def _as_int(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


_SDK_LOGGERS = (
    "aliyunsdkcore",
    "aliyunsdkcore.client",
    "aliyunsdkcore.http.http_response",
    "aliyunsdkcore.auth.signers.access_key_signer",
    "aliyunsdkcore.auth.signers.sts_token_signer",
    "aliyunsdkcore.retry.retry_condition",
)


class _ScrubFilter(logging.Filter):
    """Rewrites SDK log records so that no registered secret (or signed parameter) shows."""

    def __init__(self) -> None:
        super().__init__("terwayctl-scrub")
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets.update(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = tuple(self._secrets)
        record.msg = scrub(record.getMessage(), secrets)
        record.args = None
        return True


_FILTER = _ScrubFilter()
_installed = False
_install_lock = threading.Lock()


def install_log_scrubber(secrets: Iterable[str]) -> None:
    """Attach the scrubbing filter to the SDK's loggers (once) and register `secrets` with it."""
    global _installed
    _FILTER.add(secrets)
    with _install_lock:
        if _installed:
            return
        for name in _SDK_LOGGERS:
            logger = logging.getLogger(name)
            logger.addFilter(_FILTER)
            for handler in logger.handlers:
                handler.addFilter(_FILTER)
        _installed = True
