"""Retries: how long to wait between attempts, and when to give up. One loop for every backend.

One attempt is a coroutine. It raises ``Retry`` for a transient failure (or ``classify`` turns
an exception into one: ``errors.transient`` is the read path's one classifier); anything else
ends the read at once. The budget is the read's ``Limits``, in time:

* Transient failures are retried until ``retry_window`` seconds have passed since the first of
  them, capped at ``max_attempts`` attempts in that window. An attempt that made progress (a
  resumed body that got some bytes) starts the window again: an outage is a run of failures
  that got nowhere.
* Between attempts the wait is capped exponential backoff with full jitter (AWS's "exponential
  backoff and jitter": uniform in ``[0, min(backoff_cap, backoff_base * 2**(n-1)))``), cut
  short so the last attempt is made as the window ends; or exactly what the server asked for
  with ``Retry-After``, and giving up at once when that is past the window or the deadline.
* Nothing is attempted after the read's deadline (``total_timeout``).
* With a ``throttle.Limiter``, every attempt first waits for its token, and every answer feeds
  it: throttling answers slow down every read to that host, not just the one throttled.

Times come from ``_now`` and waits go through ``_sleep``: tests replace both with a virtual
clock, so waits are recorded, not slept. Each retry is logged at DEBUG, with its ``attempt``,
``status``, ``cause`` (the exception's type), ``throttled`` and ``wait`` as record attributes.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from .._errors import GaveUp, ReadTimeout
from .._limits import Limits
from .throttle import Limiter

__all__ = ["Retry", "backoff", "retry_after", "retry_after_in", "run"]

T = TypeVar("T")
_log = logging.getLogger(__name__)

#: How long a throttled request waits at most before it looks at the limiter again (its rate
#: may have grown meanwhile).
LIMITER_POLL = 1.0


class Retry(Exception):
    """Raised by an attempt: this failure is transient. ``status`` is the HTTP status if
    there was one; ``retry_after`` the wait the server asked for (seconds); ``throttled`` that
    the server asked to slow down; ``progress`` that the attempt got some of the bytes before
    it failed (the next one resumes)."""

    def __init__(self, reason: str, *, status: int | None = None,
                 retry_after: float | None = None, throttled: bool = False,
                 progress: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.throttled = throttled
        self.progress = progress


#: How ``run`` waits, and what time it is (tests replace both with a virtual clock).
_sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
_now: Callable[[], float] = time.monotonic


def retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now(), 0.0)


def retry_after_in(headers: Mapping[str, str] | None) -> float | None:
    """The wait an answer asks for: Azure's ``x-ms-retry-after-ms`` or ``retry-after-ms``
    (milliseconds, as azure-core's RetryPolicy reads them), else ``Retry-After``; header
    names in any case."""
    if not headers:
        return None
    named = {k.lower(): v for k, v in headers.items()}  # botocore's are a plain dict
    for name in ("x-ms-retry-after-ms", "retry-after-ms"):
        value = named.get(name)
        if value is not None and value.strip().isdigit():
            return int(value.strip()) / 1000.0
    return retry_after(named.get("retry-after"))


def backoff(attempt: int, base: float, cap: float, rng: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt - 1)))."""
    return rng() * min(cap, base * 2.0 ** min(attempt - 1, 1000))


async def run(attempt: Callable[[int], Awaitable[T]], *, what: object, limits: Limits,
              deadline: float,
              classify: Callable[[BaseException], Retry | None] | None = None,
              throttle: Limiter | None = None,
              sleep: Callable[[float], Awaitable[Any]] | None = None,
              rng: Callable[[], float] = random.random,
              clock: Callable[[], float] | None = None) -> T:
    """``await attempt(n)`` for n = 1, 2, ... until it returns, fails for good, or the budget
    runs out (see the module docstring; ``deadline`` is on ``clock``, ``time.monotonic`` by
    default); then the error says so, chained to the last failure (a timeout stays a
    ``ReadTimeout``, anything else is ``GaveUp``). ``what`` names the read in messages, as
    ``str(what)``: made only when a message needs it."""
    now = clock or _now
    wait = sleep or _sleep
    n = 0
    window_start: float | None = None
    in_window = 0
    while True:
        n += 1
        if throttle is not None:
            await _take_token(throttle, what, n, deadline, now, wait)
        try:
            result = await attempt(n)
        except Retry as err:
            failure = err
        except Exception as err:
            found = classify(err) if classify is not None else None
            if found is None:
                if throttle is not None:
                    throttle.answered(now(), throttled=False)
                raise
            failure = found
            failure.__cause__ = err
        else:
            if throttle is not None:
                throttle.answered(now(), throttled=False)
            return result
        t = now()
        if throttle is not None:
            throttle.answered(t, throttled=failure.throttled)
        if window_start is None or failure.progress:
            window_start, in_window = t, 0
        in_window += 1
        reason = failure.reason
        if in_window >= limits.max_attempts:
            raise give_up(what, n, failure, reason) from failure.__cause__
        window_left = window_start + limits.retry_window - t
        deadline_left = deadline - t
        if failure.retry_after is not None:
            delay = failure.retry_after
            if delay >= deadline_left or delay > window_left:
                past = "the deadline" if delay >= deadline_left else "the retry window"
                left = max(min(deadline_left, window_left), 0)
                raise give_up(what, n, failure,
                              f"{reason}; asked to retry after {delay:.3g} s, past {past} "
                              f"({left:.3g} s left)") from failure.__cause__
        else:
            if window_left <= 0:
                raise give_up(what, n, failure,
                              f"{reason}; still failing {limits.retry_window:g} s after the "
                              "first failure (the retry window)") from failure.__cause__
            delay = min(backoff(in_window, limits.backoff_base, limits.backoff_cap, rng),
                        window_left)
            if delay >= deadline_left:
                raise give_up(what, n, failure,
                              f"{reason}; the next attempt would be in {delay:.3g} s, past the "
                              f"deadline ({max(deadline_left, 0):.3g} s left)"
                              ) from failure.__cause__
        _log.debug("%s: attempt %d failed (%s); trying again in %.3g s", what, n, reason, delay,
                   extra={"attempt": n, "status": failure.status, "throttled": failure.throttled,
                          "cause": type(failure.__cause__ or failure).__name__, "wait": delay})
        await wait(delay)


async def _take_token(throttle: Limiter, what: object, n: int, deadline: float,
                      now: Callable[[], float], wait: Callable[[float], Awaitable[Any]]) -> None:
    """Wait until ``throttle`` lets the next request go, or give up at the deadline."""
    while (delay := throttle.wait(t := now())) > 0:
        if t + delay >= deadline:
            raise GaveUp(f"gave up {what} before attempt {n}: the server asked every reader to "
                         f"slow down, and at {throttle.rate:.3g} requests/s the next one would "
                         "be past the deadline", attempts=n - 1, last_status=None)
        await wait(min(delay, LIMITER_POLL))


def give_up(what: object, attempts: int, failure: Retry, reason: str) -> BaseException:
    """The error of a read whose every attempt failed."""
    plural = "attempt" if attempts == 1 else "attempts"
    cause = failure.__cause__
    if isinstance(cause, ReadTimeout):
        # Still a timeout to the caller, saying it was retried.
        return ReadTimeout(cause.url, f"{reason}; gave up after {attempts} {plural}",
                           phase=cause.phase, seconds=cause.seconds)
    status = f" (last status {failure.status})" if failure.status is not None else ""
    return GaveUp(f"gave up {what} after {attempts} {plural}{status}: {reason}",
                  attempts=attempts, last_status=failure.status)
