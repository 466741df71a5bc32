"""`attachfs policy platform`: what the platform itself needs on each cloud, filled in from the
config (the customer's side is `attachfs policy aws|gcp|azure|bucket`).

* **AWS**: the identity attachfs runs as (an IAM role or user, found by boto's default chain)
  may assume the one role name every tenant creates, in any account
  (``sts:AssumeRole`` on ``arn:aws:iam::*:role/ROLE``), and read the S3 buckets tenants claim
  for direct access (``s3:GetObject``). The tenant's ExternalId is a condition of the tenant's
  trust policy, not of this one.
* **GCP**: impersonation calls the IAM Service Account Credentials API
  (``iamcredentials.googleapis.com``), which must be enabled in the project of the *source*
  identity, the platform's service account. That service account needs no role of its own: each
  tenant grants it Token Creator on their service account, or a bucket role for direct access.
* **Azure**: a multi-tenant app registration (sign-in audience ``AzureADMultipleOrgs``) with a
  web redirect URI, because Entra ID sends the administrator who grants admin consent back to
  a registered redirect URI (an app without one fails consent with AADSTS500113), and a client
  secret (named by ``client_secret_env``) or a certificate (``client_certificate_path``).

A cloud's section is printed when the config uses that cloud (a platform section or a tenant
that reads from it). Like the customer's policies, the result is a plain dict (``--json``) with
the documents and the commands as argv lists; nothing here makes a request.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from .._config import Config
from .._errors import ConfigError
from . import policy

__all__ = ["platform", "render"]

AWS_POLICY_NAME = "attachfs-platform"
IAM_CREDENTIALS_API = "iamcredentials.googleapis.com"
MULTI_TENANT = "AzureADMultipleOrgs"
APP_NAME = "attachfs-platform"


def platform(config: Config | None, *, platform_sa: str | None = None,
             platform_role: str | None = None, redirect_uri: str | None = None,
             allow_list: bool = False) -> dict[str, Any]:
    """The platform's own set-up on every cloud the config uses."""
    if config is None:
        raise ConfigError("`attachfs policy platform` fills in the platform's set-up from its "
                          "config: pass --config (or set $ATTACHFS_CONFIG)")
    tenants = list(config.tenants.values())
    out: dict[str, Any] = {"policy": "platform", "config": config.source, "aws": None,
                           "gcp": None, "azure": None, "notes": []}
    uses_aws = bool(config.platform.aws.role_name or any(
        t.aws is not None or any(c.backend == "s3" for c in t.direct) for t in tenants))
    uses_gcp = bool(config.platform.gcp.credentials or any(
        t.gcp is not None or any(c.backend == "gcs" for c in t.direct) for t in tenants))
    uses_azure = bool(config.platform.azure.client_id or any(
        t.azure is not None for t in tenants))
    if uses_aws:
        out["aws"] = _aws(config, platform_role, allow_list)
    if uses_gcp:
        out["gcp"] = _gcp(config, platform_sa)
    if uses_azure:
        out["azure"] = _azure(config, redirect_uri)
    if not (uses_aws or uses_gcp or uses_azure):
        out["notes"].append("the config uses no cloud yet: add [platform.aws] role_name, "
                            "[platform.gcp] or [platform.azure] client_id, or a tenant")
    return out


# ---------------------------------------------------------------------------------------- AWS


