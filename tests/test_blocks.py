"""Block caching, counted on the wire (never timed): what open files fetch, what they reuse
across passes, handles and reopenings, what ``info()`` costs, and that a cache never serves
another tenant's bytes or a replaced object's.

S3 reads go through a recording proxy in front of moto (methods, ranges, conditional headers
and statuses as the storage saw them), or to the local http server, which counts every
request and byte asked for.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from typing import Any

import fsspec.caching
import pytest
from aiohttp import web

import attachfs
from attachfs import _blocks
from attachfs.testing.servers import LocalHTTPServer
from fakes.authz_proxy import AuthorizingProxy

MiB = 2**20
TENANT = "acme"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bucket(peers) -> str:
    name = f"blk-{uuid.uuid4().hex[:12]}"
    peers.make_s3_bucket(name)
    return name


@pytest.fixture(scope="module")
def storage(peers):
    with AuthorizingProxy(peers.s3_endpoint, preserve_host=True) as proxy:
        yield proxy


@pytest.fixture
def s3(peers, bucket, storage):
    """(fs for tenant acme, put(key, data) -> uri, the recording proxy)."""
    cfg = peers.config()
    cfg["platform"]["aws"]["endpoint_url"] = storage.url
    cfg["tenants"] = {TENANT: {"direct": [f"s3://{bucket}"]}}

    def put(key: str, data: bytes) -> str:
        key = f"{uuid.uuid4().hex[:8]}/{key}"
        peers.put_s3(bucket, key, data)
        return f"s3://{bucket}/{key}"

    storage.clear_requests()
    fs = attachfs.filesystem(tenant=TENANT, config=cfg, skip_instance_cache=True)
    return fs, put, storage


@pytest.fixture
def http(peers):
    """S3 reads sent to the local http server: (config, put(key, data) -> uri, server)."""
    peers.http.clear()
    name = f"b-{uuid.uuid4().hex[:10]}"
    config = {"platform": {"aws": {"endpoint_url": peers.http.url, "region": "us-east-1"}}}

    def put(key: str, data: bytes) -> str:
        peers.http.put(f"/{name}/{key}", data)
        return f"s3://{name}/{key}"

    return config, put, peers.http


class SlowServer(LocalHTTPServer):
    """The local http server, sending each body in 64 KiB pieces with a pause between them (so
    a read-ahead is still coming when its file closes), noting the client connection (port)
    of every request and whether each body was sent to its end."""

    def __init__(self) -> None:
        super().__init__()
        self.pause = 0.005
        self.peers: set[int] = set()
        self.started = self.completed = 0
        self.events: list[tuple[str, str | None]] = []  # ("start" | "end", Range)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        answer = await super()._handle(request)
        if request.transport is not None:
            self.peers.add(request.transport.get_extra_info("peername")[1])
        if request.method != "GET" or not isinstance(answer, web.Response) or not answer.body:
            return answer
        body = bytes(answer.body)  # type: ignore[arg-type]
        stream = web.StreamResponse(status=answer.status, headers=answer.headers)
        stream.content_length = len(body)
        self.started += 1
        self.events.append(("start", request.headers.get("Range")))
        await stream.prepare(request)
        for i in range(0, len(body), 1 << 16):
            await stream.write(body[i:i + (1 << 16)])
            await asyncio.sleep(self.pause)
        await stream.write_eof()
        self.completed += 1
        self.events.append(("end", request.headers.get("Range")))
        return stream


@pytest.fixture(scope="module")
def slow_server():
    with SlowServer() as server:
        for i in range(12):
            server.put(f"/slow/obj-{i}.bin", os.urandom(4 * MiB))
        config = {"platform": {"aws": {"endpoint_url": server.url, "region": "us-east-1"}}}
        yield server, config, [f"s3://slow/obj-{i}.bin" for i in range(12)]


def of(uri: str, requests: list[Any]) -> list[Any]:
    path = "/" + uri.removeprefix("s3://")
    return [r for r in requests if r.path == path]


def span(request: Any, size: int) -> tuple[int, int]:
    value = request.headers.get("Range")
    if not value:
        return 0, size
    first, _, last = value.removeprefix("bytes=").partition("-")
    if not first:
        return max(size - int(last), 0), size
    return int(first), min(int(last) + 1 if last else size, size)


def asked(requests: list[Any], size: int) -> int:
    return sum(e - s for s, e in (span(r, size) for r in requests
                                  if r.method == "GET" and r.status != 304))


def archive(members: int = 200, seed: int = 7) -> tuple[bytes, dict[str, bytes]]:
    import random

    rng = random.Random(seed)
    files = {f"m{i:04d}.bin": rng.randbytes(rng.randint(2_000, 40_000)) for i in range(members)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue(), files


# --------------------------------------------------------------------------- reuse


def test_a_second_pass_over_the_same_blocks_makes_no_request(s3):
    fs, put, storage = s3
    data, files = archive()
    uri = put("a.zip", data)
    picks = sorted(files)[::7]
    with fs.open(uri) as f, zipfile.ZipFile(f) as z:
        assert all(z.read(name) == files[name] for name in picks)
        first = len(of(uri, storage.requests))
        assert all(z.read(name) == files[name] for name in picks)
        assert f.requests == first
    assert len(of(uri, storage.requests)) == first > 0
    needed = sum(len(files[n]) + 40 for n in picks)  # header + name + data of each member
    # Random access fetches about what it needs (the central directory comes with the tail).
    assert asked(of(uri, storage.requests), len(data)) <= 1.1 * needed + 64 * 1024


def test_another_handle_and_a_reopening_reuse_the_blocks_after_one_conditional_request(s3):
    fs, put, storage = s3
    data, files = archive(seed=8)
    uri = put("b.zip", data)
    picks = sorted(files)[::5]
    with fs.open(uri) as f, zipfile.ZipFile(f) as z:
        assert all(z.read(name) == files[name] for name in picks)
    storage.clear_requests()
    for _ in range(2):  # a reopening, then another
        with fs.open(uri) as f, zipfile.ZipFile(f) as z:
            assert all(z.read(name) == files[name] for name in picks)
    again = of(uri, storage.requests)
    # Each new handle asks once whether the object is still the version cached: 304, no bytes.
    assert [(r.method, r.status) for r in again] == [("GET", 304), ("GET", 304)]
    assert all(r.headers.get("If-None-Match") for r in again)


def test_several_handles_at_once_share_what_each_fetched(s3):
    fs, put, storage = s3
    data = os.urandom(3 * MiB)
    uri = put("shared.bin", data)
    a, b = fs.open(uri), fs.open(uri)
    a.seek(MiB)
    assert a.read(100_000) == data[MiB:MiB + 100_000]
    before = len(of(uri, storage.requests))
    b.seek(MiB + 10)
    assert b.read(50_000) == data[MiB + 10:MiB + 50_010]  # held: one 304, no bytes
    b.seek(2 * MiB)
    assert b.read(1000) == data[2 * MiB:2 * MiB + 1000]
    a.seek(2 * MiB)
    assert a.read(1000) == data[2 * MiB:2 * MiB + 1000]  # b fetched it
    later = of(uri, storage.requests)[before:]
    assert [r.status for r in later] == [304, 206]
    a.close()
    b.close()


# --------------------------------------------------------------------------- versions


def test_a_replaced_object_is_read_fresh_by_a_new_handle_and_never_from_stale_blocks(s3, peers,
                                                                                      bucket):
    fs, put, storage = s3
    old, new = os.urandom(2 * MiB), os.urandom(2 * MiB)
    uri = put("changing.bin", old)
    key = uri.split("/", 3)[3]
    f = fs.open(uri)
    f.seek(100_000)
    assert f.read(200_000) == old[100_000:300_000]
    peers.put_s3(bucket, key, new)
    # The old handle: what it holds is of its version; anything else is refused.
    f.seek(100_000)
    assert f.read(1000) == old[100_000:101_000]
    f.seek(MiB)
    with pytest.raises(attachfs.IntegrityError):
        f.read(1000)
    f.close()
    # A new handle over the same range: the conditional request says the object changed, and
    # its answer carries the new bytes; the old blocks are gone.
    with fs.open(uri) as g:
        g.seek(100_000)
        assert g.read(200_000) == new[100_000:300_000]
        g.seek(150_000)
        assert g.read(10) == new[150_000:150_010]
    cache = _blocks.shared()
    held = [k for k in cache._objects if k[2] == uri]  # noqa: SLF001 - white-box check
    assert len(held) == 1
    assert cache.current(held[0])[0] != f.version


def test_tenant_b_never_gets_tenant_a_blocks(peers):
    peers.http.clear()
    url = f"{peers.http.url}/shared/report.bin"
    data = os.urandom(200_000)
    peers.http.put("/shared/report.bin", data)
    cfg = {"platform": {"http": {"allow_private_networks": True}}, "tenants": {"a": {}, "b": {}}}
    fs_a = attachfs.filesystem(tenant="a", config=cfg, skip_instance_cache=True)
    fs_b = attachfs.filesystem(tenant="b", config=cfg, skip_instance_cache=True)
    with fs_a.open(url) as f:
        assert f.read() == data
    before = [r for r in peers.http.requests if r.method == "GET"]
    with fs_b.open(url) as f:
        assert f.read() == data
    after = [r for r in peers.http.requests if r.method == "GET"][len(before):]
    # b fetched for itself, unconditionally: nothing of a's was offered to it.
    assert len(after) == 1 and "If-None-Match" not in after[0].headers
    with fs_a.open(url) as f:  # and a still has its own
        assert f.read() == data


def test_the_disk_cache_keeps_aligned_blocks_of_a_large_object(http, tmp_path):
    config, put, server = http
    data = os.urandom(6 * MiB)
    uri = put("big.bin", data)
    cfg = dict(config, cache={"directory": str(tmp_path / "c"), "max_bytes": 64 * MiB})
    offsets = [int(4.5 * MiB), int(1.2 * MiB), int(3.1 * MiB)]

    def reads() -> Any:
        fs = attachfs.filesystem(config=cfg, skip_instance_cache=True)
        with fs.open(uri) as f:
            assert f.read(10) == data[:10]
            for off in offsets:
                f.seek(off)
                assert f.read(5000) == data[off:off + 5000]
        return fs

    server.clear_requests()
    fs = reads()
    fetched = [span(r, len(data)) for r in server.requests]
    assert fetched == [(0, MiB), (4 * MiB, 5 * MiB), (MiB, 2 * MiB), (3 * MiB, 4 * MiB)]
    assert fs.cache.stats()["entries"] == 4
    # Another process (no block cache): its first request tells the version; the rest is disk.
    _blocks.shared().clear()
    server.clear_requests()
    reads()
    assert [span(r, len(data)) for r in server.requests] == [(0, MiB)]


# --------------------------------------------------------------------------- first requests


def test_seek_then_read_on_a_new_file_is_one_request(http):
    config, put, server = http
    data = os.urandom(8 * MiB)
    uri = put("seek.bin", data)
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    server.clear_requests()
    with fs.open(uri) as f:
        f.seek(5 * MiB)
        assert f.read(1000) == data[5 * MiB:5 * MiB + 1000]
        assert f.size == len(data)  # the Content-Range told it
    assert [(r.method, r.headers.get("Range")) for r in server.requests] == [
        ("GET", f"bytes={5 * MiB}-{5 * MiB + 999}")]


def test_sequential_reads_start_their_read_ahead_at_the_size_of_the_reads(http):
    config, put, server = http
    data = os.urandom(24 * MiB)
    uri = put("seq.bin", data)
    # Each fetch one GET (parts_in_flight = 1): the file's fetches are what is counted here.
    fs = attachfs.filesystem(config={**config, "limits": {"parts_in_flight": 1}},
                             skip_instance_cache=True)
    server.clear_requests()
    chunks = []
    with fs.open(uri) as f:
        while chunk := f.read(MiB):
            chunks.append(chunk)
    assert b"".join(chunks) == data
    spans = sorted(span(r, len(data)) for r in server.requests)
    # The first read, the second (now a stream), then read-ahead starting at one read's size
    # and growing: never a small read-ahead behind a blocking request per read.
    assert spans[:3] == [(0, MiB), (MiB, 2 * MiB), (2 * MiB, 3 * MiB)]
    assert len(spans) <= 7
    assert sum(e - s for s, e in spans) == len(data)


def test_a_small_read_from_the_start_fetches_no_minimum_of_64_kib(http):
    config, put, server = http
    uri = put("small-read.bin", os.urandom(4 * MiB))
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    server.clear_requests()
    with fs.open(uri) as f:
        f.read(1024)
    (request,) = server.requests
    s, e = span(request, 4 * MiB)
    assert e - s <= 16 * 1024


# --------------------------------------------------------------------------- info


def test_info_makes_no_head_and_the_footer_read_after_it_costs_nothing(s3):
    fs, put, storage = s3
    data = os.urandom(500_000)
    uri = put("t.parquet", data)
    for _ in range(3):  # pandas and pyarrow ask three times
        info = fs.info(uri)
    assert info["size"] == len(data) and info["type"] == "file" and info["name"] == uri
    assert info["ETag"].strip('"') and info["LastModified"].year > 2000
    with fs.open(uri) as f:
        f.seek(-8, io.SEEK_END)
        assert f.read(8) == data[-8:]
        f.seek(-65536, io.SEEK_END)
        assert f.read() == data[-65536:]
    requests = of(uri, storage.requests)
    assert [(r.method, r.headers.get("Range")) for r in requests] == [("GET", "bytes=-65536")]


def test_info_makes_no_metadata_request_on_gcs_or_azure():
    from fakes.strict_azure import StrictAzure
    from fakes.strict_gcs import StrictGcs

    data = os.urandom(100_000)
    with StrictGcs() as gcs:
        revision = gcs.put("blk-gcs", "o.bin", data)
        cfg = {"platform": {"gcp": {"endpoint_url": gcs.url, "credentials": "anonymous"}}}
        info = attachfs.filesystem(config=cfg, skip_instance_cache=True).info(
            "gs://blk-gcs/o.bin")
        assert (info["size"], info["generation"]) == (len(data), str(revision.generation))
        assert [(r.method, r.query.get("alt"), r.headers.get("Range"))
                for r in gcs.requests] == [("GET", "media", "bytes=-65536")]
    with StrictAzure() as azure:
        azure.container("blkacct", "cont", public=True)
        azure.put("blkacct", "cont", "o.bin", data)
        cfg = {"platform": {"azure": {"endpoint_url": f"{azure.url}/{{account}}"}},
               "tenants": {"globex": {}}}
        info = attachfs.filesystem(tenant="globex", config=cfg, skip_instance_cache=True).info(
            "https://blkacct.blob.core.windows.net/cont/o.bin")
        assert info["size"] == len(data) and info["etag"]
        # Azure Blob has no suffix ranges: the head instead.
        assert [(r.method, r.headers.get("x-ms-range")) for r in azure.requests] == [
            ("GET", "bytes=0-65535")]


def test_info_with_refresh_asks_again(s3):
    fs, put, storage = s3
    uri = put("r.bin", b"0123456789")
    assert fs.info(uri)["size"] == 10
    assert fs.info(uri, refresh=True)["size"] == 10
    assert [r.method for r in of(uri, storage.requests)] == ["GET", "GET"]


def test_info_of_a_prefix_is_a_directory_and_of_a_missing_key_not_found(s3):
    fs, put, storage = s3
    uri = put("dir/inside.txt", b"x")
    prefix = uri.rsplit("/", 1)[0]
    assert fs.info(prefix)["type"] == "directory"
    with pytest.raises(FileNotFoundError):
        fs.info(prefix + "/missing.txt")


def test_read_parquet_fetches_its_column_chunks_together(s3):
    import pandas as pd

    from datasets import random_columns

    fs, put, storage = s3
    frame, data = random_columns(200_000, 10, 20)
    uri = put("table.parquet", data)
    storage.clear_requests()
    storage.delay = 0.02  # requests sent together overlap at the proxy
    options = {"config": fs.config, "tenant": TENANT}
    try:
        got = pd.read_parquet(f"attach::{uri}", columns=["c1", "c7"], storage_options=options)
    finally:
        storage.delay = 0.0
    pd.testing.assert_frame_equal(got, frame[["c1", "c7"]])
    requests = of(uri, storage.requests)
    assert not [r for r in requests if r.method == "HEAD"]
    assert asked(requests, len(data)) <= 0.22 * len(data)
    # The chunks after the first row group were asked for ahead of pyarrow's reads, several at
    # a time: far more of them than the file's reads that had to wait.
    assert storage.in_flight_max >= 4, storage.in_flight_max


# --------------------------------------------------------------------------- cache types


PATTERN = [(0, 100), (200, 100), (int(2.5 * MiB), 100), (0, 100), (3 * MiB - 50, 50)]


def reference_fetches(cache_type: str, data: bytes, block: int,
                      options: dict[str, Any]) -> list[tuple[int, int]]:
    """What fsspec's own cache asks its fetcher for, over ``PATTERN``."""
    calls: list[tuple[int, int]] = []

    def fetcher(start: int, end: int) -> bytes:
        calls.append((start, min(end, len(data))))
        return data[start:end]

    cache = fsspec.caching.caches[cache_type](block, fetcher, len(data), **options)
    for start, n in PATTERN:
        assert cache._fetch(start, start + n) == data[start:start + n]
    getattr(cache, "close", lambda: None)()
    return [c for c in calls if c[1] > c[0]]


