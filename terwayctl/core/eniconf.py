"""The eni_conf model: the parts of the `eni-config` ConfigMap that terwayctl reads."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from terwayctl.core.errors import InvalidInput


@dataclass(frozen=True)
class EniCaps:
    """How eni_conf shrinks the ENIs Terway may use on a node.

    max_eni 0 means no cap; eni_cap_ratio 0 is Go's zero value, which Terway treats as 1.
    """

    max_eni: int = 0
    eni_cap_ratio: float = 1.0
    eni_cap_shift: int = 0

    @property
    def is_default(self) -> bool:
        return self == EniCaps()


def parse_eni_conf_text(text: str, origin: str) -> dict[str, Any]:
    """Parse eni_conf JSON; unknown keys are kept as they are."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{origin} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            hint="eni_conf is the JSON value of the eni_conf key of the eni-config ConfigMap",
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{origin} must hold a JSON object, not {type(data).__name__}")
    return data


def eni_caps_from_conf(conf: Mapping[str, Any], origin: str) -> EniCaps:
    """Read max_eni, eni_cap_ratio and eni_cap_shift, validating each."""
    max_eni = _int_field(conf, "max_eni", origin, default=0)
    if max_eni < 0:
        raise InvalidInput(f"{origin}: max_eni must be 0 (no cap) or positive, got {max_eni}")
    shift = _int_field(conf, "eni_cap_shift", origin, default=0)
    ratio_raw = conf.get("eni_cap_ratio", 1.0)
    if isinstance(ratio_raw, bool) or not isinstance(ratio_raw, int | float):
        raise InvalidInput(f"{origin}: eni_cap_ratio must be a number, got {ratio_raw!r}")
    ratio = float(ratio_raw) or 1.0
    if not 0 < ratio <= 1:
        raise InvalidInput(
            f"{origin}: eni_cap_ratio must be in (0, 1], got {ratio_raw}",
            hint="eni_cap_ratio is the share of the instance's ENIs Terway may use, e.g. 0.5",
        )
    return EniCaps(max_eni=max_eni, eni_cap_ratio=ratio, eni_cap_shift=shift)


def _int_field(conf: Mapping[str, Any], key: str, origin: str, default: int) -> int:
    value = conf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{origin}: {key} must be a whole number, got {value!r}")
    return value
