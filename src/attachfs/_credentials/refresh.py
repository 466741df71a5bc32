"""Short-lived credentials that refresh themselves, with two windows and one refresh at a time.

The algorithm is botocore's ``RefreshableCredentials`` (botocore/credentials.py):

* outside both windows the current lease is returned at once;
* in the *advisory* window (default 15 min before expiry) one caller refreshes while the others
  keep using the still-valid lease, and a failed refresh there is logged and tolerated;
* in the *mandatory* window (default 10 min before expiry, or with no lease yet) every caller
  waits for the refresh, and a failure is raised.

Unlike botocore's asyncio lock, the single flight here is a ``threading.Lock`` taken in a worker
thread: fetching a lease is blocking I/O (an STS call, a google-auth refresh, an Entra token
request) and never runs on the fsspec event loop, and one object serves callers on any loop or
thread. Locks are re-created in a forked child, so a lock held by some thread at fork time
cannot deadlock a DataLoader worker; the lease itself is inherited (still valid, still usable).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

from .. import _redact
from .._fork import at_fork

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The clock leases are judged by. Tests replace it to move time; production uses time.time.
CLOCK: Callable[[], float] = time.time


def now() -> float:
    return CLOCK()


ADVISORY_SECONDS = 15 * 60
MANDATORY_SECONDS = 10 * 60


class Stale:
    """The type of ``STALE``: what ``Refreshable.current`` returns when ``get`` must be
    awaited."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "STALE"


STALE = Stale()


@dataclass(frozen=True)
class Lease(Generic[T]):
    """A credential value and the time (clock seconds) it stops being valid."""

    value: T
    expires_at: float

    def __repr__(self) -> str:  # the value is a secret
        return f"<Lease expires_at={self.expires_at:.0f}>"


_instances: weakref.WeakSet[Refreshable[Any]] = weakref.WeakSet()


