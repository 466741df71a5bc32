"""The S3 reader: one SigV4-signed ranged GET over the shared pool.

A read never starts with a HEAD: the first ranged GET learns the size (Content-Range) and the
version (ETag); later ranges carry that version as ``If-Match``, so an object replaced mid-read
fails with ``IntegrityError`` instead of mixing bytes. A claim pinned to an owner sends
``x-amz-expected-bucket-owner``, so a bucket re-created by someone else is refused by S3 itself;
a requester-pays opt-in sends ``x-amz-request-payer: requester`` (signed, as every ``x-amz-*``
header).

Hosts are botocore's endpoint rules (``botocore/data/s3/2006-03-01/endpoint-rule-set-1.json``):
the kind of endpoint a URL named (``Location.endpoint``: China, GovCloud, FIPS, dualstack,
Transfer Acceleration) is kept, through region redirects too, so a FIPS URL is never read over
a non-FIPS host nor a China URL through ``.amazonaws.com``.

A bucket in another region than the one signed for is followed once, the way botocore's
``S3RegionRedirectorv2`` (``botocore/utils.py``) does: the region comes from the
``x-amz-bucket-region`` header, else the ``<Region>`` of the error document (400
``AuthorizationHeaderMalformed``), else a HEAD of the bucket (400
``IllegalLocationConstraintException`` names none); it must be a valid region name
(botocore's ``validate_region_name``) before it goes into a host name.

``ExpiredToken`` (credentials that expired before their lease said, or were revoked): the lease
is dropped and fetched again once, and the request made again once.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._credentials import aws
from .._credentials.refresh import Refreshable, Stale
from .._limits import Limits
from .._redact import redact
from .._uri import S3Endpoint, s3_partition
from . import sigv4
from .errors import Refused, raise_for_status, said
from .part import Part, range_header, ranged
from .transport import Answer, answered, exchange, object_url

if TYPE_CHECKING:
    from .._config import Config
    from .._rules import Route
    from .._uri import Location

__all__ = ["read", "request_target"]

#: (partition, bucket) -> region learned from S3's redirects, per process.
_bucket_regions: dict[tuple[str, str], str] = {}

#: botocore ``validate_region_name``: a host label, not all digits.
_REGION_NAME = re.compile(r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)")
#: Answers that mean "this bucket lives in another region" (S3RegionRedirectorv2).
_REGION_ERRORS = frozenset({"PermanentRedirect", "AuthorizationHeaderMalformed",
                            "IllegalLocationConstraintException", "TemporaryRedirect"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _endpoint(loc: Location, region: str) -> S3Endpoint:
    """The kind of endpoint to read ``loc`` from: the one its URL named, else the standard
    endpoint of ``region``'s partition."""
    return loc.endpoint or S3Endpoint(partition=s3_partition(region))


def _region(config: Config | None, loc: Location) -> str:
    aws_cfg = config.platform.aws if config else None
    partition = (loc.endpoint.partition if loc.endpoint
                 else s3_partition(loc.region or (aws_cfg.region if aws_cfg else None)))
    return (_bucket_regions.get((partition, loc.bucket or "")) or loc.region
            or (aws_cfg.region if aws_cfg else None) or "us-east-1")


def request_target(config: Config | None, loc: Location, region: str | None = None,
                   key: str | None = None) -> tuple[str, str, str, str]:
    """(url base, Host header, encoded path, signing region) for the object ``loc`` (with
    ``key=""``: its bucket). The Host is the one the request carries: aiohttp leaves a default
    port out of it, so it is signed without one too."""
    aws_cfg = config.platform.aws if config else None
    region = region or _region(config, loc)
    encoded = sigv4.encode_key(loc.key if key is None else key)
    if aws_cfg is not None and aws_cfg.endpoint_url:
        base, host, prefix = _configured(aws_cfg.endpoint_url)
        path = f"{prefix}/{loc.bucket}" + (f"/{encoded}" if key != "" else "")
        return base, host, path, region
    endpoint = _endpoint(loc, region)
    service = endpoint.service_host(region)
    if "." in (loc.bucket or "") and not endpoint.accelerate:
        # A dotted bucket breaks the wildcard certificate: path style.
        path = f"/{loc.bucket}" + (f"/{encoded}" if key != "" else "")
        return f"https://{service}", service, path, region
    host = f"{loc.bucket}.{service}"
    return f"https://{host}", host, f"/{encoded}", region


