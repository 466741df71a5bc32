"""Many reads at once: how ``cat``, ``cat_ranges`` and ``cat_iter`` keep requests in flight.

A batch of small objects is a matter of keeping requests in flight: each waits tens of
milliseconds on a cloud for its first byte, so throughput is requests in flight over that wait,
until the client's CPU, which prepares, signs and parses every request, is busy all the time.
Past that point a larger window adds no throughput: requests only queue inside the client for
the CPU, holding pooled connections (and the server's) meanwhile.

So the window finds that point, per host, the way a TCP sender probes its path: it starts at
``MIN_WINDOW`` and grows by ``GROWTH`` each epoch (``EPOCH`` windows of completions) while the
completion rate grows by ``RATE_GAIN`` or more; after two epochs in a row that it does not, the
window goes back to the one that gave the best rate and stays there. The next batch to the same
host starts from that window (and, if the last one stopped before it settled, goes on where
it stopped: judged against the best rate it saw, its epochs that did not pay still counted);
after ``RELEARN`` seconds a batch probes again from there. The window never exceeds
``CEILING`` times the connections the pool opens to a host (``POOL_CONNECTIONS_PER_HOST``):
past that, requests only wait for a connection. On a local link (a round trip well under a
millisecond) more than ``MIN_WINDOW`` never pays; on a cloud-like one (30 ms to the first
byte) the window grows to what the CPU can feed, and no further.

A batch whose results are taken one by one (``cat_iter``) is also paced by its consumer: it
keeps at most ``max(PACE, taken)`` objects started and not yet taken (and never more than the
window), so a consumer that stops after a few objects leaves few requests behind, and one that
is slower than the link does not pile results up in memory (its rate is its consumer's, so it
uses the host's window and does not change it). When the caller stops early, no
new request starts, and the ones in flight may finish for up to ``LINGER`` seconds, so their
connections go back to the pool instead of being closed with a response half read (HTTP/1.1
cannot abandon a response and keep the connection). What is still running then is cancelled.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from .._limits import POOL_CONNECTIONS_PER_HOST

__all__ = ["Batch", "run_all"]

J = TypeVar("J")
R = TypeVar("R")

#: The smallest window, and the first one of a host not seen yet.
MIN_WINDOW = 16
#: Growth per epoch while the completion rate keeps growing with the window by RATE_GAIN.
GROWTH = 1.5
RATE_GAIN = 1.2
#: Completions per epoch, in windows: enough for a rate that is not one round's noise.
EPOCH = 3
#: The largest window, in connections a host may have at once (the pool's limit): a request
#: past them waits for a connection. One waiting behind each connection takes it the moment it
#: is free (more than pays: no gap between one answer and the next request); more only hold
#: memory, and every object they hold is work for the garbage collector.
CEILING = 2
#: Seconds a host's window is kept before a batch probes again.
RELEARN = 120.0
#: Objects a paced batch keeps started and not yet taken, at least.
PACE = 8
#: Seconds the requests in flight of an abandoned batch may take to finish.
LINGER = 5.0
#: Hosts whose window is remembered at most.
MAX_HOSTS = 1024


@dataclass
class _Learned:
    size: int
    settled: bool  # the window stopped paying off at this size (else: still growing)
    when: float
    # While growing: the window that gave the best rate so far, that rate, and the epochs
    # since that did not beat it.
    best: int = 0
    rate: float = 0.0
    strikes: int = 0


_windows: dict[Hashable, _Learned] = {}


class _Window:
    """The window of one batch (module docstring)."""

    def __init__(self, host: Hashable, limit: int, *, learn: bool = True):
        self.host = host
        self.limit = max(1, min(limit, CEILING * POOL_CONNECTIONS_PER_HOST))
        self.learn = learn
        learned = _windows.get(host)
        now = time.monotonic()
        self.growing = learn and (learned is None or not learned.settled
                                  or now - learned.when > RELEARN)
        start = MIN_WINDOW if learned is None else learned.size
        self.size = max(1, min(self.limit, max(MIN_WINDOW, start)))
        self.best_size, self.best_rate = self.size, 0.0
        self.strikes = 0  # epochs in a row whose rate did not grow
        #: A batch that goes on growing a window goes on where the last one stopped (judged
        #: against nothing, its first epoch would always grow the window, and batches shorter
        #: than three epochs would grow it without end), and its first epoch is not judged:
        #: it includes the wait for the first answers, so its rate reads low.
        self._warming = False
        if self.growing and learned is not None and learned.rate > 0:
            self.best_size = max(1, min(self.limit, learned.best or self.size))
            self.best_rate, self.strikes = learned.rate, learned.strikes
            self._warming = True
        self.active = 0
        self._count = 0
        self._began: float | None = None
        self._full = False  # every slot was taken during this epoch

    def started(self, now: float) -> None:
        self.active += 1
        if self._began is None:
            self._began = now
        if self.active >= self.size:
            self._full = True

    def finished(self, now: float) -> None:
        self.active -= 1
        self._count += 1
        began = self._began if self._began is not None else now
        if not self.growing or self._count < EPOCH * self.size or now <= began:
            return
        rate = self._count / (now - began)
        if self._warming:
            self._warming = False
        elif self._full:  # else the batch, not the window, limited this epoch
            if rate >= RATE_GAIN * self.best_rate and self.size < self.limit:
                self.best_size, self.best_rate, self.strikes = self.size, rate, 0
                self.size = min(self.limit, math.ceil(self.size * GROWTH))
            else:  # a larger window must earn its keep: else its slots only queue for the CPU
                self.strikes += 1
                if self.strikes >= 2 or self.size >= self.limit:
                    self.size, self.growing = self.best_size, False
        self._count, self._began, self._full = 0, now, False

    def remember(self) -> None:
        if not self.learn:
            return
        _windows.pop(self.host, None)
        if len(_windows) >= MAX_HOSTS:
            del _windows[next(iter(_windows))]
        _windows[self.host] = _Learned(self.size, not self.growing, time.monotonic(),
                                       self.best_size, self.best_rate, self.strikes)


class Batch(Generic[J, R]):
    """``fn`` over ``jobs`` within an adaptive window (module docstring); ``on_result(i, r)``
    is called as each finishes, with the job's index and its result or exception. A ``paced``
    batch is told of each result its consumer took (``took``)."""

    def __init__(self, jobs: Sequence[J], fn: Callable[[J], Awaitable[R]], *, limit: int,
                 host: Hashable, on_result: Callable[[int, R | Exception], None],
                 paced: bool = False):
        self.jobs, self.fn, self.on_result = jobs, fn, on_result
        # A consumer-paced batch goes as fast as its consumer: its rate says nothing of the
        # link or the CPU, so it uses the host's window and does not learn it.
        self.window = _Window(host, limit, learn=not paced)
        self.paced = paced
        self.started = 0
        self.taken = 0
        self._stop = False
        self._room: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def took(self) -> None:
        """The consumer took a result (on the batch's loop)."""
        self.taken += 1
        if self._room is not None:
            self._room.set()

    def _full(self) -> bool:
        if self.window.active >= self.window.size:
            return True
        return self.paced and self.started - self.taken >= min(
            self.window.size, max(PACE, self.taken))

    def stop(self) -> None:
        """Start no new request (the caller wants no more results); see ``run``."""
        self._stop = True
        if self._room is not None:
            self._room.set()

    async def run(self) -> None:
        """Run every job (until ``stop``); then wait for the ones in flight (after a ``stop``,
        at most ``LINGER`` seconds, then cancel what is left)."""
        loop = asyncio.get_running_loop()
        self._room = room = asyncio.Event()
        window = self.window
        try:
            for i in range(len(self.jobs)):
                while self._full() and not self._stop:
                    room.clear()
                    await room.wait()
                if self._stop:
                    break
                self.started += 1
                window.started(loop.time())
                task = loop.create_task(self._one(i, loop))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=LINGER if self._stop else None)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if not self._stop:
                window.remember()

    async def _one(self, i: int, loop: asyncio.AbstractEventLoop) -> None:
        try:
            result: R | Exception = await self.fn(self.jobs[i])
        except Exception as err:
            result = err
        finally:
            self.window.finished(loop.time())
            if self._room is not None:
                self._room.set()
        if not self._stop:
            self.on_result(i, result)


async def run_all(jobs: Sequence[J], fn: Callable[[J], Awaitable[R]], *, limit: int,
                  host: Hashable) -> list[R | Exception]:
    """``fn`` of every job, within an adaptive window; results (or exceptions) in job order."""
    out: list[R | Exception | None] = [None] * len(jobs)

    def keep(i: int, result: R | Exception) -> None:
        out[i] = result

    await Batch(jobs, fn, limit=limit, host=host, on_result=keep).run()
    return cast("list[R | Exception]", out)
