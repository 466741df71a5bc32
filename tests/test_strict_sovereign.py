"""Azure sovereign clouds, end to end on loopback port 443: a blob URL of Azure Government or
Azure China is read through the Azure backend, as the tenant's app, with a token from that
cloud's own Entra ID authority.

Each sovereign cloud has its own blob suffix and its own authority
(https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud;
azure-identity's ``AzureAuthorityHosts``: ``AZURE_GOVERNMENT = "login.microsoftonline.us"``,
``AZURE_CHINA = "login.chinacloudapi.cn"``). Host names resolve to the fakes through
tests/fakes/strict_names.py; certificates come from the session CA.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import attachfs
from conftest import TEST_CA
from fakes.entra import FakeEntra
from fakes.strict_azure import StrictAzure
from fakes.strict_names import LoopbackNames, can_bind, loopback_address, sni_context

APP = "00000000-0000-0000-0000-0000000000a1"
DIRECTORY = "2b0c6c1e-0000-0000-0000-0000000000d2"
SECRET_ENV = "ATTACHFS_SOVEREIGN_APP_SECRET"
SECRET = "sovereign-app-secret-value"
DATA = b"sovereign blob bytes " * 50

CLOUDS = [
    # (blob host suffix, authority host)
    ("blob.core.usgovcloudapi.net", "login.microsoftonline.us"),
    ("blob.core.chinacloudapi.cn", "login.chinacloudapi.cn"),
]


class CloudEntra(FakeEntra):
    """The fake Entra ID served as ``https://{authority_host}`` on port 443."""

    def __init__(self, authority_host: str, address: str) -> None:
        super().__init__(ca=TEST_CA.ca, host=address)
        self.authority_host = authority_host
        self._ssl_context = sni_context(TEST_CA.ca, fallback=address)
        self._bind_port = 443

    @property
    def authority(self) -> str:
        return f"https://{self.authority_host}"


@pytest.fixture(scope="module", params=CLOUDS, ids=["usgov", "china"])
def cloud(request: pytest.FixtureRequest) -> Iterator[tuple[str, StrictAzure, CloudEntra]]:
    suffix, authority_host = request.param
    blob_address, entra_address = loopback_address(2), loopback_address(3)
    for address in (blob_address, entra_address):
        refused = can_bind(address, 443)
        if refused:
            pytest.skip(refused)
    with StrictAzure(host=blob_address, port=443,
                     ssl_context=sni_context(TEST_CA.ca, fallback=blob_address)) as azure, \
            CloudEntra(authority_host, entra_address) as entra:
        names = LoopbackNames()
        names.route(suffix, blob_address)
        names.route(authority_host, entra_address)
        with names.installed():
            yield suffix, azure, entra


def test_a_sovereign_blob_is_read_as_the_app_with_that_clouds_authority(
        cloud: tuple[str, StrictAzure, CloudEntra], names: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    suffix, azure, entra = cloud
    azure.reset()
    entra.reset()
    entra.register_app(APP, secret=SECRET)
    entra.consent(DIRECTORY, APP)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    container = str(names("sv"))
    azure.container("acct1", container, public=False)
    azure.put("acct1", container, "k.bin", DATA)
    config = {"platform": {"azure": {"client_id": APP, "client_secret_env": SECRET_ENV},
                           "http": {"allow_private_networks": True}},
              "tenants": {"acme": {"azure": {"tenant_id": DIRECTORY}}}}
    fs = attachfs.filesystem(config=config, tenant="acme", skip_instance_cache=True)

    assert fs.cat_file(f"https://acct1.{suffix}/{container}/k.bin") == DATA
    tokens = [r for r in entra.requests if r.path.endswith("/oauth2/v2.0/token")]
    assert tokens and all(r.path.startswith(f"/{DIRECTORY}/") for r in tokens)
    assert {r.headers["Host"] for r in entra.requests} == {entra.authority_host}
    [get] = azure.gets()
    assert get.headers["Host"] == f"acct1.{suffix}"
    assert get.headers["Authorization"].startswith("Bearer ")
    assert "x-ms-version" in get.headers
