"""Options shared by commands, as typed aliases, and the output formats."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


class TabularOutput(StrEnum):
    """Output formats of commands whose rows are flat enough for CSV."""

    table = "table"
    json = "json"
    yaml = "yaml"
    csv = "csv"


class ManifestOutput(StrEnum):
    """Output formats of commands that print Kubernetes objects."""

    yaml = "yaml"
    json = "json"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="Output format: table, json or yaml.",
                         case_sensitive=False)
]
TabularOutputOption = Annotated[
    TabularOutput, typer.Option("--output", "-o", help="Output format: table, json, yaml or csv.",
                                case_sensitive=False)
]


def deprecated(old: str, new: str) -> None:
    """One line on stderr for an old spelling that still works for one release."""
    import sys

    print(f"warning: {old} is deprecated and will be removed in the next release; use {new}", file=sys.stderr)


# What help shows for a value, by parameter name; numbers, paths and free text by type otherwise.
METAVARS: dict[str, str] = {
    "vpc": "CIDR", "cidr": "CIDR", "service_cidr": "CIDR", "avoid": "CIDR", "node_vswitch": "CIDR",
    "pod_vswitch": "CIDR", "timeout": "DURATION", "gc_period": "DURATION", "gc_grace": "DURATION",
    "instance_type": "TYPE", "types": "TYPE", "family": "FAMILY", "zone": "ZONE", "zones": "ZONE",
    "region": "REGION", "instance_id": "INSTANCE_ID", "vswitch_id": "VSWITCH_ID", "vswitch": "VSWITCH_ID",
    "vswitches": "VSWITCH_ID", "vpc_id": "VPC_ID", "kubeconfig": "FILE", "context": "CONTEXT",
    "namespace": "NAMESPACE", "profile": "PROFILE", "endpoint": "URL", "set_": "KEY=VALUE",
    "set": "KEY=VALUE", "annotation": "KEY=VALUE", "name": "NAME", "lab": "NAME", "node": "NODE", "pod": "POD",
    "scope": "SCOPE", "check": "CHECK", "netns": "NETNS", "node_netns": "NETNS", "probe_from": "NETNS",
    "mode": "MODE", "metrics": "ADDRESS", "listen": "HOST:PORT", "configmap": "NAME", "probe_source": "IP",
    "external_target": "IP[:PORT]", "hostport_target": "IP:PORT", "log_format": "FORMAT", "log_level": "LEVEL",
    "bandwidth_in": "RATE", "bandwidth_out": "RATE", "target": "NAME", "node_name": "NODE",
    "socket_path": "PATH", "socket_option": "PATH", "socket": "PATH", "command": "COMMAND", "kind": "KIND",
    "growth": "FACTOR", "probe_timeout": "SECONDS", "port": "PORT", "seed": "N", "external_daemon": "NODE",
}


def apply_metavars(command: Any) -> Any:
    """Give every option and argument of the click tree a metavar such as CIDR, FILE or N.

    typer's default shows the parameter's type (`<str>`, `<int range>`); this runs once on the
    click command, for help and for the generated reference, so no command module has to spell them.
    """
    for param in getattr(command, "params", []):
        kind = getattr(param, "param_type_name", "")
        type_name = str(getattr(param.type, "name", ""))
        if getattr(param, "is_flag", False) or type_name == "choice" or kind not in ("option", "argument"):
            continue
        if param.metavar is None:
            name = str(param.name or "")
            if name in METAVARS:
                metavar = METAVARS[name]
            elif "integer" in type_name or "int" in type_name or "float" in type_name:
                metavar = "N"
            elif type_name in ("path", "file"):
                metavar = "DIR" if name.endswith("dir") else "FILE"
            else:
                metavar = name.upper()
            if kind == "argument":
                metavar += "..." if param.nargs == -1 else ""
                param.type = _bare(param.type)
            param.metavar = metavar
    for sub in getattr(command, "commands", {}).values():
        apply_metavars(sub)
    return command


def _bare(param_type: Any) -> Any:
    """The same type, with no type column in help (the argument's metavar says it)."""
    class Bare(type(param_type)):  # type: ignore[misc]
        def get_metavar(self, param: Any, ctx: Any = None) -> str:
            return ""

    bare = Bare.__new__(Bare)
    bare.__dict__.update(param_type.__dict__)
    return bare
