"""A strict Google Cloud Storage: object downloads (JSON API media, XML API, signed URLs) the
way GCS is documented to answer them, where fake-gcs-server does not model the case.

What it models, each with its source:

* Generations (https://cloud.google.com/storage/docs/json_api/v1/objects/get,
  https://cloud.google.com/storage/docs/object-versioning): ``generation=G`` reads that
  revision, live or not; ``ifGenerationMatch=G`` is a precondition on the *live* object and
  fails with 412 ``conditionNotMet`` when the live generation is another one (fake-gcs-server
  ignores it); ``ifGenerationNotMatch`` answers 304.
* Decompressive transcoding (https://cloud.google.com/storage/docs/transcoding): an object
  stored gzip-compressed with ``Content-Encoding: gzip``, requested without
  ``Accept-Encoding: gzip``, is served decompressed, with no ``Content-Encoding`` or
  ``Content-Length``, and the ``Range`` header is ignored (the whole object, 200); with
  ``Accept-Encoding: gzip`` it is served as stored, with ``Content-Encoding: gzip``. Either way
  ``x-goog-stored-content-encoding`` and ``x-goog-stored-content-length`` describe the stored
  bytes.
* ``honour_range = False``: every ranged GET is a 200 with the whole object, as a proxy in
  front of GCS may answer (object_store ``src/client/get.rs``: ``NotPartial``).
* Requester pays (https://cloud.google.com/storage/docs/requester-pays): a read without
  ``userProject`` is 400 "Bucket is a requester pays bucket but no user project provided."
* A 403 for a principal without ``storage.objects.get`` (bucket-level IAM; with uniform
  bucket-level access, object ACLs grant nothing: https://cloud.google.com/storage/docs/
  uniform-bucket-level-access), in Google's JSON error shape.

Authorization is recorded, not checked (tests put an authorizing proxy in front when they need
principals, as ``authz_proxy`` does for fake-gcs-server).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from attachfs.testing.servers import AppServer, RecordedRequest

__all__ = ["GcsRevision", "StrictGcs"]

_JSON_MEDIA = re.compile(r"^/(?:download/)?storage/v1/b/(?P<bucket>[^/]+)/o/(?P<object>.+)$")


@dataclass
class GcsRevision:
    generation: int
    data: bytes                       # as stored (gzip bytes when content_encoding is "gzip")
    content_encoding: str = ""
    content_type: str = "application/octet-stream"

    @property
    def etag(self) -> str:
        return f'"{hashlib.md5(self.data).hexdigest()}"'


@dataclass
class GcsBucket:
    objects: dict[str, list[GcsRevision]] = field(default_factory=dict)  # name -> live last
    requester_pays: bool = False
    forbidden: bool = False           # the caller lacks storage.objects.get on the bucket


class StrictGcs(AppServer):
    """``put(bucket, name, data)`` adds a generation (the live one); ``put_gzip`` stores
    ``gzip(data)`` with ``Content-Encoding: gzip``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(host=host, port=port, ssl_context=ssl_context)
        self.honour_range = True
        self.buckets: dict[str, GcsBucket] = {}
        self._next_generation = 1_700_000_000_000_000
        self._state = threading.Lock()

    def bucket(self, name: str, **settings: Any) -> GcsBucket:
        with self._state:
            bucket = self.buckets.setdefault(name, GcsBucket())
            for attr, value in settings.items():
                setattr(bucket, attr, value)
            return bucket

    def put(self, bucket: str, name: str, data: bytes, *, content_encoding: str = "",
            content_type: str = "application/octet-stream") -> GcsRevision:
        b = self.bucket(bucket)
        with self._state:
            self._next_generation += 1
            revision = GcsRevision(self._next_generation, data, content_encoding, content_type)
            b.objects.setdefault(name, []).append(revision)
            return revision

    def put_gzip(self, bucket: str, name: str, data: bytes, **kwargs: str) -> GcsRevision:
        return self.put(bucket, name, gzip.compress(data, mtime=0), content_encoding="gzip",
                        **kwargs)

    def reset(self) -> None:
        with self._state:
            self.buckets.clear()
        self.honour_range = True
        self.clear_requests()

    def gets(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "GET"]

    # -- serving --------------------------------------------------------------------------

    def _setup(self, app: web.Application) -> None:
        app.router.add_route("GET", "/{tail:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        m = _JSON_MEDIA.match(path)
        if m:  # the object name is one percent-encoded segment
            if request.query.get("alt") != "media":
                return _error(400, "only media downloads are modelled here", "invalid")
            bucket_name, name = unquote(m["bucket"]), unquote(m["object"])
        else:  # XML API (and signed URLs): /bucket/object, the object path percent-encoded
            bucket_name, _, name = path[1:].partition("/")
            bucket_name, name = unquote(bucket_name), unquote(name)
        bucket = self.buckets.get(bucket_name)
        if bucket is None:
            return _error(404, "The specified bucket does not exist.", "notFound")
        if bucket.requester_pays and not request.query.get("userProject"):
            return _error(400, "Bucket is a requester pays bucket but no user project "
                          "provided.", "required")
        if bucket.forbidden:
            who = "platform@attach-platform.iam.gserviceaccount.com"
            return _error(403, f"{who} does not have storage.objects.get access to the Google "
                          f"Cloud Storage object. Permission 'storage.objects.get' denied on "
                          "resource (or it may not exist).", "forbidden")
        revisions = bucket.objects.get(name) or []
        if not revisions:
            return _error(404, f"No such object: {bucket_name}/{name}", "notFound")
        live = revisions[-1]
        wanted = request.query.get("generation")
        revision = live if wanted is None else next(
            (r for r in revisions if str(r.generation) == wanted), None)
        if revision is None:
            return _error(404, f"No such object: {bucket_name}/{name}", "notFound")
        match = request.query.get("ifGenerationMatch")
        if match is not None and match != str(live.generation):
            return _error(412, "At least one of the pre-conditions you specified did not hold.",
                          "conditionNotMet")
        if request.query.get("ifGenerationNotMatch") == str(revision.generation):
            return web.Response(status=304)
        return await self._media(request, revision)

    async def _media(self, request: web.Request, revision: GcsRevision) -> web.StreamResponse:
        headers = {"x-goog-generation": str(revision.generation), "x-goog-metageneration": "1",
                   "x-goog-stored-content-encoding": revision.content_encoding or "identity",
                   "x-goog-stored-content-length": str(len(revision.data)),
                   "ETag": revision.etag, "Content-Type": revision.content_type}
        accepts_gzip = "gzip" in request.headers.get("Accept-Encoding", "").lower()
        if revision.content_encoding == "gzip" and not accepts_gzip:
            # Decompressive transcoding: whole object, Range ignored, no length announced.
            response = web.StreamResponse(status=200, headers=headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            await response.write(gzip.decompress(revision.data))
            await response.write_eof()
            return response
        if revision.content_encoding:
            headers["Content-Encoding"] = revision.content_encoding
        body, status = revision.data, 200
        spec = request.headers.get("Range")
        if spec is not None and self.honour_range:
            span = _range(spec, len(body))
            if span == "unsatisfiable":
                return _error(416, "The requested range cannot be satisfied.",
                              "requestedRangeNotSatisfiable",
                              **{"Content-Range": f"bytes */{len(body)}"})
            if isinstance(span, tuple):
                first, last = span
                headers["Content-Range"] = f"bytes {first}-{last}/{len(body)}"
                body, status = body[first:last + 1], 206
        return web.Response(status=status, body=body, headers=headers)


def _error(status: int, message: str, reason: str, **headers: str) -> web.Response:
    """Google's JSON error document (https://cloud.google.com/storage/docs/json_api/v1/
    status-codes)."""
    doc = {"error": {"code": status, "message": message,
                     "errors": [{"message": message, "domain": "global", "reason": reason}]}}
    return web.Response(status=status, text=json.dumps(doc),
                        content_type="application/json", headers=headers or None)


def _range(spec: str, size: int) -> tuple[int, int] | str | None:
    unit, _, ranges = spec.partition("=")
    if unit.strip() != "bytes" or "," in ranges:
        return None
    first_s, _, last_s = ranges.strip().partition("-")
    if not first_s:
        n = int(last_s)
        if size == 0 or n <= 0:
            return "unsatisfiable"
        return max(size - n, 0), size - 1
    first = int(first_s)
    if first >= size:
        return "unsatisfiable"
    return first, min(int(last_s), size - 1) if last_s else size - 1
