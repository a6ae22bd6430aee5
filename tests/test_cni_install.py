"""`terwayctl cni install`: the lean plugin launcher and the conflist, written atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from terwayctl.cli.app import run
from terwayctl.cni.install import InstallError, install, launcher_text, package_root

CONFLIST = {"cniVersion": "1.0.0", "name": "terway", "plugins": [{"type": "terway"}, {"type": "bandwidth"}]}


def _conflist(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "10-terway.conflist"
    path.parent.mkdir()
    path.write_text(json.dumps(CONFLIST))
    return path


def test_cli_install_writes_launcher_and_conflist(tmp_path: Path) -> None:
    source = _conflist(tmp_path)
    argv = ["cni", "install", "--conflist", str(source), "--bin-dir", str(tmp_path / "bin"),
            "--conf-dir", str(tmp_path / "net.d")]  # fmt: skip
    code = run(argv)
    assert code == 0
    plugin = tmp_path / "bin" / "terway"
    assert plugin.stat().st_mode & 0o777 == 0o755
    text = plugin.read_text()
    assert text.splitlines()[0] == f"#!{sys.executable} -IS"
    assert repr(str(package_root())) in text
    assert json.loads((tmp_path / "net.d" / "10-terway.conflist").read_text()) == CONFLIST
    assert [p.name for p in (tmp_path / "bin").iterdir()] == ["terway"]  # no temporary file left


def test_launcher_runs_the_plugin_without_site_packages(tmp_path: Path) -> None:
    plugin = install(tmp_path)[0]
    done = subprocess.run([str(plugin)], input=b"", env={"CNI_COMMAND": "VERSION", "PATH": os.environ["PATH"]},
                          capture_output=True, timeout=30, check=False)
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
    install(tmp_path)
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


def test_cni_without_subcommand_still_runs_the_plugin() -> None:
    from terwayctl.cli.app import register

    result = CliRunner().invoke(register(["cni"]), ["cni"], env={"CNI_COMMAND": "VERSION"}, input="")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["supportedVersions"][-1] == "1.1.0"
