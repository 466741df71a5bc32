"""S3 reads against the strict S3 fake (tests/fakes/strict_s3.py) and moto, where real S3
answers differently from what attachfs was written against.

One section per point of the strict-cloud work: a 200 answering a ranged GET; ``+`` in S3
https URLs; region errors that name the region only in their body; what each S3 error code
means and how to fix it. Requests are counted at the fake; nothing here measures time.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attachfs
from fakes.strict_s3 import StrictS3

DATA = bytes(range(256)) * 40  # 10,240 bytes


@pytest.fixture(scope="module")
def server() -> Iterator[StrictS3]:
    with StrictS3() as fake:
        yield fake


@pytest.fixture
def s3(server: StrictS3) -> StrictS3:
    """The fake, emptied and answering as S3 does."""
    server.buckets.clear()
    server.clear_requests()
    server.honour_range = True
    server.keys = {"testing": "testing"}
    server.tokens.clear()
    server.expired.clear()
    server.on_expired = None
    server.clock_skew = dt.timedelta(0)
    return server


@pytest.fixture
def bucket(names: Any) -> str:
    """A fresh bucket name: attachfs learns bucket regions per process, so no two tests may
    share a bucket."""
    return str(names("s"))


def ambient(s3: StrictS3) -> dict[str, Any]:
    return {"platform": {"aws": {"endpoint_url": s3.url, "region": "us-east-1"}}}


def direct(s3: StrictS3, *claims: Any) -> dict[str, Any]:
    """Multi-tenant: tenant ``acme`` reads the claimed buckets as the platform's identity."""
    return {"platform": {"aws": {"endpoint_url": s3.url, "region": "us-east-1"}},
            "tenants": {"acme": {"direct": list(claims)}}}


def fs_for(config: dict[str, Any], tenant: str | None = None) -> Any:
    return attachfs.filesystem(config=config, tenant=tenant, skip_instance_cache=True)


def signed_region(record: Any) -> str:
    return record.headers["Authorization"].split("Credential=", 1)[1].split("/")[2]


# --------------------------------------------------------------- 1. a 200 is not the range


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """moto alone: it answers a suffix range of a 0-byte object as S3 does (200, empty)."""
    from attachfs.testing import Emulators

    with Emulators(tmp_path_factory.mktemp("moto"), s3=True, gcs=False, azure=False,
                   http=False, https=False) as peers:
        yield peers


def test_a_zero_byte_object_has_size_zero_and_seeks_to_its_end(moto: Any, names: Any) -> None:
    bucket = names("z")
    moto.make_s3_bucket(bucket)
    moto.put_s3(bucket, "empty", b"")
    config = {"platform": {"aws": {"endpoint_url": moto.s3_endpoint, "region": "us-east-1"}}}
    with attachfs.open(f"s3://{bucket}/empty", config=config) as f:
        assert f.size == 0
        assert f.seek(0, os.SEEK_END) == 0
        assert f.read() == b""


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 3000), data=st.data())
def test_a_ranged_get_answered_200_with_the_whole_object(s3: StrictS3, bucket: str, size: int,
                                                         data: st.DataObject) -> None:
    """S3-compatible stores and proxies may ignore Range: attachfs must still return exactly
    the bytes asked for and the object's real size, with one request per read."""
    offset = data.draw(st.integers(0, size), label="offset")
    length = data.draw(st.integers(0, size - offset + 10), label="length")
    body = os.urandom(size)
    key = f"obj-{size}-{offset}-{length}"
    s3.put(bucket, key, body)
    s3.honour_range = False
    fs = fs_for(ambient(s3))
    uri = f"s3://{bucket}/{key}"

    s3.clear_requests()
    assert fs.cat_file(uri, start=offset, end=offset + length) == body[offset:offset + length]
    assert len(s3.gets()) <= 1
    with fs.open(uri, block_size=max(length, 1)) as f:
        assert f.size == size
        f.seek(offset)
        assert f.read(length) == body[offset:offset + length]


# --------------------------------------------------------------- 3. "+" in S3 https URLs


@pytest.mark.parametrize("url", [
    "https://{bucket}.s3.amazonaws.com/two+words.txt",
    "https://s3.amazonaws.com/{bucket}/two+words.txt",
    "https://{bucket}.s3.us-east-1.amazonaws.com/two%20words.txt",
])
def test_plus_in_an_s3_https_url_reads_the_key_with_a_space(s3: StrictS3, bucket: str,
        url: str) -> None:
    s3.put(bucket, "two words.txt", b"space")
    s3.put(bucket, "two+words.txt", b"plus")
    assert fs_for(ambient(s3)).cat_file(url.format(bucket=bucket)) == b"space"


