"""The tenant-keyed disk cache: isolation, LRU bound, versions, freshness, and
sharing between real processes: atomic writes, no torn reads, a writer killed mid-put."""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import pickle
import random
import signal
import sqlite3
import threading
import time

import pytest

from attachfs._cache import DiskCache, Entry, key
from attachfs._config import CacheConfig

MiB = 2**20
URI = "s3://bucket/reports/q3.pdf"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def value(version: str, size: int) -> bytes:
    """Self-checking bytes: sha256 of the rest, then the version they claim, then noise."""
    body = version.encode().ljust(32, b"\0") + random.Random(version).randbytes(size - 64)
    return hashlib.sha256(body).digest() + body


def check(entry: Entry) -> None:
    """The bytes are whole (checksum) and are of the version the entry says (no mixed values)."""
    assert entry is not None, "entry missing"
    assert hashlib.sha256(entry.data[32:]).digest() == entry.data[:32], "torn value"
    assert entry.data[32:64].rstrip(b"\0").decode() == entry.version, "bytes of another version"


@pytest.fixture
def cache(tmp_path) -> DiskCache:
    return DiskCache(tmp_path / "cache", max_bytes=10 * MiB, clock=Clock())


def test_hit_returns_bytes_version_and_size(cache):
    cache.put("acme", URI, '"etag-1"', b"hello")
    entry = cache.get("acme", URI)
    assert (entry.data, entry.version, entry.size, entry.start) == (b"hello", '"etag-1"', 5, 0)
    assert cache.get("acme", "s3://bucket/other") is None
    assert cache.stats() == {"hits": 1, "misses": 1, "bytes": 5, "entries": 1}


@pytest.mark.parametrize("writer,reader", [
    ("acme", "globex"), ("acme", None), ("acme", ""), (None, "acme"), ("", "acme"), (None, ""),
    ("", None)])
def test_a_tenant_is_never_served_another_tenants_entry(cache, writer, reader):
    cache.put(writer, URI, "v1", b"fetched for " + repr(writer).encode())
    assert cache.get(reader, URI) is None
    cache.put(reader, URI, "v1", b"fetched for " + repr(reader).encode())
    assert cache.get(writer, URI).data == b"fetched for " + repr(writer).encode()
    assert cache.get(reader, URI).data == b"fetched for " + repr(reader).encode()


def test_keys_are_injective_over_tenant_and_uri():
    pairs = [(None, URI), ("", URI), ("None", URI), ("null", URI), ("acme", URI),
             ("a", "cme" + URI), ("acme", URI + "x"), ('acme", "', URI)]
    assert len({key(t, u) for t, u in pairs}) == len(pairs)


def test_version_is_checked_on_use_and_a_new_version_replaces_the_old(cache):
    cache.put("acme", URI, "v1", b"one")
    assert cache.get("acme", URI, version="v1").data == b"one"
    assert cache.get("acme", URI, version="v2") is None
    cache.put("acme", URI, "v2", b"two!")
    assert cache.get("acme", URI).version == "v2"
    assert cache.stats()["bytes"] == 4


def test_least_recently_used_is_evicted_first_and_reading_makes_recent(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=300)
    for name in "abc":
        cache.put("acme", f"s3://b/{name}", "v", name.encode() * 100)
    cache.get("acme", "s3://b/a")
    cache.put("acme", "s3://b/d", "v", b"d" * 100)
    present = [n for n in "abcd" if cache.get("acme", f"s3://b/{n}") is not None]
    assert present == ["a", "c", "d"]
    cache.put("acme", "s3://b/e", "v", b"e" * 250)  # evicts as many as it takes
    assert [n for n in "acde" if cache.get("acme", f"s3://b/{n}")] == ["e"]
    assert cache.stats()["bytes"] == 250


def test_total_bytes_stay_bounded_and_oversized_entries_are_not_stored(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=1000, max_entry_bytes=400)
    sizes = random.Random(4).choices(range(1, 401), k=200)
    for i, n in enumerate(sizes):
        cache.put("acme", f"s3://b/{i % 37}", f"v{i}", bytes(n))
        assert cache.stats()["bytes"] <= 1000
    cache.put("acme", URI, "v1", bytes(10))
    cache.put("acme", URI, "v2", bytes(401))  # too big: not stored, and the stale v1 is gone
    assert cache.get("acme", URI) is None
    small = DiskCache(tmp_path / "small", max_bytes=100)  # over max_bytes: not stored either
    small.put(None, URI, None, bytes(101))
    assert small.get(None, URI) is None


