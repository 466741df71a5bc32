"""attachfs._uri as a spec: every URI form the design names, what it parses to, or why not."""

from __future__ import annotations

import dataclasses
import pathlib
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attachfs._redact import redact
from attachfs._uri import Location, S3Endpoint, parse


def ok(backend, bucket, key, account=None, region=None, version=None):
    return (backend, bucket, key, account, region, version)


class Err(str):
    """The expected ValueError message contains this text."""


S3_SIGNED = (
    "https://bkt.s3.us-west-2.amazonaws.com/dir/k.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLEKEYID%2F20250101%2Fus-west-2%2Fs3%2Faws4_request"
    "&X-Amz-Date=20250101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
    "&X-Amz-Signature=0123456789abcdef0123456789abcdefsignaturevalue"
)
S3_SECRETS = ("AKIAEXAMPLEKEYID", "FwoGZXIvYXdzEXAMPLESESSIONTOKEN",
              "0123456789abcdef0123456789abcdefsignaturevalue")

ROWS = [
    # --- native schemes: the key is literal text, never decoded ---------------------------
    ("s3://bkt/key", ok("s3", "bkt", "key")),
    ("s3a://bkt/key", ok("s3", "bkt", "key")),
    ("S3://bkt/Key", ok("s3", "bkt", "Key")),
    ("s3://bkt/a/b/c.parquet", ok("s3", "bkt", "a/b/c.parquet")),
    ("s3://bkt/dir/", ok("s3", "bkt", "dir/")),
    ("s3://bkt/a//b", ok("s3", "bkt", "a//b")),
    ("s3://bkt//lead", ok("s3", "bkt", "/lead")),
    ("s3://bkt/a b+c.txt", ok("s3", "bkt", "a b+c.txt")),
    ("s3://bkt/100%25.txt", ok("s3", "bkt", "100%25.txt")),
    ("s3://bkt/q?versionId=1", ok("s3", "bkt", "q?versionId=1")),
    ("s3://bkt/frag#1", ok("s3", "bkt", "frag#1")),
    ("s3://bkt/déjà vu/日本.txt", ok("s3", "bkt", "déjà vu/日本.txt")),
    ("s3://my.dotted.bucket/k", ok("s3", "my.dotted.bucket", "k")),
    ("gs://bkt/k", ok("gcs", "bkt", "k")),
    ("gcs://bkt/k", ok("gcs", "bkt", "k")),
    ("gs://bkt/obj#123", ok("gcs", "bkt", "obj#123")),
    ("gs://my_bkt/k", ok("gcs", "my_bkt", "k")),
    ("gs://a.b.example.com/k", ok("gcs", "a.b.example.com", "k")),
    ("az://cont/k", ok("azure", "cont", "k")),
    ("az://cont/a%20b", ok("azure", "cont", "a%20b")),
    ("az://cont@acct/k", ok("azure", "cont", "k", account="acct")),
    ("az://cont@acct.blob.core.windows.net/k", ok("azure", "cont", "k", account="acct")),
    ("abfs://cont/k", ok("azure", "cont", "k")),
    ("abfs://cont@acct.dfs.core.windows.net/a/b", ok("azure", "cont", "a/b", account="acct")),
    ("abfss://cont@acct.dfs.core.windows.net/a/b/", ok("azure", "cont", "a/b/", account="acct")),
    ("az://$web/index.html", ok("azure", "$web", "index.html")),
    ("abfss://cont@acct.dfs.core.usgovcloudapi.net/k", ok("azure", "cont", "k", account="acct")),
    # --- S3 https forms: decoded once, routed to S3, region kept as a hint ----------------
    ("https://s3.amazonaws.com/bkt/k", ok("s3", "bkt", "k")),
    ("https://s3-us-west-2.amazonaws.com/bkt/k", ok("s3", "bkt", "k", region="us-west-2")),
    ("https://s3.us-west-2.amazonaws.com/bkt/k", ok("s3", "bkt", "k", region="us-west-2")),
    ("https://bkt.s3.amazonaws.com/k", ok("s3", "bkt", "k")),
    ("https://bkt.s3.us-west-2.amazonaws.com/k", ok("s3", "bkt", "k", region="us-west-2")),
    ("https://bkt.s3-us-west-2.amazonaws.com/k", ok("s3", "bkt", "k", region="us-west-2")),
    ("https://s3.dualstack.us-west-2.amazonaws.com/bkt/k",
     ok("s3", "bkt", "k", region="us-west-2")),
    ("https://bkt.s3.dualstack.eu-central-1.amazonaws.com/k",
     ok("s3", "bkt", "k", region="eu-central-1")),
    ("https://bkt.s3-fips.us-east-1.amazonaws.com/k", ok("s3", "bkt", "k", region="us-east-1")),
    ("https://s3-external-1.amazonaws.com/bkt/k", ok("s3", "bkt", "k", region="us-east-1")),
    ("https://bkt.s3.cn-north-1.amazonaws.com.cn/k", ok("s3", "bkt", "k", region="cn-north-1")),
    ("https://s3.cn-northwest-1.amazonaws.com.cn/bkt/k",
     ok("s3", "bkt", "k", region="cn-northwest-1")),
    ("https://s3.us-gov-west-1.amazonaws.com/bkt/k", ok("s3", "bkt", "k", region="us-gov-west-1")),
    ("https://my.dotted.bucket.s3.us-east-2.amazonaws.com/k",
     ok("s3", "my.dotted.bucket", "k", region="us-east-2")),
    ("https://s3.us-west-2.amazonaws.com/my.dotted.bucket/k",
     ok("s3", "my.dotted.bucket", "k", region="us-west-2")),
    ("http://bkt.s3.amazonaws.com/k", ok("s3", "bkt", "k")),
    ("https://BKT.S3.AMAZONAWS.COM/Key", ok("s3", "bkt", "Key")),
    ("https://bkt.s3.amazonaws.com:443/k", ok("s3", "bkt", "k")),
    ("https://bkt.s3.amazonaws.com/a%2520b", ok("s3", "bkt", "a%20b")),
    # S3 decodes "+" in a request path as a space (the console's object URLs write spaces so)
    ("https://bkt.s3.amazonaws.com/a+b", ok("s3", "bkt", "a b")),
    ("https://bkt.s3.amazonaws.com/a%2Bb%20c", ok("s3", "bkt", "a+b c")),
    ("https://bkt.s3.amazonaws.com/caf%C3%A9/%E6%97%A5.txt", ok("s3", "bkt", "café/日.txt")),
    ("https://bkt.s3.amazonaws.com/a//b/", ok("s3", "bkt", "a//b/")),
    ("https://s3.amazonaws.com/bkt/a%2Fb", ok("s3", "bkt", "a/b")),
    ("https://bkt.s3.amazonaws.com/k?versionId=3HL4kqtJlcpXroDTDmJ",
     ok("s3", "bkt", "k", version="3HL4kqtJlcpXroDTDmJ")),
    ("https://bkt.s3.amazonaws.com/k?versionId=a%2Bb/c", ok("s3", "bkt", "k", version="a+b/c")),
    ("https://bkt.s3.amazonaws.com/k?response-content-type=text/plain&x-id=GetObject",
     ok("s3", "bkt", "k")),
    ("https://bkt.s3.amazonaws.com/k#frag", ok("s3", "bkt", "k")),
    # --- GCS https forms ------------------------------------------------------------------
    ("https://storage.googleapis.com/bkt/k", ok("gcs", "bkt", "k")),
    ("https://storage.cloud.google.com/bkt/k", ok("gcs", "bkt", "k")),
    ("https://bkt.storage.googleapis.com/k", ok("gcs", "bkt", "k")),
    ("https://my.dotted.bkt.storage.googleapis.com/k", ok("gcs", "my.dotted.bkt", "k")),
    ("https://storage.googleapis.com/bkt/%E2%82%AC%20sign+x", ok("gcs", "bkt", "€ sign+x")),
    ("https://storage.googleapis.com/bkt/k?generation=42", ok("gcs", "bkt", "k", version="42")),
    ("https://storage.googleapis.com/download/storage/v1/b/bkt/o/a%2Fb%2Fc.txt?alt=media",
     ok("gcs", "bkt", "a/b/c.txt")),
    ("https://www.googleapis.com/download/storage/v1/b/bkt/o/a%2Fb?alt=media",
     ok("gcs", "bkt", "a/b")),
    ("https://storage.googleapis.com/storage/v1/b/bkt/o/a%2Fb?alt=media",
     ok("gcs", "bkt", "a/b")),
    ("https://www.googleapis.com/storage/v1/b/bkt/o/x?alt=media&generation=1700000000000000",
     ok("gcs", "bkt", "x", version="1700000000000000")),
    ("https://storage.googleapis.com/download/storage/v1/b/bkt/o/a%252F?alt=media",
     ok("gcs", "bkt", "a%2F")),
    # --- Azure https forms ----------------------------------------------------------------
    ("https://acct.blob.core.windows.net/cont/k", ok("azure", "cont", "k", account="acct")),
    ("https://acct.dfs.core.windows.net/cont/a/b", ok("azure", "cont", "a/b", account="acct")),
    # sovereign clouds are Azure too (their own suffix, kept in the Location)
    ("https://acct.blob.core.chinacloudapi.cn/cont/k", ok("azure", "cont", "k", account="acct")),
    ("https://acct.blob.core.windows.net/cont/a%20b%2Bc+d",
     ok("azure", "cont", "a b+c+d", account="acct")),
    ("https://acct.blob.core.windows.net/$root/k", ok("azure", "$root", "k", account="acct")),
    ("https://acct.blob.core.windows.net/cont/dir/", ok("azure", "cont", "dir/", account="acct")),
    # --- signed URLs and everything else stay plain http, fetched as given -----------------
    (S3_SIGNED, ok("http", None, "dir/k.txt")),
    ("https://bkt.s3.amazonaws.com/k?AWSAccessKeyId=AKIAX&Expires=1700000000&Signature=abc%3D",
     ok("http", None, "k")),
    ("https://storage.googleapis.com/bkt/k?X-Goog-Algorithm=GOOG4-RSA-SHA256"
     "&X-Goog-Credential=sa%40p.iam.gserviceaccount.com&X-Goog-Signature=abcdef",
     ok("http", None, "bkt/k")),
    ("https://storage.googleapis.com/bkt/k?GoogleAccessId=sa%40p.iam.gserviceaccount.com"
     "&Expires=1700000000&Signature=abc%3D", ok("http", None, "bkt/k")),
    ("https://acct.blob.core.windows.net/cont/k?sv=2022-11-02&sr=b&sp=r&sig=abc%3D",
     ok("http", None, "cont/k")),
    ("https://storage.googleapis.com/bkt/k?key=AIzaEXAMPLE", ok("http", None, "bkt/k")),
    ("https://storage.googleapis.com/storage/v1/b/bkt/o/x",
     ok("http", None, "storage/v1/b/bkt/o/x")),
    ("https://example.com/files/a%20b%2520+c.pdf?x=1#top", ok("http", None, "files/a b%20+c.pdf")),
    ("https://example.com", ok("http", None, "")),
    ("http://example.com/", ok("http", None, "")),
    ("https://bkt.s3.amazonaws.com:8443/k", ok("http", None, "k")),
    ("https://bkt.s3-website-us-west-2.amazonaws.com/k", ok("http", None, "k")),
    # --- errors: what is wrong, and what to write instead -------------------------------
    ("", Err("empty URI")),
    ("s3://", Err("no bucket")),
    ("s3:///k", Err("no bucket")),
    ("s3://bkt", Err("empty key")),
    ("s3://bkt/", Err("empty key")),
    ("gs://bkt/", Err("empty key")),
    ("az://cont", Err("empty key")),
    ("https://s3.amazonaws.com/bkt/", Err("empty key")),
    ("https://storage.googleapis.com/", Err("no bucket")),
    ("https://acct.blob.core.windows.net/", Err("no container")),
    ("s3://ab/k", Err("must be 3-63 characters")),
    ("s3://" + "a" * 64 + "/k", Err("must be 3-63 characters")),
    ("s3://My-Bucket/k", Err("only lowercase letters, digits, dots and hyphens")),
    ("s3://my_bucket/k", Err("only lowercase letters, digits, dots and hyphens")),
    ("s3://-bkt/k", Err("must start and end with a letter or digit")),
    ("s3://bkt-/k", Err("must start and end with a letter or digit")),
    ("s3://a..b/k", Err("two adjacent dots")),
    ("s3://192.168.5.4/k", Err("IP address")),
    ("s3://xn--bkt/k", Err("reserved")),
    ("https://my_bkt.s3.amazonaws.com/k", Err("invalid S3 bucket name 'my_bkt'")),
    ("gs://goog-bkt/k", Err("must not start with 'goog'")),
    ("gs://my-google-bkt/k", Err("contain 'google'")),
    ("gs://Bkt/k", Err("invalid GCS bucket name 'Bkt'")),
    ("gs://_bkt/k", Err("must start and end with a letter or digit")),
    ("gs://" + "a" * 64 + "/k", Err("3-63 characters")),
    ("gs://" + "a" * 64 + ".b/k", Err("each dot-separated part 1-63")),
    ("gs://10.0.0.1/k", Err("IP address")),
    ("az://ab/k", Err("invalid Azure container name 'ab'")),
    ("az://co--nt/k", Err("invalid Azure container name")),
    ("az://Cont/k", Err("invalid Azure container name")),
    ("az://cont@ab/k", Err("invalid Azure storage account name 'ab'")),
    ("az://cont@my-acct/k", Err("invalid Azure storage account name")),
    ("az://cont@acct.blob.core.example.cn/k", Err("is not an Azure storage account")),
    ("https://my-acct.blob.core.windows.net/cont/k", Err("invalid Azure storage account name")),
    ("file:///etc/passwd", Err("unsupported scheme 'file'")),
    ("ftp://host/k", Err("unsupported scheme 'ftp'")),
    ("javascript:alert(1)", Err("unsupported scheme 'javascript'")),
    ("data:text/plain,hi", Err("unsupported scheme 'data'")),
    ("attach://s3://bkt/k", Err("attach:// is stripped by the filesystem")),
    ("bucket/key", Err("has no scheme; write s3://bucket/key, gs://bucket/key")),
    ("/abs/path.csv", Err("has no scheme")),
    ("s3:bkt/k", Err("missing '//' after 's3:'; write s3://bkt/k")),
    (" s3://bkt/k", Err("starts with whitespace")),
    ("s3://bkt/a\x00b", Err("control character U+0000")),
    ("s3://bkt/a\nb", Err("control character U+000A")),
    ("https://host/a\tb", Err("control character U+0009")),
    ("https://bkt.s3.amazonaws.com/a%00b", Err("decoded key contains control character U+0000")),
    ("https://example.com/a%0Ab", Err("decoded key contains control character U+000A")),
    ("https://bkt.s3.amazonaws.com/%FF", Err("not UTF-8")),
    ("https://user:pw@host/k", Err("credentials in URLs are refused")),
    ("https://user@bkt.s3.amazonaws.com/k", Err("credentials in URLs are refused")),
    ("s3://user:pw@bkt/k", Err("credentials in URLs are refused")),
    ("https://bkt.s3.amazonaws.com/k?acl", Err("query parameter 'acl' is not supported")),
    ("https://bkt.s3.amazonaws.com/k?versionId=", Err("needs exactly one non-empty versionId")),
    ("https://bkt.s3.amazonaws.com/k?versionId=1&versionId=2", Err("exactly one")),
    ("https://storage.googleapis.com/bkt/k?generation=abc", Err("is not a number")),
    ("https://storage.googleapis.com/bkt/k?userProject=p", Err("'userProject' is not supported")),
    ("https://acct.blob.core.windows.net/cont/k?snapshot=2024", Err("'snapshot' is not supported")),
    ("az://cont@acct.blob.core.example.com/k", Err("is not an Azure storage account")),
    ("https://bkt.s3.us-east-1.amazonaws.com.cn/k", Err("is not an S3 endpoint of region")),
    ("https://bkt.s3.cn-north-1.amazonaws.com/k", Err("is not an S3 endpoint of region")),
    ("https://bkt.s3.amazonaws.com.cn/k", Err("is not an S3 endpoint of region")),
    ("https:///path", Err("has no host")),
    ("https://host:abc/", Err("is not a valid URL")),
    ("https://[::1/", Err("is not a valid URL")),
]