@pytest.mark.parametrize("uri", [
    "s3://{bucket}/two+words.txt",
    "https://{bucket}.s3.amazonaws.com/two%2Bwords.txt",
])
def test_a_literal_plus_stays_a_plus(s3: StrictS3, bucket: str, uri: str) -> None:
    s3.put(bucket, "two words.txt", b"space")
    s3.put(bucket, "two+words.txt", b"plus")
    assert fs_for(ambient(s3)).cat_file(uri.format(bucket=bucket)) == b"plus"


# --------------------------------------------------------------- 4. region errors


@pytest.mark.parametrize("shape", ["redirect", "malformed", "illegal-location"])
def test_a_bucket_in_another_region_is_followed_as_botocore_does(s3: StrictS3, bucket: str,
                                                                 shape: str) -> None:
    """301 PermanentRedirect (region in a header), 400 AuthorizationHeaderMalformed (region in
    the body only), 400 IllegalLocationConstraintException (no region: HEAD the bucket)."""
    s3.bucket(bucket, region="eu-west-1", region_error=shape)
    s3.put(bucket, "k", DATA)
    assert fs_for(ambient(s3)).cat_file(f"s3://{bucket}/k") == DATA
    gets = s3.gets(bucket)
    assert [signed_region(r) for r in gets] == ["us-east-1", "eu-west-1"]
    heads = [r for r in s3.requests if r.method == "HEAD"]
    assert len(heads) <= (1 if shape == "illegal-location" else 0)


# --------------------------------------------------------------- 7. what the error code means


def read_error(s3: StrictS3, bucket: str, key: str = "k", **claim: Any) -> BaseException:
    config = direct(s3, {"uri": f"s3://{bucket}", **claim} if claim else f"s3://{bucket}")
    with pytest.raises(Exception) as raised:
        fs_for(config, "acme").cat_file(f"s3://{bucket}/{key}")
    return raised.value


def test_signature_does_not_match_names_the_credentials(s3: StrictS3, bucket: str) -> None:
    s3.put(bucket, "k", DATA)
    s3.keys = {"testing": "another-secret"}
    err = read_error(s3, bucket)
    assert isinstance(err, attachfs.AccessDenied)
    assert "SignatureDoesNotMatch" in str(err)
    assert "secret" in (err.hint or "").lower()
    assert err.identity == "platform:aws"
    assert len(s3.gets()) == 1


def test_invalid_access_key_id_names_the_credentials(s3: StrictS3, bucket: str) -> None:
    s3.put(bucket, "k", DATA)
    s3.keys = {"AKIDSOMEONEELSE": "x"}
    err = read_error(s3, bucket)
    assert isinstance(err, attachfs.AccessDenied)
    assert "InvalidAccessKeyId" in str(err)
    assert "access key" in (err.hint or "").lower()
    assert len(s3.gets()) == 1


def test_request_time_too_skewed_names_the_clock_and_is_not_retried(s3: StrictS3,
        bucket: str) -> None:
    s3.put(bucket, "k", DATA)
    s3.clock_skew = dt.timedelta(hours=1)
    err = read_error(s3, bucket)
    assert isinstance(err, attachfs.AccessDenied)
    assert "RequestTimeTooSkewed" in str(err)
    assert "clock" in (err.hint or "").lower()
    assert len(s3.gets()) == 1


