"""Hostile paths out of the ``attach`` protocol: every name handed out keeps ``attach`` and the
tenant; fsspec's caches never serve one tenant's bytes to another; ``get_file`` reads through
attachfs's own read path.

* ``unstrip_protocol`` is what fsspec uses to name a file to the outside (``OpenFile.full_name``,
  ``AbstractBufferedFile.full_name``, ``open_files``): a name that loses ``attach`` re-opens with
  s3fs and the ambient identity, skipping the tenant's rules.
* ``filecache::``, ``simplecache::`` and ``blockcache::`` key their cache directory by path only:
  a tenant that may not read a bucket must not get another tenant's cached copy of it. Wrapping
  is either tenant-safe or refused with a message that points to attachfs's own cache.
* ``get_file`` of a cloud URI must read as every other read does: ranged GETs pinned to the
  version of the first answer, attachfs's retries, no metadata round trips; an object replaced
  mid-download is an ``IntegrityError``, never a file mixing two versions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.callbacks import Callback

import attachfs
from attachfs import AccessRefused, IntegrityError
from fakes.faulty_proxy import FaultyProxy, Reset, Then

DATA = bytes(range(256)) * 1024 + b"end"   # 262,147 bytes
NEW = b"N" * len(DATA)


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("ATTACHFS_TENANT", raising=False)
    monkeypatch.delenv("ATTACHFS_CONFIG", raising=False)
    attachfs.AttachFileSystem.clear_instance_cache()
    yield
    attachfs.AttachFileSystem.clear_instance_cache()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from attachfs._read import retry  # the backoff seam

    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(retry, "_sleep", no_wait, raising=False)


@pytest.fixture
def world(peers: Any, names: Callable[[str], str], tmp_path: Path) -> dict[str, Any]:
    """An S3 bucket acme claims holding DATA; globex claims another bucket; mallory claims
    nothing. The config is a mapping and the same as a TOML file."""
    bucket = names("acme")
    peers.make_s3_bucket(bucket)
    peers.put_s3(bucket, "dir/doc.bin", DATA)
    config = peers.config()
    config["tenants"] = {"acme": {"direct": [f"s3://{bucket}"]},
                         "globex": {"direct": [f"s3://{names('globex')}"]},
                         "mallory": {"direct": []}}
    path = tmp_path / "attachfs.toml"
    path.write_text(_toml(config))
    return {"bucket": bucket, "uri": f"s3://{bucket}/dir/doc.bin", "config": config,
            "path": str(path)}


def _toml(mapping: dict[str, Any], prefix: str = "") -> str:
    import json

    scalars = {k: v for k, v in mapping.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in mapping.items() if isinstance(v, dict)}
    out = f"[{prefix}]\n" if prefix and (scalars or not tables) else ""
    out += "".join(f"{k} = {json.dumps(v)}\n" for k, v in scalars.items())
    return out + "".join(_toml(v, f"{prefix}.{k}" if prefix else k) for k, v in tables.items())


# --------------------------------------------------------------------------- names handed out

def _reopened(name: str) -> tuple[Any, str]:
    """What fsspec makes of ``name`` in another place: (filesystem, path)."""
    return fsspec.core.url_to_fs(name)


def _names_out(world: dict[str, Any]) -> dict[str, str]:
    """Every way fsspec and attachfs hand a file's name to the outside, for acme's object."""
    uri, bucket = world["uri"], world["bucket"]
    opts = {"tenant": "acme", "config": world["path"]}
    fs = attachfs.filesystem(**opts)
    with fs.open(uri) as f:
        file_name = f.full_name
    return {
        "fs.unstrip_protocol": fs.unstrip_protocol(uri),
        "AttachFile.full_name": file_name,
        "fsspec.open.full_name": fsspec.open(f"attach::{uri}", attach=opts).full_name,
        "open_files[glob].full_name": fsspec.open_files(
            f"attach::s3://{bucket}/dir/*.bin", attach=opts)[0].full_name,
        "open_files[list].full_name": fsspec.open_files(
            [f"attach::{uri}"], attach=opts)[0].full_name,
    }


def test_every_name_handed_out_keeps_the_attach_protocol(world: dict[str, Any]) -> None:
    """No name starts with the inner protocol (or no protocol at all, a local path)."""
    escaped = {k: v for k, v in _names_out(world).items()
               if not v.startswith(("attach::", "attach://"))}
    assert escaped == {}


def test_every_name_handed_out_reopens_in_attach_for_the_same_tenant(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Re-opened elsewhere (the config is found through ``$ATTACHFS_CONFIG``, no tenant is in
    the environment), each name gives an attach filesystem reading for acme."""
    names = _names_out(world)
    monkeypatch.setenv("ATTACHFS_CONFIG", world["path"])
    wrong = {}
    for where, name in names.items():
        fs, path = _reopened(name)
        if not isinstance(fs, attachfs.AttachFileSystem):
            wrong[where] = f"{name!r} re-opens with {type(fs).__name__}"
            continue
        tenant = fs.tenant if fs.tenant is not None else fs.route(path).tenant
        if tenant != "acme":
            wrong[where] = f"{name!r} re-opens for tenant {tenant!r}"
    assert wrong == {}