@pytest.mark.parametrize("cache_type", ["none", "readahead", "bytes", "blockcache", "first",
                                        "all", "mmap", "parts"])
def test_each_fsspec_cache_type_fetches_what_fsspec_defines(http, cache_type):
    config, put, server = http
    data = os.urandom(3 * MiB)
    uri = put(f"ct-{cache_type}.bin", data)
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    block = MiB
    def options() -> dict[str, Any]:  # "parts" consumes the dict of parts it is given
        return {"data": {(0, len(data)): data}} if cache_type == "parts" else {}

    expected = reference_fetches(cache_type, data, block, options())
    server.clear_requests()
    with fs.open(uri, block_size=block, cache_type=cache_type, cache_options=options()) as f:
        for start, n in PATTERN:
            f.seek(start)
            assert f.read(n) == data[start:start + n]
        assert f.cache is not None and type(f.cache) is fsspec.caching.caches[cache_type]
    got = [span(r, len(data)) for r in server.requests]
    if cache_type == "parts":  # the parts given answer everything: no request but the first
        assert len(got) <= 1
        return
    # The first request also learns the size: it covers what the cache fetches first (and is
    # exactly it for "none"); every later one is the cache's own.
    assert got[1:] == expected[1:], (got, expected)
    assert got[0][0] <= expected[0][0] and got[0][1] >= expected[0][1]
    if cache_type == "none":
        assert got == expected


