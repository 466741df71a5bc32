"""Validate a config mapping, key by key, into the dataclasses of ``model``.

Every mistake is a ``ConfigError`` naming the file, the dotted key and what to change.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar, cast
from urllib.parse import urlsplit

from .._errors import ConfigError
from .._limits import CACHE_MAX_BYTES, LIMIT_FIELDS, Limits
from .._uri import netloc_problem, parse
from .hosts import allow_entry
from .model import (
    AwsIntegration,
    AwsPlatform,
    AzureIntegration,
    AzurePlatform,
    CacheConfig,
    Claim,
    FrozenMap,
    GcpIntegration,
    GcpPlatform,
    HttpPlatform,
    Platform,
    Tenant,
)

Integration = TypeVar("Integration")


class Parts(NamedTuple):
    """What a valid mapping configures (``Config`` holds these with its source)."""

    platform: Platform
    tenants: FrozenMap
    cache: CacheConfig | None
    limits: Limits

Check = tuple["re.Pattern[str]", str] | str


def _re(pattern: str, what: str) -> tuple[re.Pattern[str], str]:
    return re.compile(pattern), what


_ACCOUNT = _re(r"[0-9]{12}", "a 12-digit AWS account id, as a string (leading zeros matter)")
_PROJECT = _re(r"(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]",
               "a Google Cloud project id like \"my-project\" (the project billed)")
_GUID = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
_TENANT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
URL, TEMPLATE, ENV, PATH, TEXT = "url", "template", "env", "path", "text"

# Each section's keys and how each is checked: (pattern, what) or one of the kinds above.
_AWS: dict[str, Check] = {"role_name": _re(r"[A-Za-z0-9_+=,.@-]{1,64}", "an IAM role name: 1-64 characters of "
                                                     "A-Z a-z 0-9 _ + = , . @ -"),
        "account_id": _ACCOUNT, "endpoint_url": URL, "sts_endpoint_url": URL,
        "region": _re(r"[a-z0-9-]{1,32}", "an AWS region name like \"us-east-1\""),
        "profile": TEXT}
_GCP: dict[str, Check] = {"credentials": PATH, "endpoint_url": URL, "iam_endpoint_url": URL, "token_uri": URL}
_AZURE: dict[str, Check] = {"client_id": _re(_GUID, "the application (client) id, a GUID"),
          "client_secret_env": ENV, "client_certificate_path": PATH, "authority": URL,
          "endpoint_url": TEMPLATE, "account_key_env": ENV,
          "account": _re(r"[a-z0-9]{3,24}", "a storage account name: 3-24 lowercase letters "
                                            "and digits"),
          "redirect_uri": URL}
_AWS_INTEGRATION: dict[str, Check] = {"account_id": _ACCOUNT, "external_id": _re(
    r"[A-Za-z0-9_+=,.@:/-]{2,1224}", "2-1224 characters of A-Z a-z 0-9 _ + = , . @ : / -")}
_GCP_INTEGRATION: dict[str, Check] = {"service_account": _re(
    r"[a-z0-9][a-z0-9._-]{0,99}@(?:[a-z0-9:-]+\.)+gserviceaccount\.com",
    "a service-account email like \"name@project.iam.gserviceaccount.com\"")}
#: Optional keys of an integration, besides the required ones above.
_AWS_INTEGRATION_OPTIONS = ("requester_pays",)
_GCP_INTEGRATION_OPTIONS = ("user_project",)
_AZURE_INTEGRATION: dict[str, Check] = {"tenant_id": _re(_GUID, "the tenant's directory (tenant) id, a GUID")}
_HTTP = ("proxy", "allow_private_networks", "allow_hosts", "allow_ports", "trust_env",
         "max_redirects")

_SECRET = re.compile(r"(secret|password|passwd|token|_key|key_id|sas|connection_string|"
                     r"private_key.*|credentials_json)$")
_INLINE = "secrets are never inline: "


def _secret_advice(section: str, key: str, allowed: Iterable[str]) -> str:
    instead = f"{key}_env"
    if instead in allowed:
        return _INLINE + f"put it in an environment variable and name it with {instead}"
    if section == "platform.aws":
        return (_INLINE + "use profile, or the default credential chain (AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY environment variables, instance roles)")
    if "sas" in key:
        return _INLINE + "a SAS token belongs in the URL it signs; read that URL as plain https"
    if key == "connection_string":
        return (_INLINE + "set endpoint_url and put the shared key in an environment variable "
                "named with account_key_env")
    if section == "platform.gcp":
        return (_INLINE + "put the service-account JSON in a file and name it with credentials "
                "= \"path/to/key.json\" (or omit it for application default credentials)")
    if section.startswith("tenants"):
        return (_INLINE + "and a tenant needs none: delegated access uses the platform's identity "
                "(aws = {account_id, external_id}, gcp = {service_account}, azure = {tenant_id})")
    return (_INLINE + "put it in an environment variable; attachfs reads secrets only from "
            "environment variables and files")


_FILE_CONTENT = {"credentials": "service-account JSON",
                 "client_certificate_path": "PEM certificate and private key"}


def _inline_content(value: str) -> bool:
    """Whether a value where a file path belongs is the file's content instead: JSON, a PEM
    block, several lines, or base64 of JSON or PEM (a service-account key pasted inline)."""
    text = value.strip()
    if "\n" in value or text[:1] in ("{", "[") or "-----BEGIN" in value:
        return True
    if len(text) >= 64 and re.fullmatch(r"[A-Za-z0-9+/_-]+=*", text):
        try:
            decoded = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_"
                                       if "-" in text or "_" in text else None)
        except (binascii.Error, ValueError):
            return False
        return decoded.lstrip()[:1] in (b"{", b"[") or b"-----BEGIN" in decoded
    return False


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    return "an array" if isinstance(value, (list, tuple)) else type(value).__name__


class _Table:
    """One table being validated: unknown and inline-secret keys are refused up front."""

    def __init__(self, src: str | None, key: str, value: Any, allowed: Iterable[str],
                 base: str = ""):
        self.src, self.key, self.base = src, key, base
        if not isinstance(value, Mapping):
            raise self.error(f"must be a table, not {_kind(value)}")
        self.data: dict[str, Any] = dict(value) if not isinstance(value, dict) else value
        for name in value:
            if name in allowed:
                continue
            name = str(name)
            if _SECRET.search(name.lower()):
                raise self.error(_secret_advice(key, name.lower(), allowed), name)
            close = difflib.get_close_matches(name, list(allowed), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.error(f"unknown key; {hint}allowed keys here: {', '.join(allowed)}", name)

    def error(self, message: str, name: str | None = None) -> ConfigError:
        key = f"{self.key}.{name}" if self.key and name else (name or self.key)
        return ConfigError(message, source=self.src, key=key)

    def read(self, spec: Mapping[str, Check], *,
             required: tuple[str, ...] = ()) -> dict[str, str | None]:
        return {name: self.text(name, check, required=name in required)
                for name, check in spec.items()}

    def required(self, name: str, check: Check = TEXT) -> str:
        """``text`` of a key that must be present."""
        value = self.text(name, check, required=True)
        assert value is not None  # text() raised if it was missing
        return value

    def text(self, name: str, check: Check = TEXT, *, required: bool = False) -> str | None:
        if name not in self.data:
            if required:
                raise self.error("is required", name)
            return None
        value = self.data[name]
        if not isinstance(value, str) or not value:
            if check == PATH and isinstance(value, Mapping):  # an inline service-account JSON
                raise self.error(_secret_advice(self.key, "private_key", ()), name)
            raise self.error(f"must be a non-empty string, not {_kind(value)}", name)
        if check in (URL, TEMPLATE):
            return self._url(name, value, check == TEMPLATE)
        if check == ENV and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            # Never echo the value: it is probably the secret itself.
            raise self.error("must be the name of an environment variable, not the secret", name)
        if check == PATH and _inline_content(value):
            # Never echo the value: it is the key or the certificate itself.
            raise self.error(_INLINE + "this names a file: put the " + _FILE_CONTENT.get(
                name, "content") + " in a file (readable by the platform only) and write its "
                "path here", name)
        if check == PATH and not (name == "credentials" and value == "anonymous"):
            # Relative to the config file; stored absolute so a pickled mapping resolves alike.
            value = os.path.normpath(os.path.join(self.base, os.path.expanduser(value)))
            self.data[name] = value
        if isinstance(check, tuple) and not check[0].fullmatch(value):
            shown = "" if name == "external_id" else f" (got {value[:80]!r})"
            raise self.error(f"must be {check[1]}{shown}", name)
        return value

    def _url(self, name: str, value: str, template: bool) -> str:
        probe = value
        if template:
            if "{account}" not in value:
                raise self.error("must contain \"{account}\", e.g. "
                                 "\"http://127.0.0.1:10000/{account}\"", name)
            probe = value.replace("{account}", "account")
        try:
            parts = urlsplit(probe)
            parts.port  # noqa: B018 -- raises ValueError on a bad port
        except ValueError as err:
            raise self.error(f"is not a valid URL ({err})", name) from err
        if parts.username is not None or parts.password is not None:
            raise self.error(_INLINE + "remove the user:password@ part from the URL", name)
        if parts.scheme not in ("http", "https") or not parts.hostname or "{" in probe:
            raise self.error(f"must be an http(s) URL like \"https://host:port\" (got {value!r})",
                             name)
        problem = netloc_problem(parts.netloc)
        if problem is not None:
            raise self.error(f"is not a valid URL: the host {problem}", name)
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self.error(f"must be true or false, not {_kind(value)}", name)
        return value

    def number(self, name: str, default: Any, lo: float, hi: float,
               types: tuple[type, ...] = (int,)) -> Any:
        value: Any = self.data.get(name, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, types)
                                  or not lo <= cast(float, value) <= hi):
            raise self.error(f"must be a number from {lo} to {hi} (got {value!r})", name)
        return value


def validate(data: dict[str, Any], src: str | None) -> Parts:
    base = os.path.dirname(src) if src else os.getcwd()
    _Table(src, "", data, ("platform", "tenants", "cache", "limits"))
    p = _Table(src, "platform", data.get("platform", {}), ("aws", "gcp", "azure", "http"))
    platform = Platform(
        aws=_aws(_Table(src, "platform.aws", p.data.get("aws", {}), (*_AWS, "anonymous"))),
        gcp=GcpPlatform(**_Table(src, "platform.gcp", p.data.get("gcp", {}), _GCP,
                                 base).read(_GCP)),
        azure=_azure(_Table(src, "platform.azure", p.data.get("azure", {}),
                            (*_AZURE, "anonymous"), base)),
        http=_http(_Table(src, "platform.http", p.data.get("http", {}), _HTTP)))
    cache = None
    if "cache" in data:
        c = _Table(src, "cache", data["cache"], ("directory", "max_bytes", "ttl_seconds"), base)
        ttl = c.number("ttl_seconds", None, 1e-3, 1e12, (int, float))
        cache = CacheConfig(directory=c.required("directory", PATH),
                            max_bytes=c.number("max_bytes", CACHE_MAX_BYTES, 1, 2**62),
                            ttl_seconds=None if ttl is None else float(ttl))
    limits = _limits(_Table(src, "limits", data.get("limits", {}), tuple(LIMIT_FIELDS)))
    tenants: dict[str, Tenant] = {}
    if "tenants" in data:
        given = data["tenants"]
        t = _Table(src, "tenants", given, tuple(given) if isinstance(given, Mapping) else ())
        if not t.data:
            raise t.error("is empty: remove [tenants] for ambient mode, or define a tenant "
                          "as [tenants.NAME]")
        for name, value in t.data.items():
            if not _TENANT.fullmatch(name):
                raise t.error("tenant names are 1-64 characters of A-Z a-z 0-9 _ . -", name)
            tenants[name] = _tenant(src, name, value, platform)
    _refuse_double_claims(src, tenants)
    _refuse_shared_identities(src, tenants)
    return Parts(platform=platform, tenants=FrozenMap(tenants), cache=cache, limits=limits)


def _limits(t: _Table) -> Limits:
    values: dict[str, Any] = {}
    for name, (kind, lo, hi) in LIMIT_FIELDS.items():
        if name in t.data:
            types: tuple[type, ...] = (int,) if kind is int else (int, float)
            values[name] = kind(t.number(name, None, lo, hi, types))
    limits = Limits().with_values(**values)
    if limits.backoff_cap < limits.backoff_base:
        raise t.error(f"must be at least backoff_base ({limits.backoff_base:g})", "backoff_cap")
    return limits


def _aws(a: _Table) -> AwsPlatform:
    aws = AwsPlatform(**a.read(_AWS), anonymous=a.flag("anonymous", False))
    if aws.anonymous and aws.profile:
        raise a.error("set at most one of profile or anonymous = true", "anonymous")
    return aws


def _azure(z: _Table) -> AzurePlatform:
    azure = AzurePlatform(**z.read(_AZURE), anonymous=z.flag("anonymous", False))
    if azure.client_secret_env and azure.client_certificate_path:
        raise z.error("set exactly one of client_secret_env or client_certificate_path")
    if azure.anonymous and azure.account_key_env:
        raise z.error("set at most one of account_key_env or anonymous = true", "anonymous")
    return azure


def _http(h: _Table) -> HttpPlatform:
    hosts = h.data.get("allow_hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(x, str) and x for x in hosts):
        raise h.error("must be an array of host names or IP addresses/networks "
                      "(no scheme)", "allow_hosts")
    entries = []
    for entry in hosts:
        try:
            kind, value = allow_entry(entry)
        except ValueError as err:
            raise h.error(f"the entry {entry[:1000]!r} can never match: {err}",
                          "allow_hosts") from None
        entries.append(f"*{value}" if kind == "suffix" else value)
    ports = h.data.get("allow_ports", [80, 443])
    if not isinstance(ports, list) or not ports or not all(
            isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports):
        raise h.error(f"must be a non-empty array of port numbers 1-65535 (got {ports!r})",
                      "allow_ports")
    return HttpPlatform(
        proxy=h.text("proxy", URL), allow_private_networks=h.flag("allow_private_networks", False),
        allow_hosts=tuple(entries), allow_ports=tuple(ports),
        trust_env=h.flag("trust_env", False), max_redirects=h.number("max_redirects", 5, 0, 30))


def _tenant(src: str | None, name: str, value: Any, platform: Platform) -> Tenant:
    key = f"tenants.{name}"
    t = _Table(src, key, value, ("aws", "gcp", "azure", "direct"))

    def integration(cloud: str, spec: Mapping[str, Check], cls: Callable[..., Integration],
                    options: tuple[str, ...] = ()) -> Integration | None:
        if cloud not in t.data:
            return None
        table = _Table(src, f"{key}.{cloud}", t.data[cloud], (*spec, *options))
        values: dict[str, Any] = table.read(spec, required=tuple(spec))
        if "requester_pays" in options:
            values["requester_pays"] = table.flag("requester_pays", False)
        if "user_project" in options:
            values["user_project"] = table.text("user_project", _PROJECT)
        return cls(**values)

    aws = integration("aws", _AWS_INTEGRATION, AwsIntegration, _AWS_INTEGRATION_OPTIONS)
    gcp = integration("gcp", _GCP_INTEGRATION, GcpIntegration, _GCP_INTEGRATION_OPTIONS)
    azure = integration("azure", _AZURE_INTEGRATION, AzureIntegration)
    if aws and platform.aws.role_name is None:
        raise t.error(f"tenant {name!r} has an AWS integration, so the role to assume must be "
                      "known: set platform.aws.role_name", "aws")
    if azure:
        azure = AzureIntegration(azure.tenant_id.lower())
        pa = platform.azure
        if pa.client_id is None or (pa.client_secret_env is None) == (
                pa.client_certificate_path is None):
            raise t.error(f"tenant {name!r} has an Azure integration, so the platform's app must "
                          "be configured: set platform.azure.client_id and exactly one of "
                          "client_secret_env or client_certificate_path", "azure")
    direct = t.data.get("direct", [])
    if not isinstance(direct, list):
        raise t.error("must be an array of bucket URIs, e.g. [\"s3://bucket\"]", "direct")
    claims = tuple(_claim(src, f"{key}.direct[{i}]", item, name, aws, gcp)
                   for i, item in enumerate(direct))
    return Tenant(name=name, aws=aws, gcp=gcp, azure=azure, direct=claims)


def _claim(src: str | None, key: str, item: Any, tenant: str, aws: AwsIntegration | None,
           gcp: GcpIntegration | None) -> Claim:
    def error(message: str) -> ConfigError:
        return ConfigError(message, source=src, key=key)

    owner: str | None = None
    requester_pays, user_project = False, None
    if isinstance(item, Mapping):
        c = _Table(src, key, item, ("uri", "owner", "requester_pays", "user_project"))
        uri = c.required("uri")
        owner = c.text("owner", _re(r"[0-9]{12}", "the owning AWS account id, 12 digits"))
        requester_pays = c.flag("requester_pays", False)
        user_project = c.text("user_project", _PROJECT)
    elif isinstance(item, str):
        uri = item
    else:
        raise error(f"must be a bucket URI string or {{ uri = ..., owner = ... }}, not "
                    f"{_kind(item)}")
    try:
        loc = parse(uri, require_key=False)
    except ValueError as err:
        raise error(f"not a bucket URI: {err}") from err
    if loc.backend == "azure":
        raise error("Azure containers cannot be claimed: without an Azure integration reads are "
                    "anonymous, so no platform identity is lent and a claim would change "
                    "nothing; remove it (for private containers set up azure = {tenant_id})")
    if loc.backend not in ("s3", "gcs"):
        raise error(f"{uri!r} is not a bucket: plain http(s) and signed URLs carry their own "
                    "authority; claim a bucket like \"s3://bucket\" or \"gs://bucket/prefix/\"")
    prefix = loc.key or ""
    if loc.version or (prefix and not prefix.endswith("/")):
        raise error(f"a claim is a bucket or a prefix ending in \"/\" (\"{prefix}\" would also "
                    f"cover \"{prefix}-other\"): write \"{uri.rstrip('/')}/\" for a prefix")
    # With an integration enabled the platform never reads that cloud directly.
    integrations: dict[str, tuple[str, object, str]] = {
        "s3": ("an AWS", aws, "assume its role"),
        "gcs": ("a GCP", gcp, "impersonate its service account")}
    cloud, integration, how = integrations[loc.backend]
    if integration is not None:
        raise error(f"tenant {tenant!r} has {cloud} integration, so its {loc.backend.upper()} "
                    f"reads always {how} and never read directly: this claim would never be "
                    f"used; remove it, or remove tenants.{tenant}.{cloud.split()[1].lower()}")
    if owner is not None and loc.backend != "s3":
        raise error("owner pinning is S3-only (ExpectedBucketOwner); remove owner")
    if requester_pays and loc.backend != "s3":
        raise error("requester_pays is S3's opt-in; for a GCS requester-pays bucket set "
                    "user_project = \"the-project-billed\"")
    if user_project is not None and loc.backend != "gcs":
        raise error("user_project is GCS's opt-in; for an S3 requester-pays bucket set "
                    "requester_pays = true")
    scheme = "s3" if loc.backend == "s3" else "gs"
    bucket = loc.bucket or ""  # parse() refuses a URI without a bucket
    return Claim(uri=f"{scheme}://{bucket}" + (f"/{prefix}" if prefix else ""),
                 backend=loc.backend, bucket=bucket, prefix=prefix, account=loc.account,
                 owner=owner, requester_pays=requester_pays, user_project=user_project)


def _refuse_double_claims(src: str | None, tenants: Mapping[str, Tenant]) -> None:
    """A bucket (or overlapping prefixes of it) may be claimed by one tenant only."""
    seen: dict[tuple[str, str, str | None], list[tuple[str, Claim]]] = {}
    for name, tenant in tenants.items():
        for i, claim in enumerate(tenant.direct):
            where = (claim.backend, claim.bucket, claim.account)
            for other, prior in seen.get(where, []):
                if other != name and (claim.prefix.startswith(prior.prefix)
                                      or prior.prefix.startswith(claim.prefix)):
                    raise ConfigError(
                        f"{claim.backend} bucket {claim.bucket!r} is claimed by both tenants "
                        f"{other!r} ({prior.uri}) and {name!r} ({claim.uri}): a bucket may be "
                        "claimed by one tenant only; remove one claim, or claim disjoint "
                        "prefixes", source=src, key=f"tenants.{name}.direct[{i}]")
            seen.setdefault(where, []).append((name, claim))


def _refuse_shared_identities(src: str | None, tenants: Mapping[str, Tenant]) -> None:
    """Each integration names one tenant's identity: two tenants with the same AWS external ID
    (in any account: the platform generates a unique one per tenant), the same GCP service
    account or the same Azure directory could each read as the other. Two tenants may name the
    same AWS account with *different* external IDs: a tenant can type any account id, and the
    role's trust policy admits only the external ID its owner agreed to."""
    seen: dict[tuple[str, str], str] = {}
    for name, tenant in tenants.items():
        keys = []
        if tenant.aws is not None:
            keys.append(("aws", tenant.aws.external_id, "the same AWS external ID (the platform "
                         "generates a unique, random one for each tenant)"))
        if tenant.gcp is not None:
            keys.append(("gcp", tenant.gcp.service_account.lower(),
                         f"the GCP service account {tenant.gcp.service_account}"))
        if tenant.azure is not None:
            keys.append(("azure", tenant.azure.tenant_id, f"the Azure directory "
                                                          f"{tenant.azure.tenant_id}"))
        for cloud, value, what in keys:
            other = seen.setdefault((cloud, value), name)
            if other != name:
                raise ConfigError(
                    f"tenants {other!r} and {name!r} both use {what}: either could read as the "
                    "other; give each tenant its own", source=src, key=f"tenants.{name}.{cloud}")