# A bucket/container root is an error above; with require_key=False it is key "" (listing).
ROOT_ROWS = [
    ("s3://bkt", ok("s3", "bkt", "")),
    ("s3://bkt/", ok("s3", "bkt", "")),
    ("gs://bkt/", ok("gcs", "bkt", "")),
    ("az://cont@acct", ok("azure", "cont", "", account="acct")),
    ("https://bkt.s3.us-west-2.amazonaws.com/", ok("s3", "bkt", "", region="us-west-2")),
    ("https://storage.googleapis.com/bkt", ok("gcs", "bkt", "")),
    ("https://acct.blob.core.windows.net/cont/", ok("azure", "cont", "", account="acct")),
]

SUCCESS = [(uri, want, True) for uri, want in ROWS if not isinstance(want, Err)]
SUCCESS += [(uri, want, False) for uri, want in ROOT_ROWS]


def _fields(loc: Location):
    return (loc.backend, loc.bucket, loc.key, loc.account, loc.region, loc.version)


def test_table_is_big_enough():
    assert len(ROWS) + len(ROOT_ROWS) >= 70


@pytest.mark.parametrize(("uri", "want", "require_key"), SUCCESS)
def test_parse(uri, want, require_key):
    loc = parse(uri, require_key=require_key)
    assert _fields(loc) == want
    assert loc.url == (uri if want[0] == "http" else None)


