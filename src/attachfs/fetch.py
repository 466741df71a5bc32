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

import re
from dataclasses import dataclass
from urllib.parse import quote

import yarl

from .errors import IntegrityError, not_found
from .rules import Route

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Part:
    """Bytes of one object, as of ``version``; ``size`` is the whole object's size."""

    data: bytes
    start: int
    size: int
    version: str | None


def _range_header(start: int, end: int | None) -> str:
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


def _size_from(content_range: str | None, start: int, length: int) -> int:
    if content_range:
        m = _CONTENT_RANGE.match(content_range)
        if m and m.group(3) != "*":
            return int(m.group(3))
    return start + length


async def read(fs, route: Route, start: int = 0, end: int | None = None, *,
               version: str | None = None) -> Part:
    """Bytes ``[start, end)`` of the object ``route`` names (``end=None``: to its end).

    ``start``/``end`` are absolute and non-negative here (the caller resolves negatives).
    With ``version``, the object must still be that version, else ``IntegrityError``.
    """
    if end is not None and end <= start:
        return Part(b"", start, -1, version)
    reader = {"s3": _s3, "gcs": _gcs, "azure": _azure, "http": _http}[route.backend]
    return await reader(fs, route, start, end, version)


def _ranged(start: int, end: int | None) -> bool:
    return start > 0 or end is not None


def _unsatisfiable(start: int, version: str | None) -> Part:
    # 416: the range starts at or past the end. From offset 0 that means an empty object.
    return Part(b"", start, 0 if start == 0 else -1, version)


def _changed(route: Route, version: str | None) -> IntegrityError:
    return IntegrityError(
        f"{route.uri} changed while it was being read (it is no longer version {version}); "
        "read it again from the start", uri=route.uri)


async def _s3(fs, route, start, end, version) -> Part:
    from botocore.exceptions import ClientError
    from s3fs.errors import translate_boto_error

    loc = route.location
    kwargs = {"Bucket": loc.bucket, "Key": loc.key}
    if _ranged(start, end):
        kwargs["Range"] = _range_header(start, end)
    if version:
        kwargs["IfMatch"] = version
    if loc.version:
        kwargs["VersionId"] = loc.version
    if route.grant.expected_bucket_owner:
        kwargs["ExpectedBucketOwner"] = route.grant.expected_bucket_owner
    client = await fs.set_session()
    try:
        resp = await client.get_object(**kwargs)
        async with resp["Body"] as body:
            data = await body.read()
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code")
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "PreconditionFailed" or status == 412:
            raise _changed(route, version) from err
        if code == "InvalidRange" or status == 416:
            return _unsatisfiable(start, version)
        raise translate_boto_error(err) from err
    size = _size_from(resp.get("ContentRange"), start, len(data))
    return Part(data, start, size, resp.get("ETag"))


async def _gcs(fs, route, start, end, version) -> Part:
    loc = route.location
    url = f"{fs._location}/download/storage/v1/b/{loc.bucket}/o/{quote(loc.key, safe='')}"
    params = {"alt": "media"}
    if version or loc.version:
        # The generation seen at open pins every later range to that exact object.
        params["ifGenerationMatch"] = version or loc.version
    headers = {"Range": _range_header(start, end)} if _ranged(start, end) else {}
    try:
        resp_headers, data = await fs._call("GET", url, headers=headers, **params)
    except FileExistsError as err:  # gcsfs's name for 412 Precondition Failed
        raise _changed(route, version) from err
    except OSError as err:
        if is_gcs_forbidden(route, err):
            raise PermissionError(str(err)) from err
        if "416" in str(err) or "Requested range not satisfiable" in str(err):
            return _unsatisfiable(start, version)
        raise
    size = _size_from(resp_headers.get("Content-Range"), start, len(data))
    return Part(data, start, size, resp_headers.get("x-goog-generation"))


def is_gcs_forbidden(route: Route, err: BaseException) -> bool:
    """gcsfs reports a 403 as a plain ``OSError("Forbidden: ...")``, not a PermissionError."""
    return (route.backend == "gcs" and type(err) is OSError
            and str(err).startswith("Forbidden"))


async def _azure(fs, route, start, end, version) -> Part:
    from azure.core import MatchConditions
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceModifiedError,
        ResourceNotFoundError,
    )

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
    except ResourceNotFoundError as err:
        raise not_found(route.uri) from err
    except ClientAuthenticationError as err:
        raise PermissionError(f"Azure refused the credentials: {err.reason}") from err
    except HttpResponseError as err:
        if err.status_code == 416:
            return _unsatisfiable(start, version)
        if err.status_code in (401, 403, 409):
            raise PermissionError(f"Azure refused the read: {err.reason}") from err
        raise
    # properties.size is the length of the range downloaded; the blob's size is in Content-Range.
    size = _size_from(stream.properties.content_range, start, len(data))
    return Part(data, start, size, stream.properties.etag)


async def _http(fs, route, start, end, version) -> Part:
    session = await fs.set_session()
    headers = {}
    if _ranged(start, end):
        headers["Range"] = _range_header(start, end)
    if version:
        headers["If-Match"] = version
    # encoded=True: send the URL exactly as given. Re-quoting it (aiohttp's default) changes
    # what a signed URL signed, and turns a key's %3D into "=".
    url = yarl.URL(route.location.url, encoded=True)
    async with session.get(url, headers=headers) as resp:
        if resp.status == 404:
            raise not_found(route.uri)
        if resp.status == 412:
            raise _changed(route, version)
        if resp.status == 416:
            return _unsatisfiable(start, version)
        if resp.status in (401, 403):
            raise PermissionError(f"HTTP {resp.status} for {route.uri}")
        resp.raise_for_status()
        data = await resp.read()
        if resp.status == 200:
            # The server ignored Range: it sent the whole object.
            size = len(data)
            data = data[start:end]
        else:
            size = _size_from(resp.headers.get("Content-Range"), start, len(data))
        return Part(data, start, size, resp.headers.get("ETag"))
