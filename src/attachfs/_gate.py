"""A file's gate on its fetches ahead: at most ``limit`` at once, in the order they were asked
for.

Read-ahead is speculative; a read that needs a span now does not queue behind it: a read-ahead
that has not passed the gate yet is taken over by the read (``AttachFile._take_over``), which
fetches it at once on its own loop. What passes the gate is only what no read waits for yet.
"""

from __future__ import annotations

import asyncio

__all__ = ["Gate"]


class Gate:
    """At most ``limit`` holders at once; waiters enter in order. Used on one event loop."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiting: list[asyncio.Future[None]] = []

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future in self._waiting:
                self._waiting.remove(future)
            elif future.done() and not future.cancelled():
                self.release()  # let in, then cancelled before it went on: pass its turn on
            raise

    def release(self) -> None:
        while self._waiting:
            future = self._waiting.pop(0)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1
