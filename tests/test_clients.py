"""The tools users hand an attach filesystem to, run for real against the emulators.

Each file is written by the tool's own writer (tests/datasets.py), uploaded through the
emulator's client (attachfs refuses writes), and read back through attachfs the way that tool's
users read: DuckDB, zarr, PIL, streaming tarfile, webdataset, polars and a kerchunk-style
ReferenceFileSystem. Every test compares the data it read with the data it made.

The reads are made for a tenant that claims the bucket (a configured, multi-tenant setup), so
the filesystem the tool holds carries a tenant and a config: what DuckDB, zarr and kerchunk
must keep when they re-create or serialise it.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

import attachfs
import datasets

pytestmark = pytest.mark.peers

TENANT = "acme"


class World:
    """One S3 bucket holding every client's files; ``uri(key)`` names them."""

    def __init__(self, peers: Any) -> None:
        self.peers = peers
        self.bucket = f"tools-{uuid.uuid4().hex[:12]}"
        peers.make_s3_bucket(self.bucket)

    def put(self, key: str, data: bytes) -> str:
        self.peers.put_s3(self.bucket, key, data)
        return self.uri(key)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}"

    def config(self) -> dict[str, Any]:
        cfg = self.peers.config()
        cfg["tenants"] = {TENANT: {"direct": [f"s3://{self.bucket}"]}}
        return cfg


@pytest.fixture(scope="module")
def world(peers) -> World:
    world = World(peers)
    for month in range(3):
        world.put(f"orders/2026-0{month + 1}.parquet",
                  datasets.parquet_bytes(datasets.orders(month)))
    world.put("orders/README.txt", b"not parquet: a glob for *.parquet must skip it")
    for key, data in datasets.zarr_files(CUBE, chunks=(10, 10)).items():
        world.put(f"cube.zarr/{key}", data)
    world.put("images/gradient.png", datasets.png_bytes(datasets.image()))
    for compression in ("", "gz"):
        suffix = ".gz" if compression else ""
        world.put(f"archives/docs.tar{suffix}", datasets.tar_bytes(ARCHIVE, compression))
    for shard in range(2):
        world.put(f"shards/train-{shard:06d}.tar",
                  datasets.tar_bytes(datasets.shard_members(shard)))
    return world


CUBE = np.arange(40 * 50, dtype="f4").reshape(40, 50) / 8
ARCHIVE = {f"docs/{i:02d}.txt": f"document {i}\n".encode() * (i + 1) for i in range(12)}
ORDERS = pa.concat_tables(datasets.orders(m) for m in range(3))


@pytest.fixture
def config(world) -> dict[str, Any]:
    return world.config()


@pytest.fixture
def fs(config) -> Any:
    return attachfs.filesystem(tenant=TENANT, config=config, skip_instance_cache=True)


def sort_by_id(table: pa.Table) -> pa.Table:
    """Rows in id order, strings as pa.string() (polars hands back large_string)."""
    table = table.sort_by("id")
    schema = pa.schema([f.with_type(pa.string()) if pa.types.is_large_string(f.type) else f
                        for f in table.schema])
    return table.cast(schema)


# --------------------------------------------------------------------------- DuckDB


@pytest.fixture
def duck(fs) -> Iterator[Any]:
    duckdb = pytest.importorskip("duckdb")
    # No extension is installed or loaded behind our back: DuckDB would otherwise fetch httpfs
    # from the internet to read a path that escaped attachfs (and read it as the ambient
    # identity). With this off, such a path fails here, loudly.
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    con.register_filesystem(fs)
    yield con
    con.close()


def test_duckdb_reads_one_parquet_file(duck, world):
    # DuckDB hands every path to fs.glob() and then fs.unstrip_protocol(); if that drops the
    # attach:// prefix DuckDB reads the inner s3:// URI with its own S3 client (httpfs),
    # outside attachfs and its tenant rules.
    got = duck.sql(f"select * from read_parquet('attach://{world.uri('orders/2026-02.parquet')}')"
                   ).to_arrow_table()
    assert sort_by_id(got).equals(datasets.orders(1))


