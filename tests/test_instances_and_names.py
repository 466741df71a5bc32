"""What an instance is, and the names it hands out.

* fsspec's instance cache is keyed by the resolved tenant and the config's content;
  ``storage_options`` is the secret-free recipe (``to_json``, pickles), so a rebuilt filesystem
  is equal to the original, hashes alike, and reads as the same tenant.
* An instance built before its config file changed refuses to read until it is rebuilt; one
  whose file was only touched reads on.
* Precedence: an explicit argument, then fsspec's own configuration, then ``$ATTACHFS_*``.
* A handed-out name (``attach://TENANT@URI``) rebuilds a filesystem for that tenant, and is
  refused by a filesystem of another tenant, whichever way it is read.
* fsspec's caching filesystems are refused however they are wrapped around attach.

No test here makes a request: the objects are on a closed local port.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import fsspec
import fsspec.implementations.cached
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attachfs
from attachfs import AccessRefused, ConfigError

NOWHERE = "http://127.0.0.1:9"


def config_text(acme_claims: str = '"s3://acme-bucket"') -> str:
    return (f'[platform.aws]\nendpoint_url = "{NOWHERE}"\n'
            f"[tenants.acme]\ndirect = [{acme_claims}]\n"
            '[tenants.globex]\ndirect = ["s3://globex-bucket"]\n')


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ATTACHFS_TENANT", "ATTACHFS_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(fsspec.config.conf, "attach", raising=False)
    attachfs.AttachFileSystem.clear_instance_cache()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "attachfs.toml"
    p.write_text(config_text())
    return p


def rewrite(path: Path, text: str) -> None:
    st_ = path.stat()
    path.write_text(text)
    os.utime(path, ns=(st_.st_mtime_ns + 10**9, st_.st_mtime_ns + 10**9))


# --------------------------------------------------------------------------- identity

def test_storage_options_are_the_recipe_not_the_arguments(path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setenv("ATTACHFS_TENANT", "acme")
    fs = fsspec.filesystem("attach", config=attachfs.load_config(path), cache=tmp_path / "c",
                           batch_size=7)
    assert fs.storage_options == {"tenant": "acme", "config": str(path),
                                  "cache": str(tmp_path / "c"), "batch_size": 7}
    back = pickle.loads(pickle.dumps(fs))
    assert back == fs and hash(back) == hash(fs)
    attachfs.AttachFileSystem.clear_instance_cache()
    again = fsspec.AbstractFileSystem.from_json(fs.to_json())
    assert again == fs and again is not fs and again.cache.directory == str(tmp_path / "c")


def test_a_cache_object_travels_with_its_settings(tmp_path: Path) -> None:
    from attachfs._cache import DiskCache

    cache = DiskCache(tmp_path / "c", max_bytes=10_000, ttl_seconds=60)
    fs = attachfs.filesystem(cache=cache, skip_instance_cache=True)
    back = fsspec.AbstractFileSystem.from_json(fs.to_json())
    assert (back.cache.directory, back.cache.max_bytes, back.cache.ttl_seconds) == (
        cache.directory, 10_000, 60)


def test_the_same_content_is_one_instance_and_other_content_another(path: Path) -> None:
    a = attachfs.filesystem(tenant="acme", config=str(path))
    assert a is fsspec.filesystem("attach", tenant="acme", config=str(path))
    assert a is attachfs.filesystem(tenant="acme", config=attachfs.load_config(path))
    rewrite(path, config_text('"s3://acme-bucket", "s3://more"'))
    b = attachfs.filesystem(tenant="acme", config=str(path))
    assert b is not a and b != a


# --------------------------------------------------------------------------- a held instance

def test_a_held_instance_refuses_after_its_config_changed(path: Path) -> None:
    fs = attachfs.filesystem(tenant="acme", config=str(path))
    assert fs.route("s3://acme-bucket/k").claim is not None
    rewrite(path, config_text('"s3://elsewhere"'))
    with pytest.raises(ConfigError, match="changed on disk.*rebuilt"):
        fs.route("s3://acme-bucket/k")
    with pytest.raises(ConfigError, match="changed on disk"):
        fs.open("s3://acme-bucket/k")
    with pytest.raises(AccessRefused):  # a new one follows the file as it is now
        attachfs.filesystem(tenant="acme", config=str(path)).route("s3://acme-bucket/k")


def test_a_held_instance_reads_on_when_the_file_was_only_touched(path: Path) -> None:
    fs = attachfs.filesystem(tenant="acme", config=str(path))
    rewrite(path, config_text())
    assert fs.route("s3://acme-bucket/k").claim is not None


def test_a_held_instance_refuses_when_its_config_file_is_gone(path: Path) -> None:
    fs = attachfs.filesystem(tenant="acme", config=str(path))
    path.unlink()
    with pytest.raises(ConfigError):
        fs.route("s3://acme-bucket/k")


# --------------------------------------------------------------------------- precedence

def test_fsspec_configuration_beats_the_environment(path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTACHFS_TENANT", "globex")
    monkeypatch.setitem(fsspec.config.conf, "attach", {"tenant": "acme", "config": str(path)})
    assert attachfs.filesystem().tenant == "acme"
    assert attachfs.filesystem(tenant="globex").tenant == "globex"
    assert attachfs.explain("s3://acme-bucket/k").tenant == "acme"


# --------------------------------------------------------------------------- names

TENANT_NAMES = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
                       min_size=1, max_size=64)
KEYS = st.text(st.characters(codec="utf-8", exclude_characters="\x00?#*[",
                             exclude_categories=("Cs", "Cc")), min_size=1, max_size=30,
                ).filter(lambda key: "::" not in key)  # fsspec's chain separator: see below


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tenant=TENANT_NAMES, key=KEYS, scheme=st.sampled_from(["s3", "gs"]))
def test_property_a_handed_out_name_rebuilds_the_same_tenant_and_object(
        tenant: str, key: str, scheme: str) -> None:
    uri = f"{scheme}://bucket/{key}"
    config = {"tenants": {tenant: {"direct": [f"{scheme}://bucket"]}}}
    fs = attachfs.filesystem(tenant=tenant, config=config, skip_instance_cache=True)
    name = fs.unstrip_protocol(uri)
    assert name == f"attach://{tenant}@{uri}"
    again, path = fsspec.core.url_to_fs(name, config=config)
    assert isinstance(again, attachfs.AttachFileSystem) and again.tenant == tenant
    assert again.route(path).uri == fs.route(uri).uri
    assert again.unstrip_protocol(path) == name


def test_a_key_holding_the_chain_separator_is_read_by_the_filesystem_not_by_fsspec_name() -> None:
    # fsspec splits every URL at "::" (attach::s3://...), so such a name cannot pass through
    # fsspec.open; the filesystem's own methods take it whole, and fsspec's refusal says why.
    uri = "s3://bucket/a::"
    config = {"tenants": {"acme": {"direct": ["s3://bucket"]}}}
    fs = attachfs.filesystem(tenant="acme", config=config, skip_instance_cache=True)
    name = fs.unstrip_protocol(uri)
    assert name == f"attach://acme@{uri}"
    assert fs.route(name).uri == fs.route(uri).uri == uri
    with pytest.raises(ConfigError, match="splits any URL at '::'"):
        fsspec.core.url_to_fs(name, config=config)


def test_a_name_of_another_tenant_is_refused_by_every_entry_point(path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  ) -> None:
    name = "attach://globex@s3://globex-bucket/k"
    acme = attachfs.filesystem(tenant="acme", config=str(path))
    for call in (lambda: acme.open(name), lambda: acme.cat_file(name),
                 lambda: acme.info(name), lambda: acme.route(name),
                 lambda: acme.unstrip_protocol(name), lambda: acme.expand_path(name),
                 lambda: fsspec.open(name, tenant="acme", config=str(path)).open(),
                 lambda: attachfs.open(name, tenant="acme", config=str(path))):
        with pytest.raises(AccessRefused, match="globex"):
            call()
    monkeypatch.setenv("ATTACHFS_TENANT", "acme")  # a tenant set by the environment wins too
    with pytest.raises(AccessRefused, match="never chooses another tenant"):
        fsspec.open(name, config=str(path)).open()


def test_a_tenantless_filesystem_does_not_read_a_tenants_name(path: Path) -> None:
    fs = attachfs.filesystem(config=str(path))
    with pytest.raises(AccessRefused):
        fs.open("attach://acme@s3://acme-bucket/k")


# --------------------------------------------------------------------------- fsspec's caches

@pytest.mark.parametrize("kind", ["filecache", "simplecache", "blockcache"])
def test_wrapping_an_existing_instance_in_a_cache_is_refused(path: Path, tmp_path: Path,
                                                              kind: str) -> None:
    fs = attachfs.filesystem(tenant="acme", config=str(path))
    with pytest.raises(ConfigError, match=r"cache='/dir'.*\[cache\]"):
        fsspec.filesystem(kind, fs=fs, cache_storage=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="cache="):  # the class itself, not the registry
        fsspec.implementations.cached.SimpleCacheFileSystem(fs=fs, cache_storage=str(tmp_path))


@pytest.mark.parametrize("kind", ["filecache", "simplecache", "blockcache"])
def test_a_cache_built_over_the_protocol_is_refused(path: Path, tmp_path: Path,
                                                     kind: str) -> None:
    with pytest.raises(ConfigError, match="cache="):
        fsspec.filesystem(kind, target_protocol="attach", cache_storage=str(tmp_path),
                          target_options={"tenant": "acme", "config": str(path)})
    fs = attachfs.filesystem(tenant="acme", config=str(path))  # an equal one in the cache
    with pytest.raises(ConfigError, match="cache="):
        fsspec.filesystem(kind, target_protocol="attach", cache_storage=str(tmp_path / "x"),
                          target_options={"tenant": "acme", "config": str(path)})
    assert fs.route("s3://acme-bucket/k").claim is not None  # attach itself reads on


def test_the_refusal_says_why_and_carries_no_secret(path: Path) -> None:
    try:
        fsspec.open("simplecache::attach::s3://acme-bucket/k",
                    attach={"tenant": "acme", "config": str(path)}).open()
    except ConfigError as err:
        assert "another" in str(err) and json.dumps(err.args)
    else:
        pytest.fail("simplecache over attach was not refused")
