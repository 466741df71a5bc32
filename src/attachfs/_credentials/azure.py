"""Azure credentials for a Route.

* ``azure-app``: the platform's multi-tenant app (client secret from the environment variable
  the config names, or a certificate file) as a service principal in the tenant's directory,
  with a token from the Entra ID authority the Grant names (a sovereign cloud's own, decided
  in ``_rules``), else ``platform.azure.authority``, else the public cloud's.
  adlfs is handed a credential that serves only that app's token: never ``None``, because adlfs
  turns a missing credential into an anonymous client.
* ``anonymous``: no credential at all (without an integration, Azure reads are anonymous).
* ``ambient``: adlfs's own chain, or a shared key from the environment for emulators.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from .. import _redact
from .._config import Config
from .._errors import AccessDenied, ConfigError
from .._rules import Grant, Route
from . import refresh
from .refresh import shared

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken
    from azure.identity import CertificateCredential, ClientSecretCredential

STORAGE_SCOPE = "https://storage.azure.com/.default"


def adlfs_options(config: Config | None, route: Route, account: str) -> dict[str, Any]:
    """Keyword arguments for ``AzureBlobFileSystem`` for ``account`` as ``route.grant``."""
    kind = route.grant.kind
    az_cfg = config.platform.azure if config else None
    endpoint = (az_cfg.endpoint_url.format(account=account)
                if az_cfg and az_cfg.endpoint_url else None)
    opts: dict[str, Any] = {"account_name": account}
    if endpoint and endpoint.startswith("https://"):
        # adlfs builds https://{account_host}: a path-style emulator or private endpoint.
        opts["account_host"] = endpoint[len("https://"):].rstrip("/")
    elif endpoint is None and route.location.endpoint_suffix:
        # A sovereign cloud's blob endpoint (adlfs defaults to the public cloud's).
        opts["account_host"] = f"{account}.blob.{route.location.endpoint_suffix}"
    if kind == "azure-app":
        opts["credential"] = LeasedTokenCredential(token_lease(config, route.grant))
        return opts
    if kind == "anonymous":
        if endpoint and not endpoint.startswith("https://"):
            opts["connection_string"] = _connection_string(account, endpoint, None)
        opts["anon"] = True
        return opts
    if kind != "ambient":
        raise ValueError(f"not an Azure grant: {kind!r}")
    if az_cfg is not None and az_cfg.anonymous:
        if endpoint and not endpoint.startswith("https://"):
            opts["connection_string"] = _connection_string(account, endpoint, None)
        opts["anon"] = True
        return opts
    key = None
    if az_cfg is not None and az_cfg.account_key_env:
        key = os.environ.get(az_cfg.account_key_env)
        if not key:
            assert config is not None  # az_cfg is config's
            raise ConfigError(f"environment variable {az_cfg.account_key_env} is not set",
                              source=config.source, key="platform.azure.account_key_env")
    if endpoint and not endpoint.startswith("https://"):
        # Plain-http emulators: a connection string is the only form adlfs accepts for them.
        opts["connection_string"] = _connection_string(account, endpoint, key)
        opts["anon"] = key is None
    elif key:
        opts["account_key"] = key
    return opts


def _connection_string(account: str, endpoint: str, key: str | None) -> str:
    scheme = endpoint.split("://", 1)[0]
    parts = [f"DefaultEndpointsProtocol={scheme}", f"AccountName={account}",
             f"BlobEndpoint={endpoint}"]
    if key:
        parts.append(f"AccountKey={key}")
    return ";".join(parts) + ";"


def token_lease(config: Config | None, grant: Grant) -> refresh.Refreshable[AccessToken]:
    """The process-wide storage-token lease of the platform app in the tenant's directory."""
    assert config is not None  # an azure-app grant comes from a tenant of a config
    digest = config.digest
    return shared(("azure", digest, grant), lambda: refresh.Refreshable(
        _fetcher(config, grant), what=f"azure-app:{grant.client_id}@{grant.azure_tenant_id}",
        clock=refresh.now, advisory=600, mandatory=300,
        secrets=lambda token: (token.token,)))


