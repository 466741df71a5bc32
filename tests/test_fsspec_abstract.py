"""fsspec's own conformance suite (``fsspec.tests.abstract``), the parts that only read.

s3fs and gcsfs run these suites by subclassing ``AbstractFixtures`` with an ``fs`` and an
``fs_path`` fixture (their ``tests/derived/``). The suite builds its source trees with
``fs.makedirs/touch/pipe`` and removes them with ``fs.rm``; attachfs refuses writes, so here the
trees are written through the emulator's own client (:class:`Seeder`) into a fresh bucket per
test, and only the reading side, attachfs, is under test.

Which suites: ``AbstractGetTests`` (remote -> local). Copy, put, pipe, open and mv write to the
remote side and do not apply to a read-only filesystem.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

import fsspec.tests.abstract as abstract
import pytest

import attachfs
from stores import Store, new_store

pytestmark = pytest.mark.peers


class Seeder:
    """The few writes the suite's scenarios make, done with the emulator's own client.

    Object stores have no directories: ``makedirs``/``mkdir`` write nothing (a directory exists
    once a key is under it), and ``rm`` leaves the per-test bucket as it is.
    """

    def __init__(self, store: Store, root: str) -> None:
        self.store = store
        self.root = root.rstrip("/") + "/"

    def _key(self, path: str) -> str:
        assert path.startswith(self.root), (path, self.root)
        return path[len(self.root):]

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        pass

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        pass

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        self.store.put(self._key(path), b"")

    def pipe(self, path: str, value: bytes, **kwargs: Any) -> None:
        self.store.put(self._key(path), value)

    def rm(self, path: str, recursive: bool = False, **kwargs: Any) -> None:
        pass


class SeededReader:
    """What ``test_get_directory_recursive`` is handed as ``fs``: it creates its own source
    with ``fs.mkdir``/``fs.touch``, so those go to the seeder and ``get`` to attachfs."""

    def __init__(self, fs: Any, seeder: Seeder) -> None:
        self.fs, self.seeder = fs, seeder

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.seeder.mkdir(path)

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        self.seeder.touch(path)

    def get(self, rpath: Any, lpath: Any, recursive: bool = False, **kwargs: Any) -> Any:
        return self.fs.get(rpath, lpath, recursive=recursive, **kwargs)


class AttachFixtures(abstract.AbstractFixtures):
    @pytest.fixture(params=["s3", "gcs", "azure"])
    def store(self, request: pytest.FixtureRequest, peers: Any) -> Store:
        return new_store(request.param, peers)

    @pytest.fixture
    def seeder(self, store: Store, fs_path: str) -> Seeder:
        return Seeder(store, fs_path)

    @pytest.fixture
    def fs(self, peers: Any, store: Store) -> Any:
        return attachfs.filesystem(config=peers.config(), skip_instance_cache=True)

    @pytest.fixture
    def fs_path(self, store: Store) -> str:
        if store.backend == "azure":
            # The az:// form: in an https URL a "?" starts the query, so the suite's "fil?1"
            # glob can only be written this way.
            return f"az://{store.bucket}@{store.peers.azure_account}.blob.core.windows.net"
        return store.uri("").rstrip("/")

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False

    # The scenarios, written by the seeder instead of the filesystem under test.

    @pytest.fixture
    def fs_bulk_operations_scenario_0(self, seeder, fs_join, fs_path) -> str:
        return self._bulk_operations_scenario_0(seeder, fs_join, fs_path)

    @pytest.fixture
    def fs_glob_edge_cases_files(self, seeder, fs_join, fs_path) -> str:
        return self._glob_edge_cases_files(seeder, fs_join, fs_path)

    @pytest.fixture
    def fs_dir_and_file_with_same_name_prefix(self, seeder, fs_join, fs_path) -> str:
        return self._dir_and_file_with_same_name_prefix(seeder, fs_join, fs_path)

    @pytest.fixture
    def fs_10_files_with_hashed_names(self, seeder, fs_join, fs_path) -> str:
        return self._10_files_with_hashed_names(seeder, fs_join, fs_path)

    @pytest.fixture
    def fs_target(self, fs_join, fs_path) -> str:
        return fs_join(fs_path, "target")


class TestAttachGet(abstract.AbstractGetTests, AttachFixtures):
    def test_get_directory_recursive(self, fs, fs_join, fs_path, local_fs, local_join,
                                     local_target, seeder):
        super().test_get_directory_recursive(SeededReader(fs, seeder), fs_join, fs_path,
                                             local_fs, local_join, local_target)
