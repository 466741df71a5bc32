"""The read path's promises, counted at the server (never timed): requests per open, what
read-ahead fetches, version pinning, bounded memory, the disk cache and the batch iterator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

import attachfs
from datasets import random_columns
from stores import new_store

MiB = 2**20


@pytest.fixture
def s3_at_http(peers):
    """S3 reads sent to the local http server (path-style, Range, ETag, If-Match): it counts
    every request and every byte asked for."""
    peers.http.clear()
    bucket = f"b-{uuid.uuid4().hex[:10]}"
    config = {"platform": {"aws": {"endpoint_url": peers.http.url, "region": "us-east-1"}}}

    def put(key: str, data: bytes) -> str:
        peers.http.put(f"/{bucket}/{key}", data)
        return f"s3://{bucket}/{key}"

    return config, put, peers.http


def gets(server) -> list:
    return [r for r in server.requests if r.method == "GET"]


def asked_bytes(server, size: int) -> int:
    total = 0
    for request in gets(server):
        span = request.headers.get("range")
        if not span:
            total += size
            continue
        first, _, last = span.removeprefix("bytes=").partition("-")
        total += int(last) if not first else min(int(last) + 1 if last else size, size) - int(
            first)
    return total


def test_open_and_read_one_kib_is_one_request_and_no_head(s3_at_http):
    config, put, server = s3_at_http
    data = os.urandom(4 * MiB)
    uri = put("four-mib.bin", data)
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    server.clear_requests()
    with fs.open(uri) as f:
        assert f.read(1024) == data[:1024]
    assert [r.method for r in server.requests] == ["GET"]


@pytest.fixture
def crossings(monkeypatch):
    """The coroutines handed from a caller's thread to fsspec's event loop from here on."""
    import asyncio

    handed: list[str] = []
    real = asyncio.run_coroutine_threadsafe

    def counted(coro, loop):
        handed.append(coro.__qualname__)
        return real(coro, loop)

    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", counted)
    return handed


def test_a_small_read_runs_on_the_callers_thread(s3_at_http, crossings):
    """Each crossing from the caller's thread to fsspec's event loop is a thread handoff (two
    sleeping threads woken); with the backend built and its credentials valid, opening a file
    and reading it makes none: the GET runs on the calling thread's own loop."""
    config, put, server = s3_at_http
    data = os.urandom(4 * MiB)
    uris = [put(f"handoff-{i}.bin", data) for i in range(3)]
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    with fs.open(uris[0]) as f:  # the first open builds the S3 backend, on the loop
        f.read(1024)
    crossings.clear()
    server.clear_requests()
    for uri in uris[1:]:
        with fs.open(uri) as f:
            assert f.read(1024) == data[:1024]
    assert crossings == []
    assert [r.method for r in server.requests] == ["GET", "GET"]


def test_a_thread_running_an_event_loop_reads_through_fsspecs_loop(s3_at_http, crossings):
    """A blocking read called from a coroutine (a notebook cell, an async application) cannot
    run the caller's loop again: its GET goes to fsspec's loop, once."""
    import asyncio

    config, put, server = s3_at_http
    data = os.urandom(MiB)
    uri = put("in-a-loop.bin", data)
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    with fs.open(uri) as f:
        f.read(10)
    crossings.clear()

    async def caller() -> bytes:
        with fs.open(uri) as f:
            return f.read(2048)

    assert asyncio.run(caller()) == data[:2048]
    assert len(crossings) == 1, crossings


def test_a_small_attachment_is_read_whole_with_one_request(s3_at_http):
    config, put, server = s3_at_http
    data = os.urandom(300_000)
    uri = put("small.jpg", data)
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    server.clear_requests()
    with fs.open(uri) as f:
        assert f.read() == data
        f.seek(1000)
        assert f.read(10) == data[1000:1010]
    assert len(server.requests) == 1


def test_sequential_reads_grow_the_read_ahead(s3_at_http):
    config, put, server = s3_at_http
    data = os.urandom(64 * MiB)
    uri = put("big.bin", data)
    # Each window one GET (parts_in_flight = 1): the windows are what is counted here; their
    # parallel parts are tests/test_transport.py's.
    fs = attachfs.filesystem(config={**config, "limits": {"parts_in_flight": 1}},
                             skip_instance_cache=True)
    server.clear_requests()
    chunks = []
    with fs.open(uri) as f:
        while chunk := f.read(256 * 1024):
            chunks.append(chunk)
    assert b"".join(chunks) == data
    # Growing windows, not 256 one-chunk requests; and nothing read twice.
    assert len(gets(server)) <= 24
    assert asked_bytes(server, len(data)) <= len(data) + 2 * MiB