@functools.lru_cache(maxsize=64)
def _configured(endpoint_url: str) -> tuple[str, str, str]:
    """(url base, Host header, path prefix) of a configured endpoint (parsed once)."""
    parts = urlsplit(endpoint_url)
    host = parts.netloc.lower()
    if parts.port is not None and parts.port == _DEFAULT_PORTS.get(parts.scheme):
        host = host.rsplit(":", 1)[0]  # "[::1]:443" keeps its brackets
    return f"{parts.scheme}://{parts.netloc}", host, parts.path.rstrip("/")


def _lease(config: Config | None, route: Route) -> Refreshable[Any] | None:
    """The lease the request is signed with; None: unsigned (``platform.aws.anonymous``)."""
    if route.grant.kind == "aws-assume-role":
        return aws.assumed_role(config, route.grant)
    if config is not None and config.platform.aws.anonymous:
        return None
    return aws.platform_lease(config)


async def _send(config: Config | None, route: Route, limits: Limits, region: str,
                creds: Any, headers: dict[str, str], *, start: int = 0,
                end: int | None = None, bucket_only: bool = False) -> Answer:
    """One signed request: a GET of the object, or (``bucket_only``) a HEAD of its bucket."""
    loc = route.location
    base, host, path, _ = request_target(config, loc, region, "" if bucket_only else None)
    query = {"versionId": loc.version} if loc.version and not bucket_only else {}
    method = "HEAD" if bucket_only else "GET"
    if creds is not None:
        sigv4.sign(method, host, path, query, headers, access_key=creds.access_key,
                   secret_key=creds.secret_key, token=creds.token, region=region)
    url = object_url(base, path, sigv4.canonical_query(query))
    return await exchange(route, limits, url, headers, start=start, end=end, redirects=False,
                          method=method)


def _region_named(answer: Answer) -> str | None:
    """The region an S3 answer names for the bucket, if any, validated."""
    named = answer.headers.get("x-amz-bucket-region")
    if named is None and answer.body:
        named = said("s3", answer.status, answer.headers, answer.body).field("Region")
    if named is None:
        return None
    if not _REGION_NAME.fullmatch(named):
        # Never let a header or a body put arbitrary text into a host name.
        raise OSError(f"S3 named the region of the bucket as {named[:80]!r}, which is not a "
                      "region name; refusing to build a host name from it")
    return named


async def read(client: Any, route: Route, start: int, end: int | None, version: str | None,
               config: Config | None, limits: Limits, if_none_match: str | None) -> Part:
    loc = route.location
    lease = _lease(config, route)
    region = _region(config, loc)
    redirected = refreshed = False
    while True:
        headers: dict[str, str] = {}
        if ranged(start, end):
            headers["Range"] = range_header(start, end)
        if version:
            headers["If-Match"] = version
        if if_none_match:
            headers["If-None-Match"] = if_none_match
        if route.grant.expected_bucket_owner:
            headers["x-amz-expected-bucket-owner"] = route.grant.expected_bucket_owner
        if route.requester_pays:
            headers["x-amz-request-payer"] = "requester"
        creds = None
        if lease is not None:
            creds = lease.current()  # fresh: taken with no coroutine per request
            if isinstance(creds, Stale):
                creds = await lease.get()
        answer = await _send(config, route, limits, region, creds, headers, start=start,
                             end=end)
        if answer.status in (200, 206, 304):
            return answered(route, start, version, if_none_match, answer, "ETag")
        error = said("s3", answer.status, answer.headers, answer.body)
        if not redirected and (answer.status in (301, 302, 307)
                               or error.code in _REGION_ERRORS):
            moved = _region_named(answer)
            if moved is None and error.code == "IllegalLocationConstraintException":
                head = await _send(config, route, limits, region, creds, {}, bucket_only=True)
                moved = _region_named(head)
            if moved is not None and moved != region:
                redirected = True
                region = _moved(route, region, moved)
                continue
        try:
            raise_for_status(route.uri, "s3", answer.status, error, version, answer.headers)
        except Refused as refused:
            if refused.said.code != "ExpiredToken" or refreshed or lease is None:
                raise
            refreshed = True
            lease.invalidate(creds)  # expired before its lease said (revoked, a clock off)


def _moved(route: Route, region: str, moved: str) -> str:
    """Remember that the bucket lives in ``moved``; a region of another partition is refused
    (a China URL never goes to another partition's hosts)."""
    loc = route.location
    partition = loc.endpoint.partition if loc.endpoint else s3_partition(region)
    if s3_partition(moved) != partition:
        raise OSError(f"S3 named region {moved} for {redact(route.uri)}, outside the "
                      f"{partition} partition the read was made in; refusing to follow it")
    _bucket_regions[(partition, loc.bucket or "")] = moved
    return moved
