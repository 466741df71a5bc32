"""The Azure rows of the access-rules table, end to end.

azure-identity (against FakeEntra, over TLS) and the Azure storage SDK through adlfs (against
Azurite over HTTPS with ``--oauth basic``, behind an AuthorizingProxy that enforces which
principal may read which container) are the real clients. Every assertion on "as whom" is on
what the proxy or FakeEntra recorded, not on what attachfs says it did.

The world:

* the platform's multi-tenant app APP, registered with a client secret (held in an environment
  variable the config names), consented in directory A (tenant ``acme``) and not in directory B
  (tenant ``initech``); tenant ``globex`` has no Azure integration;
* containers ``acme-c`` (private, granted to (A, APP)), ``platform-c`` (private, granted to
  nobody) and ``public-c`` (public access, granted to anonymous callers only).
"""

from __future__ import annotations

import io
import logging
import pickle
import secrets
import time
import traceback
import uuid

import fsspec
import pytest
import requests

import attachfs
from attachfs import _credentials as credentials
from attachfs._credentials import refresh
from attachfs.testing import AZURE_DEV_ACCOUNT, AZURE_DEV_KEY
from conftest import TEST_CA
from fakes import decode_jwt
from fakes.authz_proxy import ANONYMOUS, AuthorizingProxy, azure_policy
from fakes.azurite import azurite_https as start_azurite_https
from fakes.entra import FakeEntra

pytestmark = pytest.mark.peers

APP = str(uuid.uuid4())
DIR_A = str(uuid.uuid4())  # acme's directory: the app is consented here
DIR_B = str(uuid.uuid4())  # initech's directory: never consented
SECRET_ENV = "ATTACHFS_TEST_APP_SECRET"
# Distinctive enough that finding it anywhere (repr, logs, pickles, errors) is never a fluke.
SECRET = f"app-secret-{secrets.token_urlsafe(24)}"

ACCOUNT = AZURE_DEV_ACCOUNT
DATA = bytes(range(256)) * 40 + b"the end"  # 10,247 bytes
PUBLIC = b"anyone may read this\n"
LISTED = {"dir/a.bin": b"alpha", "dir/sub/b.bin": b"bravo", "top.txt": b"top"}


def blob_uri(container: str, key: str = "") -> str:
    return f"https://{ACCOUNT}.blob.core.windows.net/{container}/{key}"


# --- peers: HTTPS Azurite, FakeEntra, the authorising proxy ------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[str, str]:
    """(certfile, keyfile) for 127.0.0.1, issued by the session CA that SSL_CERT_FILE trusts."""
    directory = tmp_path_factory.mktemp("azure-tls")
    cert = TEST_CA.ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    return str(directory / "cert.pem"), str(directory / "key.pem")


