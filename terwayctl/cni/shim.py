"""Build the static CNI shim `terway` (Go, `shim/`) reproducibly, and cache the build.

The shim is what kubelet execs on a node: a static binary that forwards one CNI invocation to
the daemon over a unix socket (protocol 2, docs/cni.md) and holds no CNI logic. Its sources
ship in the wheel as `terwayctl.shim`; building needs only Go's standard library, so the build
is offline (GOPROXY=off) and byte-for-byte reproducible (-trimpath, no build id, no VCS stamp).

Standard library only, like the rest of `terwayctl.cni`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from terwayctl import __version__

SHIM_NAME = "terway"
SHIM_ENV = "TERWAY_SHIM"
BUILD_TIMEOUT = 300.0
GO_HINT = "apt-get install golang-go"
# Everything that can change the build's output; the environment of the caller must not.
BUILD_ENV = {"CGO_ENABLED": "0", "GOPROXY": "off", "GOFLAGS": "", "GOTOOLCHAIN": "local", "GOWORK": "off"}


class ShimUnavailable(Exception):
    """The shim cannot be built here; `hint` says what to do about it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def sources() -> Traversable:
    """The shim's source folder: the installed `terwayctl.shim` package, or, when an editable
    install predates that package, the `shim/` folder of this source checkout."""
    try:
        return files("terwayctl.shim")
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parent.parent.parent / "shim"
        if (checkout / "go.mod").is_file():
            return checkout
        raise ShimUnavailable(
            "the shim's Go sources (package terwayctl.shim) are not installed",
            hint="reinstall terwayctl (pip install -e . in a checkout)",
        ) from None


def _source_files(include_tests: bool) -> list[Traversable]:
    picked = [
        entry
        for entry in sources().iterdir()
        if entry.is_file()
        and (entry.name == "go.mod" or entry.name.endswith(".go"))
        and (include_tests or not entry.name.endswith("_test.go"))
    ]
    return sorted(picked, key=lambda entry: entry.name)


def copy_sources(dest: Path, include_tests: bool = False) -> None:
    """Copy go.mod and the .go files (tests only if asked) into the existing directory `dest`."""
    for entry in _source_files(include_tests):
        (dest / entry.name).write_bytes(entry.read_bytes())


def source_digest() -> str:
    """12 hex digits of sha256 over the build inputs (names and contents), for the cache key."""
    digest = hashlib.sha256()
    for entry in _source_files(include_tests=False):
        data = entry.read_bytes()
        digest.update(f"{entry.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:12]


def build_command(out: Path) -> list[str]:
    ldflags = f"-s -w -buildid= -X main.version={__version__}"
    return ["go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", str(out), "."]


def build(out: Path) -> Path:
    """Build the shim into `out` and return it. The binary appears atomically (built next to
    `out`, then renamed), so nobody ever executes a half-written file."""
    go = shutil.which("go")
    if go is None:
        raise ShimUnavailable("cannot build the CNI shim: go is not installed", hint=GO_HINT)
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with tempfile.TemporaryDirectory(prefix="terway-shim-") as workdir:
            copy_sources(Path(workdir))
            command = [go, *build_command(Path(partial))[1:]]
            _run_go(command, Path(workdir))
        os.chmod(partial, 0o755)
        os.replace(partial, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    return out


def _run_go(command: list[str], cwd: Path) -> None:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env={**os.environ, **BUILD_ENV},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ShimUnavailable(
            f"building the CNI shim took longer than {BUILD_TIMEOUT:g}s", hint="retry on a less busy machine"
        ) from None
    except OSError as exc:
        raise ShimUnavailable(f"cannot run go: {exc.strerror or exc}", hint=GO_HINT) from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        raise ShimUnavailable(
            f"building the CNI shim failed (go build exit {done.returncode}):\n{tail}",
            hint="the shim needs Go >= 1.19 and nothing but its standard library (apt-get install golang-go)",
        )


def cache_path() -> Path:
    """Where the build for this terwayctl version and these sources is cached."""
    key = f"{__version__}-{source_digest()}"
    return Path.home() / ".cache" / "terwayctl" / "shim" / key / SHIM_NAME


def ensure_built() -> Path:
    """$TERWAY_SHIM when it names an executable file, else the cached build (built if missing)."""
    override = os.environ.get(SHIM_ENV, "")
    if override and os.path.isfile(override) and os.access(override, os.X_OK):
        return Path(override)
    cached = cache_path()
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    return build(cached)
