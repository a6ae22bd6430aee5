"""Credentials from a mounted Secret (eni_conf credential_path): read at start, re-read when kubelet
swaps the files, errors that name the file, precedence, and no secret in any output. Real aliyun SDK
against the emulator; the emulator records which AccessKeyId signed each request."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from terwayctl.cloud.client import ClientSettings, CloudClient
from terwayctl.cloud.credentials import DEFAULT_RECHECK_SECONDS, CredentialFiles
from terwayctl.cloud.metadata import MetadataService
from terwayctl.cloud.retry import RetryPolicy
from terwayctl.cloud.session import build_client
from terwayctl.core.errors import InvalidInput
from tests.fixtures.cloud import CloudEnv
from tests.fixtures.emulator import EmulatorFactory, RunningEmulator
from tests.fixtures.node import wait_for

KEY_A, SECRET_A = "LTAI5tFileKeyAAAA", "file-secret-aaaa-0001"
KEY_B, SECRET_B = "LTAI5tFileKeyBBBB", "file-secret-bbbb-0002"
STS_KEY, STS_SECRET, STS_TOKEN = "STS.FileKeyCCCC", "file-secret-cccc-0003", "file-token-cccc-0004"
ENV_KEY, ENV_SECRET = "LTAI5tEnvKeyDDDD", "env-secret-dddd-0005"
ALL_SECRETS = (SECRET_A, SECRET_B, STS_SECRET, STS_TOKEN, ENV_SECRET)

SCENARIO: dict[str, Any] = {
    "region": "cn-hangzhou",
    "zones": ["cn-hangzhou-i"],
    "key_pairs": [
        {"access_key_id": KEY_A, "access_key_secret": SECRET_A},
        {"access_key_id": KEY_B, "access_key_secret": SECRET_B},
        {"access_key_id": STS_KEY, "access_key_secret": STS_SECRET, "security_token": STS_TOKEN},
        {"access_key_id": ENV_KEY, "access_key_secret": ENV_SECRET},
    ],
    "vpcs": [{"id": "vpc-cred", "cidr": "10.0.0.0/16"}],
}


class SecretVolume:
    """A directory laid out as kubelet mounts a Secret: `<key> -> ..data/<key>`, `..data ->
    ..<timestamp>/`, and an update that swaps `..data` atomically (rename of a new symlink)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        root.mkdir()

    def write(self, files: Mapping[str, str]) -> None:
        self.generation += 1
        version = self.root / f"..2026_12_04_00_00_00.{self.generation:04d}"
        version.mkdir()
        for name, text in files.items():
            (version / name).write_text(text)
        old = (self.root / "..data").resolve() if (self.root / "..data").is_symlink() else None
        tmp = self.root / "..data_tmp"
        tmp.symlink_to(version.name)
        os.replace(tmp, self.root / "..data")
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        for link in self.root.iterdir():  # keys dropped from the Secret lose their symlink
            if link.is_symlink() and not link.name.startswith("..") and link.name not in files:
                link.unlink()
        if old is not None:
            for child in old.iterdir():
                child.unlink()
            old.rmdir()


@pytest.fixture
def world(emulator_factory: EmulatorFactory) -> Iterator[tuple[RunningEmulator, list[str]]]:
    """The emulator and the AccessKeyId of every request it received, in order."""
    running = emulator_factory(SCENARIO)
    seen: list[str] = []
    lock = threading.Lock()
    original = running.emulator.handle

    def handle(method: str, params: Mapping[str, str]) -> Any:
        with lock:
            seen.append(params.get("AccessKeyId", ""))
        return original(method, params)

    running.emulator.handle = handle  # type: ignore[method-assign]
    yield running, seen


def _client(running: RunningEmulator, environ: Mapping[str, str] | None = None, **kwargs: Any) -> CloudClient:
    return build_client(
        endpoint=running.url, region=running.region, environ=dict(environ or {}), metadata=MetadataService(enabled=False),
        settings=ClientSettings(retry=RetryPolicy(max_attempts=1)), **kwargs,
    )


