"""The one error table (attachfs._read.errors), row by row: what each cloud's error code becomes
(the status and code in the message, the exception, the hint for that code and for the
operation that failed) and that docs/troubleshooting.md shows no code this table does not.

The end-to-end tests against the strict fakes (tests/test_strict_*.py) prove the codes are
parsed from real answers; these rows pin every code, including the ones no fake models.
Sources: S3 https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html; GCS
https://cloud.google.com/storage/docs/json_api/v1/status-codes; Azure
https://learn.microsoft.com/rest/api/storageservices/blob-service-error-codes.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import pytest

import attachfs
from attachfs._config import load_config
from attachfs._read import errors
from attachfs._rules import route
from attachfs._uri import parse

APP = "0d3c3a5e-1111-4222-8333-944445555666"
ROLE = "arn:aws:iam::111122223333:role/Reader"
KMS = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CONFIG = load_config({
    "platform": {"aws": {"role_name": "Reader"},
                 "azure": {"client_id": APP, "client_secret_env": "X_SECRET"}},
    "tenants": {
        "acme": {"aws": {"account_id": "111122223333", "external_id": "acme-1"},
                 "gcp": {"service_account": "r@acme.iam.gserviceaccount.com"},
                 "azure": {"tenant_id": "2b0c6c1e-0000-0000-0000-000000000000"}},
        "globex": {"direct": ["s3://globex-data", "gs://globex-data"]},
    }})
URIS = {"s3": "s3://{b}-data/k", "gcs": "gs://{b}-data/k",
        "azure": "https://acct.blob.core.windows.net/cont/k",
        "s3-version": "https://{b}-data.s3.amazonaws.com/k?versionId=v1"}

# (id, tenant, backend, status, code, message, operation, says, never says)
ROWS: list[tuple[str, str, str, int, str, str, str, list[str], list[str]]] = [
    ("s3-denied-direct", "globex", "s3", 403, "AccessDenied", "Access Denied", "read",
     ["bucket policy", "IAM policy", "s3:GetObject", "s3:ListBucket", "does not exist"], []),
    ("s3-denied-role", "acme", "s3", 403, "AccessDenied", "Access Denied", "read",
     [ROLE, "s3:GetObject on arn:aws:s3:::acme-data/*"], []),
    ("s3-version", "acme", "s3", 403, "AccessDenied", "Access Denied", "read",
     ["s3:GetObjectVersion on arn:aws:s3:::acme-data/*"], []),
    ("s3-ls-denied", "acme", "s3", 403, "AccessDenied", "Access Denied", "list",
     ["s3:ListBucket on arn:aws:s3:::acme-data"], ["s3:GetObject"]),
    ("s3-kms", "acme", "s3", 403, "AccessDenied",
     f"not authorized to perform: kms:Decrypt on resource: {KMS}", "read",
     ["kms:Decrypt", KMS, "key policy", ROLE], ["s3:GetObject"]),
    ("s3-signature", "globex", "s3", 403, "SignatureDoesNotMatch", "", "read",
     ["secret access key"], ["bucket policy"]),
    ("s3-access-key", "globex", "s3", 403, "InvalidAccessKeyId", "", "read",
     ["access key id"], ["bucket policy"]),
    ("s3-token", "acme", "s3", 400, "InvalidToken", "", "read", ["session token"], []),
    ("s3-expired", "acme", "s3", 400, "ExpiredToken", "", "read", ["expired"], []),
    ("s3-clock", "globex", "s3", 403, "RequestTimeTooSkewed", "", "read", ["clock"], []),
    ("s3-archived", "globex", "s3", 403, "InvalidObjectState", "", "read",
     ["restore", "restore-object"], ["s3:GetObject"]),
    ("gcs-denied", "globex", "gcs", 403, "forbidden", "", "read",
     ["storage.objects.get", "uniform bucket-level access"], []),
    ("gcs-ls-denied", "acme", "gcs", 403, "forbidden", "", "list",
     ["storage.objects.list"], ["storage.objects.get"]),
    ("gcs-requester-pays", "globex", "gcs", 400, "UserProjectMissing",
     "Bucket is a requester pays bucket but no user project provided.", "read",
     ["requester pays", "user_project"], []),
    ("azure-role", "acme", "azure", 403, "AuthorizationPermissionMismatch", "", "read",
     ["Storage Blob Data Reader", "minutes"], []),
    ("azure-firewall", "acme", "azure", 403, "AuthorizationFailure", "", "read",
     ["network rules", "firewall"], ["Storage Blob Data Reader"]),
    ("azure-authentication", "acme", "azure", 403, "AuthenticationFailed", "", "read",
     ["credential"], ["Storage Blob Data Reader"]),
    ("azure-archived", "acme", "azure", 409, "BlobArchived", "", "read",
     ["rehydrate"], ["Storage Blob Data Reader"]),
]


def refused(backend: str, status: int, code: str, message: str, uri: str) -> BaseException:
    said = errors.Said(status, code, message)
    with pytest.raises(Exception) as raised:
        errors.raise_for_status(uri, backend, status, said, None)
    return raised.value


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_each_code_says_what_to_change(row: tuple[Any, ...]) -> None:
    _, tenant, backend, status, code, message, operation, says, never = row
    r = route(CONFIG, tenant, parse(URIS[row[0] if row[0] in URIS else backend].format(
        b=tenant)))
    raw = refused(backend, status, code, message, r.uri)
    assert isinstance(raw, errors.Refused)  # final: never retried
    assert errors.transient(raw) is None
    err = errors.translate(r, raw, operation)
    assert isinstance(err, attachfs.AccessDenied)
    assert f"HTTP {status} {code}" in str(err)
    assert f"refused to {operation} " in str(err)
    assert err.identity == r.identity and err.hint and err.hint in str(err)
    for words in says:
        assert words in err.hint, (words, err.hint)
    for words in never:
        assert words not in err.hint, (words, err.hint)
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.hint) == (str(err), err.hint)


def test_a_private_container_read_anonymously_says_connect_the_directory() -> None:
    r = route(CONFIG, "globex", parse(URIS["azure"]))
    assert r.grant.kind == "anonymous"
    for code, hinted in (("ResourceNotFound", True), ("BlobNotFound", False)):
        err = errors.translate(r, refused("azure", 404, code, "", r.uri))
        assert isinstance(err, attachfs.NotFound)
        assert code in str(err)
        assert ("tenants.globex.azure" in str(err)) == hinted


def test_the_cloud_message_is_parsed_but_never_shown() -> None:
    body = (b'<?xml version="1.0"?><Error><Code>SignatureDoesNotMatch</Code><Message>The '
            b"signature...</Message><StringToSign>AWS4-HMAC-SHA256 secret-ish</StringToSign>"
            b"<CanonicalRequest>x-amz-security-token:FwoGZXIvYXdzTOKEN</CanonicalRequest>"
            b"<StorageClass>GLACIER</StorageClass></Error>")
    said = errors.said("s3", 403, {}, body)
    assert (said.code, said.field("StorageClass")) == ("SignatureDoesNotMatch", "GLACIER")
    assert "FwoGZXIvYXdzTOKEN" not in repr(said) + str(said.fields) + said.message
    gcs = errors.said("gcs", 400, {}, b'{"error": {"code": 400, "message": "Bucket is a '
                                      b'requester pays bucket but no user project provided.",'
                                      b' "errors": [{"reason": "required"}]}}')
    assert gcs.code == "UserProjectMissing"
    azure = errors.said("azure", 403, {"x-ms-error-code": "AuthorizationFailure"}, b"")
    assert azure.code == "AuthorizationFailure"


def test_the_troubleshooting_table_shows_only_codes_the_table_knows() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md").read_text()
    section = page.split("## What the cloud answered", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| [^|]*?`([A-Za-z]+)`", section, re.M))
    tested = {row[4] for row in ROWS} | {"ResourceNotFound", "BlobNotFound"}
    # Region errors are followed, never shown (test_strict_s3); generateAccessToken refusals
    # come from the credential layer (test_strict_gcs, test_tenancy_gcs).
    elsewhere = {"PermanentRedirect", "generateAccessToken"}
    assert documented, "no codes found in docs/troubleshooting.md"
    assert documented - tested - elsewhere == set()
