"""`attachfs policy`: what a customer must create so the platform can read their data, filled in
for this platform and one tenant: each cloud's console set-up steps, made exact.

Each function returns a plain dict (what ``--json`` prints): the documents the customer creates
(IAM policies are dicts, so they are valid JSON by construction) and the commands that create
them, as argv lists; ``render`` turns it into copy-pasteable text. Nothing here makes a request;
the one file read is the platform's Google key file, for its ``client_email`` only.

Decisions:

* Buckets come from ``--bucket`` (repeatable; ``s3://b/prefix/`` narrows the grant to a prefix)
  or, for direct access (``policy bucket``), from the tenant's claims. A policy that needs a
  bucket and has none is a usage error: a ``YOUR_BUCKET_NAME`` placeholder is not exact.
* The trust policy's principal is the platform *account* (``arn:aws:iam::ACCOUNT:root``), as
  the AWS console's "Another AWS account" trust creates it; the ExternalId condition is what
  ties the role to this tenant.
* The platform's Google identity is the ``client_email`` of ``platform.gcp.credentials`` when
  that is a key file, else ``--platform-service-account`` must name it (application default
  credentials cannot be asked without a request).
* An integration and a direct grant for the same cloud never both apply (with the
  integration enabled the platform never reads directly), so asking for the one the tenant
  does not use is an error that says which one it does use.

What the real clouds need, with the source of each:

* Reading a version (``?versionId=``) is ``s3:GetObjectVersion``, not ``s3:GetObject``
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, "Permissions"): every
  object-read statement allows both.
* Without ``s3:ListBucket`` a missing key is a 403, not a 404 (same page): ``--list`` adds it,
  scoped to the prefix with the ``s3:prefix`` condition, and the text offers it otherwise.
* An SSE-KMS object needs ``kms:Decrypt`` on its key, in the reader's policy *and* in the key's
  own key policy (https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html):
  ``--kms-key ARN`` adds the first and prints the second for the key's owner.
* Microsoft's admin-consent URL takes the ``redirect_uri`` the app registered
  (https://learn.microsoft.com/entra/identity-platform/v2-admin-consent): it is added from
  ``platform.azure.redirect_uri``. Role assignments can take several minutes to apply
  (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting), and
  ``--assignee-object-id`` with ``--assignee-principal-type ServicePrincipal`` spares the
  customer's CLI a Microsoft Graph lookup it may not be allowed to make
  (https://learn.microsoft.com/cli/azure/role/assignment#az-role-assignment-create).
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any
from urllib.parse import quote

from .._config import Config, Tenant
from .._errors import ConfigError
from .._rules import AZURE_AUTHORITIES
from .._uri import parse

__all__ = ["aws", "azure", "bucket", "gcp", "platform_service_account", "render"]

IAM_VERSION = "2012-10-17"
GCS_READER_ROLE = "roles/storage.objectViewer"            # Storage Object Viewer
TOKEN_CREATOR_ROLE = "roles/iam.serviceAccountTokenCreator"  # Service Account Token Creator
AZURE_READER_ROLE = "Storage Blob Data Reader"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
PERMISSION_POLICY_NAME = "attachfs-read"
S3_OBJECT_READ = ["s3:GetObject", "s3:GetObjectVersion"]
_KMS_KEY = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")


_AZURE_ACCOUNT = re.compile(r"https://([a-z0-9]{3,24})\.blob\.core\.windows\.net/?|([a-z0-9]{3,24})")


class _Target:
    """One bucket (optionally a prefix of it) a grant covers; bucket "": a whole account."""

    def __init__(self, backend: str, bucket: str | None, prefix: str = "",
                 account: str | None = None, owner: str | None = None,
                 suffix: str | None = None):
        self.backend, self.bucket, self.prefix = backend, bucket, prefix
        self.account, self.owner, self.suffix = account, owner, suffix

    @property
    def objects_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}/{self.prefix}*"

    @property
    def uri(self) -> str:
        scheme = {"s3": "s3", "gcs": "gs"}.get(self.backend)
        if scheme is None:
            return f"https://{self.account}.blob.core.windows.net/{self.bucket or ''}"
        return f"{scheme}://{self.bucket}/{self.prefix}"


def _targets(buckets: list[str] | None, default_backend: str) -> list[_Target]:
    """``--bucket`` values: a bare name (of ``default_backend``), a bucket URI, an S3 ARN."""
    out = []
    for given in buckets or []:
        text = given.strip()
        if text.startswith("arn:aws:s3:::"):
            text = "s3://" + text[len("arn:aws:s3:::"):].rstrip("*")
        account_only = _AZURE_ACCOUNT.fullmatch(text) if default_backend == "azure" else None
        if account_only:  # the whole storage account: a scope with no container
            out.append(_Target("azure", "", "", account_only[1] or account_only[2]))
            continue
        if "://" not in text:
            if default_backend == "azure":
                account, _, container = text.partition("/")
                text = f"https://{account}.blob.core.windows.net/{container}"
            else:
                text = f"{'gs' if default_backend == 'gcs' else 's3'}://{text}"
        try:
            loc = parse(text, require_key=False)
        except ValueError as err:
            raise ValueError(f"--bucket {given!r} is not a bucket: {err}") from None
        if loc.backend == "http":
            raise ValueError(f"--bucket {given!r} is not a bucket, container or storage "
                             "account: plain https URLs carry their own authority")
        assert loc.bucket is not None  # parse names a bucket for every backend but http
        prefix = loc.key
        if prefix and not prefix.endswith("/"):
            raise ValueError(f"--bucket {given!r}: a prefix must end in \"/\" (\"{prefix}\" "
                             f"would also cover \"{prefix}-other\")")
        out.append(_Target(loc.backend, loc.bucket, prefix, loc.account,
                           suffix=loc.endpoint_suffix))
    return out


def _kms_keys(keys: list[str] | None) -> list[str]:
    """``--kms-key`` values: KMS key ARNs (an alias cannot be named in a policy's Resource)."""
    out = []
    for key in keys or []:
        if not _KMS_KEY.fullmatch(key.strip()):
            raise ValueError(f"--kms-key {key!r} is not a KMS key ARN (arn:aws:kms:REGION:"
                             "ACCOUNT:key/KEY-ID; an alias will not do in a policy)")
        out.append(key.strip())
    return sorted(set(out))


def _kms_statement(keys: list[str]) -> dict[str, Any]:
    return {"Sid": "AttachfsDecrypt", "Effect": "Allow", "Action": ["kms:Decrypt"],
            "Resource": keys}


def _key_policy_statement(principal: str, keys: list[str]) -> dict[str, Any]:
    """The statement the key's owner adds to each key's key policy (a key policy's Resource
    is always "*": the key it is attached to)."""
    return {"Sid": "AttachfsDecrypt", "Effect": "Allow", "Principal": {"AWS": principal},
            "Action": "kms:Decrypt", "Resource": "*"}


def _list_note(allow_list: bool) -> list[str]:
    if allow_list:
        return []
    return ["without s3:ListBucket on the bucket, S3 answers 403 (not 404) for a key that does "
            "not exist, so a missing attachment reads as a denial: add --list to allow "
            "s3:ListBucket, scoped to the prefix (it also lets `attachfs ls` list it)"]


def _tenant(config: Config | None, name: str | None) -> tuple[Config, Tenant]:
    """The config (never None: ambient mode has no tenants) and the tenant named."""
    if config is None or not config.multi_tenant:
        raise ConfigError("`attachfs policy` fills in a tenant's policies from a config with "
                          "[tenants]: pass --config (or set $ATTACHFS_CONFIG)",
                          source=config.source if config else None)
    if not name:
        raise ValueError("`attachfs policy` needs --tenant (or $ATTACHFS_TENANT)")
    tenant: Tenant | None = config.tenants.get(name)
    if tenant is None:
        raise ConfigError(f"no tenant {name!r}; tenants are defined as [tenants.NAME]",
                          source=config.source)
    return config, tenant


def _need(value: str | None, config: Config, key: str, why: str) -> str:
    if not value:
        raise ConfigError(f"is not set; {why}", source=config.source, key=key)
    return value


def _no_targets(command: str, example: str) -> ValueError:
    return ValueError(f"`attachfs policy {command}` needs --bucket: the bucket(s) to grant "
                      f"read access to (e.g. --bucket {example}; repeat it for more)")


def _of(targets: list[_Target], backend: str, command: str) -> list[_Target]:
    wrong = [t.uri for t in targets if t.backend != backend]
    if wrong:
        raise ValueError(f"`attachfs policy {command}` grants {backend} access; "
                         f"--bucket {wrong[0]} is not {backend}")
    return targets


# ---------------------------------------------------------------------------------------- AWS


def aws(config: Config | None, tenant: str | None, buckets: list[str] | None = None, *,
        allow_list: bool = False, kms_keys: list[str] | None = None) -> dict[str, Any]:
    """The role the tenant creates for delegated S3 access: name, trust and permission policy
    (and, with ``kms_keys``, ``kms:Decrypt`` on them and the key-policy statement)."""
    config, t = _tenant(config, tenant)
    if t.aws is None:
        raise ConfigError(
            f"tenant {t.name!r} has no AWS integration, so no role is assumed for it. Add "
            f"tenants.{t.name}.aws = {{ account_id = \"<its 12-digit account>\", external_id "
            "= \"<a random value you choose for this tenant>\" }, or grant direct access with "
            "`attachfs policy bucket`", source=config.source, key=f"tenants.{t.name}")
    targets = _of(_targets(buckets, "s3"), "s3", "aws")
    if not targets:
        raise _no_targets("aws", "acme-data")
    role = _need(config.platform.aws.role_name, config, "platform.aws.role_name",
                 "it is the role name every tenant creates")
    platform = _need(config.platform.aws.account_id, config, "platform.aws.account_id",
                     "the trust policy names the platform's AWS account")
    trust = {
        "Version": IAM_VERSION,
        "Statement": [{
            "Sid": "AttachfsAssumeRole",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{platform}:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": t.aws.external_id}},
        }],
    }
    keys = _kms_keys(kms_keys)
    statements = _s3_read_statements(targets, allow_list)
    if keys:
        statements.append(_kms_statement(keys))
    permissions = {"Version": IAM_VERSION, "Statement": statements}
    role_arn = f"arn:aws:iam::{t.aws.account_id}:role/{role}"
    return {
        "policy": "aws",
        "tenant": t.name,
        "account_id": t.aws.account_id,
        "role_name": role,
        "role_arn": role_arn,
        "platform_account_id": platform,
        "external_id": t.aws.external_id,
        "trust_policy": trust,
        "permission_policy_name": PERMISSION_POLICY_NAME,
        "permission_policy": permissions,
        "commands": [
            ["aws", "iam", "create-role", "--role-name", role,
             "--assume-role-policy-document", _compact(trust)],
            ["aws", "iam", "put-role-policy", "--role-name", role,
             "--policy-name", PERMISSION_POLICY_NAME, "--policy-document", _compact(permissions)],
        ],
        "kms_keys": keys,
        "key_policy_statement": _key_policy_statement(role_arn, keys) if keys else None,
        "notes": _list_note(allow_list),
    }


def _s3_read_statements(targets: list[_Target], allow_list: bool,
                        principal: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    who = {"Principal": principal} if principal else {}
    statements = [{"Sid": "AttachfsReadObjects", "Effect": "Allow", **who,
                   "Action": list(S3_OBJECT_READ),
                   "Resource": sorted({t.objects_arn for t in targets})}]
    if allow_list:
        for i, t in enumerate(targets):
            listing: dict[str, Any] = {"Sid": f"AttachfsList{i}", "Effect": "Allow", **who,
                                       "Action": ["s3:ListBucket"],
                                       "Resource": f"arn:aws:s3:::{t.bucket}"}
            if t.prefix:
                listing["Condition"] = {"StringLike": {"s3:prefix": [f"{t.prefix}*"]}}
            statements.append(listing)
    return statements


# ------------------------------------------------------------------------- direct (bucket)


def bucket(config: Config | None, tenant: str | None, buckets: list[str] | None = None, *,
           allow_list: bool = False, platform_sa: str | None = None,
           kms_keys: list[str] | None = None) -> dict[str, Any]:
    """Direct access: the S3 bucket policy (and the GCS bucket grant) for the platform's own
    identity, on the buckets given or, by default, the buckets the tenant claims; with
    ``kms_keys``, the key-policy statement for the platform account."""
    config, t = _tenant(config, tenant)
    if buckets:
        targets = _targets(buckets, "s3")
    else:
        targets = [_Target(c.backend, c.bucket, c.prefix, c.account, c.owner) for c in t.direct]
    if not targets:
        raise ValueError(f"tenant {t.name!r} claims no bucket and no --bucket was given: "
                         "name the bucket(s) with --bucket (and claim them in "
                         f"tenants.{t.name}.direct, or the reads will be refused)")
    keys = _kms_keys(kms_keys)
    out: dict[str, Any] = {"policy": "bucket", "tenant": t.name, "s3": [], "gcs": [],
                           "kms_keys": keys, "key_policy_statement": None, "notes": []}
    for target in targets:
        if not any(c.backend == target.backend and c.bucket == target.bucket
                   and target.prefix.startswith(c.prefix) for c in t.direct):
            out["notes"].append(
                f"{target.uri} is not claimed by tenant {t.name!r}: direct reads of it are "
                f"refused until it is added to tenants.{t.name}.direct")
    s3 = [x for x in targets if x.backend == "s3"]
    gcs = [x for x in targets if x.backend == "gcs"]
    if any(x.backend == "azure" for x in targets):
        raise ValueError("Azure has no direct access: without an integration Azure reads are "
                         "anonymous; see `attachfs policy azure`")
    if s3:
        if t.aws is not None:
            raise ValueError(f"tenant {t.name!r} has an AWS integration, so its S3 reads always "
                             "assume its role and a bucket policy would never be used: see "
                             "`attachfs policy aws`")
        platform = _need(config.platform.aws.account_id, config, "platform.aws.account_id",
                         "the bucket policy names the platform's AWS account")
        principal = {"AWS": [f"arn:aws:iam::{platform}:root"]}
        if keys:
            out["key_policy_statement"] = _key_policy_statement(
                f"arn:aws:iam::{platform}:root", keys)
        out["notes"] += _list_note(allow_list)
        for name in sorted({x.bucket for x in s3 if x.bucket}):
            mine = [x for x in s3 if x.bucket == name]
            doc = {"Version": IAM_VERSION,
                   "Statement": _s3_read_statements(mine, allow_list, principal)}
            # A --bucket target carries no owner: take it from the tenant's claim on that bucket.
            owners = {x.owner for x in mine} | {c.owner for c in t.direct
                                                if c.backend == "s3" and c.bucket == name}
            owners = owners - {None} or {None}
            out["s3"].append({
                "bucket": name, "policy": doc, "expected_owner": next(iter(owners)),
                "command": ["aws", "s3api", "put-bucket-policy", "--bucket", name,
                            "--policy", _compact(doc)]})
            if owners == {None}:
                out["notes"].append(
                    f"pin the claim on s3://{name} to the bucket owner's account ({{ uri = "
                    f"\"s3://{name}\", owner = \"<12-digit account>\" }}), so a re-created "
                    "bucket of the same name is refused by S3 itself")
    if gcs:
        if t.gcp is not None:
            raise ValueError(f"tenant {t.name!r} has a GCP integration, so its GCS reads always "
                             "impersonate its service account and a direct grant would never "
                             "be used: see `attachfs policy gcp`")
        member = f"serviceAccount:{platform_service_account(config, platform_sa)}"
        for target in gcs:
            out["gcs"].append({
                "bucket": target.bucket, "member": member, "role": GCS_READER_ROLE,
                "command": _gcs_binding(target.bucket, member)})
            if target.prefix:
                out["notes"].append(f"the grant on gs://{target.bucket} covers the whole bucket, "
                                    f"not only {target.prefix}")
    return out


# ---------------------------------------------------------------------------------------- GCP


def platform_service_account(config: Config | None, given: str | None = None) -> str:
    """The platform's Google service-account email: ``given``, else the key file's."""
    if given:
        return given
    path = config.platform.gcp.credentials if config else None
    if config is not None and path and path != "anonymous":
        try:
            with open(path, encoding="utf-8") as f:
                email: str | None = json.load(f).get("client_email")
        except (OSError, ValueError, AttributeError) as err:
            what = "does not exist" if isinstance(err, FileNotFoundError) else \
                f"cannot be read for its client_email ({type(err).__name__})"
            raise ConfigError(f"the key file {os.path.abspath(path)} {what}",
                              source=config.source, key="platform.gcp.credentials") from None
        if email:
            return email
    raise ValueError("the platform's Google service account is not known from the config "
                     "(platform.gcp.credentials is not a service-account key file): name it "
                     "with --platform-service-account EMAIL")


def gcp(config: Config | None, tenant: str | None, buckets: list[str] | None = None, *,
        platform_sa: str | None = None) -> dict[str, Any]:
    """The service account the tenant creates, the Token Creator grant to the platform's
    identity on it, and its reader role on the buckets (gcloud commands)."""
    config, t = _tenant(config, tenant)
    if t.gcp is None:
        raise ConfigError(
            f"tenant {t.name!r} has no GCP integration, so no service account is impersonated "
            f"for it. Add tenants.{t.name}.gcp = {{ service_account = \"<name>@<project>.iam."
            "gserviceaccount.com\" }, or grant direct access with `attachfs policy bucket`",
            source=config.source, key=f"tenants.{t.name}")
    targets = _of(_targets(buckets, "gcs"), "gcs", "gcp")
    if not targets:
        raise _no_targets("gcp", "gs://acme-data")
    platform = platform_service_account(config, platform_sa)
    sa = t.gcp.service_account
    name, _, domain = sa.partition("@")
    project = domain[:-len(".iam.gserviceaccount.com")] \
        if domain.endswith(".iam.gserviceaccount.com") else None
    member = f"serviceAccount:{sa}"
    commands = []
    if project:
        commands.append(["gcloud", "iam", "service-accounts", "create", name,
                         f"--project={project}", "--display-name=attachfs reader"])
    token_creator = ["gcloud", "iam", "service-accounts", "add-iam-policy-binding", sa,
                     f"--member=serviceAccount:{platform}", f"--role={TOKEN_CREATOR_ROLE}"]
    if project:
        token_creator.insert(5, f"--project={project}")
    commands.append(token_creator)
    commands += [_gcs_binding(x.bucket, member) for x in targets]
    notes = [] if project else [
        f"{sa} is not a user-managed service account (<name>@<project>.iam.gserviceaccount."
        "com): it is not created here; the grants below still apply"]
    notes += [f"the reader grant on gs://{x.bucket} covers the whole bucket, not only {x.prefix}"
              for x in targets if x.prefix]
    return {
        "policy": "gcp", "tenant": t.name, "service_account": sa, "project": project,
        "platform_service_account": platform,
        "token_creator": {"member": f"serviceAccount:{platform}", "role": TOKEN_CREATOR_ROLE,
                          "on": sa},
        "bucket_reader": [{"bucket": x.bucket, "member": member, "role": GCS_READER_ROLE}
                          for x in targets],
        "commands": commands, "notes": notes,
    }


def _gcs_binding(bucket_name: str | None, member: str) -> list[str]:
    return ["gcloud", "storage", "buckets", "add-iam-policy-binding", f"gs://{bucket_name}",
            f"--member={member}", f"--role={GCS_READER_ROLE}"]


# -------------------------------------------------------------------------------------- Azure


def azure(config: Config | None, tenant: str | None,
          buckets: list[str] | None = None) -> dict[str, Any]:
    """The consent step in the tenant's directory and the reader role assignment."""
    config, t = _tenant(config, tenant)
    if t.azure is None:
        raise ConfigError(
            f"tenant {t.name!r} has no Azure integration, so its Azure reads are anonymous. "
            f"Add tenants.{t.name}.azure = {{ tenant_id = \"<its directory id>\" }}",
            source=config.source, key=f"tenants.{t.name}")
    targets = _of(_targets(buckets, "azure"), "azure", "azure")
    if not targets:
        raise _no_targets("azure", "https://ACCOUNT.blob.core.windows.net/CONTAINER")
    app = _need(config.platform.azure.client_id, config, "platform.azure.client_id",
                "it is the platform app the tenant consents to")
    directory = t.azure.tenant_id
    sovereign = next((x.suffix for x in targets if x.suffix), None)
    authority = (config.platform.azure.authority
                 or (AZURE_AUTHORITIES.get(sovereign) if sovereign else None)
                 or DEFAULT_AUTHORITY).rstrip("/")
    consent_url = f"{authority}/{directory}/adminconsent?client_id={app}"
    redirect = config.platform.azure.redirect_uri
    notes = []
    if redirect:
        consent_url += f"&redirect_uri={quote(redirect, safe='')}"
    else:
        notes.append("set platform.azure.redirect_uri to a redirect URI registered on the app "
                     "(App registrations > Authentication): the consent page sends the "
                     "administrator there once consent is given")
    # The service principal's object id, looked up by the customer's own CLI; with the
    # principal type given, az makes no Microsoft Graph call of its own.
    object_id = f"$(az ad sp show --id {app} --query id --output tsv)"
    assignments = []
    for x in targets:
        scope = f"$(az storage account show --name {x.account} --query id --output tsv)"
        if x.bucket:
            scope += f"/blobServices/default/containers/{x.bucket}"
        assignments.append({"account": x.account, "container": x.bucket or None,
                            "scope": scope, "role": AZURE_READER_ROLE, "assignee": app,
                            "assignee_object_id": object_id})
    return {
        "policy": "azure", "tenant": t.name, "directory": directory, "client_id": app,
        "consent_url": consent_url,
        "consent_command": ["az", "ad", "sp", "create", "--id", app],
        "role_assignments": assignments,
        "commands": [["az", "login", "--tenant", directory]] + [
            ["az", "role", "assignment", "create", "--assignee-object-id",
             a["assignee_object_id"], "--assignee-principal-type", "ServicePrincipal",
             "--role", a["role"], "--scope", a["scope"]] for a in assignments],
        "notes": notes,
    }


# ------------------------------------------------------------------------------------- render


def _compact(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _shell(argv: list[str]) -> str:
    """One command line; a ``$(...)`` scope stays substitutable, inside double quotes."""
    parts = []
    for arg in argv:
        if arg.startswith("$(") and '"' not in arg:
            parts.append(f'"{arg}"')
        else:
            parts.append(shlex.quote(arg))
    return " ".join(parts)


def _pretty(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2)


def render(doc: dict[str, Any]) -> str:
    """Copy-pasteable text: comments say what and where; documents are valid JSON."""
    kind = doc["policy"]
    lines = {"aws": _render_aws, "bucket": _render_bucket, "gcp": _render_gcp,
             "azure": _render_azure}[kind](doc)
    lines += [f"# note: {n}" for n in doc.get("notes", [])]
    return "\n".join(lines) + "\n"


def _render_aws(d: dict[str, Any]) -> list[str]:
    return [
        f"# Delegated S3 access for tenant {d['tenant']!r}: in AWS account {d['account_id']} "
        "(the tenant's), create the role",
        f"#   {d['role_arn']}",
        f"# Console: IAM > Roles > Create role > Another AWS account > Account ID "
        f"{d['platform_account_id']}, Require external ID = {d['external_id']} (do not require "
        f"MFA); role name exactly {d['role_name']}.",
        "",
        f"# Trust policy (who may assume {d['role_name']}: the platform account, with this "
        "tenant's external ID only):",
        _pretty(d["trust_policy"]),
        "",
        f"# Permission policy {d['permission_policy_name']!r} (what the role may read):",
        _pretty(d["permission_policy"]),
        "",
        f"# The same with the AWS CLI, signed in to account {d['account_id']}:",
        *[_shell(c) for c in d["commands"]],
        "",
        *_render_key_policy(d, f"the role {d['role_arn']}"),
        "# With the integration enabled, the platform never reads this tenant's S3 data with "
        "its own identity: bucket policies for the platform account stop applying.",
    ]


def _render_bucket(d: dict[str, Any]) -> list[str]:
    lines = [f"# Direct access for tenant {d['tenant']!r}: the platform reads with its own "
             "identity. Anyone who can guess these bucket names could submit them; attachfs "
             "reads only buckets the tenant claims. Delegated access (`attachfs policy aws`, "
             "`attachfs policy gcp`) is preferred."]
    for s3 in d["s3"]:
        lines += ["", f"# Bucket policy for s3://{s3['bucket']} (merge the statements into an "
                      "existing bucket policy; the command below replaces it):",
                  _pretty(s3["policy"]), "", _shell(s3["command"])]
    for g in d["gcs"]:
        lines += ["", f"# Read access for the platform's service account on gs://{g['bucket']}:",
                  _shell(g["command"])]
    if d.get("key_policy_statement"):
        lines += ["", *_render_key_policy(d, "the platform account"),
                  "# The platform's own IAM policy must allow kms:Decrypt on them too."]
    return lines


def _render_key_policy(d: dict[str, Any], who: str) -> list[str]:
    """The key-policy statement for each --kms-key: a key's policy must allow the reader too."""
    if not d.get("key_policy_statement"):
        return []
    keys = ", ".join(d["kms_keys"])
    return [f"# SSE-KMS: reading objects encrypted with {keys} needs kms:Decrypt for {who} in "
            "its policy (above) AND in each key's key policy. The key's owner adds this "
            "statement to the key policy (KMS console > the key > Key policy > Edit):",
            _pretty(d["key_policy_statement"]), ""]


def _render_gcp(d: dict[str, Any]) -> list[str]:
    lines = [f"# Delegated GCS access for tenant {d['tenant']!r}: the platform "
             f"({d['platform_service_account']}) impersonates {d['service_account']}, which "
             "reads the buckets.", ""]
    steps = ["# 1. The service account:", "# 2. Let the platform impersonate it (Service "
             "Account Token Creator on the service account):",
             "# 3. Let it read the buckets (Storage Object Viewer):"]
    commands = list(d["commands"])
    if d["project"] is None:
        steps = steps[1:]
    else:
        lines += [steps.pop(0), _shell(commands.pop(0)), ""]
    lines += [steps[0], _shell(commands.pop(0)), "", steps[1]]
    lines += [_shell(c) for c in commands]
    lines += ["", "# With the integration enabled, the platform never reads this tenant's GCS "
                  "data with its own identity."]
    return lines


def _render_azure(d: dict[str, Any]) -> list[str]:
    lines = [
        f"# Delegated Azure access for tenant {d['tenant']!r}: the platform's app "
        f"{d['client_id']} reads as a service principal in directory {d['directory']}.",
        "",
        "# 1. Consent: an administrator of that directory opens",
        f"#    {d['consent_url']}",
        "#    and accepts (the integration's 'Connect to Azure' step), or, signed in to that "
        "directory with the Azure CLI, creates the app's service principal directly:",
        _shell(d["commands"][0]),
        _shell(d["consent_command"]),
        "",
        f"# 2. Assign the app the role {AZURE_READER_ROLE!r} on each storage account or "
        "container it reads:",
    ]
    lines += [_shell(c) for c in d["commands"][1:]]
    lines += ["", "# A new role assignment can take several minutes to apply: reads may be "
                  "refused (AuthorizationPermissionMismatch) until it has.",
              "", "# With consent given, the platform stops reading this tenant's blobs "
                  "anonymously: public containers need the role too."]
    return lines
