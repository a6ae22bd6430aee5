"""Pure reading of a CNI configuration directory, the way libcni (containerd, CRI-O) reads it.

The runtime loads the files ending in .conf, .conflist or .json in lexical order and uses the
first valid one; so `10-terway.conf` (sorting before `10-terway.conflist`) wins when both exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terwayctl.cni.spec import SUPPORTED_VERSIONS

EXTENSIONS = (".conf", ".conflist", ".json")
TERWAY_TYPE = "terway"


@dataclass(frozen=True)
class NetworkConfig:
    file: str
    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    problems: tuple[str, ...] = ()

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(p["type"] if isinstance(p.get("type"), str) else "" for p in self.plugins)

    @property
    def is_terway(self) -> bool:
        return bool(self.plugins) and self.types[0] == TERWAY_TYPE

    def plugin(self, kind: str) -> dict[str, Any] | None:
        return next((p for p in self.plugins if p.get("type") == kind), None)


@dataclass(frozen=True)
class ConfDir:
    path: Path
    configs: tuple[NetworkConfig, ...] = field(default_factory=tuple)

    @property
    def chosen(self) -> NetworkConfig | None:
        """What the runtime uses: the first valid file in lexical order."""
        return next((c for c in self.configs if not c.problems), None)


def parse_config(file: str, text: str) -> NetworkConfig:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return NetworkConfig(file, "", "", (), (f"not valid JSON: {exc.msg} at line {exc.lineno}",))
    if not isinstance(data, dict):
        return NetworkConfig(file, "", "", (), ("not a JSON object",))
    problems = []
    if file.endswith(".conflist"):
        raw = data.get("plugins")
        plugins = tuple(p for p in raw if isinstance(p, dict)) if isinstance(raw, list) else ()
        if not plugins:
            problems.append("a .conflist needs a non-empty 'plugins' list")
        elif isinstance(raw, list) and len(plugins) != len(raw):
            problems.append("every entry of 'plugins' must be a JSON object")
    else:
        plugins = (data,)
    raw_version = data.get("cniVersion")
    if raw_version is not None and not isinstance(raw_version, str):
        problems.append(f"cniVersion must be a string, not {type(raw_version).__name__} {json.dumps(raw_version)}")
    version = str(raw_version or "")
    if version not in SUPPORTED_VERSIONS:
        problems.append(f"cniVersion {version or '(missing)'} is not one of {', '.join(SUPPORTED_VERSIONS)}")
    if not data.get("name"):
        problems.append("no 'name'")
    elif not isinstance(data.get("name"), str):
        problems.append(f"name must be a string, not {type(data.get('name')).__name__}")
    for index, plugin in enumerate(plugins):
        kind = plugin.get("type")
        if not kind:
            problems.append(f"plugin {index} has no 'type'")
        elif not isinstance(kind, str) or "/" in kind:
            problems.append(f"plugin {index}: type must be a plugin name, not {json.dumps(kind)}")
    return NetworkConfig(file, str(data.get("name") or ""), version, plugins, tuple(problems))


def read_conf_dir(path: Path) -> ConfDir:
    configs = []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if entry.is_file() and entry.name.endswith(EXTENSIONS):
            try:
                text = entry.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                configs.append(NetworkConfig(entry.name, "", "", (), (f"cannot read: {exc}",)))
                continue
            configs.append(parse_config(entry.name, text))
    return ConfDir(path, tuple(configs))
