"""The access rules: (Config, tenant, Location) -> Route. Pure: no I/O, no secrets.

Every access rule of attachfs lives here; the I/O modules carry
out the ``Route`` they are handed and never re-decide it. ``route()`` raises exactly what a read
would raise before its first request: ``AccessRefused`` (no/unknown tenant, unclaimed bucket) or
``ConfigError``.

Decisions beyond the table of integrations:

* A tenant passed without a multi-tenant config is refused (fail closed): the caller believes
  tenant rules apply, and they would not.
* An unknown tenant is refused without listing the known ones (no cross-tenant leak).
* Plain http(s) reads in a multi-tenant config also need a known tenant: every read is made for
  a tenant, and the tenant keys the cache isolation.
* ``az://container/key`` without an account takes ``platform.azure.account``; in a multi-tenant
  config it is a ``ConfigError`` if neither names one (which account is read decides whose data
  it is). In ambient mode the backend's own default applies.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from ._config import Claim, Config, Tenant
from ._errors import AccessRefused, ConfigError
from ._redact import redact
from ._types import BACKENDS, Backend, GrantKind, Mode
from ._uri import Location

__all__ = ["Grant", "Route", "route"]

@dataclass(frozen=True)
class Grant:
    """What credentials a read needs, secret-free; the credential layer turns it into credentials."""

    kind: GrantKind
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    session_name: str | None = None
    service_account: str | None = None
    azure_tenant_id: str | None = None
    client_id: str | None = None
    expected_bucket_owner: str | None = None

    def __repr__(self) -> str:
        # external_id stays out (field(repr=False) documents it; this repr lists only set fields)
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                 if f.repr and getattr(self, f.name) is not None]
        return f"Grant({', '.join(shown)})"


@dataclass(frozen=True)
class Route:
    """How one read is made: as whom, through what, and the rule that decided it."""

    uri: str
    backend: Backend
    location: Location
    mode: Mode
    identity: str | None
    claim: Claim | None
    proxy: str | None
    tenant: str | None
    grant: Grant
    rule: str

    def __repr__(self) -> str:
        # A signed URL's query string is its credential: never in a repr.
        return (f"Route(uri={redact(self.uri)!r}, backend={self.backend!r}, mode={self.mode!r}, "
                f"identity={self.identity!r}, tenant={self.tenant!r}, claim={self.claim!r}, "
                f"proxy={self.proxy!r}, grant={self.grant!r}, rule={self.rule!r})")


RULE_AMBIENT = "ambient mode (no tenants configured): the backend's default credential chain"
RULE_URL = "plain http(s) or signed URL: the URL carries its own authority; no credentials"
RULE_S3_DELEGATED = ("S3 with the tenant's AWS integration: assume its role with its ExternalId; "
                     "never the platform's own identity")
RULE_S3_DIRECT = "S3 without an AWS integration, bucket claimed by the tenant: the platform's own AWS identity"
RULE_GCS_DELEGATED = ("GCS with the tenant's GCP integration: impersonate its service account "
                      "(read-only); never the platform's own identity")
RULE_GCS_DIRECT = ("GCS without a GCP integration, bucket claimed by the tenant: the platform's "
                   "own Google identity")
RULE_AZURE_DELEGATED = ("Azure with the tenant's Azure integration: the platform's app as a service "
                        "principal in the tenant's directory; never anonymous")
RULE_AZURE_ANONYMOUS = "Azure without an Azure integration: anonymous"

_SESSION_CHARS = re.compile(r"[^A-Za-z0-9_+=,.@-]")


def session_name(tenant: str) -> str:
    """The STS RoleSessionName naming the tenant (shows up in the tenant's CloudTrail)."""
    return _SESSION_CHARS.sub("-", f"attachfs-{tenant}")[:64]


def route(config: Config | None, tenant: str | None, location: Location) -> Route:
    """Decide how ``location`` is read for ``tenant`` under ``config`` (None: ambient mode)."""
    tenant = tenant or None
    backend = location.backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} for {location.uri!r}")
    ambient = config is None or not config.multi_tenant
    if ambient and tenant is not None:
        where = ("no config is set" if config is None
                 else f"{config.source or 'the config'} defines no tenants")
        raise AccessRefused(
            f"read refused for tenant {tenant!r}: {where}, so no tenant rules would apply. "
            "Point $ATTACHFS_CONFIG (or config=) at a config with [tenants], or drop tenant= "
            "and unset $ATTACHFS_TENANT for ambient mode",
            uri=location.uri, tenant=tenant, rule="tenant-without-config")
    t = None if config is None or ambient else _tenant(config, tenant, location)
    proxy = None
    if config is not None and backend != "s3":  # S3 grants by IAM, never by source address
        proxy = config.platform.http.proxy
    if backend == "azure" and location.account is None and config is not None:
        if config.platform.azure.account:
            location = dataclasses.replace(location, account=config.platform.azure.account)
        elif not ambient:  # which account is read decides whose data it is
            raise ConfigError(f"{location.uri} names no storage account: use "
                              "https://{account}.blob.core.windows.net/{container}/{key}, or set "
                              "platform.azure.account", source=config.source,
                              key="platform.azure.account")

    def make(mode: Mode, grant: Grant, rule: str, identity: str | None = None,
             claim: Claim | None = None) -> Route:
        return Route(uri=location.uri, backend=backend, location=location, mode=mode,
                     identity=identity, claim=claim, proxy=proxy, tenant=tenant, grant=grant,
                     rule=rule)

    if backend == "http":
        return make("url", Grant("none"), RULE_URL)
    if config is None or t is None:  # ambient mode
        return make("ambient", Grant("ambient"), RULE_AMBIENT)
    if backend == "s3":
        if t.aws is not None:
            arn = f"arn:aws:iam::{t.aws.account_id}:role/{config.platform.aws.role_name}"
            grant = Grant("aws-assume-role", role_arn=arn, external_id=t.aws.external_id,
                          session_name=session_name(t.name))
            return make("delegated", grant, RULE_S3_DELEGATED, identity=arn)
        claim = _claim(config, t, location, "an AWS", f"tenants.{t.name}.aws = "
                                                   "{ account_id, external_id }")
        return make("direct", Grant("aws-platform", expected_bucket_owner=claim.owner),
                    RULE_S3_DIRECT, identity="platform:aws", claim=claim)
    if backend == "gcs":
        if t.gcp is not None:
            sa = t.gcp.service_account
            return make("delegated", Grant("gcp-impersonate", service_account=sa),
                        RULE_GCS_DELEGATED, identity=sa)
        claim = _claim(config, t, location, "a GCP", f"tenants.{t.name}.gcp = "
                                                      "{ service_account }")
        return make("direct", Grant("gcp-platform"), RULE_GCS_DIRECT, identity="platform:gcp",
                    claim=claim)
    # azure
    if t.azure is not None:
        client_id = config.platform.azure.client_id
        grant = Grant("azure-app", azure_tenant_id=t.azure.tenant_id, client_id=client_id)
        return make("delegated", grant, RULE_AZURE_DELEGATED,
                    identity=f"azure-app:{client_id}@{t.azure.tenant_id}")
    return make("anonymous", Grant("anonymous"), RULE_AZURE_ANONYMOUS)


