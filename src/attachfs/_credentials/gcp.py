"""Google credentials for a Route.

* ``ambient`` / ``gcp-platform``: the platform's own identity: ``platform.gcp.credentials`` (a
  service-account key file), application default credentials, or ``"anonymous"`` for emulators.
* ``gcp-impersonate``: google-auth impersonated credentials for the tenant's service account,
  with the read-only storage scope, sourced from the platform's identity.

Refreshing a Google token is blocking I/O (google-auth uses requests). It never runs on the
fsspec event loop: a Refreshable does it in a worker thread, ahead of every operation
(``ready``), and gcsfs is handed a credentials object that only reads the current lease.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, cast

from google.auth import credentials as ga_credentials

from .._config import Config
from .._errors import AccessDenied
from .._rules import Grant, Route
from . import refresh
from .refresh import shared

if TYPE_CHECKING:
    from google.auth import impersonated_credentials, transport

READ_ONLY = "https://www.googleapis.com/auth/devstorage.read_only"
DEFAULT_IAM = "https://iamcredentials.googleapis.com"


def gcsfs_options(config: Config | None, route: Route) -> dict[str, Any]:
    """Keyword arguments for ``GCSFileSystem`` that authenticate as ``route.grant``."""
    kind = route.grant.kind
    gcp_cfg = config.platform.gcp if config else None
    if kind in ("ambient", "gcp-platform"):
        source = gcp_cfg.credentials if gcp_cfg is not None else None
        if source == "anonymous":
            return {"token": "anon"}
        return {"token": LeasedCredentials(_token_lease(config, route.grant))}
    if kind == "gcp-impersonate":
        return {"token": LeasedCredentials(_token_lease(config, route.grant))}
    raise ValueError(f"not a GCP grant: {kind!r}")


def token_lease(config: Config | None, grant: Grant) -> refresh.Refreshable[str] | None:
    """The process-wide access-token lease for ``grant`` (None: anonymous)."""
    gcp_cfg = config.platform.gcp if config else None
    if grant.kind in ("ambient", "gcp-platform") and gcp_cfg and gcp_cfg.credentials == "anonymous":
        return None
    return _token_lease(config, grant)


def _token_lease(config: Config | None, grant: Grant) -> refresh.Refreshable[str]:
    # token_lease less the anonymous case, which gcsfs_options answers before asking.
    what = (f"service account {grant.service_account}" if grant.kind == "gcp-impersonate"
            else "the platform's Google identity")
    digest = config.digest if config else None
    return shared(("gcp", digest, grant), lambda: refresh.Refreshable(
        _fetcher(config, grant), what=what, clock=refresh.now, secrets=lambda token: (token,),
        # Google tokens live an hour. Refresh 10 / 5 minutes early: gcsfs refreshes by itself
        # (blocking, on the loop) when a token has under 5 minutes left, so ready() keeps it
        # out of that range.
        advisory=600, mandatory=300))


def platform_credentials(config: Config | None) -> ga_credentials.Credentials:
    """The platform's own Google identity, scoped read-only."""
    import google.auth
    from google.oauth2 import service_account

    gcp_cfg = config.platform.gcp if config else None
    if gcp_cfg is not None and gcp_cfg.credentials:
        with open(gcp_cfg.credentials, encoding="utf-8") as f:
            info = json.load(f)
        if gcp_cfg.token_uri:
            info["token_uri"] = gcp_cfg.token_uri
        # google-auth leaves this classmethod unannotated.
        creds: ga_credentials.Credentials = (
            service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=[READ_ONLY]))
        return creds
    creds, _ = google.auth.default(scopes=[READ_ONLY])
    return creds


def _fetcher(config: Config | None, grant: Grant) -> Callable[[], refresh.Lease[str]]:
    def fetch() -> refresh.Lease[str]:
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import Request

        try:
            creds = platform_credentials(config)
            if grant.kind == "gcp-impersonate":
                assert grant.service_account is not None  # _rules names it in every impersonation
                creds = _impersonated(config, creds, grant.service_account)
            creds.refresh(Request())  # type: ignore[no-untyped-call]  # google-auth: unannotated
        except (GoogleAuthError, OSError) as err:
            # google-auth words a failed generateAccessToken call this way; anything else
            # failed before it, getting the platform's own (source) token.
            if "Unable to acquire impersonated credentials" in " ".join(map(str, err.args)):
                raise _impersonation_failed(grant, err) from None
            raise _platform_unusable(err) from None
        expiry = creds.expiry
        if expiry is None:  # pragma: no cover - both kinds always set it
            expires_at = refresh.now() + 3600
        else:
            expires_at = expiry.replace(tzinfo=dt.timezone.utc).timestamp()
        # A refresh that returned set the token (google-auth types it Optional).
        return refresh.Lease(cast(str, creds.token), expires_at)

    return fetch


