"""Retries: how long to wait between attempts, and when to give up.

One attempt is a coroutine. It raises ``Retry`` for a transient failure (or ``classify`` turns
an exception into one: ``errors.transient`` is the read path's one classifier); anything else
ends the read at once. Between attempts the wait is full-jitter exponential backoff (AWS's
"exponential backoff and jitter"), or exactly what the server asked for with ``Retry-After``;
nothing is attempted after the deadline, and a ``Retry-After`` that ends past it gives up at
once instead of sleeping in vain. The budget is the read's ``Limits``: ``max_attempts``,
``backoff_base``, ``backoff_cap``, and the deadline ``total_timeout`` sets.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .._errors import GaveUp, ReadTimeout
from .._limits import Limits

__all__ = ["Retry", "backoff", "retry_after", "run"]

T = TypeVar("T")


class Retry(Exception):
    """Raised by an attempt: this failure is transient. ``status`` is the HTTP status if
    there was one; ``retry_after`` the wait the server asked for (seconds)."""

    def __init__(self, reason: str, *, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


#: How ``run`` waits between attempts (tests replace it to see the waits).
_sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep


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


def backoff(attempt: int, base: float, cap: float, rng: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt - 1)))."""
    return rng() * min(cap, base * 2.0 ** (attempt - 1))


async def run(attempt: Callable[[int], Awaitable[T]], *, what: str, limits: Limits,
              deadline: float,
              classify: Callable[[BaseException], Retry | None] | None = None,
              sleep: Callable[[float], Awaitable[Any]] | None = None,
              rng: Callable[[], float] = random.random,
              clock: Callable[[], float] = time.monotonic) -> T:
    """``await attempt(n)`` for n = 1, 2, ... until it returns, fails for good, or the budget
    (``limits.max_attempts``, ``deadline`` on ``clock``) runs out; then the error says so,
    chained to the last failure (a timeout stays a ``ReadTimeout``, anything else is
    ``GaveUp``)."""
    n = 0
    while True:
        n += 1
        try:
            return await attempt(n)
        except Retry as err:
            failure = err
        except Exception as err:
            found = classify(err) if classify is not None else None
            if found is None:
                raise
            failure = found
            failure.__cause__ = err
        reason = failure.reason
        if n >= limits.max_attempts:
            raise give_up(what, n, failure, reason) from failure.__cause__
        delay = (failure.retry_after if failure.retry_after is not None
                 else backoff(n, limits.backoff_base, limits.backoff_cap, rng))
        remaining = deadline - clock()
        if delay >= remaining:
            asked = ("asked to retry after " if failure.retry_after is not None
                     else "the next attempt would be in ")
            raise give_up(what, n, failure,
                          f"{reason}; {asked}{delay:.3g} s, past the deadline "
                          f"({max(remaining, 0):.3g} s left)") from failure.__cause__
        await (sleep or _sleep)(delay)


def give_up(what: str, attempts: int, failure: Retry, reason: str) -> BaseException:
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