def test_a_reopened_name_reads_the_same_bytes_as_the_tenant(world: dict[str, Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``fsspec.open(full_name)`` with nothing else reads acme's object as acme."""
    name = fsspec.open(f"attach::{world['uri']}",
                       attach={"tenant": "acme", "config": world["path"]}).full_name
    monkeypatch.setenv("ATTACHFS_CONFIG", world["path"])
    with fsspec.open(name, "rb") as f:
        assert f.read() == DATA
    assert isinstance(fsspec.open(name).fs, attachfs.AttachFileSystem)


def test_http_names_keep_the_protocol_too(peers: Any, world: dict[str, Any]) -> None:
    """A plain https URL handed out by the attach filesystem stays inside it (the network
    guard applies when it is re-opened)."""
    url = f"{peers.http.url}/esc/x.bin"
    fs = attachfs.filesystem(tenant="acme", config=world["path"])
    assert fs.unstrip_protocol(url).startswith(("attach::", "attach://"))


# --------------------------------------------------------------------------- fsspec's caches

CACHES = ["filecache", "simplecache", "blockcache"]


def _points_to_attachfs_cache(err: BaseException) -> bool:
    return bool(re.search(r"cache=|\[cache\]", str(err)))


@pytest.mark.parametrize("reader", ["mallory", "globex", "unknown-tenant"])
@pytest.mark.parametrize("kind", CACHES)
def test_a_shared_cache_directory_never_serves_another_tenants_bytes(
        world: dict[str, Any], tmp_path: Path, kind: str, reader: str) -> None:
    """acme reads its object through ``kind::attach::`` into a cache directory; another tenant
    (one that may not read that bucket) opens the same URL with the same directory. Either the
    wrapping is refused for both, pointing to attachfs's own cache, or the other tenant is
    refused by the rules as if there were no cache."""
    url = f"{kind}::attach::{world['uri']}"
    storage = {kind: {"cache_storage": str(tmp_path / "shared-cache")}}
    try:
        with fsspec.open(url, attach={"tenant": "acme", "config": world["path"]},
                         **storage) as f:
            assert f.read() == DATA
    except Exception as err:  # noqa: BLE001 -- the refusal is checked just below
        assert _points_to_attachfs_cache(err), f"{kind} refused without saying what to use: {err}"
        return
    with pytest.raises((AccessRefused, PermissionError)):
        with fsspec.open(url, attach={"tenant": reader, "config": world["path"]},
                         **storage) as f:
            leaked = f.read()
            pytest.fail(f"{reader} got {len(leaked)} bytes of acme's object from the {kind}")


@pytest.mark.parametrize("kind", CACHES)
def test_a_shared_cache_directory_never_serves_a_reader_under_another_config(world: dict[str, Any],
                                                                 tmp_path: Path, kind: str,
                                                                 peers: Any) -> None:
    """Tenant acme fills the cache; a reader with another config whose tenant claims nothing
    (a second service on the same host) must not get the bytes from it."""
    storage = {kind: {"cache_storage": str(tmp_path / "shared-cache")}}
    url = f"{kind}::attach::{world['uri']}"
    try:
        with fsspec.open(url, attach={"tenant": "acme", "config": world["config"]},
                         **storage) as f:
            f.read()
    except Exception as err:  # noqa: BLE001
        assert _points_to_attachfs_cache(err), str(err)
        return
    other = peers.config()
    other["tenants"] = {"acme": {"direct": []}}  # the same tenant name, another config
    with pytest.raises((AccessRefused, PermissionError)):
        with fsspec.open(url, attach={"tenant": "acme", "config": other}, **storage) as f:
            f.read()


# --------------------------------------------------------------------------- get_file

def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1].split("/")[0])


@pytest.fixture(scope="module")
def proxies(peers: Any) -> Iterator[dict[str, FaultyProxy]]:
    upstream = {"s3": peers.s3_endpoint, "gcs": peers.gcs_endpoint,
                "azure": peers.azure_endpoint.split("/{account}")[0]}
    started = {b: FaultyProxy(_port(u)).start() for b, u in upstream.items()}
    yield started
    for proxy in started.values():
        proxy.stop()


