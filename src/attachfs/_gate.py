"""A file's gate on its fetches ahead: at most ``limit`` at once, the one its reader waits for
first.

Read-ahead is speculative; a read that needs a span now should not queue behind it. pyarrow
hands a parquet file its column chunk reads one at a time and not in order, so the chunk it is
waiting for may have been asked for ahead behind a dozen others: ``promote`` moves it to the
front of the queue (a fetch already running is not affected).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

__all__ = ["Gate"]


class Gate:
    """At most ``limit`` holders at once; waiters enter in order, a promoted one first. Used
    on one event loop (``promote`` from another thread through ``call_soon_threadsafe``)."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiting: list[tuple[Hashable, asyncio.Future[None]]] = []

    async def acquire(self, key: Hashable) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        entry = (key, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if entry in self._waiting:
                self._waiting.remove(entry)
            elif entry[1].done() and not entry[1].cancelled():
                self.release()  # let in, then cancelled before it went on: pass its turn on
            raise

    def release(self) -> None:
        while self._waiting:
            _, future = self._waiting.pop(0)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    def promote(self, key: Hashable) -> None:
        """Let ``key``'s waiter in next, if it is waiting."""
        for i, entry in enumerate(self._waiting):
            if entry[0] == key:
                del self._waiting[i]
                self._waiting.insert(0, entry)
                return
