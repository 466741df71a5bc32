"""The read path: one ranged GET per call, for each backend, returning the bytes together with
what the response says about the object (its size and version).

A read never starts with a HEAD: the first ranged GET learns the size (Content-Range) and the
version (S3/Azure ETag, GCS generation); later ranges carry that version as a precondition, so
an object replaced mid-read fails with ``IntegrityError`` instead of mixing bytes.

The requests go through the clients the inner filesystems already hold (aiobotocore for S3,
gcsfs's authorised session for GCS, the Azure SDK client adlfs built, fsspec's aiohttp session
for http), so authentication is the credential layer's, decided by the Route. Object keys are
passed to those clients as whole keys, never as paths for them to re-parse: a key may contain
``?``, ``#``, ``%``, ``//`` or end in ``/``.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aiohttp
import yarl

from . import pool, retry, sigv4
from .config import Config
from .errors import AccessDenied, AccessRefused, IntegrityError, ReadOnlyError, not_found
from .rules import Route, denied_hint

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Part:
    """Bytes of one object, as of ``version``; ``size`` is the whole object's size."""

    data: bytes
    start: int
    size: int
    version: str | None
    not_modified: bool = False  # a 304 to ``if_none_match``: the cached bytes are current


def _range_header(start: int, end: int | None) -> str:
    if start < 0:  # a suffix: the last -start bytes
        return f"bytes={start}"
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


def _size_from(content_range: str | None, start: int, length: int) -> int:
    if content_range:
        m = _CONTENT_RANGE.match(content_range)
        if m and m.group(3) != "*":
            return int(m.group(3))
    return start + length


async def read(fs, route: Route, start: int = 0, end: int | None = None, *,
               version: str | None = None, config: Config | None = None,
               if_none_match: str | None = None) -> Part:
    """Bytes ``[start, end)`` of the object ``route`` names (``end=None``: to its end).

    ``start < 0`` asks for the last ``-start`` bytes (a suffix range; not on Azure). With
    ``version``, the object must still be that version, else ``IntegrityError``. With
    ``if_none_match`` (a cached version), an unchanged object answers ``not_modified`` and no
    bytes (plain http reads ignore it and fetch again).
    """
    if end is not None and end <= start:
        return Part(b"", start, -1, version)
    if route.backend == "http":
        return await _http(fs, route, start, end, version)
    reader = _READERS[route.backend]
    try:
        return await reader(fs, route, start, end, version, config, if_none_match)
    except _Unsatisfiable:
        return _unsatisfiable(start, version)


def _ranged(start: int, end: int | None) -> bool:
    return start != 0 or end is not None


def _unsatisfiable(start: int, version: str | None) -> Part:
    # 416: the range starts at or past the end. From offset 0 that means an empty object.
    return Part(b"", start, 0 if start <= 0 else -1, version)


def _check_version(route: Route, pinned: str | None, answered: str | None) -> None:
    """The precondition is the server's to enforce; this checks its answer too, so a server
    that ignores it (some emulators and S3-compatible stores do) cannot mix versions."""
    if pinned and answered and answered != pinned:
        raise _changed(route, pinned)


def _changed(route: Route, version: str | None) -> IntegrityError:
    return IntegrityError(
        f"{route.uri} changed while it was being read (it is no longer version {version}); "
        "read it again from the start", uri=route.uri)


# -- S3: SigV4 over the shared pool ---------------------------------------------------------

#: Bucket -> region learned from S3's redirects (x-amz-bucket-region), per process.
_bucket_regions: dict[str, str] = {}


def _s3_request(config: Config | None, loc) -> tuple[str, str, str, str]:
    """(url base, Host header, encoded path, signing region) for the object ``loc``."""
    aws_cfg = config.platform.aws if config else None
    region = (_bucket_regions.get(loc.bucket) or loc.region
              or (aws_cfg.region if aws_cfg else None) or "us-east-1")
    key = sigv4.encode_key(loc.key)
    if aws_cfg is not None and aws_cfg.endpoint_url:
        parts = urlsplit(aws_cfg.endpoint_url)
        prefix = parts.path.rstrip("/")
        return (f"{parts.scheme}://{parts.netloc}", parts.netloc,
                f"{prefix}/{loc.bucket}/{key}", region)
    if "." in loc.bucket:  # a dotted bucket breaks the wildcard certificate: path style
        host = f"s3.{region}.amazonaws.com"
        return f"https://{host}", host, f"/{loc.bucket}/{key}", region
    host = f"{loc.bucket}.s3.{region}.amazonaws.com"
    return f"https://{host}", host, f"/{key}", region