def test_seeks_fetch_what_is_asked_not_megabytes(s3_at_http):
    config, put, server = s3_at_http
    data = os.urandom(32 * MiB)
    uri = put("random.bin", data)
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    server.clear_requests()
    offsets = [31 * MiB, 3 * MiB, 17 * MiB, 9 * MiB, 25 * MiB]
    with fs.open(uri) as f:
        assert f.size == len(data)  # the size first, as footer-first readers ask: the tail
        for off in offsets:
            f.seek(off)
            assert f.read(10_000) == data[off:off + 10_000]
    # Per seek at most the 64 KiB minimum fetch; the tail for the size: 64 KiB.
    assert asked_bytes(server, len(data)) <= (len(offsets) + 1) * 64 * 1024


def test_pandas_parquet_columns_read_a_fraction_of_the_file(s3_at_http):
    import pandas as pd

    config, put, server = s3_at_http
    frame, data = random_columns(400_000, 10, 20)
    uri = put("table.parquet", data)
    server.clear_requests()
    got = pd.read_parquet(f"attach::{uri}", columns=["c1", "c7"],
                          storage_options={"config": config})
    pd.testing.assert_frame_equal(got, frame[["c1", "c7"]])
    assert asked_bytes(server, len(data)) <= 0.3 * len(data)


