"""The data plane's promises, counted at the server (never timed): parallel ranged GETs that
return the range's exact bytes, all of one version; a fast link left to one GET; batches kept in
flight; a ``cat_iter`` closed early that throws no pooled connection away; bounded memory.

The server is tests/fakes/counting_store.py (S3 path-style, Range, ETag, If-Match), which
counts requests, requests in flight and connections. Parts are made small (``PART_SIZE``) so
objects of a few MiB show many of them. Every test reads its own bucket: the read path
remembers what it measured of a link per endpoint and bucket.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest.mock import ANY

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attachfs
from attachfs import _read
from attachfs._limits import PART_SIZE, POOL_CONNECTIONS_PER_HOST
from attachfs._read import batch, parallel
from attachfs._read.body import Chunks
from fakes.counting_store import CountingStore

KiB, MiB = 2**10, 2**20
PART = 64 * KiB


@pytest.fixture(scope="module")
def server() -> Iterator[CountingStore]:
    with CountingStore() as fake:
        yield fake


@pytest.fixture
def store(server: CountingStore, names: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The fake, reset, with small parts; ``store.bucket`` is a fresh bucket."""
    server.delay = 0.0
    server.ignore_if_match = False
    server.reset_counts()
    monkeypatch.setattr(parallel, "PART_SIZE", PART)
    monkeypatch.setattr(parallel, "MIN_PART_SIZE", PART // 4)
    monkeypatch.setattr(parallel, "MEASURE_SAMPLE", PART)
    server.bucket = names("p")
    return server


def fs_for(server: CountingStore) -> Any:
    config = {"platform": {"aws": {"endpoint_url": server.url, "region": "us-east-1"}}}
    return attachfs.filesystem(config=config, skip_instance_cache=True)


def measure(fs: Any, uri: str, *, fast: bool) -> None:
    """Tell the read path what one connection to ``uri``'s host carried (as a read made alone
    would have measured): far above or far below ``FAST_CONNECTION``."""
    host = _read.host(fs.route(uri), fs.config)
    seconds = 1e-6 if fast else 10.0
    for _ in range(1 if fast else parallel.SLOW_SAMPLES):  # slow: as many samples as it takes
        parallel._measured(host, 4 * MiB, seconds, time.monotonic())


def ranged(server: CountingStore) -> list[Any]:
    return [g for g in server.gets if g.range is not None]


# -- parallel parts -------------------------------------------------------------------------

@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 1_100_000), length=st.integers(1, 1_200_000))
def test_a_large_range_comes_back_exact_from_parallel_parts(store: CountingStore, start: int,
                                                            length: int) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    uri = store.put(store.bucket, "one-mib.bin", data)
    fs = fs_for(store)
    store.reset_counts()
    assert fs.cat_file(uri, start, start + length) == data[start:start + length]
    gets = store.gets
    asked = max(0, min(len(data), start + length) - start)
    if start >= len(data):
        assert len(gets) == 1
    elif length > PART and asked > PART:
        # The first part alone (it tells the size and the version), then the rest in parts,
        # every one of them pinned to that version.
        assert len(gets) == math.ceil(asked / PART)
        assert gets[0].if_match is None
        assert {g.if_match for g in gets[1:]} == {store.etag(store.bucket, "one-mib.bin")}
    else:
        assert len(gets) == 1


def test_a_whole_object_on_a_slow_link_is_read_as_parallel_parts(store: CountingStore) -> None:
    data = os.urandom(2 * MiB)
    uri = store.put(store.bucket, "two-mib.bin", data)
    fs = fs_for(store)
    measure(fs, uri, fast=False)
    store.delay = 0.02  # so that parts are in flight together, to be counted
    store.reset_counts()
    assert fs.cat_file(uri) == data
    gets = store.gets
    assert len(gets) == 2 * MiB // PART
    assert gets[0].range == f"bytes=0-{PART - 1}"
    assert {g.if_match for g in gets[1:]} == {store.etag(store.bucket, "two-mib.bin")}
    assert 2 <= store.max_in_flight <= parallel.PARTS_IN_FLIGHT


def test_a_fast_link_reads_a_large_range_with_one_get(store: CountingStore) -> None:
    data = os.urandom(2 * MiB)
    uri = store.put(store.bucket, "fast.bin", data)
    fs = fs_for(store)
    measure(fs, uri, fast=True)
    store.reset_counts()
    assert fs.cat_file(uri, 100, 2 * MiB - 100) == data[100:-100]
    assert fs.cat_file(uri) == data
    assert [g.range for g in store.gets] == [f"bytes=100-{2 * MiB - 101}", None]


