"""`terwayctl render`: the install manifests as YAML or JSON on stdout, or one file per object (--dir)."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from terwayctl.cli.context import global_options
from terwayctl.cli.errors import EXIT_USAGE, print_error
from terwayctl.core.errors import InvalidInput, TerwayctlError

STDOUT = "-"
# Files this command writes: NN-kind-name.yaml. Others of that shape in the directory are stale.
OUR_FILE = re.compile(r"\d\d-[a-z]+-[a-z0-9.-]+\.yaml")


def render(
    ctx: typer.Context,
    values: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional
        typer.Option("--values", "-f", help="YAML values file (keys as in docs/render.md).", dir_okay=False),
    ] = None,
    set_: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--set", help="key=value, dotted keys, repeatable; beats --values, e.g. pool.max_size=10."),
    ] = None,
    output: Annotated[
        str,
        typer.Option("--output", "-o", metavar="FORMAT",
                     help="Output format on stdout: yaml (multi-document) or json (a v1 List)."),
    ] = "yaml",
    directory_option: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--dir", metavar="DIR", file_okay=False,
                     help="Write one file per object (NN-kind-name.yaml, apply order) into this directory."),
    ] = None,
) -> None:
    """Render the Terway install manifests (RBAC, eni-config, DaemonSet) from validated values."""
    from terwayctl.cli.options import ManifestOutput, deprecated
    from terwayctl.manifests import (
        InvalidValues,
        load_values,
        render_files,
        render_objects,
        render_warnings,
        render_yaml,
    )

    fmt = output.lower()
    if fmt == STDOUT:
        deprecated("'render -o -'", "'render' (YAML on stdout is the default) or '-o yaml'")
        fmt = ManifestOutput.yaml.value
    elif fmt in ("table", "csv"):
        raise InvalidInput(f"--output {output}: render prints yaml or json", hint="-o yaml (the default) or -o json")
    elif fmt not in {f.value for f in ManifestOutput}:
        if directory_option is not None:
            raise InvalidInput(f"--output {output!r}: not a format (yaml or json)",
                               hint="give the directory with --dir only")
        deprecated(f"'render -o {output}' (a directory)", f"'render --dir {output}'")
        directory_option, fmt = Path(output), ManifestOutput.yaml.value
    if directory_option is not None and fmt != ManifestOutput.yaml.value:
        raise InvalidInput("--dir writes YAML files: -o json goes to stdout only", hint="drop -o json, or drop --dir")
    sets = [*global_values(ctx), *(set_ or [])]
    try:
        loaded = load_values(values, sets)
    except InvalidValues as exc:
        for problem in exc.problems:
            print_error(problem.message, problem.hint)
        raise typer.Exit(EXIT_USAGE) from None
    if directory_option is None:
        if fmt == ManifestOutput.json.value:
            import json

            document = {"apiVersion": "v1", "kind": "List", "items": render_objects(loaded)}
            sys.stdout.write(json.dumps(document, indent=2) + "\n")
        else:
            sys.stdout.write(render_yaml(loaded))
    else:
        directory = directory_option
        files = render_files(loaded)
        written = write_files(directory, files)
        for path in written:
            print(f"wrote {path}")
        for stale in stale_files(directory, {name for name, _ in files}):
            print(f"warning: {stale} is not part of this render; remove it before applying the directory",
                  file=sys.stderr)
    for warning in render_warnings(loaded):
        print(f"warning: {warning}", file=sys.stderr)


def global_values(ctx: typer.Context) -> list[str]:
    """`--namespace` and `--region` given on the command line become values (before --set)."""
    root = ctx.find_root()
    options = global_options(ctx)
    result = []
    for param, key, value in (("namespace", "namespace", options.namespace), ("region", "region_id", options.region)):
        source = root.get_parameter_source(param)
        if source is not None and source.name == "COMMANDLINE" and value is not None:
            result.append(f"{key}={value}")
    return result


def write_files(directory: Path, files: list[tuple[str, str]]) -> list[Path]:
    """Write each file atomically (a temp file in the same directory, then os.replace)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InvalidInput(f"{directory} exists and is not a directory", hint="give --dir a directory, or leave it out for stdout") from None
    except OSError as exc:
        raise TerwayctlError(f"cannot create {directory}: {exc.strerror}") from None
    written = []
    for name, text in files:
        target = directory / name
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temp, 0o644)
            os.replace(temp, target)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            raise TerwayctlError(f"cannot write {target}: {exc.strerror}") from None
        written.append(target)
    return written


def stale_files(directory: Path, current: set[str]) -> list[Path]:
    return sorted(p for p in directory.iterdir() if OUR_FILE.fullmatch(p.name) and p.name not in current)
