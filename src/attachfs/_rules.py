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
* A blob of a sovereign Azure cloud gets its token from that cloud's own Entra ID authority
  (``AZURE_AUTHORITIES``), unless ``platform.azure.authority`` names one.
* Requester-pays buckets are read only where the config opted in: the claim's (direct reads)
  or the integration's (delegated reads) ``requester_pays`` / ``user_project`` end up on the
  Route, and the readers send them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal

from ._config import Claim, Config, Tenant
from ._errors import AccessRefused, ConfigError
from ._redact import redact
from ._types import BACKENDS, Backend, GrantKind, Mode
from ._uri import AZURE_PUBLIC_SUFFIX, Location

__all__ = ["AZURE_AUTHORITIES", "Grant", "Operation", "Route", "denied_hint", "route"]

#: What a failed request was doing: reading an object, or listing (``ls``, ``find``, ``glob``).
Operation = Literal["read", "list"]

#: Each Azure cloud's Entra ID authority, by blob endpoint suffix (azure-identity's
#: ``AzureAuthorityHosts``; https://learn.microsoft.com/entra/identity-platform/
#: authentication-national-cloud). The public cloud's is azure-identity's default.
AZURE_AUTHORITIES = {
    AZURE_PUBLIC_SUFFIX: "https://login.microsoftonline.com",
    "core.usgovcloudapi.net": "https://login.microsoftonline.us",
    "core.chinacloudapi.cn": "https://login.chinacloudapi.cn",
    "core.cloudapi.de": "https://login.microsoftonline.de",
}

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
    azure_authority: str | None = None  # the Entra ID authority; None: the public cloud's

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
    requester_pays: bool = False  # S3: send x-amz-request-payer (the config opted in)
    user_project: str | None = None  # GCS: the project billed for a requester-pays bucket

    def __repr__(self) -> str:
        # A signed URL's query string is its credential: never in a repr.
        billing = "".join(f", {name}={getattr(self, name)!r}"
                          for name in ("requester_pays", "user_project") if getattr(self, name))
        return (f"Route(uri={redact(self.uri)!r}, backend={self.backend!r}, mode={self.mode!r}, "
                f"identity={self.identity!r}, tenant={self.tenant!r}, claim={self.claim!r}, "
                f"proxy={self.proxy!r}, grant={self.grant!r}, rule={self.rule!r}{billing})")


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
             claim: Claim | None = None, requester_pays: bool = False,
             user_project: str | None = None) -> Route:
        return Route(uri=location.uri, backend=backend, location=location, mode=mode,
                     identity=identity, claim=claim, proxy=proxy, tenant=tenant, grant=grant,
                     rule=rule, requester_pays=requester_pays, user_project=user_project)

    if backend == "http":
        return make("url", Grant("none"), RULE_URL)
    if config is None or t is None:  # ambient mode
        return make("ambient", Grant("ambient"), RULE_AMBIENT)
    if backend == "s3":
        if t.aws is not None:
            arn = f"arn:aws:iam::{t.aws.account_id}:role/{config.platform.aws.role_name}"
            grant = Grant("aws-assume-role", role_arn=arn, external_id=t.aws.external_id,
                          session_name=session_name(t.name))
            return make("delegated", grant, RULE_S3_DELEGATED, identity=arn,
                        requester_pays=t.aws.requester_pays)
        claim = _claim(config, t, location, "an AWS", f"tenants.{t.name}.aws = "
                                                   "{ account_id, external_id }")
        return make("direct", Grant("aws-platform", expected_bucket_owner=claim.owner),
                    RULE_S3_DIRECT, identity="platform:aws", claim=claim,
                    requester_pays=claim.requester_pays)
    if backend == "gcs":
        if t.gcp is not None:
            sa = t.gcp.service_account
            return make("delegated", Grant("gcp-impersonate", service_account=sa),
                        RULE_GCS_DELEGATED, identity=sa, user_project=t.gcp.user_project)
        claim = _claim(config, t, location, "a GCP", f"tenants.{t.name}.gcp = "
                                                      "{ service_account }")
        return make("direct", Grant("gcp-platform"), RULE_GCS_DIRECT, identity="platform:gcp",
                    claim=claim, user_project=claim.user_project)
    # azure
    if t.azure is not None:
        client_id = config.platform.azure.client_id
        # A sovereign cloud's token comes from its own authority, unless the config names one.
        suffix = location.endpoint_suffix
        authority = config.platform.azure.authority or (
            AZURE_AUTHORITIES.get(suffix) if suffix else None)
        grant = Grant("azure-app", azure_tenant_id=t.azure.tenant_id, client_id=client_id,
                      azure_authority=authority)
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


