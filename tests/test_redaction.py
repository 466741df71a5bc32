"""A signed URL's query is its credential: no error attachfs raises repeats it."""

from __future__ import annotations

import pickle

import pytest

import attachfs


@pytest.mark.parametrize("query", [
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261128&"
    "X-Amz-Signature=deadbeefcafe0123456789",
    "sv=2023-11-03&se=2026-12-01&sp=r&sig=c2VjcmV0c2lnbmF0dXJlMDEyMzQ1Njc4OQ%3D%3D",
])
def test_a_missing_signed_url_is_reported_without_its_signature(peers, query):
    peers.http.clear_requests()
    url = f"{peers.http.url}/nothing/here.bin?{query}"
    fs = attachfs.filesystem(config=peers.config(), skip_instance_cache=True)
    with pytest.raises(FileNotFoundError) as exc:
        fs.cat_file(url)
    secret = query.split("Signature=" if "Signature" in query else "sig=")[1].split("&")[0]
    assert secret not in str(exc.value)
    assert secret.encode() not in pickle.dumps(exc.value)
    assert "here.bin" in str(exc.value)
    assert peers.http.requests, "the read was made (and answered 404)"


def test_explain_refuses_a_private_literal_without_a_request(peers):
    cfg = {"platform": {"http": {"allow_private_networks": False}}, "tenants": {"a": {}}}
    peers.http.clear_requests()
    target = peers.http.url.replace("127.0.0.1", "2130706433") + "/x"
    with pytest.raises(attachfs.AccessRefused) as exc:
        attachfs.explain(target, tenant="a", config=cfg)
    assert exc.value.rule.startswith("ssrf:")
    assert peers.http.requests == []
