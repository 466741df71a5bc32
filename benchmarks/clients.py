"""Each library's way of doing what a case measures, through its own public API.

Every client reads ``{endpoint}/{bucket}/{key}`` from nginx. Every signing client signs with
real keys (the worker's ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``; nginx checks nothing):
none is configured anonymous or unsigned, so signing costs what it costs in production.

One object per library, built once in the worker (outside the timed region): clients,
sessions, thread pools and event loops are set up as an application would keep them.

- ``sequential(key, chunk)``: open the object and ``read(chunk)`` until the end; bytes read.
- ``batch(keys)``: every object of ``keys`` through the library's best concurrent API; bytes.
- ``small_open(key, n)``: open, ``read(n)``, close; the bytes.
- ``parquet(key, columns)``: ``pandas.read_parquet`` of ``columns``; the DataFrame.
- ``open_random(key)``: a seekable binary file over the object, as the library gives one to
  zipfile, tarfile, pyarrow.parquet and h5py (case f); closed by the caller.

Variants of one library (``attachfs cache_type=blockcache``, ``obstore get_range x8``) are
subclasses with their own ``name``; the report compares attachfs with the best *peer* of each
case, which leaves out raw aiohttp and its variants (they are floors, not libraries) and
attachfs's own variants.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

REGION = "us-east-1"


class Client:
    name = ""
    #: the API each case uses, as shown in the report
    apis: dict[str, str] = {}

    def __init__(self, endpoint: str, bucket: str, *, threads: int, connections: int,
                 sizes: dict[str, int], config: dict | None = None, tenant: str | None = None):
        self.endpoint = endpoint
        self.bucket = bucket
        self.threads = threads
        self.connections = connections
        self.sizes = sizes   # key -> size, for clients that need it (raw aiohttp)
        self.config = config
        self.tenant = tenant
        self.key_id = os.environ["AWS_ACCESS_KEY_ID"]
        self.secret = os.environ["AWS_SECRET_ACCESS_KEY"]
        self.setup()

    def setup(self) -> None:
        pass

    def close(self) -> None:
        pass

    def reset(self) -> None:
        """Forget what earlier repetitions read (untimed, before each repetition): every
        repetition of a case starts cold, whatever the library keeps in memory."""

    def sequential(self, key: str, chunk: int) -> int:
        raise NotImplementedError

    def batch(self, keys: list[str]) -> int:
        raise NotImplementedError

    def small_open(self, key: str, n: int) -> bytes:
        raise NotImplementedError

    def parquet(self, key: str, columns: list[str]):
        raise NotImplementedError

    def open_random(self, key: str) -> Any:
        raise NotImplementedError

    def url(self, key: str) -> str:
        return f"{self.endpoint}/{self.bucket}/{key}"

    def s3_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def _read_all(f, chunk: int) -> int:
    n = 0
    while True:
        data = f.read(chunk)
        if not data:
            return n
        n += len(data)


# --------------------------------------------------------------------------- raw aiohttp

class FsspecClient(Client):
    """The fsspec-shaped libraries (attachfs, s3fs, obstore's adapter): one way to read,
    each with its own ``path`` for a key."""

    fs: Any

    def path(self, key: str) -> str:
        raise NotImplementedError

    def sequential(self, key: str, chunk: int) -> int:
        with self.fs.open(self.path(key), "rb") as f:
            return _read_all(f, chunk)

    def batch(self, keys: list[str]) -> int:
        return sum(map(len, self.fs.cat([self.path(k) for k in keys]).values()))

    def small_open(self, key: str, n: int) -> bytes:
        with self.fs.open(self.path(key), "rb") as f:
            return f.read(n)

    #: extra ``fs.open`` arguments (a variant's cache_type)
    open_kwargs: dict[str, Any] = {}

    def open_random(self, key: str) -> Any:
        return self.fs.open(self.path(key), "rb", **self.open_kwargs)


class RawAiohttp(Client):
    """The floor: plain GETs over one aiohttp session, no signing, no HEAD, no buffering."""

    name = "raw aiohttp"
    apis = {"a": "GET + content.readexactly(8 MiB), read_bufsize=8 MiB",
            "b": "asyncio.gather, TCPConnector(limit=connections)",
            "c": "GET Range: bytes=0-1023",
            "d": "footer + the 2 columns' chunks, gathered (I/O only, no decoding)",
            "f": "exactly the ranges the reader needs, gathered (I/O only)"}

    def setup(self) -> None:
        import aiohttp

        self.loop = asyncio.new_event_loop()

        async def make():
            # read_bufsize: let a response buffer a whole 8 MiB read (aiohttp's 64 KiB default
            # pauses the socket ~128 times per read(8 MiB) and halves sequential throughput).
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections), auto_decompress=False,
                read_bufsize=8 * 2**20)

        self.session = self.loop.run_until_complete(make())

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()

    def headers(self, url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return dict(extra or {})

    async def _get(self, url: str, range_: str | None = None) -> bytes:
        extra = {"Range": range_} if range_ else None
        async with self.session.get(url, headers=self.headers(url, extra)) as resp:
            resp.raise_for_status()
            return await resp.read()

    def sequential(self, key: str, chunk: int) -> int:
        async def run():
            url = self.url(key)
            async with self.session.get(url, headers=self.headers(url)) as resp:
                resp.raise_for_status()
                left = int(resp.headers["Content-Length"])
                n = 0
                while left:
                    data = await resp.content.readexactly(min(chunk, left))
                    left -= len(data)
                    n += len(data)
                return n

        return self.loop.run_until_complete(run())

    def batch(self, keys: list[str]) -> int:
        async def run():
            parts = await asyncio.gather(*(self._get(self.url(k)) for k in keys))
            return sum(map(len, parts))

        return self.loop.run_until_complete(run())

    def small_open(self, key: str, n: int) -> bytes:
        return self.loop.run_until_complete(self._get(self.url(key), f"bytes=0-{n - 1}"))

    def parquet_floor(self, key: str, ranges: list[list[int]], footer: int) -> int:
        """The bytes a reader of the columns cannot avoid: the footer first, then the chunks."""
        async def run():
            url = self.url(key)
            head = await self._get(url, f"bytes=-{footer}")
            parts = await asyncio.gather(*(self._get(url, f"bytes={s}-{e - 1}")
                                           for s, e in ranges))
            return len(head) + sum(map(len, parts))

        return self.loop.run_until_complete(run())

    def fetch_ranges(self, key: str, ranges: list[list[int]]) -> int:
        """Exactly ``ranges`` ([start, end) each), gathered: the I/O floor of a random read."""
        async def run():
            url = self.url(key)
            parts = await asyncio.gather(*(self._get(url, f"bytes={s}-{e - 1}")
                                           for s, e in ranges))
            return sum(map(len, parts))

        return self.loop.run_until_complete(run())


class RawRanges(RawAiohttp):
    """What parallel ranged GETs give on a link that caps each connection: ``parallel``
    ranges of ``chunk`` in flight, handed out in order, memory bounded by their product."""

    name = "raw aiohttp, 8 ranges"
    parallel = 8
    apis = {"a": "8 ranged GETs of 8 MiB in flight, in order (asyncio, one session)",
            "ea": "8 ranged GETs of 8 MiB in flight, in order (asyncio, one session)"}

    def sequential(self, key: str, chunk: int) -> int:
        size = self.sizes[key]

        async def run():
            url = self.url(key)
            starts = iter(range(0, size, chunk))
            window: list[asyncio.Task] = []

            def more():
                for start in starts:
                    end = min(start + chunk, size) - 1
                    window.append(asyncio.ensure_future(self._get(url, f"bytes={start}-{end}")))
                    if len(window) >= self.parallel:
                        return

            n = 0
            more()
            while window:
                data = await window.pop(0)
                n += len(data)
                more()
            return n

        return self.loop.run_until_complete(run())


class SignedAiohttp(RawAiohttp):
    """raw aiohttp plus botocore's SigV4 signer on every request: what signing alone costs."""

    name = "aiohttp + SigV4"
    apis = {"b": "as raw aiohttp, each request signed by botocore S3SigV4Auth",
            "c": "as raw aiohttp, signed by botocore S3SigV4Auth"}

    def setup(self) -> None:
        from botocore.auth import S3SigV4Auth
        from botocore.credentials import Credentials

        super().setup()
        self._signer = S3SigV4Auth(Credentials(self.key_id, self.secret), "s3", REGION)

    def headers(self, url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method="GET", url=url, headers=dict(extra or {}))
        self._signer.add_auth(request)
        return dict(request.headers.items())


# --------------------------------------------------------------------------- attachfs

class Attachfs(FsspecClient):
    name = "attachfs"
    apis = {"a": "fs.open(uri).read(8 MiB)", "b": "fs.cat(list)",
            "c": "fs.open(uri).read(1024)",
            "d": 'pd.read_parquet("attach::s3://...", storage_options={"config": cfg})',
            "f": "fs.open(uri) (its default reader)",
            "g": "fs.cat(list), tenant with an AWS integration (AssumeRole via moto STS)"}

    def setup(self) -> None:
        import attachfs

        self.fs = attachfs.filesystem(tenant=self.tenant, config=self.config)

    def reset(self) -> None:
        # The shared block cache (and the sizes and versions it learnt) would otherwise serve
        # a repeated case from memory.
        from attachfs import _blocks

        _blocks.shared().clear()

    def path(self, key: str) -> str:
        return self.s3_uri(key)

    def parquet(self, key: str, columns: list[str]):
        import pandas as pd

        options: dict[str, Any] = {"config": self.config}
        if self.tenant:
            options["tenant"] = self.tenant
        return pd.read_parquet(f"attach::{self.s3_uri(key)}", columns=columns,
                               storage_options=options)


class AttachfsObstore(Attachfs):
    """attachfs with obstore as the data plane of its S3 requests (benchmarks/obstore_plane.py):
    the transport that was measured against attachfs's own and not kept. Runs only when named
    in ``--libs``."""

    name = "attachfs via obstore"
    apis = {case: f"{api} (S3 GETs by obstore get_async)" for case, api in Attachfs.apis.items()}

    def setup(self) -> None:
        from .obstore_plane import install

        install()
        super().setup()


class AttachfsBlockcache(Attachfs):
    name = "attachfs cache_type=blockcache"
    open_kwargs = {"cache_type": "blockcache"}
    apis = {"f": 'fs.open(uri, cache_type="blockcache")'}


class AttachfsReadahead(Attachfs):
    name = "attachfs cache_type=readahead"
    open_kwargs = {"cache_type": "readahead"}
    apis = {"f": 'fs.open(uri, cache_type="readahead")'}


# --------------------------------------------------------------------------- s3fs

class S3fs(FsspecClient):
    name = "s3fs"
    apis = {"a": "fs.open(path).read(8 MiB) (default block size, readahead)",
            "b": "fs.cat(list)", "c": "fs.open(path).read(1024)",
            "d": 'pd.read_parquet("s3://...", storage_options=...)',
            "f": "fs.open(path) (default cache: readahead, 50 MiB blocks)"}

    def options(self) -> dict[str, Any]:
        return {"key": self.key_id, "secret": self.secret, "endpoint_url": self.endpoint,
                "client_kwargs": {"region_name": REGION}}

    def setup(self) -> None:
        import s3fs

        self.fs = s3fs.S3FileSystem(**self.options())

    def path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def parquet(self, key: str, columns: list[str]):
        import pandas as pd

        return pd.read_parquet(self.s3_uri(key), columns=columns, storage_options=self.options())


# --------------------------------------------------------------------------- obstore

def _s3store(client: Client):
    from obstore.store import S3Store

    return S3Store(client.bucket, endpoint=client.endpoint, region=REGION,
                   access_key_id=client.key_id, secret_access_key=client.secret,
                   virtual_hosted_style_request=False, client_options={"allow_http": True})


class Obstore(Client):
    """obstore's native API, each case through what its docs recommend for it."""

    name = "obstore"
    apis = {"a": "get_async(...).stream(min_chunk_size=8 MiB) (docs: get for sequential scans)",
            "b": "asyncio.gather(get_async(...).bytes_async())",
            "c": "open_reader(store, key).read(1024)",
            "f": "obstore.open_reader(store, key) (1 MiB buffer)"}

    def setup(self) -> None:
        self.store = _s3store(self)
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def sequential(self, key: str, chunk: int) -> int:
        import obstore

        async def run():
            resp = await obstore.get_async(self.store, key)
            n = 0
            async for part in resp.stream(min_chunk_size=chunk):
                n += len(part)
            return n

        return self.loop.run_until_complete(run())

    def batch(self, keys: list[str]) -> int:
        import obstore

        async def one(key):
            resp = await obstore.get_async(self.store, key)
            return await resp.bytes_async()

        async def run():
            return sum(map(len, await asyncio.gather(*(one(k) for k in keys))))

        return self.loop.run_until_complete(run())

    def small_open(self, key: str, n: int) -> bytes:
        import obstore

        f = obstore.open_reader(self.store, key)
        try:
            return bytes(f.read(n))
        finally:
            f.close()

    def open_random(self, key: str) -> Any:
        import obstore

        return _BytesReader(obstore.open_reader(self.store, key))


class _BytesReader:
    """obstore's ReadableFile returns Bytes; zipfile, tarfile and h5py want ``bytes``."""

    def __init__(self, f: Any):
        self._f = f

    def read(self, n: int = -1) -> bytes:
        return bytes(self._f.read(n) if n is not None and n >= 0 else self._f.read())

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        memoryview(buf).cast("B")[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()

    @property
    def closed(self) -> bool:
        return False

    def __enter__(self) -> _BytesReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ObstoreRanges(Obstore):
    """obstore's ranged GETs made concurrent by the caller. Its own ``get_ranges`` is not a
    way to do this: it merges ranges less than 1 MiB apart, so contiguous ranges become one
    request on one connection (measured: 8 x 8 MiB contiguous -> one 64 MiB GET)."""

    name = "obstore get_range x8"
    parallel = 8
    apis = {"a": "8 get_range_async(8 MiB) in flight, in order (get_ranges merges them)",
            "ea": "8 get_range_async(8 MiB) in flight, in order (get_ranges merges them)"}

    def sequential(self, key: str, chunk: int) -> int:
        import obstore

        async def run():
            size = (await obstore.head_async(self.store, key))["size"]
            starts = iter(range(0, size, chunk))
            window: list[asyncio.Task] = []

            def more():
                for start in starts:
                    window.append(asyncio.ensure_future(obstore.get_range_async(
                        self.store, key, start=start, end=min(start + chunk, size))))
                    if len(window) >= self.parallel:
                        return

            n = 0
            more()
            while window:
                n += len(await window.pop(0))
                more()
            return n

        return self.loop.run_until_complete(run())


class ObstoreFsspec(FsspecClient):
    name = "obstore.fsspec"
    apis = {"a": "FsspecStore.open(path).read(8 MiB)", "b": "FsspecStore.cat(list)",
            "c": "FsspecStore.open(path).read(1024)",
            "d": "pd.read_parquet(path, filesystem=FsspecStore(...))",
            "f": "FsspecStore.open(path)"}

    def setup(self) -> None:
        from obstore.fsspec import FsspecStore

        self.fs = FsspecStore(
            "s3", config={"endpoint": self.endpoint, "region": REGION,
                          "access_key_id": self.key_id, "secret_access_key": self.secret,
                          "virtual_hosted_style_request": False},
            client_options={"allow_http": True})

    def path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def small_open(self, key: str, n: int) -> bytes:
        with self.fs.open(self.path(key), "rb") as f:
            return bytes(f.read(n))

    def parquet(self, key: str, columns: list[str]):
        import pandas as pd

        return pd.read_parquet(self.path(key), columns=columns, filesystem=self.fs)


# --------------------------------------------------------------------------- boto3, smart_open

class Boto3(Client):
    name = "boto3"
    apis = {"a": "get_object()['Body'].read(8 MiB)",
            "b": "ThreadPoolExecutor(threads): get_object()['Body'].read()",
            "c": "get_object(Range='bytes=0-1023')['Body'].read() (no open/HEAD API)"}

    def setup(self) -> None:
        import boto3
        from botocore.config import Config

        self.client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret,
            config=Config(max_pool_connections=self.threads, s3={"addressing_style": "path"}))
        self.pool = ThreadPoolExecutor(self.threads)

    def close(self) -> None:
        self.pool.shutdown()

    def _get(self, key: str, **kwargs) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key, **kwargs)["Body"].read()

    def sequential(self, key: str, chunk: int) -> int:
        body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            return _read_all(body, chunk)
        finally:
            body.close()

    def batch(self, keys: list[str]) -> int:
        return sum(map(len, self.pool.map(self._get, keys)))

    def small_open(self, key: str, n: int) -> bytes:
        return self._get(key, Range=f"bytes=0-{n - 1}")


