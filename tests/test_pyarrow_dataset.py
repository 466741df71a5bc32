"""pyarrow datasets over attachfs: a filter and a column projection give the rows and columns
asked for, and the storage is asked only for what the query needs.

The dataset is hive-partitioned parquet in S3 (moto), read by a tenant that claims the bucket.
Every request to the storage goes through a recording proxy, so the bytes a query costs are
counted on the wire (the Range of each GET): plain http has no listing, so S3 it is. The
yardstick for "only what is needed" is pyarrow's own S3 client running the same query through
the same proxy.
"""

from __future__ import annotations

import io
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import attachfs
from fakes.authz_proxy import AuthorizingProxy

pytestmark = pytest.mark.peers

ROWS = 20_000
ROW_GROUP = 5_000  # four row groups per file, one "day" each
PARTS = [("eu", 0), ("eu", 1), ("us", 0), ("us", 1)]
COLUMNS = ["id", "amount"]
# Keeps one partition of two and one row group of four; two narrow columns of five.
FILTER = (ds.field("region") == "eu") & (ds.field("day") == 2)


def _table(n: int) -> pa.Table:
    rng = np.random.default_rng(n)
    row = np.arange(ROWS)
    return pa.table({
        "id": (row + n * ROWS).astype(np.int64),
        "day": (row // ROW_GROUP).astype(np.int32),
        "amount": rng.random(ROWS),
        # Wide, incompressible columns: what a projection must not read.
        "blob": pa.array([rng.bytes(100) for _ in range(ROWS)], pa.binary()),
        "note": pa.array([rng.bytes(40).hex() for _ in range(ROWS)]),
    })


@pytest.fixture(scope="module")
def sales(peers):
    """Four parquet files in s3://BUCKET/sales/region=*/; yields what was written."""
    bucket = f"sales-{uuid.uuid4().hex[:12]}"
    peers.make_s3_bucket(bucket)
    tables, sizes = {}, {}
    for n, (region, part) in enumerate(PARTS):
        table = _table(n)
        buf = io.BytesIO()
        pq.write_table(table, buf, row_group_size=ROW_GROUP)
        key = f"sales/region={region}/part-{part}.parquet"
        peers.put_s3(bucket, key, buf.getvalue())
        tables[key], sizes[key] = table, len(buf.getvalue())
    return {"bucket": bucket, "tables": tables, "sizes": sizes}


@pytest.fixture(scope="module")
def storage(peers):
    """A recording proxy in front of moto's S3: every request the readers make, in order."""
    with AuthorizingProxy(peers.s3_endpoint, preserve_host=True) as proxy:
        yield proxy


@pytest.fixture
def fs(peers, sales, storage):
    cfg = peers.config()
    cfg["platform"]["aws"]["endpoint_url"] = storage.url
    cfg["tenants"] = {"acme": {"direct": [f"s3://{sales['bucket']}"]}}
    storage.clear_requests()
    return attachfs.filesystem(tenant="acme", config=cfg, skip_instance_cache=True)


def expected(sales) -> pa.Table:
    eu = pa.concat_tables(t for k, t in sales["tables"].items() if "region=eu" in k)
    return eu.filter(pc.equal(eu["day"], 2)).select(COLUMNS)


def object_gets(storage, sales) -> dict[str, int]:
    """Bytes asked for per object key: the Range length of each GET, the whole object if none.
    A GET answered 404 (``info()`` of a prefix tries it as an object first) fetched nothing."""
    asked: dict[str, int] = {}
    prefix = f"/{sales['bucket']}/"
    for r in storage.requests:
        if r.method != "GET" or not r.path.startswith(prefix) or r.query or r.status == 404:
            continue  # listings (GET /bucket?list-type=2...) fetch no object bytes
        key = r.path[len(prefix):]
        size = sales["sizes"][key]
        span = r.headers.get("Range")
        if span:
            first, _, last = span.removeprefix("bytes=").partition("-")
            if not first:  # a suffix range: the last N bytes
                length = min(int(last), size)
            else:
                length = min(int(last) + 1 if last else size, size) - int(first)
        else:
            length = size
        asked[key] = asked.get(key, 0) + length
    return asked


def scan(path: str, filesystem) -> pa.Table:
    dataset = ds.dataset(path, format="parquet", filesystem=filesystem, partitioning="hive")
    return dataset.to_table(columns=COLUMNS, filter=FILTER).sort_by("id")


@pytest.mark.parametrize("wrap", ["FSSpecHandler", "fsspec-filesystem"])
def test_filter_and_projection_give_the_rows_and_columns_asked_for(fs, sales, wrap):
    # pyarrow wraps an fsspec filesystem in PyFileSystem(FSSpecHandler(...)) itself too.
    filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(fs)) if wrap == "FSSpecHandler" else fs
    got = scan(f"s3://{sales['bucket']}/sales", filesystem)
    assert got.column_names == COLUMNS
    assert got.num_rows == 2 * ROW_GROUP
    assert got.equals(expected(sales))


def test_a_pruned_partition_is_never_requested(fs, sales, storage):
    scan(f"s3://{sales['bucket']}/sales", pafs.PyFileSystem(pafs.FSSpecHandler(fs)))
    touched = {r.path for r in storage.requests if "region=us" in r.path}
    assert touched == set()
    assert set(object_gets(storage, sales)) == {"sales/region=eu/part-0.parquet",
                                                "sales/region=eu/part-1.parquet"}


def test_reads_no_more_than_twice_what_pyarrows_own_s3_client_reads(fs, sales, storage):
    native = pafs.S3FileSystem(access_key="testing", secret_key="testing", scheme="http",
                               endpoint_override=storage.url, region="us-east-1")
    reference = scan(f"{sales['bucket']}/sales", native)
    native_bytes = sum(object_gets(storage, sales).values())

    storage.clear_requests()
    got = scan(f"s3://{sales['bucket']}/sales", pafs.PyFileSystem(pafs.FSSpecHandler(fs)))
    ours = object_gets(storage, sales)

    assert got.equals(reference)
    scanned = sum(sales["sizes"][k] for k in ours)
    assert 0 < native_bytes < scanned / 10  # the yardstick itself reads a small part
    assert sum(ours.values()) <= 2 * native_bytes, (
        f"attachfs asked for {sum(ours.values()):,} bytes of {scanned:,}; pyarrow's own S3 "
        f"client {native_bytes:,}: {ours}")
