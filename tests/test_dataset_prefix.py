"""A dataset prefix reads through ``attach::`` on every listable backend, with the tools that
read datasets: pandas, ``pyarrow.dataset`` and Dask, over the same prefix.

pyarrow lists a dataset directory through the fsspec filesystem it is handed and requires every
name to lie under the directory it asked for, in the same spelling: a chained filesystem
(``attach::s3://bucket/dataset/``) is asked with the inner protocol's stripped path
(``bucket/dataset``), so its listings must answer in that form. Plain http(s) has no listing,
so it has no dataset prefix.
"""

from __future__ import annotations

import io
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from stores import Store, new_store

pytestmark = pytest.mark.peers

PARTS = {
    "year=2025/part-0.parquet": pd.DataFrame({"id": [1, 2], "amount": [1.5, 2.5]}),
    "year=2025/part-1.parquet": pd.DataFrame({"id": [3], "amount": [3.5]}),
    "year=2026/part-0.parquet": pd.DataFrame({"id": [4, 5], "amount": [4.5, 5.5]}),
}


def parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf)
    return buf.getvalue()


def expected() -> pd.DataFrame:
    frames = [f.assign(year=int(k[5:9])) for k, f in PARTS.items()]
    return pd.concat(frames, ignore_index=True).sort_values("id", ignore_index=True)


def normal(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(year=frame["year"].astype("int64"))[["id", "amount", "year"]]
    return frame.sort_values("id", ignore_index=True)


def chained(store: Store, form: str) -> str:
    if form == "az":
        account = store.peers.azure_account
        return f"attach::az://{store.bucket}@{account}.blob.core.windows.net/dataset/"
    return f"attach::{store.uri('dataset/')}"


@pytest.fixture(params=["s3", "gcs", "azure-az", "azure-https"])
def url(request: pytest.FixtureRequest, peers: Any) -> str:
    backend, _, form = request.param.partition("-")
    store = new_store(backend, peers)
    for key, frame in PARTS.items():
        store.put(f"dataset/{key}", parquet(frame))
    store.put("dataset/_SUCCESS", b"")  # the marker Spark writes: skipped by the readers
    store.put("dataset-other/x.parquet", parquet(PARTS["year=2026/part-0.parquet"]))
    return chained(store, form)


def test_pandas_reads_the_prefix(url: str, attach_config: dict[str, Any]) -> None:
    got = pd.read_parquet(url, storage_options={"config": attach_config})
    pd.testing.assert_frame_equal(normal(got), expected())


def test_pyarrow_dataset_reads_the_prefix(url: str, attach_config: dict[str, Any]) -> None:
    fs, path = fsspec.core.url_to_fs(url, config=attach_config)
    dataset = pads.dataset(path, filesystem=fs, format="parquet", partitioning="hive")
    assert len(dataset.files) == 3
    table = dataset.to_table(filter=pads.field("year") == 2025)
    pd.testing.assert_frame_equal(normal(table.to_pandas()),
                                  expected().query("year == 2025").reset_index(drop=True))


def test_dask_reads_the_prefix(url: str, attach_config: dict[str, Any]) -> None:
    dd = pytest.importorskip("dask.dataframe")
    frame = dd.read_parquet(url, storage_options={"config": attach_config})
    got = frame.compute(scheduler="sync")
    pd.testing.assert_frame_equal(normal(got), expected())


def test_a_prefix_lists_in_the_spelling_it_was_asked_in(url: str,
                                                        attach_config: dict[str, Any]) -> None:
    fs, path = fsspec.core.url_to_fs(url, config=attach_config)
    root = path.rstrip("/")
    names = fs.find(path, withdirs=True)
    assert names and all(n == root or n.startswith(root + "/") for n in names), names
    assert all(e["name"].startswith(root + "/") for e in fs.ls(path, detail=True))
    assert fs.info(root + "/year=2025/part-0.parquet")["name"] == (
        root + "/year=2025/part-0.parquet")
