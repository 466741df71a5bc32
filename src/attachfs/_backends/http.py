"""The plain http(s) backend: fsspec's HTTPFileSystem over a guarded session.

Every connection it opens is checked by the network guard, and its ``info``, ``cat`` and ``get``
go through the guarded, retrying read path (``_read.http``); a refusal surfaces as
``AccessRefused`` (fsspec's own ``info`` turns every error into ``FileNotFoundError``).
"""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Any

import aiohttp
import yarl
from fsspec.callbacks import DEFAULT_CALLBACK, Callback
from fsspec.implementations.http import HTTPFileSystem
from fsspec.utils import isfilelike

from .._errors import not_found
from .._net.guard import Guard, refusal_in
from .._read import retry, throttle
from .._read.errors import answer_retry, transient
from .._read.http import http_part
from .._read.part import Part, write_parts
from .._redact import redact

if TYPE_CHECKING:
    from typing_extensions import TypeIs

__all__ = ["GuardedHTTPFileSystem"]


class GuardedHTTPFileSystem(HTTPFileSystem):
    """fsspec's HTTPFileSystem over a guarded session; ``info``, ``cat`` and ``get`` go
    through the guarded, retrying read path, and a refusal surfaces as ``AccessRefused``
    (fsspec's own ``info`` turns every error into ``FileNotFoundError``)."""

    def __init__(self, guard: Guard, **kwargs: Any):
        self.guard = guard
        super().__init__(get_client=guard.session, **kwargs)

    async def _info(self, url: str, **kwargs: Any) -> dict[str, Any]:
        session = await self.set_session()
        target = yarl.URL(url, encoded=True)
        limits = self.guard.limits
        deadline = retry._now() + limits.total_timeout
        where = throttle.key("http", host=f"{target.scheme}://{target.raw_host}:{target.port}")
        limiter = throttle.limiter(where, retry._now())

        async def probe(method: str, headers: dict[str, str]) -> dict[str, Any]:
            async def attempt(n: int) -> dict[str, Any]:
                return await self._probe(session, target, method, headers, deadline)

            return await retry.run(attempt, what=f"reading the metadata of {redact(url)}",
                                   limits=limits, deadline=deadline, classify=transient,
                                   throttle=limiter)

        info = await probe("HEAD", {"Accept-Encoding": "identity"})
        if info.get("size") is None:
            # No HEAD, or no length in it: one byte of the body says the size.
            info.update(await probe("GET", {"Accept-Encoding": "identity",
                                            "Range": "bytes=0-0"}))
        return {"name": url, "size": None, **info, "type": "file"}

    async def _probe(self, session: aiohttp.ClientSession, url: yarl.URL, method: str,
                     headers: dict[str, str], deadline: float) -> dict[str, Any]:
        async with self.guard.open(session, url, method=method, headers=headers,
                                   deadline=deadline) as reply:
            resp = reply.resp
            status = resp.status
            if status == 404:
                raise not_found(redact(url), "HTTP 404")
            if method == "HEAD" and status in (400, 401, 403, 405, 501):
                # A signed URL is signed for GET: its HEAD is refused (S3, GCS answer 403).
                # The one-byte GET that follows decides.
                return {}
            if status in (401, 403):
                raise PermissionError(f"HTTP {status} for {redact(url)}")
            again = answer_retry(status, None, resp.headers)
            if again is not None:
                raise again
            if status >= 400:
                raise OSError(f"HTTP {status} {resp.reason or ''} for {redact(url)}")
            info: dict[str, Any] = {"url": str(reply.url)}
            h = resp.headers
            encoded = h.get("Content-Encoding", "identity").lower() not in ("identity", "")
            content_range = h.get("Content-Range", "")
            if status == 206 and "/" in content_range:
                total = content_range.rsplit("/", 1)[1]
                info["size"] = int(total) if total.isdigit() else None
            elif "Content-Length" in h and not encoded and status == 200:
                info["size"] = int(h["Content-Length"])
            if "Content-Type" in h:
                info["mimetype"] = h["Content-Type"].partition(";")[0]
            for name in ("ETag", "Content-MD5", "Digest", "Last-Modified"):
                if h.get(name):
                    info[name] = h[name]
            return info

    async def _exists(self, path: str, **kwargs: Any) -> bool:
        try:
            await self._info(path)
            return True
        except FileNotFoundError:
            return False

    async def _cat_file(self, url: str, start: int | None = None, end: int | None = None,
                        **kwargs: Any) -> bytes:
        session = await self.set_session()
        start = start or 0
        if start < 0 or (end is not None and end < 0):
            size = (await self._info(url))["size"]
            start = max(size + start, 0) if start < 0 else start
            end = size + end if end is not None and end < 0 else end
        if end is not None and end <= start:
            return b""
        return (await http_part(self.guard, session, url, start, end, None)).data

    async def _get_file(self, rpath: str, lpath: str | os.PathLike[str] | IO[bytes],
                        chunk_size: int = 16 * 2**20, callback: Callback = DEFAULT_CALLBACK,
                        **kwargs: Any) -> None:
        # Part by part through the read path: each part retried and resumed, every part
        # pinned to the version of the first (a replaced object fails, never mixes).
        session = await self.set_session()
        out = lpath if _filelike(lpath) else open(lpath, "wb")  # noqa: ASYNC230
        async def read(start: int, end: int | None, version: str | None) -> Part:
            return await http_part(self.guard, session, rpath, start, end, version)

        try:
            await write_parts(read, out, chunk_size, callback)
        finally:
            if out is not lpath:
                out.close()

    async def _ls(self, url: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        try:
            listing: list[Any] = await super()._ls(url, detail=detail, **kwargs)
            return listing
        except Exception as err:
            refusal = refusal_in(err)
            if refusal is not None:
                raise refusal from None
            if isinstance(err, FileNotFoundError):  # fsspec's names the URL whole
                raise not_found(redact(url), "HTTP 404") from None
            raise


def _filelike(lpath: str | os.PathLike[str] | IO[bytes]) -> TypeIs[IO[bytes]]:
    """fsspec's ``isfilelike``, said to the type checker: a file object, not a path."""
    return bool(isfilelike(lpath))