def _aws(config: Config, platform_role: str | None, allow_list: bool) -> dict[str, Any]:
    aws = config.platform.aws
    delegated = sorted(t.name for t in config.tenants.values() if t.aws is not None)
    claims = [(t.name, c) for t in config.tenants.values() for c in t.direct if c.backend == "s3"]
    statements: list[dict[str, Any]] = []
    if aws.role_name:
        statements.append({
            "Sid": "AttachfsAssumeTenantRoles", "Effect": "Allow", "Action": "sts:AssumeRole",
            # Any account: each tenant creates the role in its own account, and its trust
            # policy (principal: the platform account, condition: the tenant's ExternalId)
            # decides who may assume it.
            "Resource": f"arn:aws:iam::*:role/{aws.role_name}"})
    elif delegated:
        raise ConfigError(f"is not set; tenants {', '.join(delegated)} have an AWS integration, "
                          "and the role they create is named here", source=config.source,
                          key="platform.aws.role_name")
    if claims:
        targets = [policy._Target("s3", c.bucket, c.prefix) for _, c in claims]
        statements += policy._s3_read_statements(targets, allow_list)
    doc = {"Version": policy.IAM_VERSION, "Statement": statements}
    commands: list[list[str]] = []
    notes = []
    if platform_role:
        commands.append(["aws", "iam", "put-role-policy", "--role-name", platform_role,
                         "--policy-name", AWS_POLICY_NAME, "--policy-document",
                         policy._compact(doc)])
    else:
        notes.append("attach the policy to the IAM role (or user) the platform runs as; "
                     "--platform-role NAME prints the exact command")
    if not aws.account_id:
        notes.append("set platform.aws.account_id to the account the platform runs in: the "
                     "tenants' trust policies name it (`attachfs policy aws`)")
    return {
        "account_id": aws.account_id, "role_name": aws.role_name,
        "tenants_delegated": delegated,
        "claimed_buckets": sorted({f"s3://{c.bucket}/{c.prefix}" for _, c in claims}),
        "identity_policy_name": AWS_POLICY_NAME, "identity_policy": doc,
        "commands": commands, "notes": notes,
    }


# ---------------------------------------------------------------------------------------- GCP


def _gcp(config: Config, given: str | None) -> dict[str, Any]:
    delegated = sorted(t.name for t in config.tenants.values() if t.gcp is not None)
    sa = policy.platform_service_account(config, given)
    project = _key_project(config) or _project_of(sa)
    notes = []
    commands: list[list[str]] = []
    if project:
        commands.append(["gcloud", "services", "enable", IAM_CREDENTIALS_API,
                         f"--project={project}"])
    else:
        notes.append(f"{sa} names no project (<name>@<project>.iam.gserviceaccount.com): "
                     f"enable {IAM_CREDENTIALS_API} in the project that owns it")
    key = config.platform.gcp.credentials
    if key and key != "anonymous":
        source = f"the key file {key} (platform.gcp.credentials)"
    else:
        source = ("application default credentials: the service account attached to the "
                  "instance, pod (Workload Identity) or function the platform runs on")
    if not delegated:
        notes.append("no tenant impersonates a service account yet: the API is used once one "
                     "does")
    return {
        "service_account": sa, "project": project, "source": source,
        "api": IAM_CREDENTIALS_API, "tenants_delegated": delegated,
        "roles": [], "commands": commands, "notes": notes,
    }


def _key_project(config: Config) -> str | None:
    path = config.platform.gcp.credentials
    if not path or path == "anonymous":
        return None
    try:
        with open(path, encoding="utf-8") as f:
            project = json.load(f).get("project_id")
    except (OSError, ValueError, AttributeError):
        return None
    return project if isinstance(project, str) and project else None


def _project_of(sa: str) -> str | None:
    domain = sa.partition("@")[2]
    suffix = ".iam.gserviceaccount.com"
    return domain[:-len(suffix)] if domain.endswith(suffix) else None


# -------------------------------------------------------------------------------------- Azure


