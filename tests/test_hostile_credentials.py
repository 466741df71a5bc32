"""Hostile credential lookups: an empty AWS default chain is not searched on every read, and no
private botocore attribute is read.

When the platform has no AWS identity at all (a notebook, a public bucket), S3 reads go
unsigned. Finding that out walks botocore's whole provider chain (environment, shared files,
SSO, process, container and instance metadata), in a worker thread: done once it is a lookup,
done on every read it is a tax on every read. A private attribute (``_expiry_time``) of a
botocore object is not an API: it changes without notice between the versions s3fs pins.

The S3 endpoint here is the local http server: it serves ``/bucket/key`` to signed and unsigned
requests alike, so these tests need no emulator and no credentials.
"""

from __future__ import annotations

import ast
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.credentials
import pytest

import attachfs

AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_CREDENTIAL_EXPIRATION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE",
                 "AWS_ROLE_ARN")


@pytest.fixture
def no_aws_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment in which botocore's default chain finds nothing (and asks nothing of
    the network: instance metadata is disabled)."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("ATTACHFS_CONFIG", raising=False)
    monkeypatch.delenv("ATTACHFS_TENANT", raising=False)


@pytest.fixture
def chain_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every walk of botocore's default credential chain (what each returned)."""
    calls: list[object] = []
    real = botocore.credentials.CredentialResolver.load_credentials

    def counted(self: Any) -> object:
        found = real(self)
        calls.append(found)
        return found

    monkeypatch.setattr(botocore.credentials.CredentialResolver, "load_credentials", counted)
    return calls


@pytest.fixture
def objects(peers: Any) -> dict[str, Any]:
    """Two S3-style objects on the local http server, and an ambient config whose S3 endpoint
    is that server. The config is new for each test (so is every credential cache keyed by
    it)."""
    bucket = f"cred-{uuid.uuid4().hex[:12]}"
    peers.http.put(f"/{bucket}/a.bin", b"A" * 1000)
    peers.http.put(f"/{bucket}/b.bin", b"B" * 2000)
    config = {"platform": {"aws": {"endpoint_url": peers.http.url, "region": "us-east-1",
                                   "sts_endpoint_url": f"http://127.0.0.1:9/{uuid.uuid4().hex}"}}}
    return {"config": config, "a": f"s3://{bucket}/a.bin", "b": f"s3://{bucket}/b.bin",
            "server": peers.http}


def test_an_empty_default_chain_is_searched_once_for_many_reads(
        no_aws_identity: None, chain_calls: list[object], objects: dict[str, Any]) -> None:
    """Thirty unsigned reads (whole objects, ranges, an open file) walk the chain at most
    once more than the first read did."""
    fs = attachfs.filesystem(config=objects["config"], skip_instance_cache=True)
    assert fs.cat_file(objects["a"]) == b"A" * 1000
    first = len(chain_calls)
    assert first >= 1 and chain_calls[-1] is None, "the chain was not asked: nothing checked"
    for i in range(10):
        assert fs.cat_file(objects["b"], start=i, end=i + 5) == b"B" * 5
        assert fs.cat_file(objects["a"]) == b"A" * 1000
        with fs.open(objects["b"]) as f:
            assert f.read(3) == b"BBB"
    assert "Authorization" not in objects["server"].requests[-1].headers  # unsigned indeed
    assert len(chain_calls) - first <= 1, f"{len(chain_calls)} walks of the chain for 31 reads"


def test_an_empty_default_chain_is_searched_once_across_instances(
        no_aws_identity: None, chain_calls: list[object], objects: dict[str, Any]) -> None:
    """Ten filesystem instances of one config, each reading: the answer "no identity" is the
    process's, not each instance's."""
    for _ in range(10):
        fs = attachfs.filesystem(config=objects["config"], skip_instance_cache=True)
        assert fs.cat_file(objects["a"], start=0, end=10) == b"A" * 10
    assert len(chain_calls) <= 2, f"{len(chain_calls)} walks of the chain for 10 reads"


def test_an_empty_default_chain_is_not_searched_concurrently(
        no_aws_identity: None, chain_calls: list[object], objects: dict[str, Any]) -> None:
    """A batch of 50 concurrent reads (``cat`` of many paths) walks the chain once, not once
    per read in flight."""
    fs = attachfs.filesystem(config=objects["config"], skip_instance_cache=True)
    paths = [objects["a"], objects["b"]] * 25
    out = fs.cat(paths)
    assert len(out) == 2
    assert len(chain_calls) <= 2, f"{len(chain_calls)} walks of the chain for one batch"


# --------------------------------------------------------------------------- private attributes

class PrivateAttributeSpy:
    """Wraps a botocore credentials object; records every private attribute read from it
    (``_name``, not dunders) and forwards everything to the real object."""

    def __init__(self, inner: object, seen: list[str]) -> None:
        object.__setattr__(self, "_spy_inner", inner)
        object.__setattr__(self, "_spy_seen", seen)

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_spy_") or (name.startswith("__") and name.endswith("__")):
            return object.__getattribute__(self, name)
        if name.startswith("_"):
            object.__getattribute__(self, "_spy_seen").append(name)
        return getattr(object.__getattribute__(self, "_spy_inner"), name)


