"""Natural order: what a person expects in a list of names with numbers in them."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"(\d+)")


def natural_text_key(text: str) -> tuple[tuple[int, str], ...]:
    """Digits compare as numbers: node2 < node10, ecs.g8i < ecs.g10, 192.168.0.9 < 192.168.0.10."""
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in _DIGITS.split(text) if part)
