"""The GCS access rules end to end: google-auth is the real client of FakeGoogle (token endpoint
+ IAM Credentials), and an AuthorizingProxy in front of fake-gcs-server lets each principal read
only its own bucket and records who asked for what.

Who may read what (the proxy's policy):

* ``reader@acme-prod`` (acme's integration service account): the acme bucket only;
* ``platform@attach-platform`` (the platform's own identity): the platform bucket only.

Tenants:

* acme: ``gcp = {service_account = reader}``: delegated, impersonation, never the platform;
* globex: no GCP integration, claims the platform bucket: direct, as the platform;
* initech: impersonates a service account the platform holds no Token Creator role on.

Every test asserts on what the fakes recorded (who called, how often, with what scope), not
only on the outcome, so each fails if the rule it names is broken.
"""

from __future__ import annotations

import io
import time
import uuid

import fsspec
import pandas as pd
import pytest

import attachfs
from attachfs import _credentials as credentials
from attachfs._credentials import refresh
from fakes import decode_jwt
from fakes.authz_proxy import AuthorizingProxy, gcs_policy
from fakes.google_iam import FakeGoogle

pytestmark = pytest.mark.peers

PLATFORM = "platform@attach-platform.iam.gserviceaccount.com"
READER = "reader@acme-prod.iam.gserviceaccount.com"
NOBODY = "nobody@acme-prod.iam.gserviceaccount.com"
READ_ONLY = "https://www.googleapis.com/auth/devstorage.read_only"

_SUFFIX = uuid.uuid4().hex[:10]
ACME_BUCKET = f"acme-gcs-{_SUFFIX}"
PLATFORM_BUCKET = f"platform-gcs-{_SUFFIX}"

DATA = bytes(range(256)) * 1200 + b"end"  # 307,203 bytes: more than one small block
FRAME = pd.DataFrame({"id": [1, 2, 3], "name": ["ada", "grace", "linus"], "x": [0.5, 1.5, -2.0]})
LISTED = ("prefix/a.csv", "prefix/b.csv", "prefix/sub/c.csv")

# Seconds added to "now" for both FakeGoogle and attachfs's lease clock; a test moves time by
# changing it, and the autouse fixture puts it back.
_SHIFT = [0.0]


def _now() -> float:
    return time.time() + _SHIFT[0]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def google():
    with FakeGoogle(project_id="attach-platform", clock=_now) as fake:
        fake.grant_token_creator(PLATFORM, READER)
        yield fake


@pytest.fixture(scope="module")
def key_path(google, tmp_path_factory):
    return google.write_service_account_file(
        PLATFORM, tmp_path_factory.mktemp("gcp") / "platform-sa.json")


@pytest.fixture(scope="module")
def proxy(peers, google):
    for bucket in (ACME_BUCKET, PLATFORM_BUCKET):
        peers.make_gcs_bucket(bucket)
    peers.put_gcs(ACME_BUCKET, "docs/report.bin", DATA)
    peers.put_gcs(ACME_BUCKET, "x.csv", FRAME.to_csv(index=False).encode())
    for key in LISTED:
        peers.put_gcs(ACME_BUCKET, key, key.encode())
    peers.put_gcs(PLATFORM_BUCKET, "shared/notice.txt", b"platform-owned bytes")
    allowed = {READER: {ACME_BUCKET}, PLATFORM: {PLATFORM_BUCKET}}
    with AuthorizingProxy(peers.gcs_endpoint,
                          gcs_policy(google.principal_for_token, allowed)) as authz:
        yield authz


@pytest.fixture(scope="module")
def cfg(google, key_path, proxy) -> dict:
    return {
        "platform": {
            "gcp": {"credentials": str(key_path), "endpoint_url": proxy.url,
                    "iam_endpoint_url": google.url},
            "http": {"allow_private_networks": True},
        },
        "tenants": {
            "acme": {"gcp": {"service_account": READER}},
            "globex": {"direct": [f"gs://{PLATFORM_BUCKET}"]},
            "initech": {"gcp": {"service_account": NOBODY}},
        },
    }