def test_a_read_measures_the_link_it_was_made_over(store: CountingStore) -> None:
    """A large read made alone decides how the next ones are made: whether the link was
    measured fast or slow is the read path's choice; here only that it chose at all."""
    uri = store.put(store.bucket, "m.bin", os.urandom(2 * MiB))
    fs = fs_for(store)
    host = _read.host(fs.route(uri), fs.config)
    fs.cat_file(uri, 0, 1)  # credentials and a connection: not part of the link's speed
    assert parallel._fast(host, time.monotonic()) is None
    fs.cat_file(uri)
    assert parallel._fast(host, time.monotonic()) is not None


@pytest.mark.parametrize("ignores_if_match", [False, True], ids=["412", "ignores-if-match"])
def test_an_object_replaced_between_parts_raises_integrity_error(
        store: CountingStore, ignores_if_match: bool) -> None:
    old, new = os.urandom(MiB), os.urandom(MiB)
    uri = store.put(store.bucket, "swapped.bin", old)
    store.replace_after(store.bucket, "swapped.bin", 1, new)  # after the first part
    store.ignore_if_match = ignores_if_match
    fs = fs_for(store)
    measure(fs, uri, fast=False)
    with pytest.raises(attachfs.IntegrityError, match="changed while it was being read"):
        fs.cat_file(uri)
    assert 2 <= len(store.gets) <= 1 + MiB // PART


def test_read_ranges_fetch_the_ranges_of_one_object_together(store: CountingStore) -> None:
    data = os.urandom(MiB)
    uri = store.put(store.bucket, "columns.bin", data)
    fs = fs_for(store)
    spans = [(i * 50_000, i * 50_000 + 7_000) for i in range(12)]
    store.delay = 0.02
    store.reset_counts()
    got = fs.cat_ranges([uri] * len(spans), [s for s, _ in spans], [e for _, e in spans])
    assert got == [data[s:e] for s, e in spans]
    assert len(store.gets) == len(spans)
    assert store.max_in_flight >= 2


def test_ranges_of_an_object_replaced_meanwhile_raise_integrity_error(
        store: CountingStore) -> None:
    uri = store.put(store.bucket, "r.bin", os.urandom(MiB))
    store.replace_after(store.bucket, "r.bin", 3, os.urandom(MiB))
    fs = fs_for(store)
    spans = [(i * 10_000, i * 10_000 + 100) for i in range(10)]
    got = fs.cat_ranges([uri] * 10, [s for s, _ in spans], [e for _, e in spans])
    assert all(isinstance(g, attachfs.IntegrityError) for g in got), got


def test_read_ranges_with_a_version_pin_every_range(store: CountingStore) -> None:
    import asyncio

    data = os.urandom(MiB)
    uri = store.put(store.bucket, "pinned.bin", data)
    fs = fs_for(store)
    route = fs.route(uri)
    etag = store.etag(store.bucket, "pinned.bin")
    parts = asyncio.run(_read.read_ranges(None, route, [(0, 10), (500, 900), (MiB - 5, None)],
                                          version=etag, config=fs.config))
    assert [p.data for p in parts] == [data[:10], data[500:900], data[-5:]]
    assert {g.if_match for g in store.gets} == {etag}


# -- batches ----------------------------------------------------------------------------------

def test_cat_keeps_a_batch_in_flight(store: CountingStore) -> None:
    uris = [store.put(store.bucket, f"small/{i}.bin", os.urandom(1000 + i)) for i in range(120)]
    fs = fs_for(store)
    store.delay = 0.05
    store.reset_counts()
    out = fs.cat(uris)
    assert [len(out[u]) for u in uris] == [1000 + i for i in range(120)]
    assert len(store.gets) == 120
    assert store.max_in_flight >= batch.MIN_WINDOW
    # No more connections than requests in flight at once.
    assert store.opened <= store.max_in_flight


def test_closing_cat_iter_early_keeps_every_pooled_connection(store: CountingStore) -> None:
    uris = [store.put(store.bucket, f"it/{i}.bin", os.urandom(4000)) for i in range(300)]
    fs = fs_for(store)
    store.delay = 0.05  # responses still coming when the consumer stops
    fs.cat(uris[:64])  # fills the pool
    pooled = store.open_connections()
    store.reset_counts()
    taken, closes = 3, 10
    for n in range(closes):
        it = fs.cat_iter(uris[n * 20:n * 20 + 100])
        for _ in range(taken):
            next(it)
        it.close()
    _wait_idle(store)
    assert store.opened == 0, f"{store.opened} connections opened by {closes} early closes"
    assert store.closed_connections() == 0
    assert store.open_connections() == pooled
    # Paced by the consumer: a few objects ahead of what it took, not a whole batch.
    assert len(store.gets) <= closes * (taken + batch.PACE)


