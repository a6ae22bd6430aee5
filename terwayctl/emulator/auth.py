"""Authentication of an RPC call: key pair, STS token, signature, timestamp and nonce, RAM denials."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from calendar import timegm
from collections.abc import Callable, Mapping

from terwayctl.emulator import signing
from terwayctl.emulator.errors import ApiError, missing

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_CLOCK_SKEW_S = 15 * 60


class NonceCache:
    """Nonces seen in the last 15 minutes: a replayed signed request is refused."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def remember(self, nonce: str) -> bool:
        """True if the nonce is new (and now remembered)."""
        now = self._clock()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {n: t for n, t in self._seen.items() if now - t < MAX_CLOCK_SKEW_S}
            if nonce in self._seen:
                return False
            self._seen[nonce] = now
            return True


def authenticate(
    conn: sqlite3.Connection, method: str, params: Mapping[str, str], now: float, nonces: NonceCache
) -> None:
    """Raise the ApiError the real gateway answers with, or return for a well-signed call."""
    for name in ("AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp"):
        if not params.get(name):
            raise missing(name)
    if params["SignatureMethod"] != signing.SIGNATURE_METHOD:
        raise ApiError("InvalidSignatureMethod.Malformed", f"Specified signature method \"{params['SignatureMethod']}\""
                       " is not valid; use HMAC-SHA1.")
    if params["SignatureVersion"] != signing.SIGNATURE_VERSION:
        raise ApiError("UnsupportedSignatureVersion", f"Specified signature version \"{params['SignatureVersion']}\""
                       " is not supported; use 1.0.")
    key = conn.execute("SELECT * FROM key_pairs WHERE access_key_id = ?", (params["AccessKeyId"],)).fetchone()
    if key is None:
        raise ApiError("InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    if key["security_token"] is not None and params.get("SecurityToken") != key["security_token"]:
        if not params.get("SecurityToken"):
            raise ApiError("MissingSecurityToken", "SecurityToken is mandatory for this access key.")
        raise ApiError("InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch with the "
                       "AccessKey.")
    if not signing.matches(params["Signature"], method, params, key["secret"]):
        text = signing.string_to_sign(method, params)
        # The SDK compares what follows the first ':' with its own string-to-sign to tell a wrong secret.
        raise ApiError("SignatureDoesNotMatch", "Specified signature is not matched with our calculation. "
                       f"server string to sign is:{text}")
    _check_timestamp(params["Timestamp"], now)
    if not nonces.remember(params["SignatureNonce"]):
        raise ApiError("SignatureNonceUsed", "Specified signature nonce was used already.")


def _check_timestamp(text: str, now: float) -> None:
    try:
        when = timegm(time.strptime(text, TIMESTAMP_FORMAT))
    except ValueError:
        raise ApiError("InvalidTimeStamp.Format", f"Specified time stamp \"{text}\" is not in the "
                       "yyyy-MM-ddTHH:mm:ssZ format.") from None
    if abs(now - when) > MAX_CLOCK_SKEW_S:
        raise ApiError("InvalidTimeStamp.Expired", f"Specified time stamp or date value \"{text}\" is expired.")


def authorize(conn: sqlite3.Connection, access_key_id: str, action: str, product: str) -> None:
    row = conn.execute("SELECT denied_actions FROM key_pairs WHERE access_key_id = ?", (access_key_id,)).fetchone()
    denied = set() if row is None else set(json.loads(row["denied_actions"]))
    if action in denied or "*" in denied:
        raise ApiError("Forbidden.RAM", f"User not authorized to operate on the specified resource, or this API "
                       f"doesn't support RAM. ({product.lower()}:{action})")
