"""Retries with exponential backoff and full jitter (tenacity), bounded in attempts and time.

Only `CloudRetryableError` is retried: Throttling, ServiceUnavailable, InternalError,
Operation.Conflict and connection failures. Everything else fails at once.

A mutating call without a ClientToken (Attach/Detach/DeleteNetworkInterface,
UnassignPrivateIpAddresses) must not be repeated after an error that may come from a call the cloud
did carry out (InternalError, ServiceUnavailable, a timeout): those calls pass `retry_if=rejected`,
which retries only the errors that prove the call was refused before doing anything (Throttling,
Operation.Conflict). The caller (the node daemon's intent log) reads the cloud before it calls again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from terwayctl.cloud.errors import CloudRetryableError

if TYPE_CHECKING:
    from tenacity import RetryCallState

T = TypeVar("T")

log = logging.getLogger("terwayctl.cloud")


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` calls within `max_elapsed` seconds; sleeps grow from `initial_backoff`
    by `multiplier` up to `max_backoff`, each a random fraction of that (full jitter)."""

    max_attempts: int = 6
    max_elapsed: float = 30.0
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_elapsed < 0 or self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("retry times must not be negative")


NO_RETRY = RetryPolicy(max_attempts=1)


def rejected(exc: BaseException) -> bool:
    """The cloud refused the call before acting on it: Throttling*, Operation.Conflict."""
    code = getattr(exc, "code", "") or ""
    return isinstance(code, str) and (code.split(".", 1)[0] == "Throttling" or code == "Operation.Conflict")


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    action: str,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    retry_if: Callable[[BaseException], bool] | None = None,
) -> T:
    """Call `fn` until it returns, raises a non-retryable error, or the policy's budget is spent.

    `retry_if` narrows what is retried among the retryable errors (see `rejected`).

    The last retryable error is re-raised with the number of attempts added to its message.
    """
    from tenacity import Retrying, retry_if_exception, wait_random_exponential
    from tenacity.stop import stop_base

    start = clock()

    class _Stop(stop_base):
        """Stop after max_attempts, or when the next sleep would end past max_elapsed."""

        def __call__(self, retry_state: RetryCallState) -> bool:
            if retry_state.attempt_number >= policy.max_attempts:
                return True
            return clock() - start + retry_state.upcoming_sleep > policy.max_elapsed

    def _log_retry(retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        code = getattr(exc, "code", "") or type(exc).__name__
        log.debug("%s: %s, retry %d in %.3fs", action, code, retry_state.attempt_number, retry_state.upcoming_sleep)

    retrying = Retrying(
        stop=_Stop(),
        wait=wait_random_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff, exp_base=policy.multiplier),
        retry=retry_if_exception(
            lambda exc: isinstance(exc, CloudRetryableError) and (retry_if is None or retry_if(exc))
        ),
        sleep=sleep,
        before_sleep=_log_retry,
        reraise=True,
    )
    attempts = 0

    def _counted() -> T:
        nonlocal attempts
        attempts += 1
        return fn()

    try:
        return retrying(_counted)
    except CloudRetryableError as exc:
        if attempts > 1:
            exc.message = f"{exc.message} (gave up after {attempts} attempts in {clock() - start:.1f}s)"
            exc.args = (exc.message,)
        raise