@pytest.mark.parametrize(("uri", "want"), [r for r in ROWS if isinstance(r[1], Err)])
def test_parse_error(uri, want):
    with pytest.raises(ValueError) as info:
        parse(uri)
    assert want in str(info.value)
    if uri:  # the message names the URI it is about (redacted, as repr)
        assert str(info.value).startswith(repr(redact(uri)) + ": ")


@pytest.mark.parametrize(("uri", "want", "require_key"), SUCCESS)
def test_canonical_round_trip(uri, want, require_key):
    # The canonical URI carries no S3 hint (region, endpoint kind: s3://b/k) and no version (a
    # native key is literal, so s3://b/k?versionId=1 is another key): those are not compared.
    loc = parse(uri, require_key=require_key)
    again = parse(loc.uri, require_key=require_key)
    assert again == dataclasses.replace(loc, region=None, version=None, endpoint=None)
    assert again.uri == loc.uri


@pytest.mark.parametrize(("uri", "canonical"), [
    ("s3a://bkt/a b", "s3://bkt/a b"),
    ("https://bkt.s3-us-west-2.amazonaws.com/a%20b", "s3://bkt/a b"),
    ("gcs://bkt/k#1", "gs://bkt/k#1"),
    ("https://storage.googleapis.com/download/storage/v1/b/bkt/o/a%2Fb?alt=media", "gs://bkt/a/b"),
    ("az://cont/a b", "az://cont/a b"),
    ("abfss://cont@acct.dfs.core.windows.net/d/é f?#",
     "https://acct.blob.core.windows.net/cont/d/%C3%A9%20f%3F%23"),
    (S3_SIGNED, S3_SIGNED),
])
def test_canonical_uri(uri, canonical):
    assert parse(uri).uri == canonical