def _wait_idle(store: CountingStore, timeout: float = 30.0) -> None:
    """Wait until the server has answered everything it was sent (lingering requests)."""
    deadline = time.monotonic() + timeout
    while store.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # the client has read the last answers and put their connections back


def test_a_cookie_set_in_one_answer_is_never_sent_again(store: CountingStore) -> None:
    """The pool is shared by every tenant's reads: a cookie one answer sets must never ride
    along on another request."""
    uri = store.put(store.bucket, "c.bin", b"x" * 100)
    store.set_cookie = "session=tenant-a-secret; Path=/"
    try:
        fs = fs_for(store)
        store.clear_requests()
        for _ in range(3):
            assert fs.cat_file(uri) == b"x" * 100
    finally:
        store.set_cookie = None
    assert len(store.requests) == 3
    assert [r.headers.get("Cookie") for r in store.requests] == [None] * 3


# -- garbage ------------------------------------------------------------------------------------

_CYCLES_SCRIPT = r"""
import gc, json, sys
import attachfs
from attachfs._read import parallel

config, bucket, part = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
parallel.PART_SIZE, parallel.MIN_PART_SIZE, parallel.MEASURE_SAMPLE = part, part // 4, part
fs = attachfs.filesystem(config=config, skip_instance_cache=True)
small = [f"s3://{bucket}/s{i}" for i in range(40)]
large = f"s3://{bucket}/large"

def opened():
    for uri in small[:10]:
        with fs.open(uri) as f:
            f.read(50)
    with fs.open(large, block_size=part) as f:
        while f.read(part // 2):
            pass

reads = {
    "cat": lambda: fs.cat(small),
    "cat_file": lambda: [fs.cat_file(u) for u in small[:10]] + [fs.cat_file(large)],
    "cat_ranges": lambda: fs.cat_ranges(small, [0] * 40, [80] * 40),
    "a range in parts": lambda: fs.cat_file(large, 5, 5 * part),
    "open and read": opened,
    "info": lambda: [fs.info(u) for u in small[:10]],
}
left = {}
for name, read in reads.items():
    read()  # warm: pools, leases, caches, lazily built tables
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    read()
    gc.collect()
    if gc.garbage:
        left[name] = sorted({f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage})
    gc.set_debug(0)
    gc.garbage.clear()
    gc.enable()
print(json.dumps(left))
"""


