"""CNI spec 1.1.0 facts the plugin relies on: versions, well-known error codes, name rules.

Standard library only (see the package docstring). The daemon may import this module too, for the
error codes it answers with.
"""

from __future__ import annotations

import re

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST_VERSION = "1.1.0"

# Well-known error codes (CNI spec 1.1.0, "Error"). 0-99 are reserved by the spec.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
PLUGIN_NOT_AVAILABLE = 50
PLUGIN_NOT_AVAILABLE_LIMITED = 51
# Not a well-known code: a bug in the plugin (the value libcni uses for its ErrInternal).
INTERNAL_ERROR = 999

IFNAME_MAX = 15  # IFNAMSIZ - 1

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\Z")


class CNIError(Exception):
    """A failure the plugin reports as the CNI error object `{cniVersion, code, msg, details}`."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, object]:
        return {"cniVersion": cni_version, "code": self.code, "msg": self.msg, "details": self.details}

    def __repr__(self) -> str:
        return f"CNIError({self.code!r}, {self.msg!r}, {self.details!r})"


def version_key(version: str) -> tuple[int, int, int]:
    """`"1.0.0"` -> `(1, 0, 0)`; ValueError for anything that is not MAJOR.MINOR.PATCH."""
    parts = version.split(".")
    if len(parts) != 3 or not all(part.isdigit() and part.isascii() for part in parts):
        raise ValueError(f"not a semantic version: {version!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def at_least(version: str, minimum: str) -> bool:
    return version_key(version) >= version_key(minimum)


def is_legacy(version: str) -> bool:
    """True for the 0.x result format (ips carry `version`, interfaces only name/mac/sandbox)."""
    return version_key(version) < (1, 0, 0)


def container_id_problem(value: str) -> str | None:
    """Why `value` is not a valid CNI_CONTAINERID, or None (spec: alphanumeric first, then [A-Za-z0-9_.-])."""
    if not value:
        return "is empty"
    if not _NAME.match(value):
        return "must start with a letter or digit and contain only letters, digits, '_', '.' and '-'"
    return None


def ifname_problem(value: str) -> str | None:
    """Why `value` is not a valid CNI_IFNAME, or None (the kernel's and libcni's rules)."""
    if not value:
        return "is empty"
    if len(value.encode()) > IFNAME_MAX:
        return f"is longer than {IFNAME_MAX} bytes"
    if value in (".", ".."):
        return "may not be '.' or '..'"
    for char in value:
        if char in "/:" or char.isspace():
            return f"contains {char!r}: '/', ':' and whitespace are not allowed"
    return None


def network_name_problem(value: str) -> str | None:
    """Why `value` is not a valid network `name`, or None (same rule as a container id)."""
    return container_id_problem(value)
