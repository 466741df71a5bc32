"""The tenant-keyed persistent cache: whole objects (or aligned blocks of large ones) on disk.

Isolation: an entry is keyed by ``key(tenant, uri)``, so a read for tenant B never
gets bytes fetched with tenant A's credentials; ambient (``None``) and ``""`` are tenants of their
own. The version (ETag/generation) is stored beside the bytes and returned, so callers revalidate
with a conditional request and can refuse bytes of another version (``get(..., version=)``).

Secrets: the cache sees only bytes and identifiers. The URI is stored only as a SHA-256 digest,
because a presigned or SAS URL carries its signature in the query string.

Freshness: ``ttl_seconds=None`` trusts nothing - every use revalidates (conditional request,
then ``touch`` on 304). ``ttl_seconds > 0`` serves an entry without asking until ``stored_at +
ttl`` (``touch`` restarts it). An entry with version ``None`` cannot be revalidated conditionally.

The index and the bytes live in one SQLite database (WAL mode) in ``directory``: a put is one
transaction, so several processes may share the directory (DataLoader workers): readers see the
old or the new value whole, never a mix, and a writer killed mid-put leaves the last committed
state. WAL needs a local filesystem (not NFS). The total of stored bytes is bounded by
``max_bytes``, evicting least recently used entries; a get makes an entry recent (unless another
process is writing at that moment: readers never wait).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._config import CacheConfig
from ._fork import at_fork

_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS entries (
    ident TEXT NOT NULL,        -- key(tenant, uri)
    start INTEGER NOT NULL,     -- offset of these bytes in the object (0: whole object)
    version TEXT,
    size INTEGER NOT NULL,      -- the whole object's size
    stored_at REAL NOT NULL,
    used INTEGER NOT NULL,      -- recency: larger is more recent
    nbytes INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS entries_key ON entries (ident, start);
CREATE INDEX IF NOT EXISTS entries_used ON entries (used);
-- Bytes apart from the entry: SQLite rewrites a whole row on UPDATE, and a get updates ``used``.
CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL, entries INTEGER NOT NULL);
INSERT OR IGNORE INTO usage VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS entries_added AFTER INSERT ON entries BEGIN
    UPDATE usage SET bytes = bytes + NEW.nbytes, entries = entries + 1; END;
CREATE TRIGGER IF NOT EXISTS entries_removed AFTER DELETE ON entries BEGIN
    DELETE FROM blobs WHERE id = OLD.rowid;
    UPDATE usage SET bytes = bytes - OLD.nbytes, entries = entries - 1; END;
COMMIT;
"""
_DB_NAME = "cache-1.sqlite3"  # a new schema takes a new name
_WAIT_MS = 60_000  # how long a write waits for another process's write
_MOST_RECENT = "(SELECT IFNULL(MAX(used), 0) + 1 FROM entries)"
_caches: weakref.WeakSet[DiskCache] = weakref.WeakSet()
_forking: list[DiskCache] = []


def _before_fork() -> None:
    # No SQLite connection may cross a fork: the child would believe it holds the parent's file
    # locks, and a parent closing its last connection would then delete the WAL in use by the
    # child (seen losing committed entries). Each cache closes, and reopens on its next use.
    _forking[:] = list(_caches)
    for cache in _forking:
        cache._lock.acquire()
        cache._close()


def _after_fork() -> None:
    for cache in _forking:
        cache._lock.release()
    _forking.clear()