@pytest.mark.parametrize("value", [None, b"s3://bkt/k", 1, pathlib.PurePosixPath("s3:/bkt/k")])
def test_non_str_is_type_error(value):
    with pytest.raises(TypeError, match="uri must be a str"):
        parse(value)


@pytest.mark.parametrize(("uri", "endpoint", "host"), [
    ("https://bkt.s3.us-east-1.amazonaws.com/k", None, "s3.us-east-1.amazonaws.com"),
    ("https://bkt.s3.cn-north-1.amazonaws.com.cn/k", S3Endpoint("aws-cn"),
     "s3.cn-north-1.amazonaws.com.cn"),
    ("https://bkt.s3.us-gov-west-1.amazonaws.com/k", S3Endpoint("aws-us-gov"),
     "s3.us-gov-west-1.amazonaws.com"),
    ("https://bkt.s3-fips.us-east-1.amazonaws.com/k", S3Endpoint(fips=True),
     "s3-fips.us-east-1.amazonaws.com"),
    ("https://s3-fips.dualstack.us-gov-west-1.amazonaws.com/bkt/k",
     S3Endpoint("aws-us-gov", fips=True, dualstack=True),
     "s3-fips.dualstack.us-gov-west-1.amazonaws.com"),
    ("https://bkt.s3.dualstack.eu-west-1.amazonaws.com/k", S3Endpoint(dualstack=True),
     "s3.dualstack.eu-west-1.amazonaws.com"),
    ("https://bkt.s3-accelerate.amazonaws.com/k", S3Endpoint(accelerate=True),
     "s3-accelerate.amazonaws.com"),
    ("https://bkt.s3-accelerate.dualstack.amazonaws.com/k",
     S3Endpoint(dualstack=True, accelerate=True), "s3-accelerate.dualstack.amazonaws.com"),
])
def test_an_s3_url_keeps_its_kind_of_endpoint(uri, endpoint, host):
    # botocore's endpoint rules (endpoint-rule-set-1.json) name the same hosts.
    loc = parse(uri)
    assert loc.endpoint == endpoint
    assert (loc.endpoint or S3Endpoint()).service_host(loc.region or "us-east-1") == host
    assert loc.uri == "s3://bkt/k"


