"""`attachfs check`: make one read step by step and, when a step fails, say which and what fixes it.

The steps are the ones every read takes: **route** (the access rules decide as whom, and for a
plain http(s) URL the network guard judges its address, resolving a host name; nothing is sent
to the storage), **credentials** (``credentials.ready()``: AssumeRole, impersonation or an Entra token,
fetched now so a refusal shows here and not after a backend's retries) and **read** (a 1-byte
ranged read as that identity). A step runs only if the one before it passed.

The fix for a failure comes from the error itself: the credential layer and the filesystem put
the cause-specific grant in ``AccessDenied.hint`` (rules.denied_hint for storage refusals), and
``AccessRefused`` carries the rule that refused. This module adds the ``attachfs policy`` command
that prints the exact documents for that fix; it never re-decides a rule.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .. import _credentials
from .._config import Config
from .._errors import AccessDenied, AccessRefused
from .._net.addresses import OPENED_BY_PRIVATE
from .._redact import redact
from .._rules import Route, route
from .._uri import Location, parse
from .messages import credential_file_problem, for_cli, suggest_tenants

__all__ = ["Report", "Step", "check"]

STEPS = ("route", "credentials", "read")


@dataclass
class Step:
    name: str
    status: str = "skipped"          # "ok" | "failed" | "skipped"
    detail: str = ""
    error: BaseException | None = None
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.name, "status": self.status, "detail": self.detail}
        if self.error is not None:
            out["error"] = {"type": type(self.error).__name__, "message": _message(self.error)}
            for name in ("rule", "identity"):
                if getattr(self.error, name, None) is not None:
                    out["error"][name] = getattr(self.error, name)
        if self.fix is not None:
            out["fix"] = self.fix
        return out


@dataclass
class Report:
    uri: str
    tenant: str | None
    config: str | None
    route: Route | None = None
    steps: list[Step] = field(default_factory=lambda: [Step(name) for name in STEPS])

    @property
    def ok(self) -> bool:
        return all(s.status == "ok" for s in self.steps)

    @property
    def failed(self) -> Step | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def as_dict(self) -> dict[str, Any]:
        failed = self.failed
        return {"uri": redact(self.uri), "tenant": self.tenant, "config": self.config,
                "ok": self.ok, "failed_step": failed.name if failed else None,
                "fix": failed.fix if failed else None,
                "steps": [s.as_dict() for s in self.steps]}


def check(uri: str, *, tenant: str | None, config: Config | None) -> Report:
    """Route, credentials, a 1-byte read of ``uri`` for ``tenant``; stops at the first failure.

    A malformed URI raises ``ValueError`` (a usage error, not a step that failed).
    """
    location = parse(uri)
    source = (config.source or "<mapping>") if config is not None else None
    report = Report(uri=uri, tenant=tenant or None, config=source)
    step_route, step_creds, step_read = report.steps

    try:
        r = route(config, tenant, location)
        if r.backend == "http":
            _guard(config, r)
    except AccessRefused as err:
        err = for_cli(err, config)
        _fail(step_route, err, _refused_fix(err, config, tenant, location))
        return report
    except Exception as err:
        _fail(step_route, err, _generic_fix(err))
        return report
    report.route = r
    step_route.status = "ok"
    who = r.identity or {"anonymous": "anonymous", "url": "the URL's own authority",
                         "ambient": "the backend's default credentials"}.get(r.mode, r.mode)
    step_route.detail = f"{r.backend}, {r.mode}, as {who}; rule: {r.rule}"

    try:
        problem = credential_file_problem(config, r)
        if problem is not None:
            raise problem
        asyncio.run(_credentials.ready(config, r))
    except Exception as err:
        _fail(step_creds, err, _denied_fix(err, r, tenant, step_creds.name, config))
        return report
    step_creds.status = "ok"
    step_creds.detail = _credentials_detail(r)

    from .._filesystem import AttachFileSystem

    # tenant "" (not None): an unset tenant must not be re-read from $ATTACHFS_TENANT here.
    fs = AttachFileSystem(tenant=tenant or "", config=config, skip_instance_cache=True)
    try:
        data = fs.cat_file(uri, start=0, end=1)
    except Exception as err:
        _fail(step_read, err, _denied_fix(err, r, tenant, step_read.name, config))
        return report
    step_read.status = "ok"
    step_read.detail = (f"read {len(data)} byte as {who}" if data
                        else f"read 0 bytes as {who}: the object is empty")
    return report


def _guard(config: Config | None, r: Route) -> None:
    """The network guard's verdict on a plain http(s) URL before anything is sent: an address
    literal as written, a host name on every address it resolves to (as the read's resolver
    would judge them). A name that does not resolve is left to the read step to report."""
    from yarl import URL

    from .._net.guard import Guard, literal_refusal
    from .._net.resolver import system_resolver

    url = r.location.url or ""
    refusal = literal_refusal(config, url)
    if refusal is not None:
        raise refusal
    parsed = URL(url, encoded=True)
    host = parsed.raw_host or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    guard = Guard.from_config(config, proxy=r.proxy)
    if not host or (host, port) in guard.exempt:
        return

    async def resolve() -> list[str]:
        resolver = system_resolver()
        try:
            return [a["host"] for a in await resolver.resolve(host, port)]
        finally:
            await resolver.close()

    try:
        addresses = asyncio.run(resolve())
    except OSError:
        return
    if addresses:
        try:
            guard.check_answers(host, port, addresses)
        except AccessRefused as err:
            raise AccessRefused(str(err).replace("connection refused", f"read of "
                                                 f"{redact(url)} refused", 1),
                                uri=redact(url), rule=err.rule) from None


#: The guard's refusals end with how to open the address; ``check`` reports that as the fix.
_GUARD_TAIL = "; plain http(s) reads only reach public addresses on allowed ports."


def _fail(step: Step, err: BaseException, fix: str) -> None:
    step.status, step.error, step.fix = "failed", err, fix
    # The fix is reported on its own; a message that embeds it says it once.
    detail = _message(err).split("; to fix: ", 1)[0]
    if isinstance(err, AccessRefused) and (err.rule or "").startswith("ssrf:"):
        detail = detail.split(_GUARD_TAIL, 1)[0]
    step.detail = detail


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror and not isinstance(
            err, (AccessDenied, AccessRefused)):
        return err.strerror
    return str(err) or type(err).__name__


def _credentials_detail(r: Route) -> str:
    g = r.grant
    return {
        "aws-assume-role": f"assumed {g.role_arn} (with the tenant's ExternalId)",
        "gcp-impersonate": f"impersonated {g.service_account} (read-only scope)",
        "gcp-platform": "got a token for the platform's Google identity (read-only scope)",
        "azure-app": f"got a token for app {g.client_id} in directory {g.azure_tenant_id}",
        "aws-platform": "none to fetch: the platform's AWS identity (default chain) signs the "
                        "read",
        "anonymous": "none: anonymous read",
        "none": "none: the URL carries its own authority",
    }.get(g.kind, "the backend's default credential chain")


def _policy_command(r: Route, tenant: str | None) -> str | None:
    """The `attachfs policy` invocation that prints the exact documents for ``r``'s grant."""
    loc = r.location
    t = f" --tenant {tenant}" if tenant else ""
    kind = r.grant.kind
    if kind == "aws-assume-role":
        return f"attachfs policy aws{t} --bucket {loc.bucket}"
    if kind == "aws-platform":
        return f"attachfs policy bucket{t} --bucket s3://{loc.bucket}"
    if kind == "gcp-impersonate":
        return f"attachfs policy gcp{t} --bucket gs://{loc.bucket}"
    if kind == "gcp-platform":
        return f"attachfs policy bucket{t} --bucket gs://{loc.bucket}"
    if kind == "azure-app":
        return (f"attachfs policy azure{t} --bucket "
                f"https://{loc.account}.blob.core.windows.net/{loc.bucket}")
    return None