class SmartOpen(Boto3):
    name = "smart_open"
    apis = {"a": "smart_open.open(uri).read(8 MiB)",
            "b": "ThreadPoolExecutor(threads): smart_open.open(uri).read()",
            "c": "smart_open.open(uri).read(1024)",
            "d": "pd.read_parquet(smart_open.open(uri))",
            "f": "smart_open.open(uri) (seekable: a GET from each seek to the end)"}

    def _open(self, key: str):
        import smart_open

        return smart_open.open(self.s3_uri(key), "rb", compression="disable",
                               transport_params={"client": self.client})

    def _whole(self, key: str) -> bytes:
        with self._open(key) as f:
            return f.read()

    def sequential(self, key: str, chunk: int) -> int:
        with self._open(key) as f:
            return _read_all(f, chunk)

    def batch(self, keys: list[str]) -> int:
        return sum(map(len, self.pool.map(self._whole, keys)))

    def small_open(self, key: str, n: int) -> bytes:
        with self._open(key) as f:
            return f.read(n)

    def parquet(self, key: str, columns: list[str]):
        import pandas as pd

        with self._open(key) as f:
            return pd.read_parquet(f, columns=columns)

    def open_random(self, key: str) -> Any:
        return self._open(key)


class _CountingSink:
    """A write-only, non-seekable destination: s3transfer hands it the parts in order."""

    def __init__(self) -> None:
        self.n = 0

    def write(self, data: bytes) -> int:
        self.n += len(data)
        return len(data)

    def seekable(self) -> bool:
        return False