def test_the_default_reader_keeps_blocks_and_none_keeps_nothing(http):
    config, put, server = http
    data = os.urandom(2 * MiB)
    uri = put("default-vs-none.bin", data)
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    counts: dict[str | None, int] = {}
    for cache_type in ("default", None, "none"):  # None: not given, as fsspec passes it
        _blocks.shared().clear()
        server.clear_requests()
        with fs.open(uri, cache_type=cache_type) as f:
            for _ in range(3):
                f.seek(MiB)
                assert f.read(1000) == data[MiB:MiB + 1000]
        counts[cache_type] = len(server.requests)
    assert counts == {"default": 1, None: 1, "none": 3}


def test_an_unknown_cache_type_or_option_is_refused_naming_the_allowed_ones(http):
    config, put, _ = http
    uri = put("x.bin", b"x")
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    with pytest.raises(ValueError, match="unknown cache_type 'blokcache'") as err:
        fs.open(uri, cache_type="blokcache")
    for name in ("'default'", "'blockcache'", "'readahead'", "'none'", "'all'"):
        assert name in str(err.value)
    with pytest.raises(ValueError, match="max_readahed"):
        fs.open(uri, cache_options={"max_readahed": 1})
    with pytest.raises(ValueError, match="shared"):
        fs.open(uri, cache_options={"shared": "no"})


