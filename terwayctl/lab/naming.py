"""Names and paths of a lab: every namespace starts with ``twlab-<name>-``, every file lives in the lab dir.

A lab name is 1-10 lowercase letters and digits (no hyphen), so that ``twlab-<name>-`` never is a
prefix of another lab's namespaces and a link name ``<name>-wan`` fits in 15 bytes.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from terwayctl.core.errors import InvalidInput

NS_PREFIX = "twlab-"
DEFAULT_NAME = "default"
LAB_DIR_ENV = "TERWAYCTL_LAB_DIR"
DEFAULT_ROOTS = (Path("/run/terwayctl/lab"), Path("/var/lib/terwayctl/lab"))
NAME_RE = re.compile(r"^[a-z0-9]{1,10}$")
POD_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidInput(f"invalid lab name {name!r}: 1-10 lowercase letters and digits",
                           hint="e.g. --name demo or --name lab2")
    return name


def check_pod_name(name: str) -> str:
    if not POD_RE.match(name):
        raise InvalidInput(f"invalid pod name {name!r}: 1-40 lowercase letters, digits and '-', "
                           "starting and ending with a letter or digit", hint="e.g. nginx-1")
    return name


def labs_root() -> Path:
    """Where labs keep their state: $TERWAYCTL_LAB_DIR, else /run/terwayctl/lab (tmpfs, gone on reboot
    like the namespaces), else /var/lib/terwayctl/lab when /run is not there."""
    given = os.environ.get(LAB_DIR_ENV)
    if given:
        return Path(given)
    for root in DEFAULT_ROOTS:
        if root.parent.parent.is_dir():
            return root
    return DEFAULT_ROOTS[-1]


def lab_dir(name: str) -> Path:
    return labs_root() / check_name(name)


def ns_prefix(name: str) -> str:
    return f"{NS_PREFIX}{name}-"


def router_ns(name: str) -> str:
    return f"{ns_prefix(name)}router"


def internet_ns(name: str) -> str:
    return f"{ns_prefix(name)}inet"


def node_ns(name: str, node: str) -> str:
    return f"{ns_prefix(name)}{node}"


def pod_ns(name: str, pod: str) -> str:
    return f"{ns_prefix(name)}pod-{pod}"


def wan_link(name: str) -> str:
    """The router's link towards the internet namespace."""
    return f"{name}-wan"


def inet_link(name: str) -> str:
    """The internet namespace's link towards the router."""
    return f"{name}-eth0"


def nft_table(name: str) -> str:
    """The lab's nftables table (inside the lab's own namespaces only)."""
    return f"twlab_{name}"
