"""A Debian base image without a registry: debootstrap once, cache the tarball, `podman import` it.

The tarball lives in ``/var/cache/terwayctl-tests/`` keyed by a hash of the suite, the mirror and the
package list, so later runs on the same machine skip debootstrap; an flock keeps two concurrent
runs from building it twice. The image is ``localhost/terwayctl-base:<hash>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.image_support.podman import Podman

CACHE_DIR = Path(os.environ.get("TERWAYCTL_TEST_CACHE", "/var/cache/terwayctl-tests"))
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
# What the Containerfile's two stages need, so that neither runs apt-get (docs/image.md): the
# runtime (python3 + venv, iproute2, nftables, iptables, the reference plugins) and the shim's build
# stage (golang-go).
PACKAGES = (
    "python3", "python3-venv", "iproute2", "nftables", "iptables", "containernetworking-plugins",
    "golang-go", "ca-certificates",
)
BASE_REPO = "localhost/terwayctl-base"


def mirror() -> str:
    """The first Debian archive URI of this machine's apt sources (deb822), else deb.debian.org."""
    try:
        text = SOURCES.read_text()
    except OSError:
        return DEFAULT_MIRROR
    for stanza in text.split("\n\n"):
        if re.search(rf"^Suites:.*\b{SUITE}\b(?!-)", stanza, re.M) and "debian-security" not in stanza:
            found = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            if found:
                return found.group(1)
    return DEFAULT_MIRROR


def base_key(packages: tuple[str, ...] = PACKAGES) -> str:
    text = "\n".join([SUITE, mirror(), "minbase", *sorted(packages)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def base_tarball(packages: tuple[str, ...] = PACKAGES) -> Path:
    """The cached root filesystem tarball, made with debootstrap when missing."""
    key = base_key(packages)
    tarball = CACHE_DIR / f"base-{SUITE}-{key}.tar"
    with locked(CACHE_DIR / f"base-{key}.lock"):
        if tarball.exists():
            return tarball
        work = Path(tempfile.mkdtemp(prefix="twbase-", dir=CACHE_DIR))
        try:
            root = work / "root"
            subprocess.run(
                ["debootstrap", "--variant=minbase", *([f"--include={','.join(sorted(packages))}"] if packages else []),
                 SUITE, str(root), mirror()],
                check=True, capture_output=True, timeout=1800,
            )
            # no apt lists or package cache in the image
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (root / leftover).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            partial = tarball.with_suffix(".partial")
            with open(partial, "wb") as out:
                subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=out, check=True,
                               timeout=600)
            partial.replace(tarball)
        except subprocess.CalledProcessError as exc:
            err = exc.stderr.decode(errors="replace")[-2000:] if isinstance(exc.stderr, bytes) else ""
            raise RuntimeError(f"debootstrap failed: {err}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tarball


def base_image(podman: Podman, packages: tuple[str, ...] = PACKAGES) -> str:
    """``localhost/terwayctl-base:<hash>`` imported into `podman`, from the cached tarball."""
    ref = f"{BASE_REPO}:{base_key(packages)}"
    if podman.image_exists(ref):
        return ref
    tarball = base_tarball(packages)
    with open(tarball, "rb") as data:
        podman.run(["import", "-", ref], stdin=data, timeout=600)
    return ref