def test_expired_token_refreshes_the_credentials_once_and_retries(
        s3: StrictS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.put(bucket, "k", DATA)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-that-expired")
    s3.expired = {"token-that-expired"}
    s3.on_expired = lambda: os.environ.__setitem__("AWS_SESSION_TOKEN", "token-renewed")
    config = direct(s3, f"s3://{bucket}")
    assert fs_for(config, "acme").cat_file(f"s3://{bucket}/k") == DATA
    tokens = [r.headers.get("x-amz-security-token") for r in s3.gets()]
    assert tokens == ["token-that-expired", "token-renewed"]


def test_expired_token_twice_is_a_denial_after_one_refresh(
        s3: StrictS3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.put(bucket, "k", DATA)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-that-expired")
    s3.expired = {"token-that-expired"}
    err = read_error(s3, bucket)
    assert isinstance(err, attachfs.AccessDenied)
    assert "ExpiredToken" in str(err)
    assert "expired" in (err.hint or "").lower()
    assert len(s3.gets()) == 2


def test_kms_denial_names_kms_decrypt_on_the_key_in_both_policies(s3: StrictS3,
        bucket: str) -> None:
    key_arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    s3.bucket(bucket, kms_denied={key_arn})
    s3.put(bucket, "k", DATA, kms_key=key_arn)
    err = read_error(s3, bucket)
    assert isinstance(err, attachfs.AccessDenied)
    assert "kms:Decrypt" in (err.hint or "") and key_arn in (err.hint or "")
    assert "key policy" in (err.hint or "").lower()
    assert "s3:GetObject" not in (err.hint or "")
    assert len(s3.gets()) == 1


def test_an_archived_object_says_restore_it_first(s3: StrictS3, bucket: str) -> None:
    s3.put(bucket, "k", DATA, storage_class="GLACIER")
    err = read_error(s3, bucket)
    assert "InvalidObjectState" in str(err)
    assert "restore" in str(err).lower()
    assert len(s3.gets()) == 1


def test_a_missing_key_without_list_bucket_is_a_403_that_says_so(s3: StrictS3, bucket: str) -> None:
    s3.bucket(bucket, caller_may_list=False)
    err = read_error(s3, bucket, key="no-such-key")
    assert isinstance(err, attachfs.AccessDenied)
    assert "s3:ListBucket" in (err.hint or "")
    assert f"arn:aws:s3:::{bucket}" in (err.hint or "")
    assert "not exist" in (err.hint or "") or "missing" in (err.hint or "")


def test_ls_denied_names_list_bucket_not_get_object(s3: StrictS3, bucket: str) -> None:
    s3.bucket(bucket, caller_may_list=False)
    s3.put(bucket, "dir/k", DATA)
    fs = fs_for(direct(s3, f"s3://{bucket}"), "acme")
    with pytest.raises(attachfs.AccessDenied) as raised:
        fs.ls(f"s3://{bucket}/dir/")
    assert "s3:ListBucket" in (raised.value.hint or "")
    assert "s3:GetObject" not in (raised.value.hint or "")


def test_a_direct_denial_names_both_sides_of_the_grant(s3: StrictS3, bucket: str) -> None:
    """The platform identity's own IAM policy and the customer's bucket policy must both allow
    the read (https://docs.aws.amazon.com/IAM/latest/UserGuide/
    reference_policies_evaluation-logic-cross-account.html)."""
    s3.bucket(bucket, requester_pays=True)  # any plain 403 AccessDenied
    s3.put(bucket, "k", DATA)
    err = read_error(s3, bucket)
    assert isinstance(err, attachfs.AccessDenied)
    hint = (err.hint or "").lower()
    assert "bucket policy" in hint
    assert "iam policy" in hint or "identity policy" in hint


def test_requester_pays_is_an_opt_in_of_the_claim(s3: StrictS3, bucket: str) -> None:
    s3.bucket(bucket, requester_pays=True)
    s3.put(bucket, "k", DATA)
    config = direct(s3, {"uri": f"s3://{bucket}", "requester_pays": True})
    assert fs_for(config, "acme").cat_file(f"s3://{bucket}/k") == DATA
    [get] = s3.gets()
    assert get.headers["x-amz-request-payer"] == "requester"
    assert "x-amz-request-payer" in get.headers["Authorization"]


def test_requester_pays_opt_in_lists_too(s3: StrictS3, bucket: str) -> None:
    """Listings go through s3fs, which must send the header too."""
    s3.bucket(bucket, requester_pays=True)
    s3.put(bucket, "dir/k", DATA)
    config = direct(s3, {"uri": f"s3://{bucket}", "requester_pays": True})
    assert fs_for(config, "acme").ls(f"s3://{bucket}/dir/", detail=False) == [
        f"s3://{bucket}/dir/k"]
    [listing] = [r for r in s3.requests if r.query.get("list-type") == "2"]
    assert listing.headers["x-amz-request-payer"] == "requester"


# --------------------------------------------------------------- 8. an error document is data


def test_an_object_whose_content_is_an_xml_error_document_is_data(s3: StrictS3,
        bucket: str) -> None:
    content = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
               b"<Message>We encountered an internal error.</Message></Error>")
    s3.put(bucket, "saved-error.xml", content, content_type="application/xml")
    fs = fs_for(ambient(s3))
    assert fs.cat_file(f"s3://{bucket}/saved-error.xml") == content
    assert len(s3.gets()) == 1
