"""The credential chain and region resolution (no network: metadata is local or disabled)."""

from __future__ import annotations

from pathlib import Path

import pytest

from terwayctl.cloud.credentials import (
    CloudCredentials,
    find_region,
    load_profile,
    resolve_credentials,
    resolve_region,
)
from terwayctl.cloud.errors import CredentialsNotFound, RegionNotFound
from terwayctl.cloud.metadata import MetadataService
from terwayctl.core.errors import InvalidInput
from tests.fixtures.cloud import CloudEnv, FakeMetadata

OFF = MetadataService(enabled=False)
ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "env-key-id-0001",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret-0001",
}


def profiles(current: str = "default") -> dict[str, object]:
    return {
        "current": current,
        "profiles": [
            {"name": "default", "mode": "AK", "access_key_id": "prof-key-id-0001", "access_key_secret": "prof-secret-0001", "region_id": "cn-beijing"},
            {"name": "sts", "mode": "StsToken", "access_key_id": "STS.prof-key-0002", "access_key_secret": "prof-secret-0002", "sts_token": "prof-token-0002", "region_id": "cn-shanghai"},
            {"name": "noregion", "mode": "AK", "access_key_id": "prof-key-id-0003", "access_key_secret": "prof-secret-0003"},
        ],
    }


def test_explicit_values_win(cloud_env: CloudEnv) -> None:
    cloud_env.write_aliyun_config(profiles())
    creds = resolve_credentials(access_key_id="flag-id", access_key_secret="flag-secret", environ={**ENV, "HOME": str(cloud_env.home)}, metadata=OFF)
    assert (creds.access_key_id, creds.access_key_secret, creds.security_token, creds.source) == ("flag-id", "flag-secret", None, "explicit")


def test_explicit_id_without_secret_is_bad_input() -> None:
    with pytest.raises(InvalidInput, match="needs its secret"):
        resolve_credentials(access_key_id="only-id", environ={}, metadata=OFF)


def test_environment_before_profile(cloud_env: CloudEnv) -> None:
    cloud_env.write_aliyun_config(profiles())
    env = {**ENV, "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token", "HOME": str(cloud_env.home)}
    creds = resolve_credentials(environ=env, metadata=OFF)
    assert (creds.access_key_id, creds.security_token, creds.source) == ("env-key-id-0001", "env-token", "environment")


def test_profile_current_ak(cloud_env: CloudEnv) -> None:
    cloud_env.write_aliyun_config(profiles())
    creds = resolve_credentials(environ={"HOME": str(cloud_env.home)}, metadata=OFF)
    assert (creds.access_key_id, creds.access_key_secret, creds.security_token) == ("prof-key-id-0001", "prof-secret-0001", None)
    assert creds.source == "profile default (AK)"


def test_profile_file_current_is_honoured(cloud_env: CloudEnv) -> None:
    cloud_env.write_aliyun_config(profiles(current="sts"))
    creds = resolve_credentials(environ={"HOME": str(cloud_env.home)}, metadata=OFF)
    assert (creds.access_key_id, creds.security_token) == ("STS.prof-key-0002", "prof-token-0002")


def test_profile_by_flag_and_by_env(cloud_env: CloudEnv) -> None:
    cloud_env.write_aliyun_config(profiles())
    home = {"HOME": str(cloud_env.home)}
    assert resolve_credentials(profile="sts", environ=home, metadata=OFF).security_token == "prof-token-0002"
    by_env = resolve_credentials(environ={**home, "ALIBABA_CLOUD_PROFILE": "noregion"}, metadata=OFF)
    assert by_env.access_key_id == "prof-key-id-0003"