def test_freshness_with_and_without_ttl(tmp_path):
    clock = Clock()
    revalidate = DiskCache(tmp_path, max_bytes=MiB, clock=clock)
    trusting = DiskCache(tmp_path, max_bytes=MiB, ttl_seconds=60, clock=clock)
    trusting.put("acme", URI, "v1", b"x")
    entry = trusting.get("acme", URI)
    assert entry.stored_at == clock.now
    assert not revalidate.fresh(entry)  # ttl None: every use is a conditional request
    clock.now += 59
    assert trusting.fresh(trusting.get("acme", URI))
    clock.now += 2
    assert not trusting.fresh(trusting.get("acme", URI))
    trusting.touch("acme", URI, "v2")  # a 304 for another version renews nothing
    assert not trusting.fresh(trusting.get("acme", URI))
    trusting.touch("acme", URI, "v1")
    assert trusting.fresh(trusting.get("acme", URI))


def test_blocks_of_a_large_object_share_one_version(cache):
    cache.put("acme", URI, "v1", b"a" * 10, start=0, size=30)
    cache.put("acme", URI, "v1", b"b" * 10, start=10, size=30)
    entry = cache.get("acme", URI, start=10)
    assert (entry.data, entry.start, entry.size) == (b"b" * 10, 10, 30)
    cache.put("acme", URI, "v2", b"C" * 10, start=20, size=30)  # the object changed
    assert cache.get("acme", URI, start=0) is None and cache.get("acme", URI, start=10) is None
    cache.put("acme", URI, "v2", b"A" * 10, start=0, size=30)
    cache.discard("acme", URI)
    assert cache.stats()["entries"] == 0


def test_no_uri_or_signature_is_written_to_disk(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=MiB)
    signed = "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=5ec7e7"
    cache.put("acme", signed, "v", b"payload")
    assert cache.get("acme", signed).data == b"payload"
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"payload" in on_disk  # the files searched are the ones the cache wrote
    assert b"5ec7e7" not in on_disk and b"AKIAEXAMPLE" not in on_disk
    assert b"amazonaws" not in on_disk and b"acme" not in on_disk


def test_repr_and_pickle_carry_settings_only(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=MiB, ttl_seconds=5, max_entry_bytes=1000)
    cache.put("acme", URI, "v", b"x")
    assert repr(cache) == (f"DiskCache({str(tmp_path)!r}, max_bytes={MiB}, ttl_seconds=5, "
                           "max_entry_bytes=1000)")
    clone = pickle.loads(pickle.dumps(cache))
    assert repr(clone) == repr(cache)
    assert clone.get("acme", URI).data == b"x"
    assert len(pickle.dumps(cache)) < 500  # no connection, no data
    configured = DiskCache.from_config(CacheConfig(str(tmp_path), max_bytes=MiB, ttl_seconds=5))
    assert repr(configured) == repr(cache).replace("1000)", f"{64 * MiB})")


# ---- real processes sharing one directory ------------------------------------------------

def _get_in_child(cache: DiskCache, out) -> None:
    entry = cache.get("acme", URI)
    cache.put("acme", "s3://bucket/from-child", "c1", b"written by the child")
    out.put((entry.data, entry.version, cache.stats()["hits"]))


def test_an_entry_written_by_one_process_is_hit_by_another(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=MiB)
    cache.put("acme", URI, "v1", b"written by the parent")
    ctx = multiprocessing.get_context("spawn")  # nothing shared but the directory
    out = ctx.Queue()
    child = ctx.Process(target=_get_in_child, args=(cache, out))
    child.start()
    assert out.get(timeout=30) == (b"written by the parent", "v1", 1)
    child.join(30)
    assert child.exitcode == 0
    assert cache.get("acme", "s3://bucket/from-child").data == b"written by the child"


def _hammer(directory: str, me: int, rounds: int, out) -> None:
    cache = DiskCache(directory, max_bytes=8 * MiB)
    rng, seen = random.Random(me), 0
    for i in range(rounds):
        uri = f"s3://bucket/shared-{rng.randrange(3)}"
        cache.put("acme", uri, f"p{me}-r{i}", value(f"p{me}-r{i}", rng.randrange(64, MiB)))
        entry = cache.get("acme", f"s3://bucket/shared-{rng.randrange(3)}")
        if entry is not None:
            check(entry)
            seen += entry.version.split("-")[0] != f"p{me}"
    out.put(seen)


def test_concurrent_writers_and_readers_never_see_a_torn_value(tmp_path):
    cache = DiskCache(tmp_path, max_bytes=8 * MiB)
    cache.put("acme", "s3://bucket/shared-0", "parent", value("parent", MiB))
    ctx = multiprocessing.get_context("fork")  # a DataLoader's workers inherit the open cache
    out = ctx.Queue()
    workers = [ctx.Process(target=_hammer, args=(str(tmp_path), n, 25, out)) for n in range(4)]
    for w in workers:
        w.start()
    seen_from_others = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    assert sum(seen_from_others) > 0  # the processes really did read each other's writes
    for n in range(3):
        entry = cache.get("acme", f"s3://bucket/shared-{n}")
        assert entry is None or check(entry) is None
    assert cache.stats()["bytes"] <= 8 * MiB


