"""CNI semantics, once: a dispatch table from CNI_COMMAND to one handler per verb.

The daemon runs this for every invocation the static shim forwards (`run`): it parses the
environment and the network config (`config.parse`), asks the daemon's service (`ask`, an
in-process call) and renders the versioned result, or the CNI error object
`{cniVersion, code, msg, details}` with exit status 1, for every failure: bad input never ends in
a traceback. The shim and the Python debugging client (`client.py`) only move bytes.

The service's own errors (e.g. 11 empty pool, 3 unknown container) are printed as they are; an
unusable ADD result is rolled back with a DEL. STATUS answers 50 for any failure to say yes.
"""

from __future__ import annotations

import json
import os
import sys

from terwayctl.cni import config as netconf
from terwayctl.cni import protocol, results
from terwayctl.cni.spec import (
    DECODE_FAILURE,
    INTERNAL_ERROR,
    INVALID_CONFIG,
    INVALID_ENVIRONMENT,
    IO_FAILURE,
    LATEST_VERSION,
    PLUGIN_NOT_AVAILABLE,
    SUPPORTED_VERSIONS,
    CNIError,
)

# Not `from typing import TYPE_CHECKING`: importing typing would cost the plugin's start-up a few ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    Ask = Callable[[protocol.Request], protocol.Reply]
    Handler = Callable[[Mapping[str, str], dict[str, object], Ask, str], "dict[str, object] | None"]



def _ask(inv: netconf.Invocation, ask: Ask, verb: str | None = None) -> protocol.Reply:
    """One exchange with the daemon's service; its errors become CNI errors as they are."""
    reply = ask(inv.request(verb))
    if reply.error is not None:
        raise CNIError(reply.error.code, reply.error.msg, reply.error.details)
    return reply


def _require_netns(inv: netconf.Invocation) -> None:
    problem = netconf.netns_problem(inv.netns_handle or inv.netns)
    if problem:
        raise CNIError(INVALID_ENVIRONMENT, f"CNI_NETNS {inv.netns!r} {problem}")


def cmd_add(env: Mapping[str, str], config: dict[str, object], ask: Ask, handle: str) -> dict[str, object]:
    """ADD: the daemon allocates and plumbs; print its result in the requested version.

    When the daemon's result is unusable the allocation is rolled back with a DEL before failing.
    """
    inv = netconf.parse("ADD", env, config, handle)
    _require_netns(inv)
    reply = _ask(inv, ask)
    try:
        return results.from_current(results.validate(reply.result or {}, LATEST_VERSION), inv.version)
    except ValueError as exc:
        _rollback(inv, ask)
        raise CNIError(IO_FAILURE, "the terway daemon returned an invalid result", str(exc)) from None


def _rollback(inv: netconf.Invocation, ask: Ask) -> None:
    """Undo an ADD the plugin cannot report; a failure here is left to the runtime's own DEL."""
    try:
        _ask(inv, ask, "DEL")
    except CNIError as exc:
        print(f"terway: rollback of {inv.container_id} failed: {exc.msg}", file=sys.stderr)


def cmd_del(env: Mapping[str, str], config: dict[str, object], ask: Ask, handle: str) -> None:
    """DEL: idempotent; a missing netns or an unknown container is success (the daemon says ok)."""
    _ask(netconf.parse("DEL", env, config, handle), ask)
    return None


def cmd_check(env: Mapping[str, str], config: dict[str, object], ask: Ask, handle: str) -> None:
    """CHECK: the daemon compares prevResult with what it holds (3 when it knows no such container)."""
    inv = netconf.parse("CHECK", env, config, handle)
    if inv.prev_result is None:
        raise CNIError(INVALID_CONFIG, "CHECK needs prevResult", "the runtime passes the cached ADD result")
    _require_netns(inv)
    _ask(inv, ask)
    return None


def cmd_status(env: Mapping[str, str], config: dict[str, object], ask: Ask, handle: str) -> None:
    """STATUS: is the daemon ready to serve ADD? Any failure to say yes is 50."""
    inv = netconf.parse("STATUS", env, config, handle)
    try:
        _ask(inv, ask)
    except CNIError as exc:
        if exc.code == PLUGIN_NOT_AVAILABLE:
            raise
        raise CNIError(PLUGIN_NOT_AVAILABLE, "plugin not available: " + exc.msg, exc.details) from None
    return None


def cmd_gc(env: Mapping[str, str], config: dict[str, object], ask: Ask, handle: str) -> None:
    """GC: the daemon releases every allocation not in cni.dev/valid-attachments."""
    _ask(netconf.parse("GC", env, config, handle), ask)
    return None


def cmd_version(env: Mapping[str, str], config: dict[str, object], ask: Ask, handle: str) -> dict[str, object]:
    """VERSION: the requested version when the plugin speaks it (else the latest) and the list."""
    return {
        "cniVersion": netconf.reported_version(config) or LATEST_VERSION,
        "supportedVersions": list(SUPPORTED_VERSIONS),
    }


HANDLERS: dict[str, Handler] = {
    "ADD": cmd_add,
    "DEL": cmd_del,
    "CHECK": cmd_check,
    "STATUS": cmd_status,
    "GC": cmd_gc,
    "VERSION": cmd_version,
}


def _read_config(stdin: str, allow_empty: bool) -> dict[str, object]:
    if len(stdin.encode()) > protocol.MAX_STDIN_BYTES:
        raise CNIError(DECODE_FAILURE, f"network config is larger than {protocol.MAX_STDIN_BYTES} bytes")
    if not stdin.strip():
        if allow_empty:
            return {}
        raise CNIError(DECODE_FAILURE, "no network config on stdin")
    try:
        config = json.loads(stdin)
    except (ValueError, RecursionError) as exc:
        raise CNIError(DECODE_FAILURE, "network config is not valid JSON", str(exc)) from None
    if not isinstance(config, dict):
        raise CNIError(DECODE_FAILURE, "network config must be a JSON object")
    return config


def _render(document: Mapping[str, object]) -> str:
    return json.dumps(document, indent=4) + "\n"


def run(env: Mapping[str, str], stdin: str, ask: Ask, netns_handle: str = "") -> protocol.Outcome:
    """Run one CNI invocation against the daemon's service: exit 0 with the result (if any), or
    exit 1 with a CNI error object. `netns_handle` is a path that opens the pod's namespace in this
    process (the descriptor the shim passed), used instead of CNI_NETNS for the kernel work."""
    version = LATEST_VERSION
    try:
        command = env.get("CNI_COMMAND", "")
        handler = HANDLERS.get(command)
        if handler is None:
            known = ", ".join(HANDLERS)
            what = f"unknown CNI_COMMAND {command!r}" if command else "CNI_COMMAND is not set"
            raise CNIError(INVALID_ENVIRONMENT, what, f"expected one of {known}")
        config = _read_config(stdin, allow_empty=command == "VERSION")
        version = netconf.reported_version(config) or LATEST_VERSION
        result = handler(env, config, ask, netns_handle)
    except CNIError as exc:
        return protocol.Outcome(1, _render(exc.to_json(version)))
    except Exception as exc:  # noqa: BLE001 - the runtime must get a CNI error object, never a traceback
        error = CNIError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")
        return protocol.Outcome(1, _render(error.to_json(version)))
    return protocol.Outcome(0, _render(result) if result is not None else "")


def entry() -> None:
    """The `terway` console script: the Python twin of the static shim (a debugging client)."""
    from terwayctl.cni import client

    sys.exit(client.main(os.environ, sys.stdin.buffer, sys.stdout, sys.stderr))