@pytest.fixture(scope="module")
def azurite_https(tls_files, tmp_path_factory):
    """Azurite over HTTPS with ``--oauth basic`` (bearer tokens need HTTPS)."""
    cert, key = tls_files
    try:
        with start_azurite_https(tmp_path_factory.mktemp("azurite-https"), cert, key,
                                 str(TEST_CA.cert_pem)) as url:
            yield url
    except RuntimeError as err:  # never skipped: CI must run every emulator-backed test
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def seeded(azurite_https):
    """The three containers, seeded once (the tests only read)."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(
        f"{azurite_https}/{ACCOUNT}",
        credential={"account_name": ACCOUNT, "account_key": AZURE_DEV_KEY},
        connection_verify=str(TEST_CA.cert_pem),
    )
    with service:
        for name, public in (("acme-c", False), ("platform-c", False), ("public-c", True)):
            service.create_container(name, public_access="container" if public else None)
        service.get_blob_client("acme-c", "obj.bin").upload_blob(DATA)
        for key, data in LISTED.items():
            service.get_blob_client("acme-c", f"listing/{key}").upload_blob(data)
        service.get_blob_client("platform-c", "obj.bin").upload_blob(DATA)
        service.get_blob_client("public-c", "hello.txt").upload_blob(PUBLIC)
    return azurite_https


@pytest.fixture(scope="module")
def entra_server():
    # Issued by the session CA: trusted through SSL_CERT_FILE / REQUESTS_CA_BUNDLE, as a real
    # authority would be through the system store; attachfs passes no connection_verify.
    with FakeEntra(ca=TEST_CA.ca) as fake:
        yield fake


GRANTS = {(DIR_A, APP): {(ACCOUNT, "acme-c")}, ANONYMOUS: {(ACCOUNT, "public-c")}}


@pytest.fixture(scope="module")
def proxy_server(seeded, tls_files):
    with AuthorizingProxy(seeded, azure_policy(GRANTS), tls=tls_files,
                          upstream_ca=str(TEST_CA.cert_pem)) as proxy:
        yield proxy


@pytest.fixture
def entra(entra_server, monkeypatch) -> FakeEntra:
    entra_server.reset()
    entra_server.register_app(APP, secret=SECRET)
    entra_server.consent(DIR_A, APP)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return entra_server


@pytest.fixture
def proxy(proxy_server) -> AuthorizingProxy:
    proxy_server.clear_requests()
    return proxy_server


@pytest.fixture
def config(entra, proxy) -> dict:
    credentials.forget_all()
    for cls in fsspec.registry.values():  # the classes already imported
        cls.clear_instance_cache()
    yield {
        "platform": {
            "azure": {"client_id": APP, "client_secret_env": SECRET_ENV,
                      "authority": entra.authority, "endpoint_url": f"{proxy.url}/{{account}}"},
            "http": {"allow_private_networks": True},
        },
        "tenants": {"acme": {"azure": {"tenant_id": DIR_A}}, "globex": {},
                    "initech": {"azure": {"tenant_id": DIR_B}}},
    }
    credentials.forget_all()


def fs_for(tenant: str, config: dict):
    # Through fsspec's registry, as pandas and dataloaders reach it.
    return fsspec.filesystem("attach", tenant=tenant, config=config)


def token_requests(entra: FakeEntra, directory: str | None = None) -> list:
    return [r for r in entra.requests if r.method == "POST" and r.path.endswith("/token")
            and (directory is None or r.path.startswith(f"/{directory}/"))]


def storage_principals(proxy: AuthorizingProxy) -> list:
    return [r.principal for r in proxy.requests]


def exception_text(err: BaseException) -> str:
    """Everything a user could see of ``err``: the formatted chain, reprs, args and fields."""
    parts = ["".join(traceback.format_exception(err))]
    seen: BaseException | None = err
    while seen is not None:
        parts += [repr(seen), str(seen), repr(seen.args), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


def assert_no_secret(err: BaseException) -> None:
    assert SECRET not in exception_text(err)
    assert SECRET.encode() not in pickle.dumps(err)


# --- 1. delegated: the app in the tenant's directory ---------------------------------------------------


def test_delegated_read_is_made_as_the_app_in_the_tenants_directory(config, entra, proxy):
    uri = blob_uri("acme-c", "obj.bin")
    fs = fs_for("acme", config)

    assert fs.cat_file(uri) == DATA
    assert fs.cat_file(uri, start=100, end=1100) == DATA[100:1100]
    with fs.open(uri) as f:
        assert f.read(10) == DATA[:10]
        f.seek(5000)
        assert f.read(3000) == DATA[5000:8000]
        f.seek(-7, io.SEEK_END)
        assert f.read() == b"the end"
    with attachfs.open(uri, tenant="acme", config=config) as f:
        assert f.read() == DATA

    assert len(proxy.requests) >= 4  # two cat_file, two opens (the object fits one block)
    assert set(storage_principals(proxy)) == {(DIR_A, APP)}
    # The reopened blob is asked whether it changed before its cached bytes are used: 304.
    assert {r.status for r in proxy.requests} <= {200, 206, 304}
    # One token for A across every read, filesystem and file: the lease is per tenant identity.
    [issued] = token_requests(entra)
    assert issued.path == f"/{DIR_A}/oauth2/v2.0/token"
    assert issued.principal == (DIR_A, APP)
    assert issued.body["scope"] == "https://storage.azure.com/.default"
    _, claims = decode_jwt(proxy.requests[0].headers["Authorization"].split()[1])
    assert (claims["tid"], claims["appid"], claims["aud"]) == (
        DIR_A, APP, "https://storage.azure.com")

    route = attachfs.explain(uri, tenant="acme", config=config)
    assert route.mode == "delegated"
    assert route.identity == f"azure-app:{APP}@{DIR_A}"


def test_delegated_file_reads_across_blocks(config, entra, proxy):
    # The Azure SDK's stream.properties.size is the length of the range downloaded, not the
    # blob's size: a file that took it for the size would end at its first block.
    uri = blob_uri("acme-c", "obj.bin")
    fs = fs_for("acme", config)

    with fs.open(uri, block_size=1024) as f:  # small blocks: one ranged GET per block
        assert f.size == len(DATA)  # the first request: it learns size and version
        version = f.version
        assert version
        assert f.read(10) == DATA[:10]
        f.seek(5000)
        assert f.read(3000) == DATA[5000:8000]
        f.seek(-7, io.SEEK_END)
        assert f.read() == b"the end"

    first, *later = proxy.requests
    assert later, "every block after the first is a ranged GET of its own"
    # Pinned to the version seen at open: no bytes of two different blobs.
    assert "If-Match" not in first.headers
    assert {r.headers.get("If-Match") for r in later} == {version}
    assert set(storage_principals(proxy)) == {(DIR_A, APP)}
    assert len(token_requests(entra)) == 1


# --- 2. never a fallback to anonymous ----------------------------------------------------------------


def test_delegated_tenant_never_falls_back_to_anonymous(config, entra, proxy):
    # public-c is readable anonymously, but acme's reads are made as the app ("never
    # fall back to anonymous"); the app is not granted public-c, so the read is denied.
    assert requests.get(f"{proxy.url}/{ACCOUNT}/public-c/hello.txt", timeout=5).content == PUBLIC
    proxy.clear_requests()
    fs = fs_for("acme", config)

    with pytest.raises(attachfs.AccessDenied) as denied:
        fs.cat_file(blob_uri("public-c", "hello.txt"))
    with pytest.raises(attachfs.AccessDenied) as denied_open:
        fs.open(blob_uri("public-c", "hello.txt")).read(1)  # open() sends nothing; the read is refused
    with pytest.raises(attachfs.AccessDenied) as denied_private:
        fs.cat_file(blob_uri("platform-c", "obj.bin"))

    assert denied.value.identity == f"azure-app:{APP}@{DIR_A}"
    assert DIR_A in str(denied.value) and APP in str(denied.value)
    assert proxy.requests, "the read was not attempted at all"
    assert ANONYMOUS not in storage_principals(proxy)
    assert set(storage_principals(proxy)) == {(DIR_A, APP)}
    assert {r.status for r in proxy.requests} == {403}  # AuthorizationPermissionMismatch
    for err in (denied.value, denied_open.value, denied_private.value):
        assert_no_secret(err)


# --- 3. no integration: anonymous ------------------------------------------------------------------


def test_tenant_without_integration_reads_anonymously(config, entra, proxy):
    fs = fs_for("globex", config)

    assert fs.cat_file(blob_uri("public-c", "hello.txt")) == PUBLIC
    with fs.open(blob_uri("public-c", "hello.txt")) as f:
        f.seek(7)
        assert f.read(3) == b"may"

    route = attachfs.explain(blob_uri("public-c", "hello.txt"), tenant="globex", config=config)
    assert (route.mode, route.identity) == ("anonymous", None)
    assert set(storage_principals(proxy)) == {ANONYMOUS}
    assert all("Authorization" not in r.headers for r in proxy.requests)
    assert token_requests(entra) == []


def test_tenant_without_integration_is_denied_a_private_container(config, entra, proxy):
    fs = fs_for("globex", config)

    with pytest.raises(attachfs.AccessDenied) as denied:
        fs.cat_file(blob_uri("acme-c", "obj.bin"))
    with pytest.raises(attachfs.AccessDenied) as denied_open:
        fs.open(blob_uri("acme-c", "obj.bin")).read(1)  # open() sends nothing; the read is refused

    assert not isinstance(denied.value, FileNotFoundError)
    assert "acme-c" in str(denied.value)
    assert set(storage_principals(proxy)) == {ANONYMOUS}
    assert token_requests(entra) == []
    assert_no_secret(denied.value)
    assert_no_secret(denied_open.value)


# --- 4. not consented: refused at once -----------------------------------------------------------


def test_app_not_consented_is_denied_at_once_naming_app_and_directory(config, entra, proxy):
    fs = fs_for("initech", config)

    started = time.monotonic()
    with pytest.raises(attachfs.AccessDenied) as denied:
        fs.cat_file(blob_uri("acme-c", "obj.bin"))
    elapsed = time.monotonic() - started

    assert elapsed < 2.0  # adlfs alone retries a refused token for 78-91 s
    message = str(denied.value)
    assert APP in message and DIR_B in message
    assert "not consented" in message  # the cause Entra named (AADSTS700016), not a guess
    assert denied.value.identity == f"azure-app:{APP}@{DIR_B}"
    assert proxy.requests == []  # no storage request was made
    [refused] = token_requests(entra)
    assert refused.path == f"/{DIR_B}/oauth2/v2.0/token" and refused.status == 400
    with pytest.raises(attachfs.AccessDenied) as denied_open:
        fs.open(blob_uri("acme-c", "obj.bin")).read(1)  # open() sends nothing; the read is refused
    assert proxy.requests == []
    assert_no_secret(denied.value)
    assert_no_secret(denied_open.value)


def test_wrong_client_secret_is_not_reported_as_missing_consent(config, entra, proxy):
    # The same refusal path, another cause: the directory consented, the secret is wrong.
    # Telling A's administrator to consent again would send them the wrong way.
    entra.register_app(APP, secret="the-secret-entra-holds")

    with pytest.raises(attachfs.AccessDenied) as denied:
        fs_for("acme", config).cat_file(blob_uri("acme-c", "obj.bin"))

    message = str(denied.value)
    assert APP in message and DIR_A in message
    assert "secret" in message and "consent" not in message
    assert proxy.requests == []
    assert_no_secret(denied.value)


def test_entra_outage_is_a_retryable_error_not_a_denial(config, entra, proxy):
    # Entra answers 503 to every attempt azure-identity makes (four): no refusal was given, so
    # telling anyone to consent, or a caller that the read is forbidden for good, would be wrong.
    entra.fail_next(4)
    fs = fs_for("acme", config)

    with pytest.raises(OSError) as failed:
        fs.cat_file(blob_uri("acme-c", "obj.bin"))

    assert not isinstance(failed.value, PermissionError)
    message = str(failed.value)
    assert APP in message and DIR_A in message and "503" in message
    assert "consent" not in message
    assert proxy.requests == []
    assert_no_secret(failed.value)
    # The outage is over: the next read gets its token (nothing cached the failure).
    assert fs.cat_file(blob_uri("acme-c", "obj.bin")) == DATA
    assert [r.status for r in token_requests(entra)] == [503] * 4 + [200]


# --- 5. refresh --------------------------------------------------------------------------------------


def test_token_is_refreshed_inside_the_mandatory_window(config, entra, proxy, monkeypatch):
    uri = blob_uri("acme-c", "obj.bin")
    assert fs_for("acme", config).cat_file(uri) == DATA
    assert len(token_requests(entra)) == 1
    first_token = proxy.requests[-1].headers["Authorization"]

    # 299 s before the first token expires: inside the mandatory window (300 s) of its lease.
    # The next token lives two hours, so once refreshed it is outside both windows.
    entra.token_lifetime = 7200
    real_time = time.time
    monkeypatch.setattr(refresh, "CLOCK", lambda: real_time() + 3600 - 299)

    assert fs_for("acme", config).cat_file(uri, start=1, end=4) == DATA[1:4]
    assert len(token_requests(entra)) == 2
    assert token_requests(entra)[-1].principal == (DIR_A, APP)
    assert fs_for("acme", config).cat_file(uri) == DATA
    assert len(token_requests(entra)) == 2  # the new lease is fresh: no further request

    # A new client asks the lease for a token and gets the refreshed one, not the first.
    fresh = attachfs.filesystem(tenant="acme", config=config, skip_instance_cache=True)
    proxy.clear_requests()
    assert fresh.cat_file(uri, end=16) == DATA[:16]
    assert proxy.requests[-1].headers["Authorization"] != first_token
    assert set(storage_principals(proxy)) == {(DIR_A, APP)}
    assert len(token_requests(entra)) == 2


# --- 6. listing under delegation -------------------------------------------------------------------


def test_listing_under_delegation_returns_uris_that_open(config, entra, proxy):
    fs = fs_for("acme", config)
    base = blob_uri("acme-c", "listing/")

    top = fs.ls(base, detail=False)
    assert sorted(top) == [blob_uri("acme-c", "listing/dir"),
                           blob_uri("acme-c", "listing/top.txt")]
    found = fs.find(base)
    assert found == sorted(blob_uri("acme-c", f"listing/{k}") for k in LISTED)
    for name in found:
        key = name.removeprefix(blob_uri("acme-c", "listing/"))
        with fs.open(name) as f:
            assert f.read() == LISTED[key]
        info = fs.info(name)
        assert (info["name"], info["size"], info["type"]) == (name, len(LISTED[key]), "file")
    assert fs.info(blob_uri("acme-c", "listing/dir"))["type"] == "directory"

    assert set(storage_principals(proxy)) == {(DIR_A, APP)}
    assert len(token_requests(entra)) == 1


# --- 7. the client secret never shows ----------------------------------------------------------------


def test_client_secret_never_appears(config, entra, proxy, caplog):
    uri = blob_uri("acme-c", "obj.bin")
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        fs = fs_for("acme", config)
        assert fs.cat_file(uri) == DATA
        with fs.open(uri) as f:
            f.seek(5000)
            assert f.read(10) == DATA[5000:5010]
            shown = [repr(fs), repr(f), str(fs), repr(fs.storage_options)]
            pickled_file = pickle.dumps(f)
        for tenant, target in (("acme", blob_uri("public-c", "hello.txt")),
                               ("globex", uri), ("initech", uri)):
            with pytest.raises(attachfs.AccessDenied) as denied:
                fs_for(tenant, config).cat_file(target)
            errors.append(denied.value)
        # A wrong secret is refused by Entra, which echoes the app id, never the secret sent.
        entra.register_app(APP, secret="the-secret-entra-holds")
        credentials.forget_all()
        with pytest.raises(attachfs.AccessDenied) as wrong_secret:
            attachfs.filesystem(tenant="acme", config=config,
                                skip_instance_cache=True).cat_file(uri)
        errors.append(wrong_secret.value)

    # The secret did go on the wire (to Entra, and only there), so its absence below means
    # something: acme, initech (refused), acme again (refused).
    assert [r.body["client_secret"] for r in token_requests(entra)] == [SECRET] * 3
    loggers = {r.name for r in caplog.records}
    for client in ("msal.", "azure.identity.", "azure.core."):  # token and storage clients
        assert any(name.startswith(client) for name in loggers), f"no {client}* log captured"
    for text in shown:
        assert SECRET not in text
    assert SECRET.encode() not in pickle.dumps(fs)
    assert SECRET.encode() not in pickled_file
    assert SECRET not in caplog.text
    assert not any(SECRET in r.getMessage() for r in caplog.records)
    # Nor the bearer token the storage requests carried.
    bearer = next(r.headers["Authorization"] for r in proxy.requests
                  if r.principal == (DIR_A, APP)).split()[1]
    assert bearer not in caplog.text
    for err in errors:
        assert_no_secret(err)