@pytest.mark.parametrize("uri", [
    "https://bkt.s3-fips.cn-north-1.amazonaws.com.cn/k",
    "https://bkt.s3-accelerate.amazonaws.com.cn/k",
])
def test_china_has_no_fips_or_accelerate_endpoints(uri):
    with pytest.raises(ValueError, match="is not an S3 endpoint"):
        parse(uri)


@pytest.mark.parametrize("uri", [
    "az://cont@acct.blob.core.usgovcloudapi.net/a b",
    "abfss://cont@acct.dfs.core.chinacloudapi.cn/a b",
    "https://acct.blob.core.usgovcloudapi.net/cont/a%20b",
])
def test_a_sovereign_azure_blob_keeps_its_cloud(uri):
    loc = parse(uri)
    assert loc.endpoint_suffix in ("core.usgovcloudapi.net", "core.chinacloudapi.cn")
    assert loc.uri == f"https://acct.blob.{loc.endpoint_suffix}/cont/a%20b"
    assert parse(loc.uri) == loc


def test_with_key_keeps_bucket_account_region_and_drops_version():
    loc = parse("https://bkt.s3.eu-west-1.amazonaws.com/old?versionId=v1")
    assert loc.with_key("new/k") == Location("s3", "bkt", "new/k", region="eu-west-1")
    az = parse("az://cont@acct/old")
    assert az.with_key("x").uri == "https://acct.blob.core.windows.net/cont/x"
    with pytest.raises(ValueError, match="http location"):
        parse("https://example.com/x").with_key("y")