def test_duckdb_reads_a_glob_of_parquet_files(duck, world):
    got = duck.sql(f"select * from read_parquet('attach://{world.uri('orders/*.parquet')}')"
                   ).to_arrow_table()
    assert sort_by_id(got).equals(ORDERS)


def test_duckdb_aggregates_over_a_glob(duck, world):
    frame = ORDERS.group_by("region").aggregate([("amount", "sum")])
    expected = dict(zip(frame["region"].to_pylist(), frame["amount_sum"].to_pylist(),
                        strict=True))
    rows = duck.sql("select region, sum(amount) from read_parquet("
                    f"'attach://{world.uri('orders/2026-0*.parquet')}') group by region").fetchall()
    assert dict(rows) == pytest.approx(expected)


# --------------------------------------------------------------------------- zarr


def test_zarr_reads_through_a_mapper(fs, world):
    zarr = pytest.importorskip("zarr")
    # zarr 3 turns an FSMap into an FsspecStore, re-creating the filesystem asynchronously
    # from fs.to_json(): the tenant and config must survive that round trip.
    mapper = fs.get_mapper(world.uri("cube.zarr"))
    array = zarr.open_array(mapper, mode="r")
    np.testing.assert_array_equal(array[...], CUBE)
    assert array.attrs["units"] == "K"


def test_zarr_reads_through_an_fsspec_store(config, world):
    zarr = pytest.importorskip("zarr")
    from zarr.storage import FsspecStore

    afs = attachfs.filesystem(tenant=TENANT, config=config, asynchronous=True,
                              skip_instance_cache=True)
    store = FsspecStore(afs, path=world.uri("cube.zarr"), read_only=True)
    array = zarr.open_array(store, mode="r")
    np.testing.assert_array_equal(array[12:31, 5:17], CUBE[12:31, 5:17])


def test_zarr_opens_an_attach_url_with_storage_options(config, world):
    zarr = pytest.importorskip("zarr")
    array = zarr.open_array(f"attach::{world.uri('cube.zarr')}", mode="r",
                            storage_options={"tenant": TENANT, "config": config})
    np.testing.assert_array_equal(array[...], CUBE)


# --------------------------------------------------------------------------- PIL


def test_pil_reads_an_image(fs, world):
    image_module = pytest.importorskip("PIL.Image")
    with fs.open(world.uri("images/gradient.png")) as f, image_module.open(f) as img:
        assert img.size == (64, 48)
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), datasets.image())


def test_pil_reads_through_attachfs_open(config, world):
    image_module = pytest.importorskip("PIL.Image")
    with attachfs.open(world.uri("images/gradient.png"), tenant=TENANT, config=config) as f:
        pixels = np.asarray(image_module.open(f).convert("RGB"))
    np.testing.assert_array_equal(pixels, datasets.image())


# --------------------------------------------------------------------------- tarfile


@pytest.mark.parametrize("key", ["archives/docs.tar", "archives/docs.tar.gz"])
def test_tarfile_streams_an_archive(fs, world, key):
    # "r|*": a forward-only stream, what a dataloader does with a shard: no seeks back.
    got = {}
    with fs.open(world.uri(key)) as f, tarfile.open(fileobj=f, mode="r|*") as tar:
        for member in tar:
            got[member.name] = tar.extractfile(member).read()
    assert got == ARCHIVE
    assert list(got) == list(ARCHIVE)


# --------------------------------------------------------------------------- webdataset