async def _s3(fs, route, start, end, version, config, if_none_match=None) -> Part:
    from .credentials import aws

    loc = route.location
    for _attempt in range(2):  # a second time only after S3 named the bucket's region
        base, host, path, region = _s3_request(config, loc)
        query = {"versionId": loc.version} if loc.version else {}
        headers = {}
        if _ranged(start, end):
            headers["Range"] = _range_header(start, end)
        if version:
            headers["If-Match"] = version
        if if_none_match:
            headers["If-None-Match"] = if_none_match
        if route.grant.expected_bucket_owner:
            headers["x-amz-expected-bucket-owner"] = route.grant.expected_bucket_owner
        creds = await aws.frozen(config, route.grant)
        if creds is not None:
            sigv4.sign("GET", host, path, query, headers, access_key=creds.access_key,
                       secret_key=creds.secret_key, token=creds.token, region=region)
        url = yarl.URL(base + path + ("?" + sigv4.canonical_query(query) if query else ""),
                       encoded=True)
        status, answer, body = await _exchange(route, config, url, headers, redirects=False)
        if status in (200, 206, 304):
            return _answered(route, start, version, if_none_match, status, answer, body, "ETag")
        bucket_region = answer.get("x-amz-bucket-region")
        if bucket_region and bucket_region != region and status in (301, 307, 400):
            _bucket_regions[loc.bucket] = bucket_region
            continue
        _raise_for(route, status, _xml_code(body), version, answer)
    raise OSError(f"S3 kept redirecting {route.uri} between regions")  # pragma: no cover


# -- GCS: the JSON API's media download, bearer token over the shared pool ------------------

async def _gcs(fs, route, start, end, version, config, if_none_match=None) -> Part:
    from .credentials import gcp

    loc = route.location
    gcp_cfg = config.platform.gcp if config else None
    base = (gcp_cfg.endpoint_url if gcp_cfg and gcp_cfg.endpoint_url
            else "https://storage.googleapis.com").rstrip("/")
    query = "alt=media"
    if version or loc.version:
        # The generation seen at open pins every later range to that exact object.
        query += f"&ifGenerationMatch={version or loc.version}"
    if if_none_match:
        query += f"&ifGenerationNotMatch={if_none_match}"
    url = yarl.URL(f"{base}/download/storage/v1/b/{loc.bucket}/o/{quote(loc.key, safe='')}"
                   f"?{query}", encoded=True)
    headers = {"Range": _range_header(start, end)} if _ranged(start, end) else {}
    lease = gcp.token_lease(config, route.grant)
    if lease is not None:
        headers["Authorization"] = f"Bearer {await lease.get()}"
    status, answer, body = await _exchange(route, config, url, headers)
    if status in (200, 206, 304):
        return _answered(route, start, version, if_none_match, status, answer, body,
                         "x-goog-generation")
    _raise_for(route, status, _xml_code(body), version, answer)


def is_gcs_forbidden(route: Route, err: BaseException) -> bool:
    """gcsfs reports a 403 as a plain ``OSError("Forbidden: ...")``, not a PermissionError."""
    return (route.backend == "gcs" and type(err) is OSError
            and str(err).startswith("Forbidden"))


# -- Azure: Get Blob with a bearer token (or none) over the shared pool ----------------------

AZURE_API_VERSION = "2021-08-06"


