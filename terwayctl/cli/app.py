"""The `terwayctl` command: the root app, its global options and the entry point."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from terwayctl import __version__
from terwayctl.cli.completion import COMPLETE_VAR
from terwayctl.cli.context import GlobalOptions
from terwayctl.cli.errors import run_guarded
from terwayctl.core.defaults import DEFAULT_NAMESPACE

app = typer.Typer(
    name="terwayctl",
    help="Plan, install, run and diagnose the Terway container network on Alibaba Cloud.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"terwayctl {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    kubeconfig: Annotated[
        str | None,
        typer.Option(envvar="KUBECONFIG", help="Path of the kubeconfig file (default ~/.kube/config or in-cluster)."),
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="kubeconfig context to use.")] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", "-n", help="Namespace of Terway's objects.")
    ] = DEFAULT_NAMESPACE,
    region: Annotated[
        str | None,
        typer.Option(envvar="ALIBABA_CLOUD_REGION_ID", help="Alibaba Cloud region, e.g. cn-hangzhou."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(envvar="ALIBABA_CLOUD_PROFILE", help="Profile of the aliyun CLI config (~/.aliyun/config.json)."),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(envvar="TERWAYCTL_ENDPOINT", help="OpenAPI endpoint URL for ECS and VPC (e.g. the emulator)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of failures.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Plan, install, run and diagnose the Terway container network on Alibaba Cloud."""
    ctx.obj = GlobalOptions(
        kubeconfig=kubeconfig,
        context=context,
        namespace=namespace,
        region=region,
        profile=profile,
        endpoint=endpoint,
        debug=debug,
    )


# Every command: name -> (module, attribute). A typer.Typer attribute becomes a command group,
# a function a single command. To add a command, add a line here.
# Only the command being run is imported, so one command's imports never slow another's start-up.
COMMANDS: dict[str, tuple[str, str]] = {
    "apply": ("terwayctl.cli.apply", "apply"),
    "capacity": ("terwayctl.cli.capacity", "capacity"),
    "catalog": ("terwayctl.cli.catalog", "app"),
    "cloud": ("terwayctl.cli.cloud", "app"),
    "cni": ("terwayctl.cli.cni", "cni"),
    "completion": ("terwayctl.cli.completion", "completion"),
    "daemon": ("terwayctl.cli.daemon", "app"),
    "doctor": ("terwayctl.cli.doctor", "doctor"),
    "ipam": ("terwayctl.cli.ipam", "app"),
    "lab": ("terwayctl.cli.lab", "app"),
    "plan": ("terwayctl.cli.plan", "app"),
    "vswitch": ("terwayctl.cli.vswitch", "app"),
    "render": ("terwayctl.cli.manifest", "render"),
}
GLOBAL_OPTIONS_WITH_VALUE = {"--kubeconfig", "--context", "--namespace", "-n", "--region", "--profile", "--endpoint"}


def register(names: Iterable[str]) -> typer.Typer:
    """Attach the named commands (once each) to the root app and return it."""
    known = {info.name for info in app.registered_commands} | {info.name for info in app.registered_groups}
    for name in names:
        if name in known:
            continue
        module, attribute = COMMANDS[name]
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)
    return app


def full_app() -> typer.Typer:
    """The app with every command, for help, completion and the generated reference."""
    return register(COMMANDS)


def full_command() -> Any:
    """The click command of the full app, with the metavars help shows (for the generated reference)."""
    import typer.main

    from terwayctl.cli.options import apply_metavars

    return apply_metavars(typer.main.get_command(full_app()))


def _command_named_in(args: Sequence[str]) -> str | None:
    """The command that argv runs, skipping global options; None when it names none."""
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
        elif arg in GLOBAL_OPTIONS_WITH_VALUE:
            skip_value = True
        elif not arg.startswith("-"):
            return arg
    return None


