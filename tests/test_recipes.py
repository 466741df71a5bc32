"""Every recipe page's code runs, against the emulators, and gives the data it promises.

The pages are written for a user: a config file ``attachfs.toml`` in the working directory,
the tenant ``acme``, and its bucket ``s3://acme-data``. This module builds exactly that world
(moto's S3, a config file pointing at it, the tenant claiming the bucket), then runs each page's
``python`` blocks in order, in one namespace, from that directory, and checks the names the page
leaves behind against the data that was uploaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import attachfs
import datasets

pytestmark = pytest.mark.peers

RECIPES = Path(__file__).resolve().parents[1] / "docs" / "recipes"
BUCKET = "acme-data"
CUBE = np.arange(40 * 50, dtype="f4").reshape(40, 50) / 8
ARCHIVE = {f"docs/{i:02d}.txt": f"document {i}\n".encode() for i in range(5)}
ORDERS = [datasets.orders(month) for month in range(3)]


def python_blocks(page: Path) -> list[str]:
    """The page's fenced ``python`` blocks, also inside admonitions (indented), in order."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for m in re.finditer(r"^( *)```python\n(.*?)^\1```", text, re.S | re.M):
        indent = len(m.group(1))
        blocks.append("\n".join(line[indent:] for line in m.group(2).splitlines()))
    return blocks


def config_toml(peers: Any) -> str:
    """The emulators' config as the TOML file a user keeps, plus the tenant and its bucket."""
    lines = []
    for section, table in peers.config()["platform"].items():
        lines.append(f"[platform.{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    lines += ["[tenants.acme]", f'direct = ["s3://{BUCKET}"]']
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def world(peers, tmp_path_factory) -> Path:
    peers.reset()  # the pages name a fixed bucket
    peers.make_s3_bucket(BUCKET)
    put = lambda key, data: peers.put_s3(BUCKET, key, data)  # noqa: E731
    for month, table in enumerate(ORDERS):
        put(f"orders/2026-0{month + 1}.parquet", datasets.parquet_bytes(table))
    put("orders/README.txt", b"monthly order exports")
    for key, data in datasets.zarr_files(CUBE, chunks=(10, 10)).items():
        put(f"cubes/temperature.zarr/{key}", data)
    put("climate/air.nc", datasets.netcdf_bytes())
    put("images/gradient.png", datasets.png_bytes(datasets.image()))
    put("archives/docs.tar.gz", datasets.tar_bytes(ARCHIVE, "gz"))
    for shard in range(2):
        put(f"shards/train-{shard:06d}.tar", datasets.tar_bytes(datasets.shard_members(shard)))
    home = tmp_path_factory.mktemp("recipes")
    (home / "attachfs.toml").write_text(config_toml(peers), encoding="utf-8")
    return home


def run_page(name: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    blocks = python_blocks(RECIPES / name)
    assert blocks, f"{name} has no python code"
    monkeypatch.chdir(home)
    attachfs.AttachFileSystem.clear_instance_cache()
    namespace: dict[str, Any] = {"__name__": f"recipe_{name.removesuffix('.md')}"}
    for i, block in enumerate(blocks):
        code = compile(block, f"docs/recipes/{name} (python block {i + 1})", "exec")
        exec(code, namespace)  # noqa: S102  the page's own code, as a user runs it
    return namespace


# --------------------------------------------------------------------------- what each page gives


def check_duckdb(ns: dict[str, Any]) -> None:
    got = pa.Table.from_pandas(ns["january"], preserve_index=False).sort_by("id")
    assert got.select(["id", "amount"]).equals(ORDERS[0].select(["id", "amount"]))
    every = pa.concat_tables(ORDERS).group_by("region").aggregate([("amount", "sum")])
    assert dict(ns["totals"]) == pytest.approx(
        dict(zip(every["region"].to_pylist(), every["amount_sum"].to_pylist(), strict=True)))


def check_zarr(ns: dict[str, Any]) -> None:
    np.testing.assert_array_equal(ns["window"], CUBE[10:20, 5:15])
    np.testing.assert_array_equal(ns["temperature"][...], CUBE)


def check_xarray(ns: dict[str, Any]) -> None:
    values = datasets.temperature()
    np.testing.assert_array_equal(ns["two_steps"], values[10:12])
    assert ns["mean"] == pytest.approx(float(values.mean()), rel=1e-6)
    np.testing.assert_array_equal(ns["first"], values[0])


def check_polars(ns: dict[str, Any]) -> None:
    assert ns["january"].to_arrow()["id"].to_pylist() == ORDERS[0]["id"].to_pylist()
    every = pa.concat_tables(ORDERS)
    eu = [i for i, r in zip(every["id"].to_pylist(), every["region"].to_pylist(), strict=True)
          if r == "eu"]
    assert sorted(ns["eu"]["id"].to_list()) == eu
    assert ns["eu"].columns == ["id", "amount"]


def check_webdataset(ns: dict[str, Any]) -> None:
    expected = []
    for shard in range(2):
        members = datasets.shard_members(shard)
        for name, data in members.items():
            if name.endswith(".txt"):
                key = name.removesuffix(".txt")
                expected.append((key, data.decode(), int(members[f"{key}.cls"])))
    assert ns["samples"] == expected


def check_kerchunk(ns: dict[str, Any]) -> None:
    values = datasets.temperature()
    np.testing.assert_array_equal(ns["two_steps"], values[10:12])
    assert ns["refs"]["refs"]["t/10.0.0"][0] == f"s3://{BUCKET}/climate/air.nc"
    assert ns["chunk"] == values[10].tobytes()


def check_images_and_tar(ns: dict[str, Any]) -> None:
    assert ns["size"] == (64, 48)
    np.testing.assert_array_equal(ns["pixels"], datasets.image())
    assert ns["documents"] == ARCHIVE


PAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "duckdb.md": check_duckdb,
    "zarr.md": check_zarr,
    "xarray.md": check_xarray,
    "polars.md": check_polars,
    "webdataset.md": check_webdataset,
    "kerchunk.md": check_kerchunk,
    "images-and-tar.md": check_images_and_tar,
}


@pytest.fixture
def restore_gopen_schemes() -> Any:
    """webdataset.md registers a handler in a module-global table; take it out afterwards."""
    gopen = pytest.importorskip("webdataset.gopen")
    saved = dict(gopen.gopen_schemes)
    yield
    gopen.gopen_schemes.clear()
    gopen.gopen_schemes.update(saved)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_recipe_page_runs_and_gives_the_data(page, world, monkeypatch, restore_gopen_schemes):
    namespace = run_page(page, world, monkeypatch)
    PAGES[page](namespace)


def test_every_client_recipe_page_is_run():
    # A new page for a client must be added to PAGES (and so run), not just to the docs.
    older = {"pandas.md", "pyarrow.md", "dask.md", "pytorch.md", "notebook.md"}
    assert {p.name for p in RECIPES.glob("*.md")} - older == set(PAGES)
