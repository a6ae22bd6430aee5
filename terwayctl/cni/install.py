"""`terwayctl cni install`: what the DaemonSet's init container does on every node.

It copies into the host's CNI bin dir the static shim (`terway`, built from `shim/`) and every
other plugin the conflist chains (the reference `portmap`, `bandwidth`, ... from the image's plugin
dir), then writes the conflist into the host's CNI conf dir and removes a `10-terway.conf` that an
older install left there (libcni reads the first file in lexical order, and the runtime would keep
the stale single-plugin config). Every file is written atomically: a temporary file in the target
directory, fsync, chmod, rename — a runtime never execs a half-written plugin or reads half a
conflist.

The static shim is what kubelet execs: it needs nothing of the image (no Python, no venv). Where no
shim is given (a machine without Go: the lab, a developer's laptop), a small launcher of the Python
debugging client (`terwayctl.cni.client`, the shim's twin) is written instead and the caller is told
so; it needs this Python and this package on the host, so the DaemonSet never uses it.

Standard library only, like the rest of `terwayctl.cni`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

PLUGIN_NAME = "terway"
STALE_CONF = "10-terway.conf"
ENTRY_MODULE = "terwayctl.cni.main"


class InstallError(ValueError):
    """The conflist is not usable, a plugin is missing, or a directory cannot be written."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def package_root() -> Path:
    """The directory that holds the `terwayctl` package (what the Python launcher puts on sys.path)."""
    return Path(__file__).resolve().parent.parent.parent


def launcher_text(python: str, root: Path) -> str:
    """The Python twin of the shim, for hosts without the static shim: `-IS` keeps start-up lean."""
    return (
        f"#!{python} -IS\n"
        "# The terway CNI plugin's Python debugging client, written by `terwayctl cni install`\n"
        "# without --shim: it needs this Python and the terwayctl package below on this host.\n"
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        f"from {ENTRY_MODULE} import entry\n"
        "entry()\n"
    )


def _write_atomically(path: Path, data: bytes | Path, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, Path):
                with data.open("rb") as source:
                    shutil.copyfileobj(source, out)
            else:
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_conflist(conflist: Path) -> tuple[bytes, list[str]]:
    """The conflist's bytes and the plugin types it chains, in order; InstallError when unusable."""
    try:
        data = conflist.read_bytes()
        document = json.loads(data)
    except OSError as exc:
        raise InstallError(f"cannot read the conflist {conflist}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise InstallError(f"the conflist {conflist} is not JSON: {exc}") from None
    plugins = document.get("plugins") if isinstance(document, dict) else None
    if not isinstance(plugins, list) or not plugins:
        raise InstallError(f'the conflist {conflist} has no "plugins" list')
    types = [p.get("type") if isinstance(p, dict) else None for p in plugins]
    if not all(isinstance(t, str) and t and "/" not in t for t in types):
        raise InstallError(f'every plugin in {conflist} needs a "type" that is a plain file name')
    return data, [str(t) for t in types]


def _plugin_sources(types: list[str], shim: Path | None, plugin_dir: Path) -> dict[str, Path]:
    """Where each chained plugin comes from; InstallError naming the first one that is missing."""
    sources: dict[str, Path] = {}
    if shim is not None:
        if not (shim.is_file() and os.access(shim, os.X_OK)):
            raise InstallError(f"the CNI shim {shim} is not an executable file",
                               "build it with 'terwayctl cni build-shim' (needs Go), or use the node image")
        sources[PLUGIN_NAME] = shim
    for kind in types:
        if kind == PLUGIN_NAME or kind in sources:
            continue
        source = plugin_dir / kind
        if not (source.is_file() and os.access(source, os.X_OK)):
            raise InstallError(f"the conflist chains '{kind}', but {source} is not an executable file",
                               "install Debian's containernetworking-plugins or pass --plugin-dir")
        sources[kind] = source
    return sources


def _owned_stale_conf(conf_dir: Path) -> Path | None:
    """`10-terway.conf` when it is a terway config (ours to remove), else None."""
    path = conf_dir / STALE_CONF
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return path if isinstance(document, dict) and document.get("type") == PLUGIN_NAME else None


def install(bin_dir: Path, conf_dir: Path | None = None, conflist: Path | None = None, *,
            shim: Path | None = None, plugin_dir: Path = Path("/usr/lib/cni"),
            python: str | None = None) -> list[Path]:
    """Install the plugins and the conflist; returns every path written or removed.

    With `shim`, `<bin_dir>/terway` is a copy of it; without, the Python launcher. Every other
    plugin the conflist chains is copied from `plugin_dir`. Nothing is written when a source is
    missing. InstallError for a bad conflist, a missing plugin or an unwritable directory.
    """
    if (conflist is None) != (conf_dir is None):
        raise InstallError("--conflist and --conf-dir go together")
    conf_data, types = read_conflist(conflist) if conflist is not None else (b"", [PLUGIN_NAME])
    sources = _plugin_sources(types, shim, plugin_dir)
    launcher = b""
    if shim is None:
        python = python or sys.executable
        if not python or not os.path.isabs(python):
            raise InstallError(f"cannot tell which Python to run the plugin with ({python!r})")
        launcher = launcher_text(python, package_root()).encode()
    changed: list[Path] = []
    try:
        bin_dir.mkdir(parents=True, exist_ok=True)
        if shim is None:
            _write_atomically(bin_dir / PLUGIN_NAME, launcher, 0o755)
            changed.append(bin_dir / PLUGIN_NAME)
        for name, source in sources.items():
            _write_atomically(bin_dir / name, source, 0o755)
            changed.append(bin_dir / name)
        if conflist is not None and conf_dir is not None:
            conf_dir.mkdir(parents=True, exist_ok=True)
            _write_atomically(conf_dir / conflist.name, conf_data, 0o644)
            changed.append(conf_dir / conflist.name)
            stale = _owned_stale_conf(conf_dir) if conflist.name != STALE_CONF else None
            if stale is not None:
                stale.unlink()
                changed.append(stale)
    except OSError as exc:
        raise InstallError(f"cannot write {exc.filename or bin_dir}: {exc.strerror}") from None
    return changed