def test_location_is_frozen_and_hashable():
    loc = parse("s3://bkt/k")
    with pytest.raises(dataclasses.FrozenInstanceError):
        loc.key = "other"  # type: ignore[misc]
    assert {loc, parse("s3a://bkt/k")} == {loc}


# --- property tests: any key survives every form it can be written in -----------------------

_KEY_CHARS = st.one_of(
    st.characters(exclude_categories=("Cc", "Cs")),
    st.sampled_from([" ", "+", "%", "%25", "%2F", "#", "?", "&", "=", "/", "//", "é", "日", "😀"]),
)
KEYS = st.builds(
    lambda parts, trailing: "".join(parts) + ("/" if trailing else ""),
    st.lists(_KEY_CHARS, min_size=1, max_size=30), st.booleans(),
)


@given(KEYS)
def test_native_keys_are_literal(key):
    assert parse(f"s3://bkt/{key}").key == key
    assert parse(f"gs://bkt/{key}").key == key
    assert parse(f"az://cont@acct/{key}").key == key


@given(KEYS)
def test_https_keys_are_decoded_once(key):
    path = quote(key, safe="/")
    assert parse(f"https://bkt.s3.amazonaws.com/{path}").key == key
    assert parse(f"https://s3.us-west-2.amazonaws.com/bkt/{path}").key == key
    assert parse(f"https://storage.googleapis.com/bkt/{path}").key == key
    assert parse(f"https://bkt.storage.googleapis.com/{path}").key == key
    json_api = f"https://storage.googleapis.com/download/storage/v1/b/bkt/o/{quote(key, safe='')}"
    assert parse(json_api + "?alt=media").key == key
    assert parse(f"https://acct.blob.core.windows.net/cont/{path}").key == key


