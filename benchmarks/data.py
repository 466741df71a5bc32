"""The objects the cases read, written as files under ``{root}/{bucket}/`` for nginx to serve.

Generated once per size profile and reused while ``manifest.json`` says the sizes match:
random bytes (nothing on the path compresses them), and a parquet file of random int64/float64
columns in a fixed number of row groups, whose footer tells the byte ranges a reader of two
columns needs at least (the floor of case d).
"""

from __future__ import annotations

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

    @property
    def parquet_approx_bytes(self) -> int:
        return self.parquet_rows * self.parquet_columns * 8


FULL = Sizes(large=1024 * MiB, small_count=2000, small_size=64 * 1024, medium_count=20,
             medium_size=4 * MiB, parquet_rows=2_500_000, parquet_columns=10,
             parquet_row_groups=20)
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
    }


def ensure(root: str | os.PathLike, sizes: Sizes, *, log=print) -> dict:
    """The manifest of the data under ``root``; (re)generated unless it matches ``sizes``."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("sizes") == asdict(sizes) and _complete(root, manifest):
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
    # Readable by nginx's workers whoever they run as.
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    manifest = {"sizes": asdict(sizes), "bucket": BUCKET, "keys": names, "objects": objects,
                "parquet": parquet}
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