at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    # Changing the journal mode needs an exclusive lock, and SQLite answers SQLITE_BUSY at once
    # there instead of waiting for busy_timeout: processes opening a new cache together (the
    # workers of one DataLoader) retry for a while.
    deadline = time.monotonic() + _WAIT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def key(tenant: str | None, uri: str) -> str:
    """The identity of an entry: tenant + canonical URI (JSON keeps None, "" and any tenant
    apart), hashed so no URI, and so no URL signature, is ever written to disk."""
    return hashlib.sha256(json.dumps([tenant, uri]).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    """Cached bytes of one object as of ``version``: ``data`` starts at ``start`` (0 for a whole
    object); ``size`` is the whole object's size."""

    data: bytes
    version: str | None
    size: int
    stored_at: float  # wall-clock seconds when stored or last revalidated
    start: int = 0


class DiskCache:
    """A persistent, LRU-bounded cache shared by the processes that open ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int,
                 ttl_seconds: float | None = None, max_entry_bytes: int = 64 * 2**20,
                 clock: Callable[[], float] = time.time) -> None:
        if max_bytes <= 0 or max_entry_bytes <= 0:
            raise ValueError("max_bytes and max_entry_bytes must be positive")
        if ttl_seconds is not None and ttl_seconds < 0:
            raise ValueError("ttl_seconds must be None or >= 0")
        self.directory = os.path.abspath(os.path.expanduser(os.fspath(directory)))
        self.max_bytes = max_bytes
        self.ttl_seconds = ttl_seconds
        self.max_entry_bytes = max_entry_bytes
        self._clock = clock
        self._lock = threading.Lock()  # one connection per instance, used by one thread at a time
        self._conn: sqlite3.Connection | None = None
        self._counts = {"hits": 0, "misses": 0}
        # Owner-only when we create it: cached attachments are tenants' data.
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        _caches.add(self)
        with self._db():
            pass

    @classmethod
    def from_config(cls, config: CacheConfig) -> DiskCache:
        """The cache a ``[cache]`` config section describes."""
        return cls(config.directory, max_bytes=config.max_bytes, ttl_seconds=config.ttl_seconds)

    @contextlib.contextmanager
    def _db(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                conn = sqlite3.connect(os.path.join(self.directory, _DB_NAME),
                                       timeout=_WAIT_MS / 1000,
                                       isolation_level=None, check_same_thread=False)
                _switch_to_wal(conn)
                conn.execute("PRAGMA synchronous = NORMAL")  # a crashed process loses no commit
                conn.execute(f"PRAGMA journal_size_limit = {2 * self.max_entry_bytes}")
                conn.executescript(_SCHEMA)
                self._conn = conn
            if not write:
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the connection; the next use reopens it."""
        with self._lock:
            self._close()

    def get(self, tenant: str | None, uri: str, *, start: int = 0,
            version: str | None = None) -> Entry | None:
        """The entry of ``tenant`` for ``uri`` (bytes from ``start``), or None. With
        ``version``, an entry of any other version is a miss."""
        with self._db() as db:
            row = db.execute("SELECT e.rowid, version, size, stored_at, data FROM entries AS e "
                             "JOIN blobs ON blobs.id = e.rowid WHERE ident = ? AND start = ?",
                             (key(tenant, uri), start)).fetchone()
            if row is None or (version is not None and row[1] != version):
                self._counts["misses"] += 1
                return None
            self._counts["hits"] += 1
            # Readers never wait on a writer (WAL), and recency must not make them: while another
            # process holds the write lock (up to one max_entry_bytes put), the bump is skipped.
            db.execute("PRAGMA busy_timeout = 0")
            try:
                db.execute(f"UPDATE entries SET used = {_MOST_RECENT} WHERE rowid = ?", (row[0],))
            except sqlite3.OperationalError as err:
                if "locked" not in str(err):
                    raise
            finally:
                db.execute(f"PRAGMA busy_timeout = {_WAIT_MS}")
        return Entry(data=row[4], version=row[1], size=row[2], stored_at=row[3], start=start)

    def fresh(self, entry: Entry) -> bool:
        """Whether ``entry`` may be served without revalidation (only within a positive TTL)."""
        if not self.ttl_seconds:
            return False
        return self._clock() - entry.stored_at < self.ttl_seconds

    def put(self, tenant: str | None, uri: str, version: str | None, data: bytes, *,
            start: int = 0, size: int | None = None) -> None:
        """Store ``data`` (the object's bytes from ``start``; ``size`` is the whole object's
        size, default ``start + len(data)``). Entries of the same object at another version are
        dropped; data over ``max_entry_bytes`` is not stored."""
        ident, data = key(tenant, uri), bytes(data)
        nbytes = len(data)
        with self._db(write=True) as db:
            db.execute("DELETE FROM entries WHERE ident = ? AND (start = ? OR version IS NOT ?)",
                       (ident, start, version))
            if nbytes > min(self.max_entry_bytes, self.max_bytes):
                return
            (used,) = db.execute("SELECT bytes FROM usage").fetchone()
            excess, doomed = used + nbytes - self.max_bytes, []
            if excess > 0:
                for rowid, n in db.execute("SELECT rowid, nbytes FROM entries ORDER BY used"):
                    if excess <= 0:
                        break
                    doomed.append((rowid,))
                    excess -= n
                db.executemany("DELETE FROM entries WHERE rowid = ?", doomed)
            rowid = db.execute(
                "INSERT INTO entries (ident, start, version, size, stored_at, used, nbytes) "
                f"VALUES (?, ?, ?, ?, ?, {_MOST_RECENT}, ?)",
                (ident, start, version, start + nbytes if size is None else size, self._clock(),
                 nbytes)).lastrowid
            db.execute("INSERT INTO blobs (id, data) VALUES (?, ?)", (rowid, data))

    def touch(self, tenant: str | None, uri: str, version: str | None) -> None:
        """After a 304 Not Modified for ``version``: its entries are stored as of now."""
        with self._db() as db:
            db.execute("UPDATE entries SET stored_at = ? WHERE ident = ? AND version IS ?",
                       (self._clock(), key(tenant, uri), version))

    def discard(self, tenant: str | None, uri: str) -> None:
        """Forget every entry of ``tenant`` for ``uri`` (all blocks)."""
        with self._db() as db:
            db.execute("DELETE FROM entries WHERE ident = ?", (key(tenant, uri),))

    def stats(self) -> dict[str, int]:
        """``hits``/``misses`` of this process and instance; ``bytes``/``entries`` on disk."""
        with self._db() as db:
            bytes_, entries = db.execute("SELECT bytes, entries FROM usage").fetchone()
            return {**self._counts, "bytes": bytes_, "entries": entries}

    def __repr__(self) -> str:
        return (f"DiskCache({self.directory!r}, max_bytes={self.max_bytes}, "
                f"ttl_seconds={self.ttl_seconds}, max_entry_bytes={self.max_entry_bytes})")

    def __reduce__(self) -> tuple[Any, ...]:
        # Settings only: the receiving process opens its own connection to the same directory.
        return (functools.partial(DiskCache, max_bytes=self.max_bytes,
                                  ttl_seconds=self.ttl_seconds,
                                  max_entry_bytes=self.max_entry_bytes, clock=self._clock),
                (self.directory,))
