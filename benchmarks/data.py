"""The objects the cases read, written as files under ``{root}/{bucket}/`` for nginx to serve.

Generated once per size profile and reused while ``manifest.json`` says the sizes match:
random bytes (nothing on the path compresses them), and a parquet file of random int64/float64
columns in a fixed number of row groups, whose footer tells the byte ranges a reader of two
columns needs at least (the floor of case d). Case (f) reads a zip and a tar of the same
many small members, a parquet file of many row groups, and a netCDF4 file of ~80 chunks
(written with h5netcdf when it is installed), each picking what it reads with a fixed seed.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

BUCKET = "bench"
MiB = 2**20


@dataclass(frozen=True)
class Sizes:
    large: int              # (a) one object read sequentially
    small_count: int        # (b)/(e) objects in the batch
    small_size: int
    medium_count: int       # (c) distinct objects opened for a small read
    medium_size: int
    parquet_rows: int       # (d)
    parquet_columns: int
    parquet_row_groups: int
    archive_members: int = 800    # (f) members of the zip and of the tar
    archive_pick: int = 80        # (f) members read per pass, in random order
    rg_rows: int = 400_000        # (f) parquet of many row groups, 5 columns
    rg_groups: int = 40
    rg_pick: int = 8              # (f) row groups read per pass, out of order

    @property
    def parquet_approx_bytes(self) -> int:
        return self.parquet_rows * self.parquet_columns * 8


FULL = Sizes(large=1024 * MiB, small_count=2000, small_size=64 * 1024, medium_count=20,
             medium_size=4 * MiB, parquet_rows=2_500_000, parquet_columns=10,
             parquet_row_groups=20, archive_members=3000, archive_pick=300,
             rg_rows=1_600_000, rg_groups=40, rg_pick=8)
QUICK = Sizes(large=64 * MiB, small_count=200, small_size=64 * 1024, medium_count=10,
              medium_size=4 * MiB, parquet_rows=250_000, parquet_columns=10,
              parquet_row_groups=20)

#: The columns case (d) reads: two of ten, not adjacent, so no reader gets them in one range.
PARQUET_COLUMNS = ("c1", "c6")


def keys(sizes: Sizes) -> dict[str, list[str] | str]:
    return {
        "large": "large/object.bin",
        "small": [f"small/{i:05d}.bin" for i in range(sizes.small_count)],
        "medium": [f"medium/{i:03d}.bin" for i in range(sizes.medium_count)],
        "parquet": "parquet/table.parquet",
        "zip": "random/archive.zip",
        "tar": "random/archive.tar",
        "rowgroups": "random/rowgroups.parquet",
        "netcdf": "random/chunks.nc",
    }


def copy_key(key: str, n: int) -> str:
    """Another name for ``key`` that nginx serves from the same file (benchmarks/nginx.py)."""
    return f"copy/{n}/{key}"


def base_key(key: str) -> str:
    """``key`` without a ``copy/{n}/`` prefix."""
    parts = key.split("/", 2)
    if len(parts) == 3 and parts[0] == "copy" and parts[1].isdigit():
        return parts[2]
    return key


def ensure(root: str | os.PathLike, sizes: Sizes, *, log=print) -> dict:
    """The manifest of the data under ``root``; (re)generated unless it matches ``sizes``."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (manifest.get("sizes") == asdict(sizes) and _complete(root, manifest)
                and manifest.get("random", {}).get("version") == RANDOM_VERSION
                and (manifest["random"].get("netcdf") or not _have_netcdf())):
            return manifest
    if root.exists():
        shutil.rmtree(root)
    bucket = root / BUCKET
    bucket.mkdir(parents=True)
    names = keys(sizes)
    objects: dict[str, int] = {}
    log(f"generating data in {root} ...")
    _random_file(bucket / names["large"], sizes.large)
    objects[names["large"]] = sizes.large
    for key in names["small"]:
        _random_file(bucket / key, sizes.small_size)
        objects[key] = sizes.small_size
    for key in names["medium"]:
        _random_file(bucket / key, sizes.medium_size)
        objects[key] = sizes.medium_size
    parquet = _parquet(bucket / names["parquet"], sizes)
    objects[names["parquet"]] = parquet["size"]
    random_access = _random_access(bucket, names, sizes, log)
    for name in ("zip", "tar", "rowgroups", "netcdf"):
        if (bucket / names[name]).exists():
            objects[names[name]] = (bucket / names[name]).stat().st_size
    # Readable by nginx's workers whoever they run as.
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    manifest = {"sizes": asdict(sizes), "bucket": BUCKET, "keys": names, "objects": objects,
                "parquet": parquet, "random": random_access}
    manifest_path.write_text(json.dumps(manifest))
    return manifest


def _complete(root: Path, manifest: dict) -> bool:
    bucket = root / manifest["bucket"]
    return all((bucket / key).is_file() and (bucket / key).stat().st_size == size
               for key, size in manifest["objects"].items())


