"""Hostile instance reuse: fsspec's instance cache never serves a stale identity.

fsspec reuses a filesystem instance for equal constructor arguments. ``config="attachfs.toml"``
is the same argument before and after the file changed, and ``tenant=None`` is the same argument
whatever ``$ATTACHFS_TENANT`` says, so a cached instance keeps honouring a claim that was removed,
a tenant that was switched, a config that was replaced. The tenant and the config's *content*
must decide which instance is reused; a config that changed on disk is either re-read or refused
until reloaded (both are accepted here: ``AccessRefused`` from the new rules, or ``ConfigError``).

fsspec's own configuration (``fsspec.config.conf["attach"]``, filled from ``FSSPEC_ATTACH_*``
environment variables) supplies defaults for the ``attach`` protocol, as for any other.

No test here makes a request: every URI names an S3 endpoint on a closed local port, and the
decisions checked (``explain``, ``route``, ``open``) are made before the first request.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attachfs
from attachfs import AccessRefused, ConfigError

CLAIMED = "s3://acme-claimed/doc.bin"
OTHER = "s3://globex-claimed/doc.bin"
NOWHERE = "http://127.0.0.1:9"  # a closed port: a request that should not happen fails here


def config_text(acme: list[str] | None = None, globex: list[str] | None = None,
                acme_aws: dict[str, str] | None = None) -> str:
    """A config with tenants acme and globex and their claims (or acme's AWS integration)."""
    lines = ["[platform.aws]", f'endpoint_url = "{NOWHERE}"', 'role_name = "AttachmentReader"',
             'region = "us-east-1"', "", "[tenants.acme]"]
    if acme_aws is not None:
        lines.append(f'aws = {{ account_id = "{acme_aws["account_id"]}", '
                     f'external_id = "{acme_aws["external_id"]}" }}')
    lines.append(f"direct = {json.dumps(acme if acme is not None else ['s3://acme-claimed'])}")
    lines += ["", "[tenants.globex]",
              f"direct = {json.dumps(globex if globex is not None else ['s3://globex-claimed'])}"]
    return "\n".join(lines) + "\n"


def rewrite(path: Path, text: str) -> None:
    """Replace the file's content, as an operator's editor or a deploy would, and make sure the
    change is visible in its modification time too."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No tenant or config from the environment, no fsspec defaults, no cached instances."""
    monkeypatch.delenv("ATTACHFS_TENANT", raising=False)
    monkeypatch.delenv("ATTACHFS_CONFIG", raising=False)
    monkeypatch.delitem(fsspec.config.conf, "attach", raising=False)
    attachfs.AttachFileSystem.clear_instance_cache()
    yield
    attachfs.AttachFileSystem.clear_instance_cache()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "attachfs.toml"
    rewrite(path, config_text())
    return path


REFUSED = (AccessRefused, ConfigError)


# --------------------------------------------------------------------------- the file changes

OPENERS = {
    "attachfs.open": lambda uri, tenant, config: attachfs.open(uri, tenant=tenant, config=config),
    "attachfs.filesystem": lambda uri, tenant, config: attachfs.filesystem(
        tenant=tenant, config=config).open(uri),
    "fsspec.filesystem": lambda uri, tenant, config: fsspec.filesystem(
        "attach", tenant=tenant, config=config).open(uri),
    "fsspec.open": lambda uri, tenant, config: fsspec.open(
        f"attach::{uri}", attach={"tenant": tenant, "config": config}).open(),
    "url_to_fs": lambda uri, tenant, config: fsspec.core.url_to_fs(
        f"attach::{uri}", attach={"tenant": tenant, "config": config})[0].open(uri),
}


@pytest.mark.parametrize("opener", list(OPENERS))
def test_a_removed_claim_is_not_honoured(config_path: Path, opener: str) -> None:
    """acme reads its claimed bucket; the operator removes the claim; the next open by the same
    call is refused (or refused until the config is reloaded)."""
    open_ = OPENERS[opener]
    open_(CLAIMED, "acme", str(config_path)).close()
    rewrite(config_path, config_text(acme=[]))
    with pytest.raises(REFUSED):
        open_(CLAIMED, "acme", str(config_path))


@pytest.mark.parametrize("opener", list(OPENERS))
def test_a_claim_moved_to_another_tenant_moves(config_path: Path, opener: str) -> None:
    """The claim on acme's bucket moves to globex: acme is refused from then on."""
    open_ = OPENERS[opener]
    open_(CLAIMED, "acme", str(config_path)).close()
    rewrite(config_path, config_text(acme=[], globex=["s3://globex-claimed", "s3://acme-claimed"]))
    with pytest.raises(REFUSED):
        open_(CLAIMED, "acme", str(config_path))


def test_a_removed_tenant_is_refused(config_path: Path) -> None:
    """globex is deleted from the file: reads for it are refused."""
    fs = fsspec.filesystem("attach", tenant="globex", config=str(config_path))
    fs.open(OTHER).close()
    rewrite(config_path, config_text().split("[tenants.globex]")[0])
    with pytest.raises(REFUSED):
        fsspec.filesystem("attach", tenant="globex", config=str(config_path)).open(OTHER)


def test_a_changed_integration_changes_the_identity(config_path: Path) -> None:
    """acme's AWS account changes in the file: the role a read assumes changes with it."""
    rewrite(config_path, config_text(acme=[], acme_aws={"account_id": "111122223333",
                                                         "external_id": "acme-one-5f0c"}))
    first = attachfs.filesystem(tenant="acme", config=str(config_path)).route(CLAIMED)
    assert first.identity == "arn:aws:iam::111122223333:role/AttachmentReader"
    rewrite(config_path, config_text(acme=[], acme_aws={"account_id": "444455556666",
                                                         "external_id": "acme-two-9a1b"}))
    try:
        again = attachfs.filesystem(tenant="acme", config=str(config_path)).route(CLAIMED)
    except ConfigError:
        return  # refused until reloaded: also safe
    assert again.identity == "arn:aws:iam::444455556666:role/AttachmentReader"


def test_explain_and_a_read_agree_after_a_change(config_path: Path) -> None:
    """explain() says what a read would do; after the file changed, both say the same."""
    attachfs.open(CLAIMED, tenant="acme", config=str(config_path)).close()
    rewrite(config_path, config_text(acme=[]))
    with pytest.raises(AccessRefused):
        attachfs.explain(CLAIMED, tenant="acme", config=str(config_path))
    with pytest.raises(REFUSED):
        attachfs.open(CLAIMED, tenant="acme", config=str(config_path))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=2, max_size=6))
