"""Transient or permanent: what another attempt can cure, for every backend's reader.

A certificate that does not verify will not verify 200 ms later, and a name that does not
resolve will not resolve either: botocore does not retry them (``botocore/retries/standard.py``
retries throttling, transient 5xx and connection errors, not ``SSLError`` verification failures),
and neither may attachfs. An object whose *content* is an XML error document is data when it
comes with a 2xx: GetObject's body is the object (https://docs.aws.amazon.com/AmazonS3/latest/
API/API_GetObject.html); only non-2xx answers carry error documents.

Attempts are counted where they arrive: TLS handshakes by the server name each one sent (SNI),
name lookups by the test resolver (tests/fakes/strict_names.py), requests by the origin.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

import attachfs
from fakes.origin import Origin
from fakes.strict_names import LoopbackNames

BACKENDS = ["s3", "gcs", "azure", "http"]


def reader_config(backend: str, base: str) -> tuple[dict[str, Any], str, str | None]:
    """(config, URI to read, tenant) reading from ``base`` through ``backend``'s reader."""
    http = {"allow_private_networks": True}
    if backend == "s3":
        return ({"platform": {"aws": {"endpoint_url": base, "region": "us-east-1"}}},
                "s3://bkt-transient/k", None)
    if backend == "gcs":
        return ({"platform": {"gcp": {"endpoint_url": base, "credentials": "anonymous"},
                              "http": http}}, "gs://bkt-transient/k", None)
    if backend == "azure":
        return ({"platform": {"azure": {"endpoint_url": base + "/{account}"}, "http": http},
                 "tenants": {"globex": {}}},
                "https://acct1.blob.core.windows.net/cont1/k", "globex")
    return {"platform": {"http": http}}, f"{base}/cont1/k", None


def read(config: dict[str, Any], uri: str, tenant: str | None) -> None:
    fs = attachfs.filesystem(config=config, tenant=tenant, skip_instance_cache=True)
    fs.cat_file(uri)


@pytest.fixture(scope="module")
def untrusted_origin() -> Iterator[Origin]:
    """An https origin whose certificate comes from a CA nobody trusts."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost").configure_cert(ctx)
    with Origin(ssl_context=ctx) as origin:
        yield origin


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_certificate_that_does_not_verify_is_not_retried(untrusted_origin: Origin,
                                                           backend: str) -> None:
    untrusted_origin.server_names.clear()
    config, uri, tenant = reader_config(backend, f"https://localhost:{untrusted_origin.port}")
    with pytest.raises(OSError) as raised:
        read(config, uri, tenant)
    assert "certificate" in str(raised.value).lower() or isinstance(
        raised.value.__cause__, ssl.SSLError)
    assert untrusted_origin.server_names == ["localhost"]
    assert untrusted_origin.requests == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_name_that_does_not_resolve_is_not_retried(backend: str) -> None:
    names = LoopbackNames()  # routes nothing: every name is NXDOMAIN
    config, uri, tenant = reader_config(backend, "http://no-such-host.invalid:8080")
    with names.installed(), pytest.raises(OSError):
        read(config, uri, tenant)
    assert names.asked.count("no-such-host.invalid") == 1


def test_a_url_whose_content_is_an_xml_error_document_is_data() -> None:
    content = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
               b"<Message>Please reduce your request rate.</Message></Error>")
    with Origin() as origin:
        origin.answer("/saved/slowdown.xml", content,
                      headers={"Content-Type": "application/xml", "ETag": '"e1"'})
        config, _, _ = reader_config("http", origin.url)
        fs = attachfs.filesystem(config=config, skip_instance_cache=True)
        assert fs.cat_file(f"{origin.url}/saved/slowdown.xml") == content
        assert len(origin.requests) == 1
