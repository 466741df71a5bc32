"""A virtual clock for the retry loop: waits are recorded and advance the clock, never slept.

``VirtualClock.install(monkeypatch)`` replaces ``attachfs._read.retry``'s ``_now`` and ``_sleep``.
The clock is the real monotonic clock plus every wait so far, so the I/O timeouts (real time)
and the retry budget (virtual time) both keep working. ``at(t, action)`` runs ``action`` once
the virtual time since installation reaches ``t`` seconds, from inside the wait that reaches it:
"the server comes back after 10 s" without waiting 10 s.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest


class VirtualClock:
    def __init__(self) -> None:
        self.offset = 0.0
        self.waits: list[float] = []
        self._start = time.monotonic()
        self._pending: list[tuple[float, Callable[[], None]]] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() + self.offset

    @property
    def elapsed(self) -> float:
        """Virtual seconds since installation."""
        return self.now() - self._start

    def at(self, t: float, action: Callable[[], None]) -> None:
        self._pending.append((t, action))
        self._pending.sort(key=lambda p: p[0])

    async def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)
            self.offset += max(seconds, 0.0)
            due = [p for p in self._pending if p[0] <= self.elapsed]
            self._pending = [p for p in self._pending if p[0] > self.elapsed]
        for _, action in due:
            action()
        await asyncio.sleep(0)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
        from attachfs._read import retry

        monkeypatch.setattr(retry, "_now", self.now)
        monkeypatch.setattr(retry, "_sleep", self.sleep)
        return self