def _clear_fsspec_instance_caches() -> None:
    from fsspec.registry import registry

    for cls in registry.values():
        cls.clear_instance_cache()


@pytest.fixture(autouse=True)
def fresh(google, proxy, monkeypatch):
    """Leases are process-wide and fsspec caches instances: every test starts from nothing."""
    _SHIFT[0] = 0.0
    monkeypatch.setattr(refresh, "CLOCK", _now)
    credentials.forget_all()
    _clear_fsspec_instance_caches()
    google.clear_requests()
    proxy.clear_requests()
    yield
    _SHIFT[0] = 0.0
    credentials.forget_all()
    _clear_fsspec_instance_caches()


def _fs(tenant: str, cfg: dict):
    return attachfs.filesystem(tenant=tenant, config=cfg, skip_instance_cache=True)


def _impersonations(google, target: str | None = None) -> list:
    return [r for r in google.requests if r.path.endswith(":generateAccessToken")
            and (target is None or r.path.endswith(f"/{target}:generateAccessToken"))]


def _token_grants(google) -> list:
    return [r for r in google.requests if r.path == "/token"]


def _bucket_requests(proxy, bucket: str) -> list:
    return [r for r in proxy.requests if f"/b/{bucket}/" in r.path or r.path.endswith(f"/b/{bucket}")
            or r.path.startswith(f"/{bucket}/")]


def _bearer(record) -> str:
    return record.headers.get("Authorization", "").removeprefix("Bearer ")


# --------------------------------------------------------------------------- delegated


def test_delegated_read_impersonates_the_tenant_service_account(cfg, google, proxy):
    uri = f"gs://{ACME_BUCKET}/docs/report.bin"
    route = attachfs.explain(uri, tenant="acme", config=cfg)
    assert (route.mode, route.identity, route.backend) == ("delegated", READER, "gcs")
    assert route.grant.kind == "gcp-impersonate" and route.claim is None
    assert google.requests == [] and proxy.requests == []  # explain() makes no request

    fs = _fs("acme", cfg)
    assert fs.cat_file(uri) == DATA
    assert fs.cat_file(uri, start=1000, end=1010) == DATA[1000:1010]
    with fs.open(uri, block_size=64 * 1024) as f:
        assert f.read(5) == DATA[:5]
        f.seek(200_000)
        assert f.read(100) == DATA[200_000:200_100]
        f.seek(-3, io.SEEK_END)
        assert f.read() == b"end"
    # A second filesystem for the same tenant shares the lease: still one impersonation.
    assert _fs("acme", cfg).cat_file(uri, start=7, end=9) == DATA[7:9]

    reads = proxy.requests
    assert len(reads) >= 5  # every read above went to storage, through the proxy
    assert {r.principal for r in reads} == {READER}
    assert {r.status for r in reads} <= {200, 206}
    assert all(ACME_BUCKET in r.path for r in reads)

    (call,) = _impersonations(google)
    assert call.path.endswith(f"/{READER}:generateAccessToken")
    assert (call.status, call.principal) == (200, PLATFORM)
    assert call.body["scope"] == [READ_ONLY]
    assert google.token_info(_bearer(reads[0])).scopes == (READ_ONLY,)
    # The platform's own token is only ever an IAM-scoped source token, never a storage one.
    (grant,) = _token_grants(google)
    assert READ_ONLY not in decode_jwt(grant.body["assertion"])[1]["scope"].split()


def test_delegated_denial_never_falls_back_to_the_platform(cfg, google, proxy):
    uri = f"gs://{PLATFORM_BUCKET}/shared/notice.txt"  # the platform identity CAN read it
    fs = _fs("acme", cfg)

    with pytest.raises(attachfs.AccessDenied) as denied:
        fs.cat_file(uri)
    assert READER in str(denied.value) and denied.value.identity == READER
    with pytest.raises(attachfs.AccessDenied, match=READER):
        fs.open(uri).read()

    tried = _bucket_requests(proxy, PLATFORM_BUCKET)
    assert tried and {(r.principal, r.status) for r in tried} == {(READER, 403)}
    assert not [r for r in proxy.requests if r.principal == PLATFORM]
    assert [c.path for c in _impersonations(google)] == [
        f"/v1/projects/-/serviceAccounts/{READER}:generateAccessToken"]


