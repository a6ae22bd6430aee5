"""`terwayctl cloud emulate` end to end: a real process, a signed SDK call, SIGTERM, exit 0."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aliyunsdkcore.client import AcsClient
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest

from tests.conftest import CliResult
from tests.fixtures.emulator import RunningEmulator


def _read_until(process: subprocess.Popen[bytes], pattern: str, timeout: float) -> tuple[str, re.Match[str]]:
    """Read the unbuffered stdout pipe until `pattern` matches (bounded by `timeout`)."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    selector = selectors.DefaultSelector()
    selector.register(fd, selectors.EVENT_READ)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
            match = re.search(pattern, data.decode())
            if match:
                return data.decode(), match
    finally:
        selector.close()
    raise AssertionError(f"no {pattern!r} in the output within {timeout}s: {data!r}")


def test_emulate_serves_until_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    process = subprocess.Popen(
        [sys.executable, "-m", "terwayctl", "cloud", "emulate", "--listen", "127.0.0.1:0",
         "--state", str(tmp_path / "state.sqlite")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, env=env, cwd=tmp_path,
    )
    try:
        text, match = _read_until(process, r"export ALIBABA_CLOUD_REGION_ID=(\S+)\n", timeout=20)
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text)
        assert url is not None
        assert f"export TERWAYCTL_ENDPOINT={url.group(1)}" in text
        assert "key pair: emulator / emulator" in text
        assert "export ALIBABA_CLOUD_ACCESS_KEY_ID=emulator" in text
        assert "seeded from the default world" in text

        client = AcsClient("emulator", "emulator", match.group(1), auto_retry=False)
        try:
            request = DescribeVSwitchesRequest()
            request.set_endpoint(url.group(1).removeprefix("http://"))
            request.set_protocol_type("http")
            body = client.do_action_with_exception(request)
        finally:
            client.session.close()
        assert b"vsw-emupodi" in body

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)
    assert process.returncode == 0, err.decode()
    assert b"emulator stopped" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "0.0.0.0:0"], "loopback only"),
        (["--listen", "127.0.0.1"], "--listen must be HOST:PORT"),
        (["--scenario", "/nonexistent/world.yaml"], "cannot read the scenario"),
    ],
)
def test_emulate_bad_input_exits_2(
    cli: Callable[..., CliResult], tmp_path: Path, args: list[str], message: str
) -> None:
    result = cli("cloud", "emulate", "--state", str(tmp_path / "s.sqlite"), *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "hint:" in result.stderr


def test_emulate_invalid_scenario_exits_2(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("vpcs: [{cidr: 10.0.0.0/33}]\n", encoding="utf-8")
    result = cli("cloud", "emulate", "--state", str(tmp_path / "s.sqlite"), "--scenario", str(scenario))
    assert result.exit_code == 2
    assert "vpcs[0]" in result.stderr and "hint:" in result.stderr
    assert not (tmp_path / "s.sqlite").exists()


def test_emulate_port_in_use_and_bad_state_exit_2(
    cli: Callable[..., CliResult], tmp_path: Path, emulator: RunningEmulator
) -> None:
    port = emulator.url.rsplit(":", 1)[1]
    result = cli("cloud", "emulate", "--state", str(tmp_path / "s.sqlite"), "--listen", f"127.0.0.1:{port}")
    assert result.exit_code == 2 and "cannot listen on" in result.stderr
    result = cli("cloud", "emulate", "--state", str(tmp_path / "no" / "such" / "dir.sqlite"))
    assert result.exit_code == 2 and "cannot use the state file" in result.stderr
    (tmp_path / "junk.sqlite").write_text("not a database " * 100, encoding="utf-8")
    result = cli("cloud", "emulate", "--state", str(tmp_path / "junk.sqlite"))
    assert result.exit_code == 2 and "cannot use the state file" in result.stderr