@pytest.fixture
def gopen_attach(fs) -> Iterator[Callable[..., Any]]:
    """webdataset opens each shard through its ``gopen_schemes`` table, by URL scheme. It
    splits URL strings on "::", so ``attach::s3://...`` cannot be passed; ``attach://s3://...``
    with a handler registered for "attach" can."""
    gopen = pytest.importorskip("webdataset.gopen")

    def open_attach(url: str, mode: str = "rb", bufsize: int = 8192, **kw: Any) -> Any:
        return fs.open(url, mode)

    gopen.gopen_schemes["attach"] = open_attach
    yield open_attach
    del gopen.gopen_schemes["attach"]


def test_webdataset_reads_shards_by_brace_pattern(gopen_attach, world):
    wds = pytest.importorskip("webdataset")
    url = "attach://" + world.uri("shards/train-{000000..000001}.tar")
    dataset = wds.WebDataset(url, shardshuffle=False).to_tuple("__key__", "txt", "cls")
    got = [(key, txt.decode(), int(cls)) for key, txt, cls in dataset]
    expected = []
    for shard in range(2):
        members = datasets.shard_members(shard)
        for name in members:
            if name.endswith(".txt"):
                key = name[:-4]
                expected.append((key, members[name].decode(), int(members[f"{key}.cls"])))
    assert got == expected


def test_webdataset_cannot_take_an_attach_chained_url(gopen_attach, world):
    # The documented limitation (docs/recipes/webdataset.md): "::" separates URL lists there.
    wds = pytest.importorskip("webdataset")
    from webdataset.shardlists import expand_urls

    url = "attach::" + world.uri("shards/train-000000.tar")
    assert expand_urls(url) == ["attach", world.uri("shards/train-000000.tar")]
    with pytest.raises(Exception):  # noqa: B017  any failure: the point is it cannot work
        next(iter(wds.WebDataset(url, shardshuffle=False)))


# --------------------------------------------------------------------------- polars


def test_polars_reads_an_open_file(fs, world):
    pl = pytest.importorskip("polars")
    with fs.open(world.uri("orders/2026-03.parquet")) as f:
        frame = pl.read_parquet(f)
    assert sort_by_id(frame.to_arrow()).equals(datasets.orders(2))


def test_polars_scans_a_pyarrow_dataset_backed_by_attachfs(fs, world):
    pl = pytest.importorskip("polars")
    dataset = pads.dataset(world.uri("orders/"), format="parquet", filesystem=fs,
                           exclude_invalid_files=True)
    lazy = pl.scan_pyarrow_dataset(dataset)
    got = lazy.filter(pl.col("region") == "eu").select("id", "amount").collect()
    eu = ORDERS.filter(pa.compute.equal(ORDERS["region"], "eu")).select(["id", "amount"])
    assert sort_by_id(got.to_arrow()).equals(sort_by_id(eu))


def test_polars_native_scan_does_not_take_fsspec_urls(config, world):
    # The documented limitation (docs/recipes/polars.md): polars' own readers use their own
    # object-store client, which knows no "attach" protocol.
    pl = pytest.importorskip("polars")
    with pytest.raises(Exception):  # noqa: B017  any failure: the point is it cannot work
        pl.scan_parquet(f"attach::{world.uri('orders/2026-01.parquet')}",
                        storage_options={"tenant": TENANT}).collect()


# --------------------------------------------------------------------------- kerchunk-style


def kerchunk_refs(world: World, name: str = "cube-raw.bin") -> tuple[dict[str, Any], np.ndarray]:
    """Reference a raw little-endian array in S3 as a zarr v2 array, the way kerchunk writes
    references: each chunk is ``[url, offset, length]`` with the object's own ``s3://`` URL."""
    values = np.arange(6 * 8, dtype="<i4").reshape(6, 8)
    world.put(name, b"HEADER--" + values.tobytes())
    zarray = {"shape": [6, 8], "chunks": [3, 8], "dtype": "<i4", "compressor": None,
              "fill_value": None, "filters": None, "order": "C", "zarr_format": 2}
    refs: dict[str, Any] = {".zgroup": json.dumps({"zarr_format": 2}),
                            "v/.zarray": json.dumps(zarray),
                            "v/.zattrs": json.dumps({"_ARRAY_DIMENSIONS": ["y", "x"]})}
    for i in range(2):
        refs[f"v/{i}.0"] = [world.uri(name), 8 + i * 3 * 8 * 4, 3 * 8 * 4]
    return {"version": 1, "refs": refs}, values


