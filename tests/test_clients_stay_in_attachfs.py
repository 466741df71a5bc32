"""No client's read ever leaves attachfs.

A tool given an attach filesystem must read every byte through it: never through an s3fs,
gcsfs, adlfs or http filesystem of its own making (which would read with the ambient identity
and skip the tenant rules), and never as the platform's own identity when the tenant has an
integration.

The world is the delegated setup of tests/test_tenancy_aws.py, against moto with IAM
enforcement on: the platform's IAM user can read ``platform-readable`` only; the tenant's role
(same account, ExternalId) can read ``acme-data`` only. The clients read ``acme-data`` for the
tenant, so the platform's own keys would be refused there. Three things are checked per client:

* the data is right;
* no read entry point of s3fs, gcsfs, adlfs or fsspec's HTTP filesystem was entered, while
  attachfs's were (entries are recorded by wrapping those methods; the calls run unchanged);
* every request to S3 was signed with the role's session credentials (a recording proxy in
  front of moto reads the access key id from each Authorization header).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

import attachfs
import datasets
from fakes.authz_proxy import AuthorizingProxy

pytestmark = pytest.mark.peers

ACCOUNT = "123456789012"
ROLE = "AttachmentReader"
EXTERNAL_ID = "acme-5f0c"
TENANT = "acme"
CUBE = np.arange(30 * 20, dtype="f4").reshape(30, 20)


@pytest.fixture(scope="module")
def aws(peers) -> Iterator[dict[str, Any]]:
    """Seed IAM and S3 with enforcement off, then switch it on for the module."""
    peers.reset()
    suffix = uuid.uuid4().hex[:8]
    buckets = {"acme": f"acme-data-{suffix}", "platform": f"platform-readable-{suffix}"}
    for bucket in buckets.values():
        peers.make_s3_bucket(bucket)
    acme = buckets["acme"]
    for month in range(2):
        peers.put_s3(acme, f"orders/2026-0{month + 1}.parquet",
                     datasets.parquet_bytes(datasets.orders(month)))
    for key, data in datasets.zarr_files(CUBE, chunks=(10, 10)).items():
        peers.put_s3(acme, f"cube.zarr/{key}", data)
    peers.put_s3(acme, "climate/t.nc", datasets.netcdf_bytes())
    peers.put_s3(acme, "raw/values.bin", b"HEADER--" + CUBE.tobytes())
    seeded = peers.seed_delegation(platform_buckets=[buckets["platform"]], role_name=ROLE,
                                   role_buckets=[acme], external_id=EXTERNAL_ID)
    with AuthorizingProxy(peers.s3_endpoint, preserve_host=True) as storage:
        peers.enable_iam()
        try:
            yield {"buckets": buckets, "keys": seeded["keys"], "storage": storage,
                   "peers": peers}
        finally:
            peers.disable_iam()


@pytest.fixture
def config(aws) -> dict[str, Any]:
    peers = aws["peers"]
    return {
        "platform": {"aws": {"role_name": ROLE, "account_id": ACCOUNT,
                             "endpoint_url": aws["storage"].url,
                             "sts_endpoint_url": peers.s3_endpoint, "region": "us-east-1"}},
        "tenants": {TENANT: {"aws": {"account_id": ACCOUNT, "external_id": EXTERNAL_ID}}},
    }


@pytest.fixture(autouse=True)
def platform_identity(aws, monkeypatch) -> None:
    """The process runs as the platform's IAM user: its keys are the ambient identity."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", aws["keys"]["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws["keys"]["SecretAccessKey"])
    aws["storage"].clear_requests()


@pytest.fixture
def fs(config, entered) -> Any:
    # Built after `entered` has wrapped the read methods: an async filesystem binds its sync
    # forms (cat_ranges, cat_file, ...) to the coroutine methods when it is constructed.
    return attachfs.filesystem(tenant=TENANT, config=config, skip_instance_cache=True)


def acme(aws, key: str = "") -> str:
    return f"s3://{aws['buckets']['acme']}/{key}"


# --------------------------------------------------------------------------- entry points


def _inner_classes() -> list[type]:
    import adlfs
    import gcsfs
    import s3fs
    from fsspec.implementations.http import HTTPFileSystem

    return [s3fs.S3FileSystem, gcsfs.GCSFileSystem, adlfs.AzureBlobFileSystem, HTTPFileSystem]


READS = ("_cat_file", "_cat_ranges", "_get_file", "_open")
INNER_PACKAGES = ("s3fs", "gcsfs", "adlfs", "fsspec.implementations.http")


@pytest.fixture
def entered(monkeypatch) -> dict[str, list[str]]:
    """``{"inner": [...], "attach": [...]}``: which read entry points ran, as "Class.method".

    Each inner filesystem's own definition of a read method is wrapped (the ones it inherits
    from fsspec's base classes are attachfs's too); the wrapper records and calls through.
    The sync forms (cat_file, open, ...) all run through these.
    """
    seen: dict[str, list[str]] = {"inner": [], "attach": []}

    def record(kind: str, owner: type, name: str) -> None:
        original = owner.__dict__[name]
        if inspect.iscoroutinefunction(original):
            @functools.wraps(original)
            async def wrapper(self, *args, **kwargs):
                seen[kind].append(f"{type(self).__name__}.{name}")
                return await original(self, *args, **kwargs)
        else:
            @functools.wraps(original)
            def wrapper(self, *args, **kwargs):
                seen[kind].append(f"{type(self).__name__}.{name}")
                return original(self, *args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)

    for cls in _inner_classes():
        for name in READS:
            owner = next((c for c in cls.__mro__ if name in c.__dict__), None)
            if owner is not None and owner.__module__.startswith(INNER_PACKAGES):
                record("inner", owner, name)
    for name in ("_cat_file", "_cat", "_cat_ranges", "_open"):
        cls = attachfs.AttachFileSystem
        record("attach", next(c for c in cls.__mro__ if name in c.__dict__), name)
    return seen