def test_property_every_open_follows_the_file_as_it_is(tmp_path: Path,
                                                        edits: list[tuple[bool, bool]]) -> None:
    """Property: after any sequence of edits (acme claims its bucket or not; globex claims it
    or not), every open through fsspec's cache is allowed exactly when the file on disk allows
    it now."""
    path = tmp_path / "seq.toml"
    attachfs.AttachFileSystem.clear_instance_cache()
    for acme_claims, globex_claims in edits:
        rewrite(path, config_text(acme=["s3://acme-claimed"] if acme_claims else [],
                                  globex=(["s3://acme-claimed"] if globex_claims
                                          and not acme_claims else [])))
        for tenant, allowed in (("acme", acme_claims), ("globex", globex_claims and not acme_claims)):
            try:
                fsspec.filesystem("attach", tenant=tenant, config=str(path)).open(CLAIMED).close()
                opened = True
            except ConfigError:
                opened = None  # refused until reloaded: never an open the file forbids
            except AccessRefused:
                opened = False
            assert opened in (allowed, None), (tenant, edits)


# --------------------------------------------------------------------------- the environment

def test_a_changed_attachfs_tenant_is_honoured(config_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``$ATTACHFS_TENANT`` switches from acme to globex: acme's bucket is refused."""
    monkeypatch.setenv("ATTACHFS_CONFIG", str(config_path))
    monkeypatch.setenv("ATTACHFS_TENANT", "acme")
    attachfs.open(CLAIMED).close()
    fsspec.open(f"attach::{CLAIMED}").open().close()
    monkeypatch.setenv("ATTACHFS_TENANT", "globex")
    with pytest.raises(AccessRefused):
        attachfs.explain(CLAIMED)
    with pytest.raises(AccessRefused):
        attachfs.open(CLAIMED)
    with pytest.raises(AccessRefused):
        fsspec.open(f"attach::{CLAIMED}").open()
    with pytest.raises(AccessRefused):
        fsspec.filesystem("attach").open(CLAIMED)


def test_an_unset_attachfs_tenant_is_honoured(config_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``$ATTACHFS_TENANT`` is unset after a read: the next read names no tenant, and a
    multi-tenant config refuses it."""
    monkeypatch.setenv("ATTACHFS_CONFIG", str(config_path))
    monkeypatch.setenv("ATTACHFS_TENANT", "acme")
    attachfs.open(CLAIMED).close()
    monkeypatch.delenv("ATTACHFS_TENANT")
    with pytest.raises(AccessRefused):
        attachfs.open(CLAIMED)


def test_a_changed_attachfs_config_is_honoured(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``$ATTACHFS_CONFIG`` points at another file, where acme claims nothing: refused."""
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    rewrite(first, config_text())
    rewrite(second, config_text(acme=[]))
    monkeypatch.setenv("ATTACHFS_TENANT", "acme")
    monkeypatch.setenv("ATTACHFS_CONFIG", str(first))
    attachfs.open(CLAIMED).close()
    fsspec.filesystem("attach").open(CLAIMED).close()
    monkeypatch.setenv("ATTACHFS_CONFIG", str(second))
    with pytest.raises(AccessRefused):
        attachfs.open(CLAIMED)
    with pytest.raises(AccessRefused):
        fsspec.filesystem("attach").open(CLAIMED)


def test_an_unset_attachfs_config_falls_back_to_ambient_not_to_the_old_tenants(
        config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``$ATTACHFS_CONFIG`` unset: the filesystem is in ambient mode (no tenant rules), not
    the previous config's."""
    monkeypatch.setenv("ATTACHFS_CONFIG", str(config_path))
    assert fsspec.filesystem("attach").config is not None
    monkeypatch.delenv("ATTACHFS_CONFIG")
    assert fsspec.filesystem("attach").config is None


# --------------------------------------------------------------------------- fsspec's own config

def test_fsspec_conf_supplies_tenant_and_config_to_every_entry_point(
        config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fsspec.config.conf["attach"]`` (what ``FSSPEC_ATTACH_TENANT`` and
    ``FSSPEC_ATTACH_CONFIG`` fill) is honoured by attachfs's own functions as by fsspec's."""
    monkeypatch.setitem(fsspec.config.conf, "attach",
                        {"tenant": "acme", "config": str(config_path)})
    assert fsspec.filesystem("attach").route(CLAIMED).tenant == "acme"
    assert attachfs.filesystem().route(CLAIMED).tenant == "acme"
    assert attachfs.explain(CLAIMED).tenant == "acme"
    attachfs.open(CLAIMED).close()
    with pytest.raises(AccessRefused):  # globex's bucket: refused for acme, not read ambiently
        attachfs.open(OTHER)


def test_explicit_arguments_beat_fsspec_conf(config_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit ``tenant=`` wins over the configured default."""
    monkeypatch.setitem(fsspec.config.conf, "attach",
                        {"tenant": "acme", "config": str(config_path)})
    assert attachfs.filesystem(tenant="globex").route(OTHER).tenant == "globex"
    with pytest.raises(AccessRefused):
        attachfs.open(CLAIMED, tenant="globex")


def test_fsspec_attach_environment_variables(config_path: Path) -> None:
    """In a fresh process, ``FSSPEC_ATTACH_TENANT``/``FSSPEC_ATTACH_CONFIG`` alone decide the
    tenant and config of ``attachfs.open``, ``attachfs.explain`` and ``fsspec.open``."""
    script = (
        "import json, fsspec, attachfs\n"
        f"claimed, other = {CLAIMED!r}, {OTHER!r}\n"
        "out = {'explain': attachfs.explain(claimed).tenant,\n"
        "       'fsspec': fsspec.open('attach::' + claimed).fs.route(claimed).tenant}\n"
        "attachfs.open(claimed).close()\n"
        "try:\n"
        "    attachfs.open(other)\n"
        "    out['other'] = 'opened'\n"
        "except attachfs.AccessRefused:\n"
        "    out['other'] = 'refused'\n"
        "print(json.dumps(out))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTACHFS_", "FSSPEC_"))}
    env.update(FSSPEC_ATTACH_TENANT="acme", FSSPEC_ATTACH_CONFIG=str(config_path))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert json.loads(done.stdout.decode().strip().splitlines()[-1]) == {
        "explain": "acme", "fsspec": "acme", "other": "refused"}


def test_instances_with_the_same_content_may_be_shared(tmp_path: Path) -> None:
    """A control: the cache still works. Same tenant and same content, one instance; another
    tenant, another instance."""
    path = tmp_path / "same.toml"
    rewrite(path, config_text())
    a = fsspec.filesystem("attach", tenant="acme", config=str(path))
    assert a is fsspec.filesystem("attach", tenant="acme", config=str(path))
    assert a is not fsspec.filesystem("attach", tenant="globex", config=str(path))
