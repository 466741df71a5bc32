"""Client-side rate limiting fed by throttling answers: every read to a host slows down together.

Retrying each throttled request on its own keeps the whole pool pushing into the throttle. The
AWS SDKs' *adaptive* retry mode instead keeps one rate limiter per client; this is the same
design (botocore ``botocore/retries/adaptive.py``, ``bucket.py`` and ``throttling.py``):

* A ``Limiter`` per place a cloud limits request rates, shared by every read of the process on
  any thread or event loop: per bucket on S3 and GCS, per storage account on Azure, per host
  and port for plain http(s) (``key``).
* It lets everything through until the first throttling answer (429, ``SlowDown``,
  ``ServerBusy``...: ``Retry.throttled``). From then on every request first takes a token from
  a bucket filled at ``rate`` tokens per second.
* A throttling answer cuts the rate to ``BETA`` times the rate the process was being answered
  at (measured over half-second intervals, smoothed); every other answer grows it back along
  the CUBIC curve of TCP congestion control, never above twice the measured rate. The rate
  never drops below ``MIN_RATE``.

Times are seconds on the caller's monotonic clock (``retry``'s, which tests replace). A
forked child starts with no limiters: the state and its lock belong to the parent's threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable

from .. import _fork

__all__ = ["BETA", "MIN_RATE", "Limiter", "forget_all", "key", "limiter"]

#: The lowest rate a limiter sends at, in requests per second (botocore's ``_MIN_RATE``).
MIN_RATE = 0.5
#: The factor a throttling answer multiplies the rate by (CUBIC's beta, botocore's 0.7).
BETA = 0.7
#: CUBIC's scaling constant C: how fast the rate grows back (botocore's 0.4).
SCALE = 0.4
#: The rate never grows past this multiple of the measured rate (botocore's 2.0).
MAX_RATE_SCALE = 2.0
#: The measured rate is taken over intervals this long, smoothed exponentially.
INTERVAL = 0.5
SMOOTHING = 0.8
#: Limiters kept at most; the ones never throttled are forgotten first.
MAX_LIMITERS = 4096
_EPSILON = 1e-9
_MIN_WAIT = 0.001


class Limiter:
    """The rate limiter of one host (see the module docstring). Thread-safe."""

    def __init__(self, now: float):
        self._lock = threading.Lock()
        #: True once a throttling answer was seen: from then on requests take tokens.
        self.enabled = False
        #: Tokens per second while enabled.
        self.rate = MIN_RATE
        self._tokens = 0.0
        self._capacity = 1.0
        self._filled_at: float | None = None
        # CUBIC: the rate at the last throttle, the time to grow back to it, and when.
        self._w_max = 0.0
        self._k = 0.0
        self._last_throttle = now
        # The measured rate of answers.
        self.measured = 0.0
        self._count = 0
        self._interval_start = math.floor(now / INTERVAL) * INTERVAL
        #: Throttling answers seen, and requests made to wait (for ``explain`` and tests).
        self.throttles = 0
        self.delayed = 0

    def __repr__(self) -> str:
        state = f"{self.rate:.3g}/s" if self.enabled else "off"
        return f"Limiter({state}, measured {self.measured:.3g}/s, {self.throttles} throttles)"

    # -- before a request --------------------------------------------------------------------

    def wait(self, now: float) -> float:
        """Seconds to wait before asking again; 0: a token was taken, send now."""
        if not self.enabled:  # read without the lock: it only ever turns True
            return 0.0
        with self._lock:
            self._refill(now)
            if self._tokens >= 1.0 - _EPSILON:  # a token, give or take rounding
                self._tokens = max(self._tokens - 1.0, 0.0)
                return 0.0
            self.delayed += 1
            return max((1.0 - self._tokens) / self.rate, _MIN_WAIT)

    def _refill(self, now: float) -> None:
        if self._filled_at is not None and now > self._filled_at:
            self._tokens = min(self._capacity,
                               self._tokens + (now - self._filled_at) * self.rate)
        self._filled_at = now if self._filled_at is None else max(now, self._filled_at)

    def _set_rate(self, rate: float, now: float) -> None:
        self._refill(now)  # tokens earned so far were earned at the old rate
        self.rate = max(rate, MIN_RATE)
        self._capacity = max(rate, 1.0)
        self._tokens = min(self._tokens, self._capacity)

    # -- after an answer ---------------------------------------------------------------------

    def answered(self, now: float, *, throttled: bool) -> None:
        """Record one answer (or failed attempt); ``throttled``: the server asked to slow down."""
        with self._lock:
            measured = self._measure(now)
            if throttled:
                self.throttles += 1
                rate = measured if not self.enabled else min(measured, self.rate)
                self._w_max = rate
                self._k = (rate * (1 - BETA) / SCALE) ** (1 / 3)
                self._last_throttle = now
                new = rate * BETA
                self.enabled = True
            elif self.enabled:
                new = SCALE * (now - self._last_throttle - self._k) ** 3 + self._w_max
            else:
                return
            self._set_rate(min(new, MAX_RATE_SCALE * measured), now)

    def _measure(self, now: float) -> float:
        self._count += 1
        start = math.floor(now / INTERVAL) * INTERVAL
        if start > self._interval_start:
            current = self._count / (start - self._interval_start)
            self.measured = current * SMOOTHING + self.measured * (1 - SMOOTHING)
            self._count = 0
            self._interval_start = start
        return self.measured


_limiters: dict[Hashable, Limiter] = {}
_lock = threading.Lock()


def limiter(where: Hashable, now: float) -> Limiter:
    """The process's limiter for ``where`` (a ``key``), created on first use."""
    found = _limiters.get(where)
    if found is not None:
        return found
    with _lock:
        found = _limiters.get(where)
        if found is None:
            if len(_limiters) >= MAX_LIMITERS:
                for name in [k for k, v in _limiters.items() if not v.enabled]:
                    del _limiters[name]
                if len(_limiters) >= MAX_LIMITERS:
                    _limiters.clear()
            found = _limiters[where] = Limiter(now)
        return found


def key(backend: str, bucket: str | None = None, account: str | None = None,
        host: str | None = None) -> tuple[str, str]:
    """Where ``backend`` limits request rates: S3 and GCS per bucket, Azure per storage
    account, plain http(s) per host (and port)."""
    if backend == "azure":
        return backend, account or bucket or ""
    if backend == "http":
        return backend, (host or "").lower()
    return backend, bucket or ""


def forget_all() -> None:
    """Drop every limiter (a forked child, and tests)."""
    global _lock
    _limiters.clear()
    _lock = threading.Lock()


_fork.at_fork(after_in_child=forget_all)