class Boto3Transfer(Boto3):
    """boto3's managed download (s3transfer): parallel ranged GETs in threads."""

    name = "boto3 download_fileobj"
    apis = {"a": "download_fileobj(sink), TransferConfig defaults (8 MiB parts, 10 threads)",
            "ea": "download_fileobj(sink), TransferConfig defaults (8 MiB parts, 10 threads)"}

    def sequential(self, key: str, chunk: int) -> int:
        sink = _CountingSink()
        self.client.download_fileobj(self.bucket, key, sink)
        return sink.n


# --------------------------------------------------------------------------- pyarrow

class PyarrowS3(Client):
    name = "pyarrow S3FileSystem"
    apis = {"a": "open_input_stream(path).read(8 MiB)",
            "b": "ThreadPoolExecutor(threads): open_input_stream(path).read()",
            "c": "open_input_file(path).read(1024)",
            "d": "pd.read_parquet(path, filesystem=S3FileSystem(...))",
            "f": "S3FileSystem.open_input_file(path)"}

    def setup(self) -> None:
        from pyarrow import fs

        host = self.endpoint.split("://", 1)[1]
        self.fs = fs.S3FileSystem(access_key=self.key_id, secret_key=self.secret,
                                  endpoint_override=host, scheme="http", region=REGION)
        self.pool = ThreadPoolExecutor(self.threads)

    def close(self) -> None:
        self.pool.shutdown()

    def path(self, key: str) -> str:
        return f"{self.bucket}/{key}"

    def _whole(self, key: str) -> int:
        with self.fs.open_input_stream(self.path(key)) as f:
            return len(f.read())

    def sequential(self, key: str, chunk: int) -> int:
        with self.fs.open_input_stream(self.path(key)) as f:
            return _read_all(f, chunk)

    def batch(self, keys: list[str]) -> int:
        return sum(self.pool.map(self._whole, keys))

    def small_open(self, key: str, n: int) -> bytes:
        with self.fs.open_input_file(self.path(key)) as f:
            return f.read(n)

    def parquet(self, key: str, columns: list[str]):
        import pandas as pd

        return pd.read_parquet(self.path(key), columns=columns, filesystem=self.fs)

    def open_random(self, key: str) -> Any:
        return self.fs.open_input_file(self.path(key))


