"""The files the client tests read: made with each tool's own writer, as bytes to upload.

attachfs refuses writes, so a test uploads these through the emulators' own clients
(``Emulators.put_s3`` and friends) and then reads them back through attachfs with the client
under test. Every maker is deterministic, so a test can compare what it read with what it made.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def orders(part: int, rows: int = 500) -> pa.Table:
    """One month of a small orders table; parts never share an ``id``."""
    ids = np.arange(rows, dtype=np.int64) + part * rows
    return pa.table({
        "id": ids,
        "amount": (ids % 97).astype(np.float64) / 4,
        "region": pa.array(["eu", "us", "apac"][i % 3] for i in range(rows)),
    })


def parquet_bytes(table: pa.Table, row_group_size: int = 100) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size)
    return buf.getvalue()


def random_columns(rows: int, columns: int, row_groups: int) -> tuple[Any, bytes]:
    """A pandas DataFrame of ``columns`` float columns ``c0``... of random values (seeded by
    column), and its parquet bytes in ``row_groups`` row groups."""
    import pandas as pd

    frame = pd.DataFrame({f"c{i}": np.random.default_rng(i).random(rows)
                          for i in range(columns)})
    buf = io.BytesIO()
    frame.to_parquet(buf, row_group_size=rows // row_groups)
    return frame, buf.getvalue()


def zarr_files(values: np.ndarray, chunks: tuple[int, ...]) -> dict[str, bytes]:
    """A zarr 3 array written by zarr itself, as {relative key: bytes} to upload."""
    import zarr
    from zarr.storage import LocalStore

    with tempfile.TemporaryDirectory() as tmp:
        array = zarr.create_array(store=LocalStore(tmp), shape=values.shape, chunks=chunks,
                                  dtype=values.dtype, attributes={"units": "K"})
        array[...] = values
        root = Path(tmp)
        return {p.relative_to(root).as_posix(): p.read_bytes()
                for p in sorted(root.rglob("*")) if p.is_file()}


# The netCDF shape of the HDF5 random-access case: ~3.2 MB, 80 chunks of 40 KB, uncompressed
# (so every chunk costs exactly its size on the wire).
NC_SHAPE = (80, 100, 100)
NC_CHUNK = (1, 100, 100)
NC_CHUNK_BYTES = 100 * 100 * 4


def temperature() -> np.ndarray:
    return np.arange(np.prod(NC_SHAPE), dtype=np.float32).reshape(NC_SHAPE) / 1000


def netcdf_bytes() -> bytes:
    """A netCDF-4 (HDF5) file written by xarray with h5netcdf: variable ``t`` (time, y, x)."""
    import xarray as xr

    ds = xr.Dataset(
        {"t": (("time", "y", "x"), temperature(), {"units": "K"})},
        coords={"time": np.arange(NC_SHAPE[0]), "y": np.arange(NC_SHAPE[1]),
                "x": np.arange(NC_SHAPE[2])},
    )
    encoding = {"t": {"chunksizes": NC_CHUNK}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.nc"
        ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)
        return path.read_bytes()


def image() -> np.ndarray:
    """A 48x64 RGB gradient, exactly representable in PNG."""
    y, x = np.mgrid[0:48, 0:64]
    return np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], compression: str = "") -> bytes:
    """A tar archive (``compression``: "", "gz", ...) holding ``members`` in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}" if compression else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def shard_members(shard: int, samples: int = 4) -> dict[str, bytes]:
    """A webdataset shard's members: ``{key}.txt`` and ``{key}.cls`` per sample."""
    out: dict[str, bytes] = {}
    for i in range(samples):
        key = f"sample{shard:02d}{i:03d}"
        out[f"{key}.txt"] = f"caption {shard}-{i}".encode()
        out[f"{key}.cls"] = str((shard * samples + i) % 10).encode()
    return out
