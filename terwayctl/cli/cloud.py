"""`terwayctl cloud`: the local ECS + VPC OpenAPI emulator (docs/emulator.md)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from terwayctl.core.errors import InvalidInput

if TYPE_CHECKING:
    from terwayctl.emulator import Emulator

app = typer.Typer(
    no_args_is_help=True,
    help="Alibaba Cloud helpers: the local ECS + VPC OpenAPI emulator.",
)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
DEFAULT_STATE = Path("terwayctl-emulator.sqlite")


def parse_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT on loopback; port 0 picks a free port."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise InvalidInput(f"--listen must be HOST:PORT, got {listen!r}", hint="e.g. --listen 127.0.0.1:0")
    if host not in LOOPBACK_HOSTS:
        raise InvalidInput(f"the emulator listens on loopback only, not {host!r}", hint="use --listen 127.0.0.1:PORT")
    return "127.0.0.1", int(port_text)


@app.command("emulate")
def emulate(
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on (loopback only; port 0 picks one).")] = "127.0.0.1:0",
    state: Annotated[Path, typer.Option(help="SQLite state file; an existing one keeps its world.")] = DEFAULT_STATE,
    scenario: Annotated[Optional[Path], typer.Option(help="YAML scenario seeding an empty state (default: the documented default world).")] = None,  # noqa: UP045
    seed: Annotated[Optional[int], typer.Option(help="Seed for fault injection (jitter and failure draws).")] = None,  # noqa: UP045
) -> None:
    """Serve the ECS (2014-05-26) and VPC (2016-04-28) OpenAPI on 127.0.0.1 until SIGINT or SIGTERM."""
    from terwayctl.emulator import Emulator, load_scenario

    host, port = parse_listen(listen)
    world = load_scenario(scenario) if scenario is not None else None
    emulator = Emulator(state, world=world, host=host, port=port, fault_seed=seed)
    try:
        emulator.start()
    except OSError as exc:
        emulator.stop()
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}",
                           hint="pick another port, or 0 for a free one") from None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _announce(emulator, state, scenario)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emulator.stop()
    typer.echo("emulator stopped")


def _announce(emulator: Emulator, state: Path, scenario: Path | None) -> None:
    origin = "seeded from " + (str(scenario) if scenario else "the default world") if emulator.seeded else "kept"
    key_id, secret = emulator.key_pairs[0]
    lines = [
        f"emulator listening on {emulator.url}",
        f"region {emulator.region}; state {state} ({origin})",
        f"key pair: {key_id} / {secret}",
        "export these to point terwayctl at it:",
        f"  export TERWAYCTL_ENDPOINT={emulator.url}",
        f"  export ALIBABA_CLOUD_ACCESS_KEY_ID={key_id}",
        f"  export ALIBABA_CLOUD_ACCESS_KEY_SECRET={secret}",
        f"  export ALIBABA_CLOUD_REGION_ID={emulator.region}",
        "stop with Ctrl-C (SIGINT) or SIGTERM",
    ]
    for line in lines:
        typer.echo(line)
