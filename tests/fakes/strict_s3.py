"""A strict S3: answers GetObject, HeadObject, HeadBucket and ListObjectsV2 the way AWS S3 is
documented to, where moto is more lenient or does not model the case.

Every request is authenticated as S3 does it: the SigV4 ``Authorization`` header is recomputed
from the request *as received* (method, raw path, query, the signed headers' values, ``Host``
as it arrived) with the secret of the access key it names
(https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html). What it
models, each with its source:

* ``+`` in a request path is a space; ``%2B`` is a plus. S3 decodes paths that way, and the
  console's object URLs write spaces as ``+`` (botocore always sends ``+`` in a key as ``%2B``:
  ``botocore/serialize.py``, greedy labels are ``percent_encode``d with ``safe='/~'``).
* Errors, with the status and ``<Code>`` of https://docs.aws.amazon.com/AmazonS3/latest/API/
  ErrorResponses.html: ``InvalidAccessKeyId`` and ``SignatureDoesNotMatch`` (403),
  ``RequestTimeTooSkewed`` (403, more than 15 minutes from the server's clock),
  ``ExpiredToken`` (400), ``InvalidObjectState`` (403, an archived object: GetObject docs),
  ``AccessDenied`` from KMS (403 naming ``kms:Decrypt``: https://docs.aws.amazon.com/AmazonS3/
  latest/userguide/troubleshoot-403-errors.html), ``AccessDenied`` for a requester-pays bucket
  read without ``x-amz-request-payer: requester`` (https://docs.aws.amazon.com/AmazonS3/latest/
  userguide/ObjectsinRequesterPaysBuckets.html), and 403 instead of 404 for a missing key when
  the caller may not list the bucket (GetObject docs: "If you don't have the s3:ListBucket
  permission, Amazon S3 returns an HTTP status code 403").
* A request signed for another region than the bucket's, in the three shapes botocore's
  ``S3RegionRedirectorv2.redirect_from_error`` (``botocore/utils.py``) follows: 301
  ``PermanentRedirect`` with ``x-amz-bucket-region``; 400 ``AuthorizationHeaderMalformed``
  carrying ``<Region>`` in the body only; 400 ``IllegalLocationConstraintException`` with no
  region at all, which botocore resolves with a HEAD of the bucket (answered 301 with
  ``x-amz-bucket-region``).
* Ranges (RFC 9110 14.2): a suffix range of a 0-byte object is 200 with an empty body (as S3,
  and moto, answer); ``honour_range = False`` makes every ranged GET a 200 with the whole body,
  as S3-compatible stores and caching proxies may (object_store, ``src/client/get.rs``, calls
  that reply ``NotPartial``).
* ``If-Match``/``If-None-Match`` (412/304) and ``versionId``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

from aiohttp import web

from attachfs.testing.servers import AppServer, RecordedRequest

__all__ = ["S3Bucket", "S3Object", "StrictS3"]

RegionError = Literal["redirect", "malformed", "illegal-location"]

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
                   r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?"
                   r"Signature=(?P<signature>[0-9a-f]{64})")
_VIRTUAL = re.compile(r"(?P<bucket>[a-z0-9.-]+?)\.s3[.-]")
MAX_SKEW = dt.timedelta(minutes=15)


@dataclass
class S3Object:
    data: bytes
    content_type: str = "binary/octet-stream"
    version_id: str = "null"
    storage_class: str = "STANDARD"   # "GLACIER"/"DEEP_ARCHIVE": InvalidObjectState on GET
    kms_key: str | None = None        # SSE-KMS key ARN
    etag: str = ""

    def __post_init__(self) -> None:
        self.etag = self.etag or f'"{hashlib.md5(self.data).hexdigest()}"'


@dataclass
class S3Bucket:
    region: str = "us-east-1"
    objects: dict[str, list[S3Object]] = field(default_factory=dict)  # key -> versions, live last
    caller_may_list: bool = True          # s3:ListBucket: a missing key is 404, else 403
    requester_pays: bool = False
    kms_denied: set[str] = field(default_factory=set)  # key ARNs the caller may not decrypt with
    region_error: RegionError = "redirect"
    region_header: str | None = None      # what x-amz-bucket-region says (default: region)


class StrictS3(AppServer):
    """``StrictS3(keys={"AKID": "secret"})``; ``put(bucket, key, data)`` seeds objects.

    ``tokens`` maps an access key to the session token it must come with; ``expired`` lists
    tokens S3 answers ``ExpiredToken`` for (``on_expired`` runs when it does). ``clock_skew``
    moves the server's clock. ``honour_range=False`` answers ranged GETs with the whole object.
    """

    def __init__(self, *, keys: dict[str, str] | None = None, host: str = "127.0.0.1",
                 port: int = 0, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(host=host, port=port, ssl_context=ssl_context)
        self.keys = dict(keys or {"testing": "testing"})
        self.tokens: dict[str, str] = {}
        self.expired: set[str] = set()
        self.on_expired: Callable[[], None] | None = None
        self.clock_skew = dt.timedelta(0)
        self.honour_range = True
        self.buckets: dict[str, S3Bucket] = {}
        self._state = threading.Lock()

    # -- seeding --------------------------------------------------------------------------

    def bucket(self, name: str, **settings: Any) -> S3Bucket:
        with self._state:
            bucket = self.buckets.setdefault(name, S3Bucket())
            for attr, value in settings.items():
                setattr(bucket, attr, value)
            return bucket

    def put(self, bucket: str, key: str, data: bytes, **fields: Any) -> S3Object:
        b = self.bucket(bucket)
        with self._state:
            versions = b.objects.setdefault(key, [])
            obj = S3Object(data, version_id=f"v{len(versions) + 1}", **fields)
            versions.append(obj)
            return obj

    def gets(self, bucket: str | None = None) -> list[RecordedRequest]:
        """The GET requests received (for ``bucket`` only, if given)."""
        return [r for r in self.requests if r.method == "GET"
                and (bucket is None or self._target(r.headers.get("Host", ""), r.raw_path)[0]
                     == bucket)]

    # -- serving --------------------------------------------------------------------------

    def _setup(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    def _target(self, host: str, raw_path: str) -> tuple[str | None, str]:
        """(bucket, key) of a virtual-hosted or path-style request; ``+`` in the path is a
        space, as S3 decodes it."""
        path = raw_path.split("?", 1)[0]
        m = _VIRTUAL.match(host.split(":", 1)[0].lower())
        if m:
            bucket, key = m["bucket"], path[1:]
        else:
            bucket, _, key = path[1:].partition("/")
        return bucket or None, unquote(key.replace("+", " "))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        bucket_name, key = self._target(request.host, request.raw_path)
        bucket = self.buckets.get(bucket_name or "")
        if bucket is None:
            return _error(404, "NoSuchBucket", "The specified bucket does not exist",
                          BucketName=bucket_name or "")
        auth = _AUTH.match(request.headers["Authorization"])
        assert auth is not None  # _authenticate accepted it
        region = auth["region"]
        if region != bucket.region:
            return self._wrong_region(request, bucket, bucket_name, region, key)
        if bucket.requester_pays and (
                request.headers.get("x-amz-request-payer") != "requester"
                or "x-amz-request-payer" not in _signed_names(request)):
            return _error(403, "AccessDenied", "Access Denied")
        if not key:
            if request.method == "HEAD":
                return web.Response(headers={"x-amz-bucket-region": bucket.region})
            if request.query.get("list-type") == "2":
                return self._list(request, bucket, bucket_name)
            return _error(405, "MethodNotAllowed", "The specified method is not allowed")
        return self._object(request, bucket, key)

    def _authenticate(self, request: web.Request) -> web.Response | None:
        auth = _AUTH.match(request.headers.get("Authorization", ""))
        if auth is None:
            return _error(403, "AccessDenied", "Access Denied")
        secret = self.keys.get(auth["key"])
        if secret is None:
            return _error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does "
                          "not exist in our records.", AWSAccessKeyId=auth["key"])
        token = request.headers.get("x-amz-security-token")
        if token is not None and token in self.expired:
            if self.on_expired is not None:
                self.on_expired()
            return _error(400, "ExpiredToken", "The provided token has expired.")
        if self.tokens.get(auth["key"]) not in (None, token):
            return _error(403, "InvalidToken", "The provided token is malformed or otherwise "
                          "invalid.")
        amz_date = request.headers.get("x-amz-date", "")
        try:
            when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=dt.timezone.utc)
        except ValueError:
            return _error(403, "AccessDenied", "AWS authentication requires a valid Date or "
                          "x-amz-date header")
        now = dt.datetime.now(dt.timezone.utc) + self.clock_skew
        if abs(now - when) > MAX_SKEW:
            return _error(403, "RequestTimeTooSkewed", "The difference between the request time "
                          "and the current time is too large.", RequestTime=amz_date,
                          ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          MaxAllowedSkewMilliseconds="900000")
        expected = _signature(request, auth, secret)
        if not hmac.compare_digest(expected, auth["signature"]):
            return _error(403, "SignatureDoesNotMatch", "The request signature we calculated "
                          "does not match the signature you provided. Check your key and "
                          "signing method.", AWSAccessKeyId=auth["key"])
        return None

    def _wrong_region(self, request: web.Request, bucket: S3Bucket, name: str | None,
                      signed_region: str, key: str) -> web.Response:
        header = {"x-amz-bucket-region": bucket.region if bucket.region_header is None
                  else bucket.region_header}
        if request.method == "HEAD" and not key:  # HeadBucket tells the region (botocore)
            return web.Response(status=301, headers=header)
        if bucket.region_error == "redirect":
            return _error(301, "PermanentRedirect", "The bucket you are attempting to access "
                          "must be addressed using the specified endpoint. Please send all "
                          "future requests to this endpoint.", headers=header, Bucket=name or "",
                          Endpoint=f"{name}.s3.{bucket.region}.amazonaws.com")
        if bucket.region_error == "malformed":
            return _error(400, "AuthorizationHeaderMalformed", "The authorization header is "
                          f"malformed; the region '{signed_region}' is wrong; expecting "
                          f"'{bucket.region}'", Region=bucket.region)
        return _error(400, "IllegalLocationConstraintException", f"The {bucket.region} "
                      "location constraint is incompatible for the region specific endpoint "
                      "this request was sent to.")

    def _object(self, request: web.Request, bucket: S3Bucket, key: str) -> web.StreamResponse:
        versions = bucket.objects.get(key)
        if not versions:
            if not bucket.caller_may_list:
                return _error(403, "AccessDenied", "Access Denied")
            return _error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        wanted = request.query.get("versionId")
        obj = versions[-1] if wanted is None else next(
            (v for v in versions if v.version_id == wanted), None)
        if obj is None:
            return _error(404, "NoSuchVersion", "The specified version does not exist.",
                          Key=key, VersionId=wanted or "")
        if obj.storage_class in ("GLACIER", "DEEP_ARCHIVE"):
            return _error(403, "InvalidObjectState", "The operation is not valid for the "
                          "object's storage class", StorageClass=obj.storage_class)
        if obj.kms_key is not None and obj.kms_key in bucket.kms_denied:
            return _error(403, "AccessDenied", "User: arn:aws:sts::123456789012:assumed-role/"
                          "reader/session is not authorized to perform: kms:Decrypt on "
                          f"resource: {obj.kms_key} because no identity-based policy allows "
                          "the kms:Decrypt action")
        headers = {"ETag": obj.etag, "x-amz-version-id": obj.version_id,
                   "Content-Type": obj.content_type, "Accept-Ranges": "bytes",
                   "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"}
        if obj.kms_key is not None:
            headers.update({"x-amz-server-side-encryption": "aws:kms",
                            "x-amz-server-side-encryption-aws-kms-key-id": obj.kms_key})
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != obj.etag:
            return _error(412, "PreconditionFailed", "At least one of the pre-conditions you "
                          "specified did not hold", Condition="If-Match")
        if request.headers.get("If-None-Match") == obj.etag:
            return web.Response(status=304, headers={"ETag": obj.etag})
        body, status = obj.data, 200
        spec = request.headers.get("Range")
        if spec is not None and self.honour_range:
            span = _range(spec, len(obj.data))
            if span == "unsatisfiable":
                return _error(416, "InvalidRange", "The requested range is not satisfiable",
                              headers={"Content-Range": f"bytes */{len(obj.data)}"},
                              RangeRequested=spec, ActualObjectSize=str(len(obj.data)))
            if span is not None:
                first, last = span
                body, status = obj.data[first:last + 1], 206
                headers["Content-Range"] = f"bytes {first}-{last}/{len(obj.data)}"
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, body=body, headers=headers)

    def _list(self, request: web.Request, bucket: S3Bucket, name: str | None) -> web.Response:
        if not bucket.caller_may_list:
            return _error(403, "AccessDenied", "Access Denied")
        prefix = request.query.get("prefix", "")
        delimiter = request.query.get("delimiter", "")
        keys, prefixes = [], set()
        for key in sorted(bucket.objects):
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
            else:
                keys.append(key)
        contents = "".join(
            f"<Contents><Key>{escape(k)}</Key><LastModified>2025-01-01T00:00:00.000Z"
            f"</LastModified><ETag>{escape(bucket.objects[k][-1].etag)}</ETag><Size>"
            f"{len(bucket.objects[k][-1].data)}</Size><StorageClass>"
            f"{bucket.objects[k][-1].storage_class}</StorageClass></Contents>" for k in keys)
        common = "".join(f"<CommonPrefixes><Prefix>{escape(p)}</Prefix></CommonPrefixes>"
                         for p in sorted(prefixes))
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.'
                f'amazonaws.com/doc/2006-03-01/"><Name>{escape(name or "")}</Name><Prefix>'
                f"{escape(prefix)}</Prefix><KeyCount>{len(keys) + len(prefixes)}</KeyCount>"
                f"<MaxKeys>1000</MaxKeys><Delimiter>{escape(delimiter)}</Delimiter>"
                f"<IsTruncated>false</IsTruncated>{contents}{common}</ListBucketResult>")
        return web.Response(body=body.encode(), content_type="application/xml")


def _error(status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
           **extra: str) -> web.Response:
    """S3's XML error document (ErrorResponses.html); HEAD answers carry no body."""
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in extra.items())
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>'
            f"{escape(message)}</Message>{fields}<RequestId>4442587FB7D0A2F9</RequestId>"
            "</Error>")
    return web.Response(status=status, body=body.encode(), content_type="application/xml",
                        headers=headers)