# --------------------------------------------------------------------------- direct


def test_direct_read_of_a_claimed_bucket_uses_the_platform_identity(cfg, google, proxy):
    uri = f"gs://{PLATFORM_BUCKET}/shared/notice.txt"
    route = attachfs.explain(uri, tenant="globex", config=cfg)
    assert (route.mode, route.identity) == ("direct", "platform:gcp")
    assert route.claim is not None and route.claim.uri == f"gs://{PLATFORM_BUCKET}"

    assert _fs("globex", cfg).cat_file(uri) == b"platform-owned bytes"

    assert proxy.requests and {r.principal for r in proxy.requests} == {PLATFORM}
    assert _impersonations(google) == []
    (grant,) = _token_grants(google)
    assert decode_jwt(grant.body["assertion"])[1]["scope"].split() == [READ_ONLY]


@pytest.mark.parametrize("call", ["cat_file", "open", "info", "ls", "explain"])
def test_unclaimed_direct_read_is_refused_before_any_request(cfg, google, proxy, call):
    uri = f"gs://{ACME_BUCKET}/docs/report.bin"  # globex does not claim it
    fs = _fs("globex", cfg)
    run = {"cat_file": fs.cat_file, "open": fs.open, "info": fs.info,
           "ls": lambda u: fs.ls(u.rsplit("/", 1)[0] + "/"),
           "explain": lambda u: attachfs.explain(u, tenant="globex", config=cfg)}[call]

    with pytest.raises(attachfs.AccessRefused, match=f"gs://{ACME_BUCKET} is not claimed"):
        run(uri)

    assert proxy.requests == []
    assert google.requests == []


# --------------------------------------------------------------------------- refusals


def test_impersonation_without_token_creator_fails_fast(cfg, google, proxy):
    uri = f"gs://{ACME_BUCKET}/docs/report.bin"
    fs = _fs("initech", cfg)

    started = time.monotonic()
    with pytest.raises(attachfs.AccessDenied) as denied:
        fs.cat_file(uri)
    elapsed = time.monotonic() - started

    assert elapsed < 2.0, f"a refused impersonation took {elapsed:.1f} s to surface"
    message = str(denied.value)
    assert NOBODY in message and "Token Creator" in message
    assert denied.value.identity == NOBODY
    assert proxy.requests == []
    (call,) = _impersonations(google)
    assert call.path.endswith(f"/{NOBODY}:generateAccessToken")
    assert (call.status, call.principal) == (403, PLATFORM)


# --------------------------------------------------------------------------- refresh


@pytest.mark.parametrize("shift", [
    pytest.param(3600 - 450, id="advisory-window"),  # inside 10 min, outside 5 min of expiry
    pytest.param(3600 + 60, id="expired"),           # the old token no longer works anywhere
])
def test_lease_is_refreshed_once_when_it_nears_expiry(cfg, google, proxy, shift):
    uri = f"gs://{ACME_BUCKET}/docs/report.bin"
    fs = _fs("acme", cfg)
    assert fs.cat_file(uri, start=0, end=4) == DATA[:4]
    assert len(_impersonations(google, READER)) == 1
    first_token = _bearer(proxy.requests[-1])

    _SHIFT[0] = shift
    if shift > 3600:
        assert google.principal_for_token(first_token) is None  # the proxy would refuse it

    assert fs.cat_file(uri, start=4, end=8) == DATA[4:8]
    assert fs.cat_file(uri, start=8, end=12) == DATA[8:12]

    calls = _impersonations(google, READER)
    assert len(calls) == 2 and calls[-1].status == 200
    later = proxy.requests[-2:]
    assert {r.principal for r in later} == {READER}
    assert {_bearer(r) for r in later} == {_bearer(later[0])} != {first_token}


