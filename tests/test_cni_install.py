"""`terwayctl cni install` (the DaemonSet's init container): the static shim and the chained
reference plugins into the bin dir, the conflist into the conf dir, each atomically; a stale
10-terway.conf of terway's removed. The shim is the real one, built from shim/ with Go."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from terwayctl.cli.app import run
from terwayctl.cni.install import InstallError, install, launcher_text, package_root
from tests.cni_support.daemon import TestDaemon

CONFLIST = {"cniVersion": "1.0.0", "name": "terway",
            "plugins": [{"type": "terway"}, {"type": "portmap"}, {"type": "bandwidth"}]}
REFERENCE_PLUGINS = Path("/usr/lib/cni")
needs_reference_plugins = pytest.mark.skipif(
    not (REFERENCE_PLUGINS / "portmap").exists(), reason="Debian's containernetworking-plugins is not installed"
)


@pytest.fixture(scope="module")
def shim() -> Path:
    from terwayctl.cni.shim import ShimUnavailable, ensure_built

    if shutil.which("go") is None:
        pytest.skip("Go is not installed: the static shim cannot be built (apt-get install golang-go)")
    try:
        return ensure_built()
    except ShimUnavailable as exc:
        pytest.fail(f"the shim does not build: {exc}")


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Path]:
    with TestDaemon(tmp_path / "backend.sock") as daemon:
        yield daemon.socket_path


def _conflist(tmp_path: Path, document: dict[str, object] = CONFLIST) -> Path:
    path = tmp_path / "src" / "10-terway.conflist"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(document))
    return path


@needs_reference_plugins
def test_cli_installs_the_shim_the_chained_plugins_and_the_conflist(tmp_path: Path, shim: Path) -> None:
    source = _conflist(tmp_path)
    bin_dir, conf_dir = tmp_path / "bin", tmp_path / "net.d"
    argv = ["cni", "install", "--conflist", str(source), "--bin-dir", str(bin_dir), "--conf-dir", str(conf_dir),
            "--shim", str(shim), "--plugin-dir", str(REFERENCE_PLUGINS)]  # fmt: skip
    assert run(argv) == 0
    assert sorted(p.name for p in bin_dir.iterdir()) == ["bandwidth", "portmap", "terway"]  # no temp file left
    assert (bin_dir / "terway").read_bytes() == shim.read_bytes()
    for name in ("portmap", "bandwidth"):
        assert (bin_dir / name).read_bytes() == (REFERENCE_PLUGINS / name).read_bytes()
    assert all((bin_dir / n).stat().st_mode & 0o777 == 0o755 for n in ("terway", "portmap", "bandwidth"))
    assert "statically linked" in subprocess.run(["file", str(bin_dir / "terway")], capture_output=True, text=True,
                                                 check=True).stdout
    assert json.loads((conf_dir / "10-terway.conflist").read_text()) == CONFLIST
    assert [p.name for p in conf_dir.iterdir()] == ["10-terway.conflist"]


@needs_reference_plugins
def test_a_stale_terway_conf_is_removed_and_a_foreign_one_kept(tmp_path: Path, shim: Path) -> None:
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-terway.conf").write_text(json.dumps({"cniVersion": "0.3.1", "name": "terway", "type": "terway"}))
    changed = install(tmp_path / "bin", conf_dir, _conflist(tmp_path), shim=shim, plugin_dir=REFERENCE_PLUGINS)
    assert conf_dir / "10-terway.conf" in changed and not (conf_dir / "10-terway.conf").exists()
    foreign = {"cniVersion": "0.3.1", "name": "mine", "type": "bridge"}
    (conf_dir / "10-terway.conf").write_text(json.dumps(foreign))
    install(tmp_path / "bin", conf_dir, _conflist(tmp_path), shim=shim, plugin_dir=REFERENCE_PLUGINS)
    assert json.loads((conf_dir / "10-terway.conf").read_text()) == foreign


@needs_reference_plugins
def test_a_plugin_is_replaced_by_rename_never_rewritten_in_place(tmp_path: Path, shim: Path) -> None:
    """A runtime exec'ing the old plugin keeps a whole file: the new one is a new inode."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "terway").write_bytes(b"old plugin")
    with (bin_dir / "terway").open("rb") as running:
        install(bin_dir, tmp_path / "net.d", _conflist(tmp_path), shim=shim, plugin_dir=REFERENCE_PLUGINS)
        assert running.read() == b"old plugin"
        assert os.fstat(running.fileno()).st_ino != (bin_dir / "terway").stat().st_ino
    assert (bin_dir / "terway").read_bytes() == shim.read_bytes()


