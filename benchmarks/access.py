"""Case (f), random access: what zipfile, tarfile, pyarrow.parquet and h5netcdf read, in which order.

Each scenario opens a format reader over a seekable file (``open``), then reads a fixed set of
members, row groups or chunks out of order (``read``), checking what it got. The worker runs
it three times per repetition: a first pass on a new file, a second pass on the same reader
(every block it needs was fetched a moment ago), and a pass on a reopened file.

The bytes a scenario *needs* are measured, not assumed: the same scenario runs over the local
file wrapped in :class:`Recording`, which notes every byte range the format reader actually
reads; their union is the floor any client's requests are compared with (bytes requested /
distinct bytes needed, target <= 1.1).
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: name -> what the report calls it
TITLES = {
    "zip": "zip members",
    "tar": "tar members, by index",
    "parquet": "parquet row groups, out of order",
    "nc_full": "netCDF4/HDF5, whole variable",
    "nc_slice": "netCDF4/HDF5, 2-chunk slice",
}


@dataclass(frozen=True)
class Scenario:
    name: str
    key: str
    open: Callable[[Any], Any]      # file -> the reader's state
    read: Callable[[Any], int]      # state -> payload bytes read (checked)
    close: Callable[[Any], None]
    describe: str                   # what is read, for the report


class Recording(io.RawIOBase):
    """A local file that notes the ``[start, end)`` of every byte it hands out."""

    def __init__(self, f: Any):
        self._f = f
        self.ranges: list[tuple[int, int]] = []

    def _note(self, start: int, n: int) -> None:
        if n > 0:
            self.ranges.append((start, start + n))

    def read(self, n: int = -1) -> bytes:
        start = self._f.tell()
        data = self._f.read(n)
        self._note(start, len(data))
        return data

    def readinto(self, buf: Any) -> int:
        start = self._f.tell()
        n = self._f.readinto(buf)
        self._note(start, n or 0)
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


def union(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def needed(scenario: Scenario, path: str) -> list[tuple[int, int]]:
    """The distinct byte ranges the scenario's reader reads from the local file at ``path``."""
    with open(path, "rb") as raw:
        rec = Recording(raw)
        state = scenario.open(rec)
        try:
            scenario.read(state)
        finally:
            scenario.close(state)
    return union(rec.ranges)


# --------------------------------------------------------------------------- the scenarios

def _zip(spec: dict) -> Scenario:
    import zipfile

    names = spec["pick"]

    def read(z: zipfile.ZipFile) -> int:
        return sum(len(z.read(name)) for name in names)  # zipfile checks each CRC

    return Scenario("zip", spec["key"], zipfile.ZipFile, read, lambda z: z.close(),
                    f"zipfile.ZipFile(f), then z.read() of {len(names)} of "
                    f"{spec['members']} members in random order")


def _tar(spec: dict) -> Scenario:
    picks = spec["pick"]   # [offset of the data, size, crc32]: a dataloader's index

    def read(f: Any) -> int:
        n = 0
        for offset, size, crc in picks:
            f.seek(offset)
            data = f.read(size)
            if len(data) != size or zlib.crc32(data) != crc:
                raise AssertionError(f"tar member at {offset}: wrong bytes")
            n += size
        return n

    return Scenario("tar", spec["key"], lambda f: f, read, lambda f: None,
                    f"seek + read of {len(picks)} of {spec['members']} members in random "
                    "order, from an index of their offsets (as a dataloader does)")


def _parquet(spec: dict) -> Scenario:
    import pyarrow.parquet as pq

    order, rows = spec["order"], spec["rows_per_group"]

    def read(pf: Any) -> int:
        n = 0
        for i in order:
            table = pf.read_row_group(i)
            if table.num_rows != rows[i]:
                raise AssertionError(f"row group {i}: {table.num_rows} rows, not {rows[i]}")
            n += table.nbytes
        return n

    return Scenario("parquet", spec["key"], pq.ParquetFile, read, lambda pf: None,
                    f"pq.ParquetFile(f).read_row_group(i) for {len(order)} of "
                    f"{spec['row_groups']} row groups, out of order, all columns")


def _netcdf(spec: dict, part: str) -> Scenario:
    def open_(f: Any) -> Any:
        import xarray as xr

        return xr.open_dataset(f, engine="h5netcdf", cache=False)

    lo, hi = spec["slice"]
    expect = spec["sha1_full"] if part == "full" else spec["sha1_slice"]

    def read(ds: Any) -> int:
        values = ds["v"].values if part == "full" else ds["v"][lo:hi].values
        if hashlib.sha1(values.tobytes()).hexdigest() != expect:
            raise AssertionError(f"netCDF {part}: wrong values")
        return values.nbytes

    what = (f"all {spec['chunks']} chunks of v" if part == "full"
            else f"v[{lo}:{hi}], 2 of its {spec['chunks']} chunks")
    return Scenario(f"nc_{part}", spec["key"], open_, read, lambda ds: ds.close(),
                    f"xarray.open_dataset(f, engine='h5netcdf'), then {what}")


def scenarios(manifest: dict) -> dict[str, Scenario]:
    spec = manifest["random"]
    out = {"zip": _zip(spec["zip"]), "tar": _tar(spec["tar"]),
           "parquet": _parquet(spec["parquet"])}
    if spec.get("netcdf"):
        out["nc_full"] = _netcdf(spec["netcdf"], "full")
        out["nc_slice"] = _netcdf(spec["netcdf"], "slice")
    return out
