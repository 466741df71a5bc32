"""Reads through the ``attach`` protocol against the real peers, one row per backend."""

from __future__ import annotations

import io
import os
import pickle

import fsspec
import pytest

import attachfs
from attachfs import ReadOnlyError
from stores import BACKENDS, new_store

DATA = bytes(range(256)) * 1000 + b"tail"  # 256,004 bytes: several inner blocks


@pytest.fixture
def fs(attach_config):
    return attachfs.filesystem(config=attach_config, skip_instance_cache=True)


@pytest.fixture(params=BACKENDS)
def store(request, peers):
    return new_store(request.param, peers)


def test_full_read_and_ranges(fs, store):
    uri = store.put("dir/obj.bin", DATA)
    assert fs.cat_file(uri) == DATA
    assert fs.cat_file(uri, start=10, end=20) == DATA[10:20]
    assert fs.cat_file(uri, start=len(DATA) - 5) == DATA[-5:]
    assert fs.cat_ranges([uri, uri], [0, 1000], [3, 1010]) == [DATA[:3], DATA[1000:1010]]


def test_open_seek_read(fs, store):
    uri = store.put("obj.bin", DATA)
    with fs.open(uri) as f:
        assert f.read(4) == DATA[:4]
        f.seek(200_000)
        assert f.read(10) == DATA[200_000:200_010]
        f.seek(-4, io.SEEK_END)
        assert f.read() == b"tail"
        f.seek(0)
        assert f.read() == DATA
    with attachfs.open(uri, config=fs.config) as f:
        assert f.read() == DATA
    # A first block smaller than the object: the size must come from the response's
    # Content-Range, not from the length of the first range.
    with fs.open(uri, block_size=4096) as f:
        assert f.size == len(DATA)
        assert f.read() == DATA


def test_text_mode(fs, store):
    uri = store.put("note.txt", "héllo\nwörld\n".encode())
    with fs.open(uri, "r", encoding="utf-8") as f:
        assert f.readlines() == ["héllo\n", "wörld\n"]


def test_metadata(fs, store):
    uri = store.put("a/b/c.bin", DATA)
    assert fs.exists(uri)
    assert fs.size(uri) == len(DATA)
    info = fs.info(uri)
    assert info["name"] == uri or store.backend == "http"
    assert info["size"] == len(DATA)
    assert not fs.exists(store.uri("a/b/missing.bin"))


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_listing_returns_uris_that_open(fs, peers, backend):
    store = new_store(backend, peers)
    uris = {store.put(k, k.encode()) for k in ("x/1.csv", "x/2.csv", "x/sub/3.csv", "x/4.txt")}
    assert set(fs.find(store.uri("x/"))) == uris
    listed = fs.ls(store.uri("x/"), detail=False)
    assert store.uri("x/1.csv") in listed and store.uri("x/4.txt") in listed
    globbed = fs.glob(store.uri("x/*.csv"))
    assert globbed == sorted([store.uri("x/1.csv"), store.uri("x/2.csv")])
    for uri in fs.find(store.uri("x/")):
        assert fs.cat_file(uri) == uri.rsplit(store.bucket + "/", 1)[1].encode()


def test_cat_mixed_backends_concurrently(fs, peers):
    uris = {}
    for backend in BACKENDS:
        store = new_store(backend, peers)
        data = f"{backend}-payload".encode() * 100
        uris[store.put("mixed/obj.jpg", data)] = data
    got = fs.cat(list(uris))
    assert got == uris