async def _azure(fs, route, start, end, version, config, if_none_match=None) -> Part:
    if route.grant.kind == "ambient":
        # Shared keys and adlfs's own default chain: the Azure SDK signs those requests.
        return await _azure_sdk(fs, route, start, end, version)
    from .credentials import azure

    loc = route.location
    az_cfg = config.platform.azure if config else None
    account = loc.account  # rules.route() filled in platform.azure.account where it applies
    base = (az_cfg.endpoint_url.format(account=account) if az_cfg and az_cfg.endpoint_url
            else f"https://{account}.blob.core.windows.net").rstrip("/")
    url = yarl.URL(f"{base}/{loc.bucket}/{quote(loc.key, safe='/~')}", encoded=True)
    headers = {"x-ms-version": AZURE_API_VERSION}
    if _ranged(start, end):
        headers["x-ms-range"] = _range_header(start, end)
    if version:
        headers["If-Match"] = version
    if if_none_match:
        headers["If-None-Match"] = if_none_match
    if route.grant.kind == "azure-app":
        token = await azure.token_lease(config, route.grant).get()
        headers["Authorization"] = f"Bearer {token.token}"
    status, answer, body = await _exchange(route, config, url, headers)
    if status in (200, 206, 304):
        return _answered(route, start, version, if_none_match, status, answer, body, "ETag")
    _raise_for(route, status, answer.get("x-ms-error-code"), version, answer)


async def _azure_sdk(fs, route, start, end, version) -> Part:
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError, ResourceModifiedError

    loc = route.location
    blob = fs.service_client.get_blob_client(loc.bucket, loc.key)
    kwargs = {}
    if _ranged(start, end):
        kwargs["offset"] = start
        kwargs["length"] = None if end is None else end - start
    if version:
        kwargs.update(etag=version, match_condition=MatchConditions.IfNotModified)
    try:
        async with blob:
            stream = await blob.download_blob(**kwargs)
            data = await stream.readall()
    except ResourceModifiedError as err:
        raise _changed(route, version) from err
    except HttpResponseError as err:
        _raise_for(route, err.status_code or 0, getattr(err, "error_code", None), version)
    # properties.size is the length of the range downloaded; the blob's size is in Content-Range.
    size = _size_from(stream.properties.content_range, start, len(data))
    return Part(data, start, size, stream.properties.etag)


# -- one exchange over the pool, and what its answer means, the same way for every cloud ------

async def _exchange(route: Route, config: Config | None, url, headers: dict, *,
                    redirects: bool = True):
    """One GET over the shared pool: (status, headers, body). A server that stops sending
    (for the read timeout) or sends slower than the minimum rate ends in ``ReadTimeout``
    naming the phase, never a hung worker (netguard.Limits: the same limits as plain http).
    S3 is never sent through the egress proxy; GCS and Azure go through ``route.proxy``."""
    from .netguard import Limits, ReadTimeout

    limits = Limits.from_config(config)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=limits.connect_timeout,
                                    sock_read=limits.read_timeout)
    phase = "response"
    try:
        async with pool.session().get(url, headers=headers, proxy=route.proxy,
                                      allow_redirects=redirects, timeout=timeout) as resp:
            phase = "body"
            chunks = []
            window_start, window_bytes = time.monotonic(), 0
            while chunk := await resp.content.readany():
                chunks.append(chunk)
                window_bytes += len(chunk)
                now = time.monotonic()
                if now - window_start >= limits.read_timeout:
                    if window_bytes < limits.min_rate * (now - window_start):
                        raise ReadTimeout(route.uri, (
                            f"the body arrived at {window_bytes / (now - window_start):.0f} "
                            f"B/s, under the minimum of {limits.min_rate:g} B/s (slow body)"),
                            phase="body", seconds=limits.read_timeout)
                    window_start, window_bytes = now, 0
            return resp.status, resp.headers, b"".join(chunks)
    except asyncio.TimeoutError as err:  # aiohttp's socket read/connect timeouts
        raise ReadTimeout(route.uri, f"no byte for {limits.read_timeout:g} s (stalled "
                          f"{phase})", phase=phase, seconds=limits.read_timeout) from err


def _answered(route: Route, start: int, version: str | None, if_none_match: str | None,
              status: int, answer, body: bytes, version_header: str) -> Part:
    if status == 304:
        return Part(b"", start, -1, if_none_match, not_modified=True)
    _check_version(route, version, answer.get(version_header))
    retry.check_body(status, answer, body)
    size = _size_from(answer.get("Content-Range"), start, len(body))
    return Part(body, start, size, answer.get(version_header))


# -- responses to errors, the same way for every cloud ---------------------------------------

_XML_CODE = re.compile(rb"<Code>([^<]+)</Code>")