def _impersonated(config: Config | None, source: ga_credentials.Credentials,
                  service_account: str) -> impersonated_credentials.Credentials:
    from google.auth import impersonated_credentials

    gcp_cfg = config.platform.gcp if config else None
    base = (gcp_cfg.iam_endpoint_url if gcp_cfg and gcp_cfg.iam_endpoint_url
            else DEFAULT_IAM).rstrip("/")
    # google-auth leaves this constructor unannotated.
    return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=source,
        target_principal=service_account,
        target_scopes=[READ_ONLY],
        lifetime=3600,
        iam_endpoint_override=(
            f"{base}/v1/projects/-/serviceAccounts/{service_account}:generateAccessToken"),
    )


def _platform_unusable(err: Exception) -> AccessDenied:
    return AccessDenied(
        f"the platform's Google identity could not get a token ({type(err).__name__})",
        identity="platform:gcp",
        hint="check platform.gcp.credentials (a service-account key file) or the "
             "application default credentials",
    )


def _impersonation_failed(grant: Grant, err: Exception) -> Exception:
    """A refusal (401/403 from generateAccessToken) names the missing grant; anything else
    (an outage, a 5xx) is a retryable ConnectionError, not a verdict on the setup."""
    sa = grant.service_account
    text = " ".join(str(a) for a in err.args)
    if "insufficient authentication scopes" in text or "SCOPE_INSUFFICIENT" in text:
        # A VM's tokens carry the VM's access scopes whatever is asked for; without
        # cloud-platform the IAM Credentials API refuses them even with Token Creator granted
        # (https://cloud.google.com/compute/docs/access/service-accounts#accesscopesiam).
        return AccessDenied(
            f"impersonating {sa} was refused: the platform's Google token lacks the "
            "cloud-platform access scope (a VM's access scopes limit every token it gets)",
            identity=sa,
            hint=("give the platform's VM (or node pool) the cloud-platform access scope: stop "
                  "it and set its scopes (gcloud compute instances set-service-account "
                  "--scopes=cloud-platform), or point platform.gcp.credentials at a "
                  "service-account key; granting Token Creator again will not help"),
        )
    if "PERMISSION_DENIED" in text or "403" in text or "UNAUTHENTICATED" in text or (
            "401" in text):
        return AccessDenied(
            f"impersonating {sa} as the platform's Google identity was refused", identity=sa,
            hint=(f"in the tenant's project, grant the platform's service account the role "
                  f"Service Account Token Creator (roles/iam.serviceAccountTokenCreator) on "
                  f"{sa} (see `attachfs policy gcp`)"),
        )
    return ConnectionError(f"could not impersonate {sa}: the IAM Credentials API failed "
                           f"({type(err).__name__}); try again")


class LeasedCredentials(ga_credentials.Credentials):
    """google-auth credentials that read the current token from a Refreshable.

    ``ready()`` keeps the lease fresh off-loop before each operation, so gcsfs always finds
    these valid; ``refresh`` is only a blocking fallback for callers outside attachfs.
    """

    def __init__(self, lease: refresh.Refreshable[str]):
        super().__init__()  # type: ignore[no-untyped-call]  # google-auth's is unannotated
        self._lease = lease
        self._sync()

    def __repr__(self) -> str:
        return f"<LeasedCredentials {self._lease.what}>"

    def __reduce__(self) -> NoReturn:
        raise TypeError("Google credentials are not picklable: pickle the filesystem instead")

    def _sync(self) -> None:
        lease = self._lease.lease
        if lease is None:
            self.token, self.expiry = None, None
        else:
            self.token = lease.value
            self.expiry = dt.datetime.fromtimestamp(lease.expires_at, dt.timezone.utc).replace(
                tzinfo=None)

    @property
    def valid(self) -> bool:  # judged by our clock, so tests can move time
        self._sync()
        lease = self._lease.lease
        return lease is not None and refresh.now() < lease.expires_at - 10

    @property
    def expired(self) -> bool:
        return not self.valid

    def refresh(self, request: transport.Request) -> None:
        self._lease.get_sync()
        self._sync()

    def before_request(self, request: transport.Request, method: str, url: str,
                       headers: dict[str, str]) -> None:
        if not self.valid:
            self.refresh(request)
        self.apply(headers)  # type: ignore[no-untyped-call]  # google-auth's is unannotated