@pytest.mark.parametrize("seed", range(4))
def test_parquet_row_groups_read_by_index_out_of_order_request_what_they_read(s3_at_http,
                                                                            seed):
    """read_row_group(i, columns=[...]) in a random order (one not beginning with the first
    row group): the chunks of those columns in those row groups, the footer, nothing more."""
    import io
    import random

    import pyarrow.parquet as pq

    config, put, server = s3_at_http
    n = 400_000
    frame, data = random_columns(n, 6, 20)
    uri = put(f"random-{seed}.parquet", data)
    meta = pq.read_metadata(io.BytesIO(data))
    order = random.Random(seed).sample(range(1, 20), 6)
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    server.clear_requests()
    with fs.open(uri) as f:
        pf = pq.ParquetFile(f)
        for i in order:
            got = pf.read_row_group(i, columns=["c1", "c4"])
            assert got.column("c4").to_pylist()[:3] == frame["c4"][i * n // 20:][:3].tolist()
    needed = sum(meta.row_group(i).column(c).total_compressed_size for i in order
                 for c in (1, 4))
    assert asked_bytes(server, len(data)) <= 1.1 * needed + 64 * 1024  # and the footer's


def test_parquet_reads_reuse_the_buffers_of_dropped_chunks_and_never_those_held(s3_at_http):
    """Column chunks are received into buffers that earlier reads' dropped chunks leave: a
    frame still held (and pyarrow's zero-copy views of its chunks) keeps every byte."""
    import pandas as pd
    import pyarrow.parquet as pq

    from attachfs import _blocks
    from attachfs._net import buffers

    config, put, server = s3_at_http
    n = 400_000
    frame, data = random_columns(n, 4, 4)
    uri = put("reuse.parquet", data)
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    with fs.open(uri) as f:
        held = pq.ParquetFile(f).read_row_group(0).column("c1")  # zero-copy over a chunk
    before = buffers.stats()
    frames = []
    for _ in range(3):
        _blocks.shared().clear()  # the next read fetches again, into the buffers let go
        frames.append(pd.read_parquet(f"attach::{uri}", columns=["c1", "c3"],
                                      storage_options={"config": config}))
    for got in frames:
        pd.testing.assert_frame_equal(got, frame[["c1", "c3"]])
    assert held.to_numpy().tolist() == frame["c1"][:n // 4].tolist()
    if buffers._reuse:
        assert buffers.stats()["reused"] > before["reused"]


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_an_object_replaced_mid_read_raises_integrity_error(peers, attach_config, backend):
    store = new_store(backend, peers)
    old = os.urandom(2 * MiB)
    uri = store.put("changing.bin", old)
    fs = attachfs.filesystem(config=attach_config, skip_instance_cache=True)
    f = fs.open(uri, block_size=64 * 1024)
    assert f.read(1000) == old[:1000]
    assert f.version
    store.put("changing.bin", os.urandom(2 * MiB))  # a new version, same size
    f.seek(MiB)
    with pytest.raises(attachfs.IntegrityError, match="changed while it was being read"):
        f.read(1000)


def test_memory_stays_bounded_reading_a_large_object(s3_at_http, tmp_path):
    config, put, _server = s3_at_http
    size = 384 * MiB
    uri = put("huge.bin", b"\x5a" * size)
    script = """
import json, resource, sys
import attachfs
fs = attachfs.filesystem(config=json.loads(sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
total = 0
with fs.open(sys.argv[2]) as f:
    while chunk := f.read(8 * 2**20):
        total += len(chunk)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"total": total, "grew_kib": after - before}))
"""
    out = subprocess.run([sys.executable, "-c", script, json.dumps(config), uri],
                         capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["total"] == size
    # One 16 MiB window, one in flight and the 8 MiB being returned: far below the object.
    assert result["grew_kib"] < 96 * 1024, result


def test_a_stream_keeps_nothing_behind_the_read_it_is_at(s3_at_http):
    """A sequential reader never goes back: the bytes before its current read are let go
    (the windows ahead are kept), so a stream holds its read-ahead, not twice that. A backward
    seek still reads the right bytes, from the storage again."""
    config, put, server = s3_at_http
    data = os.urandom(40 * MiB)
    uri = put("stream.bin", data)
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    read = 2 * MiB
    with fs.open(uri, cache_options={"max_readahead": 4 * MiB}) as f:
        pos = 0
        while chunk := f.read(read):
            assert chunk == data[pos:pos + read]
            pieces, _ = f._local.find(0, len(data))
            held = [(s, s + len(d)) for s, d in pieces]
            if pos >= 4 * read:  # streaming by now
                assert all(end > pos for _, end in held), (pos, held)
            assert f._local.extents.nbytes <= f._local.limit
            pos += len(chunk)
        assert pos == len(data)
        server.clear_requests()
        f.seek(20 * MiB)
        assert f.read(1000) == data[20 * MiB:20 * MiB + 1000]
        assert gets(server)  # read again: nothing behind the stream was kept


def test_a_cache_entry_written_by_one_process_is_hit_by_another(s3_at_http, tmp_path):
    config, put, server = s3_at_http
    data = os.urandom(100_000)
    uri = put("cached.bin", data)
    cfg = dict(config, cache={"directory": str(tmp_path / "cache"), "max_bytes": 64 * MiB,
                              "ttl_seconds": 3600})
    script = """
import json, sys
import attachfs
fs = attachfs.filesystem(config=json.loads(sys.argv[1]), skip_instance_cache=True)
sys.stdout.write(fs.cat_file(sys.argv[2]).hex())
"""
    runs = []
    for _ in range(2):
        server.clear_requests()
        out = subprocess.run([sys.executable, "-c", script, json.dumps(cfg), uri],
                             capture_output=True, text=True, timeout=120, check=True)
        assert bytes.fromhex(out.stdout) == data
        runs.append(len(gets(server)))
    assert runs == [1, 0]  # the second process read the first one's entry
    # And the streaming file finds it too.
    server.clear_requests()
    with attachfs.filesystem(config=cfg, skip_instance_cache=True).open(uri) as f:
        assert f.read() == data
    assert gets(server) == []


def test_without_a_ttl_the_cache_revalidates_with_a_conditional_request(peers, tmp_path):
    store = new_store("s3", peers)
    data = os.urandom(50_000)
    uri = store.put("k.bin", data)
    cfg = dict(peers.config(), cache={"directory": str(tmp_path / "c"), "max_bytes": 64 * MiB})
    fs = attachfs.filesystem(config=cfg, skip_instance_cache=True)
    assert fs.cat_file(uri) == data
    assert fs.cat_file(uri) == data  # revalidated (304), served from the entry
    assert fs.cache.stats()["hits"] >= 1
    new = os.urandom(50_000)
    store.put("k.bin", new)
    assert fs.cat_file(uri) == new  # the conditional request saw the new version


def test_tenant_b_is_never_served_tenant_a_entry(peers, tmp_path):
    peers.http.clear()
    url = f"{peers.http.url}/shared/report.csv"
    peers.http.put("/shared/report.csv", b"version one")
    cfg = {"platform": {"http": {"allow_private_networks": True}},
           "tenants": {"a": {}, "b": {}},
           "cache": {"directory": str(tmp_path / "c"), "max_bytes": MiB, "ttl_seconds": 3600}}
    fs_a = attachfs.filesystem(tenant="a", config=cfg, skip_instance_cache=True)
    fs_b = attachfs.filesystem(tenant="b", config=cfg, skip_instance_cache=True)
    assert fs_a.cat_file(url) == b"version one"
    peers.http.put("/shared/report.csv", b"version two")
    before = len(gets(peers.http))
    assert fs_b.cat_file(url) == b"version two"  # fetched for b, not a's entry
    assert len(gets(peers.http)) == before + 1
    assert fs_a.cat_file(url) == b"version one"  # a's fresh entry, untouched by b's read


def test_cat_iter_yields_each_object_as_it_completes(peers, attach_config):
    store = new_store("s3", peers)
    uris = {store.put(f"batch/{i}.bin", os.urandom(1000 + i)): i for i in range(40)}
    fs = attachfs.filesystem(config=attach_config, skip_instance_cache=True)
    got = dict(fs.cat_iter(list(uris), batch_size=4))
    assert set(got) == set(uris) and all(len(got[u]) == 1000 + i for u, i in uris.items())
    missing = store.uri("batch/missing.bin")
    out = dict(fs.cat_iter([*list(uris)[:3], missing], on_error="return"))
    assert isinstance(out[missing], FileNotFoundError) and len(out) == 4
    assert missing not in dict(fs.cat_iter([*list(uris)[:3], missing], on_error="omit"))
    with pytest.raises(FileNotFoundError):
        list(fs.cat_iter([missing]))