@pytest.fixture(params=["s3", "gcs", "azure"])
def cloud(request: pytest.FixtureRequest, peers: Any, names: Callable[[str], str],
          proxies: dict[str, FaultyProxy]) -> dict[str, Any]:
    """An object of DATA on one backend, read through the fault-injecting proxy for tenant
    acme; ``replace()`` overwrites it with NEW behind the proxy's back."""
    backend, bucket = request.param, names("gf")
    if backend == "s3":
        peers.make_s3_bucket(bucket)
        put = lambda data: peers.put_s3(bucket, "obj.bin", data)  # noqa: E731
        uri = f"s3://{bucket}/obj.bin"
    elif backend == "gcs":
        peers.make_gcs_bucket(bucket)
        put = lambda data: peers.put_gcs(bucket, "obj.bin", data)  # noqa: E731
        uri = f"gs://{bucket}/obj.bin"
    else:
        peers.make_azure_container(bucket, public=True)
        put = lambda data: peers.put_azure(bucket, "obj.bin", data)  # noqa: E731
        uri = f"https://{peers.azure_account}.blob.core.windows.net/{bucket}/obj.bin"
    put(DATA)
    config = peers.config()
    platform = config["platform"]
    platform["aws"]["endpoint_url"] = proxies["s3"].url
    platform["gcp"]["endpoint_url"] = proxies["gcs"].url
    platform["azure"]["endpoint_url"] = proxies["azure"].url + "/{account}"
    config["tenants"] = {"acme": {"direct": [f"s3://{bucket}", f"gs://{bucket}"]}}
    proxy = proxies[backend]
    proxy.reset()
    return {"backend": backend, "uri": uri, "proxy": proxy, "replace": lambda: put(NEW),
            "fs": attachfs.filesystem(config=config, tenant="acme", skip_instance_cache=True)}


def test_get_file_never_writes_a_mix_of_two_versions(cloud: dict[str, Any],
                                                     tmp_path: Path) -> None:
    """The connection breaks 100,000 bytes into the download and the object is replaced before
    the next request: the download fails with IntegrityError, or holds one whole version."""
    cloud["proxy"].reset(Reset(after=100_000), Then(cloud["replace"]))
    out = tmp_path / "obj.bin"
    try:
        cloud["fs"].get_file(cloud["uri"], str(out))
    except IntegrityError:
        return
    got = out.read_bytes()
    assert got in (DATA, NEW), (f"{cloud['backend']}: a mix of two versions "
                                f"({got.count(b'N')} new bytes of {len(got)})")


class ReplaceOnFirstUpdate(Callback):
    """An fsspec callback that replaces the object once the first bytes are written."""

    def __init__(self, replace: Callable[[], None]) -> None:
        super().__init__()
        self.replace = replace
        self.done = False

    def call(self, *args: Any, **kwargs: Any) -> None:
        if not self.done and self.value > 0:
            self.done = True
            self.replace()


def test_get_file_replaced_mid_download_is_an_integrity_error(cloud: dict[str, Any],
                                                              tmp_path: Path) -> None:
    """``get_file(..., chunk_size=64 KiB)`` (the keyword the http get_file takes) reads part by
    part; the object is replaced after the first part: IntegrityError, and the requests the
    emulator saw are exactly the two object GETs, the second pinned to the first's version."""
    out = tmp_path / "obj.bin"
    with pytest.raises(IntegrityError):
        cloud["fs"].get_file(cloud["uri"], str(out), chunk_size=64 * 1024,
                             callback=ReplaceOnFirstUpdate(cloud["replace"]))
    seen = cloud["proxy"].seen
    assert [s.method for s in seen] == ["GET", "GET"], [(s.method, s.target) for s in seen]
    second = seen[1]
    pinned = ("If-Match" in second.headers or "ifGenerationMatch=" in second.target)
    assert pinned, (second.target, dict(second.headers))


def test_get_file_makes_no_metadata_requests(cloud: dict[str, Any], tmp_path: Path) -> None:
    """The read path learns size and version from the first ranged GET: no HEAD, no listing,
    no metadata GET, one request for an object this small."""
    out = tmp_path / "obj.bin"
    cloud["fs"].get_file(cloud["uri"], str(out))
    assert out.read_bytes() == DATA
    seen = [(s.method, s.target) for s in cloud["proxy"].seen]
    assert len(seen) == 1 and seen[0][0] == "GET", seen
    if cloud["backend"] == "gcs":
        assert "alt=media" in seen[0][1], seen

