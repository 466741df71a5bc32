"""xarray with h5netcdf over attachfs: the data is right, and what it costs on the wire.

HDF5 reads its metadata in many small pieces scattered over the file (superblock and object
headers near the head, B-tree nodes and heaps wherever the writer put them), then each chunk it
needs. A file-like that fetches each small read as its own ranged GET pays one round trip per
piece and fetches the head and the tail again for every variable it touches. The block cache
must make that pattern cheap.

The file: a 3.2 MB netCDF-4 file, one float32 variable in 80 uncompressed chunks of 40 KB
(tests/datasets.py). Every request to S3 goes through a recording proxy; a GET's cost is its
Range (the whole object without one).

The targets below are what the block cache must reach; each failing assertion prints the
numbers measured in that run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import attachfs
import datasets
from fakes.authz_proxy import AuthorizingProxy

pytestmark = pytest.mark.peers

xr = pytest.importorskip("xarray")
pytest.importorskip("h5netcdf")

TENANT = "acme"
SLICE = slice(10, 12)  # two of the 80 chunks along time
SLICE_BYTES = 2 * datasets.NC_CHUNK_BYTES

# What the block cache must reach (see the module docstring).
# Measured on the first version (tests/test_netcdf_requests.py, moto behind the proxy):
#   open + slice:          6 GETs,   395,456 bytes (57,344 re-fetched: the head, again)
#   open + same slice x2: 10 GETs,   723,136 bytes (319,488 re-fetched)
#   open + full read:     12 GETs, 3,407,360 bytes (187,520 re-fetched), 1.06x the file
# The head (64 KiB), the tail (2 KiB), one B-tree block and the two chunks are 5 ranges.
SLICE_MAX_GETS = 5
SLICE_MAX_BYTES_FACTOR = 4  # bytes fetched for open + slice <= 4x the two chunks' bytes
# A full read's large windows go as parallel ranged GETs where the link is slow (moto is): the
# count allows a few parts; the bytes are the real bound.
FULL_MAX_GETS = 14
FULL_MAX_BYTES_FACTOR = 1.05  # a full read fetches the file about once


@dataclass
class Cost:
    """What the readers asked S3 for, counted at the recording proxy."""

    gets: int
    bytes: int
    refetched: int  # bytes asked for more than once
    heads: int

    def __str__(self) -> str:
        return (f"{self.gets} GETs, {self.bytes:,} bytes asked for "
                f"({self.refetched:,} of them already fetched before), {self.heads} HEADs")


def cost(storage: AuthorizingProxy, uri: str, size: int) -> Cost:
    path = "/" + uri.removeprefix("s3://")
    gets = heads = total = 0
    seen = np.zeros(size, dtype=np.int32)
    for r in storage.requests:
        if r.path != path:
            continue
        if r.method == "HEAD":
            heads += 1
            continue
        if r.method != "GET":
            continue
        gets += 1
        span = r.headers.get("Range")
        if span:
            first, _, last = span.removeprefix("bytes=").partition("-")
            if not first:  # a suffix range: the last N bytes
                start, end = max(size - int(last), 0), size
            else:
                start, end = int(first), min(int(last) + 1 if last else size, size)
        else:
            start, end = 0, size
        total += end - start
        seen[start:end] += 1
    refetched = int(np.clip(seen - 1, 0, None).sum())
    return Cost(gets, total, refetched, heads)


@pytest.fixture(scope="module")
def netcdf_file(peers) -> dict[str, Any]:
    bucket = f"nc-{uuid.uuid4().hex[:12]}"
    peers.make_s3_bucket(bucket)
    return {"bucket": bucket, "data": datasets.netcdf_bytes()}


@pytest.fixture
def netcdf(peers, netcdf_file) -> dict[str, Any]:
    """The file under a key of this test's own: a read-ahead still in flight from an earlier
    test's file must not be counted against this one."""
    bucket, data = netcdf_file["bucket"], netcdf_file["data"]
    key = f"climate/{uuid.uuid4().hex[:8]}/t.nc"
    peers.put_s3(bucket, key, data)
    return {"bucket": bucket, "size": len(data), "uri": f"s3://{bucket}/{key}"}


@pytest.fixture(scope="module")
def storage(peers) -> Any:
    with AuthorizingProxy(peers.s3_endpoint, preserve_host=True) as proxy:
        yield proxy


@pytest.fixture
def fs(peers, netcdf, storage) -> Any:
    cfg = peers.config()
    cfg["platform"]["aws"]["endpoint_url"] = storage.url
    cfg["tenants"] = {TENANT: {"direct": [f"s3://{netcdf['bucket']}"]}}
    storage.clear_requests()
    return attachfs.filesystem(tenant=TENANT, config=cfg, skip_instance_cache=True)


def test_the_file_has_the_shape_of_the_case(netcdf):
    assert 3_000_000 < netcdf["size"] < 3_400_000
    assert datasets.NC_SHAPE[0] == 80 and SLICE_BYTES == 80_000


def test_full_read_gives_the_data(fs, netcdf):
    with fs.open(netcdf["uri"]) as f, xr.open_dataset(f, engine="h5netcdf") as ds:
        values = ds["t"].values
        assert ds["t"].attrs["units"] == "K"
    np.testing.assert_array_equal(values, datasets.temperature())


def test_slice_gives_the_data(fs, netcdf):
    with fs.open(netcdf["uri"]) as f, xr.open_dataset(f, engine="h5netcdf") as ds:
        values = ds["t"][SLICE].values
    np.testing.assert_array_equal(values, datasets.temperature()[SLICE])


def test_full_read_costs_about_the_file_once(fs, netcdf, storage):
    """Full read: open the dataset and load every chunk of ``t``."""
    with fs.open(netcdf["uri"]) as f, xr.open_dataset(f, engine="h5netcdf") as ds:
        ds["t"].load()
    spent = cost(storage, netcdf["uri"], netcdf["size"])
    assert spent.gets <= FULL_MAX_GETS and spent.bytes <= FULL_MAX_BYTES_FACTOR * netcdf["size"], (
        f"full read of a {netcdf['size']:,}-byte netCDF: {spent}; target: at most "
        f"{FULL_MAX_GETS} GETs and {FULL_MAX_BYTES_FACTOR}x the file")


def test_slice_of_two_chunks_is_cheap(fs, netcdf, storage):
    """Slice: open the dataset and read 2 of its 80 chunks (80,000 bytes of data)."""
    with fs.open(netcdf["uri"]) as f, xr.open_dataset(f, engine="h5netcdf") as ds:
        ds["t"][SLICE].load()
    spent = cost(storage, netcdf["uri"], netcdf["size"])
    limit = SLICE_MAX_BYTES_FACTOR * SLICE_BYTES
    assert spent.gets <= SLICE_MAX_GETS and spent.bytes <= limit, (
        f"open + a slice touching 2 of 80 chunks ({SLICE_BYTES:,} bytes): {spent}; target: "
        f"at most {SLICE_MAX_GETS} GETs and {limit:,} bytes ({SLICE_MAX_BYTES_FACTOR}x the data)")


def test_nothing_is_fetched_twice_within_one_open_file(fs, netcdf, storage):
    """Slice again, counting re-fetches: bytes already fetched by this open file must come
    from its block cache, not another GET."""
    with fs.open(netcdf["uri"]) as f, xr.open_dataset(f, engine="h5netcdf") as ds:
        ds["t"][SLICE].load()
        ds["t"][SLICE].load()
    spent = cost(storage, netcdf["uri"], netcdf["size"])
    assert spent.refetched == 0, f"open + the same slice twice: {spent}"