def test_cat_on_error_omit_and_return(fs, peers):
    s3 = new_store("s3", peers)
    good = s3.put("good", b"ok")
    missing = s3.uri("missing")
    assert fs.cat([good, missing], on_error="omit") == {good: b"ok"}
    out = fs.cat([good, missing], on_error="return")
    assert out[good] == b"ok" and isinstance(out[missing], FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        fs.cat([good, missing])


def test_get_downloads(fs, store, tmp_path):
    uri = store.put("dl/file.bin", DATA)
    fs.get(uri, str(tmp_path / "file.bin"))
    assert (tmp_path / "file.bin").read_bytes() == DATA


def test_get_recursive(fs, peers, tmp_path):
    store = new_store("s3", peers)
    store.put("tree/a.txt", b"A")
    store.put("tree/sub/b.txt", b"B")
    fs.get(store.uri("tree/"), str(tmp_path / "out") + "/", recursive=True)
    got = {p.relative_to(tmp_path / "out").as_posix(): p.read_bytes()
           for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert got == {"a.txt": b"A", "sub/b.txt": b"B"}


def test_missing_object_names_the_uri(fs, store):
    store.put("present", b"x")
    uri = store.uri("absent/thing.bin")
    # open() makes no request (file.py); a missing object surfaces at the first read.
    for call in (fs.cat_file, fs.info, lambda u: fs.open(u).read(1), lambda u: fs.open(u).size):
        with pytest.raises(FileNotFoundError) as exc:
            call(uri)
        assert "absent/thing.bin" in str(exc.value)


@pytest.mark.parametrize("uri,what", [
    ("s3://", "bucket"),
    ("file:///etc/passwd", "file"),
    ("ftp://host/x", "ftp"),
    ("javascript:alert(1)", "javascript"),
    ("s3://Bad_Bucket/k", "Bad_Bucket"),
])
def test_malformed_uri_is_value_error(fs, uri, what):
    with pytest.raises(ValueError) as exc:
        fs.cat_file(uri)
    assert what in str(exc.value)
    assert not isinstance(exc.value, ReadOnlyError)


@pytest.mark.parametrize("mode", ["wb", "ab", "xb", "r+b", "w"])
def test_write_modes_are_refused(fs, peers, mode):
    store = new_store("s3", peers)
    uri = store.put("k", b"original")
    with pytest.raises(ReadOnlyError, match="read-only"):
        with fs.open(uri, mode) as f:
            f.write(b"new")
    with pytest.raises(ReadOnlyError):
        fs.pipe_file(uri, b"new")
    with pytest.raises(ReadOnlyError):
        fs.rm(uri)
    assert fs.cat_file(uri) == b"original"


def test_chained_url_and_open_files(peers, attach_config):
    store = new_store("gcs", peers)
    for i in range(3):
        store.put(f"g/{i}.txt", f"file {i}".encode())
    with fsspec.open(store.chained("g/1.txt"), "rb", attach={"config": attach_config}) as f:
        assert f.read() == b"file 1"
    files = fsspec.open_files(store.chained("g/*.txt"), "rb", attach={"config": attach_config})
    # A chained filesystem names things as the inner protocol strips them (bucket/key), as
    # fsspec does for gs:// itself; the full name keeps attach.
    assert [f.path for f in files] == [f"{store.bucket}/g/{i}.txt" for i in range(3)]
    assert [f.full_name for f in files] == [f"attach://{store.uri(f'g/{i}.txt')}"
                                            for i in range(3)]
    for i, of in enumerate(files):
        with of as f:
            assert f.read() == f"file {i}".encode()


def test_filesystem_pickles_as_a_recipe(attach_config):
    fs = attachfs.filesystem(config=attach_config, skip_instance_cache=True)
    clone = pickle.loads(pickle.dumps(fs))
    assert clone.config == fs.config and clone.tenant == fs.tenant


def test_entry_point_registers_in_a_new_process():
    import subprocess
    import sys

    # The entry point (not an import-time side effect) is what makes "attach" known: fsspec
    # knows the protocol before attachfs is imported, and importing attachfs registers nothing.
    code = ("import sys, importlib, fsspec; r = importlib.import_module('fsspec.registry'); "
            "assert 'attachfs' not in sys.modules; "
            "assert r.known_implementations['attach']['class'] == "
            "'attachfs.AttachFileSystem'; "
            "import attachfs; assert 'attach' not in r._registry; "
            "fs = fsspec.filesystem('attach'); "
            "assert type(fs).__module__ == 'attachfs._filesystem', type(fs); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "ATTACHFS_CONFIG": ""}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
