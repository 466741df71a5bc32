"""The options of an ``attach`` filesystem: checked, resolved, and turned into what identifies
an instance, before fsspec's instance cache is asked for one.

fsspec reuses a filesystem for equal constructor arguments. ``config="attachfs.toml"`` is the
same argument before and after the file changed, and ``tenant=None`` is the same whatever
``$ATTACHFS_TENANT`` says; so attachfs resolves both first and identifies an instance by the
tenant and the config's *content* (its digest). Each is taken from, in order: the argument;
fsspec's own configuration for the protocol (``fsspec.config.conf["attach"]``, which
``FSSPEC_ATTACH_TENANT``/``FSSPEC_ATTACH_CONFIG`` fill); ``$ATTACHFS_TENANT``/``$ATTACHFS_CONFIG``;
and, for the tenant only, the tenant a name handed out by ``unstrip_protocol`` carries.

No option is silently ignored (an ignored option reads as an identity or from an endpoint that
nobody asked for):

* an unknown option is refused, with the closest known name ("did you mean");
* secrets are never options: they would end up in ``storage_options``, pickles and task graphs;
  each is refused naming the environment variable or config key that holds it instead;
* the options that make sense without a config (``endpoint_url``, ``anon``, ``profile``, and the
  clouds' own endpoint variables ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` and
  ``STORAGE_EMULATOR_HOST``) become that ambient setup's platform config; with a config they are
  refused unless the config already says the same, naming the config key to set instead: an
  option never changes the identity or endpoint a configured setup reads with.

Pure: reads the config file it is pointed at and the environment mapping it is handed; makes no
request and imports no I/O library.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._config import Config, load_config
from ._errors import AccessDenied, AccessRefused, ConfigError

__all__ = [
    "AMBIENT", "OPTIONS", "Options", "backend_of", "resolve", "split_tenant", "stamp",
    "unknown_argument",
]

#: Every option the filesystem takes, and what it does (docs/configuration.md shows this table).
OPTIONS: dict[str, str] = {
    "tenant": "the tenant every read is made for (default: fsspec's conf, then $ATTACHFS_TENANT)",
    "config": "a config file path, a mapping or a Config (default: fsspec's conf, then "
              "$ATTACHFS_CONFIG, else ambient mode)",
    "cache": "attachfs's tenant-keyed disk cache: a directory, or a mapping of directory, "
             "max_bytes, ttl_seconds, max_entry_bytes (default: the config's [cache])",
    "endpoint_url": "ambient mode only, chained to one cloud (attach::s3://, attach::gs://): "
                    "that cloud's endpoint, as s3fs and gcsfs take it",
    "anon": "ambient mode only: true reads without credentials (unsigned S3, anonymous GCS)",
    "profile": "ambient mode only: the AWS profile of the platform's identity, as s3fs takes it",
    "asynchronous": "fsspec: an instance for use inside a running event loop",
    "loop": "fsspec: the event loop of an asynchronous instance",
    "batch_size": "fsspec: how many requests cat/get run at once",
    "skip_instance_cache": "fsspec: build a new instance even if an equal one exists",
    "target_protocol": "set by fsspec for attach::PROTOCOL://... URLs",
    "target_options": "set by fsspec for attach::PROTOCOL://... URLs: the inner protocol's "
                      "options (PROTOCOL={...}); the ambient options above, account_name, "
                      "version_aware",
    "fo": "set by fsspec for attach::PROTOCOL://... URLs (the path; not an option)",
}

#: Ambient options and the platform config key each stands for.
AMBIENT = ("endpoint_url", "anon", "profile")

#: fsspec's listing-cache options: attachfs keeps no listing cache of its own.
_LISTINGS = ("use_listings_cache", "listings_expiry_time", "max_paths")

#: Options passed by fsspec's ``_get_kwargs_from_urls`` of the inner protocol, or by users in
#: ``attach::s3://...`` chains as ``s3={...}``.
_TARGET = ("account_name", "version_aware", *AMBIENT)

#: Set from a name ``unstrip_protocol`` handed out (``_get_kwargs_from_urls``); not documented.
NAME_TENANT = "_name_tenant"

_AWS_KEYS = ("the AWS default credential chain: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and "
             "AWS_SESSION_TOKEN) in the environment, or a profile (profile= in ambient mode, "
             "platform.aws.profile in a config)")
_SECRETS: dict[str, str] = {
    "key": _AWS_KEYS, "secret": _AWS_KEYS, "session_token": _AWS_KEYS,
    "aws_access_key_id": _AWS_KEYS, "aws_secret_access_key": _AWS_KEYS,
    "aws_session_token": _AWS_KEYS,
    "token": ("GOOGLE_APPLICATION_CREDENTIALS (application default credentials), or "
              "platform.gcp.credentials naming a service-account file; anon=True for "
              "anonymous reads"),
    "account_key": ("an environment variable named by platform.azure.account_key_env in the "
                    "config"),
    "connection_string": ("platform.azure.endpoint_url and an environment variable named by "
                          "platform.azure.account_key_env in the config"),
    "sas_token": "the URL it signs: read that URL as plain https",
    "credential": ("the platform's Azure app (platform.azure.client_id and "
                   "client_secret_env) or the tenant's integration in the config"),
    "client_secret": "an environment variable named by platform.azure.client_secret_env",
    "password": "an environment variable the config names",
}

_TENANT_NAME = r"[A-Za-z0-9_.-]{1,64}"
_NAMED = re.compile(rf"({_TENANT_NAME})@(?=[A-Za-z][A-Za-z0-9+.-]*://)")

_BACKENDS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure",
             "abfs": "azure", "abfss": "azure", "adl": "azure", "http": "http", "https": "http"}


@dataclass(frozen=True)
class Options:
    """What one ``AttachFileSystem(...)`` call resolved to."""

    tenant: str | None
    config: Config | None
    cache: Any                      # None, a directory, a mapping, or a DiskCache
    target_protocol: str | None
    target_options: dict[str, Any]
    fsspec: dict[str, Any]          # asynchronous, loop, batch_size
    skip_instance_cache: bool
    stamp: tuple[int, int, int] | None = None   # the config file's, taken before it was read
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> tuple[Any, ...]:
        """What decides whether two instances may be one: the tenant, the config's source and
        content, the chaining, the cache and the fsspec options (a loop by identity)."""
        config = None if self.config is None else (self.config.source, self.config.digest)
        loop = self.fsspec.get("loop")
        fsspec = {k: v for k, v in self.fsspec.items() if k != "loop"}
        return (self.tenant, config, self.target_protocol,
                tuple(sorted((k, repr(v)) for k, v in self.target_options.items())),
                repr(self.recipe.get("cache")) if self.cache is not None else None,
                tuple(sorted(fsspec.items())), None if loop is None else id(loop))


def backend_of(protocol: str | None) -> str | None:
    """The backend a chained protocol (``attach::s3://``) names, None if not chained."""
    return None if protocol is None else _BACKENDS.get(protocol)


def split_tenant(path: str) -> tuple[str | None, str]:
    """``("acme", "s3://b/k")`` for the ``acme@s3://b/k`` of a name ``unstrip_protocol`` handed
    out; ``(None, path)`` for any other path."""
    m = _NAMED.match(path)
    if m is None:
        return None, path
    return m[1], path[m.end():]


def stamp(path: str) -> tuple[int, int, int] | None:
    """What says a config file changed: its (mtime, size, inode); None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def resolve(given: Mapping[str, Any], *, defaults: Mapping[str, Any],
            environ: Mapping[str, str]) -> Options:
    """Check ``given`` (the constructor's keyword arguments) and ``defaults`` (fsspec's conf for
    the protocol), and resolve them with ``environ`` into ``Options``."""
    given = _unpack_storage_options(dict(given))
    _check_names(given, "")
    _check_names(defaults, " in fsspec.config.conf['attach'] (FSSPEC_ATTACH_*)")
    merged = {**{k: v for k, v in defaults.items() if v is not None},
              **{k: v for k, v in given.items()
                 if v is not None or k not in ("tenant", "config")}}

    target_protocol = merged.get("target_protocol")
    if target_protocol is not None and backend_of(target_protocol) is None:
        raise ConfigError(f"attach reads s3, gs, az/abfs and http(s) URIs; it cannot be chained "
                          f"over {target_protocol!r} (attach::{target_protocol}://...). fsspec "
                          "splits any URL at '::', so an object whose key holds '::' is read "
                          "with the filesystem's own methods (fs.open, fs.cat_file), not by "
                          "name through fsspec.open")
    target_options = dict(merged.get("target_options") or {})
    _check_names(target_options, " in target_options (attach::PROTOCOL://... options)",
                 allowed=_TARGET)

    tenant = merged.get("tenant")
    if tenant is None:
        tenant = environ.get("ATTACHFS_TENANT") or None
    named = merged.get(NAME_TENANT)
    if named is not None:
        if tenant is None:
            tenant = named
        elif tenant != named:
            raise AccessRefused(
                f"the name was handed out for tenant {named!r}, and this filesystem reads for "
                f"tenant {tenant!r}: a name never chooses another tenant",
                tenant=tenant, rule="name-of-another-tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise ConfigError(f"tenant must be a string, not {type(tenant).__name__}")

    config, config_stamp = _config(merged.get("config"), environ)
    ambient = {k: merged[k] for k in AMBIENT if k in merged}
    for k in AMBIENT:
        if k in target_options:
            if k in ambient and ambient[k] != target_options[k]:
                raise ConfigError(f"{k} is given twice, with two values: once as an option "
                                  "and once in target_options; give it once")
            ambient[k] = target_options.pop(k)
    config = _ambient(config, ambient, backend_of(target_protocol), environ)

    cache = merged.get("cache")
    fsspec: dict[str, Any] = {k: merged[k] for k in ("asynchronous", "loop", "batch_size")
                              if k in merged}
    options = Options(tenant=tenant, config=config, cache=cache, target_protocol=target_protocol,
                      target_options=target_options, fsspec=fsspec,
                      skip_instance_cache=bool(merged.get("skip_instance_cache", False)),
                      stamp=config_stamp)
    return Options(**{**options.__dict__, "recipe": recipe(options)})


def recipe(options: Options) -> dict[str, Any]:
    """The secret-free, JSON-safe keyword arguments that rebuild the instance elsewhere: the
    resolved tenant and config (a file by its path, a mapping as its validated content), never
    "whatever the other process's environment says"."""
    out: dict[str, Any] = {}
    if options.tenant is not None:
        out["tenant"] = options.tenant
    if options.config is not None:
        out["config"] = options.config.source or options.config.as_mapping()
    if options.target_protocol is not None:
        out["target_protocol"] = options.target_protocol
        out["target_options"] = dict(options.target_options)
    cache = options.cache
    if cache is not None:
        if isinstance(cache, (str, os.PathLike)):
            out["cache"] = os.path.abspath(os.path.expanduser(os.fspath(cache)))
        elif isinstance(cache, Mapping):
            out["cache"] = dict(cache)
        else:  # a DiskCache: its settings
            out["cache"] = {"directory": cache.directory, "max_bytes": cache.max_bytes,
                            "ttl_seconds": cache.ttl_seconds,
                            "max_entry_bytes": cache.max_entry_bytes}
    out.update({k: v for k, v in options.fsspec.items() if k != "loop"})
    return out


# ---------------------------------------------------------------- names

def _unpack_storage_options(given: dict[str, Any]) -> dict[str, Any]:
    # pandas and Dask spell options storage_options={...}; fsspec.open_files takes them as
    # keyword arguments, so such a dict arrives here as one option of that name. Its keys are
    # checked like any other; ignoring it would read as nobody asked.
    inner = given.pop("storage_options", None)
    if inner is None:
        return given
    if not isinstance(inner, Mapping):
        raise ConfigError(f"storage_options must be a mapping, not {type(inner).__name__}")
    _check_names(inner, " in storage_options={...}")
    for k, v in inner.items():
        if k in given and given[k] != v:
            raise ConfigError(f"{k} is given twice with two values, once in storage_options; "
                              "give it once")
        given[k] = v
    return given


def _check_names(options: Mapping[str, Any], where: str,
                 allowed: tuple[str, ...] | None = None) -> None:
    known = tuple(OPTIONS) + (NAME_TENANT,) if allowed is None else allowed
    for name in options:
        if name in known:
            continue
        name = str(name)
        if name in _SECRETS:
            raise ConfigError(
                f"{name}={'...'}{where}: secrets are never options (they would be kept in "
                f"storage_options, pickles and task graphs); attachfs reads this one from "
                f"{_SECRETS[name]}")
        if name in _LISTINGS:
            raise ConfigError(
                f"{name}{where}: attachfs keeps no listing cache of its own (the inner "
                "filesystems do): call fs.invalidate_cache() to see new objects")
        close = difflib.get_close_matches(name, [k for k in known if not k.startswith("_")],
                                          n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        shown = ", ".join(k for k in known if not k.startswith("_"))
        raise ConfigError(f"unknown option {name!r}{where}; {hint}the options are: {shown}")


def unknown_argument(given: Mapping[str, Any], known: tuple[str, ...], what: str,
                     ) -> ConfigError:
    """The error for an argument ``what`` (``open``, ``get_file``) does not take: the closest
    known name, and where it goes if it is a filesystem option."""
    name = sorted(given)[0]
    options = [k for k in OPTIONS if k not in ("fo", "target_options", "target_protocol")]
    close = difflib.get_close_matches(name, [*known, *options], n=1)
    meant = name if name in OPTIONS else (close[0] if close else None)
    hint = f"did you mean {close[0]!r}? " if close and close[0] != name else ""
    if meant in OPTIONS:
        hint += (f"{meant} is a filesystem option: give it to attachfs.filesystem(...), "
                 "fsspec.filesystem('attach', ...) or attachfs.open(uri, ...); ")
    return ConfigError(f"unknown {what} argument {name!r}; {hint}{what} takes: "
                       f"{', '.join(known)}")


# ---------------------------------------------------------------- config

def _config(value: Any, environ: Mapping[str, str],
            ) -> tuple[Config | None, tuple[int, int, int] | None]:
    """The config and, for a file, its stamp (taken before reading, so a change made while it
    is read is seen as a change later)."""
    if value is None:
        path = environ.get("ATTACHFS_CONFIG")
        if not path:
            return None, None
        path = os.path.expanduser(path)
        if not os.path.isfile(path):
            raise ConfigError("$ATTACHFS_CONFIG names a file that does not exist: fix or unset "
                              "it", source=path)
        value = path
    if isinstance(value, Config):
        return value, stamp(value.source) if value.source else None
    if isinstance(value, (str, os.PathLike)):
        path = os.path.abspath(os.path.expanduser(os.fspath(value)))
        before = stamp(path)
        return load_config(path), before
    if isinstance(value, Mapping):
        return load_config(value), None
    raise ConfigError(f"config must be a path, a mapping or a Config, not "
                      f"{type(value).__name__}")


# ---------------------------------------------------------------- ambient options

def _ambient(config: Config | None, options: dict[str, Any], chained: str | None,
             environ: Mapping[str, str]) -> Config | None:
    """``config`` with the ambient options applied: without a config they become one (platform
    keys only, no tenants); with one, an option must agree with it."""
    wanted = _platform_keys(options, chained)
    if config is not None:
        for (cloud, key), value in wanted.items():
            have = getattr(getattr(config.platform, cloud), key)
            if have != value and not (key == "anonymous" and value is False and not have):
                option = _option_of(cloud, key)
                if key == "anonymous" and value is True:
                    # pandas answers a PermissionError by opening again with anon=True, inside
                    # its except block: the caller gets the refusal that made it retry, and
                    # otherwise this one, a PermissionError too; never an anonymous read.
                    handled = sys.exc_info()[1]
                    if isinstance(handled, (AccessRefused, AccessDenied)):
                        raise handled
                    raise AccessRefused(
                        f"{option} refused: with a config ({config.source or 'a mapping'}) the "
                        f"config alone decides identities; an anonymous read is "
                        f"platform.{cloud}.anonymous there (pandas retries a refused read with "
                        "anon=True: the refusal before it is the one to look at)",
                        rule="anonymous-with-config")
                raise ConfigError(
                    f"{option} conflicts with the config ({config.source or 'a mapping'}): "
                    f"with a config, the config alone decides identities and endpoints; set "
                    f"platform.{cloud}.{key} there instead", key=f"platform.{cloud}.{key}")
        _refuse_stray_endpoints(config, environ)
        return config
    env = _environment_endpoints(environ)
    platform: dict[str, dict[str, Any]] = {}
    for (cloud, key), value in {**env, **wanted}.items():
        if key == "anonymous":
            if not value:
                continue
            if cloud == "gcp":
                key, value = "credentials", "anonymous"
        platform.setdefault(cloud, {})[key] = value
    if not platform:
        return None
    return load_config({"platform": platform})


def _platform_keys(options: Mapping[str, Any], chained: str | None) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    if "endpoint_url" in options:
        url = options["endpoint_url"]
        if chained not in ("s3", "gcs"):
            raise ConfigError(
                f"endpoint_url={url!r} names one cloud's endpoint, and this filesystem reads "
                "every cloud: chain it to one (attach::s3://... or attach::gs://...), or set "
                "AWS_ENDPOINT_URL_S3 / STORAGE_EMULATOR_HOST, or put platform.aws.endpoint_url "
                "(platform.gcp.endpoint_url) in a config")
        out[("aws" if chained == "s3" else "gcp", "endpoint_url")] = url
    if "anon" in options:
        anon = options["anon"]
        if not isinstance(anon, bool):
            raise ConfigError(f"anon must be true or false, not {anon!r}")
        clouds = {"s3": ("aws",), "gcs": ("gcp",), "azure": ("azure",)}.get(
            chained or "", ("aws", "gcp", "azure"))
        for cloud in clouds:
            out[(cloud, "anonymous")] = anon
    if "profile" in options:
        out[("aws", "profile")] = options["profile"]
    return out


def _option_of(cloud: str, key: str) -> str:
    return {"endpoint_url": "endpoint_url=", "anonymous": "anon=", "profile": "profile="}[key]


def _environment_endpoints(environ: Mapping[str, str]) -> dict[tuple[str, str], Any]:
    """The clouds' own endpoint variables, as botocore and gcsfs read them."""
    out: dict[tuple[str, str], Any] = {}
    aws = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if aws:
        out[("aws", "endpoint_url")] = aws
    gcs = environ.get("STORAGE_EMULATOR_HOST")
    if gcs:
        out[("gcp", "endpoint_url")] = gcs if "://" in gcs else f"http://{gcs}"
    return out


def _refuse_stray_endpoints(config: Config, environ: Mapping[str, str]) -> None:
    # s3fs (through botocore) and gcsfs follow these variables when no endpoint is given, while
    # attachfs's own reads follow the config: listing from one endpoint and reading from
    # another is refused, naming what to set.
    for name, cloud in (("AWS_ENDPOINT_URL_S3", "aws"), ("AWS_ENDPOINT_URL", "aws"),
                        ("STORAGE_EMULATOR_HOST", "gcp")):
        if environ.get(name) and not getattr(config.platform, cloud).endpoint_url:
            raise ConfigError(
                f"${name} is set, and the config names no platform.{cloud}.endpoint_url: the "
                f"{cloud} client library would list from ${name} while attachfs reads from the "
                f"cloud itself; set platform.{cloud}.endpoint_url to the endpoint meant, or "
                f"unset {name}", source=config.source, key=f"platform.{cloud}.endpoint_url")
