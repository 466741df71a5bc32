"""The Azure Blob backend: adlfs, with its Azure SDK client built with attachfs's egress.

adlfs passes no client options through, so ``EgressAzureBlobFileSystem`` builds the
``BlobServiceClient`` itself the way adlfs does, adding the proxy the Route names and turning
off azure-core's environment settings (it reads ``HTTPS_PROXY`` by default): a stray proxy
variable must not reroute customer data.
"""

from __future__ import annotations

import os
from typing import Any

from adlfs import AzureBlobFileSystem
from adlfs.spec import _USER_AGENT
from azure.storage.blob.aio import BlobServiceClient

from .._config import Config
from .._credentials import azure as azure_credentials
from .._errors import ConfigError
from .._rules import Route

__all__ = ["EgressAzureBlobFileSystem", "build"]


def build(config: Config | None, route: Route, trust_env: bool,
          common: dict[str, Any]) -> EgressAzureBlobFileSystem:
    """adlfs for ``route``'s account and grant, through ``route.proxy`` (or directly)."""
    account = route.location.account or _ambient_account()
    kwargs = azure_credentials.adlfs_options(config, route, account)
    return EgressAzureBlobFileSystem(egress=client_egress(route.proxy, trust_env), **kwargs,
                                     **common)


def _ambient_account() -> str:
    # The Route already applied platform.azure.account (and refused a missing account in a
    # multi-tenant config); what is left is ambient mode's environment default.
    account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
    if not account:
        raise ConfigError(
            "an az:// URI names no storage account and none is configured: write "
            "https://ACCOUNT.blob.core.windows.net/CONTAINER/KEY or "
            "az://CONTAINER@ACCOUNT.blob.core.windows.net/KEY, or set "
            "platform.azure.account",
            key="platform.azure.account",
        )
    return account


def client_egress(proxy: str | None, trust_env: bool) -> dict[str, Any]:
    """Azure SDK client options: ``proxies`` for the configured proxy; ``use_env_settings``
    off (azure-core reads ``HTTPS_PROXY`` by default)."""
    options: dict[str, Any] = {"use_env_settings": trust_env}
    if proxy:
        options["proxies"] = {"http": proxy, "https": proxy}
    return options



class EgressAzureBlobFileSystem(AzureBlobFileSystem):
    """adlfs with its Azure SDK client built with our egress options (adlfs passes none
    through). Connects the way adlfs does for the option sets credentials/azure.py makes:
    a connection string, or an account with a credential, a key, or nothing."""

    def __init__(self, *, egress: dict[str, Any], **kwargs: Any):
        self.egress = egress
        super().__init__(**kwargs)

    def do_connect(self) -> None:
        try:
            if self.connection_string is not None:
                self.service_client = BlobServiceClient.from_connection_string(
                    conn_str=self.connection_string, user_agent=_USER_AGENT, **self.egress)
                return
            host = getattr(self, "account_host", None) or (
                f"{self.account_name}.blob.core.windows.net")
            self.account_url = f"https://{host}"
            credential = self.credential or self.account_key
            kwargs: dict[str, Any] = {"account_url": self.account_url,
                                      "user_agent": _USER_AGENT, **self.egress}
            if credential is not None:
                kwargs.update(credential=credential, _location_mode=self.location_mode)
            self.service_client = BlobServiceClient(**kwargs)
        except Exception as err:
            raise ValueError(f"unable to connect to account for {err}") from err