def _open_at_once(directory: str, start) -> None:
    start.wait()
    cache = DiskCache(directory, max_bytes=MiB)
    cache.put("acme", f"s3://bucket/{os.getpid()}", "v", b"x")


def test_processes_may_create_the_cache_at_the_same_time(tmp_path):
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(6)
    openers = [ctx.Process(target=_open_at_once, args=(str(tmp_path), start)) for _ in range(6)]
    for p in openers:
        p.start()
    for p in openers:
        p.join(30)
        assert p.exitcode == 0
    assert DiskCache(tmp_path, max_bytes=MiB).stats()["entries"] == 6


def test_threads_share_one_instance(cache):
    def work(n: int) -> None:
        for i in range(50):
            cache.put(f"t{n}", URI, f"v{i}", value(f"v{i}", 1000))
            check(cache.get(f"t{n}", URI))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.stats() == {"hits": 200, "misses": 0, "bytes": 4000, "entries": 4}


def _crash_in_put(directory: str, armed) -> None:
    cache = DiskCache(directory, max_bytes=64 * MiB)
    for n in range(3):
        cache.put("acme", f"s3://bucket/good-{n}", f"good-{n}", value(f"good-{n}", MiB))

    def stop_before_commit(sql: str) -> None:
        if sql == "COMMIT":  # every byte of the value is written, nothing committed yet
            armed.set()
            time.sleep(600)

    with cache._db() as db:
        db.set_trace_callback(stop_before_commit)
    cache.put("acme", "s3://bucket/good-0", "torn", value("torn", 16 * MiB))


def test_a_writer_killed_mid_put_leaves_a_consistent_cache(tmp_path):
    ctx = multiprocessing.get_context("fork")
    armed = ctx.Event()
    writer = ctx.Process(target=_crash_in_put, args=(str(tmp_path), armed))
    writer.start()
    try:
        assert armed.wait(30), "the writer never reached its commit"
        assert os.path.getsize(tmp_path / "cache-1.sqlite3-wal") > 16 * MiB  # value written
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(30)
    finally:
        writer.kill()
    assert writer.exitcode == -signal.SIGKILL

    cache = DiskCache(tmp_path, max_bytes=64 * MiB)
    for n in range(3):
        entry = cache.get("acme", f"s3://bucket/good-{n}")
        check(entry)
        assert entry.version == f"good-{n}"
    assert cache.stats()["entries"] == 3 and cache.stats()["bytes"] == 3 * MiB
    with contextlib.closing(sqlite3.connect(tmp_path / "cache-1.sqlite3")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    cache.put("acme", "s3://bucket/good-0", "after", value("after", MiB))  # the lock was freed
    check(cache.get("acme", "s3://bucket/good-0"))


def _put_while_parent_closes(cache: DiskCache, go, paused, resume) -> None:
    def pause_before_commit(sql: str) -> None:
        if sql == "COMMIT":
            paused.set()
            resume.wait(30)

    go.wait(30)
    with cache._db() as db:
        db.set_trace_callback(pause_before_commit)
    cache.put("acme", "s3://bucket/child-1", "c1", value("c1", 4 * MiB))
    with cache._db() as db:
        db.set_trace_callback(None)
    cache.put("acme", "s3://bucket/child-2", "c2", value("c2", MiB))


def test_a_forked_worker_keeps_its_writes_when_the_parent_closes(tmp_path):
    # A DataLoader worker inherits the cache; SQLite state carried over fork would let the
    # parent's close delete the WAL the worker is committing to.
    cache = DiskCache(tmp_path, max_bytes=64 * MiB)
    cache.put("acme", URI, "v1", b"parent")
    ctx = multiprocessing.get_context("fork")
    go, paused, resume = ctx.Event(), ctx.Event(), ctx.Event()
    worker = ctx.Process(target=_put_while_parent_closes, args=(cache, go, paused, resume))
    worker.start()
    try:
        assert cache.get("acme", URI).data == b"parent"  # the parent goes on using it
        go.set()
        assert paused.wait(30), "the worker never reached its commit"
        assert cache.get("acme", URI).data == b"parent"  # not held up by the worker's write
        cache.close()
        resume.set()
        worker.join(30)
        assert worker.exitcode == 0
    finally:
        worker.kill()
    for n in (1, 2):
        check(cache.get("acme", f"s3://bucket/child-{n}"))