def _random_file(path: Path, size: int, chunk: int = 8 * MiB) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n


def _parquet(path: Path, sizes: Sizes) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(20261128)
    n = sizes.parquet_rows
    columns = {}
    for i in range(sizes.parquet_columns):
        if i % 2:
            columns[f"c{i}"] = rng.random(n)
        else:
            columns[f"c{i}"] = rng.integers(0, 2**62, n, dtype=np.int64)
    table = pa.table(columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=-(-n // sizes.parquet_row_groups),
                   compression="snappy", use_dictionary=False)
    meta = pq.ParquetFile(path).metadata
    size = path.stat().st_size
    # What a reader of PARQUET_COLUMNS must fetch at least: each of their column chunks and
    # the footer (metadata + its 4-byte length + the 4-byte magic).
    ranges = []
    wanted = set(PARQUET_COLUMNS)
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for c in range(group.num_columns):
            col = group.column(c)
            if col.path_in_schema in wanted:
                start = col.data_page_offset
                if col.has_dictionary_page and col.dictionary_page_offset:
                    start = min(start, col.dictionary_page_offset)
                ranges.append([start, start + col.total_compressed_size])
    footer = meta.serialized_size + 8
    return {"size": size, "row_groups": meta.num_row_groups, "columns": list(PARQUET_COLUMNS),
            "ranges": ranges, "footer": footer,
            "floor_bytes": sum(e - s for s, e in ranges) + footer}


# --------------------------------------------------------------------------- case (f)

#: Bumped when the random-access files or their picks change shape.
RANDOM_VERSION = 1


def _have_netcdf() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) for m in ("h5netcdf", "xarray"))


def _random_access(bucket: Path, names: dict, sizes: Sizes, log) -> dict:
    import random
    import tarfile
    import zipfile
    import zlib

    rng = random.Random(20261201)
    members = [(f"m{i:05d}.bin", os.urandom(rng.randint(2 * 1024, 48 * 1024)))
               for i in range(sizes.archive_members)]
    pick = rng.sample(range(len(members)), sizes.archive_pick)  # random order too

    zip_path = bucket / names["zip"]
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    # Stored: random bytes do not deflate, and the reader's access pattern is the point.
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members:
            z.writestr(name, data)

    tar_path = bucket / names["tar"]
    with tarfile.open(tar_path, "w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            t.addfile(info, io.BytesIO(data))
    with tarfile.open(tar_path) as t:
        index = {m.name: m.offset_data for m in t.getmembers()}
    tar_pick = [[index[members[i][0]], len(members[i][1]), zlib.crc32(members[i][1])]
                for i in pick]

    out = {"version": RANDOM_VERSION,
           "zip": {"key": names["zip"], "members": len(members),
                   "pick": [members[i][0] for i in pick]},
           "tar": {"key": names["tar"], "members": len(members), "pick": tar_pick},
           "parquet": _rowgroups(bucket / names["rowgroups"], sizes, rng) | {
               "key": names["rowgroups"]}}
    if _have_netcdf():
        out["netcdf"] = _netcdf(bucket / names["netcdf"]) | {"key": names["netcdf"]}
    else:
        log("h5netcdf/xarray not installed: case (f) runs without its netCDF scenarios")
    return out


def _rowgroups(path: Path, sizes: Sizes, rng) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    gen = np.random.default_rng(20261201)
    n = sizes.rg_rows
    table = pa.table({f"c{i}": (gen.random(n) if i % 2 else
                                gen.integers(0, 2**62, n, dtype=np.int64)) for i in range(5)})
    pq.write_table(table, path, row_group_size=-(-n // sizes.rg_groups), compression="snappy",
                   use_dictionary=False)
    meta = pq.ParquetFile(path).metadata
    groups = meta.num_row_groups
    return {"row_groups": groups,
            "rows_per_group": [meta.row_group(i).num_rows for i in range(groups)],
            "order": rng.sample(range(groups), min(sizes.rg_pick, groups))}


def _netcdf(path: Path) -> dict:
    """~3 MB: v(time=80, y=100, x=48) float64, one chunk per time step (80 x 38,400 B)."""
    import hashlib

    import numpy as np
    import xarray as xr

    values = np.random.default_rng(20261201).random((80, 100, 48))
    ds = xr.Dataset({"v": (("time", "y", "x"), values)},
                    coords={"time": np.arange(80), "y": np.arange(100), "x": np.arange(48)})
    ds.to_netcdf(path, engine="h5netcdf",
                 encoding={"v": {"chunksizes": (1, 100, 48), "zlib": False}})
    lo, hi = 40, 42
    return {"chunks": 80, "slice": [lo, hi],
            "sha1_full": hashlib.sha1(values.tobytes()).hexdigest(),
            "sha1_slice": hashlib.sha1(values[lo:hi].tobytes()).hexdigest()}