def _app_credential(config: Config,
                    grant: Grant) -> ClientSecretCredential | CertificateCredential:
    from azure.identity import CertificateCredential, ClientSecretCredential

    # _config requires platform.azure.client_id for any tenant's Azure integration.
    assert grant.azure_tenant_id is not None and grant.client_id is not None
    az = config.platform.azure
    kwargs: dict[str, Any] = {}
    authority = grant.azure_authority or az.authority
    if authority:
        kwargs["authority"] = authority
        # A sovereign cloud or a local fake: no instance discovery against the public cloud.
        kwargs["disable_instance_discovery"] = True
    if az.client_secret_env:
        secret = os.environ.get(az.client_secret_env)
        _redact.remember([secret])
        if not secret:
            raise ConfigError(
                f"environment variable {az.client_secret_env} (the platform app's client "
                "secret) is not set", source=config.source, key="platform.azure.client_secret_env")
        return ClientSecretCredential(grant.azure_tenant_id, grant.client_id, secret, **kwargs)
    return CertificateCredential(grant.azure_tenant_id, grant.client_id,
                                 certificate_path=az.client_certificate_path, **kwargs)


def _fetcher(config: Config, grant: Grant) -> Callable[[], refresh.Lease[AccessToken]]:
    def fetch() -> refresh.Lease[AccessToken]:
        from azure.core.exceptions import ClientAuthenticationError

        credential = _app_credential(config, grant)
        try:
            token = credential.get_token(STORAGE_SCOPE)
        except ClientAuthenticationError as err:
            raise _refused(config, grant, err) from None
        finally:
            credential.close()
        return refresh.Lease(token, float(token.expires_on))

    return fetch


#: Entra found no service principal of the app in the directory: nobody there consented.
_NOT_CONSENTED = frozenset({"AADSTS700016"})
#: Entra refused the app's own secret or certificate assertion (invalid, expired, wrong key).
_BAD_APP_CREDENTIAL = frozenset({"AADSTS7000215", "AADSTS7000222", "AADSTS700027",
                                 "AADSTS700024", "AADSTS700021", "AADSTS50027"})


def _refused(config: Config, grant: Grant, err: Exception) -> Exception:
    """Say why Entra gave no token. A missing consent (the tenant's administrator acts) and a
    refused app secret (the platform acts) are different fixes, and an Entra that answered no
    refusal at all (an outage: HTTP 5xx after azure-identity's retries) is an OSError a caller
    may retry, never an ``AccessDenied``."""
    app, directory = grant.client_id, grant.azure_tenant_id
    identity = f"azure-app:{app}@{directory}"
    code = _aadsts(err)
    if code is None:
        authority = (grant.azure_authority or config.platform.azure.authority
                     or "https://login.microsoftonline.com")
        return ConnectionError(
            f"the platform's Azure app {app} could not get a token in directory {directory}: "
            f"Entra ID ({authority}) answered neither a token nor a refusal "
            f"({_http_status(err)}); it may be unavailable, try again later")
    if code in _NOT_CONSENTED:
        return AccessDenied(
            f"the platform's Azure app {app} is not consented in directory {directory} ({code}: "
            "the app has no service principal there)", identity=identity,
            hint=(f"an administrator of directory {directory} must consent to the app (the "
                  "integration's 'Connect to Azure' step)"))
    if code in _BAD_APP_CREDENTIAL:
        az = config.platform.azure
        which = (f"client secret (${az.client_secret_env})" if az.client_secret_env
                 else f"certificate ({az.client_certificate_path})")
        return AccessDenied(
            f"Entra ID refused the platform's Azure app {app} {which} in directory {directory} "
            f"({code})", identity=identity,
            hint=f"the platform app's {which} is wrong or expired: renew it in the app "
                 "registration and in the platform's configuration")
    return AccessDenied(
        f"the platform's Azure app {app} could not get a token in directory {directory} ({code})",
        identity=identity,
        hint=("an administrator of that directory must consent to the app (the integration's "
              "'Connect to Azure' step); if it was consented, check the platform app's secret "
              "or certificate"))


def _aadsts(err: Exception) -> str | None:
    """The AADSTS code of an Entra refusal (a code, never the token or secret), or None."""
    import re

    m = re.search(r"AADSTS\d+", str(err))
    return m.group(0) if m else None


def _http_status(err: Exception) -> str:
    import re

    m = re.search(r"HTTP Error: \d{3}", str(err))
    return m.group(0) if m else type(err).__name__


class LeasedTokenCredential:
    """An async ``TokenCredential`` for the Azure SDK, served from a Refreshable."""

    def __init__(self, lease: refresh.Refreshable[AccessToken]):
        self._lease = lease

    def __repr__(self) -> str:
        return f"<LeasedTokenCredential {self._lease.what}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("Azure credentials are not picklable: pickle the filesystem instead")

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return await self._lease.get()

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> LeasedTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