class Refreshable(Generic[T]):
    """A lease from ``fetch`` (blocking; returns a Lease), refreshed before it expires.

    ``what`` describes the credential for logs and errors (an identity, never a secret).
    ``clock`` is injectable so tests can move time.
    """

    def __init__(self, fetch: Callable[[], Lease[T]], *, what: str,
                 clock: Callable[[], float] = time.time,
                 advisory: float = ADVISORY_SECONDS, mandatory: float = MANDATORY_SECONDS,
                 secrets: Callable[[T], Iterable[str | None]] = lambda value: (),
                 on_invalidate: Callable[[], None] | None = None):
        if mandatory > advisory:
            raise ValueError("the mandatory window must be inside the advisory window")
        self._fetch = fetch
        self._secrets = secrets
        self._on_invalidate = on_invalidate
        self.what = what
        self.clock = clock
        self.advisory = advisory
        self.mandatory = mandatory
        self._lease: Lease[T] | None = None
        self._lock = threading.Lock()
        self._inflight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[T]] = (
            weakref.WeakKeyDictionary())
        self.fetches = 0
        _instances.add(self)

    def __repr__(self) -> str:
        return f"<Refreshable {self.what} {self._lease!r}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"credentials for {self.what} are not picklable: pickle the "
                        "filesystem (a recipe) and let the receiving process derive its own")

    @property
    def lease(self) -> Lease[T] | None:
        return self._lease

    def _needs(self, window: float) -> bool:
        return self._due(self._lease, window)

    def _due(self, lease: Lease[T] | None, window: float) -> bool:
        return lease is None or self.clock() >= lease.expires_at - window

    def fresh(self) -> bool:
        """A lease is held and no refresh is due yet (``get`` would return it at once)."""
        return not self._needs(self.advisory)

    def current(self) -> T | Stale:
        """The value, when a lease is held and no refresh is due (what ``get`` would return
        at once, without a coroutine); else ``STALE``: then ``await get()``. One read of the
        lease, so another thread's refresh or ``invalidate`` cannot come in between."""
        lease = self._lease
        if lease is None or self._due(lease, self.advisory):
            return STALE
        return lease.value

    def get_sync(self) -> T:
        """The current value, refreshing first if needed (blocking; not for event loops)."""
        value = self.current()
        return self._refresh() if isinstance(value, Stale) else value

    async def get(self) -> T:
        """The current value. A refresh, if needed, runs in a worker thread, once per loop,
        awaited by the caller that started it; in the advisory window the other callers go on
        with the still-valid lease meanwhile, in the mandatory window they await that same
        refresh (no thread hop and no lock per waiting request)."""
        value = self.current()
        if not isinstance(value, Stale):
            return value
        loop = asyncio.get_running_loop()
        task = self._inflight.get(loop)
        if task is None or task.done():
            # This caller refreshes (and waits for it, as botocore's does).
            task = self._inflight[loop] = loop.create_task(asyncio.to_thread(self._refresh))
            task.add_done_callback(_retrieved)
            return await asyncio.shield(task)
        if not self._needs(self.mandatory):
            return self._lease.value  # type: ignore[union-attr]
        return await asyncio.shield(task)

    def _refresh(self) -> T:
        if not self._needs(self.mandatory):
            # Advisory window: one caller refreshes, the others keep the valid lease.
            if not self._lock.acquire(blocking=False):
                return self._lease.value  # type: ignore[union-attr]
            try:
                if self._needs(self.advisory):
                    try:
                        self._lease = self._call_fetch()
                    except Exception as err:
                        log.warning("advisory refresh of %s failed; the current credentials "
                                    "are still valid: %s", self.what, type(err).__name__)
                return self._lease.value  # type: ignore[union-attr]
            finally:
                self._lock.release()
        with self._lock:
            if self._needs(self.mandatory):
                self._lease = self._call_fetch()
            return self._lease.value  # type: ignore[union-attr]

    def invalidate(self, value: T | None = None) -> None:
        """Forget the lease, so the next ``get`` fetches a new one: the service said the
        credentials expired before the lease did (revoked, or a clock off). With ``value``
        (what the refused request was signed with), only if that is still the current lease:
        of many requests refused at once, one fetch follows."""
        lease = self._lease
        if lease is not None and (value is None or lease.value is value):
            self._lease = None
            if self._on_invalidate is not None:  # whatever the fetch keeps is stale too
                self._on_invalidate()

    def _call_fetch(self) -> Lease[T]:
        self.fetches += 1
        log.debug("refreshing credentials for %s", self.what)
        lease = self._fetch()
        _redact.remember(self._secrets(lease.value))
        return lease

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._inflight = weakref.WeakKeyDictionary()


def _retrieved(task: asyncio.Task[Any]) -> None:
    # A failed background (advisory) refresh was already logged by _refresh; a failed
    # mandatory one is raised to every awaiting caller. Either way asyncio need not warn.
    if not task.cancelled():
        task.exception()


def _reset_locks_after_fork() -> None:
    for r in list(_instances):
        r._after_fork()


at_fork(after_in_child=_reset_locks_after_fork)


# --------------------------------------------------------------------------- the leases
# Kept per process, keyed by (config digest, grant): every filesystem instance in a process
# shares one lease per tenant identity (200 concurrent opens, one AssumeRole), a forked child
# inherits the still-valid lease, and a spawned child derives its own.

_leases: dict[Hashable, Refreshable[Any]] = {}
_leases_lock = threading.Lock()


def shared(key: Hashable, build: Callable[[], Refreshable[T]]) -> Refreshable[T]:
    """The process-wide Refreshable for ``key``, built on first use."""
    lease = _leases.get(key)
    if lease is None:
        with _leases_lock:
            lease = _leases.get(key)
            if lease is None:
                lease = _leases[key] = build()
    return lease


def forget_all() -> None:
    """Drop every cached lease (tests; a config reload)."""
    with _leases_lock:
        _leases.clear()


def _new_lock_after_fork() -> None:
    global _leases_lock
    _leases_lock = threading.Lock()


at_fork(after_in_child=_new_lock_after_fork)
