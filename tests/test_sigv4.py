"""The SigV4 signer against AWS's own published example, and against botocore."""

from __future__ import annotations

import datetime as dt

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from attachfs._read import sigv4

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_aws_documented_get_object_example():
    # "Signature Calculations for the Authorization Header", Example: GET Object (S3 API docs).
    headers = {"Range": "bytes=0-9"}
    sigv4.sign("GET", "examplebucket.s3.amazonaws.com", "/test.txt", {}, headers,
               access_key="AKIAIOSFODNN7EXAMPLE",
               secret_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", token=None,
               region="us-east-1", now=dt.datetime(2013, 5, 24, tzinfo=dt.timezone.utc),
               payload_hash=EMPTY_SHA256, also_sign=("range",))
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_same_signature_as_botocore_for_awkward_keys_tokens_and_queries(monkeypatch):
    when = dt.datetime(2026, 11, 28, 12, 0, 0, tzinfo=dt.timezone.utc)
    key = "dir//a b+c%d/é日本/?#x/"
    path = "/my-bucket/" + sigv4.encode_key(key)
    query = {"versionId": "3/L4kqtJl+40nS=="}
    ours = sigv4.sign("GET", "127.0.0.1:9000", path, query,
                      {"x-amz-expected-bucket-owner": "111122223333", "If-Match": '"e"'},
                      access_key="AKIDEXAMPLE", secret_key="secret/+key", token="tok+en/==",
                      region="eu-west-1", now=when, payload_hash=EMPTY_SHA256)

    class FixedDatetime(dt.datetime):
        @classmethod
        def utcnow(cls):
            return when.replace(tzinfo=None)

        @classmethod
        def now(cls, tz=None):
            return when if tz else when.replace(tzinfo=None)

    monkeypatch.setattr("botocore.auth.datetime.datetime", FixedDatetime)
    request = AWSRequest(method="GET",
                         url=f"http://127.0.0.1:9000{path}?{sigv4.canonical_query(query)}",
                         headers={"x-amz-expected-bucket-owner": "111122223333",
                                  "x-amz-content-sha256": EMPTY_SHA256})
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "secret/+key", "tok+en/=="), "s3",
                "eu-west-1").add_auth(request)
    # botocore signs the body's hash over plain http; ours was told to do the same here.
    assert ours["Authorization"] == request.headers["Authorization"]