def test_a_missing_chained_plugin_is_refused_and_nothing_is_written(tmp_path: Path, shim: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "plugins"
    empty.mkdir()
    argv = ["cni", "install", "--conflist", str(_conflist(tmp_path)), "--bin-dir", str(tmp_path / "bin"),
            "--conf-dir", str(tmp_path / "net.d"), "--shim", str(shim), "--plugin-dir", str(empty)]  # fmt: skip
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert f"error: the conflist chains 'portmap', but {empty / 'portmap'} is not an executable file" in err
    assert "hint:" in err and "--plugin-dir" in err
    assert not (tmp_path / "bin").exists() and not (tmp_path / "net.d").exists()


def test_a_shim_that_is_not_executable_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "terway"
    fake.write_text("not a program")
    with pytest.raises(InstallError, match="is not an executable file") as caught:
        install(tmp_path / "bin", shim=fake)
    assert "build-shim" in caught.value.hint


def test_without_a_shim_the_python_client_launcher_is_written_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["cni", "install", "--bin-dir", str(tmp_path / "bin")]) == 0
    text = (tmp_path / "bin" / "terway").read_text()
    assert text.splitlines()[0] == f"#!{sys.executable} -IS"
    assert repr(str(package_root())) in text
    assert "warning: 'terway' is the Python debugging client" in capsys.readouterr().err


def test_launcher_runs_the_client_without_site_packages(tmp_path: Path, backend: Path) -> None:
    plugin = install(tmp_path)[0]
    env = {"CNI_COMMAND": "VERSION", "PATH": os.environ["PATH"], "TERWAY_DAEMON_SOCKET": str(backend)}
    done = subprocess.run([str(plugin)], input=b"", env=env, capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["cniVersion"] == "1.1.0"
    probe = launcher_text(sys.executable, package_root()).replace(
        "entry()\n", "import json; print(json.dumps(sorted(k for k in sys.modules if k.split('.')[0] == 'site'"
        " or 'editable' in k)), sys.flags.isolated, sys.flags.no_site)\n")
    script = tmp_path / "probe"
    script.write_text(probe)
    script.chmod(0o755)
    out = subprocess.run([str(script)], capture_output=True, text=True, timeout=30, check=True).stdout.split()
    assert out == ["[]", "1", "1"]


def test_install_replaces_an_existing_plugin_atomically(tmp_path: Path) -> None:
    (tmp_path / "terway").write_text("old")
    install(tmp_path)  # the Python launcher
    assert (tmp_path / "terway").read_text().startswith("#!")


@pytest.mark.parametrize("content", ["not json", "[]", '{"name": "terway"}'])
def test_bad_conflist_is_refused_and_nothing_is_written(tmp_path: Path, content: str) -> None:
    source = tmp_path / "10-terway.conflist"
    source.write_text(content)
    with pytest.raises(InstallError):
        install(tmp_path / "bin", tmp_path / "net.d", source)
    assert not (tmp_path / "bin").exists() and not (tmp_path / "net.d").exists()


def test_cli_bad_conflist_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["cni", "install", "--conflist", str(tmp_path / "missing.conflist"), "--bin-dir", str(tmp_path)])
    assert code == 2
    assert "cannot read the conflist" in capsys.readouterr().err


def test_cni_without_subcommand_runs_the_debugging_client(backend: Path) -> None:
    from terwayctl.cli.app import register

    env = {"CNI_COMMAND": "VERSION", "TERWAY_DAEMON_SOCKET": str(backend)}
    result = CliRunner().invoke(register(["cni"]), ["cni"], env=env, input="")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["supportedVersions"][-1] == "1.1.0"


def test_the_installed_command_takes_a_binary_shim(tmp_path: Path, shim: Path) -> None:
    """The real `terwayctl` process (its input checks included) accepts a program as --shim."""
    done = subprocess.run([sys.executable, "-m", "terwayctl", "cni", "install", "--bin-dir", str(tmp_path / "bin"),
                           "--shim", str(shim)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "bin" / "terway").read_bytes() == shim.read_bytes()