def test_reads_leave_no_reference_cycles_behind(store: CountingStore) -> None:
    """Every object a read makes is freed when the read is done, by reference counting alone.
    An object in a reference cycle (an answer that refers to itself, a type made per length)
    waits for the garbage collector, whose passes over every live object were a fifth of the
    CPU of a batch of small objects; and until then it holds what it refers to, headers and all.
    Each kind of read, once warmed up, is run with the collector off, in a fresh interpreter
    (nothing another test left behind can show up): a collection then finds nothing."""
    for i in range(40):
        store.put(store.bucket, f"s{i}", os.urandom(100 + 1000 * i))
    store.put(store.bucket, "large", os.urandom(6 * PART + 17))
    config = {"platform": {"aws": {"endpoint_url": store.url, "region": "us-east-1"}}}
    out = subprocess.run([sys.executable, "-c", _CYCLES_SCRIPT, json.dumps(config),
                          store.bucket, str(PART)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}


# -- the window and the pieces ----------------------------------------------------------------

def test_the_window_grows_while_it_pays_and_settles_where_it_stopped() -> None:
    """Completions arrive at ``size / 30 ms`` up to a CPU limit of 2,000 a second."""
    host = ("test", object())
    window = batch._Window(host, limit=128)
    now = 0.0
    sizes = [window.size]
    for _ in range(40):
        rate = min(window.size / 0.03, 2000.0)
        for _ in range(batch.EPOCH * window.size):
            window.started(now)
        for _ in range(batch.EPOCH * window.size):
            now += 1 / rate
            window.finished(now)
        sizes.append(window.size)
        if not window.growing:
            break
    assert not window.growing
    assert sizes[0] == batch.MIN_WINDOW
    # Within one growth step of the 60 requests in flight the CPU can feed, far below the cap.
    knee = 2000.0 * 0.03
    assert knee / batch.GROWTH <= window.size <= knee * batch.GROWTH
    window.remember()
    assert batch._Window(host, limit=128).size == window.size  # the next batch starts there


def _epochs(window: batch._Window, rate_of: Callable[[int], float], now: float = 0.0,
            epochs: int = 40) -> float:
    """Run ``window`` through whole epochs, completions at ``rate_of(size)`` a second."""
    for _ in range(epochs):
        rate = rate_of(window.size)
        for _ in range(batch.EPOCH * window.size):
            window.started(now)
        for _ in range(batch.EPOCH * window.size):
            now += 1 / rate
            window.finished(now)
        if not window.growing:
            break
    return now


def test_a_window_never_grows_past_twice_the_connections_of_a_host() -> None:
    """Requests past the pool's connections only wait for one, holding memory meanwhile:
    however well the rate grows, and however large the caller's limit."""
    window = batch._Window(("ceiling", object()), limit=100_000)
    _epochs(window, lambda size: size / 0.03, epochs=60)
    assert window.size <= batch.CEILING * POOL_CONNECTIONS_PER_HOST
    assert not window.growing


def test_short_batches_go_on_where_the_last_one_stopped_and_settle() -> None:
    """Batches shorter than the two epochs it takes to judge a window (a window of 36 is
    done in 200 objects): each goes on where the last stopped, judged against the best rate
    it saw and with its strikes, so where the CPU is the limit the window settles, instead
    of every batch taking its first epoch for a gain over nothing and growing it again."""
    host = ("resumed", object())
    window = batch._Window(host, limit=1000)
    now = _epochs(window, lambda size: min(size / 0.03, 2000.0), epochs=3)
    assert window.growing  # stopped mid-probe, as a short batch does
    window.remember()
    start = batch._windows[host].size
    sizes = []
    for _ in range(6):  # each batch: two epochs (its first one only warms up), CPU-bound
        window = batch._Window(host, limit=1000)
        now = _epochs(window, lambda size: 2000.0, now=now, epochs=2)
        window.remember()
        sizes.append(batch._windows[host].size)
    learned = batch._windows[host]
    assert learned.settled, sizes
    knee = 2000.0 * 0.03  # the requests in flight the CPU can feed
    assert knee / batch.GROWTH <= learned.size <= knee * batch.GROWTH, sizes
    # At most one step past the window that settled was probed, whatever the batches' count.
    assert max(sizes) <= math.ceil(learned.size * batch.GROWTH), sizes
    assert start <= learned.size * batch.GROWTH


def test_a_window_that_never_pays_stays_at_its_minimum() -> None:
    window = batch._Window(("flat", object()), limit=128)
    now = 0.0
    for _ in range(10):
        for _ in range(batch.EPOCH * window.size):
            window.started(now)
        for _ in range(batch.EPOCH * window.size):
            now += 0.001  # the same rate whatever the window
            window.finished(now)
    assert window.size == batch.MIN_WINDOW and not window.growing


def test_a_paced_batch_uses_the_hosts_window_and_leaves_it_as_it_was() -> None:
    """cat_iter goes as fast as its consumer: its rate tells nothing about the link."""
    host = ("paced", object())
    batch._windows[host] = batch._Learned(36, False, time.monotonic())
    window = batch._Window(host, limit=128, learn=False)
    assert window.size == 36 and not window.growing
    for _ in range(10 * batch.EPOCH * window.size):
        window.started(0.0)
        window.finished(1.0)
    window.remember()
    assert window.size == 36 and batch._windows[host] == batch._Learned(36, False, ANY)


@settings(max_examples=200)
@given(chunks=st.lists(st.binary(max_size=50), max_size=20), drop=st.integers(0, 1000))
def test_chunks_hold_what_a_buffer_would(chunks: list[bytes], drop: int) -> None:
    sink, buf = Chunks(), bytearray()
    for c in chunks:
        sink.extend(c)
        buf.extend(c)
    n = min(drop, len(buf))
    sink.drop_front(n)
    del buf[:n]
    assert len(sink) == len(buf) and sink.take() == bytes(buf)


def test_a_body_of_one_chunk_is_handed_on_without_a_copy() -> None:
    chunk = os.urandom(1000)
    sink = Chunks()
    sink.extend(chunk)
    assert sink.take() is chunk


# -- memory -----------------------------------------------------------------------------------

def test_memory_stays_bounded_reading_windows_in_parallel_parts(store: CountingStore) -> None:
    size, window = 192 * MiB, 24 * MiB
    uri = store.put(store.bucket, "big.bin", b"\x5a" * size)
    config = {"platform": {"aws": {"endpoint_url": store.url, "region": "us-east-1"}}}
    script = """
import json, sys
import attachfs
from attachfs._read import parallel
fs = attachfs.filesystem(config=json.loads(sys.argv[1]))
uri, size, window = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
parallel.FAST_CONNECTION = float("inf")  # every link slow: parallel parts
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
fs.cat_file(uri, 0, 2**20)
before, total, parts = hwm(), 0, 0
for start in range(0, size, window):
    total += len(fs.cat_file(uri, start, start + window))
print(json.dumps({"total": total, "grew_kib": hwm() - before}))
"""
    out = subprocess.run([sys.executable, "-c", script, json.dumps(config), uri, str(size),
                          str(window)], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["total"] == size
    assert len(ranged(store)) >= size // PART_SIZE  # it was read in parts
    # The window being assembled, its parts, and what the pool buffers: a few windows, far
    # below the 192 MiB object.
    assert result["grew_kib"] < 4 * window // KiB, result


def test_a_window_on_a_slow_link_is_cut_into_parts_pinned_at_once(store: CountingStore) -> None:
    """A streaming file's window, version known, on a link measured slow: every part at once,
    each pinned (no part goes alone first)."""
    import asyncio

    data = os.urandom(MiB)
    uri = store.put(store.bucket, "window.bin", data)
    fs = fs_for(store)
    measure(fs, uri, fast=False)
    etag = store.etag(store.bucket, "window.bin")
    store.delay = 0.02
    store.reset_counts()
    part = asyncio.run(_read.read(None, fs.route(uri), 4096, 4096 + 8 * PART, version=etag,
                                  config=fs.config))
    assert part.data == data[4096:4096 + 8 * PART] and part.size == MiB
    assert len(store.gets) == 8
    assert {g.if_match for g in store.gets} == {etag}
    assert store.max_in_flight >= 2


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, MiB - 1), parts=st.integers(2, 12), past_end=st.booleans())
def test_a_windows_parts_are_received_into_one_buffer_exactly(
        store: CountingStore, monkeypatch: pytest.MonkeyPatch, start: int, parts: int,
        past_end: bool) -> None:
    """A pinned window on a slow link: each part's answer lands in its slice of one buffer,
    which is the window's bytes (no join); a part the object ends inside gets its own buffer
    and the window is joined, exact either way."""
    import asyncio

    from attachfs._net import buffers

    made: list[bytes | bytearray] = []
    new_buffer = buffers.new_buffer

    def recording(n: int) -> Any:
        buffer, view = new_buffer(n)
        made.append(buffer)
        return buffer, view

    monkeypatch.setattr(buffers, "new_buffer", recording)
    data = os.urandom(MiB)
    uri = store.put(store.bucket, "window.bin", data)
    fs = fs_for(store)
    measure(fs, uri, fast=False)
    etag = store.etag(store.bucket, "window.bin")
    end = MiB + PART if past_end else min(start + parts * PART, MiB)
    if end - start < 2 * parallel.MIN_PART_SIZE:
        return  # one GET, not parts
    made.clear()
    part = asyncio.run(_read.read(None, fs.route(uri), start, end, version=etag,
                                  config=fs.config))
    assert part.data == data[start:end] and part.size == MiB
    if not past_end:
        assert made and part.data is made[0]  # the window's buffer, filled in place