def _denied_fix(err: BaseException, r: Route, tenant: str | None, step: str,
                config: Config | None) -> str:
    if isinstance(err, AccessRefused):
        return _rule_fix(err, config)
    if isinstance(err, AccessDenied):
        fix = err.hint or "grant the identity read access"
        if r.backend == "s3" and r.grant.kind in ("aws-assume-role", "aws-platform") \
                and "s3:GetObject" in fix:
            fix += ("; if that is granted, check the key: S3 answers 403, not 404, for a "
                    "missing key when the identity may not list the bucket")
        command = _policy_command(r, tenant)
        if command:
            fix += f". The exact policy: `{command}`"
        return fix
    if isinstance(err, FileNotFoundError) and step == "read":
        return (f"no object at {redact(r.uri)}: check the bucket and key (the credentials "
                "were accepted)")
    if isinstance(err, FileNotFoundError):
        missing = f" ({err.filename})" if err.filename else ""
        return (f"a file the platform's credentials come from is missing{missing}: check "
                "the paths in the config's [platform] section")
    return _generic_fix(err)


def _generic_fix(err: BaseException) -> str:
    if isinstance(err, ValueError):  # ConfigError among them: the message names the key
        return f"fix the configuration: {err}"
    if isinstance(err, (ConnectionError, TimeoutError)):
        return "a service did not answer; check the endpoint and network, then try again"
    return f"unexpected {type(err).__name__}; run again with the same arguments and report it"