@given(KEYS)
def test_canonical_round_trip_any_key(key):
    for uri in (f"s3://bkt/{key}", f"gs://bkt/{key}", f"az://cont/{key}",
                f"az://cont@acct/{key}"):
        loc = parse(uri)
        assert parse(loc.uri) == loc


# --- secrets: never in redact(), repr(), str() or an error message ------------------------

def test_redact_presigned_s3():
    out = redact(S3_SIGNED)
    for secret in S3_SECRETS:
        assert secret not in out
    assert out == (
        "https://bkt.s3.us-west-2.amazonaws.com/dir/k.txt?X-Amz-Algorithm=REDACTED"
        "&X-Amz-Credential=REDACTED&X-Amz-Date=REDACTED&X-Amz-Expires=REDACTED"
        "&X-Amz-SignedHeaders=REDACTED&X-Amz-Security-Token=REDACTED&X-Amz-Signature=REDACTED"
    )


def test_signed_url_repr_and_str_hide_the_signature():
    loc = parse(S3_SIGNED)
    assert loc.url == S3_SIGNED  # fetched exactly as given
    for text in (repr(loc), str(loc), f"{loc}", repr([loc])):
        for secret in S3_SECRETS:
            assert secret not in text
        assert "X-Amz-Signature=REDACTED" in text


@pytest.mark.parametrize("bad", [
    S3_SIGNED.replace("https://", "https://user:hunter2@"),
    S3_SIGNED.replace("https://", "ftp://"),
    S3_SIGNED.replace("dir/", "dir\x00/"),
    S3_SIGNED.replace(".com/", ".com:99999/"),
    S3_SIGNED.replace("https://", ""),
])
def test_errors_never_echo_the_signature(bad):
    with pytest.raises(ValueError) as info:
        parse(bad)
    for secret in (*S3_SECRETS, "hunter2"):
        assert secret not in str(info.value)


# Every parameter keeps its name and loses its value, whatever the name: a credential may sit
# under any name (?code=, ?token=, ?Authorization=, a vendor's own).
@pytest.mark.parametrize(("url", "want"), [
    ("https://user:pw@host/p?a=1", "https://host/p?a=REDACTED"),
    ("https://token@host/p", "https://host/p"),
    ("https://h/p?sig=abc%3D&sv=2022&se=x", "https://h/p?sig=REDACTED&sv=REDACTED&se=REDACTED"),
    ("https://h/p?GoogleAccessId=sa&Signature=abc",
     "https://h/p?GoogleAccessId=REDACTED&Signature=REDACTED"),
    ("https://h/p?X-Goog-Credential=c&X-Goog-Signature=s",
     "https://h/p?X-Goog-Credential=REDACTED&X-Goog-Signature=REDACTED"),
    ("https://h/p?access_token=t&API_KEY=k&client_secret=s&versionId=v",
     "https://h/p?access_token=REDACTED&API_KEY=REDACTED&client_secret=REDACTED&versionId=REDACTED"),
    ("https://h/cb#access_token=t&state=s", "https://h/cb#access_token=REDACTED&state=REDACTED"),
    ("https://h/p?alt=media&generation=1", "https://h/p?alt=REDACTED&generation=REDACTED"),
    # A bare item may be the credential itself (``?<token>``): it is a value, masked whole.
    ("https://h/p?code=abc&Authorization=xyz&flag", "https://h/p?code=REDACTED&Authorization=REDACTED&REDACTED"),
    ("https://h/a;jsessionid=s3cr3t/b", "https://h/a;jsessionid=REDACTED/b"),
    ("az://cont@acct/k", "az://cont@acct/k"),
    ("s3://bkt/plain key", "s3://bkt/plain key"),
])
def test_redact(url, want):
    assert redact(url) == want
