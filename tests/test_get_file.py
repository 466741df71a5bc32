"""``get_file``/``get`` through attachfs's own read path, with fsspec's ``Callback``.

Progress is reported the way fsspec reports it (``set_size`` once, ``relative_update`` per
part), so a progress bar built on fsspec's callbacks (the CLI's, tqdm's) works unchanged; and a
download that fails leaves nothing behind, not a truncated file that looks whole.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from fsspec.callbacks import Callback

import attachfs
from attachfs import IntegrityError
from stores import BACKENDS, new_store

pytestmark = pytest.mark.peers

DATA = bytes(range(256)) * 700  # 179,200 bytes: four parts of 48 KiB


class Recorder(Callback):
    """Every call fsspec's callback interface receives."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int | None] = []
        self.updates: list[int] = []
        self.children: list[Recorder] = []

    def set_size(self, size: int | None) -> None:
        self.sizes.append(size)
        super().set_size(size)

    def relative_update(self, inc: int = 1) -> None:
        self.updates.append(inc)
        super().relative_update(inc)

    def branched(self, path_1: str, path_2: str, **kwargs: Any) -> Callback:
        child = Recorder()
        self.children.append(child)
        return child


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, peers: Any) -> Any:
    return new_store(request.param, peers)


@pytest.fixture
def fs(attach_config: dict[str, Any]) -> Any:
    return attachfs.filesystem(config=attach_config, skip_instance_cache=True)


def test_get_file_reports_the_size_then_every_part(store: Any, fs: Any, tmp_path: Path) -> None:
    uri = store.put("big.bin", DATA)
    progress = Recorder()
    fs.get_file(uri, str(tmp_path / "big.bin"), chunk_size=48 * 1024, callback=progress)
    assert (tmp_path / "big.bin").read_bytes() == DATA
    assert progress.sizes == [len(DATA)]
    assert progress.updates == [48 * 1024] * 3 + [len(DATA) - 3 * 48 * 1024]
    assert progress.value == len(DATA)


def test_get_of_many_files_reports_per_file_and_per_byte(store: Any, fs: Any,
                                                          tmp_path: Path) -> None:
    uris = [store.put(f"many/{i}.bin", DATA[: 1000 * (i + 1)]) for i in range(3)]
    progress = Recorder()
    fs.get(uris, [str(tmp_path / f"{i}.bin") for i in range(3)], callback=progress)
    assert progress.sizes == [3] and progress.value == 3
    assert sorted(child.value for child in progress.children) == [1000, 2000, 3000]
    for i in range(3):
        assert (tmp_path / f"{i}.bin").read_bytes() == DATA[: 1000 * (i + 1)]


def test_get_file_of_an_empty_object_writes_an_empty_file(store: Any, fs: Any,
                                                          tmp_path: Path) -> None:
    uri = store.put("empty.bin", b"")
    progress = Recorder()
    fs.get_file(uri, str(tmp_path / "empty.bin"), callback=progress)
    assert (tmp_path / "empty.bin").read_bytes() == b""
    assert progress.sizes == [0] and progress.value == 0


def test_get_file_into_a_file_object(store: Any, fs: Any) -> None:
    uri = store.put("obj.bin", DATA)
    out = io.BytesIO()
    fs.get_file(uri, out, chunk_size=64 * 1024)
    assert out.getvalue() == DATA


def test_a_failed_download_leaves_no_file(store: Any, fs: Any, tmp_path: Path) -> None:
    target = tmp_path / "missing.bin"
    with pytest.raises(FileNotFoundError):
        fs.get_file(store.uri("missing.bin"), str(target))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_keeps_the_earlier_copy(store: Any, fs: Any, tmp_path: Path) -> None:
    target = tmp_path / "copy.bin"
    target.write_bytes(b"yesterday's copy")
    with pytest.raises(FileNotFoundError):
        fs.get_file(store.uri("missing.bin"), str(target))
    assert list(tmp_path.iterdir()) == [target]
    assert target.read_bytes() == b"yesterday's copy"


def test_a_replaced_object_leaves_no_file(peers: Any, fs: Any, tmp_path: Path) -> None:
    store = new_store("s3", peers)
    uri = store.put("obj.bin", DATA)

    class Replace(Callback):
        def call(self, *args: Any, **kwargs: Any) -> None:
            if self.value and self.value < len(DATA):
                store.put("obj.bin", b"N" * len(DATA))

    target = tmp_path / "obj.bin"
    with pytest.raises(IntegrityError):
        fs.get_file(uri, str(target), chunk_size=64 * 1024, callback=Replace())
    assert list(tmp_path.iterdir()) == []


def test_get_file_refuses_an_argument_it_does_not_take(store: Any, fs: Any,
                                                       tmp_path: Path) -> None:
    uri = store.put("obj.bin", b"x")
    with pytest.raises(ValueError, match="chunksize.*did you mean 'chunk_size'"):
        fs.get_file(uri, str(tmp_path / "x"), chunksize=10)


@pytest.mark.parametrize("validator", ["none", "weak"])
def test_an_http_object_with_no_version_is_not_pieced_together_from_parts(
        peers: Any, fs: Any, tmp_path: Path, validator: str) -> None:
    # With no strong ETag nothing pins the later parts to the first one's object: a
    # replacement between parts would leave a file of two objects. After the first part the
    # rest is read in one answer, so the file is one object, whichever it is.
    path = f"/nover-{validator}/obj.bin"
    headers = {"ETag": None} if validator == "none" else {"ETag": 'W/"v1"'}
    peers.http.put(path, DATA, headers=headers)
    uri = f"{peers.http.url}{path}"

    class Replace(Callback):
        def call(self, *args: Any, **kwargs: Any) -> None:
            if self.value and self.value < len(DATA):
                peers.http.put(path, b"N" * len(DATA), headers=headers)

    peers.http.clear_requests()
    target = tmp_path / "obj.bin"
    fs.get_file(uri, str(target), chunk_size=48 * 1024, callback=Replace())
    got = target.read_bytes()
    assert got in (DATA, b"N" * len(DATA)), "the file mixes two versions of the object"
    gets = [r for r in peers.http.requests if r.method == "GET" and r.path == path]
    assert len(gets) == 2, [r.headers.get("Range") for r in gets]