@pytest.fixture
def private_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Private attributes read from whatever botocore's credential chain returns."""
    seen: list[str] = []
    real = botocore.credentials.CredentialResolver.load_credentials

    def spied(self: Any) -> object:
        found = real(self)
        return None if found is None else PrivateAttributeSpy(found, seen)

    monkeypatch.setattr(botocore.credentials.CredentialResolver, "load_credentials", spied)
    return seen


@pytest.mark.parametrize("kind", ["static", "refreshable"])
def test_no_private_botocore_attribute_is_read(no_aws_identity: None, private_reads: list[str],
                                               objects: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch,
                                               kind: str) -> None:
    """The platform's own keys come from the environment (static keys, or keys with an
    expiry, which botocore returns as RefreshableCredentials); reading with them touches only
    botocore's public surface."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTILETEST00001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hostile/test/secret/key/0000000000000000")
    if kind == "refreshable":
        monkeypatch.setenv("AWS_SESSION_TOKEN", "hostile-test-session-token-000000000000")
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
        monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", expires.strftime("%Y-%m-%dT%H:%M:%SZ"))
    fs = attachfs.filesystem(config=objects["config"], skip_instance_cache=True)
    assert fs.cat_file(objects["a"]) == b"A" * 1000
    assert objects["server"].requests[-1].headers.get("Authorization", "").startswith(
        "AWS4-HMAC-SHA256 Credential=AKIAHOSTILETEST00001/"), "not signed with the spied keys"
    assert private_reads == []


#: Private attributes of botocore/boto3/aiobotocore objects that code outside them reaches for.
BOTOCORE_PRIVATE = {
    "_expiry_time", "_frozen_credentials", "_refresh_using", "_refresh_lock",
    "_protected_refresh", "_access_key", "_secret_key", "_token", "_credentials",
    "_session", "_endpoint", "_client_config", "_request_signer", "_components", "_loader",
    "_credential_provider", "_provider", "_providers", "_time_fetcher", "_mandatory_refresh_timeout",
    "_advisory_refresh_timeout",
}


def _source_files() -> Iterator[Path]:
    yield from Path(attachfs.__file__).parent.rglob("*.py")


def test_the_source_reaches_for_no_botocore_private_attribute() -> None:
    """A static backstop for the spy: no ``x._expiry_time`` or ``getattr(x, "_expiry_time")``
    (nor other botocore private names) on anything but attachfs's own ``self``."""
    found = []
    for path in _source_files():
        if path.name == "emulators.py":  # test infrastructure, never on a read path
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Attribute) and node.attr in BOTOCORE_PRIVATE:
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                    name = node.attr
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant)
                  and node.args[1].value in BOTOCORE_PRIVATE):
                name = node.args[1].value
            if name is not None:
                found.append(f"{path.name}:{node.lineno}: {name}")
    assert found == []


# --------------------------------------------------------------------------- beyond the review

@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The clock credential leases are judged by, moved by the test (``clock[0]``)."""
    from attachfs._credentials import refresh  # the lease clock seam

    now = [1_900_000_000.0]
    monkeypatch.setattr(refresh, "CLOCK", lambda: now[0])
    return now


def test_nothing_found_is_believed_for_minutes_then_looked_up_once_more(
        no_aws_identity: None, chain_calls: list[object], objects: dict[str, Any],
        clock: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    """An identity that appears later (keys set, a role attached) is found on the first read
    after the negative answer's few minutes, with one more walk, and signs from then on."""
    fs = attachfs.filesystem(config=objects["config"], skip_instance_cache=True)
    assert fs.cat_file(objects["a"]) == b"A" * 1000
    walks = len(chain_calls)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIALATERFOUND000001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "later/found/secret/key/00000000000000000")
    clock[0] += 60
    fs.cat_file(objects["a"])
    assert len(chain_calls) == walks, "looked up again within the negative answer's minutes"
    assert "Authorization" not in objects["server"].requests[-1].headers
    clock[0] += 6 * 60
    fs.cat_file(objects["a"])
    fs.cat_file(objects["b"])
    assert len(chain_calls) == walks + 1
    assert objects["server"].requests[-1].headers.get("Authorization", "").startswith(
        "AWS4-HMAC-SHA256 Credential=AKIALATERFOUND000001/")


def test_found_keys_are_not_looked_up_again_for_an_hour_of_reads(
        no_aws_identity: None, chain_calls: list[object], objects: dict[str, Any],
        clock: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    """Static keys: one walk of the chain, however long the process reads (botocore is asked
    for a frozen copy every few minutes, which walks nothing)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHOSTILETEST00002")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hostile/test/secret/key/0000000000000002")
    fs = attachfs.filesystem(config=objects["config"], skip_instance_cache=True)
    for _ in range(60):
        assert fs.cat_file(objects["a"], start=0, end=4) == b"AAAA"
        clock[0] += 60
    assert len(chain_calls) == 1
    assert objects["server"].requests[-1].headers.get("Authorization", "").startswith(
        "AWS4-HMAC-SHA256 Credential=AKIAHOSTILETEST00002/")