CLIENTS: dict[str, type[Client]] = {c.name: c for c in (
    RawAiohttp, RawRanges, SignedAiohttp, Attachfs, AttachfsObstore, AttachfsBlockcache,
    AttachfsReadahead, S3fs, Obstore, ObstoreRanges, ObstoreFsspec, SmartOpen, PyarrowS3, Boto3,
    Boto3Transfer)}

#: Clients that run only when ``--libs`` names them (the transport comparison).
ON_REQUEST = frozenset({AttachfsObstore.name})

#: Floors, not libraries: never "the best peer".
FLOORS = frozenset({RawAiohttp.name, RawRanges.name, SignedAiohttp.name})

_SEQUENTIAL = ["raw aiohttp", "raw aiohttp, 8 ranges", "attachfs", "attachfs via obstore",
               "s3fs", "obstore",
               "obstore get_range x8", "obstore.fsspec", "smart_open", "pyarrow S3FileSystem",
               "boto3", "boto3 download_fileobj"]
_BATCH = ["raw aiohttp", "aiohttp + SigV4", "attachfs", "attachfs via obstore", "s3fs",
          "obstore", "obstore.fsspec",
          "smart_open", "pyarrow S3FileSystem", "boto3"]
_PARQUET = ["raw aiohttp", "attachfs", "s3fs", "obstore.fsspec", "smart_open",
            "pyarrow S3FileSystem"]

