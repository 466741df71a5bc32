"""attachfs's SigV4 signer, case by case through AWS's published Signature Version 4 test suite
(https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html; kept today in
awslabs/aws-c-auth ``tests/aws-signing-test-suite/v4``), against botocore's own signer.

The suite's files are not copied here: each case's *request* (method, path, query, headers,
body) is written out below, and the signature attachfs computes for it is compared with the one
botocore's ``S3SigV4Auth`` (``botocore/auth.py``, the ``SigV4Auth`` S3 signs with: the path
exactly as sent, never normalised or encoded twice) computes for the same request, credentials
and time. The suite's path-normalisation cases therefore check that S3 paths are signed as
sent.

Then the signature as a server checks it: with an ``endpoint_url`` that spells out the scheme's
default port, the Host that is signed must be the Host that is sent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import MultiDict

import attachfs
from conftest import TEST_CA
from fakes.strict_names import can_bind, loopback_address, sni_context
from fakes.strict_s3 import StrictS3

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION, SERVICE, HOST = "us-east-1", "service", "example.amazonaws.com"
WHEN = dt.datetime(2015, 8, 30, 12, 36, 0, tzinfo=dt.timezone.utc)
UNRESERVED = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# (suite case, method, path as sent, query as (name, value) pairs in request order,
#  headers besides Host and X-Amz-Date, body)
Case = tuple[str, str, str, list[tuple[str, str]], dict[str, str], bytes]
CASES: list[Case] = [
    ("get-vanilla", "GET", "/", [], {}, b""),
    ("get-vanilla-empty-query-key", "GET", "/", [("Param1", "value1")], {}, b""),
    ("get-vanilla-query-order-key", "GET", "/", [("Param1", "value2"), ("Param1", "Value1")],
     {}, b""),
    ("get-vanilla-query-order-key-case", "GET", "/", [("Param2", "value2"),
                                                      ("Param1", "value1")], {}, b""),
    ("get-vanilla-query-order-value", "GET", "/", [("Param1", "value2"), ("Param1", "value1")],
     {}, b""),
    ("get-vanilla-query-order-encoded", "GET", "/",
     [("Param-3", "Value3"), ("Param", "Value2"), ("\u1234", "Value1")], {}, b""),
    ("get-vanilla-query-unreserved", "GET", "/", [(UNRESERVED, UNRESERVED)], {}, b""),
    ("get-vanilla-utf8-query", "GET", "/", [("\u1234", "bar")], {}, b""),
    ("get-utf8", "GET", "/%E1%88%B4", [], {}, b""),
    ("get-unreserved", "GET", "/" + UNRESERVED, [], {}, b""),
    ("get-space", "GET", "/example%20space/", [], {}, b""),
    ("get-slash", "GET", "//", [], {}, b""),
    ("get-slashes", "GET", "//example//", [], {}, b""),
    ("get-slash-dot-slash", "GET", "/./", [], {}, b""),
    ("get-slash-pointless-dot", "GET", "/./example", [], {}, b""),
    ("get-relative", "GET", "/example/..", [], {}, b""),
    ("get-relative-relative", "GET", "/example1/example2/../..", [], {}, b""),
    ("get-header-key-duplicate", "GET", "/", [], {"My-Header1": "value2,value2,value1"}, b""),
    ("get-header-value-multiline", "GET", "/", [],
     {"My-Header1": "value1\n  value2\n     value3"}, b""),
    ("get-header-value-order", "GET", "/", [], {"My-Header1": "value4,value1,value3,value2"},
     b""),
    ("get-header-value-trim", "GET", "/", [],
     {"My-Header1": " value1", "My-Header2": ' "a   b   c"'}, b""),
    ("post-vanilla", "POST", "/", [], {}, b""),
    ("post-vanilla-query", "POST", "/", [("Param1", "value1")], {}, b""),
    ("post-vanilla-empty-query-value", "POST", "/", [("Param1", "")], {}, b""),
    ("post-vanilla-query-space", "POST", "/", [("f oo", "b ar")], {}, b""),
    ("post-vanilla-query-nonunreserved", "POST", "/",
     [("@#$%^&+", "/,?><`\";:\\|][{} ")], {}, b""),
    ("post-header-key-case", "POST", "/", [], {}, b""),
    ("post-header-key-sort", "POST", "/", [], {"My-Header1": "value1"}, b""),
    ("post-header-value-case", "POST", "/", [], {"My-Header1": "VALUE1"}, b""),
    ("post-x-www-form-urlencoded", "POST", "/", [],
     {"Content-Type": "application/x-www-form-urlencoded"}, b"Param1=value1"),
    ("post-x-www-form-urlencoded-parameters", "POST", "/", [],
     {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, b"Param1=value1"),
]


def _encoded_query(pairs: list[tuple[str, str]]) -> str:
    """The query string as sent: each name and value URI-encoded (RFC 3986 unreserved kept)."""
    return "&".join(f"{quote(n, safe='-_.~')}={quote(v, safe='-_.~')}" for n, v in pairs)


def _botocore_authorization(method: str, path: str, pairs: list[tuple[str, str]],
                            headers: dict[str, str], body: bytes,
                            monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr("botocore.auth.get_current_datetime",
                        lambda remove_tzinfo=True: WHEN.replace(tzinfo=None))
    query = _encoded_query(pairs)
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), SERVICE, REGION).add_auth(request)
    return str(request.headers["Authorization"])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_signature_matches_botocore(case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    # The signer is internal: the one line to update if it moves.
    from attachfs._read.sigv4 import sign

    _, method, path, pairs, headers, body = case
    expected = _botocore_authorization(method, path, pairs, headers, body, monkeypatch)
    ours = sign(method, HOST, path, MultiDict(pairs), dict(headers),
                access_key=ACCESS_KEY, secret_key=SECRET_KEY, token=None, region=REGION,
                service=SERVICE, now=WHEN, payload_hash=hashlib.sha256(body).hexdigest(),
                also_sign=tuple(h.lower() for h in headers))
    assert ours["Authorization"] == expected


# --------------------------------------------------------------- the Host that is sent


@pytest.fixture(params=["https", "http"])
def default_port_s3(request: pytest.FixtureRequest) -> Iterator[tuple[StrictS3, str]]:
    """A strict S3 on port 443 (https) or 80 (http) of a loopback address of this process,
    and an ``endpoint_url`` naming that port explicitly."""
    scheme = request.param
    port = 443 if scheme == "https" else 80
    address = loopback_address(7 if scheme == "https" else 8)
    refused = can_bind(address, port)
    if refused:
        pytest.skip(refused)
    ctx = sni_context(TEST_CA.ca, fallback=address) if scheme == "https" else None
    with StrictS3(host=address, port=port, ssl_context=ctx) as fake:
        yield fake, f"{scheme}://{address}:{port}"


def test_an_endpoint_url_with_the_default_port_signs_the_host_it_sends(
        default_port_s3: tuple[StrictS3, str], names: Any) -> None:
    s3, endpoint = default_port_s3
    bucket = str(names("p"))
    s3.put(bucket, "k", b"signed for the right host")
    config = {"platform": {"aws": {"endpoint_url": endpoint, "region": "us-east-1"}}}
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    assert fs.cat_file(f"s3://{bucket}/k") == b"signed for the right host"
    [get] = s3.gets()
    assert get.status == 200