def _range(spec: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """RFC 9110 14.1.2 for one byte range: (first, last), "unsatisfiable", or None (ignored).
    A suffix of a 0-byte object is answered with the whole (empty) object, as S3 does."""
    unit, _, ranges = spec.partition("=")
    if unit.strip() != "bytes" or "," in ranges:
        return None
    first_s, _, last_s = ranges.strip().partition("-")
    if not first_s:
        n = int(last_s)
        if size == 0:
            return None
        return (max(size - n, 0), size - 1) if n > 0 else "unsatisfiable"
    first = int(first_s)
    if first >= size:
        return "unsatisfiable"
    last = min(int(last_s), size - 1) if last_s else size - 1
    return first, last


def _signed_names(request: web.Request) -> list[str]:
    auth = _AUTH.match(request.headers.get("Authorization", ""))
    return auth["signed"].split(";") if auth else []


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _canonical_query(raw_query: str) -> str:
    """Each name and value decoded, then URI-encoded; sorted by encoded name, then value
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html)."""
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_uri_encode(unquote(name)), _uri_encode(unquote(value))))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def _signature(request: web.Request, auth: re.Match[str], secret: str) -> str:
    """The signature S3 computes for ``request`` as it arrived: the path exactly as sent (S3
    neither normalises nor re-encodes it), the Host header as received."""
    raw_path, _, raw_query = request.raw_path.partition("?")
    names = auth["signed"].split(";")
    values = []
    for name in names:
        value = request.headers.getall(name, [])
        joined = ",".join(" ".join(v.split()) for v in value)
        values.append(f"{name}:{joined}\n")
    payload = request.headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
    canonical = "\n".join((request.method, raw_path, _canonical_query(raw_query),
                           "".join(values), auth["signed"], payload))
    scope = f"{auth['day']}/{auth['region']}/{auth['service']}/aws4_request"
    to_sign = "\n".join(("AWS4-HMAC-SHA256", request.headers.get("x-amz-date", ""), scope,
                         hashlib.sha256(canonical.encode()).hexdigest()))
    key = ("AWS4" + secret).encode()
    for part in (auth["day"], auth["region"], auth["service"], "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