def test_reference_filesystem_with_s3_references_reads_through_attachfs(fs, world):
    zarr = pytest.importorskip("zarr")
    refs, values = kerchunk_refs(world)
    # fsspec picks the filesystem for each reference by that reference's own protocol ("s3"),
    # so remote_protocol="attach" alone would read with s3fs; fs= maps "s3" to attachfs.
    ref_fs = fsspec.filesystem("reference", fo=refs, fs={"s3": fs})
    assert ref_fs.cat("v/1.0") == values[3:].tobytes()
    group = zarr.open_group(ref_fs.get_mapper(""), mode="r", zarr_format=2)
    np.testing.assert_array_equal(group["v"][...], values)


def test_kerchunk_references_to_a_netcdf_file_open_in_xarray(fs, world):
    # The whole kerchunk round: scan the HDF5 file through attachfs, keep the references with
    # their s3:// URLs, and read them back with xarray's zarr engine. zarr re-creates the
    # reference filesystem (and the attach filesystem inside it) from to_json().
    kerchunk_hdf = pytest.importorskip("kerchunk.hdf")
    xr = pytest.importorskip("xarray")
    uri = world.put("climate/t.nc", datasets.netcdf_bytes())
    with fs.open(uri) as f:
        refs = kerchunk_hdf.SingleHdf5ToZarr(f, uri, inline_threshold=100).translate()
    assert refs["refs"]["t/10.0.0"][0] == uri
    ref_fs = fsspec.filesystem("reference", fo=refs, fs={"s3": fs})
    with xr.open_dataset(ref_fs.get_mapper(""), engine="zarr", consolidated=False,
                         zarr_format=2) as ds:
        np.testing.assert_array_equal(ds["t"][10:12].values, datasets.temperature()[10:12])


def test_reference_filesystem_remote_protocol_alone_does_not_cover_s3_references(config,
                                                                                 world):
    # The documented limitation (docs/recipes/kerchunk.md): remote_protocol names the one
    # filesystem used for references of *that* protocol; s3:// references find none.
    refs, _ = kerchunk_refs(world, "cube-raw-unmapped.bin")
    ref_fs = fsspec.filesystem("reference", fo=refs, remote_protocol="attach",
                               remote_options={"tenant": TENANT, "config": config},
                               skip_instance_cache=True)
    with pytest.raises(KeyError, match="s3"):
        ref_fs.cat("v/0.0")


def test_reference_filesystem_with_references_rewritten_to_attach(config, world):
    refs, values = kerchunk_refs(world, "cube-raw-rewritten.bin")
    for key, ref in refs["refs"].items():
        if isinstance(ref, list):
            # attach://s3://..., not attach::s3://...: fsspec takes each reference's protocol
            # from what stands before its first "://".
            refs["refs"][key] = [f"attach://{ref[0]}", *ref[1:]]
    ref_fs = fsspec.filesystem("reference", fo=refs, remote_protocol="attach",
                               remote_options={"tenant": TENANT, "config": config})
    assert ref_fs.cat("v/0.0") + ref_fs.cat("v/1.0") == values.tobytes()


# --------------------------------------------------------------------------- file-likes


def test_an_open_file_is_a_binary_io_for_libraries_that_want_one(fs, world):
    with fs.open(world.uri("archives/docs.tar")) as f:
        assert f.readable() and f.seekable() and not f.writable()
        wrapped = io.BufferedReader(f)
        assert wrapped.read(5) == datasets.tar_bytes(ARCHIVE)[:5]