@pytest.mark.parametrize(("length", "part"), [
    (None, 8 * MiB), (1 * MiB, 1 * MiB), (3 * MiB, 1 * MiB), (8 * MiB, 1 * MiB),
    (12 * MiB, 1536 * KiB), (64 * MiB, 8 * MiB), (2**30, 8 * MiB)])
def test_parts_fill_the_connections_of_a_read_within_bounds(length: int | None,
                                                           part: int) -> None:
    assert parallel.part_size(length) == part


# -- a stream's window --------------------------------------------------------------------------

def _lengths(gets: list[Any]) -> list[int]:
    out = []
    for g in gets:
        first, _, last = g.range.removeprefix("bytes=").partition("-")
        out.append(int(last) + 1 - int(first))
    return out


@pytest.mark.parametrize("caller_set", [False, True], ids=["default", "max_readahead-set"])
def test_a_stream_on_a_slow_link_grows_its_window_into_larger_parts(
        store: CountingStore, monkeypatch: pytest.MonkeyPatch, caller_set: bool) -> None:
    """On a link measured slow, a stream's read-ahead grows to ``parts_in_flight`` parts of
    half ``PART_SIZE`` (each part then spends less of its time waiting for its first byte),
    unless the caller set ``max_readahead``; the bytes are the object's, each asked once."""
    from attachfs import _file

    readahead = 2 * PART  # the file's default bound here: below the slow link's window
    monkeypatch.setattr(_file, "MAX_READAHEAD", readahead)
    monkeypatch.setattr(_file, "FIRST_BLOCK", PART)
    monkeypatch.setattr(parallel, "_ALIGN", 4 * KiB)  # parts of a few KiB, as counted here
    data = os.urandom(4 * MiB)
    uri = store.put(store.bucket, "stream.bin", data)
    fs = fs_for(store)
    measure(fs, uri, fast=False)
    store.reset_counts()
    options = {"max_readahead": readahead} if caller_set else {}
    with fs.open(uri, cache_options=options) as f:
        out = b"".join(iter(lambda: f.read(PART), b""))
    assert out == data
    lengths = _lengths(ranged(store))
    assert sum(lengths) <= len(data) * 1.05  # nothing fetched twice
    etag = store.etag(store.bucket, "stream.bin")
    assert {g.if_match for g in store.gets[1:]} == {etag}
    if caller_set:
        assert max(lengths) <= readahead // parallel.PARTS_IN_FLIGHT * 2
    else:
        window = PART // 2 * parallel.PARTS_IN_FLIGHT
        assert window > readahead
        assert max(lengths) == window // parallel.PARTS_IN_FLIGHT


