"""AWS credentials for a Route.

* ``ambient`` / ``aws-platform``: the platform's own identity, boto's default chain (or the
  configured profile), handed to s3fs as is.
* ``aws-assume-role``: STS AssumeRole into the tenant's role with its ExternalId, from the
  platform's identity, refreshed before expiry (refresh.py). s3fs gets an aiobotocore session
  whose credential chain holds *only* that role: there is no provider behind it to fall back to
  the platform's keys (with the integration enabled, the platform never reads as itself).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, cast

from botocore.credentials import ReadOnlyCredentials

from .. import _redact
from .._config import Config
from .._errors import AccessDenied
from .._rules import Grant, Route
from . import refresh
from .refresh import shared

#: STS session length asked for; refresh.py refreshes 15 (advisory) / 10 (mandatory) min early.
DURATION_SECONDS = 3600


def s3fs_options(config: Config | None, route: Route) -> dict[str, Any]:
    """Keyword arguments for ``S3FileSystem`` that authenticate as ``route.grant``."""
    kind = route.grant.kind
    aws_cfg = config.platform.aws if config else None
    if kind in ("ambient", "aws-platform"):
        opts: dict[str, Any] = {}
        if aws_cfg is not None and aws_cfg.anonymous:
            return {"anon": True}
        if aws_cfg is not None and aws_cfg.profile:
            opts["profile"] = aws_cfg.profile
        return opts
    if kind == "aws-assume-role":
        return {"session": _role_session(assumed_role(config, route.grant))}
    raise ValueError(f"not an AWS grant: {kind!r}")


def assumed_role(config: Config | None, grant: Grant) -> refresh.Refreshable[ReadOnlyCredentials]:
    """The process-wide refreshing credentials of the tenant role ``grant`` names."""
    digest = config.digest if config else None
    return shared(("aws", digest, grant), lambda: refresh.Refreshable(
        lambda: _assume(config, grant), what=f"role {grant.role_arn}",
        clock=refresh.now, secrets=lambda c: (c.secret_key, c.token)))


#: How long a frozen copy of the platform's credentials is used before botocore is asked again.
#: The lease is given ``advisory + RECHECK_SECONDS`` of life, so it is re-asked (in the
#: background) after ``RECHECK_SECONDS`` and must be by ``RECHECK_SECONDS + advisory -
#: mandatory`` (9 min): inside the 10 minutes botocore's own mandatory refresh guarantees.
RECHECK_SECONDS = 4 * 60
#: How long "the default chain found nothing" is believed before the chain is walked again
#: (someone may set AWS_* variables or attach an instance role meanwhile).
NOTHING_FOUND_SECONDS = 5 * 60


def platform_lease(config: Config | None) -> refresh.Refreshable[ReadOnlyCredentials | None]:
    """The platform's own AWS credentials (default chain or profile), frozen for the hot read
    path. The chain is walked once per process and config; botocore refreshes what it found
    (instance roles, SSO, ``AWS_CREDENTIAL_EXPIRATION``) through its public
    ``get_frozen_credentials``, asked again every few minutes. The value is None when the chain
    finds nothing: requests then go unsigned, and the chain is walked again only after
    ``NOTHING_FOUND_SECONDS``, never on every read."""
    digest = config.digest if config else None

    def build() -> refresh.Refreshable[ReadOnlyCredentials | None]:
        chain = _PlatformChain(config)
        return refresh.Refreshable(
            chain.lease, what="the platform's AWS identity", on_invalidate=chain.forget,
            clock=refresh.now, secrets=lambda c: (c.secret_key, c.token) if c else ())

    return shared(("aws-platform", digest), build)


class _PlatformChain:
    """What boto's default chain found for one config (None: nothing), walked as rarely as
    it may be: once, or again after ``NOTHING_FOUND_SECONDS`` when it found nothing."""

    def __init__(self, config: Config | None):
        self.config = config
        self.found: Any = None
        self.walked_at: float | None = None

    def forget(self) -> None:
        """The service refused what the chain found (an expired session token): walk the
        chain again on the next fetch, which picks up renewed environment variables or files."""
        self.found, self.walked_at = None, None

    def lease(self) -> refresh.Lease[Any]:
        now = refresh.now()
        if self.found is None and (self.walked_at is None
                                   or now - self.walked_at >= NOTHING_FOUND_SECONDS):
            self.found = platform_session(self.config).get_credentials()
            self.walked_at = now
        if self.found is None:
            # Outlives the advisory window, so no read refreshes it before it is due.
            return refresh.Lease(None, now + refresh.ADVISORY_SECONDS + NOTHING_FOUND_SECONDS)
        # botocore refreshes expiring credentials here (public API); static keys come back as
        # they are.
        frozen = self.found.get_frozen_credentials()
        return refresh.Lease(frozen, now + refresh.ADVISORY_SECONDS + RECHECK_SECONDS)


def platform_session(config: Config | None) -> Any:  # a boto3.Session
    """A boto3 session as the platform's own AWS identity (default chain or profile)."""
    import boto3

    aws_cfg = config.platform.aws if config else None
    return boto3.Session(profile_name=aws_cfg.profile if aws_cfg else None)


