"""Reading RPC parameters: required values, integers, `Name.N` lists, JSON arrays and paging."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from terwayctl.emulator.errors import ApiError, invalid_parameter, missing

T = TypeVar("T")
Params = Mapping[str, str]


def required(params: Params, name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise missing(name)
    return value


def optional(params: Params, name: str) -> str | None:
    value = params.get(name)
    return value if value else None


def integer(params: Params, name: str, default: int, low: int = 0, high: int = 1 << 31) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise invalid_parameter(name, f"{text!r} is not an integer") from None
    if not low <= value <= high:
        raise invalid_parameter(name, f"{value} is outside {low}..{high}")
    return value


def indexed(params: Params, name: str) -> list[str]:
    """The values of `Name.1`, `Name.2`, ... in index order."""
    prefix = name + "."
    found: list[tuple[int, str]] = []
    for key, value in params.items():
        if key.startswith(prefix) and key[len(prefix):].isdigit():
            found.append((int(key[len(prefix):]), value))
    return [v for _, v in sorted(found)]


def count_or_addresses(params: Params, count_name: str, address_name: str, code: str, limit: int,
                       what: str = "addresses") -> tuple[list[str], int]:
    """Assign's `<count_name>` or `<address_name>.N` (exactly one of them, at most `limit`):
    the addresses named (empty for a count) and how many are asked for."""
    wanted = indexed(params, address_name)
    count = integer(params, count_name, 0, 0, 1 << 16)
    if bool(wanted) == bool(count):
        raise ApiError(code, f"Give either {count_name} or {address_name}.N (not both, not neither).")
    number = len(wanted) or count
    if number > limit:
        raise ApiError(code, f"At most {limit} {what} per call, got {number}.")
    return wanted, number


def addresses_to_release(params: Params, name: str, missing_code: str, count_code: str, limit: int,
                         what: str = "addresses") -> list[str]:
    """Unassign's `<name>.N`: at least one, at most `limit`."""
    addresses = indexed(params, name)
    if not addresses:
        raise ApiError(missing_code, f"{name}.N is mandatory for this action.")
    if len(addresses) > limit:
        raise ApiError(count_code, f"At most {limit} {what} per call, got {len(addresses)}.")
    return addresses


def indexed_struct(params: Params, name: str, fields: Sequence[str]) -> list[dict[str, str]]:
    """`Tag.1.Key`, `Tag.1.Value`, ... as [{Key:..., Value:...}] in index order."""
    items: dict[int, dict[str, str]] = {}
    prefix = name + "."
    for key, value in params.items():
        if not key.startswith(prefix):
            continue
        index, _, field = key[len(prefix):].partition(".")
        if index.isdigit() and field in fields:
            items.setdefault(int(index), {})[field] = value
    return [items[i] for i in sorted(items)]


def json_list(params: Params, name: str) -> list[str] | None:
    """A parameter that carries a JSON array of strings, e.g. InstanceIds='["i-1","i-2"]'."""
    text = params.get(name)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise invalid_parameter(name, "expected a JSON array such as [\"i-1\"]") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_parameter(name, "expected a JSON array of strings")
    return value


@dataclass(frozen=True)
class Page:
    """The page metadata a Describe reply carries: page mode or token mode."""

    items_from: int
    items_to: int
    total: int
    page_number: int | None
    page_size: int | None
    next_token: str | None

    def fields(self) -> dict[str, object]:
        out: dict[str, object] = {"TotalCount": self.total}
        if self.page_number is not None:
            out["PageNumber"] = self.page_number
            out["PageSize"] = self.page_size
        if self.next_token is not None:
            out["NextToken"] = self.next_token
        return out


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, number = text.partition(":")
        if kind != "offset" or not number.isdigit():
            raise ValueError(text)
        return int(number)
    except ValueError:
        raise ApiError("InvalidNextToken.Malformed", f"The specified NextToken \"{token}\" is not valid.") from None


def page_by_number(params: Params, total: int, default_size: int, max_size: int) -> Page:
    number = integer(params, "PageNumber", 1, 1)
    size = integer(params, "PageSize", default_size, 1, max_size)
    start = min((number - 1) * size, total)
    return Page(start, min(start + size, total), total, number, size, None)


def page_by_token(params: Params, total: int, default_size: int, max_size: int) -> Page:
    size = integer(params, "MaxResults", default_size, 1, max_size)
    token = params.get("NextToken", "")
    start = min(decode_token(token), total) if token else 0
    end = min(start + size, total)
    return Page(start, end, total, None, None, encode_token(end) if end < total else "")


def paginate(params: Params, total: int, default_size: int, max_size: int, tokens: bool) -> Page:
    """Token mode when the action supports it and the caller sent NextToken or MaxResults."""
    if tokens and ("NextToken" in params or "MaxResults" in params):
        return page_by_token(params, total, default_size, max_size)
    return page_by_number(params, total, default_size, max_size)