# --------------------------------------------------------------------------- listing


def test_listing_under_delegation_returns_uris(cfg, google, proxy):
    fs = _fs("acme", cfg)
    base = f"gs://{ACME_BUCKET}/prefix/"

    listed = fs.ls(base, detail=False)
    assert f"{base}a.csv" in listed and f"{base}b.csv" in listed
    assert set(fs.find(base)) == {f"gs://{ACME_BUCKET}/{k}" for k in LISTED}
    info = fs.info(f"{base}sub/c.csv")
    assert info["name"] == f"{base}sub/c.csv" and info["size"] == len(b"prefix/sub/c.csv")
    for uri in fs.find(base):
        assert fs.cat_file(uri) == uri.split(f"{ACME_BUCKET}/", 1)[1].encode()

    assert proxy.requests and {r.principal for r in proxy.requests} == {READER}
    assert len(_impersonations(google, READER)) == 1


@pytest.mark.parametrize("call", ["ls", "find", "info"])
def test_listing_a_bucket_the_tenant_cannot_read_is_denied_not_empty(cfg, proxy, call):
    fs = _fs("acme", cfg)
    run = {"ls": lambda: fs.ls(f"gs://{PLATFORM_BUCKET}/shared/"),
           "find": lambda: fs.find(f"gs://{PLATFORM_BUCKET}/"),
           "info": lambda: fs.info(f"gs://{PLATFORM_BUCKET}/shared/notice.txt")}[call]

    with pytest.raises(attachfs.AccessDenied) as denied:
        run()
    assert denied.value.identity == READER and READER in str(denied.value)

    tried = _bucket_requests(proxy, PLATFORM_BUCKET)
    assert tried and {(r.principal, r.status) for r in tried} == {(READER, 403)}


# --------------------------------------------------------------------------- pandas


def test_pandas_reads_through_delegation(cfg, google, proxy):
    got = pd.read_csv(f"attach::gs://{ACME_BUCKET}/x.csv",
                      storage_options={"tenant": "acme", "config": cfg})

    pd.testing.assert_frame_equal(got, FRAME)
    assert proxy.requests and {r.principal for r in proxy.requests} == {READER}
    assert len(_impersonations(google, READER)) == 1
    other = f"attach::gs://{PLATFORM_BUCKET}/shared/notice.txt"
    with pytest.raises(attachfs.AccessDenied, match=READER):
        with fsspec.open(other, tenant="acme", config=cfg) as f:
            f.read()


# --------------------------------------------------------------------------- failure causes


def test_an_iam_outage_is_retryable_not_a_verdict_on_the_setup(cfg, google, proxy):
    uri = f"gs://{ACME_BUCKET}/docs/report.bin"
    google.fail_next(1, status=500, endpoint="iam")
    with pytest.raises(ConnectionError) as exc:
        _fs("acme", cfg).cat_file(uri)
    assert not isinstance(exc.value, PermissionError)
    assert "Token Creator" not in str(exc.value) and READER in str(exc.value)
    assert proxy.requests == []
    assert _fs("acme", cfg).cat_file(uri, start=0, end=4) == DATA[:4]  # the next try works


def test_a_broken_platform_key_is_named_as_such(cfg, google, proxy, tmp_path):
    bad = dict(cfg, platform=dict(cfg["platform"]))
    bad["platform"]["gcp"] = dict(cfg["platform"]["gcp"])
    # A key the fake never issued: the platform's own token request is refused.
    other = FakeGoogle()
    path = tmp_path / "stale-key.json"
    with other:
        other.write_service_account_file(PLATFORM, str(path))
    bad["platform"]["gcp"]["credentials"] = str(path)
    with pytest.raises(attachfs.AccessDenied) as exc:
        _fs("acme", bad).cat_file(f"gs://{ACME_BUCKET}/docs/report.bin")
    assert exc.value.identity == "platform:gcp"
    assert "platform.gcp.credentials" in str(exc.value)
    assert "Token Creator" not in str(exc.value)
    assert _impersonations(google) == [] and proxy.requests == []
