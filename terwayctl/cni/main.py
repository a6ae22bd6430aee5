"""The plugin's entry point: a dispatch table from CNI_COMMAND to one handler per verb.

`main(env, stdin, stdout)` takes its streams as arguments (tests never touch os.environ). Each
handler parses its input (`config.parse`), asks the daemon (`protocol.call`) and returns a result;
the dispatcher prints that result, or the CNI error object `{cniVersion, code, msg, details}` with
exit status 1, for every failure: bad input never ends in a traceback.

Daemon failures map onto CNI codes:
- cannot connect, or no reply within the deadline: 11 "try again later", naming the socket. DEL
  too: a DEL that "succeeds" without the daemon would leak the pod's IP (and its ENI) for good,
  while a failed DEL is retried by kubelet/containerd until the daemon is back (libcni habit: DEL
  fails only when the plugin cannot do its part; a missing netns or allocation is still success).
- the connection breaks or the reply breaks the protocol: 5 I/O failure.
- STATUS: any of these is 50 "plugin not available".
- the daemon's own errors (e.g. 11 empty pool, 3 unknown container) are printed as they are.
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
    TRY_AGAIN_LATER,
    CNIError,
)

# Not `from typing import TYPE_CHECKING`: importing typing would cost the plugin's start-up a few ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import BinaryIO, TextIO

    Handler = Callable[[Mapping[str, str], dict[str, object]], "dict[str, object] | None"]

MAX_CONFIG_BYTES = 4 << 20
ROLLBACK_TIMEOUT = 5.0


def _ask(inv: netconf.Invocation, verb: str | None = None, timeout: float | None = None) -> protocol.Reply:
    """One exchange with the daemon; transport failures become CNI errors naming the socket."""
    try:
        reply = protocol.call(inv.request(verb), inv.socket_path, inv.timeout if timeout is None else timeout)
    except (protocol.DaemonUnreachable, protocol.DaemonTimeout) as exc:
        what = "is not running" if isinstance(exc, protocol.DaemonUnreachable) else "did not answer in time"
        raise CNIError(
            TRY_AGAIN_LATER,
            f"terway daemon {what}: {exc.socket_path}: {exc.reason}",
            "the runtime retries; check the terway pod on this node",
        ) from None
    except protocol.DaemonBroken as exc:
        raise CNIError(IO_FAILURE, f"talking to the terway daemon at {exc.socket_path} failed: {exc.reason}") from None
    except protocol.ProtocolError as exc:
        raise CNIError(IO_FAILURE, f"cannot send the request to the terway daemon: {exc}") from None
    if reply.error is not None:
        raise CNIError(reply.error.code, reply.error.msg, reply.error.details)
    return reply


def _require_netns(inv: netconf.Invocation) -> None:
    problem = netconf.netns_problem(inv.netns)
    if problem:
        raise CNIError(INVALID_ENVIRONMENT, f"CNI_NETNS {inv.netns!r} {problem}")


def cmd_add(env: Mapping[str, str], config: dict[str, object]) -> dict[str, object]:
    """ADD: the daemon allocates and plumbs; print its result in the requested version.

    When the daemon's result is unusable the allocation is rolled back with a DEL before failing.
    """
    inv = netconf.parse("ADD", env, config)
    _require_netns(inv)
    reply = _ask(inv)
    try:
        return results.from_current(results.validate(reply.result or {}, LATEST_VERSION), inv.version)
    except ValueError as exc:
        _rollback(inv)
        raise CNIError(IO_FAILURE, "the terway daemon returned an invalid result", str(exc)) from None


def _rollback(inv: netconf.Invocation) -> None:
    """Undo an ADD the plugin cannot report; a failure here is left to the runtime's own DEL."""
    try:
        _ask(inv, "DEL", timeout=min(inv.timeout, ROLLBACK_TIMEOUT))
    except CNIError as exc:
        print(f"terway: rollback of {inv.container_id} failed: {exc.msg}", file=sys.stderr)


def cmd_del(env: Mapping[str, str], config: dict[str, object]) -> None:
    """DEL: idempotent; a missing netns or an unknown container is success (the daemon says ok)."""
    _ask(netconf.parse("DEL", env, config))
    return None


def cmd_check(env: Mapping[str, str], config: dict[str, object]) -> None:
    """CHECK: the daemon compares prevResult with what it holds (3 when it knows no such container)."""
    inv = netconf.parse("CHECK", env, config)
    if inv.prev_result is None:
        raise CNIError(INVALID_CONFIG, "CHECK needs prevResult", "the runtime passes the cached ADD result")
    _require_netns(inv)
    _ask(inv)
    return None


def cmd_status(env: Mapping[str, str], config: dict[str, object]) -> None:
    """STATUS: is the daemon ready to serve ADD? Any failure to say yes is 50."""
    inv = netconf.parse("STATUS", env, config)
    try:
        _ask(inv)
    except CNIError as exc:
        if exc.code == PLUGIN_NOT_AVAILABLE:
            raise
        raise CNIError(PLUGIN_NOT_AVAILABLE, "plugin not available: " + exc.msg, exc.details) from None
    return None


def cmd_gc(env: Mapping[str, str], config: dict[str, object]) -> None:
    """GC: the daemon releases every allocation not in cni.dev/valid-attachments."""
    _ask(netconf.parse("GC", env, config))
    return None


def cmd_version(env: Mapping[str, str], config: dict[str, object]) -> dict[str, object]:
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


def _read_config(stdin: BinaryIO | TextIO, allow_empty: bool) -> dict[str, object]:
    try:
        data = stdin.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise CNIError(IO_FAILURE, f"cannot read the network config from stdin: {exc}") from None
    except ValueError as exc:  # text stdin that is not valid in its encoding
        raise CNIError(DECODE_FAILURE, f"cannot decode stdin: {exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise CNIError(DECODE_FAILURE, f"network config is larger than {MAX_CONFIG_BYTES} bytes")
    if not data.strip():
        if allow_empty:
            return {}
        raise CNIError(DECODE_FAILURE, "no network config on stdin")
    try:
        config = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CNIError(DECODE_FAILURE, "network config is not valid JSON", str(exc)) from None
    if not isinstance(config, dict):
        raise CNIError(DECODE_FAILURE, "network config must be a JSON object")
    return config


def _write(stdout: TextIO, document: Mapping[str, object]) -> bool:
    try:
        stdout.write(json.dumps(document, indent=4) + "\n")
        stdout.flush()
    except (OSError, ValueError):
        return False
    return True


def main(env: Mapping[str, str], stdin: BinaryIO | TextIO, stdout: TextIO) -> int:
    """Run one CNI invocation; 0 on success, 1 after printing a CNI error object."""
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
        result = handler(env, config)
    except CNIError as exc:
        _write(stdout, exc.to_json(version))
        return 1
    except Exception as exc:  # noqa: BLE001 - the runtime must get a CNI error object, never a traceback
        _write(stdout, CNIError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}").to_json(version))
        return 1
    if result is not None and not _write(stdout, result):
        return 1
    return 0


def entry() -> None:
    """The `terway` console script: the real environment and standard streams."""
    sys.exit(main(os.environ, sys.stdin.buffer, sys.stdout))