# -- what a link is measured as ----------------------------------------------------------------

def test_a_pause_in_one_sample_does_not_make_a_fast_link_slow() -> None:
    """A sample can only come out slower than the link (the client paused), never faster: of
    the samples within ``RECHECK`` the host keeps the best, not their average."""
    host = ("test-sample", object())
    now = time.monotonic()
    parallel._measured(host, 4 * MiB, 10.0, now)  # one read that waited on a pause
    assert parallel._fast(host, now) is None  # one slow sample says nothing yet
    parallel._measured(host, 4 * MiB, 10.0, now)
    assert parallel._fast(host, now) is False
    quick = 4 * MiB / (1.5 * parallel.FAST_CONNECTION)  # 1.5x the threshold
    parallel._measured(host, 4 * MiB, quick, now)
    assert parallel._fast(host, now) is True
    parallel._measured(host, 4 * MiB, 10.0, now)  # another pause: still fast
    assert parallel._fast(host, now) is True


def test_a_fast_part_of_a_parallel_read_shows_the_link_fast(
        store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link wrongly measured slow reads in parts; a part that alone carried more than
    ``FAST_CONNECTION`` shows it fast, and the next read is one GET."""
    import asyncio

    # Between the wrong sample (4 MiB in 10 s) and what a part carries over loopback (64 KiB
    # in well under 30 ms).
    monkeypatch.setattr(parallel, "FAST_CONNECTION", 2e6)
    monkeypatch.setattr(parallel, "RATE_SAMPLE", PART // 4)
    data = os.urandom(MiB)
    uri = store.put(store.bucket, "relink.bin", data)
    fs = fs_for(store)
    measure(fs, uri, fast=False)
    host = _read.host(fs.route(uri), fs.config)
    etag = store.etag(store.bucket, "relink.bin")
    store.reset_counts()
    part = asyncio.run(_read.read(None, fs.route(uri), 0, 8 * PART, version=etag,
                                  config=fs.config))
    assert part.data == data[:8 * PART]
    assert len(store.gets) == 8  # slow: in parts, all pinned
    assert parallel._fast(host, time.monotonic()) is True
    store.reset_counts()
    assert fs.cat_file(uri, 8 * PART, 16 * PART) == data[8 * PART:16 * PART]
    assert len(store.gets) == 1


def test_a_host_not_measured_lately_is_measured_with_a_larger_first_part(
        store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The part that measures a host goes alone and is ``MEASURE_SAMPLE`` long, not a part's
    size: a small sample is mostly a request's own overhead on a fast link."""
    monkeypatch.setattr(parallel, "MEASURE_SAMPLE", 3 * PART)
    data = os.urandom(16 * PART)
    uri = store.put(store.bucket, "sample.bin", data)
    fs = fs_for(store)
    store.reset_counts()
    assert fs.cat_file(uri, 0, 8 * PART) == data[:8 * PART]
    assert store.gets[0].range == f"bytes=0-{3 * PART - 1}"
    assert store.gets[0].if_match is None


def test_one_slow_sample_makes_the_next_read_measure_again(
        store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """After one slow sample the next large read still measures, with a part of
    ``MEASURE_SAMPLE`` alone (the first request after a pause runs slowly on some machines)."""
    monkeypatch.setattr(parallel, "MEASURE_SAMPLE", 3 * PART)
    data = os.urandom(MiB)
    uri = store.put(store.bucket, "again.bin", data)
    fs = fs_for(store)
    host = _read.host(fs.route(uri), fs.config)
    parallel._measured(host, 4 * MiB, 10.0, time.monotonic())
    assert parallel._fast(host, time.monotonic()) is None
    store.reset_counts()
    assert fs.cat_file(uri, 0, 8 * PART) == data[:8 * PART]
    assert store.gets[0].range == f"bytes=0-{3 * PART - 1}"  # measuring, not a part
    assert store.gets[0].if_match is None


def test_a_sample_that_overlapped_another_is_credited_with_the_overlap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two measuring GETs at once (a stream's read and its read-ahead) each carry half of what
    one would alone where the client is the limit: each sample counts twice its bytes, and
    never more than ``OVERLAP_CREDIT`` times."""
    import asyncio

    from attachfs._read.part import Part

    seen: list[int] = []
    monkeypatch.setattr(parallel, "_measured",
                        lambda host, nbytes, seconds, now: seen.append(nbytes))
    host = ("test-overlap", object())

    async def one(start: int, end: int | None, version: str | None) -> Part:
        await asyncio.sleep(0.02)
        return Part(b"x" * PART, start, 16 * PART, "v")

    async def three() -> None:
        await asyncio.gather(*(parallel.measured(one, host, i * PART, (i + 1) * PART, None)
                               for i in range(3)))

    asyncio.run(parallel.measured(one, host, 0, PART, None))
    assert seen == [PART]  # alone: its own bytes
    seen.clear()
    asyncio.run(three())
    assert seen == [parallel.OVERLAP_CREDIT * PART] * 3
    assert not parallel._busy


def test_a_forked_child_starts_with_no_measuring_gets_in_flight() -> None:
    """The parent's GETs never finish in a forked child: counted there, they would credit
    every sample of the child with an overlap it never had."""
    host = ("test-fork", os.getpid())
    parallel._busy[host] = 3
    try:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report and leave at once
            os.write(write_end, b"1" if host in parallel._busy else b"0")
            os._exit(0)
        os.close(write_end)
        assert os.read(read_end, 1) == b"0"
        os.waitpid(pid, 0)
        assert parallel._busy[host] == 3  # the parent's own count is left alone
    finally:
        parallel._busy.pop(host, None)


# -- the calling thread's own loop ------------------------------------------------------------

def test_a_threads_own_pool_is_reused_and_closed_when_the_thread_ends(
        store: CountingStore) -> None:
    """A blocking read runs on its thread's own loop and pool: the thread's reads share one
    connection, and the connection is closed when the thread ends, not left to the server."""
    import gc
    import threading

    uris = [store.put(store.bucket, f"own/{i}.bin", os.urandom(5000)) for i in range(5)]
    fs = fs_for(store)
    with fs.open(uris[0]) as f:  # the backend is built (on fsspec's loop) before counting
        f.read(10)
    store.reset_counts()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for uri in uris:
                with fs.open(uri) as f:
                    assert len(f.read(1000)) == 1000
        except BaseException as err:  # reported in the test's thread
            errors.append(err)

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join()
    assert not errors, errors
    assert len(store.gets) == len(uris)
    assert store.opened == 1  # the thread's own connection, kept for its next read
    del thread
    gc.collect()
    deadline = time.monotonic() + 10
    while store.closed_connections() < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.closed_connections() == 1


def test_a_forked_child_never_reads_on_its_parents_connections(store: CountingStore) -> None:
    """The calling thread's loop and its connections belong to the process that made them: a
    forked child makes a loop and a connection of its own, and the parent's connection still
    carries the parent's next read."""
    data = os.urandom(6000)
    uris = [store.put(store.bucket, f"fork/{i}.bin", data) for i in range(3)]
    fs = fs_for(store)
    with fs.open(uris[0]) as f:
        assert f.read(100) == data[:100]
    store.reset_counts()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read twice, report, leave at once
        ok = b"0"
        try:
            for uri in uris[1:]:
                with fs.open(uri) as f:
                    if f.read(1000) != data[:1000]:
                        break
            else:
                ok = b"1"
        finally:
            os.write(write_end, ok)
            os._exit(0)
    os.close(write_end)
    assert os.read(read_end, 1) == b"1"
    os.waitpid(pid, 0)
    assert store.opened == 1  # the child's own connection, reused for its second read
    with fs.open(uris[2]) as f:  # the parent's connection, untouched by the child
        assert f.read() == data
    assert store.opened == 1
    assert len(store.gets) == 3


def _half_closed(port: int) -> int:
    """This process's TCP sockets to ``port`` that the other side closed (``CLOSE_WAIT``)."""
    from benchmarks.soak import socket_states

    return socket_states(port)["CLOSE_WAIT"]


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's /proc")
def test_an_idle_threads_connection_closed_by_the_server_is_closed_here_too(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread's own loop runs only while the thread reads; when the server ends an idle
    pooled connection meanwhile, the sweeper closes this side of it (no CLOSE_WAIT left
    behind), and the thread's next read opens a new one."""
    from attachfs._net import loops

    monkeypatch.setattr(loops, "SWEEP_SECONDS", 0.05)
    with CountingStore() as store:  # its own server: no other test's connections to it
        store.bucket = "idle"
        _idle_thread_reads(store)


def _idle_thread_reads(store: CountingStore) -> None:
    import threading

    uri = store.put(store.bucket, "idle.bin", os.urandom(5000))
    fs = fs_for(store)
    done = threading.Event()
    finish = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:  # reads, then sits idle while the server hangs up
        try:
            for _ in range(2):
                with fs.open(uri) as f:
                    assert len(f.read(100)) == 100
                done.set()
                finish.wait(30)
                finish.clear()
        except BaseException as err:  # reported in the test's thread
            errors.append(err)
            done.set()

    thread = threading.Thread(target=reader)
    thread.start()
    assert done.wait(30) and not errors, errors
    done.clear()
    port = int(store.url.rsplit(":", 1)[1].rstrip("/"))
    store.reset_counts()
    store.hang_up()
    deadline = time.monotonic() + 5
    seen = 0
    while time.monotonic() < deadline:
        seen = max(seen, _half_closed(port))
        if seen and not _half_closed(port):
            break
        time.sleep(0.01)
    assert _half_closed(port) == 0
    finish.set()  # the thread reads again, on a new connection
    assert done.wait(30) and not errors, errors
    finish.set()
    thread.join()
    assert store.opened == 1


def test_pyarrows_io_threads_reuse_their_loops_from_read_to_read(
        store: CountingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow calls a file's ``read`` from its own I/O threads, each call with a new Python
    thread state (and so an empty ``threading.local``): the loops, and the connections they
    hold, must still be the same from one read to the next."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pd = pytest.importorskip("pandas")
    import io

    import numpy as np

    from attachfs import _blocks
    from attachfs._net import loops

    table = pa.table({f"c{i}": np.random.default_rng(i).random(250_000) for i in range(8)})
    buf = io.BytesIO()  # 16 MB: more than a file fetches whole at its first read
    pq.write_table(table, buf, row_group_size=25_000, compression=None)
    uri = store.put(store.bucket, "t.parquet", buf.getvalue())
    fs = fs_for(store)

    def scan() -> Any:  # pyarrow's 8 I/O threads, any of which may make a read
        _blocks.shared().clear()  # every scan reads from the store
        return pa.Table.from_pandas(pd.read_parquet(
            f"attach::{uri}", columns=["c1"],
            storage_options={"config": fs.config, "skip_instance_cache": True}))

    made = []
    init = loops.Own.__init__
    monkeypatch.setattr(loops.Own, "__init__", lambda own: (made.append(1), init(own))[1])
    assert scan().column("c1") == table.column("c1")
    made.clear()
    store.reset_counts()
    for _ in range(3):
        assert scan().column("c1") == table.column("c1")
    # Three scans, each with reads on pyarrow's threads: a loop (and a connection) per read
    # before; now the threads share the loops they made in the first scan.
    assert len(store.gets) > 6
    assert made == []


@settings(max_examples=300, deadline=None)
@given(key=st.text(min_size=1, max_size=40),
       base=st.sampled_from(["http://127.0.0.1:9000", "https://bucket.s3.amazonaws.com",
                             "http://127.0.0.1:10000/devstoreaccount1", "http://[::1]:9000/",
                             "https://acct.blob.core.windows.net"]),
       query=st.sampled_from(["", "versionId=a%2Bb%3D%3D", "alt=media&userProject=p%2Fq"]))
def test_an_object_url_is_the_one_a_whole_parse_makes(key: str, base: str, query: str) -> None:
    """The URL of a request is built from a base parsed once; it must be, byte for byte, the
    URL that parsing the whole text makes, for any key (``//``, ``..``, ``%``, ``?``, ``#``
    and non-ASCII stay as encoded)."""
    import yarl

    from attachfs._read import sigv4
    from attachfs._read.transport import object_url

    path = "/bkt/" + sigv4.encode_key(key)
    whole = yarl.URL(base.rstrip("/") + path + (f"?{query}" if query else ""), encoded=True)
    built = object_url(base, path, query)
    assert str(built) == str(whole)
    assert (built.raw_path, built.raw_query_string) == (whole.raw_path, whole.raw_query_string)