def signed_by(aws) -> set[str]:
    """The access key ids that signed the requests to the tenant's bucket."""
    ids = set()
    for r in aws["storage"].requests:
        if r.path.startswith(f"/{aws['buckets']['acme']}"):
            m = re.search(r"Credential=([^/]+)/", r.headers.get("Authorization", ""))
            ids.add(m.group(1) if m else "<unsigned>")
    return ids


def assert_stayed_in_attachfs(aws, entered: dict[str, list[str]]) -> None:
    assert not entered["inner"], (
        f"a client read through an inner filesystem directly: {sorted(set(entered['inner']))}")
    assert entered["attach"], "no read went through attachfs at all"
    keys = signed_by(aws)
    assert keys, "no request reached the tenant's bucket"
    assert aws["keys"]["AccessKeyId"] not in keys, "a read was signed as the platform itself"
    assert all(k.startswith("ASIA") for k in keys), (
        f"every read must be signed with the role's session credentials: {keys}")


# --------------------------------------------------------------------------- the clients


def test_the_platform_identity_is_denied_the_tenants_bucket(aws):
    # The premise: an ambient read of acme-data (as a client with its own s3fs would make)
    # is refused by moto, so only the role can read it.
    import boto3
    import botocore.exceptions

    s3 = boto3.client("s3", endpoint_url=aws["peers"].s3_endpoint, region_name="us-east-1")
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied|Forbidden|403"):
        s3.get_object(Bucket=aws["buckets"]["acme"], Key="raw/values.bin")


def test_duckdb(fs, aws, entered):
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    con.register_filesystem(fs)
    got = con.sql(f"select * from read_parquet('attach://{acme(aws, 'orders/*.parquet')}')"
                  ).to_arrow_table().sort_by("id")
    assert got.equals(pa.concat_tables([datasets.orders(0), datasets.orders(1)]))
    assert_stayed_in_attachfs(aws, entered)


def test_zarr_mapper(fs, aws, entered):
    zarr = pytest.importorskip("zarr")
    array = zarr.open_array(fs.get_mapper(acme(aws, "cube.zarr")), mode="r")
    np.testing.assert_array_equal(array[...], CUBE)
    assert_stayed_in_attachfs(aws, entered)


def test_zarr_url_with_storage_options(config, aws, entered):
    zarr = pytest.importorskip("zarr")
    array = zarr.open_array(f"attach::{acme(aws, 'cube.zarr')}", mode="r",
                            storage_options={"tenant": TENANT, "config": config})
    np.testing.assert_array_equal(array[...], CUBE)
    assert_stayed_in_attachfs(aws, entered)


def test_xarray_h5netcdf(fs, aws, entered):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    with fs.open(acme(aws, "climate/t.nc")) as f, xr.open_dataset(f, engine="h5netcdf") as ds:
        values = ds["t"][5:7].values
    np.testing.assert_array_equal(values, datasets.temperature()[5:7])
    assert_stayed_in_attachfs(aws, entered)


def test_polars_over_a_pyarrow_dataset(fs, aws, entered):
    pl = pytest.importorskip("polars")
    dataset = pads.dataset(acme(aws, "orders/"), format="parquet", filesystem=fs)
    got = pl.scan_pyarrow_dataset(dataset).select(pl.col("id").sum()).collect().item()
    assert got == sum(range(1000))
    assert_stayed_in_attachfs(aws, entered)


def test_reference_filesystem_with_s3_references(fs, aws, entered):
    refs = {"version": 1, "refs": {
        "raw": [acme(aws, "raw/values.bin"), 8, CUBE.nbytes],
        "head": [acme(aws, "raw/values.bin"), 0, 8],
    }}
    ref_fs = fsspec.filesystem("reference", fo=refs, fs={"s3": fs})
    assert ref_fs.cat("head") == b"HEADER--"
    assert np.frombuffer(ref_fs.cat("raw"), dtype="f4").reshape(CUBE.shape).tolist() == (
        CUBE.tolist())
    assert_stayed_in_attachfs(aws, entered)


def test_a_filesystem_rebuilt_from_json_reads_as_the_tenant(fs, aws, entered):
    # What zarr, Dask and kerchunk do with the filesystem they are handed.
    back = fsspec.AbstractFileSystem.from_json(fs.to_json())
    assert json.loads(fs.to_json())["tenant"] == TENANT
    assert back.cat_file(acme(aws, "raw/values.bin"), start=0, end=8) == b"HEADER--"
    assert_stayed_in_attachfs(aws, entered)


def test_the_checks_catch_a_client_that_reads_around_attachfs(aws, entered, monkeypatch):
    # The kerchunk trap (docs/recipes/kerchunk.md): given s3:// references and no filesystem
    # for them, fsspec builds an s3fs of its own, which reads as the ambient (platform)
    # identity. Both checks above must see that. That s3fs's endpoint is pointed at the
    # recording proxy, so nothing leaves the machine.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", aws["storage"].url)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    refs = {"version": 1, "refs": {"head": [acme(aws, "raw/values.bin"), 0, 8]}}
    ref_fs = fsspec.filesystem("reference", fo=refs, skip_instance_cache=True)
    try:
        with pytest.raises(Exception, match="Forbidden|AccessDenied|head"):  # noqa: B017
            ref_fs.cat("head")
        assert any(name.startswith("S3FileSystem.") for name in entered["inner"])
        assert aws["keys"]["AccessKeyId"] in signed_by(aws)
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