def _tenant(config: Config, tenant: str | None, location: Location) -> Tenant:
    where = config.source or "the config mapping"
    if tenant is None:
        raise AccessRefused(
            f"read of {location.uri} refused: the config ({where}) defines tenants, so every "
            "read is made for one; set tenant= or $ATTACHFS_TENANT",
            uri=location.uri, tenant=None, rule="no-tenant")
    found: Tenant | None = config.tenants.get(tenant)
    if found is None:
        # Never list the known tenants: one tenant must not learn another's name.
        raise AccessRefused(
            f"read of {location.uri} refused: unknown tenant {tenant!r}; tenants are defined "
            f"under [tenants] in {where}",
            uri=location.uri, tenant=tenant, rule="unknown-tenant")
    return found


def _claim(config: Config, t: Tenant, location: Location, cloud: str, setup: str) -> Claim:
    for claim in t.direct:
        if claim.covers(location):
            return claim
    scheme = "s3" if location.backend == "s3" else "gs"
    bucket = f"{scheme}://{location.bucket}"
    raise AccessRefused(
        f"read of {location.uri} refused: bucket {bucket} is not claimed by tenant {t.name!r}, "
        f"and without {cloud} integration the read would use the platform's own identity "
        "(anyone who guesses a bucket name could submit it). Either claim it: add "
        f"\"{bucket}\" to tenants.{t.name}.direct in {config.source or 'the config'}; or set up "
        f"delegated access: {setup}",
        uri=location.uri, tenant=t.name, rule="unclaimed")


def denied_hint(route: Route) -> str:
    """What the customer (or the platform) must grant when the cloud refuses ``route``'s read.

    The counterpart of the table above: for each way a read is made, the grant it relies on.
    """
    loc = route.location
    g = route.grant
    if g.kind == "aws-assume-role":
        return (f"the permission policy of {g.role_arn} must allow s3:GetObject on "
                f"arn:aws:s3:::{loc.bucket}/* (see `attachfs policy aws`)")
    if g.kind == "aws-platform":
        owner = f" (owner {g.expected_bucket_owner})" if g.expected_bucket_owner else ""
        return (f"the bucket policy of {loc.bucket}{owner} must allow s3:GetObject for the "
                "platform account (see `attachfs policy bucket`), or set up delegated access")
    if g.kind == "gcp-impersonate":
        return (f"grant {g.service_account} the role Storage Object Viewer "
                f"(roles/storage.objectViewer) on gs://{loc.bucket} (see `attachfs policy gcp`)")
    if g.kind == "gcp-platform":
        return (f"grant the platform's service account Storage Object Viewer on "
                f"gs://{loc.bucket}, or set up service-account impersonation")
    if g.kind == "azure-app":
        return (f"assign the app's service principal (client id {g.client_id}) the role "
                f"Storage Blob Data Reader on the storage account {loc.account} or the "
                f"container {loc.bucket} (see `attachfs policy azure`)")
    if g.kind == "anonymous":
        return (f"the container {loc.bucket} does not allow anonymous reads: connect the "
                "tenant's Azure directory (delegated access) or make the container public")
    if g.kind == "none":
        return "the URL's own authority (signature, token, or public access) was refused"
    return "check the credentials of the backend's default chain"