def denied_hint(route: Route, operation: Operation = "read") -> str:
    """What the customer (or the platform) must grant when the cloud refuses ``route``'s
    ``operation`` (a read of an object, or a listing), naming the permission that operation
    needs and every policy that must allow it.

    The counterpart of the table above: for each way a request is made, the grant it relies
    on. Error codes that mean something else than a missing grant (a wrong key, a clock, an
    archived object, a firewall) have their own hints, in ``_read.errors``.
    """
    loc = route.location
    g = route.grant
    listing = operation == "list"
    bucket_arn = f"arn:aws:s3:::{loc.bucket}"
    # Reading a named version is its own action (GetObject docs, "Permissions").
    s3_read = "s3:GetObjectVersion" if loc.version else "s3:GetObject"
    s3_action = (f"s3:ListBucket on {bucket_arn}" if listing
                 else f"{s3_read} on {bucket_arn}/*")
    # GetObject docs: without s3:ListBucket a missing key is a 403, not a 404.
    s3_missing = ("" if listing else
                  f"; without s3:ListBucket on {bucket_arn} S3 also answers 403 for a key that "
                  "does not exist, so check the key too (`attachfs policy aws --list`)")
    if g.kind == "aws-assume-role":
        return (f"the permission policy of {g.role_arn} must allow {s3_action} "
                f"(see `attachfs policy aws`){s3_missing}")
    if g.kind == "aws-platform":
        owner = f" (owner {g.expected_bucket_owner})" if g.expected_bucket_owner else ""
        # Cross-account access is allowed only when both sides allow it
        # (https://docs.aws.amazon.com/IAM/latest/UserGuide/
        # reference_policies_evaluation-logic-cross-account.html).
        return (f"both sides must allow {s3_action}: the bucket policy of {loc.bucket}{owner} "
                "for the platform account (see `attachfs policy bucket`), and the platform "
                "identity's own IAM policy; or set up delegated access. If the bucket is "
                "requester pays, opt in with requester_pays = true on the claim"
                f"{s3_missing}")
    gcs_permission = "storage.objects.list" if listing else "storage.objects.get"
    # https://cloud.google.com/storage/docs/uniform-bucket-level-access
    ubla = ("; with uniform bucket-level access only IAM on the bucket grants it (object ACLs "
            "do not)")
    if g.kind == "gcp-impersonate":
        return (f"grant {g.service_account} the role Storage Object Viewer "
                f"(roles/storage.objectViewer, which holds {gcs_permission}) on "
                f"gs://{loc.bucket} (see `attachfs policy gcp`){ubla}")
    if g.kind == "gcp-platform":
        return (f"grant the platform's service account Storage Object Viewer "
                f"(roles/storage.objectViewer, which holds {gcs_permission}) on "
                f"gs://{loc.bucket} in the bucket's IAM policy, or set up service-account "
                f"impersonation{ubla}")
    if g.kind == "azure-app":
        return (f"assign the app's service principal (client id {g.client_id}) the role "
                f"Storage Blob Data Reader on the storage account {loc.account} or the "
                f"container {loc.bucket} (see `attachfs policy azure`); a new role "
                "assignment can take several minutes to apply")
    if g.kind == "anonymous":
        return (f"the container {loc.bucket} does not allow anonymous reads: connect the "
                "tenant's Azure directory (delegated access) or make the container public")
    if g.kind == "none":
        return "the URL's own authority (signature, token, or public access) was refused"
    return "check the credentials of the backend's default chain"