def _xml_code(body: bytes) -> str | None:
    m = _XML_CODE.search(body[:4096])
    return m.group(1).decode() if m else None


def _raise_for(route: Route, status: int, code: str | None, version: str | None, headers=None):
    """Raise what a failed GET means: ``retry.Retry`` when asking again may help (5xx, 429,
    SlowDown), ``_Unsatisfiable`` for a 416 (an empty range, not an error)."""
    detail = f"HTTP {status}" + (f" {code}" if code else "")
    if status == 404:
        raise not_found(route.uri, detail)
    if status == 412:
        raise _changed(route, version)
    if status == 416:
        raise _Unsatisfiable()
    if status in (401, 403) or (route.backend == "azure" and status == 409):
        raise PermissionError(f"{route.backend} refused to read {route.uri} ({detail})")
    retry.raise_if_transient(status, headers, code)
    raise OSError(f"{route.backend} failed to read {route.uri} ({detail})")


class _Unsatisfiable(Exception):
    """A 416: the range starts at or past the end of the object."""


async def _http(fs, route, start, end, version) -> Part:
    # ``fs`` is the guarded HTTPFileSystem backends.py builds: its session checks every
    # connection, and ``fs.guard`` carries the redirect rules and limits (netguard.py).
    return await http_part(fs.guard, await fs.set_session(), route.location.url, start, end,
                           version)


async def http_part(guard, session, url: str, start: int, end: int | None,
                    version: str | None) -> Part:
    """Bytes ``[start, end)`` of a plain http(s) ``url`` through ``guard``, retried."""
    return await _HttpRange(guard, session, url, start, end, version).read()