def _sts_client(config: Config | None) -> Any:  # a botocore STS client
    aws_cfg = config.platform.aws if config else None
    kwargs: dict[str, Any] = {}
    if aws_cfg is not None:
        if aws_cfg.sts_endpoint_url:
            kwargs["endpoint_url"] = aws_cfg.sts_endpoint_url
        if aws_cfg.region:
            kwargs["region_name"] = aws_cfg.region
    kwargs.setdefault("region_name", "us-east-1")
    return platform_session(config).client("sts", **kwargs)


def _assume(config: Config | None, grant: Grant) -> refresh.Lease[ReadOnlyCredentials]:
    from botocore.exceptions import BotoCoreError, ClientError

    # The ExternalId is no secret to STS, but docs/configuration.md keeps it out of logs:
    # botocore logs its request parameters at DEBUG.
    _redact.remember([grant.external_id])
    try:
        resp = _sts_client(config).assume_role(
            RoleArn=grant.role_arn,
            RoleSessionName=grant.session_name,
            ExternalId=grant.external_id,
            DurationSeconds=DURATION_SECONDS,
        )
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        raise AccessDenied(
            f"AssumeRole into {grant.role_arn} as the platform's AWS identity was refused "
            f"({code}); the tenant's role trust policy must allow it",
            uri=None, identity=grant.role_arn,
            hint=(f"in the tenant's account, the trust policy of {grant.role_arn} must allow "
                  "sts:AssumeRole for the platform account with the condition "
                  "sts:ExternalId = the tenant's external ID (see `attachfs policy aws`)"),
        ) from None
    except BotoCoreError as err:
        raise AccessDenied(
            f"could not assume {grant.role_arn}: the platform's AWS identity is not usable "
            f"({type(err).__name__})", identity=grant.role_arn,
            hint="check the platform's own AWS credentials (default chain or "
                 "platform.aws.profile) and platform.aws.sts_endpoint_url",
        ) from None
    creds = resp["Credentials"]
    expires = creds["Expiration"]
    if isinstance(expires, dt.datetime):
        expires_at = expires.timestamp()
    else:  # pragma: no cover - botocore always parses it
        expires_at = dt.datetime.fromisoformat(str(expires)).timestamp()
    value = ReadOnlyCredentials(creds["AccessKeyId"], creds["SecretAccessKey"],
                                creds["SessionToken"])
    return refresh.Lease(value, expires_at)


class _RoleCredentials:
    """aiobotocore's refreshable-credentials interface (as ``AioRefreshableCredentials``),
    served from the lease: every getter makes sure the lease is valid first."""

    method = "attachfs-assume-role"

    def __init__(self, lease: refresh.Refreshable[ReadOnlyCredentials]):
        self._lease = lease

    def __repr__(self) -> str:
        return f"<RoleCredentials {self._lease.what}>"

    async def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return await self._lease.get()

    async def get_access_key(self) -> str:
        return cast(str, (await self._lease.get()).access_key)

    async def get_secret_key(self) -> str:
        return cast(str, (await self._lease.get()).secret_key)

    async def get_token(self) -> str:
        return cast(str, (await self._lease.get()).token)

    async def get_account_id(self) -> None:
        return None  # S3 does not use account-id-based endpoints

    def get_deferred_property(self, name: str) -> Callable[[], None]:
        return lambda: None


class _RoleProvider:
    METHOD = "attachfs-assume-role"
    CANONICAL_NAME = "attachfs"

    def __init__(self, lease: refresh.Refreshable[ReadOnlyCredentials]):
        self._credentials = _RoleCredentials(lease)

    async def load(self) -> _RoleCredentials:
        return self._credentials


def _role_session(lease: refresh.Refreshable[ReadOnlyCredentials]) -> Any:  # an AioSession
    from aiobotocore.credentials import AioCredentialResolver
    from aiobotocore.session import AioSession

    session = AioSession()
    # The only provider: no env keys, profile or instance role can stand in for the tenant's.
    session.register_component("credential_provider",
                               AioCredentialResolver(providers=[_RoleProvider(lease)]))
    return session
