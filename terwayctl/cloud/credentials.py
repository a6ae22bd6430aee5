"""The credential chain and the region, in the order docs/cloud.md gives.

Credentials: explicit values (flags) -> ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET / _SECURITY_TOKEN ->
the aliyun CLI profile file (~/.aliyun/config.json; --profile, ALIBABA_CLOUD_PROFILE, else the
file's `current`) -> the ECS RAM role from the instance metadata service.
Region: --region -> ALIBABA_CLOUD_REGION_ID -> the profile's region_id -> instance metadata.

The node daemon adds one source in front of the environment: a credential directory (eni_conf
`credential_path`, where the DaemonSet mounts the Secret of `credentials.secret`), read by
`CredentialFiles`, which re-reads the files when kubelet swaps them (see its docstring). Every
source is handed to the SDK as a `CredentialsProvider` that is asked on each signing.

The profile modes (AK, StsToken, RamRoleArn, EcsRamRole, ...) are handled by the
alibabacloud-credentials package (imported only when a profile file is used). The environment
is read when called (not at import time, as that package does), and the metadata service is our
own small client so its URL and on/off switch are configurable.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from terwayctl.cloud.errors import CREDENTIALS_HINT, CredentialsNotFound, RegionNotFound, scrub
from terwayctl.cloud.metadata import MetadataService
from terwayctl.core.errors import InvalidInput

ENV_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
ENV_PROFILE = "ALIBABA_CLOUD_PROFILE"
ENV_REGION = "ALIBABA_CLOUD_REGION_ID"
ENV_CLI_PROFILE_DISABLED = "ALIBABA_CLOUD_CLI_PROFILE_DISABLED"

ACCESS_KEY_FILE = "access_key"
ACCESS_SECRET_FILE = "access_secret"
SECURITY_TOKEN_FILE = "security_token"
"""The files of a credential directory (the keys of the Secret `credentials.secret` names)."""
DEFAULT_RECHECK_SECONDS = 2.0
"""How often, at most, `CredentialFiles` looks at its files for a change (on a signing)."""

log = logging.getLogger("terwayctl.cloud")


@dataclass(frozen=True)
class CloudCredentials:
    """An AccessKey pair (plus an STS token) and where it came from; secrets never in repr/str."""

    access_key_id: str = field(repr=False)
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    source: str = "explicit"

    def __str__(self) -> str:
        return f"credentials from {self.source}"

    def secrets(self) -> tuple[str, ...]:
        """Every value that must never be shown (for scrubbing messages)."""
        return tuple(s for s in (self.access_key_id, self.access_key_secret, self.security_token) if s)


class CredentialsProvider(Protocol):
    """What the SDK session asks for credentials on every signing (terwayctl.cloud.sdk)."""

    @property
    def source(self) -> str: ...

    def get_credentials(self) -> CloudCredentials: ...


class StaticCredentials:
    """The same credentials on every call (flags, environment, profile, RAM role as resolved once)."""

    def __init__(self, credentials: CloudCredentials) -> None:
        self._credentials = credentials

    @property
    def source(self) -> str:
        return self._credentials.source

    def get_credentials(self) -> CloudCredentials:
        return self._credentials

    def __repr__(self) -> str:
        return f"StaticCredentials({self.source})"


_Stamp = tuple[tuple[int, int, int, int] | None, ...]


class CredentialFiles:
    """AccessKey credentials read from a directory: `access_key`, `access_secret` and, optionally,
    `security_token` (surrounding whitespace dropped), as kubelet mounts a Secret.

    kubelet mounts each key as a symlink into a `..data` directory and updates a Secret by swapping
    that symlink atomically; so a change is seen as another device/inode/mtime/size of the files the
    names resolve to. `get_credentials` looks (os.stat, no read) at most every `recheck` seconds and
    re-reads the files when they changed. The constructor reads them: a missing directory, a missing,
    empty or unreadable file is InvalidInput (exit 2) naming the file, never a fallback to another
    source. A later re-read that fails keeps the credentials in use and logs one warning per change
    (a Secret being rewritten, a key removed); it is tried again at the next change. Thread-safe.
    Secrets never appear in a message, a log line or the repr.
    """

    def __init__(
        self, directory: Path, *, recheck: float = DEFAULT_RECHECK_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.directory = Path(directory)
        self.recheck = recheck
        self._clock = clock
        self._lock = threading.Lock()
        if not self.directory.is_dir():
            what = "is not a directory" if self.directory.exists() else "does not exist"
            raise InvalidInput(f"credential directory {self.directory} (eni_conf credential_path) {what}", hint=_FILES_HINT)
        self._stamp = self._stamps()
        self._current = self._read()
        self._checked = clock()
        self._failed_stamp: _Stamp | None = None
        self.reloads = 0
        """how many times changed files were read again (for status and tests)"""

    @property
    def source(self) -> str:
        return f"credential files in {self.directory}"

    def __repr__(self) -> str:
        return f"CredentialFiles({str(self.directory)!r})"

    def get_credentials(self) -> CloudCredentials:
        with self._lock:
            now = self._clock()
            if now - self._checked >= self.recheck:
                self._checked = now
                self._refresh()
            return self._current

    def _refresh(self) -> None:
        stamp = self._stamps()
        if stamp == self._stamp or stamp == self._failed_stamp:
            return
        try:
            fresh = self._read()
        except InvalidInput as exc:
            self._failed_stamp = stamp
            log.warning("credential files changed but cannot be read: %s; still using the previous ones", exc.message)
            return
        if self._stamps() != stamp:
            return  # swapped again while being read (key and secret may not match): take it next time
        self._current, self._stamp, self._failed_stamp = fresh, stamp, None
        self.reloads += 1
        log.info("credentials reloaded from %s (the files changed)", self.directory)

    def _paths(self) -> tuple[Path, ...]:
        return tuple(self.directory / name for name in (ACCESS_KEY_FILE, ACCESS_SECRET_FILE, SECURITY_TOKEN_FILE))

    def _stamps(self) -> _Stamp:
        stamps: list[tuple[int, int, int, int] | None] = []
        for path in self._paths():
            try:
                st = path.stat()
            except OSError:
                stamps.append(None)
            else:
                stamps.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def _read(self) -> CloudCredentials:
        key_path, secret_path, token_path = self._paths()
        key = _read_credential_file(key_path, required=True)
        secret = _read_credential_file(secret_path, required=True)
        token = _read_credential_file(token_path, required=False)
        assert key is not None and secret is not None
        return CloudCredentials(key, secret, token, self.source)


_FILES_HINT = (
    "the directory holds files access_key and access_secret (optionally security_token): the keys of "
    "the Secret named by credentials.secret, which the DaemonSet mounts at credential_path"
)


def _read_credential_file(path: Path, *, required: bool) -> str | None:
    """The stripped content of one credential file; None for a missing optional one."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if not required:
            return None
        raise InvalidInput(f"credential file {path} does not exist", hint=_FILES_HINT) from None
    except UnicodeDecodeError:
        raise InvalidInput(f"credential file {path} is not UTF-8 text", hint=_FILES_HINT) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read credential file {path}: {exc.strerror or type(exc).__name__}",
                           hint=_FILES_HINT) from None
    if not text:
        if not required:
            return None
        raise InvalidInput(f"credential file {path} is empty", hint=_FILES_HINT)
    return text


