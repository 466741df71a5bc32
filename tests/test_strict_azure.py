"""Azure Blob reads against the strict Azure fake (tests/fakes/strict_azure.py), where Azure
answers differently from Azurite: ranged GETs answered 200, and what each error code means.

The delegated reads get their token from the fake Entra ID (tests/fakes/entra.py), whose
certificate the session CA issued.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attachfs
from conftest import TEST_CA
from fakes.entra import FakeEntra
from fakes.strict_azure import StrictAzure

ACCOUNT = "strictacct"
APP = "00000000-0000-0000-0000-0000000000a1"
DIRECTORY = "2b0c6c1e-0000-0000-0000-0000000000d1"
SECRET_ENV = "ATTACHFS_STRICT_AZURE_SECRET"
SECRET = "strict-azure-app-secret-value"
DATA = b"blob bytes " * 1000


@pytest.fixture(scope="module")
def server() -> Iterator[StrictAzure]:
    with StrictAzure() as fake:
        yield fake


@pytest.fixture(scope="module")
def entra_server() -> Iterator[FakeEntra]:
    with FakeEntra(ca=TEST_CA.ca) as fake:
        yield fake


@pytest.fixture
def azure(server: StrictAzure) -> StrictAzure:
    server.reset()
    return server


@pytest.fixture
def entra(entra_server: FakeEntra, monkeypatch: pytest.MonkeyPatch) -> FakeEntra:
    entra_server.reset()
    entra_server.register_app(APP, secret=SECRET)
    entra_server.consent(DIRECTORY, APP)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return entra_server


@pytest.fixture
def container(names: Any) -> str:
    return str(names("c"))


def config(azure: StrictAzure, entra: FakeEntra | None = None) -> dict[str, Any]:
    """Tenant ``globex`` reads anonymously (no integration); ``acme`` as the platform's app in
    its directory (the fake Entra's authority)."""
    platform: dict[str, Any] = {"endpoint_url": f"{azure.url}/{{account}}"}
    tenants: dict[str, Any] = {"globex": {}}
    if entra is not None:
        platform.update(client_id=APP, client_secret_env=SECRET_ENV, authority=entra.authority)
        tenants["acme"] = {"azure": {"tenant_id": DIRECTORY}}
    return {"platform": {"azure": platform}, "tenants": tenants}


def fs_for(cfg: dict[str, Any], tenant: str) -> Any:
    return attachfs.filesystem(config=cfg, tenant=tenant, skip_instance_cache=True)


def blob_url(container: str, blob: str) -> str:
    return f"https://{ACCOUNT}.blob.core.windows.net/{container}/{blob}"


def read_error(cfg: dict[str, Any], tenant: str, url: str) -> BaseException:
    with pytest.raises(Exception) as raised:
        fs_for(cfg, tenant).cat_file(url)
    return raised.value


# --------------------------------------------------------------- 1. a 200 is not the range


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(1, 3000), data=st.data())
def test_a_ranged_get_answered_200_with_the_whole_blob(azure: StrictAzure, container: str,
                                                       size: int, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, size - 1), label="offset")
    length = data.draw(st.integers(1, size - offset + 10), label="length")
    body = os.urandom(size)
    blob = f"obj-{size}-{offset}-{length}"
    azure.container(ACCOUNT, container, public=True)
    azure.put(ACCOUNT, container, blob, body)
    azure.honour_range = False
    fs = fs_for(config(azure), "globex")
    url = blob_url(container, blob)
    assert fs.cat_file(url, start=offset, end=offset + length) == body[offset:offset + length]
    with fs.open(url, block_size=length) as f:
        assert f.size == size
        f.seek(offset)
        assert f.read(length) == body[offset:offset + length]


# --------------------------------------------------------------- 7. what Azure said


def test_authorization_permission_mismatch_names_the_data_role(azure: StrictAzure,
                                                               entra: FakeEntra,
                                                               container: str) -> None:
    azure.container(ACCOUNT, container)
    azure.put(ACCOUNT, container, "k", DATA)
    azure.role_missing = True
    err = read_error(config(azure, entra), "acme", blob_url(container, "k"))
    assert isinstance(err, attachfs.AccessDenied)
    assert "AuthorizationPermissionMismatch" in str(err)
    assert "Storage Blob Data Reader" in (err.hint or "")
    assert len(azure.gets()) == 1


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_authorization_failure_names_the_network_rules(azure: StrictAzure, entra: FakeEntra,
                                                       container: str, tenant: str) -> None:
    azure.container(ACCOUNT, container, public=True)
    azure.put(ACCOUNT, container, "k", DATA)
    azure.firewall = True
    err = read_error(config(azure, entra), tenant, blob_url(container, "k"))
    assert isinstance(err, attachfs.AccessDenied)
    assert "AuthorizationFailure" in str(err)
    hint = (err.hint or "").lower()
    assert "network" in hint or "firewall" in hint
    assert "storage blob data reader" not in hint
    assert len(azure.gets()) == 1


def test_an_archived_blob_says_rehydrate_it_first(azure: StrictAzure, entra: FakeEntra,
                                                  container: str) -> None:
    azure.container(ACCOUNT, container)
    azure.put(ACCOUNT, container, "cold.bin", DATA, tier="Archive")
    err = read_error(config(azure, entra), "acme", blob_url(container, "cold.bin"))
    assert "BlobArchived" in str(err)
    assert "rehydrate" in str(err).lower()
    assert "Storage Blob Data Reader" not in str(err)
    assert len(azure.gets()) == 1


def test_an_anonymous_read_of_a_private_container_says_connect_the_directory(
        azure: StrictAzure, container: str) -> None:
    """Azure answers an anonymous read of a private container 404 ResourceNotFound; attachfs
    cannot tell that from a missing container, so it says both, and how to read as the
    tenant's directory."""
    azure.container(ACCOUNT, container, public=False)
    azure.put(ACCOUNT, container, "k", DATA)
    err = read_error(config(azure), "globex", blob_url(container, "k"))
    assert isinstance(err, (FileNotFoundError, PermissionError))
    text = str(err)
    assert "ResourceNotFound" in text
    assert "tenants.globex.azure" in text or "directory" in text.lower()


def test_a_missing_blob_of_a_public_container_is_just_not_found(azure: StrictAzure,
                                                                container: str) -> None:
    azure.container(ACCOUNT, container, public=True)
    err = read_error(config(azure), "globex", blob_url(container, "missing"))
    assert isinstance(err, FileNotFoundError)
    assert "directory" not in str(err).lower()


# --------------------------------------------------------------- 8. an error document is data


def test_a_blob_whose_content_is_an_xml_error_document_is_data(azure: StrictAzure,
                                                               container: str) -> None:
    content = (b'<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code>'
               b"<Message>The server is busy.</Message></Error>")
    azure.container(ACCOUNT, container, public=True)
    azure.put(ACCOUNT, container, "busy.xml", content, content_type="application/xml")
    assert fs_for(config(azure), "globex").cat_file(blob_url(container, "busy.xml")) == content
    assert len(azure.gets()) == 1