#: Which clients run in which case (the raw client first: every ratio is to it).
#: e* are cases a, b and d again over the cloud-like link (profile e).
CASES: dict[str, list[str]] = {
    "a": _SEQUENTIAL,
    "b": _BATCH,
    "c": ["raw aiohttp", "aiohttp + SigV4", "attachfs", "attachfs via obstore", "s3fs",
          "obstore", "obstore.fsspec",
          "smart_open", "pyarrow S3FileSystem", "boto3"],
    "d": _PARQUET,
    "ea": _SEQUENTIAL,
    "eb": [n for n in _BATCH if n != "aiohttp + SigV4"],
    "ed": _PARQUET,
    "f": ["raw aiohttp", "attachfs", "attachfs cache_type=blockcache",
          "attachfs cache_type=readahead", "s3fs", "obstore", "obstore.fsspec", "smart_open",
          "pyarrow S3FileSystem"],
    "g": ["attachfs"],
}

#: What each case does, as which plain case (the e* cases repeat a, b, d over the link;
#: g is b's batch for a delegated tenant).
BASE_CASE = {"a": "a", "b": "b", "c": "c", "d": "d", "ea": "a", "eb": "b", "ed": "d",
             "f": "f", "g": "b"}


def api(client: type[Client], case: str) -> str:
    return client.apis.get(case) or client.apis.get(BASE_CASE.get(case, case), "")