@dataclass(frozen=True)
class Profile:
    """One profile of the aliyun CLI config file (only what terwayctl reads itself)."""

    name: str
    mode: str
    region_id: str | None
    path: Path
    secrets: tuple[str, ...] = field(default=(), repr=False)


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".aliyun" / "config.json"


def load_profile(
    profile: str | None = None,
    *,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Profile | None:
    """The selected profile (`profile`, else ALIBABA_CLOUD_PROFILE, else the file's `current`).

    None when there is no config file (or it is disabled) and no profile was asked for by name.
    Raises InvalidInput for an unreadable file or a named profile that is not in it.
    """
    env = os.environ if environ is None else environ
    path = config_path or default_config_path(env)
    wanted = profile or env.get(ENV_PROFILE) or None
    if env.get(ENV_CLI_PROFILE_DISABLED, "").lower() == "true" and config_path is None:
        return None
    if not path.is_file():
        if wanted:
            raise InvalidInput(
                f"profile {wanted!r} asked for, but there is no aliyun CLI config at {path}",
                hint="create it with 'aliyun configure --profile NAME', or drop --profile / ALIBABA_CLOUD_PROFILE",
            )
        return None
    config = _read_config(path)
    name = wanted or str(config.get("current") or "default")
    entries = [p for p in config.get("profiles") or [] if isinstance(p, dict)]
    for entry in entries:
        if entry.get("name") == name:
            region = entry.get("region_id")
            secrets = tuple(
                str(entry[k]) for k in ("access_key_id", "access_key_secret", "sts_token") if entry.get(k)
            )
            return Profile(name, str(entry.get("mode") or "AK"), str(region) if region else None, path, secrets)
    if wanted:
        known = ", ".join(sorted(str(p.get("name")) for p in entries)) or "none"
        raise InvalidInput(
            f"no profile {name!r} in {path}",
            hint=f"profiles there: {known}; pick one with --profile or ALIBABA_CLOUD_PROFILE",
        )
    return None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read the aliyun CLI config {path}: {exc.strerror}") from None
    except ValueError:
        raise InvalidInput(
            f"the aliyun CLI config {path} is not valid JSON", hint="fix it or recreate it with 'aliyun configure'"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"the aliyun CLI config {path} is not a JSON object")
    return data


def resolve_credentials(
    *,
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    security_token: str | None = None,
    profile: str | None = None,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    metadata: MetadataService | None = None,
) -> CloudCredentials:
    """The first credentials found along the chain; CredentialsNotFound (exit 2) when none."""
    env = os.environ if environ is None else environ
    if access_key_id or access_key_secret:
        if not (access_key_id and access_key_secret):
            raise InvalidInput(
                "an AccessKey id needs its secret, and a secret its id",
                hint="give both the AccessKey id and the AccessKey secret",
            )
        return CloudCredentials(access_key_id, access_key_secret, security_token or None, "explicit")
    env_id, env_secret = env.get(ENV_KEY_ID, ""), env.get(ENV_KEY_SECRET, "")
    if env_id and env_secret:
        return CloudCredentials(env_id, env_secret, env.get(ENV_TOKEN) or None, "environment")
    selected = load_profile(profile, config_path=config_path, environ=env)
    if selected is not None:
        return _profile_credentials(selected, metadata or MetadataService.from_environ(env))
    service = metadata or MetadataService.from_environ(env)
    role = service.ram_role_credentials()
    if role is not None:
        return CloudCredentials(
            role.access_key_id, role.access_key_secret, role.security_token or None, f"ECS RAM role {role.role_name}"
        )
    partial = " (ALIBABA_CLOUD_ACCESS_KEY_ID is set but its _SECRET is not)" if env_id and not env_secret else ""
    raise CredentialsNotFound(f"no Alibaba Cloud credentials found{partial}", hint=CREDENTIALS_HINT)


def _profile_credentials(profile: Profile, metadata: MetadataService) -> CloudCredentials:
    if profile.mode == "EcsRamRole" and not metadata.enabled:
        raise InvalidInput(
            f"profile {profile.name!r} uses the ECS RAM role, but the metadata service is disabled",
            hint="unset ALIBABA_CLOUD_ECS_METADATA_DISABLED or use an AK profile",
        )
    from alibabacloud_credentials.provider import (  # type: ignore[import-untyped]
        CLIProfileCredentialsProvider,
    )

    try:
        provider = CLIProfileCredentialsProvider(profile_name=profile.name, profile_file=str(profile.path))
        found = provider.get_credentials()
        key_id: object = found.get_access_key_id()
        secret: object = found.get_access_key_secret()
        token: object = found.get_security_token()
    except Exception as exc:  # noqa: BLE001 - the package raises bare Exception/ValueError subclasses
        raise InvalidInput(
            f"profile {profile.name!r} ({profile.mode}) in {profile.path}: {scrub(str(exc), profile.secrets)}",
            hint="check the profile with 'aliyun configure list'",
        ) from None
    if not (isinstance(key_id, str) and key_id and isinstance(secret, str) and secret):
        raise InvalidInput(
            f"profile {profile.name!r} in {profile.path} has no AccessKey",
            hint="set access_key_id and access_key_secret with 'aliyun configure'",
        )
    return CloudCredentials(
        key_id, secret, token if isinstance(token, str) and token else None, f"profile {profile.name} ({profile.mode})"
    )


def resolve_region(
    *,
    region: str | None = None,
    profile: str | None = None,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    metadata: MetadataService | None = None,
) -> str:
    """The region along its chain; RegionNotFound (exit 2) when none gives one."""
    found = find_region(region=region, profile=profile, config_path=config_path, environ=environ, metadata=metadata)
    if found is None:
        raise RegionNotFound(
            "no Alibaba Cloud region given",
            hint="pass --region cn-hangzhou, set ALIBABA_CLOUD_REGION_ID, or set region_id in the aliyun profile",
        )
    return found


def find_region(
    *,
    region: str | None = None,
    profile: str | None = None,
    config_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    metadata: MetadataService | None = None,
) -> str | None:
    """Like resolve_region, but None instead of an error; pass a disabled MetadataService for no I/O."""
    env = os.environ if environ is None else environ
    if region:
        return region
    if env.get(ENV_REGION):
        return env[ENV_REGION]
    try:
        selected = load_profile(profile, config_path=config_path, environ=env)
    except InvalidInput:
        selected = None
    if selected is not None and selected.region_id:
        return selected.region_id
    service = metadata or MetadataService.from_environ(env)
    return service.region_id()