def _azure(config: Config, redirect_uri: str | None) -> dict[str, Any]:
    az = config.platform.azure
    delegated = sorted(t.name for t in config.tenants.values() if t.azure is not None)
    if not redirect_uri:
        raise ValueError(
            "`attachfs policy platform` needs --redirect-uri URL for Azure: the page of your "
            "platform an administrator returns to after granting admin consent (Entra ID "
            "refuses admin consent for an app with no redirect URI: AADSTS500113)")
    if not redirect_uri.startswith("https://") and not redirect_uri.startswith(
            "http://localhost"):
        raise ValueError(f"--redirect-uri {redirect_uri!r}: Entra ID accepts https:// redirect "
                         "URIs (http only for localhost)")
    app = az.client_id
    if app:
        register = ["az", "ad", "app", "update", "--id", app, "--sign-in-audience",
                    MULTI_TENANT, "--web-redirect-uris", redirect_uri]
    else:
        register = ["az", "ad", "app", "create", "--display-name", APP_NAME,
                    "--sign-in-audience", MULTI_TENANT, "--web-redirect-uris", redirect_uri]
    target = app or "APP_ID"
    notes = []
    if not app:
        notes.append("put the appId that `az ad app create` prints in platform.azure.client_id, "
                     "and in the commands below")
    if az.client_certificate_path:
        credential = {"kind": "certificate", "config_key": "platform.azure.client_certificate_path",
                      "path": az.client_certificate_path}
        upload = ["az", "ad", "app", "credential", "reset", "--id", target, "--append",
                  "--cert", f"@{az.client_certificate_path}"]
        notes.append(f"{az.client_certificate_path} holds the private key and the certificate "
                     "(PEM); only the certificate is uploaded: keep a copy without the key for "
                     "the upload if you prefer")
    else:
        env = az.client_secret_env or "ATTACHFS_AZURE_CLIENT_SECRET"
        credential = {"kind": "secret", "config_key": "platform.azure.client_secret_env",
                      "environment_variable": env}
        upload = ["az", "ad", "app", "credential", "reset", "--id", target, "--append",
                  "--display-name", "attachfs", "--years", "1", "--query", "password",
                  "--output", "tsv"]
        notes.append(f"the secret is printed once: put it in ${env} where the platform runs, "
                     "never in the config file")
    authority = (az.authority or policy.DEFAULT_AUTHORITY).rstrip("/")
    return {
        "client_id": app, "sign_in_audience": MULTI_TENANT, "redirect_uri": redirect_uri,
        "credential": credential, "tenants_delegated": delegated,
        "consent_url_template": (f"{authority}/{{directory}}/adminconsent?client_id={target}"
                                 f"&redirect_uri={quote(redirect_uri, safe='')}"),
        "commands": [register, upload], "notes": notes,
    }


# ------------------------------------------------------------------------------------- render


def render(doc: dict[str, Any]) -> str:
    """Copy-pasteable text: comments say what and where; documents are valid JSON."""
    shell, pretty = policy._shell, policy._pretty
    lines = ["# The platform's own set-up, filled in from its config. Customers run "
             "`attachfs policy aws|gcp|azure|bucket` for their side."]
    aws = doc["aws"]
    if aws is not None:
        lines += ["", "# --- AWS: the identity attachfs runs as (boto's default chain: an "
                      "instance, task or pod role, or keys in the environment)"]
        lines += [f"# Identity policy {aws['identity_policy_name']!r}: assume the role "
                  f"{aws['role_name']} that each tenant creates in its own account, and read "
                  "the buckets tenants claim for direct access:",
                  pretty(aws["identity_policy"])]
        lines += [shell(c) for c in aws["commands"]]
        lines += [f"# note: {n}" for n in aws["notes"]]
    gcp = doc["gcp"]
    if gcp is not None:
        lines += ["", f"# --- GCP: the source identity is {gcp['service_account']}, from "
                      f"{gcp['source']}. It needs no role of its own: tenants grant it Token "
                      "Creator on their service account (`attachfs policy gcp`) or a bucket "
                      "role (`attachfs policy bucket`).",
                  "# Impersonation calls the IAM Service Account Credentials API: enable it "
                  "in the source identity's project:"]
        lines += [shell(c) for c in gcp["commands"]]
        lines += [f"# note: {n}" for n in gcp["notes"]]
    azure = doc["azure"]
    if azure is not None:
        cred = azure["credential"]
        how = (f"a certificate ({cred['path']})" if cred["kind"] == "certificate"
               else f"a client secret in ${cred['environment_variable']}")
        lines += ["", "# --- Azure: a multi-tenant app registration (any organisation's "
                      "directory can consent to it), with the redirect URI an administrator "
                      f"returns to after admin consent, and {how}.",
                  "# 1. The app registration:", shell(azure["commands"][0]),
                  "# 2. Its credential:", shell(azure["commands"][1]),
                  "# Each tenant's administrator then opens (with their directory id):",
                  f"#    {azure['consent_url_template']}"]
        lines += [f"# note: {n}" for n in azure["notes"]]
    lines += [f"# note: {n}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"
