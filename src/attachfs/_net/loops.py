"""An event loop of the calling thread's own, for a blocking read that would otherwise wait on
fsspec's I/O thread.

fsspec runs every coroutine of a synchronous filesystem on one loop in one I/O thread: the
caller hands its coroutine over and sleeps until it is done. That wakes two sleeping threads per
call, which costs about as much as a whole GET of a small object from a nearby server (measured
on a 2-core VM: ~0.12 ms for a coroutine that does nothing, 0.2-0.25 ms around a 1 KiB GET
that takes 0.2 ms on its own). A blocking read whose thread runs no event loop runs its
coroutine here instead (``run``), on a loop kept per thread; ``pool`` keeps one connection pool
per loop, so the thread's requests reuse its own connections. Background work (read-ahead,
batches) stays on fsspec's loop, where it runs while the caller does something else.

- A thread that already runs an event loop (a notebook's, an async application's) gets None
  from ``here``: its loop cannot be run again from inside, and the caller goes to fsspec's loop.
- A thread's loop only runs while its thread waits on it. Between reads, a server that closes
  an idle pooled connection (every cloud does after some seconds) would leave that socket
  half-closed (``CLOSE_WAIT``) until the thread's next read. So a sweeper thread runs every
  idle loop for an instant each ``SWEEP_SECONDS``: the loop sees the server's close and closes
  its side, and aiohttp's keep-alive timeout closes connections idle longer than it. The
  sweeper exists while some thread has a loop.
- A forked child never uses its parent's loops: their connections are the parent's sockets, and
  closing them would end the parent's TLS sessions. The copies are kept unused and a new loop
  is made on first use.
- A thread's loop and its pool are closed when the thread ends (its ``threading.local`` is
  released), and at exit.
- A thread Python did not start (pyarrow's I/O threads, calling a file's ``read`` through
  ``PyGILState_Ensure``) gets a new Python thread state, and with it an empty
  ``threading.local``, on each call, so a loop cannot be kept per such thread (every read
  would make a loop and a connection and close them again). Such threads share a few loops
  instead: a thread takes the loop it used last if no other runs it now, else any idle one,
  else a new one (``FOREIGN_LOOPS`` at most). pyarrow's eight I/O threads reading one file
  (one read at a time) then share one loop and its warm connections; reading several files at
  once, they use as many loops. These loops live until exit.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import time
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

from .. import _fork
from . import pool

__all__ = ["FOREIGN_LOOPS", "SWEEP_SECONDS", "Own", "here"]

T = TypeVar("T")

#: How often the sweeper runs an idle thread's loop (seconds).
SWEEP_SECONDS = 2.0
#: Loops kept for threads Python did not start, at most.
FOREIGN_LOOPS = 64


class Own:
    """One thread's loop; closes it, with its pool, when the thread lets go of it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        #: Held while the loop runs, by its thread or by the sweeper.
        self.lock = threading.Lock()
        self.used = time.monotonic()
        _all.add(self)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to its end on this loop, from the loop's own thread."""
        with self.lock:
            try:
                return self.loop.run_until_complete(coro)
            finally:
                self.used = time.monotonic()

    def sweep(self) -> None:
        """Run the loop for an instant, if no one else is: it handles what arrived since."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            if not self.loop.is_closed():
                self.loop.run_until_complete(asyncio.sleep(0))
        finally:
            self.lock.release()

    def close(self) -> None:
        loop = self.loop
        if self.pid != os.getpid() or loop.is_closed() or loop.is_running():
            return
        with self.lock:
            try:
                session = pool.forget(loop)
                if session is not None and not session.closed:
                    loop.run_until_complete(session.close())
                loop.run_until_complete(loop.shutdown_default_executor())
            except Exception:  # noqa: S110 - a thread or the interpreter ending: nothing to say
                pass
            finally:
                loop.close()

    def __del__(self) -> None:
        if self.pid != os.getpid():  # a thread of the parent, ended in a forked child
            _inherited.append(self)
            return
        self.close()


_local = threading.local()
#: Loops for threads Python did not start, and the one each such thread used last.
_foreign_loops: list[Own] = []
_foreign: dict[int, Own] = {}
_foreign_lock = threading.Lock()
_DUMMY: Any = getattr(threading, "_DummyThread", ())
_all: weakref.WeakSet[Own] = weakref.WeakSet()
#: Loops inherited from the parent in a forked child: referenced, never run or closed.
_inherited: list[Own] = []
_sweeper: threading.Thread | None = None
_sweeper_lock = threading.Lock()


def here() -> Own | None:
    """The calling thread's own loop (``Own.run`` runs a coroutine on it), made on first use;
    None when the thread is running an event loop (a coroutine's caller must not block it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return None
    if isinstance(threading.current_thread(), _DUMMY):
        return _foreign_own()
    own: Own | None = getattr(_local, "own", None)
    if own is None or own.pid != os.getpid():
        if own is not None:
            _inherited.append(own)
        own = _local.own = Own()
        _start_sweeper()
    return own


def _foreign_own() -> Own:
    """A loop for the calling thread, which Python did not start (see the module docstring):
    the one it used last if no other thread runs it now, else any idle one, else a new one
    (at most ``FOREIGN_LOOPS``; past that, the thread waits for its last one)."""
    ident = threading.get_ident()
    pid = os.getpid()
    made = False
    with _foreign_lock:
        if _foreign_loops and _foreign_loops[0].pid != pid:  # the parent's, in a forked child
            _inherited.extend(_foreign_loops)
            _foreign_loops.clear()
            _foreign.clear()
        last = _foreign.pop(ident, None)
        own = next((o for o in ([last] if last else []) + _foreign_loops
                    if not o.lock.locked()), None)
        if own is None:
            if len(_foreign_loops) < FOREIGN_LOOPS:
                own, made = Own(), True
                _foreign_loops.append(own)
            else:
                own = last or _foreign_loops[0]
        _foreign[ident] = own  # the most recently seen thread last
        while len(_foreign) > 4 * FOREIGN_LOOPS:
            del _foreign[next(iter(_foreign))]
    if made:
        _start_sweeper()
    return own


def _start_sweeper() -> None:
    global _sweeper
    with _sweeper_lock:
        if _sweeper is None or not _sweeper.is_alive():
            _sweeper = threading.Thread(target=_sweep_all, name="attachfs-sweeper", daemon=True)
            _sweeper.start()


def _sweep_all() -> None:
    pause = threading.Event()  # never set: a wait that profilers see as one
    while True:
        pause.wait(SWEEP_SECONDS)
        if not _sweep_once():
            return


def _sweep_once() -> bool:
    """Sweep every idle loop of this process; False (and the sweeper ends) when there is none
    left: the next thread to make one starts a sweeper again."""
    global _sweeper
    with _sweeper_lock:
        owns = [own for own in list(_all) if own.pid == os.getpid()]
        if not owns:
            _sweeper = None
            return False
    now = time.monotonic()
    for own in owns:
        if now - own.used >= SWEEP_SECONDS:
            try:
                own.sweep()
            except Exception:  # noqa: S110 - a loop closed meanwhile: nothing to sweep
                pass
    return True


def _forget_sweeper() -> None:
    global _sweeper, _sweeper_lock, _foreign_lock
    _sweeper, _sweeper_lock = None, threading.Lock()  # the parent's thread is not here
    _foreign_lock = threading.Lock()


def _close_all() -> None:
    for own in list(_all):
        own.close()


_fork.at_fork(after_in_child=_forget_sweeper)
atexit.register(_close_all)
