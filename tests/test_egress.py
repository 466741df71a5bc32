"""Egress: GCS, Azure and plain http(s) go through platform.http.proxy; S3 never does;
proxy variables in the environment are ignored unless the config sets trust_env.

A local forward proxy records what went through it (CONNECT tunnels and absolute-form requests).
"""

from __future__ import annotations

import pytest
import yarl

import attachfs
from attachfs import AccessRefused
from attachfs._net import resolver as net_resolver
from fakes.connect_proxy import ConnectProxy
from stores import BACKENDS, new_store

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                   "all_proxy")


@pytest.fixture
def proxy():
    with ConnectProxy() as p:
        yield p


def _endpoint(peers, backend: str) -> str:
    url = {"s3": peers.s3_endpoint, "gcs": peers.gcs_endpoint,
           "azure": peers.azure_endpoint.format(account=peers.azure_account),
           "http": peers.http.url}[backend]
    return yarl.URL(url).raw_authority


def _config(peers, **http) -> dict:
    config = peers.config()
    config["platform"]["http"] = {"allow_private_networks": True, **http}
    return config


def _seed(peers) -> dict[str, str]:
    """One object per backend (seeded before any proxy variable is set: the seeding clients
    honour them). Returns backend -> URI."""
    return {b: new_store(b, peers).put("egress/obj.bin", f"{b} bytes".encode())
            for b in BACKENDS}


def _read(fs, uris: dict[str, str]) -> dict[str, bytes]:
    """Read each object, and its metadata (info goes through the inner clients)."""
    got = {}
    for backend, uri in uris.items():
        got[backend] = fs.cat_file(uri)
        assert fs.info(uri)["size"] == len(got[backend])
    return got


EXPECTED = {b: f"{b} bytes".encode() for b in BACKENDS}


def test_gcs_azure_and_http_go_through_the_proxy_s3_never(peers, proxy):
    uris = _seed(peers)
    fs = attachfs.filesystem(config=_config(peers, proxy=proxy.url), skip_instance_cache=True)
    assert _read(fs, uris) == EXPECTED
    through = proxy.hosts()
    for backend in ("gcs", "azure", "http"):
        assert _endpoint(peers, backend) in through, backend
    assert _endpoint(peers, "s3") not in through
    assert attachfs.explain("s3://bucket/k", config=fs.config).proxy is None
    assert attachfs.explain(f"{peers.http.url}/x", config=fs.config).proxy == proxy.url


@pytest.mark.parametrize("backend", BACKENDS)
def test_environment_proxies_are_ignored_without_trust_env(peers, proxy, monkeypatch, backend):
    uri = new_store(backend, peers).put("egress/obj.bin", b"not through the proxy")
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    fs = attachfs.filesystem(config=_config(peers), skip_instance_cache=True)
    assert _read(fs, {backend: uri}) == {backend: b"not through the proxy"}
    assert proxy.passed == []


def test_trust_env_opts_in_to_the_environment_proxy(peers, proxy, monkeypatch):
    peers.http.put("/env/x", b"via env")
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    fs = attachfs.filesystem(config=_config(peers, trust_env=True), skip_instance_cache=True)
    assert fs.cat_file(f"{peers.http.url}/env/x") == b"via env"
    assert _endpoint(peers, "http") in proxy.hosts()


def test_the_guard_still_judges_targets_reached_through_the_proxy(peers, proxy, monkeypatch):
    # The proxy connects, but the target is judged here first: a private one is refused and
    # the proxy never hears of it.
    class Names:
        async def resolve(self, host, port=0, family=0):
            return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": 2,
                     "proto": 0, "flags": 0}]

        async def close(self):
            pass

    monkeypatch.setattr(net_resolver, "system_resolver", Names)
    config = peers.config()
    config["platform"]["http"] = {"proxy": proxy.url}
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    port = yarl.URL(peers.http.url).port
    for url in (f"http://127.0.0.1:{port}/x", f"http://internal.test:{port}/x",
                f"https://internal.test:{port}/x"):
        with pytest.raises(AccessRefused) as refused:
            fs.cat_file(url)
        assert refused.value.rule == "ssrf:loopback"
    assert proxy.passed == []
