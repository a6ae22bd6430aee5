"""The intent log: every mutating cloud call is written to the store before it is sent.

`Ledger` wraps the six mutating calls of the pool (Create/Attach/Detach/DeleteNetworkInterface,
Assign/UnassignPrivateIpAddresses). Each one:

1. writes an intent (action, ENI, parameters, ClientToken when the action takes one) to the store,
   one committed transaction, before the request leaves;
2. sends the call;
3. resolves the intent. A reply settles it (with the store change it confirms, in the same
   transaction). An error that proves the cloud refused the call (a business code such as
   InvalidVSwitchId.IpNotEnough, or Throttling after the client's retries) settles it as "nothing
   happened". An error that does not say whether the cloud acted (InternalError,
   ServiceUnavailable, a timeout, a lost connection, no reply at all) is resolved by asking again:
   a call with a ClientToken (Create, Assign) is repeated with the same token (the cloud answers
   what it did the first time, or does it now); a call without one (Attach, Detach, Delete,
   Unassign) is repeated only after DescribeNetworkInterfaces shows it did not happen.

An intent that cannot be resolved (the cloud unreachable) stays in the store; reconciliation reads
the cloud and settles it (start-up, before the socket opens, and every ip_pool_sync_period).
UnassignPrivateIpAddresses answered InvalidIp.IpUnassigned means the address is gone: it is never
handed out again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from terwayctl.cloud.models import NetworkInterface
from terwayctl.node.cloudapi import EniCloud, error_code
from terwayctl.node.store import Store

log = logging.getLogger("terwayctl.node.intents")

T = TypeVar("T")

RESOLVE_ATTEMPTS = 3
RESOLVE_BACKOFF = 0.2
IP_UNASSIGNED = "InvalidIp.IpUnassigned"
ENI_NOT_FOUND = "InvalidEniId.NotFound"
ATTACHED = ("InUse", "Attaching")

_AMBIGUOUS_PREFIXES = ("InternalError", "ServiceUnavailable", "SDK.", "UnknownError", "Unknown")


def ambiguous(exc: BaseException) -> bool:
    """True when the error does not tell whether the cloud carried the call out."""
    code = error_code(exc)
    if not code:
        return True  # not an API answer: a timeout, a lost connection, a bug below
    return code.startswith(_AMBIGUOUS_PREFIXES)


class Unresolved(Exception):
    """The outcome of a call could not be learnt; its intent stays for reconciliation."""


class _Refused(Exception):
    """The cloud shows the call cannot have happened and cannot happen (a state it refuses)."""


INVALID_ENI_STATE = "InvalidOperation.InvalidEniState"


class Ledger:
    """The pool's mutating cloud calls, each one behind an intent in the store."""

    def __init__(
        self,
        cloud: EniCloud,
        store: Store,
        instance_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        new_token: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.cloud = cloud
        self.store = store
        self.instance_id = instance_id
        self.sleep = sleep
        self.new_token = new_token

    # --- reads ------------------------------------------------------------------------------------

    def describe(self, eni_id: str) -> NetworkInterface | None:
        """The ENI as the cloud sees it now; None when it does not exist."""
        found = self.cloud.describe_network_interfaces(network_interface_ids=[eni_id])
        return next((ni for ni in found if ni.network_interface_id == eni_id), None)

    def _pause(self, attempt: int) -> None:
        self.sleep(RESOLVE_BACKOFF * (2**attempt))

    # --- calls with a ClientToken ----------------------------------------------------------------

    def create_network_interface(
        self,
        *,
        vswitch_id: str,
        security_group_ids: Sequence[str],
        secondary_ip_count: int,
        description: str,
        tags: Mapping[str, str],
    ) -> NetworkInterface:
        token = self.new_token()
        params: dict[str, object] = {
            "vswitch_id": vswitch_id, "security_group_ids": list(security_group_ids),
            "secondary_ip_count": secondary_ip_count, "description": description, "tags": dict(tags),
        }
        intent = self.store.begin_intent("CreateNetworkInterface", params, client_token=token)

        def call() -> NetworkInterface:
            return self.cloud.create_network_interface(
                vswitch_id=vswitch_id, security_group_ids=security_group_ids, secondary_ip_count=secondary_ip_count,
                description=description, tags=tags, client_token=token,
            )

        created = self._with_token(intent, "CreateNetworkInterface", call)
        # The ENI exists, Available and tagged with this node: the attach intent covers it from here;
        # a crash before that leaves an Available ENI of this node, which reconciliation deletes.
        self.store.set_intent_eni(intent, created.network_interface_id)
        self.store.end_intent(intent)
        return created

    def assign_private_ip_addresses(self, eni_id: str, count: int, known: Iterable[str]) -> list[str]:
        """`count` (<= 10) new IPs on `eni_id`, committed to the store as idle with the intent's
        resolution. `known`: the ENI's IPs the store already holds (to tell the new ones when the
        reply is lost and the cloud is read instead)."""
        token = self.new_token()
        intent = self.store.begin_intent(
            "AssignPrivateIpAddresses", {"count": count}, eni_id=eni_id, client_token=token
        )

        def call() -> list[str]:
            return self.cloud.assign_private_ip_addresses(eni_id, count=count, client_token=token)

        try:
            ips = self._with_token(intent, "AssignPrivateIpAddresses", call)
        except Unresolved:
            ni = self.describe(eni_id)  # the retries with the token failed too: adopt what the cloud shows
            if ni is None:
                self.store.end_intent(intent)
                raise
            ips = sorted(set(ni.private_ips) - set(known) - {ni.primary_ip})
            log.warning("AssignPrivateIpAddresses on %s: no reply; the cloud shows %d new IP(s), adopted",
                        eni_id, len(ips))
        self.store.end_intent(intent, add=(eni_id, ips))
        return ips

    def _with_token(self, intent: int, action: str, call: Callable[[], T]) -> T:
        """Send; after an ambiguous error send again with the same ClientToken (same parameters: the
        cloud answers what it did, or does it now). A refusal ends the intent and is raised."""
        last: BaseException | None = None
        for attempt in range(RESOLVE_ATTEMPTS):
            if attempt:
                self._pause(attempt)
            try:
                return call()
            except Exception as exc:
                if not ambiguous(exc):
                    self.store.end_intent(intent)
                    raise
                last = exc
                log.warning("%s: %s; asking again with the same ClientToken", action, _describe(exc))
        raise Unresolved(f"{action}: no answer after {RESOLVE_ATTEMPTS} attempts: {_describe(last)}") from last

    # --- calls without a ClientToken: read the cloud before calling again ---------------------------

    def attach_network_interface(self, eni_id: str) -> None:
        intent = self.store.begin_intent("AttachNetworkInterface", {"instance_id": self.instance_id}, eni_id=eni_id)

        def done() -> bool:
            ni = self.describe(eni_id)
            if ni is None:
                raise _Refused(f"ENI {eni_id} does not exist")
            if ni.status in ATTACHED and ni.instance_id == self.instance_id:
                return True
            if ni.status != "Available":
                raise _Refused(f"ENI {eni_id} is {ni.status} on {ni.instance_id or 'no instance'}")
            return False

        self._read_then_call(
            intent, "AttachNetworkInterface",
            lambda: self.cloud.attach_network_interface(eni_id, self.instance_id), done,
            read_codes=(INVALID_ENI_STATE,),
        )
        self.store.end_intent(intent)

    def detach_network_interface(self, eni_id: str) -> None:
        intent = self.store.begin_intent("DetachNetworkInterface", {"instance_id": self.instance_id}, eni_id=eni_id)

        def done() -> bool:
            ni = self.describe(eni_id)
            return ni is None or ni.status in ("Detaching", "Available") or ni.instance_id != self.instance_id

        self._read_then_call(
            intent, "DetachNetworkInterface",
            lambda: self.cloud.detach_network_interface(eni_id, self.instance_id), done,
            read_codes=(INVALID_ENI_STATE, ENI_NOT_FOUND),
        )
        self.store.end_intent(intent)

    def delete_network_interface(self, eni_id: str) -> None:
        intent = self.store.begin_intent("DeleteNetworkInterface", {}, eni_id=eni_id)
        self._read_then_call(
            intent, "DeleteNetworkInterface",
            lambda: self.cloud.delete_network_interface(eni_id), lambda: self.describe(eni_id) is None,
            read_codes=(ENI_NOT_FOUND, INVALID_ENI_STATE),
        )
        self.store.end_intent(intent)

    def unassign_private_ip_addresses(self, eni_id: str, ips: Sequence[str]) -> tuple[list[str], list[str]]:
        """Release `ips` (<= 10) of `eni_id`: (gone, kept). `gone` the cloud no longer holds (removed
        from the store with the intent), `kept` it still holds after the call failed for good (they
        stay idle: the cloud confirms them). InvalidIp.IpUnassigned counts as gone, never idle."""
        intent = self.store.begin_intent("UnassignPrivateIpAddresses", {"ips": list(ips)}, eni_id=eni_id)
        wanted = list(ips)
        error: Exception | None = None
        for attempt in range(RESOLVE_ATTEMPTS):
            if attempt:
                self._pause(attempt)
            try:
                self.cloud.unassign_private_ip_addresses(eni_id, wanted)
                self.store.end_intent(intent, remove=ips)
                return list(ips), []
            except Exception as exc:  # noqa: BLE001 - classified below; refusals are re-raised
                code = error_code(exc)
                if code not in (IP_UNASSIGNED, ENI_NOT_FOUND) and not ambiguous(exc):
                    error = exc
                    break
                log.warning("UnassignPrivateIpAddresses on %s: %s; reading the cloud", eni_id, _describe(exc))
                error = exc
            try:
                ni = self.describe(eni_id)
            except Exception as exc:
                raise Unresolved(f"UnassignPrivateIpAddresses on {eni_id}: {_describe(exc)}") from exc
            held = set(ni.private_ips) if ni is not None else set()
            wanted = [ip for ip in ips if ip in held]
            if not wanted:
                self.store.end_intent(intent, remove=ips)
                return list(ips), []
        held_now = set(wanted)
        gone = [ip for ip in ips if ip not in held_now]
        self.store.end_intent(intent, remove=gone)
        if error is not None and not gone:
            raise error
        return gone, [ip for ip in ips if ip in held_now]

    def _read_then_call(
        self,
        intent: int,
        action: str,
        call: Callable[[], None],
        done: Callable[[], bool],
        read_codes: tuple[str, ...] = (),
    ) -> None:
        """Call; after an ambiguous error, or one of `read_codes` (what a second delivery of a call
        that did happen answers), read the cloud: `done()` settles it, otherwise call again (at most
        RESOLVE_ATTEMPTS calls). A refusal ends the intent and is raised."""
        last: BaseException | None = None
        for attempt in range(RESOLVE_ATTEMPTS):
            if attempt:
                self._pause(attempt)
            try:
                call()
                return
            except Exception as exc:
                if error_code(exc) not in read_codes and not ambiguous(exc):
                    self.store.end_intent(intent)
                    raise
                log.warning("%s: %s; reading the cloud before calling again", action, _describe(exc))
                last = exc
            try:
                if done():
                    return
            except _Refused as refused:
                self.store.end_intent(intent)
                log.warning("%s: %s", action, refused)
                if last is not None and not ambiguous(last):
                    raise last from None
                raise Unresolved(f"{action}: {refused}") from last
            except Exception as exc:
                raise Unresolved(f"{action}: cannot read the cloud: {_describe(exc)}") from exc
        raise Unresolved(f"{action}: no answer after {RESOLVE_ATTEMPTS} attempts: {_describe(last)}") from last


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no error"
    code = error_code(exc)
    return f"{code}: {exc}" if code else f"{type(exc).__name__}: {exc}"
