"""AttachFileSystem: the ``attach`` protocol.

Paths are full attachment URIs (``s3://b/k``, ``gs://b/k``, an Azure blob URL, ``https://...``).
Each call parses its URI (``_uri``), asks ``_rules`` for the Route (tenant + config decide the
identity), and delegates to the inner filesystem that ``_backends`` keeps for that Route. Names the
inner filesystems return are mapped back to the spelling the caller used: full URIs for full
URIs, so ``ls``/``find``/``glob`` results can be passed straight back to ``open``; the inner
protocol's stripped form (``bucket/key``) for a chained ``attach::s3://...`` filesystem, as
pyarrow and Dask expect of a dataset prefix. Delegation is explicit, method by method (as
fsspec's ``dirfs.py`` does), so every entry point can be found by name.

Chaining: ``fsspec.open("attach::s3://b/k")`` constructs us with ``target_protocol="s3"`` and
hands us the inner filesystem's stripped path (``"b/k"``); ``_qualify`` puts the scheme back.

Instances: the options are checked and resolved (``_options``) before fsspec's instance cache is
asked, and an instance is identified by its tenant and its config's *content*; a config file
that changes on disk is re-read by the next construction, and an instance built before the
change refuses to read until it is rebuilt (``ConfigError``).

Names handed out (``unstrip_protocol``, so ``OpenFile.full_name`` and a file's ``full_name``)
keep ``attach`` and the tenant: ``attach://acme@s3://b/k``, which ``fsspec.open`` rebuilds into
a filesystem reading for acme; a name of another tenant than the filesystem's is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Hashable, Iterable, Iterator
from typing import IO, Any, Literal, NoReturn, cast, overload

from fsspec.asyn import AsyncFileSystem, get_loop, sync
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.implementations.chained import ChainedFileSystem
from fsspec.utils import isfilelike, stringify_path

from . import _blocks, _credentials, _info, _listing, _options, _read, _rules
from ._backends import Backends, inner_path, outer_location
from ._cache import DiskCache
from ._config import Config, load_config
from ._errors import AccessRefused, ConfigError, ReadOnlyError, not_found
from ._file import DEFAULT_CACHE, AttachFile
from ._instances import Protocol, Resolving
from ._limits import CACHE_MAX_BYTES
from ._read.batch import Batch, run_all
from ._read.cached import object_key, read_through, tail_info
from ._read.part import Part, write_parts
from ._uri import Location, parse

__all__ = ["AttachFileSystem"]

_READ_ONLY = (
    "attachfs is read-only for now: open attachments with mode 'rb' (or 'r'); "
    "write with the cloud's own client"
)

#: ``get_file`` reads this much per request (every part pinned to the first part's version).
GET_CHUNK = 16 * 2**20

#: What ``open`` passes on besides the path: fsspec's cache_type is a hint attachfs does not
#: need (its file has its own read-ahead); size is fsspec's caches' hint.
_OPEN_KWARGS = ("cache_type", "size")
#: How many paths' Routes an instance remembers before it starts over.
_ROUTES_KEPT = 4096

class AttachFileSystem(AsyncFileSystem, ChainedFileSystem, metaclass=Resolving):
    """Read attachments from S3, GCS, Azure Blob and http(s) with per-tenant credentials.

    Options (``attachfs.filesystem(...)``, ``fsspec.filesystem("attach", ...)``,
    ``storage_options={...}``): ``tenant``, ``config``, ``cache``; in ambient mode also
    ``endpoint_url`` (chained to one cloud), ``anon`` and ``profile``; and fsspec's
    ``asynchronous``, ``loop``, ``batch_size``, ``skip_instance_cache``. Anything else is
    refused. ``storage_options`` is the secret-free recipe ``to_json`` and pickles carry.
    """

    protocol = Protocol()  # ("attach",), and a refusal for fsspec's caches
    root_marker = ""
    async_impl = True

    # Set by fsspec's AsyncFileSystem.__init__ (None: an asynchronous instance); ``loop`` sets
    # them again in a forked child.
    _loop: asyncio.AbstractEventLoop | None
    _pid: int
    #: The config file's (mtime, size, inode) when it was read (None: not a file).
    _config_stamp: tuple[int, int, int] | None = None

    def __init__(
        self,
        *,
        tenant: str | None = None,
        config: str | os.PathLike[str] | dict[str, Any] | Config | None = None,
        cache: str | os.PathLike[str] | dict[str, Any] | DiskCache | None = None,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        # Called by the metaclass with the options already checked and resolved
        # (_options.resolve): config is a Config or None here.
        super().__init__(**kwargs)
        self.tenant = tenant
        self.config = config if config is None or isinstance(config, Config) else (
            load_config(config))
        self.cache = _open_cache(cache, self.config)
        self.target_protocol = target_protocol
        self.target_options = dict(target_options or {})
        self._backends = Backends(self.config, self._loop, self.asynchronous)
        self._routes: dict[tuple[str, bool], _rules.Route] = {}
        self._locations: dict[tuple[str, bool], Location] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        # fsspec refuses to run an instance in a forked child ("not fork-safe"); a DataLoader
        # worker inherits ours. Its inner filesystems hold sessions bound to the parent's loop,
        # so the child takes fsspec's fresh loop and builds its own; credential leases are
        # process-wide and inherited (still valid), so nothing is fetched again.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            if not self.asynchronous:
                self._loop = get_loop()
            self._backends = Backends(self.config, self._loop, self.asynchronous)
        return self._loop

    def __repr__(self) -> str:
        if self.config is None:
            return "<AttachFileSystem ambient>"
        source = self.config.source or "<mapping>"
        return f"<AttachFileSystem tenant={self.tenant!r} config={source!r}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # A recipe, not a live session: the resolved tenant and the config *reference* (a
        # file's path or the secret-free mapping); the receiving process builds its own
        # backends and credentials.
        return _rebuild, (type(self), dict(self.storage_options))

    # -- paths ------------------------------------------------------------------------------

    @overload
    @classmethod
    def _strip_protocol(cls, path: str | os.PathLike[str]) -> str: ...

    @overload
    @classmethod
    def _strip_protocol(cls, path: list[str]) -> list[str]: ...

    @classmethod
    def _strip_protocol(cls, path: str | os.PathLike[str] | list[str]) -> str | list[str]:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text: str = stringify_path(path)
        for prefix in ("attach://", "attach::"):
            if text.startswith(prefix):
                text = text[len(prefix):]
        # Unlike fsspec's default, keep a trailing "/": it is part of an object key. A
        # tenant a name carries (acme@s3://...) stays, for the instance to check.
        return text

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        # A name unstrip_protocol handed out carries its tenant; fsspec.open/url_to_fs of it
        # build a filesystem for that tenant unless one is set (then both must agree).
        text = stringify_path(path)
        for prefix in ("attach://", "attach::"):
            if text.startswith(prefix):
                text = text[len(prefix):]
        tenant, _ = _options.split_tenant(text)
        return {} if tenant is None else {_options.NAME_TENANT: tenant}

    def unstrip_protocol(self, name: str) -> str:
        """``name`` as a URL that reopens it through attach for this filesystem's tenant:
        ``attach://TENANT@URI`` (``attach://URI`` without a tenant)."""
        if name.startswith(("attach://", "attach::")):
            self._bare(name)  # a name of another tenant is refused, not passed on
            return name
        uri = self._qualify(name)
        return f"attach://{self.tenant}@{uri}" if self.tenant else f"attach://{uri}"

    def _bare(self, path: str) -> str:
        """``path`` without the protocol and without the tenant a handed-out name carries; that
        tenant must be this filesystem's."""
        named, bare = _options.split_tenant(type(self)._strip_protocol(path))
        if named is not None and named != self.tenant:
            raise AccessRefused(
                f"{bare}: the name was handed out for tenant {named!r}, and this filesystem "
                f"reads for tenant {self.tenant!r}; a name never chooses another tenant",
                uri=bare, tenant=self.tenant, rule="name-of-another-tenant")
        return bare

    def _relative(self, path: str) -> bool:
        """Whether ``path`` is in a chained filesystem's stripped form (``bucket/key``): names
        that answer it are given in that form too."""
        return (self.target_protocol is not None and "://" not in self._bare(path)
                and _options.backend_of(self.target_protocol) != "http")

    def _qualify(self, path: str) -> str:
        path = self._bare(path)
        if "://" in path or not self.target_protocol:
            return path
        protocol = self.target_protocol
        if protocol in ("abfs", "abfss", "az", "adl") and self.target_options.get("account_name"):
            container, _, key = path.partition("/")
            account = self.target_options["account_name"]
            return f"az://{container}@{account}.blob.core.windows.net/{key}"
        if protocol in ("http", "https"):
            return path
        return f"{protocol}://{path}"

    def _location(self, path: str, *, require_key: bool = True) -> Location:
        # A Location is a pure function of the path and this instance's target options:
        # parsed once per path (a batch's paths are parsed by _expand_path, then routed).
        # Parse errors are not kept; they are raised again on every call.
        memo = self._locations
        loc = memo.get((path, require_key))
        if loc is None:
            loc = parse(self._qualify(path), require_key=require_key)
            if len(memo) >= _ROUTES_KEPT:
                memo.clear()
            memo[(path, require_key)] = loc
        return loc

    def _route(self, path: str, *, require_key: bool = True) -> _rules.Route:
        config = self._current_config()  # checked on every call: a changed file refuses
        memo = self._routes
        route = memo.get((path, require_key))
        if route is None:
            # A Route is a pure function of (config, tenant, location), and both the config
            # and the tenant are fixed for this instance: decide once per path. Refusals are
            # not kept; they are decided (and raised) again on every call.
            route = _rules.route(config, self.tenant, self._location(path,
                                                                     require_key=require_key))
            if len(memo) >= _ROUTES_KEPT:
                memo.clear()
            memo[(path, require_key)] = route
        return route

    def _current_config(self) -> Config | None:
        """The config, if the file it came from still says the same; ``ConfigError`` if it
        changed since this instance was built (a new instance reads the new file)."""
        config = self.config
        if config is None or config.source is None or self._config_stamp is None:
            return config
        now = _options.stamp(config.source)
        if now == self._config_stamp:
            return config
        if now is not None and load_config(config.source).digest == config.digest:
            self._config_stamp = now  # touched, not changed
            return config
        raise ConfigError(
            "changed on disk since this filesystem was built; it keeps refusing to read until "
            "it is rebuilt: call attachfs.filesystem(...) again (attachfs.open, fsspec.open "
            "and fsspec.filesystem build one for the file as it is now)", source=config.source)

    def route(self, path: str) -> _rules.Route:
        """The Route a read of ``path`` takes (no request is made)."""
        return self._route(path)

    async def _inner(self, route: _rules.Route) -> tuple[AsyncFileSystem, str]:
        """The inner filesystem for ``route`` with its credentials valid now (fetched off-loop;
        a refusal raises here, before any storage request)."""
        await _read.guarded(route, _credentials.ready(self.config, route))
        return self._backends.get(route), inner_path(route.location)

    def _outer(self, route: _rules.Route, info: dict[str, Any], relative: bool) -> dict[str, Any]:
        """One inner entry in the common shape (``_info``), named in the caller's spelling."""
        loc = outer_location(route.location, info["name"])
        out = _info.normalise(info, route.backend)
        out["name"] = self._spelled(loc, relative)
        return out

    def _spelled(self, loc: Location, relative: bool) -> str:
        return inner_path(loc) if relative and loc.backend != "http" else loc.uri

    def _named(self, route: _rules.Route, found: dict[str, dict[str, Any]], detail: bool,
               relative: bool) -> dict[str, dict[str, Any]] | list[str]:
        out: dict[str, dict[str, Any]] = {}
        for info in found.values():
            info = self._outer(route, info, relative)
            out[info["name"]] = info
        return out if detail else sorted(out)

    # -- reads ------------------------------------------------------------------------------

    async def _cat_file(self, path: str, start: int | None = None, end: int | None = None,
                        **kwargs: Any) -> bytes:
        route = self._route(path)
        fs, _ = await self._inner(route)
        return await _read.guarded(route, self._read(fs, route, start, end))

    async def _read(self, fs: AsyncFileSystem, route: _rules.Route, start: int | None,
                    end: int | None) -> bytes:
        start = start or 0
        if start < 0 or (end is not None and end < 0):
            # fsspec's negative offsets count from the end: that needs the size first.
            size = (await self._info(route.uri))["size"]
            start = max(0, size + start) if start < 0 else start
            end = size + end if end is not None and end < 0 else end
        if self.cache is not None and start == 0 and end is None:
            async def read(start: int, end: int | None, if_none_match: str | None) -> Part:
                return await _read.read(fs, route, start, end, config=self.config,
                                        if_none_match=if_none_match)

            return (await read_through(self.cache, route, read)).data
        part = await _read.read(fs, route, start, end, config=self.config)
        return part.data

    async def _cat(self, path: str | list[str], recursive: bool = False,
                   on_error: str = "raise", batch_size: int | None = None,
                   **kwargs: Any) -> bytes | Exception | dict[str, bytes | Exception]:
        # fsspec's version, with the batch kept in flight by the read path's adaptive window
        # (_read.batch) instead of fixed chunks, and each backend's credentials made ready
        # once per batch instead of once per object.
        paths = await self._expand_path(path, recursive=recursive)
        out = await self._cat_all(paths, batch_size)
        if on_error == "raise":
            failed = next((r for r in out if isinstance(r, Exception)), None)
            if failed is not None:
                raise failed
        if len(paths) > 1 or isinstance(path, list) or paths[0] != self._strip_protocol(path):
            return {p: r for p, r in zip(paths, out, strict=True)
                    if on_error != "omit" or not isinstance(r, Exception)}
        return out[0]

    async def _cat_all(self, paths: list[str],
                       batch_size: int | None) -> list[bytes | Exception]:
        inners = _Inners(self)

        async def one(path: str) -> bytes:
            route = self._route(path)
            fs = await inners.get(route)
            return await _read.guarded(route, self._read(fs, route, None, None))

        limit = batch_size or self.batch_size or _default_batch_size(nofiles=True)
        return await run_all(paths, one, limit=limit, host=self._host_of(paths))

    async def _cat_ranges(self, paths: list[str], starts: int | None | list[int | None],
                          ends: int | None | list[int | None], max_gap: int | None = None,
                          batch_size: int | None = None, on_error: str = "return",
                          **kwargs: Any) -> list[bytes | Exception]:
        # fsspec's contract; the ranges of one object are read together (_read.read_ranges):
        # concurrently, all of one version of it.
        if max_gap is not None:
            raise NotImplementedError("max_gap: attachfs reads each range as asked")
        if not isinstance(paths, list):
            raise TypeError(f"paths must be a list, not {type(paths).__name__}")
        starts = list(starts) if isinstance(starts, Iterable) else [starts] * len(paths)
        ends = list(ends) if isinstance(ends, Iterable) else [ends] * len(paths)
        if len(starts) != len(paths) or len(ends) != len(paths):
            raise ValueError(f"{len(paths)} paths, {len(starts)} starts and {len(ends)} ends: "
                             "give one start and one end per path")
        wanted: dict[str, list[int]] = {}
        for i, p in enumerate(paths):
            wanted.setdefault(p, []).append(i)
        out: list[bytes | Exception] = [b""] * len(paths)
        inners = _Inners(self)

        async def ranges_of(path: str) -> None:
            indices = wanted[path]
            try:
                route = self._route(path)
                fs = await inners.get(route)
                spans = [(starts[i], ends[i]) for i in indices]
                got = await _read.guarded(route, self._ranges(fs, route, spans))
            except Exception as err:
                for i in indices:
                    out[i] = err
                return
            for i, data in zip(indices, got, strict=True):
                out[i] = data

        limit = batch_size or self.batch_size or _default_batch_size(nofiles=True)
        await run_all(list(wanted), ranges_of, limit=limit, host=self._host_of(paths))
        if on_error != "return":
            failed = next((r for r in out if isinstance(r, Exception)), None)
            if failed is not None:
                raise failed
        return out

    async def _ranges(self, fs: AsyncFileSystem, route: _rules.Route,
                      spans: list[tuple[int | None, int | None]]) -> list[bytes]:
        """Bytes of each ``(start, end)`` of one object, of one version of it."""
        plain = [(s or 0, e) for s, e in spans]
        if self.cache is not None or any(s < 0 or (e is not None and e < 0) for s, e in plain):
            # Offsets from the end need the size; a whole object may come from the cache.
            return [await self._read(fs, route, s, e) for s, e in spans]
        parts = await _read.read_ranges(fs, route, plain, config=self.config)
        return [p.data for p in parts]

    def _host_of(self, paths: list[str]) -> Hashable:
        """Where a batch's window is remembered: the link of its first object."""
        try:
            return _read.host(self._route(paths[0]), self.config) if paths else None
        except Exception:  # a bad first path fails as its own result, not the batch
            return None

    def cat_iter(self, paths: Iterable[str], *, batch_size: int | None = None,
                 on_error: str = "raise") -> Iterator[tuple[str, bytes | Exception]]:
        """Yield ``(uri, bytes)`` for each of ``paths`` as soon as it arrives (a dataloader's
        form of ``cat``): at most ``batch_size`` requests in flight (default: fsspec's batch
        size; fewer while the link needs no more, see the read path's batch window), objects
        in completion order, paced by the consumer (a few objects ahead of what it took).
        ``on_error``: "raise" (the first error), "return" (yield ``(uri, exception)``) or
        "omit" (skip it). Closing the iterator early starts no new request and lets those in
        flight finish, so their pooled connections are kept."""
        import queue

        if on_error not in ("raise", "return", "omit"):
            raise ValueError(f"on_error must be 'raise', 'return' or 'omit', not {on_error!r}")
        paths = list(paths)
        limit = batch_size or self.batch_size or _default_batch_size()
        # (uri, bytes or error) per object, then None: all finished.
        done: queue.Queue[tuple[str, bytes | Exception] | None] = queue.Queue()
        batch = Batch(paths, self._cat_file, limit=limit, host=self._host_of(paths),
                      on_result=lambda i, result: done.put((paths[i], result)), paced=True)

        async def run() -> None:
            try:
                await batch.run()
            finally:
                done.put(None)

        loop = self.loop
        if loop is None:  # an asynchronous instance: as fsspec's sync() refuses
            raise RuntimeError("Loop is not running")
        asyncio.run_coroutine_threadsafe(run(), loop)
        try:
            for path, result in iter(done.get, None):
                loop.call_soon_threadsafe(batch.took)
                if isinstance(result, Exception):
                    if on_error == "raise":
                        raise result
                    if on_error == "omit":
                        continue
                yield path, result
        finally:
            loop.call_soon_threadsafe(batch.stop)

    async def _info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        route = self._route(path, require_key=False)
        fs, ipath = await self._inner(route)
        if (route.location.key and route.backend in ("s3", "gcs", "azure")
                and set(kwargs) <= {"refresh"}):
            # An object: one ranged GET of its tail says what a HEAD would, and its bytes
            # serve the footer read that usually follows. Not an object: a prefix, as the
            # backend lists it.
            with contextlib.suppress(FileNotFoundError):
                raw = await tail_info(fs, route, self.config,
                                      refresh=bool(kwargs.get("refresh")))
                out = _info.normalise(raw, route.backend)
                out["name"] = self._spelled(route.location, self._relative(path))
                return out
        info = await _read.guarded(route, fs._info(ipath, **kwargs))
        return self._outer(route, info, self._relative(path))

    async def _modified(self, path: str) -> Any:
        info = await self._info(path)
        when = _info.modified(info)
        if when is None:
            raise OSError(f"{info['name']}: the storage gives no modification time")
        return when

    def modified(self, path: str) -> Any:
        """The object's last-modified time, a timezone-aware ``datetime`` in UTC."""
        return sync(self.loop, self._modified, path)

    async def _ls(self, path: str, detail: bool = True,
                  **kwargs: Any) -> list[dict[str, Any]] | list[str]:
        route = self._route(path, require_key=False)
        fs, ipath = await self._inner(route)
        entries: list[dict[str, Any]] = await _read.guarded(
            route, fs._ls(ipath, detail=True, **kwargs), "list")
        relative = self._relative(path)
        entries = [self._outer(route, e, relative) for e in entries]
        return entries if detail else [e["name"] for e in entries]

    async def _find(self, path: str, maxdepth: int | None = None, withdirs: bool = False,
                    detail: bool = False,
                    **kwargs: Any) -> dict[str, dict[str, Any]] | list[str]:
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        route = self._route(path, require_key=False)
        fs, ipath = await self._inner(route)
        found = await _read.guarded(
            route, fs._find(ipath, maxdepth=maxdepth, withdirs=withdirs, detail=True, **kwargs),
            "list")
        if isinstance(found, list):  # adlfs answers [path] for a file, whatever detail says
            found = {n: await _read.guarded(route, fs._info(n), "list") for n in found}
        if maxdepth is not None:  # adlfs does not apply maxdepth; s3fs and gcsfs do
            found = {n: i for n, i in found.items() if _listing.below(ipath, n) <= maxdepth}
        return self._named(route, found, detail, self._relative(path))

    async def _glob(self, path: str, maxdepth: int | None = None,
                    **kwargs: Any) -> dict[str, dict[str, Any]] | list[str]:
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        detail = kwargs.pop("detail", False)
        route = self._route(path, require_key=False)
        fs, ipath = await self._inner(route)
        found = await _read.guarded(
            route, fs._glob(ipath, maxdepth=maxdepth, detail=True, **kwargs), "list")
        root, depth = _listing.glob_limit(ipath, maxdepth)
        if depth is not None:  # adlfs does not apply maxdepth; s3fs and gcsfs do
            found = {n: i for n, i in found.items() if _listing.below(root, n) <= depth}
        return self._named(route, found, detail, self._relative(path))

    async def _expand_path(self, path: str | list[str], recursive: bool = False,
                           maxdepth: int | None = None,
                           assume_literal: bool = False) -> list[str]:
        # As fsspec's AsyncFileSystem._expand_path (a recursive glob expands the directories
        # it matched, depth by depth; a recursive directory includes itself), except: a query
        # string in a plain https URL is not a glob, plain http(s) has no listing, and inputs
        # that are not globs keep their exact spelling (cat() returns a dict keyed by them).
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        paths = [path] if isinstance(path, str) else list(path)
        out: set[str] = set()
        for p in paths:
            p = type(self)._strip_protocol(p)
            loc = self._location(p, require_key=False)
            listable = loc.backend != "http"
            if not assume_literal and listable and _listing.is_glob(loc.key):
                matches = set(await self._glob(p, maxdepth=maxdepth))
                out |= matches
                if recursive and matches and (maxdepth is None or maxdepth > 1):
                    out |= set(await self._expand_path(
                        sorted(matches), recursive=True, assume_literal=True,
                        maxdepth=None if maxdepth is None else maxdepth - 1))
                continue
            if recursive and listable:
                found = set(await self._find(p, maxdepth=maxdepth, withdirs=True))
                # The directory itself, named as _find names things (an az:// input comes
                # back in the https form), so fsspec's get() finds one common prefix.
                name = self._spelled(loc, self._relative(p))
                if not found & {name, name.rstrip("/")} and await self._exists(p):
                    found.add(name.rstrip("/"))
                out |= found
            else:
                out.add(p)
        if not out:
            raise not_found(str(path), "nothing matched")
        return sorted(out)

    async def _get_file(self, rpath: str, lpath: str | os.PathLike[str] | IO[bytes],
                        chunk_size: int = GET_CHUNK, callback: Callback = DEFAULT_CALLBACK,
                        **kwargs: Any) -> None:
        """Download ``rpath`` through attachfs's read path, ``chunk_size`` bytes per request:
        the first request learns the size and version, every later one is pinned to that
        version (``IntegrityError`` if the object was replaced), each retried within the
        config's limits. No metadata request. ``callback`` (fsspec's ``Callback``) is told the
        size, then every part written. A failed download leaves no file behind."""
        if kwargs:
            raise _options.unknown_argument(kwargs, ("chunk_size", "callback"), "get_file")
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        local = None if isfilelike(lpath) else os.fspath(cast("str | os.PathLike[str]", lpath))
        if local is not None and os.path.isdir(local):
            return  # a directory of the listing, already made for the files below it (as s3fs)
        route = self._route(rpath)
        fs, _ = await self._inner(route)
        if local is None:
            await self._download(fs, route, lpath, chunk_size, callback)
            return
        # Written beside the target and renamed once whole: a failed download leaves neither
        # a truncated file nor a damaged earlier copy.
        # (Not mkstemp: the copy gets the mode any new file gets, umask applied.)
        partial = f"{local}.{secrets.token_hex(4)}.part"
        try:
            with open(partial, "xb") as out:  # noqa: ASYNC230 -- local disk, as fsspec's get
                await self._download(fs, route, out, chunk_size, callback)
            os.replace(partial, local)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise

    async def _download(self, fs: AsyncFileSystem, route: _rules.Route, out: Any,
                        chunk_size: int, callback: Callback) -> None:
        if route.backend == "http":  # the guarded http reader: pinned part by part too
            await _read.guarded(route, fs._get_file(route.location.url, out,
                                                    chunk_size=chunk_size, callback=callback))
            return
        await _read.guarded(route, self._parts(fs, route, out, chunk_size, callback))

    async def _parts(self, fs: AsyncFileSystem, route: _rules.Route, out: Any,
                     chunk_size: int, callback: Callback) -> None:
        async def read(start: int, end: int | None, version: str | None) -> Part:
            return await _read.read(fs, route, start, end, version=version, config=self.config)

        await write_parts(read, out, chunk_size, callback)

    def _open(self, path: str, mode: str = "rb",
              block_size: int | Literal["default"] | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> AttachFile:
        if mode != "rb":
            raise ReadOnlyError(f"{_READ_ONLY} (got mode {mode!r} for {path})")
        unknown = {k: v for k, v in kwargs.items() if k not in _OPEN_KWARGS}
        if unknown:
            raise _options.unknown_argument(unknown, ("block_size", "cache_options", *_OPEN_KWARGS), "open")
        route = self._route(path)
        cache_type = kwargs.pop("cache_type", DEFAULT_CACHE)
        key = object_key(route, self.config)
        recent = _blocks.shared().recent(key)
        known = None if recent is None else (recent.version, recent.size)
        try:
            loop = self.loop  # first: a forked child gets its own loop and backends here
            fs = self._backends.built(route)
            if fs is None or not _credentials.ready_now(self.config, route):
                fs, _ = sync(loop, self._inner, route)  # build it, or refresh on the loop
            return AttachFile(self, path, route, fs, block_size=block_size,
                              cache_type=cache_type, cache_options=cache_options, known=known,
                              key=key, **kwargs)
        except Exception as err:
            _read.reraise(route, err)

    def invalidate_cache(self, path: str | None = None) -> None:
        self._backends.invalidate_caches()

    # -- writes are refused, by name --------------------------------------------------------

    async def _pipe_file(self, path: str, value: bytes, **kwargs: Any) -> NoReturn:
        raise ReadOnlyError(f"{_READ_ONLY} (pipe to {path})")

    async def _put_file(self, lpath: str, rpath: str, **kwargs: Any) -> NoReturn:
        raise ReadOnlyError(f"{_READ_ONLY} (put to {rpath})")

    async def _rm_file(self, path: str, **kwargs: Any) -> NoReturn:
        raise ReadOnlyError(f"{_READ_ONLY} (rm {path})")

    async def _rm(self, path: str | list[str], recursive: bool = False,
                  **kwargs: Any) -> NoReturn:
        raise ReadOnlyError(f"{_READ_ONLY} (rm {path})")

    async def _cp_file(self, path1: str, path2: str, **kwargs: Any) -> NoReturn:
        raise ReadOnlyError(f"{_READ_ONLY} (cp to {path2})")

    async def _mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> NoReturn:
        raise ReadOnlyError(f"{_READ_ONLY} (mkdir {path})")

    async def _makedirs(self, path: str, exist_ok: bool = False) -> NoReturn:
        raise ReadOnlyError(f"{_READ_ONLY} (makedirs {path})")


def _rebuild(cls: type[AttachFileSystem], recipe: dict[str, Any]) -> AttachFileSystem:
    return cls(**recipe)


def _default_batch_size(nofiles: bool = False) -> int:
    from fsspec.asyn import _get_batch_size

    size: int = _get_batch_size(nofiles=nofiles)
    return size


class _Inners:
    """The inner filesystem of each backend and identity of one batch, its credentials made
    ready once (``AttachFileSystem._inner``) rather than once per object."""

    def __init__(self, owner: AttachFileSystem):
        self.owner = owner
        self.ready: dict[Hashable, AsyncFileSystem] = {}

    async def get(self, route: _rules.Route) -> AsyncFileSystem:
        key = (Backends.cache_key(route), route.proxy)
        fs = self.ready.get(key)
        if fs is None:
            fs, _ = await self.owner._inner(route)
            self.ready[key] = fs
        return fs


def _open_cache(cache: str | os.PathLike[str] | dict[str, Any] | DiskCache | None,
                config: Config | None) -> DiskCache | None:
    """The opt-in disk cache: the ``cache=`` argument (a directory, a mapping of DiskCache's
    settings, or a DiskCache), else the config's ``[cache]`` section, else none."""
    if isinstance(cache, DiskCache):
        return cache
    if isinstance(cache, dict):
        settings = dict(cache)
        allowed = ("directory", "max_bytes", "ttl_seconds", "max_entry_bytes")
        unknown = sorted(set(settings) - set(allowed))
        if unknown or "directory" not in settings:
            raise ConfigError(f"cache= as a mapping takes {', '.join(allowed)} (directory "
                              f"required); got {sorted(settings)}")
        settings.setdefault("max_bytes", CACHE_MAX_BYTES)
        directory = settings.pop("directory")
        return DiskCache(directory, **settings)
    if cache is not None:
        return DiskCache(cache, max_bytes=CACHE_MAX_BYTES)
    if config is not None and config.cache is not None:
        return DiskCache.from_config(config.cache)
    return None
