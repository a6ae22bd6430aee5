"""The ECS instance metadata service: the region and the RAM role's STS credentials.

Standard library only, with a short timeout, and configurable (URL, on/off) so that tests never
reach 100.100.100.200: `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true` turns it off, as it does for
the alibabacloud-credentials package; `TERWAYCTL_METADATA_URL` points it elsewhere.
Speaks IMDSv2 (a session token) and falls back to v1 when the token request fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_METADATA_URL = "http://100.100.100.200"
DEFAULT_METADATA_TIMEOUT = 1.0
TOKEN_TTL_SECONDS = 21600


@dataclass(frozen=True)
class RoleCredentials:
    role_name: str
    access_key_id: str
    access_key_secret: str
    security_token: str
    expiration: str


@dataclass(frozen=True)
class MetadataService:
    """Where the metadata service is, whether to ask it at all, and how long to wait."""

    base_url: str = DEFAULT_METADATA_URL
    enabled: bool = True
    timeout: float = DEFAULT_METADATA_TIMEOUT
    role_name: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> MetadataService:
        disabled = environ.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "").strip().lower() == "true"
        return cls(
            base_url=environ.get("TERWAYCTL_METADATA_URL") or DEFAULT_METADATA_URL,
            enabled=not disabled,
            role_name=environ.get("ALIBABA_CLOUD_ECS_METADATA") or None,
        )

    def region_id(self) -> str | None:
        """The instance's region, or None when not on ECS (or disabled)."""
        text = self._get("/latest/meta-data/region-id")
        if text is None:
            return None
        return text.strip() or None

    def ram_role_credentials(self) -> RoleCredentials | None:
        """STS credentials of the instance's RAM role, or None when there is none."""
        role = self.role_name
        if not role:
            listing = self._get("/latest/meta-data/ram/security-credentials/")
            if not listing:
                return None
            role = listing.strip().splitlines()[0].strip().rstrip("/")
        if not role:
            return None
        text = self._get(f"/latest/meta-data/ram/security-credentials/{role}")
        if not text:
            return None
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if not isinstance(doc, dict) or doc.get("Code", "Success") != "Success":
            return None
        key_id, secret, token = doc.get("AccessKeyId"), doc.get("AccessKeySecret"), doc.get("SecurityToken")
        if not (isinstance(key_id, str) and isinstance(secret, str) and isinstance(token, str)):
            return None
        if not (key_id and secret):
            return None
        return RoleCredentials(role, key_id, secret, token, str(doc.get("Expiration", "")))

    def get(self, path: str) -> str | None:
        """The text at a metadata path (e.g. /latest/meta-data/instance-id), or None when unreachable."""
        return self._get(path)

    def _get(self, path: str) -> str | None:
        if not self.enabled:
            return None
        import urllib.error
        import urllib.request

        reachable, token = self._token()
        if not reachable:
            return None
        headers = {"X-aliyun-ecs-metadata-token": token} if token else {}
        request = urllib.request.Request(self.base_url.rstrip("/") + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                body: bytes = reply.read()
                return body.decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            exc.close()
            return None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def _token(self) -> tuple[bool, str | None]:
        """(reachable, IMDSv2 token); an HTTP error still means reachable (v1 fallback)."""
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            self.base_url.rstrip("/") + "/latest/api/token",
            method="PUT",
            headers={"X-aliyun-ecs-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                body: bytes = reply.read()
                return True, body.decode("ascii", "replace").strip() or None
        except urllib.error.HTTPError as exc:
            exc.close()
            return True, None
        except (urllib.error.URLError, OSError, ValueError):
            return False, None
