"""URLs the way the clouds read them, through ``attachfs.explain`` (no request is made).

* ``+`` in the path of an S3 https URL is a space: S3 decodes request paths that way and the S3
  console's object URLs write spaces as ``+``; ``%2B`` is a plus. In ``s3://`` URIs a ``+`` is
  literal, as in the AWS CLI (``aws s3 cp s3://b/a+b .`` reads key ``a+b``).
* Azure's sovereign clouds serve blobs at their own suffixes
  (https://learn.microsoft.com/azure/storage/common/storage-account-overview#storage-account-
  endpoints; the Azure SDK's ``azure.core`` and azure-identity ``AzureAuthorityHosts`` list
  their authorities): those URLs are Azure blobs, read through the Azure backend, and their
  canonical URI keeps the cloud they name.
"""

from __future__ import annotations

import pytest

import attachfs

S3_SPACE_URLS = [
    "https://bkt-one.s3.amazonaws.com/two+words/file+name.txt",
    "https://bkt-one.s3.us-west-2.amazonaws.com/two+words/file+name.txt",
    "https://bkt-one.s3-us-west-2.amazonaws.com/two+words/file+name.txt",
    "https://bkt-one.s3.dualstack.eu-west-1.amazonaws.com/two+words/file+name.txt",
    "https://s3.amazonaws.com/bkt-one/two+words/file+name.txt",
    "https://s3.us-west-2.amazonaws.com/bkt-one/two+words/file+name.txt",
    "https://bkt-one.s3.cn-north-1.amazonaws.com.cn/two+words/file+name.txt",
    "https://bkt-one.s3.amazonaws.com/two%20words/file+name.txt",
]


@pytest.mark.parametrize("url", S3_SPACE_URLS)
def test_plus_in_an_s3_https_url_is_a_space(url: str) -> None:
    route = attachfs.explain(url)
    assert route.backend == "s3"
    assert route.location.key == "two words/file name.txt"
    assert route.uri == "s3://bkt-one/two words/file name.txt"


@pytest.mark.parametrize("uri, key", [
    ("https://bkt-one.s3.amazonaws.com/a%2Bb.txt", "a+b.txt"),
    ("https://s3.us-east-1.amazonaws.com/bkt-one/a%2Bb+c.txt", "a+b c.txt"),
    ("s3://bkt-one/a+b.txt", "a+b.txt"),
    ("s3://bkt-one/a%2Bb.txt", "a%2Bb.txt"),
    ("https://storage.googleapis.com/bkt-one/a+b.txt", "a+b.txt"),
])
def test_percent_2b_is_a_plus_and_a_native_plus_is_literal(uri: str, key: str) -> None:
    assert attachfs.explain(uri).location.key == key


SOVEREIGN_BLOBS = [
    ("https://acct1.blob.core.usgovcloudapi.net/cont1/dir/k.bin", "usgovcloudapi.net"),
    ("https://acct1.blob.core.chinacloudapi.cn/cont1/dir/k.bin", "chinacloudapi.cn"),
    ("https://acct1.dfs.core.usgovcloudapi.net/cont1/dir/k.bin", "usgovcloudapi.net"),
    ("https://acct1.dfs.core.chinacloudapi.cn/cont1/dir/k.bin", "chinacloudapi.cn"),
]


@pytest.mark.parametrize("url, suffix", SOVEREIGN_BLOBS)
def test_sovereign_cloud_blob_urls_are_azure_blobs(url: str, suffix: str) -> None:
    route = attachfs.explain(url)
    assert route.backend == "azure"
    assert (route.location.account, route.location.bucket, route.location.key) == (
        "acct1", "cont1", "dir/k.bin")
    assert suffix in route.uri  # never the public cloud's blob.core.windows.net
    assert attachfs.explain(route.uri).location == route.location


def test_a_sovereign_blob_url_with_a_sas_stays_a_plain_url() -> None:
    url = "https://acct1.blob.core.usgovcloudapi.net/cont1/k.bin?sv=2022-11-02&sig=abc%3D"
    assert attachfs.explain(url).backend == "http"
