"""S3 partitions and endpoint kinds, read with no ``endpoint_url``: the host names attachfs
connects to, seen by a strict S3 on loopback port 443 (tests/fakes/strict_names.py resolves
the AWS names there and refuses every other name).

The host each URL must be read from is botocore's, from its endpoint rules
(``botocore/data/s3/2006-03-01/endpoint-rule-set-1.json``, resolved by
``botocore/regionprovider``'s ``EndpointRulesetResolver``): China (``.amazonaws.com.cn``),
GovCloud, FIPS (``s3-fips``), dualstack and Transfer Acceleration each have their own host
names. A FIPS URL must never be read over a non-FIPS host, nor a China URL through
``.amazonaws.com``, not even after a region redirect. ``x-amz-bucket-region`` is checked as
botocore's ``validate_region_name`` does (a host label) before it goes into a host name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config as BotoConfig

import attachfs
from conftest import TEST_CA
from fakes.strict_names import LoopbackNames, can_bind, loopback_address, sni_context
from fakes.strict_s3 import StrictS3

DATA = b"partitioned bytes " * 100


@pytest.fixture(scope="module")
def aws_on_loopback() -> Iterator[tuple[StrictS3, str]]:
    address = loopback_address(1)
    refused = can_bind(address, 443)
    if refused:
        pytest.skip(refused)
    with StrictS3(host=address, port=443, ssl_context=sni_context(TEST_CA.ca)) as fake:
        yield fake, address


@pytest.fixture
def s3(aws_on_loopback: tuple[StrictS3, str]) -> Iterator[tuple[StrictS3, LoopbackNames]]:
    fake, address = aws_on_loopback
    fake.buckets.clear()
    fake.clear_requests()
    names = LoopbackNames()
    names.route("amazonaws.com", address)
    names.route("amazonaws.com.cn", address)
    with names.installed():
        yield fake, names


def botocore_host(bucket: str, region: str, **options: Any) -> str:
    """The virtual-hosted host botocore's endpoint rules give (presigning makes no request).

    Virtual addressing is asked for explicitly: otherwise botocore's presigner picks the
    "global" endpoint of the aws partition (``botocore/signers.py``
    ``_should_use_global_endpoint``), a presigning quirk (a FIPS URL of us-west-2 comes out
    as ``s3-fips.us-east-1``) that its requests do not share."""
    options = {**options, "s3": {**options.get("s3", {}), "addressing_style": "virtual"}}
    client = boto3.client("s3", region_name=region, config=BotoConfig(**options))
    url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"})
    return str(urlsplit(url).hostname)


def read(uri: str) -> bytes:
    fs = attachfs.filesystem(config={"platform": {"aws": {}}}, skip_instance_cache=True)
    return bytes(fs.cat_file(uri))


PARTITIONS = [
    # (URL template, bucket's region, botocore options for the same endpoint kind)
    ("https://{b}.s3.cn-north-1.amazonaws.com.cn/k", "cn-north-1", {}),
    ("https://{b}.s3.us-gov-west-1.amazonaws.com/k", "us-gov-west-1", {}),
    ("https://{b}.s3-fips.us-east-1.amazonaws.com/k", "us-east-1",
     {"use_fips_endpoint": True}),
    ("https://{b}.s3-fips.dualstack.us-gov-west-1.amazonaws.com/k", "us-gov-west-1",
     {"use_fips_endpoint": True, "use_dualstack_endpoint": True}),
    ("https://{b}.s3.dualstack.eu-west-1.amazonaws.com/k", "eu-west-1",
     {"use_dualstack_endpoint": True}),
    ("https://{b}.s3-accelerate.amazonaws.com/k", "us-east-1",
     {"s3": {"use_accelerate_endpoint": True}}),
]


@pytest.mark.parametrize("template, region, options", PARTITIONS,
                         ids=["china", "govcloud", "fips", "fips-dualstack-gov", "dualstack",
                              "accelerate"])
def test_a_url_is_read_from_its_own_kind_of_endpoint(
        s3: tuple[StrictS3, LoopbackNames], names: Any, template: str, region: str,
        options: dict[str, Any]) -> None:
    fake, resolver = s3
    bucket = str(names("pt"))
    fake.bucket(bucket, region=region)
    fake.put(bucket, "k", DATA)
    assert read(template.format(b=bucket)) == DATA
    expected = botocore_host(bucket, region, **options)
    assert [r.headers["Host"] for r in fake.gets()] == [expected]
    assert resolver.asked == [expected]


@pytest.mark.parametrize("template, home, moved, kind", [
    ("https://{b}.s3-fips.us-east-1.amazonaws.com/k", "us-east-1", "us-west-2", "fips"),
    ("https://{b}.s3.cn-north-1.amazonaws.com.cn/k", "cn-north-1", "cn-northwest-1", "china"),
], ids=["fips", "china"])
def test_a_region_redirect_keeps_the_endpoint_kind(
        s3: tuple[StrictS3, LoopbackNames], names: Any, template: str, home: str, moved: str,
        kind: str) -> None:
    fake, resolver = s3
    bucket = str(names("rd"))
    fake.bucket(bucket, region=moved, region_error="redirect")
    fake.put(bucket, "k", DATA)
    assert read(template.format(b=bucket)) == DATA
    hosts = [r.headers["Host"] for r in fake.gets()]
    options = {"use_fips_endpoint": True} if kind == "fips" else {}
    assert hosts == [botocore_host(bucket, home, **options),
                     botocore_host(bucket, moved, **options)]
    if kind == "fips":
        assert all(".s3-fips." in name for name in resolver.asked)
    else:
        assert all(name.endswith(".amazonaws.com.cn") for name in resolver.asked)


@pytest.mark.parametrize("region_header", [
    "attacker.test:443/x?", "us-east-1.attacker.test", "eu-west-1#", "../..",
    "eu-west-1@attacker.test",
])
def test_x_amz_bucket_region_is_validated_before_it_names_a_host(
        s3: tuple[StrictS3, LoopbackNames], names: Any, region_header: str) -> None:
    fake, resolver = s3
    bucket = str(names("rv"))
    fake.bucket(bucket, region="eu-west-1", region_error="redirect",
                region_header=region_header)
    fake.put(bucket, "k", DATA)
    with pytest.raises((OSError, ValueError)):
        read(f"s3://{bucket}/k")
    assert resolver.asked == [f"{bucket}.s3.us-east-1.amazonaws.com"]
    assert len(fake.gets()) == 1


def test_a_listing_is_made_from_the_same_kind_of_endpoint(
        s3: tuple[StrictS3, LoopbackNames], names: Any) -> None:
    """``ls`` goes through s3fs (botocore), not the reader: the FIPS URL's listing must stay
    on FIPS hosts too."""
    fake, resolver = s3
    bucket = str(names("ls"))
    fake.bucket(bucket, region="us-east-1")
    fake.put(bucket, "dir/k", DATA)
    fs = attachfs.filesystem(config={"platform": {"aws": {}}}, skip_instance_cache=True)
    listed = fs.ls(f"https://{bucket}.s3-fips.us-east-1.amazonaws.com/dir/", detail=False)
    assert listed == ["s3://" + bucket + "/dir/k"]
    assert resolver.asked and all(".s3-fips." in name for name in resolver.asked)