def test_explicit_config_path(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.json"
    path.write_text('{"current": "default", "profiles": [{"name": "default", "mode": "AK", "access_key_id": "p-id", "access_key_secret": "p-secret", "region_id": "cn-qingdao"}]}')
    assert resolve_credentials(config_path=path, environ={}, metadata=OFF).access_key_id == "p-id"
    assert resolve_region(config_path=path, environ={}, metadata=OFF) == "cn-qingdao"


def test_unknown_profile_lists_known_ones(cloud_env: CloudEnv) -> None:
    cloud_env.write_aliyun_config(profiles())
    with pytest.raises(InvalidInput) as caught:
        resolve_credentials(profile="nope", environ={"HOME": str(cloud_env.home)}, metadata=OFF)
    assert "default, noregion, sts" in (caught.value.hint or "")


def test_named_profile_without_file(cloud_env: CloudEnv) -> None:
    with pytest.raises(InvalidInput, match="no aliyun CLI config"):
        resolve_credentials(profile="prod", environ={"HOME": str(cloud_env.home)}, metadata=OFF)


def test_broken_profile_file(cloud_env: CloudEnv) -> None:
    cloud_env.aliyun_config.parent.mkdir(parents=True)
    cloud_env.aliyun_config.write_text("{not json")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        resolve_credentials(environ={"HOME": str(cloud_env.home)}, metadata=OFF)


def test_profile_without_keys_does_not_leak(cloud_env: CloudEnv) -> None:
    cloud_env.write_aliyun_config({"current": "x", "profiles": [{"name": "x", "mode": "AK", "access_key_id": "lonely-key-id-77"}]})
    with pytest.raises(InvalidInput) as caught:
        resolve_credentials(environ={"HOME": str(cloud_env.home)}, metadata=OFF)
    assert "lonely-key-id-77" not in str(caught.value) + (caught.value.hint or "")


def test_nothing_anywhere(cloud_env: CloudEnv) -> None:
    with pytest.raises(CredentialsNotFound) as caught:
        resolve_credentials(environ={"HOME": str(cloud_env.home)}, metadata=OFF)
    assert caught.value.exit_code == 2
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in (caught.value.hint or "")


def test_ecs_ram_role_from_metadata(cloud_env: CloudEnv, fake_metadata: FakeMetadata) -> None:
    creds = resolve_credentials(environ={"HOME": str(cloud_env.home)}, metadata=fake_metadata.service())
    assert (creds.access_key_id, creds.security_token) == ("STS.role-key-id-1234", "role-token-xyz987")
    assert creds.source == "ECS RAM role terway-role"
    assert ("PUT", "/latest/api/token") in fake_metadata.requests


def test_metadata_without_role(cloud_env: CloudEnv, fake_metadata: FakeMetadata) -> None:
    fake_metadata.role = None
    with pytest.raises(CredentialsNotFound):
        resolve_credentials(environ={"HOME": str(cloud_env.home)}, metadata=fake_metadata.service())


def test_metadata_disabled_by_environment() -> None:
    service = MetadataService.from_environ({"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "TRUE", "TERWAYCTL_METADATA_URL": "http://127.0.0.1:9"})
    assert not service.enabled
    assert service.region_id() is None and service.ram_role_credentials() is None


def test_unreachable_metadata_is_quick_and_none() -> None:
    service = MetadataService(base_url="http://127.0.0.1:9", timeout=0.5)  # discard port: refused
    assert service.region_id() is None


def test_credentials_repr_hides_secrets() -> None:
    creds = CloudCredentials("id-very-secret", "secret-very-secret", "token-very-secret", "environment")
    for text in (repr(creds), str(creds)):
        assert "very-secret" not in text


def test_region_chain(cloud_env: CloudEnv, fake_metadata: FakeMetadata) -> None:
    cloud_env.write_aliyun_config(profiles())
    home = {"HOME": str(cloud_env.home)}
    assert resolve_region(region="cn-flag", environ={**home, "ALIBABA_CLOUD_REGION_ID": "cn-env"}, metadata=OFF) == "cn-flag"
    assert resolve_region(environ={**home, "ALIBABA_CLOUD_REGION_ID": "cn-env"}, metadata=OFF) == "cn-env"
    assert resolve_region(environ=home, metadata=OFF) == "cn-beijing"
    assert resolve_region(profile="sts", environ=home, metadata=OFF) == "cn-shanghai"
    fake_metadata.region = "cn-wulanchabu"
    assert resolve_region(profile="noregion", environ=home, metadata=fake_metadata.service()) == "cn-wulanchabu"
    assert find_region(profile="noregion", environ=home, metadata=OFF) is None
    with pytest.raises(RegionNotFound) as caught:
        resolve_region(profile="noregion", environ=home, metadata=OFF)
    assert "--region" in (caught.value.hint or "")


def test_load_profile_none_without_file(cloud_env: CloudEnv) -> None:
    assert load_profile(environ={"HOME": str(cloud_env.home)}) is None
