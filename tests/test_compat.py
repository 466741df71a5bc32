"""pandas, pyarrow and fsspec.open_files reading through ``attach::``, on every backend."""

from __future__ import annotations

import io

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import attachfs
from stores import BACKENDS, new_store

FRAME = pd.DataFrame({
    "a": range(1000),
    "b": [f"row-{i}" for i in range(1000)],
    "c": [i * 0.5 for i in range(1000)],
    "d": [i % 7 == 0 for i in range(1000)],
})


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf, row_group_size=250)
    return buf.getvalue()


@pytest.fixture(params=BACKENDS)
def store(request, peers):
    return new_store(request.param, peers)


def test_pandas_read_csv(store, attach_config):
    uri = store.put("frames/t.csv", FRAME.to_csv(index=False).encode())
    got = pd.read_csv(f"attach::{uri}", storage_options={"config": attach_config})
    pd.testing.assert_frame_equal(got, FRAME)


def test_pandas_read_parquet_column_subset(store, attach_config):
    uri = store.put("frames/t.parquet", parquet_bytes(FRAME))
    got = pd.read_parquet(f"attach::{uri}", columns=["a", "c"],
                          storage_options={"config": attach_config})
    pd.testing.assert_frame_equal(got, FRAME[["a", "c"]])


def test_pyarrow_read_table_with_filesystem(store, attach_config):
    uri = store.put("frames/t.parquet", parquet_bytes(FRAME))
    fs = attachfs.filesystem(config=attach_config)
    table = pq.read_table(uri, filesystem=fs, columns=["b", "d"])
    assert table.to_pandas().equals(FRAME[["b", "d"]])


def test_open_files_over_a_glob(store, attach_config):
    parts = [FRAME.iloc[i * 250:(i + 1) * 250] for i in range(4)]
    for i, part in enumerate(parts):
        store.put(f"parts/p{i}.csv", part.to_csv(index=False).encode())
    store.put("parts/readme.txt", b"not a csv")
    if store.backend == "http":
        # Plain http has no listing API to glob over: the list form is what users pass.
        target = [f"attach::{store.uri(f'parts/p{i}.csv')}" for i in range(4)]
    else:
        target = f"attach::{store.uri('parts/')}*.csv"
    files = fsspec.open_files(target, "rt", attach={"config": attach_config})
    assert len(files) == 4
    frames = []
    for of in files:
        with of as f:
            frames.append(pd.read_csv(f))
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), FRAME)


def test_s3_https_form_reads_through_the_s3_backend(peers, attach_config):
    store = new_store("s3", peers)
    store.put("table.parquet", parquet_bytes(FRAME))
    url = f"https://s3-us-west-2.amazonaws.com/{store.bucket}/table.parquet"
    route = attachfs.explain(url, config=attach_config)
    assert (route.backend, route.uri) == ("s3", f"s3://{store.bucket}/table.parquet")
    got = pd.read_parquet(f"attach::{url}", columns=["a", "b"],
                          storage_options={"config": attach_config})
    pd.testing.assert_frame_equal(got, FRAME[["a", "b"]])
