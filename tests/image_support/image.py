"""Build the node image from the top-level Containerfile, the way docs/image.md tells a person to.

The build context is a temporary directory holding what the Containerfile copies: ``shim/`` and
``wheelhouse/``. The wheelhouse is the terwayctl wheel (built from a copy of the source tree, so
no ``build/`` dir appears in the working tree) plus its dependencies, which `pip wheel` fetches
once and which are cached under /var/cache/terwayctl-tests/ keyed by the dependency list.
The image store is also cached there, so an unchanged Containerfile step is a layer-cache hit.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from tests.image_support.base import CACHE_DIR, base_image, locked
from tests.image_support.podman import Podman

REPO = Path(__file__).resolve().parents[2]
IMAGE_REPO = "localhost/terwayctl-node"
SOURCE_ITEMS = ("pyproject.toml", "README.md", "terwayctl", "templates", "shim")


def image_podman() -> Podman:
    """The podman installation that holds the base and node images (cached across runs)."""
    root = CACHE_DIR / "podman" / "root"
    # one runroot per store (podman refuses another for the same root); short: podman allows 50 chars
    runroot = Path("/run/terwayctl-tests") / f"podman-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"
    return Podman(root=root, runroot=runroot, conf_dir=CACHE_DIR / "podman" / "conf")


def _ignore(_: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("__pycache__", "build", "dist") or n.endswith((".pyc", ".egg-info"))]


def dependency_wheels() -> Path:
    """A directory with wheels of terwayctl's dependencies (cached by the dependency list)."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    key = hashlib.sha256("\n".join([sys.version.split()[0][:4], *sorted(deps)]).encode()).hexdigest()[:16]
    target = CACHE_DIR / f"wheels-{key}"
    with locked(CACHE_DIR / f"wheels-{key}.lock"):
        if not target.is_dir():
            partial = Path(tempfile.mkdtemp(prefix="wheels-", dir=CACHE_DIR))
            try:
                subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(partial), *deps],
                               check=True, capture_output=True, timeout=900)
                partial.rename(target)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
    return target


def build_context(work: Path) -> Path:
    """`work`/context: shim/ and wheelhouse/ (terwayctl's wheel and its dependencies)."""
    source = work / "source"
    source.mkdir()
    for item in SOURCE_ITEMS:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, source / item, ignore=_ignore)
        else:
            shutil.copy2(src, source / item)
    context = work / "context"
    wheelhouse = context / "wheelhouse"
    wheelhouse.mkdir(parents=True)
    # SOURCE_DATE_EPOCH: the same sources give the same wheel, so an unchanged tree is a layer-cache hit
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheelhouse),
                    str(source)], check=True, capture_output=True, timeout=600,
                   env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"})
    for wheel in dependency_wheels().glob("*.whl"):
        shutil.copy2(wheel, wheelhouse / wheel.name)
    shutil.copytree(REPO / "shim", context / "shim", ignore=_ignore)
    return context


def build_node_image(work: Path, podman: Podman | None = None) -> str:
    """Build the Containerfile on the cached Debian base; returns the image reference."""
    podman = podman or image_podman()
    base = base_image(podman)
    context = build_context(work)
    version = _version()
    tag = f"{IMAGE_REPO}:{version}-{hashlib.sha256(str(work).encode()).hexdigest()[:8]}"
    with locked(CACHE_DIR / "podman-build.lock"):
        podman.build(context, REPO / "Containerfile", tag, {"BASE": base, "VERSION": version})
    return tag


def remove_image(tag: str, podman: Podman | None = None) -> None:
    """Untag the test's image; build-cache layers stay a day (the next run's cache hits), then go."""
    podman = podman or image_podman()
    podman.run(["rmi", "-f", tag], check=False)
    podman.run(["image", "prune", "-f", "--filter", "until=24h"], check=False)


def _version() -> str:
    import terwayctl

    return str(terwayctl.__version__)