def _refused_fix(err: AccessRefused, config: Config | None, tenant: str | None,
                 location: Location) -> str:
    if err.rule == "unclaimed":
        scheme = "s3" if location.backend == "s3" else "gs"
        bucket = f"{scheme}://{location.bucket}"
        cloud = "aws" if location.backend == "s3" else "gcp"
        where = config.source if config is not None and config.source else "the config"
        return (f"add a claim: put \"{bucket}\" in tenants.{tenant}.direct in {where} (then "
                f"grant the platform read access: `attachfs policy bucket --tenant {tenant} "
                f"--bucket {bucket}`), or set up delegated access: tenants.{tenant}.{cloud} "
                f"and `attachfs policy {cloud} --tenant {tenant} --bucket {bucket}`")
    if err.rule == "no-tenant":
        return "name the tenant the read is made for: --tenant NAME (or $ATTACHFS_TENANT)"
    if err.rule == "unknown-tenant":
        close = suggest_tenants(config, tenant)
        if close:
            return (f"pass --tenant {close[0]} if that is the tenant meant, or add "
                    f"[tenants.{tenant}] to the config")
        return "use a tenant defined under [tenants] in the config, or add it there"
    if err.rule == "tenant-without-config":
        return ("pass --config with a config that defines [tenants] (or set "
                "$ATTACHFS_CONFIG), or drop --tenant and unset $ATTACHFS_TENANT for ambient "
                "mode")
    return _rule_fix(err, config)


def _rule_fix(err: AccessRefused, config: Config | None) -> str:
    """The fix for a refusal by one of attachfs's own rules, said once (never the message
    again). The guard's: never a way to open the cloud metadata service."""
    rule = err.rule or "unnamed"
    where = (config.source if config is not None and config.source else
             "the platform's config")
    if rule == "ssrf:cloud-metadata":
        return ("do not read this URL: it points at the cloud metadata service, which serves "
                "this machine's own credentials; ask whoever sent it for the attachment's real "
                "URL")
    if rule.startswith("ssrf:"):
        kind = rule[len("ssrf:"):]
        if kind in OPENED_BY_PRIVATE:
            return (f"ask for a URL on a public host; only if the platform means to read "
                    f"{kind} addresses, open them in {where}: platform.http."
                    "allow_private_networks = true, or the host in platform.http.allow_hosts")
        if kind == "port":
            return f"ask for a URL on port 80 or 443, or add the port to platform.http.allow_ports in {where}"
        if kind in ("scheme", "redirect-limit", "redirect-downgrade"):
            return "read the final URL directly, over https"
        return f"ask for a URL on a public host: {kind} addresses are not attachment servers"
    return f"attachfs's rule {rule!r} refused the read; see `attachfs explain` for the route"
