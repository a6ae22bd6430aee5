"""The error hierarchy every layer raises and the CLI translates once.

`InvalidInput` (and its subclasses) means the user gave something wrong: exit 2.
Everything else derived from `TerwayctlError` is an expected failure: exit 1.
"""

from __future__ import annotations


class TerwayctlError(Exception):
    """An expected failure with a user-facing message and an optional hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidInput(TerwayctlError):
    """The user's input is wrong; the hint says how to fix it."""

    exit_code = 2


class NotFound(InvalidInput):
    """Something the user named does not exist."""


class CidrOverlap(InvalidInput):
    """Two address ranges that must be disjoint overlap."""


class QuotaExceeded(TerwayctlError):
    """A cloud or node quota is exhausted."""