def _assert_no_secret(text: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text


def test_files_sign_the_requests_and_a_kubelet_swap_is_picked_up(
    world: tuple[RunningEmulator, list[str]], tmp_path: Path, cloud_env: CloudEnv, caplog: pytest.LogCaptureFixture
) -> None:
    running, seen = world
    volume = SecretVolume(tmp_path / "credentials")
    volume.write({"access_key": KEY_A + "\n", "access_secret": SECRET_A + "\n"})  # kubectl --from-file newlines
    files = CredentialFiles(volume.root, recheck=0.0)
    caplog.set_level(logging.DEBUG)
    with _client(running, provider=files) as client:
        assert client.credentials_source == f"credential files in {volume.root}"
        assert client.describe_vpcs()
        assert seen[-1] == KEY_A
        volume.write({"access_key": KEY_B, "access_secret": SECRET_B})
        assert client.describe_vpcs()  # the same client, the new key
        assert seen[-1] == KEY_B and files.reloads == 1
        volume.write({"access_key": STS_KEY, "access_secret": STS_SECRET, "security_token": STS_TOKEN})
        assert client.describe_vpcs()  # with the token: STS signing (the emulator demands the token)
        assert seen[-1] == STS_KEY and files.reloads == 2
        _assert_no_secret(repr(client) + repr(files) + str(files.get_credentials()) + repr(files.get_credentials()))
    _assert_no_secret(caplog.text)
    assert "credentials reloaded from" in caplog.text


def test_recheck_interval_bounds_how_often_the_files_are_looked_at(tmp_path: Path) -> None:
    volume = SecretVolume(tmp_path / "credentials")
    volume.write({"access_key": KEY_A, "access_secret": SECRET_A})
    now = [100.0]
    files = CredentialFiles(volume.root, recheck=5.0, clock=lambda: now[0])
    volume.write({"access_key": KEY_B, "access_secret": SECRET_B})
    now[0] += 4.9
    assert files.get_credentials().access_key_id == KEY_A  # not looked at yet
    now[0] += 0.1
    assert files.get_credentials().access_key_id == KEY_B
    assert files.reloads == 1
    now[0] += 5.0
    assert files.get_credentials().access_key_id == KEY_B and files.reloads == 1  # unchanged: not re-read


def test_a_broken_update_keeps_the_working_keys_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    volume = SecretVolume(tmp_path / "credentials")
    volume.write({"access_key": KEY_A, "access_secret": SECRET_A})
    files = CredentialFiles(volume.root, recheck=0.0)
    volume.write({"access_key": KEY_B, "access_secret": ""})
    with caplog.at_level(logging.WARNING, logger="terwayctl.cloud"):
        for _ in range(3):
            assert files.get_credentials().access_key_id == KEY_A
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"credential file {volume.root}/access_secret is empty" in warnings[0]
    volume.write({"access_key": KEY_B, "access_secret": SECRET_B})
    assert files.get_credentials().access_key_id == KEY_B
    _assert_no_secret(caplog.text)


@pytest.mark.parametrize(("files", "message"), [
    (None, "credential directory {root} (eni_conf credential_path) does not exist"),
    ({"access_secret": SECRET_A}, "credential file {root}/access_key does not exist"),
    ({"access_key": KEY_A}, "credential file {root}/access_secret does not exist"),
    ({"access_key": "  \n", "access_secret": SECRET_A}, "credential file {root}/access_key is empty"),
    ({"access_key": KEY_A, "access_secret": "\n"}, "credential file {root}/access_secret is empty"),
])
def test_a_missing_or_empty_file_is_an_error_naming_it(
    tmp_path: Path, files: dict[str, str] | None, message: str
) -> None:
    root = tmp_path / "credentials"
    if files is not None:
        SecretVolume(root).write(files)
    with pytest.raises(InvalidInput) as caught:
        CredentialFiles(root)
    assert caught.value.message == message.format(root=root)
    assert caught.value.hint and "access_key and access_secret" in caught.value.hint
    _assert_no_secret(str(caught.value) + (caught.value.hint or ""))


def test_an_unreadable_file_is_an_error_naming_it(tmp_path: Path) -> None:
    volume = SecretVolume(tmp_path / "credentials")
    volume.write({"access_key": KEY_A, "access_secret": SECRET_A})
    (volume.root / "security_token").mkdir()  # root reads any mode: a directory is unreadable for everyone
    with pytest.raises(InvalidInput) as caught:
        CredentialFiles(volume.root)
    assert caught.value.message.startswith(f"cannot read credential file {volume.root}/security_token: ")


def test_credential_path_never_falls_back_silently(world: tuple[RunningEmulator, list[str]], tmp_path: Path,
                                                   cloud_env: CloudEnv) -> None:
    running, _ = world
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": ENV_KEY, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ENV_SECRET}
    with pytest.raises(InvalidInput, match=r"credential directory .* does not exist"):
        _client(running, env, credential_path=tmp_path / "missing")


def test_precedence_files_over_environment_and_profile_flag_over_files(
    world: tuple[RunningEmulator, list[str]], tmp_path: Path, cloud_env: CloudEnv
) -> None:
    running, seen = world
    volume = SecretVolume(tmp_path / "credentials")
    volume.write({"access_key": KEY_A, "access_secret": SECRET_A})
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": ENV_KEY, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ENV_SECRET}
    with _client(running, env, credential_path=volume.root) as client:
        client.describe_vpcs()
    assert seen[-1] == KEY_A
    with _client(running, env) as client:  # no credential_path: the environment, as before
        client.describe_vpcs()
    assert seen[-1] == ENV_KEY
    cloud_env.write_aliyun_config({"current": "other", "profiles": [
        {"name": "other", "mode": "AK", "access_key_id": KEY_B, "access_key_secret": SECRET_B},
    ]})
    with _client(running, {}, credential_path=volume.root, profile="other") as client:  # --profile beats the files
        client.describe_vpcs()
    assert seen[-1] == KEY_B



def test_credential_path_client_rotates_within_the_recheck_interval(
    world: tuple[RunningEmulator, list[str]], tmp_path: Path, cloud_env: CloudEnv
) -> None:
    """The daemon's route (build_client(credential_path=...), the default recheck): a Secret update is
    used by the same client within a few seconds."""
    running, seen = world
    volume = SecretVolume(tmp_path / "credentials")
    volume.write({"access_key": KEY_A, "access_secret": SECRET_A})
    with _client(running, credential_path=volume.root) as client:
        client.describe_vpcs()
        assert seen[-1] == KEY_A
        volume.write({"access_key": KEY_B, "access_secret": SECRET_B})
        started = time.monotonic()

        def signs_with_b() -> bool:
            client.describe_vpcs()
            return seen[-1] == KEY_B

        assert wait_for(signs_with_b, timeout=DEFAULT_RECHECK_SECONDS + 5, step=0.2)
        assert time.monotonic() - started <= DEFAULT_RECHECK_SECONDS + 5
