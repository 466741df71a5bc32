"""The library's errors in a command-line user's words.

The library speaks to Python callers (``tenant=``, ``config=``, ``require_key=False``); a
command-line user types ``--tenant`` and ``--config`` and cannot pass a keyword argument. Every
command routes its URIs through ``Context.route`` (and ``check`` through ``diagnose``), which
hand a refusal to ``for_cli``: the same exception class with the same ``rule``, ``uri`` and
``tenant``, and a message naming the flags.

"Did you mean": an unknown tenant's refusal from the library never names another tenant, since
it may reach whoever submitted the read (one tenant must not learn another's name). The command
line is run by the operator who holds the config file and can read every tenant's name in it,
so here, and only here, a mistyped tenant is answered with the close names in that config.
"""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING, TypeVar, cast

from .._errors import AccessRefused, ConfigError

if TYPE_CHECKING:
    from .._config import Config
    from .._rules import Route

__all__ = ["credential_file_problem", "for_cli", "not_an_object", "suggest_tenants"]

E = TypeVar("E", bound=BaseException)


def _where(config: Config | None) -> str:
    if config is None:
        return "no config is set"
    return f"{config.source} defines no tenants" if config.source else "the config defines no tenants"


def suggest_tenants(config: Config | None, tenant: str | None) -> list[str]:
    """Tenant names in ``config`` close to the mistyped ``tenant`` (for the operator only)."""
    if config is None or not tenant:
        return []
    names = sorted(config.tenants)
    folded = {name.lower(): name for name in names}
    close = difflib.get_close_matches(tenant.lower(), list(folded), n=3, cutoff=0.6)
    return [folded[name] for name in close]


def for_cli(err: E, config: Config | None) -> E:
    """``err`` reworded for the command line, or ``err`` itself when it needs no new words."""
    if not isinstance(err, AccessRefused):
        return err
    uri, tenant, rule = err.uri, err.tenant, err.rule
    read = f"read of {uri} refused" if uri else "read refused"
    if rule == "no-tenant":
        source = config.source if config is not None and config.source else "the config"
        text = (f"{read}: {source} defines tenants, so every read is made for one: pass "
                "--tenant NAME (or set $ATTACHFS_TENANT)")
    elif rule == "tenant-without-config":
        text = (f"read refused for tenant {tenant!r}: {_where(config)}, so no tenant rules "
                "would apply: pass --config PATH with a config that defines [tenants] (or set "
                "$ATTACHFS_CONFIG), or drop --tenant and unset $ATTACHFS_TENANT for ambient "
                "mode")
    elif rule == "unknown-tenant":
        source = config.source if config is not None and config.source else "the config"
        text = f"{read}: unknown tenant {tenant!r}; tenants are defined as [tenants.NAME] in {source}"
        close = suggest_tenants(config, tenant)
        if close:
            text += "; did you mean " + " or ".join(f"--tenant {name}" for name in close) + "?"
    else:
        return err
    return cast(E, AccessRefused(text, uri=uri, tenant=tenant, rule=rule))


def not_an_object(uri: str, command: str) -> ValueError:
    """A bucket or prefix given where an object is needed."""
    listing = uri if uri.endswith("/") else uri + "/"
    more = " (or `attachfs cp -r` to copy every object under it)" if command == "cp" else ""
    return ValueError(f"{uri} names a bucket or prefix, not an object: `attachfs {command}` "
                      f"takes an object URI such as {listing}path/to/object{more}; "
                      f"`attachfs ls {listing}` lists what is in it")


def credential_file_problem(config: Config | None, route: Route) -> ConfigError | None:
    """A key or certificate file the read's credentials come from that cannot be read, named
    by its resolved path (the config stores paths resolved against the config file's folder)."""
    if config is None:
        return None
    key = path = None
    if route.backend == "gcs" and route.grant.kind in ("ambient", "gcp-platform",
                                                       "gcp-impersonate"):
        given = config.platform.gcp.credentials
        if given and given != "anonymous":
            key, path = "platform.gcp.credentials", given
    elif route.grant.kind == "azure-app" and config.platform.azure.client_certificate_path:
        key, path = "platform.azure.client_certificate_path", \
            config.platform.azure.client_certificate_path
    if key is None or path is None:
        return None
    resolved = os.path.abspath(path)
    if os.path.isfile(resolved) and os.access(resolved, os.R_OK):
        return None
    what = "does not exist" if not os.path.exists(resolved) else (
        "is not a file" if not os.path.isfile(resolved) else "cannot be read")
    return ConfigError(f"{resolved} {what}; the platform's credentials for this read come from "
                       "it: fix the path (a relative path is taken from the config file's "
                       "folder)", source=config.source, key=key)
