"""AWS Signature Version 4 for S3 GET/HEAD requests, small and fast.

botocore's signer runs a whole request pipeline (event hooks, endpoint rules, a copy of every
header) for each request; for thousands of small ranged GETs that costs more than the request.
This signs exactly what the read path sends: a GET or HEAD with a query string and a few
headers, payload ``UNSIGNED-PAYLOAD`` (allowed for S3 over TLS and over plain-http emulators).
The derived signing key is cached per (secret, day, region): one HMAC chain a day, not four
HMACs per request. The algorithm is AWS's, as in botocore's ``SigV4Auth`` / ``S3SigV4Auth``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@lru_cache(maxsize=64)
def _signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    k = hmac.new(("AWS4" + secret_key).encode(), day.encode(), hashlib.sha256).digest()
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    return hmac.new(k, b"aws4_request", hashlib.sha256).digest()


#: (second, its x-amz-date): a batch signs thousands of requests within the same second.
_stamp: tuple[int, str] = (-1, "")


def _amz_date() -> str:
    global _stamp
    second = int(time.time())
    if _stamp[0] != second:
        _stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
    return _stamp[1]


def encode_key(key: str) -> str:
    """An S3 object key as it goes in the request path: every byte but unreserved ones and
    ``/`` percent-encoded, once (S3 does not normalise paths: ``//`` and ``%`` stay)."""
    return quote(key, safe="/~")


def canonical_query(params: Mapping[str, str]) -> str:
    """The canonical query string: every name and value URI-encoded, *then* sorted by encoded
    name and value (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html;
    AWS's SigV4 test suite, ``get-vanilla-query-order-encoded``). Sorting the raw names first
    orders ``a-b`` and ``a=b`` differently once encoded, and S3 then refuses the signature.
    ``params`` may be a multidict: repeated names are all kept."""
    if not params:
        return ""
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in params.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


def sign(method: str, host: str, path: str, query: Mapping[str, str], headers: dict[str, str],
         *, access_key: str, secret_key: str, token: str | None, region: str,
         service: str = "s3", now: dt.datetime | None = None,
         payload_hash: str = UNSIGNED_PAYLOAD, also_sign: tuple[str, ...] = ()) -> dict[str, str]:
    """Add the SigV4 headers to ``headers`` (and return it).

    ``path`` is the already-encoded request path exactly as sent; ``host`` is the Host header
    (with the port when it is not the scheme's default). Every ``x-amz-*`` header present is
    signed, with ``host``.
    """
    amz_date = now.strftime("%Y%m%dT%H%M%SZ") if now is not None else _amz_date()
    day = amz_date[:8]
    headers["x-amz-date"] = amz_date
    headers["x-amz-content-sha256"] = payload_hash
    if token:
        headers["x-amz-security-token"] = token
    signed = {"host": host}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith("x-amz-") or lower in also_sign:
            signed[lower] = " ".join(str(value).split())
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
    signed_headers = ";".join(names)
    canonical_request = "\n".join((method, path, canonical_query(query), canonical_headers,
                                   signed_headers, payload_hash))
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join((ALGORITHM, amz_date, scope,
                                hashlib.sha256(canonical_request.encode()).hexdigest()))
    signature = hmac.digest(_signing_key(secret_key, day, region, service),
                            string_to_sign.encode(), "sha256").hex()
    headers["Authorization"] = (f"{ALGORITHM} Credential={access_key}/{scope}, "
                                f"SignedHeaders={signed_headers}, Signature={signature}")
    return headers
