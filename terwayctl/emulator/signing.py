"""The RPC signature (SignatureVersion 1.0, HMAC-SHA1) exactly as the aliyun SDK computes it.

string-to-sign = METHOD + "&%2F&" + percent(sorted "k=v" pairs joined by "&"), where percent() is
RFC 3986 encoding (space as %20, "*" as %2A, "~" kept); the key is the secret plus "&".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

SIGNATURE_METHOD = "HMAC-SHA1"
SIGNATURE_VERSION = "1.0"


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding: unreserved characters (A-Z a-z 0-9 - _ . ~) stay as they are."""
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    """The sorted, encoded `k=v&...` of every parameter except Signature."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def sign(text: str, secret: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signed_params(method: str, params: Mapping[str, str], secret: str) -> dict[str, str]:
    """`params` plus their Signature: the client side, used by tests and raw-HTTP callers."""
    out = dict(params)
    out["Signature"] = sign(string_to_sign(method, out), secret)
    return out


def matches(signature: str, method: str, params: Mapping[str, str], secret: str) -> bool:
    return hmac.compare_digest(sign(string_to_sign(method, params), secret), signature)
