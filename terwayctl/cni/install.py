"""`terwayctl cni install`: put the plugin into a CNI bin dir and its conflist into a conf dir.

The plugin is written as a small launcher script rather than pip's `terway` console script:
its shebang runs this Python with ``-IS`` (= ``-I -S``, written as one word because Linux
passes everything after the interpreter as ONE argument; isolated, no site-packages: no .pth files, no
editable-install finders, no user site), and it puts the directory holding this `terwayctl`
package on sys.path itself. That saves about 30 ms of interpreter start-up per pod and verb
(docs/cni.md). Both files are written atomically (a temporary file in the same directory, then
rename), so a runtime never executes or reads a half-written file.

Standard library only, like the rest of `terwayctl.cni`; the plugin itself never imports this.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

PLUGIN_NAME = "terway"
ENTRY_MODULE = "terwayctl.cni.main"


class InstallError(ValueError):
    """The conflist is not usable, or a directory cannot be written."""


def package_root() -> Path:
    """The directory that holds the `terwayctl` package (what the launcher puts on sys.path)."""
    return Path(__file__).resolve().parent.parent.parent


def launcher_text(python: str, root: Path) -> str:
    return (
        f"#!{python} -IS\n"
        "# The terway CNI plugin, written by `terwayctl cni install`: no site-packages, only the\n"
        "# standard library and the terwayctl package below.\n"
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        f"from {ENTRY_MODULE} import entry\n"
        "entry()\n"
    )


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def install(bin_dir: Path, conf_dir: Path | None = None, conflist: Path | None = None,
            python: str | None = None) -> list[Path]:
    """Write `<bin_dir>/terway` (mode 0755) and, when given, the conflist into `conf_dir` under its
    own file name. Returns the paths written. InstallError for a bad conflist or directory."""
    python = python or sys.executable
    if not python or not os.path.isabs(python):
        raise InstallError(f"cannot tell which Python to run the plugin with ({python!r})")
    if (conflist is None) != (conf_dir is None):
        raise InstallError("--conflist and --conf-dir go together")
    conf_data = b""
    if conflist is not None:
        try:
            conf_data = conflist.read_bytes()
            document = json.loads(conf_data)
        except OSError as exc:
            raise InstallError(f"cannot read the conflist {conflist}: {exc.strerror}") from None
        except ValueError as exc:
            raise InstallError(f"the conflist {conflist} is not JSON: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("plugins"), list):
            raise InstallError(f"the conflist {conflist} has no \"plugins\" list")
    written = []
    try:
        bin_dir.mkdir(parents=True, exist_ok=True)
        target = bin_dir / PLUGIN_NAME
        _write_atomically(target, launcher_text(python, package_root()).encode(), 0o755)
        written.append(target)
        if conflist is not None and conf_dir is not None:
            conf_dir.mkdir(parents=True, exist_ok=True)
            conf_target = conf_dir / conflist.name
            _write_atomically(conf_target, conf_data, 0o644)
            written.append(conf_target)
    except OSError as exc:
        raise InstallError(f"cannot write {exc.filename or bin_dir}: {exc.strerror}") from None
    return written