class _HttpRange:
    """One read of bytes ``[start, end)`` of a plain http(s) URL, whatever the network does
    (``start < 0``: the last ``-start`` bytes, a suffix range).

    Each attempt asks for what is still missing. A connection that breaks mid-body (or a body
    shorter than its ``Content-Length``/``Content-Range``) is resumed with a ``Range`` from the
    first missing byte and ``If-Match`` carrying the ETag of the first answer, so the bytes
    returned are those of one version of the object; without a strong ETag to pin, the read
    starts over instead. 5xx, 429 (``Retry-After`` honoured), 408 and a 2xx carrying an XML
    error document are retried; 400/401/403/404/412 never are.
    """

    def __init__(self, guard, session, url: str, start: int, end: int | None,
                 version: str | None):
        import time

        from .netguard import redact

        self.guard, self.session = guard, session
        # Messages name the URL without its query: a signed URL's query is its credential.
        self.route = _Named(redact(url))
        self.start, self.end = start, end
        # Where ``buf`` begins in the object: a suffix learns it from the first answer.
        self.origin: int | None = start if start >= 0 else None
        self.version = version      # the caller's pin (a later block of an open file)
        self.pinned = version       # what resumes are pinned to
        self.etag: str | None = None
        self.size: int | None = None
        self.buf = bytearray()
        self.empty = False          # 416: nothing at or past ``start``
        # encoded=True: send the URL exactly as given. Re-quoting it (aiohttp's default)
        # changes what a signed URL signed, and turns a key's %3D into "=".
        self.url = yarl.URL(url, encoded=True)
        self.deadline = time.monotonic() + guard.limits.total_timeout

    async def read(self) -> Part:
        from . import retry

        limits = self.guard.limits
        await retry.run(self._attempt, what=f"reading {self.route.uri}",
                        max_attempts=limits.max_attempts, base=limits.backoff_base,
                        cap=limits.backoff_cap, deadline=self.deadline,
                        classify=_http_transient, give_up=_http_give_up)
        if self.empty:
            return _unsatisfiable(self.start, self.version)
        size = self.size if self.size is not None else (self.origin or 0) + len(self.buf)
        return Part(bytes(self.buf), self.start, size, self.etag)

    def _missing(self) -> int | None:
        """Bytes still to read (None: up to the end of the object, size not known yet)."""
        if self.origin is None:
            return -self.start if self.size is None else min(-self.start, self.size)
        stop = self.end if self.size is None else min(self.end or self.size, self.size)
        return None if stop is None else max(stop - self.origin - len(self.buf), 0)

    async def _attempt(self, n: int) -> None:
        import aiohttp

        from .netguard import ReadTimeout, TooLarge
        from .retry import RETRYABLE_CODES, Retry, error_document_code, retry_after

        missing = self._missing()
        if n > 1 and missing == 0:
            return
        # A suffix asks for the tail until an answer says where the tail starts; then, as any
        # resume, for the first missing byte.
        pos = self.start if self.origin is None else self.origin + len(self.buf)
        headers = {"Accept-Encoding": "identity"}  # byte offsets of the object as stored
        if pos != 0 or self.end is not None:
            headers["Range"] = _range_header(pos, self.end)
        if self.pinned:
            headers["If-Match"] = self.pinned
        where = self.route.uri
        async with self.guard.open(self.session, self.url, headers=headers,
                                   deadline=self.deadline) as reply:
            resp = reply.resp
            status = resp.status
            if status == 416:
                self.empty = not self.buf
                return
            if status not in (200, 206):
                self._refuse_status(status, resp, where)
            etag = resp.headers.get("ETag")
            if self.pinned and etag and etag != self.pinned:
                raise _changed(self.route, self.pinned)  # the server ignored If-Match
            self.etag = self.etag or etag
            if not self.pinned and etag and not etag.startswith("W/"):
                self.pinned = etag
            skip, expected = self._framing(resp, status, pos, where)
            # A suffix still without a start (a 200 of unannounced length): read it all, keep
            # the tail.
            limit = None if self.origin is None else self._missing()
            cap = self.guard.limits.max_object_bytes
            if self.size is not None and self.size > cap:
                raise TooLarge(f"{where} is {self.size} bytes, over the {cap}-byte cap for one "
                               "object", url=where, size=self.size, limit=cap)
            mark = len(self.buf)
            try:
                received = await self.guard.read_body(
                    reply, self.buf, deadline=self.deadline, skip=skip,
                    limit=cap + 1 - pos if limit is None else limit)
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError,
                    ConnectionError, ReadTimeout) as err:
                if isinstance(err, ReadTimeout) and err.phase == "deadline":
                    raise
                got = len(self.buf) - mark
                self._keep_or_restart()
                if isinstance(err, ReadTimeout):
                    raise Retry(f"{err.detail}, after {got} bytes of the body") from err
                raise Retry(f"the connection broke after {got} bytes of the body "
                            f"({_describe(err)})") from err
            if (self.origin or 0) + len(self.buf) > cap:
                raise TooLarge(f"{where} is over the {cap}-byte cap for one object",
                               url=where, limit=cap)
            got = len(self.buf) - mark
            code = error_document_code(bytes(self.buf[mark:]), resp.headers.get("Content-Type"))
            if code in RETRYABLE_CODES:
                del self.buf[mark:]
                raise Retry(f"HTTP {status} carrying an error document ({code})",
                            status=status, retry_after=retry_after(
                                resp.headers.get("Retry-After")))
            finished = limit is not None and got >= limit
            if status == 200 and self.size is None and not finished:
                self.size = received  # the whole object, read to its end
                if self.origin is None:  # a suffix of an object of unannounced length
                    self.origin = max(received + self.start, 0)
                    del self.buf[:len(self.buf) - (received - self.origin)]
            if not finished and expected is not None and received < expected:
                self._keep_or_restart()
                raise Retry(f"short body: {received} of the {expected} bytes announced")

    def _refuse_status(self, status: int, resp, where: str):
        from .retry import Retry, retry_after, status_retryable

        if status == 404:
            raise not_found(self.route.uri)
        if status == 412:
            if self.pinned:
                raise _changed(self.route, self.pinned)
            raise OSError(f"HTTP 412 Precondition Failed for {where}")
        if status in (401, 403):
            raise PermissionError(f"HTTP {status} for {where}")
        if status_retryable(status):
            after = retry_after(resp.headers.get("Retry-After"))
            raise Retry(f"HTTP {status} {resp.reason or ''}".rstrip(), status=status,
                        retry_after=after)
        raise OSError(f"HTTP {status} {resp.reason or ''} for {where} (not retried)".replace(
            "  ", " "))

    def _framing(self, resp, status: int, pos: int, where: str) -> tuple[int, int | None]:
        """(bytes to skip, body bytes announced) of a 200/206; learns the object's size."""
        encoded = resp.headers.get("Content-Encoding", "identity").lower() not in ("identity", "")
        length = resp.headers.get("Content-Length")
        announced = int(length) if length and length.isdigit() and not encoded else None
        if status == 200:
            # The whole object from byte 0 (the server ignored Range, or none was sent).
            if announced is not None:
                self.size = announced
                if self.origin is None:
                    self.origin = pos = max(announced + self.start, 0)
            return max(pos, 0), announced
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
        if m and self.origin is None:
            self.origin = pos = int(m.group(1))  # where the suffix starts
        if not m or int(m.group(1)) != pos:
            raise OSError(f"{where}: asked for bytes from {pos}, the server answered "
                          f"Content-Range {resp.headers.get('Content-Range')!r}")
        if m.group(3) != "*":
            self.size = int(m.group(3))
        # The range is what was asked for: a Content-Length that says less does not excuse a
        # short body.
        return 0, int(m.group(2)) - pos + 1

    def _keep_or_restart(self) -> None:
        # Resuming is only safe pinned to a version; otherwise the next attempt starts over.
        if not self.pinned:
            self.buf.clear()


