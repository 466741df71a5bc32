"""The pieces of block caching that decide, without I/O: what a read fetches (``_pattern``),
what the block cache holds (``_blocks``), which parquet chunks a scan reads next
(``_parquet``), and what a cached object is keyed by (``_read.cached``)."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attachfs
from attachfs._blocks import BlockCache, Extents, assemble
from attachfs._file import _union
from attachfs._parquet import FIRST_WINDOW, Layout, Scan, footer_span
from attachfs._pattern import Pattern
from attachfs._read.cached import cache_uri, object_key

pytestmark = pytest.mark.unit

KiB, MiB = 2**10, 2**20


# --------------------------------------------------------------------------- extents

spans = st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 800)), max_size=30)


@given(puts=spans, query=st.tuples(st.integers(0, 6000), st.integers(0, 2000)))
def test_extents_hold_what_was_put_and_say_exactly_what_is_missing(puts, query):
    data = bytes(random.Random(1).randbytes(7000))
    ext, held = Extents(), bytearray(7000)
    have = [False] * 7000
    for start, n in puts:
        ext.put(start, data[start:start + n])
        for i in range(start, min(start + n, 7000)):
            have[i] = True
    start, n = query
    end = min(start + n, 7000)
    pieces, gaps = ext.find(start, end)
    missing = {i for s, e in gaps for i in range(s, e)}
    assert missing == {i for i in range(start, end) if not have[i]}
    for s, piece in pieces:
        assert piece == data[s:s + len(piece)]
    if not gaps and end > start:
        assert assemble(pieces, start, end) == data[start:end]
    assert ext.nbytes == sum(have)
    del held


def test_the_block_cache_stays_under_its_bound_least_recently_used_out():
    cache = BlockCache(max_bytes=800 * KiB)
    key = ("t", "s", "s3://b/k")
    cache.learn(key, "v1", 10 * MiB)
    for i in range(20):
        assert cache.put(key, "v1", i * 100 * KiB, b"x" * (100 * KiB))
        cache.find(key, "v1", 0, 100 * KiB)  # the first extent stays recent
    assert cache.nbytes <= 800 * KiB
    assert cache.find(key, "v1", 0, 100 * KiB)[1] == []  # kept: used
    assert cache.find(key, "v1", 100 * KiB, 200 * KiB)[1] != []  # evicted
    assert not cache.put(key, "v1", 0, b"x" * (101 * KiB))  # over an eighth: not kept


def test_a_new_version_drops_the_old_bytes_and_another_version_finds_nothing():
    cache = BlockCache(max_bytes=MiB)
    key = ("t", "s", "s3://b/k")
    cache.learn(key, "v1", 1000)
    cache.put(key, "v1", 0, b"a" * 1000)
    assert cache.find(key, "v2", 0, 10) == ([], [(0, 10)])
    cache.learn(key, "v2", 1000)
    assert cache.nbytes == 0 and cache.find(key, "v1", 0, 10) == ([], [(0, 10)])
    assert not cache.put(key, "v1", 0, b"a")  # a late answer for the old version
    cache.forget(key, "v2")
    assert cache.current(key) is None


def test_tenants_and_identities_have_keys_of_their_own():
    def key(uri, tenant, config):
        return object_key(attachfs.explain(uri, tenant=tenant, config=config), config)

    cfg = attachfs.load_config({"tenants": {"a": {"direct": ["s3://bucket-a"]},
                                            "b": {"direct": ["s3://bucket-b"]}}})
    assert key("s3://bucket-a/k", "a", cfg) != key("s3://bucket-a/k", None, None)
    other = attachfs.load_config({"platform": {"aws": {"endpoint_url": "http://127.0.0.1:9"}},
                                  "tenants": {"a": {"direct": ["s3://bucket-a"]}}})
    assert key("s3://bucket-a/k", "a", cfg) != key("s3://bucket-a/k", "a", other)
    cache = BlockCache(max_bytes=MiB)
    cache.learn(key("s3://bucket-a/k", "a", cfg), "v", 10)
    cache.put(key("s3://bucket-a/k", "a", cfg), "v", 0, b"0123456789")
    assert cache.current(key("s3://bucket-a/k", None, None)) is None


def test_the_same_bucket_in_two_partitions_never_shares_a_key():
    main = attachfs.explain("https://bkt.s3.us-east-1.amazonaws.com/k")
    china = attachfs.explain("https://bkt.s3.cn-north-1.amazonaws.com.cn/k")
    assert main.uri == china.uri == "s3://bkt/k"
    assert cache_uri(main) != cache_uri(china)
    assert object_key(main, None) != object_key(china, None)
    assert cache_uri(attachfs.explain("s3://bkt/k")) == "s3://bkt/k"  # the standard one


# --------------------------------------------------------------------------- the pattern


class Simulated:
    """An object of ``size`` bytes read through ``Pattern`` as the file does, counting."""

    def __init__(self, size: int, **options):
        self.size, self.pattern = size, Pattern(**options)
        self.held: list[tuple[int, int]] = []
        self.requests: list[tuple[int, int]] = []
        self.known = False

    def gaps(self, start, end):
        out, pos = [], start
        for s, e in sorted(self.held):
            if e <= pos:
                continue
            if s >= end:
                break
            if s > pos:
                out.append((pos, s))
            pos = max(pos, e)
        if pos < end:
            out.append((pos, end))
        return out

    def fetch(self, start, end):
        end = min(end, self.size)
        if end > start:
            self.requests.append((start, end))
            self.held.append((start, end))
        self.known = True

    def read(self, start, n):
        end = min(start + n, self.size)
        plan = self.pattern.plan(start, end, self.size if self.known else None,
                                 self.gaps(start, end))
        for s, e in plan.fetch:
            self.fetch(s, e)
        if plan.prefetch:
            self.fetch(*plan.prefetch)
        assert not self.gaps(start, end)

    @property
    def fetched(self):
        return sum(e - s for s, e in self.requests)


@settings(max_examples=60, deadline=None)
@given(reads=st.lists(st.tuples(st.integers(0, 64 * MiB), st.integers(1, 200 * KiB)),
                      min_size=1, max_size=60))
def test_random_reads_fetch_what_they_need_and_a_tenth_more(reads):
    sim = Simulated(64 * MiB + 200 * KiB)
    needed: set[tuple[int, int]] = set()
    for start, n in reads:
        sim.read(start, n)
        needed.add((start, start + n))
    distinct = sum(e - s for s, e in _union(needed))
    assert sim.fetched <= 1.1 * distinct + 16 * KiB


def test_a_seek_and_a_small_read_fetch_no_fixed_minimum():
    sim = Simulated(32 * MiB)
    sim.read(0, 10)
    for off in (31 * MiB, 3 * MiB, 17 * MiB):
        sim.read(off, 100)
    assert [e - s for s, e in sim.requests[1:]] == [100, 100, 100]
    assert sim.requests[0] == (0, 16 * KiB)  # the head, where formats keep their headers


def test_runs_like_zip_members_fetch_what_they_went_on_to_need():
    rng = random.Random(3)
    sim = Simulated(64 * MiB)
    sizes = [rng.randint(2 * KiB, 48 * KiB) for _ in range(120)]
    needed = 0
    for size in sizes:
        off = rng.randrange(0, 60 * MiB)
        sim.read(off, 30)            # the member's header
        sim.read(off + 30, 10)       # its name
        sim.read(off + 40, size)     # its data
        needed += 40 + size
    assert sim.fetched <= 1.1 * needed
    assert len(sim.requests) <= 2.2 * len(sizes)  # not three per member


def test_a_stream_reads_ahead_from_the_size_of_its_reads():
    sim = Simulated(64 * MiB)
    for off in range(0, 64 * MiB, MiB):
        sim.read(off, MiB)
    sizes = [e - s for s, e in sim.requests]
    assert sizes[:3] == [MiB, MiB, MiB]  # the first read-ahead is one read's size
    assert max(sizes) == 8 * MiB and len(sizes) <= 12
    assert sim.fetched == 64 * MiB


def test_a_stream_after_a_seek_starts_after_its_third_read():
    sim = Simulated(8 * MiB)
    sim.read(4 * MiB, 40_000)
    sim.read(4 * MiB + 40_000, 40_000)  # two chunks of a slice: no read-ahead yet
    assert sim.fetched == 80_000
    sim.read(4 * MiB + 80_000, 40_000)
    assert sim.fetched > 120_000


def test_block_size_bounds_every_speculative_fetch():
    sim = Simulated(10 * KiB, first_block=1000)
    sim.read(0, 10)
    assert sim.requests == [(0, 1000)]


# --------------------------------------------------------------------------- parquet


@pytest.fixture(scope="module")
def parquet_file():
    np = pytest.importorskip("numpy")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({f"c{i}": np.random.default_rng(i).random(40_000) for i in range(6)})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=4_000)
    return buf.getvalue()


def layout_of(data: bytes) -> Layout:
    span = footer_span(data[-8:], len(data))
    assert span is not None
    layout = Layout.parse(data[span[0]:])
    assert layout is not None
    return layout


def test_a_column_scan_in_any_order_fetches_those_columns_ahead(parquet_file):
    layout = layout_of(parquet_file)
    scan = Scan(layout, max_ahead=64 * MiB)
    order = [(0, 1), (3, 1), (0, 4), (1, 1)]  # as pyarrow's I/O threads deliver them
    ahead = []
    for rg, col in order:
        ahead += scan.observe(*layout.chunks[rg][col])
    fetched = chunks_in(layout, ahead)
    assert fetched and {col for _, col in fetched} <= {1, 4}
    assert (5, 1) in fetched


def chunks_in(layout: Layout, spans: list[tuple[int, int]]) -> set[tuple[int, int]]:
    return {(rg, col) for rg in range(len(layout.chunks)) for col in range(6)
            for s, e in spans if s <= layout.chunks[rg][col][0] < e}


def test_a_scan_fetches_ahead_every_column_it_read_before_its_second_row_group(parquet_file):
    """pyarrow reads a projection row group by row group: when the first column comes round
    to its second row group, the others have been read only once, and are fetched ahead too,
    FIRST_WINDOW chunks at first, in row-group order; each read of one of them lets twice as
    many be ahead, until every chunk of those columns is fetched."""
    layout = layout_of(parquet_file)
    scan = Scan(layout, max_ahead=64 * MiB)
    assert scan.observe(*layout.chunks[0][1]) == []
    assert scan.observe(*layout.chunks[0][4]) == []
    first = chunks_in(layout, scan.observe(*layout.chunks[1][1]))
    assert first == {(1, 4), (2, 1), (2, 4), (3, 1)}  # the next FIRST_WINDOW, in order
    assert len(first) == FIRST_WINDOW
    fetched = set(first)
    read = {(0, 1), (0, 4), (1, 1)}
    for rg in range(1, 10):
        for col in (1, 4):
            if (rg, col) in read:
                continue
            read.add((rg, col))
            fetched |= chunks_in(layout, scan.observe(*layout.chunks[rg][col]))
            assert len(fetched - read) <= scan.window
    assert fetched | {(0, 1), (0, 4), (1, 1)} == {(rg, col) for rg in range(10)
                                                  for col in (1, 4)}


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_row_groups_read_by_index_in_an_order_not_from_the_first_fetch_nothing_ahead(
        parquet_file, data):
    """pq.ParquetFile(f).read_row_group(i, columns=[...]) for row groups in any order that does
    not begin with the first: every chunk of the columns asked for, nothing else."""
    layout = layout_of(parquet_file)
    groups = data.draw(st.permutations(range(10)).filter(lambda p: p[0] != 0))
    order = groups[:data.draw(st.integers(2, 10))]
    columns = data.draw(st.lists(st.integers(0, 5), min_size=1, max_size=5, unique=True))
    scan = Scan(layout, max_ahead=64 * MiB)
    for rg in order:
        for col in sorted(columns):
            assert scan.observe(*layout.chunks[rg][col]) == []


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_reads_that_turn_away_from_a_scan_leave_at_most_the_window_fetched_for_nothing(
        parquet_file, data):
    """Any reads of chunks (a scan seen or not): what is fetched ahead and not read is never
    more than FIRST_WINDOW doubled once per chunk fetched ahead that was read."""
    layout = layout_of(parquet_file)
    reads = data.draw(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 5)), max_size=40))
    scan = Scan(layout, max_ahead=64 * MiB)
    fetched: set[tuple[int, int]] = set()
    read: set[tuple[int, int]] = set()
    hits = 0
    for rg, col in [(0, 2), (1, 2)] + reads:  # begins as a scan of column 2
        hits += (rg, col) in fetched - read
        read.add((rg, col))
        fetched |= chunks_in(layout, scan.observe(*layout.chunks[rg][col]))
        assert len(fetched - read) <= FIRST_WINDOW * 2**hits


def test_row_groups_read_whole_by_index_fetch_nothing_ahead(parquet_file):
    layout = layout_of(parquet_file)
    scan = Scan(layout, max_ahead=64 * MiB)
    for rg in (3, 4, 7, 0, 1):
        first, last = layout.chunks[rg][0][0], layout.chunks[rg][-1][1]
        assert scan.observe(first, last) == []


def test_a_file_that_is_not_parquet_has_no_footer():
    assert footer_span(b"not a parquet file", 100) is None
    assert footer_span(b"\xff\xff\xff\x7fPAR1", 100) is None  # a length past the start


def test_a_gate_lets_waiters_in_in_order_and_passes_on_a_cancelled_turn():
    import asyncio

    from attachfs._gate import Gate

    async def scenario() -> list[str]:
        gate, order = Gate(1), []

        async def fetch(key: str) -> None:
            await gate.acquire()
            order.append(key)
            await asyncio.sleep(0.01)
            gate.release()

        first = asyncio.ensure_future(fetch("a"))
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(fetch(k)) for k in ("b", "c", "d", "e")]
        await asyncio.sleep(0)
        waiting[1].cancel()  # c: its file closed
        await asyncio.gather(first, *waiting, return_exceptions=True)
        assert gate._free == 1 and not gate._waiting  # every turn given back
        return order

    assert asyncio.run(scenario()) == ["a", "b", "d", "e"]


def test_a_scan_after_the_footers_tail_read_is_still_seen(parquet_file):
    """pyarrow reads a file's last 64 KiB for its footer, which also covers the end of the
    last row group: that read is not where reads began, and a scan from the first row group
    after it is still a scan (pq.ParquetFile(f).iter_batches(columns=[...]) on one file)."""
    layout = layout_of(parquet_file)
    scan = Scan(layout, max_ahead=64 * MiB)
    size = len(parquet_file)
    assert layout.touched(size - 64 * 1024, size)  # the tail read reaches into a chunk
    assert scan.observe(size - 64 * 1024, size) == []
    assert scan.observe(*layout.chunks[0][1]) == []
    assert chunks_in(layout, scan.observe(*layout.chunks[1][1])) == {(2, 1), (3, 1), (4, 1),
                                                                     (5, 1)}
