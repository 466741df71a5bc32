"""The S3 reader: one SigV4-signed ranged GET over the shared pool.

A read never starts with a HEAD: the first ranged GET learns the size (Content-Range) and the
version (ETag); later ranges carry that version as ``If-Match``, so an object replaced mid-read
fails with ``IntegrityError`` instead of mixing bytes. A claim pinned to an owner sends
``x-amz-expected-bucket-owner``, so a bucket re-created by someone else is refused by S3 itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yarl

from .._credentials import aws
from .._limits import Limits
from . import sigv4
from .errors import raise_for_status, xml_code
from .part import Part, range_header, ranged
from .transport import answered, exchange

if TYPE_CHECKING:
    from .._config import Config
    from .._rules import Route
    from .._uri import Location

__all__ = ["read"]

#: Bucket -> region learned from S3's redirects (x-amz-bucket-region), per process.
_bucket_regions: dict[str, str] = {}


def request_target(config: Config | None, loc: Location) -> tuple[str, str, str, str]:
    """(url base, Host header, encoded path, signing region) for the object ``loc``."""
    aws_cfg = config.platform.aws if config else None
    region = (_bucket_regions.get(loc.bucket or "") or loc.region
              or (aws_cfg.region if aws_cfg else None) or "us-east-1")
    key = sigv4.encode_key(loc.key)
    if aws_cfg is not None and aws_cfg.endpoint_url:
        parts = urlsplit(aws_cfg.endpoint_url)
        prefix = parts.path.rstrip("/")
        return (f"{parts.scheme}://{parts.netloc}", parts.netloc,
                f"{prefix}/{loc.bucket}/{key}", region)
    if "." in (loc.bucket or ""):  # a dotted bucket breaks the wildcard certificate: path style
        host = f"s3.{region}.amazonaws.com"
        return f"https://{host}", host, f"/{loc.bucket}/{key}", region
    host = f"{loc.bucket}.s3.{region}.amazonaws.com"
    return f"https://{host}", host, f"/{key}", region


async def read(client: Any, route: Route, start: int, end: int | None, version: str | None,
               config: Config | None, limits: Limits, if_none_match: str | None) -> Part:
    loc = route.location
    for _attempt in range(2):  # a second time only after S3 named the bucket's region
        base, host, path, region = request_target(config, loc)
        query = {"versionId": loc.version} if loc.version else {}
        headers: dict[str, str] = {}
        if ranged(start, end):
            headers["Range"] = range_header(start, end)
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
        status, answer, body = await exchange(route, limits, url, headers, redirects=False)
        if status in (200, 206, 304):
            return answered(route, start, version, if_none_match, status, answer, body, "ETag")
        bucket_region = answer.get("x-amz-bucket-region")
        if bucket_region and bucket_region != region and status in (301, 307, 400):
            _bucket_regions[loc.bucket or ""] = bucket_region
            continue
        raise_for_status(route.uri, "s3", status, xml_code(body), version, answer)
    raise OSError(f"S3 kept redirecting {route.uri} between regions")  # pragma: no cover