class _Named:
    """What ``_changed`` needs of a Route, for a read that has only a URL."""

    def __init__(self, uri: str):
        self.uri = uri


def _describe(err: BaseException) -> str:
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _http_transient(err: BaseException):
    """Failures before a response that another attempt may cure."""
    import aiohttp

    from .netguard import ReadTimeout
    from .retry import Retry

    if isinstance(err, ReadTimeout):
        return None if err.phase == "deadline" else Retry(err.detail)
    if isinstance(err, aiohttp.ClientConnectorDNSError):
        return None  # a name that does not resolve will not resolve in 200 ms either
    if isinstance(err, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                        ConnectionError)):
        return Retry(_describe(err))
    return None


def _http_give_up(what: str, attempts: int, failure, reason: str) -> BaseException:
    from .netguard import ReadTimeout
    from .retry import GaveUp

    plural = "attempt" if attempts == 1 else "attempts"
    cause = failure.__cause__
    if isinstance(cause, ReadTimeout):
        # Still a timeout to the caller, saying it was retried.
        return ReadTimeout(cause.url, f"{reason}; gave up after {attempts} {plural}",
                           phase=cause.phase, seconds=cause.seconds)
    status = f" (last status {failure.status})" if failure.status is not None else ""
    return GaveUp(f"gave up {what} after {attempts} {plural}{status}: {reason}",
                  attempts=attempts, last_status=failure.status)


# -- errors in attachfs's terms, for every operation (reads, listings, credentials) ----------

async def guarded(route: Route, awaitable):
    try:
        return await awaitable
    except Exception as err:
        reraise(route, err)


def reraise(route: Route, err: Exception):
    new = translate(route, err)
    if new is err:
        raise err
    raise new from err


def translate(route: Route, err: BaseException) -> BaseException:
    """Say what failed in attachfs's terms, naming the URI and the identity used. The URI is
    shown redacted: a signed URL's query is its credential (uri.redact)."""
    from .uri import redact

    shown = redact(route.uri)
    if isinstance(err, AccessDenied):
        if err.uri is not None:
            return err
        # Raised by the credential layer, which does not know the URI being read.
        return AccessDenied(f"{err} (reading {shown}); to fix: {err.hint}",
                            uri=shown, identity=err.identity, hint=err.hint)
    if isinstance(err, (AccessRefused, ReadOnlyError)):
        return err
    if isinstance(err, FileNotFoundError):
        return not_found(shown)
    if is_gcs_forbidden(route, err) or isinstance(err, PermissionError):
        who = route.identity or f"the {route.mode} identity"
        hint = denied_hint(route)
        return AccessDenied(f"{route.backend} refused to read {shown} as {who}; "
                            f"to fix: {hint}", uri=shown, identity=route.identity, hint=hint)
    return err


#: Each cloud reader re-run (same range, same pinned version) on a transient failure: 5xx,
#: 429 with its Retry-After, SlowDown, a broken connection, a body shorter than it says.
_READERS = {"s3": retry.retrying(_s3), "gcs": retry.retrying(_gcs),
            "azure": retry.retrying(_azure)}
