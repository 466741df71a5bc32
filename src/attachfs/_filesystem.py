"""AttachFileSystem: the ``attach`` protocol.

Paths are full attachment URIs (``s3://b/k``, ``gs://b/k``, an Azure blob URL, ``https://...``).
Each call parses its URI (``_uri``), asks ``_rules`` for the Route (tenant + config decide the
identity), and delegates to the inner filesystem that ``_backends`` keeps for that Route. Names the
inner filesystems return are mapped back to full URIs, so ``ls``/``find``/``glob`` results can be
passed straight back to ``open``. Delegation is explicit, method by method (as fsspec's
``dirfs.py`` does), so every entry point can be found by name.

Chaining: ``fsspec.open("attach::s3://b/k")`` constructs us with ``target_protocol="s3"`` and
hands us the inner filesystem's stripped path (``"b/k"``); ``_qualify`` puts the scheme back.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Hashable, Iterable, Iterator
from typing import IO, Any, Literal, NoReturn, overload

from fsspec.asyn import AsyncFileSystem, get_loop, sync
from fsspec.implementations.chained import ChainedFileSystem
from fsspec.utils import stringify_path

from . import _credentials, _read, _rules
from ._backends import Backends, inner_path, outer_location
from ._cache import DiskCache
from ._config import Config, resolve_config
from ._errors import ReadOnlyError, not_found
from ._file import AttachFile
from ._limits import CACHE_MAX_BYTES
from ._read.batch import Batch, run_all
from ._read.cached import read_through
from ._read.part import Part
from ._uri import Location, parse

__all__ = ["AttachFileSystem"]

_GLOB_CHARS = ("*", "?", "[")

_READ_ONLY = (
    "attachfs is read-only for now: open attachments with mode 'rb' (or 'r'); "
    "write with the cloud's own client"
)


class AttachFileSystem(AsyncFileSystem, ChainedFileSystem):
    """Read attachments from S3, GCS, Azure Blob and http(s) with per-tenant credentials."""

    protocol = ("attach",)
    root_marker = ""
    async_impl = True

    # Set by fsspec's AsyncFileSystem.__init__ (None: an asynchronous instance); ``loop`` sets
    # them again in a forked child.
    _loop: asyncio.AbstractEventLoop | None
    _pid: int

    def __init__(
        self,
        *,
        tenant: str | None = None,
        config: str | os.PathLike[str] | dict[str, Any] | Config | None = None,
        target_protocol: str | None = None,
        target_options: dict[str, Any] | None = None,
        fo: str | None = None,
        cache: str | os.PathLike[str] | DiskCache | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.tenant = tenant if tenant is not None else (os.environ.get("ATTACHFS_TENANT") or None)
        self.config = resolve_config(config)
        self.cache = _open_cache(cache, self.config)
        self.target_protocol = target_protocol
        self.target_options = dict(target_options or {})
        self._backends = Backends(self.config, self._loop, self.asynchronous)

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
        # A recipe, not a live session: the tenant and the config *reference* (a Config
        # pickles as its file path or its secret-free mapping); the receiving process builds
        # its own backends and credentials.
        return _rebuild, (type(self), self.tenant, self.config, self.target_protocol,
                          self.target_options, self.cache)

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
        # Unlike fsspec's default, keep a trailing "/": it is part of an object key.
        return text

    def unstrip_protocol(self, name: str) -> str:
        return name

    def _qualify(self, path: str) -> str:
        path = self._strip_protocol(path)
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
        return parse(self._qualify(path), require_key=require_key)

    def _route(self, path: str, *, require_key: bool = True) -> _rules.Route:
        return _rules.route(self.config, self.tenant, self._location(path, require_key=require_key))

    def route(self, path: str) -> _rules.Route:
        """The Route a read of ``path`` takes (no request is made)."""
        return self._route(path)

    async def _inner(self, route: _rules.Route) -> tuple[AsyncFileSystem, str]:
        """The inner filesystem for ``route`` with its credentials valid now (fetched off-loop;
        a refusal raises here, before any storage request)."""
        await _read.guarded(route, _credentials.ready(self.config, route))
        return self._backends.get(route), inner_path(route.location)

    def _outer(self, route: _rules.Route, info: dict[str, Any]) -> dict[str, Any]:
        out = dict(info)
        out["name"] = outer_location(route.location, info["name"]).uri
        return out

    def _named(self, route: _rules.Route, found: dict[str, dict[str, Any]],
               detail: bool) -> dict[str, dict[str, Any]] | list[str]:
        out: dict[str, dict[str, Any]] = {}
        for info in found.values():
            info = self._outer(route, info)
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
        info = await _read.guarded(route, fs._info(ipath, **kwargs))
        return self._outer(route, info)

    async def _ls(self, path: str, detail: bool = True,
                  **kwargs: Any) -> list[dict[str, Any]] | list[str]:
        route = self._route(path, require_key=False)
        fs, ipath = await self._inner(route)
        entries: list[dict[str, Any]] = await _read.guarded(
            route, fs._ls(ipath, detail=True, **kwargs), "list")
        entries = [self._outer(route, e) for e in entries]
        return entries if detail else [e["name"] for e in entries]

    async def _find(self, path: str, maxdepth: int | None = None, withdirs: bool = False,
                    detail: bool = False,
                    **kwargs: Any) -> dict[str, dict[str, Any]] | list[str]:
        route = self._route(path, require_key=False)
        fs, ipath = await self._inner(route)
        found = await _read.guarded(
            route, fs._find(ipath, maxdepth=maxdepth, withdirs=withdirs, detail=True, **kwargs),
            "list")
        return self._named(route, found, detail)

    async def _glob(self, path: str, maxdepth: int | None = None,
                    **kwargs: Any) -> dict[str, dict[str, Any]] | list[str]:
        detail = kwargs.pop("detail", False)
        route = self._route(path, require_key=False)
        fs, ipath = await self._inner(route)
        found = await _read.guarded(
            route, fs._glob(ipath, maxdepth=maxdepth, detail=True, **kwargs), "list")
        return self._named(route, found, detail)

    async def _expand_path(self, path: str | list[str], recursive: bool = False,
                           maxdepth: int | None = None) -> list[str]:
        # fsspec's version globs any path with * ? or [ in it; a query string in a plain
        # https URL is not a glob, and inputs that are not globs keep their exact spelling so
        # that cat() returns a dict keyed by what the caller passed.
        paths = [path] if isinstance(path, str) else list(path)
        out: list[str] = []
        for p in paths:
            p = self._strip_protocol(p)
            loc = self._location(p, require_key=False)
            if loc.backend != "http" and any(c in loc.key for c in _GLOB_CHARS):
                out.extend(await self._glob(p, maxdepth=maxdepth))
            elif recursive and loc.backend != "http":
                found = await self._find(p, maxdepth=maxdepth, withdirs=True)
                out.extend(found or [p])
            else:
                out.append(p)
        if not out:
            raise not_found(str(path), "nothing matched")
        return list(dict.fromkeys(out))

    async def _get_file(self, rpath: str, lpath: str | os.PathLike[str] | IO[bytes],
                        **kwargs: Any) -> Any:
        route = self._route(rpath)
        fs, ipath = await self._inner(route)
        return await _read.guarded(route, fs._get_file(ipath, lpath, **kwargs))

    def _open(self, path: str, mode: str = "rb",
              block_size: int | Literal["default"] | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> AttachFile:
        if mode != "rb":
            raise ReadOnlyError(f"{_READ_ONLY} (got mode {mode!r} for {path})")
        route = self._route(path)
        try:
            fs, _ = sync(self.loop, self._inner, route)
            return AttachFile(self, path, route, fs, block_size=block_size,
                              cache_options=cache_options, **kwargs)
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


def _rebuild(cls: type[AttachFileSystem], tenant: str | None, config: Config | None,
             target_protocol: str | None, target_options: dict[str, Any],
             cache: DiskCache | None = None) -> AttachFileSystem:
    return cls(tenant=tenant, config=config, target_protocol=target_protocol,
               target_options=target_options, cache=cache)


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


def _open_cache(cache: str | os.PathLike[str] | DiskCache | None,
                config: Config | None) -> DiskCache | None:
    """The opt-in disk cache: the ``cache=`` argument (a directory or a DiskCache), else the
    config's ``[cache]`` section, else none."""
    if isinstance(cache, DiskCache):
        return cache
    if cache is not None:
        return DiskCache(cache, max_bytes=CACHE_MAX_BYTES)
    if config is not None and config.cache is not None:
        return DiskCache.from_config(config.cache)
    return None