# --------------------------------------------------------------------------- memory


def test_memory_stays_bounded_with_random_reads_over_many_objects(http):
    config, put, _server = http
    uris = [put(f"many-{i}.bin", bytes([i]) * 16 * MiB) for i in range(12)]
    script = """
import json, os, random, resource, sys
import attachfs
fs = attachfs.filesystem(config=json.loads(sys.argv[1]))
uris = json.loads(sys.argv[2])
rng = random.Random(1)
def rss():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
with fs.open(uris[0]) as f:
    f.read(10)
before = rss()
for uri in uris:
    with fs.open(uri) as f:
        for _ in range(64):  # 64 random 256 KiB reads: all of the object, about
            f.seek(rng.randrange(0, 16 * 2**20 - 2**18))
            assert len(f.read(2**18)) == 2**18
from attachfs import _blocks
print(json.dumps({"grew_kib": rss() - before, "held": _blocks.shared().stats()["bytes"]}))
"""
    env = dict(os.environ, ATTACHFS_BLOCK_CACHE_BYTES=str(32 * MiB))
    out = subprocess.run([sys.executable, "-c", script, json.dumps(config), json.dumps(uris)],
                         capture_output=True, text=True, timeout=300, check=True, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["held"] <= 32 * MiB
    # 192 MiB read at random through a 32 MiB cache: the cache's bound plus one file's own.
    assert result["grew_kib"] < 64 * 1024, result


# --------------------------------------------------------------------------- the pool


def test_closing_a_file_with_readahead_in_flight_keeps_its_connection(slow_server):
    server, config, uris = slow_server
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    with fs.open(uris[0]) as f:  # warm up: the pool's connections
        f.read(256 * 1024)
    server.peers.clear()
    for uri in uris[1:-1]:
        with fs.open(uri) as f:
            for _ in range(3):
                assert len(f.read(256 * 1024)) == 256 * 1024
            assert f._inflight, "read-ahead is in flight at close"  # noqa: SLF001
    with fs.open(uris[-1]) as f:  # the next reads after the last close
        f.seek(2 * MiB)
        f.read(10)
    for _ in range(200):  # the last read-ahead finishes in the background
        if server.completed == server.started:
            break
        time.sleep(0.05)
    # The reads of all ten files were served over a few pooled connections, and every
    # read-ahead was answered to its end.
    assert server.completed == server.started
    assert len(server.peers) <= 4, server.peers


def test_a_read_takes_over_the_read_ahead_it_needs_that_has_not_begun(slow_server, monkeypatch):
    """Read-ahead waits for a place at the file's gate; a read that needs a span whose
    read-ahead is still waiting fetches it itself at once (not behind the read-ahead it does
    not need yet), and that read-ahead then fetches nothing: every span is asked for once."""
    from attachfs import _file

    monkeypatch.setattr(_file, "PREFETCH_CONCURRENCY", 1)
    server, config, uris = slow_server
    uri = uris[-2]
    _blocks.shared().clear()
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    whole = fs.cat_file(uri)
    _blocks.shared().clear()
    ahead = [(1 * MiB, 2 * MiB), (2 * MiB, 3 * MiB), (3 * MiB, 4 * MiB)]
    with fs.open(uri) as f:
        head = f.read(16)
        server.clear_requests()
        server.events.clear()
        f._prefetch(ahead, stream=False)  # noqa: SLF001 - three spans, one at a time
        f.seek(3 * MiB)
        last = f.read(MiB)  # the third: still waiting behind the first two
        taken = [fl for fl in f._inflight if fl.start == 3 * MiB]  # noqa: SLF001
        assert not taken, "the span read now is no longer a read-ahead in flight"
        f.seek(MiB)
        first = f.read(2 * MiB)  # the first two, from their read-ahead
    assert (head, first, last) == (whole[:16], whole[MiB:3 * MiB], whole[3 * MiB:])
    asked_for = sorted(span(r, 4 * MiB) for r in of(uri, server.requests)
                       if r.method == "GET")
    assert asked_for == ahead, asked_for
    # The gate lets one read-ahead go at a time; the span taken over went beside the first
    # (the second waited for the gate), not after it.
    order = server.events
    assert order.index(("start", "bytes=3145728-4194303")) < order.index(
        ("end", "bytes=1048576-2097151")), order


def test_a_streams_windows_never_land_in_the_shared_cache_however_far_behind_they_are(http):
    """A stream of a large object keeps only its windows, dropped as it passes, whether its
    read-ahead kept up or the reads caught up with windows not begun yet (here the loop that
    fetches ahead is held up before every read): those are waited for, not taken over by the
    reads, which would keep the bytes they fetched as a random read's are, in the shared
    cache."""
    config, put, _ = http
    data = os.urandom(48 * MiB)  # past an eighth of the shared cache: a stream's is its own
    uri = put("stream.bin", data)
    _blocks.shared().clear()
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    got = []
    with fs.open(uri) as f:
        while True:
            fs.loop.call_soon_threadsafe(time.sleep, 0.05)  # the windows asked for wait
            chunk = f.read(8 * MiB)
            if not chunk:
                break
            got.append(chunk)
            # At most the two reads before the stream showed (each a random read then),
            # never a window.
            assert _blocks.shared().stats()["bytes"] <= 16 * MiB
    assert b"".join(got) == data


@pytest.mark.parametrize("value", ["128MB", "-1", "1e6"])
def test_a_bad_block_cache_bound_is_an_error_that_names_the_variable(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from attachfs import _blocks

    monkeypatch.setenv(_blocks.ENV, value)
    with pytest.raises(ValueError, match="ATTACHFS_BLOCK_CACHE_BYTES must be"):
        _blocks._configured_bytes()
    monkeypatch.setenv(_blocks.ENV, " 4096 ")
    assert _blocks._configured_bytes() == 4096