def _option_takes_value(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option" and not getattr(param, "is_flag", False)


def _split_global(arg: str, root_options: dict[str, Any]) -> tuple[Any, bool] | None:
    """(the root option `arg` spells, whether its value is in `arg`), or None when it is none of them."""
    if arg in root_options:
        return root_options[arg], False
    name, sep, _ = arg.partition("=")
    if sep and name.startswith("--") and name in root_options:
        return root_options[name], True
    if len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and arg[:2] in root_options:
        param = root_options[arg[:2]]
        return (param, True) if _option_takes_value(param) else None
    return None


class CommandLine:
    """argv walked along the click tree: the global options lifted in front, and the values found."""

    def __init__(self, command: Any, args: Sequence[str]) -> None:
        self.args: list[str] = []
        self.values: list[tuple[str, str]] = []  # (option as typed, value), every level
        self.files: list[tuple[str, Path]] = []  # options of type path, and --kubeconfig
        self.numbers: list[tuple[str, str]] = []  # options of type int or float
        self.path: list[str] = []  # the command and subcommand names
        self._walk(command, list(args))

    def _found(self, opt: str, param: Any, value: str) -> None:
        self.values.append((opt, value))
        kind = str(getattr(param.type, "name", ""))
        if "int" in kind or "float" in kind:
            self.numbers.append((opt, value))
        if str(getattr(param.type, "name", "")) in ("path", "file") or opt == "--kubeconfig":
            self.files.append((opt, Path(value)))

    def _walk(self, command: Any, args: list[str]) -> None:
        root_options = {opt: p for p in command.params for opt in getattr(p, "opts", [])}
        front: list[str] = []
        rest: list[str] = []
        current = command
        depth = 0
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                rest += args[i:]
                break
            found = _split_global(arg, root_options)
            if found is not None:
                param, inline = found
                taken = 2 if _option_takes_value(param) and not inline else 1
                if _option_takes_value(param):
                    opt, value = (arg.partition("=")[::2] if arg.startswith("--") else (arg[:2], arg[2:])) \
                        if inline else (arg, args[i + 1] if i + 1 < len(args) else "")
                    self._found(opt, param, value)
                (front if depth else rest).extend(args[i : i + taken])
                i += taken
                continue
            if arg.startswith("-") and len(arg) > 1:
                rest.append(arg)
                own = {opt: p for p in current.params for opt in getattr(p, "opts", [])}
                name, sep, inline_value = arg.partition("=")
                param = own.get(name if sep and name.startswith("--") else arg)
                if param is not None and _option_takes_value(param):
                    if sep:
                        self._found(name, param, inline_value)
                    elif i + 1 < len(args):
                        self._found(arg, param, args[i + 1])
                        rest.append(args[i + 1])
                        i += 1
            else:
                rest.append(arg)
                sub = getattr(current, "commands", {}).get(arg)
                if sub is not None:
                    current, depth = sub, depth + 1
                    self.path.append(arg)
                elif getattr(current, "context_settings", {}).get("ignore_unknown_options"):
                    rest += args[i + 1 :]
                    break
                else:
                    argument = next((p for p in current.params if getattr(p, "param_type_name", "") == "argument"),
                                    None)
                    if argument is not None:
                        self._found(str(argument.name).upper(), argument, arg)
            i += 1
        self.args = front + rest


def lift_global_options(command: Any, args: Sequence[str]) -> list[str]:
    """`args` with the root's options (--namespace, --region, --debug, ...) moved in front of the command.

    kubectl and cilium-cli take global options anywhere: `terwayctl vswitch list -n kube-system`.
    The walk follows the click tree so an option's value is never mistaken for an option, stops at
    `--`, and stops at the first argument of a command that passes unknown options on (`lab exec`).
    """
    return CommandLine(command, args).args


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on `argv` (default sys.argv) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    completing = bool(os.environ.get(COMPLETE_VAR))
    if completing:
        # The shell is asking for completions: typer only registers its shell classes on demand.
        from typer._completion_classes import completion_init

        completion_init()
    command = _command_named_in(args)
    wanted = [command] if command in COMMANDS and not completing else list(COMMANDS)
    cli_app = register(wanted)

    def invoke() -> object:
        import typer.main

        from terwayctl.cli.options import apply_metavars

        click_command = apply_metavars(typer.main.get_command(cli_app))
        if completing:
            return click_command.main(args=args, prog_name="terwayctl", standalone_mode=False)
        from terwayctl.cli.inputs import (
            bad_file_error,
            check_files,
            check_forms,
            check_numbers,
            warn_deprecated,
        )

        line = CommandLine(click_command, args)
        if not ({"-h", "--help", "--version"} & set(args)):
            check_forms(line.values)
            check_numbers(line.numbers)
            warn_deprecated(line.path, [opt for opt, _ in line.values])
            check_files(line.files)
        try:
            return click_command.main(args=line.args, prog_name="terwayctl", standalone_mode=False)
        except Exception as exc:
            translated = bad_file_error(exc, line.files)
            if translated is None:
                raise
            raise translated from None

    return run_guarded(invoke, debug="--debug" in args)


def main() -> None:
    sys.exit(run())
