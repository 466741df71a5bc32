"""GCS reads against the strict GCS fake (tests/fakes/strict_gcs.py), where Google Cloud
Storage answers differently from fake-gcs-server.

Sections: a 200 answering a ranged GET; generations (``generation=`` selects a revision,
``ifGenerationMatch`` pins the live object only); what a 400/403 means; an object whose content
is an XML error document; gzip-encoded objects read through ``gs://`` and through a signed URL.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attachfs
from fakes.gce_metadata import FakeMetadata
from fakes.google_iam import FakeGoogle
from fakes.strict_gcs import StrictGcs

DATA = b"attachment bytes " * 600  # 10,200 bytes


@pytest.fixture(scope="module")
def server() -> Iterator[StrictGcs]:
    with StrictGcs() as fake:
        yield fake


@pytest.fixture
def gcs(server: StrictGcs) -> StrictGcs:
    server.reset()
    return server


@pytest.fixture
def bucket(names: Any) -> str:
    return str(names("g"))


def ambient(gcs: StrictGcs) -> dict[str, Any]:
    return {"platform": {"gcp": {"endpoint_url": gcs.url, "credentials": "anonymous"},
                         "http": {"allow_private_networks": True}}}


def direct(gcs: StrictGcs, *claims: Any) -> dict[str, Any]:
    """Tenant ``acme`` reads its claimed buckets as the platform's Google identity."""
    return {**ambient(gcs), "tenants": {"acme": {"direct": list(claims)}}}


def fs_for(config: dict[str, Any], tenant: str | None = None) -> Any:
    return attachfs.filesystem(config=config, tenant=tenant, skip_instance_cache=True)


# --------------------------------------------------------------- 1. a 200 is not the range


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(1, 3000), data=st.data())
def test_a_ranged_get_answered_200_with_the_whole_object(gcs: StrictGcs, bucket: str,
                                                         size: int, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, size - 1), label="offset")
    length = data.draw(st.integers(1, size - offset + 10), label="length")
    body = os.urandom(size)
    name = f"obj-{size}-{offset}-{length}"
    gcs.put(bucket, name, body)
    gcs.honour_range = False
    fs = fs_for(ambient(gcs))
    uri = f"gs://{bucket}/{name}"
    assert fs.cat_file(uri, start=offset, end=offset + length) == body[offset:offset + length]
    with fs.open(uri, block_size=length) as f:
        assert f.size == size
        f.seek(offset)
        assert f.read(length) == body[offset:offset + length]


# --------------------------------------------------------------- 2. generations


GENERATION_URLS = [
    "https://storage.googleapis.com/{bucket}/{name}?generation={generation}",
    "https://{bucket}.storage.googleapis.com/{name}?generation={generation}",
    "https://storage.cloud.google.com/{bucket}/{name}?generation={generation}",
    "https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/{name}"
    "?alt=media&generation={generation}",
    "https://www.googleapis.com/storage/v1/b/{bucket}/o/{name}?generation={generation}"
    "&alt=media",
]


@pytest.mark.parametrize("template", GENERATION_URLS)
def test_a_url_naming_a_generation_reads_that_revision(gcs: StrictGcs, bucket: str,
                                                       template: str) -> None:
    old = gcs.put(bucket, "report.csv", b"revision one " * 100)
    gcs.put(bucket, "report.csv", b"revision two, live " * 100)
    url = template.format(bucket=bucket, name="report.csv", generation=old.generation)
    fs = fs_for(ambient(gcs))

    assert fs.cat_file(url) == old.data
    with fs.open(url, block_size=256) as f:  # several ranged requests
        assert f.read() == old.data
    gets = gcs.gets()
    assert len(gets) > 2
    assert [r.query.get("generation") for r in gets] == [str(old.generation)] * len(gets)
    assert not [r for r in gets if "ifGenerationMatch" in r.query]


def test_the_live_object_replaced_mid_read_names_the_generation_it_was(gcs: StrictGcs,
                                                                       bucket: str) -> None:
    first = gcs.put(bucket, "live.bin", DATA)
    fs = fs_for(ambient(gcs))
    with fs.open(f"gs://{bucket}/live.bin", block_size=1000) as f:
        assert f.read(10) == DATA[:10]
        gcs.put(bucket, "live.bin", DATA[::-1])
        f.seek(5000)
        with pytest.raises(attachfs.IntegrityError) as raised:
            f.read(10)
    assert str(first.generation) in str(raised.value)
    assert "None" not in str(raised.value)


# --------------------------------------------------------------- 7. what GCS said


def test_requester_pays_without_opt_in_says_so(gcs: StrictGcs, bucket: str) -> None:
    gcs.bucket(bucket, requester_pays=True)
    gcs.put(bucket, "k", DATA)
    with pytest.raises(Exception) as raised:
        fs_for(direct(gcs, f"gs://{bucket}"), "acme").cat_file(f"gs://{bucket}/k")
    text = str(raised.value)
    assert "requester pays" in text.lower()
    assert "user_project" in text
    assert len(gcs.gets()) == 1


def test_requester_pays_is_an_opt_in_of_the_claim(gcs: StrictGcs, bucket: str) -> None:
    gcs.bucket(bucket, requester_pays=True)
    gcs.put(bucket, "k", DATA)
    config = direct(gcs, {"uri": f"gs://{bucket}", "user_project": "platform-billing"})
    assert fs_for(config, "acme").cat_file(f"gs://{bucket}/k") == DATA
    assert [r.query.get("userProject") for r in gcs.gets()] == ["platform-billing"]


def test_a_403_names_the_permission_and_uniform_bucket_level_access(gcs: StrictGcs,
                                                                    bucket: str) -> None:
    """With uniform bucket-level access only IAM on the bucket grants a read: an object ACL
    does not (https://cloud.google.com/storage/docs/uniform-bucket-level-access)."""
    gcs.bucket(bucket, forbidden=True)
    with pytest.raises(attachfs.AccessDenied) as raised:
        fs_for(direct(gcs, f"gs://{bucket}"), "acme").cat_file(f"gs://{bucket}/k")
    hint = (raised.value.hint or "")
    assert "storage.objects.get" in hint
    assert "uniform bucket-level access" in hint.lower()
    assert raised.value.identity == "platform:gcp"


VM_SA = "vm-default@vm-project.iam.gserviceaccount.com"
TENANT_SA = "reader@acme-prod.iam.gserviceaccount.com"


def test_a_vm_whose_access_scopes_forbid_impersonation_is_told_so(gcs: StrictGcs, bucket: str,
                                                                  tmp_path: Path) -> None:
    """The platform runs on a VM with the default access scopes: its token lacks
    cloud-platform, so generateAccessToken answers 403 "insufficient authentication scopes"
    although the VM's service account holds Token Creator. The fix is the VM's scopes (or a
    key), not another Token Creator grant. Run as the CLI in a child process: google-auth reads
    the metadata server's address from the environment when it is first imported."""
    gcs.put(bucket, "k", DATA)
    with FakeGoogle(project_id="vm-project") as google, FakeMetadata(
            VM_SA, ["https://www.googleapis.com/auth/devstorage.read_only"],
            lambda email, scopes: google._issue(email, scopes, 3600, "gce-metadata")[0],
    ) as metadata:
        google.grant_token_creator(VM_SA, TENANT_SA)
        config = tmp_path / "attachfs.toml"
        config.write_text(f"""
[platform.gcp]
endpoint_url = "{gcs.url}"
iam_endpoint_url = "{google.url}"
[tenants.acme]
gcp = {{ service_account = "{TENANT_SA}" }}
""")
        host = f"127.0.0.1:{metadata.port}"
        env = {**os.environ, "GCE_METADATA_HOST": host, "GCE_METADATA_IP": host,
               "NO_GCE_CHECK": "false"}
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from attachfs._cli.commands import main; "
             "sys.exit(main(sys.argv[1:]))", "cat", "--json", "--config", str(config),
             "--tenant", "acme", f"gs://{bucket}/k"],
            capture_output=True, env=env, timeout=120, check=False)
        refused = [r for r in google.requests if r.path.endswith(":generateAccessToken")]
    assert [r.status for r in refused] == [403]  # the scopes, not the grant: it is there
    assert done.returncode != 0 and done.stdout == b""
    error = json.loads(done.stderr)["error"]
    text = (error["message"] + " " + str(error.get("hint"))).lower()
    assert "scope" in text
    assert "cloud-platform" in str(error.get("hint"))
    assert gcs.gets() == []


# --------------------------------------------------------------- 8. an error document is data


def test_an_object_whose_content_is_an_xml_error_document_is_data(gcs: StrictGcs,
                                                                  bucket: str) -> None:
    content = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError</Code>"
               b"<Message>We encountered an internal error. Please try again.</Message></Error>")
    gcs.put(bucket, "error.xml", content, content_type="application/xml")
    assert fs_for(ambient(gcs)).cat_file(f"gs://{bucket}/error.xml") == content
    assert len(gcs.gets()) == 1


# --------------------------------------------------------------- 10. gzip-encoded objects

TEXT = b"a,b,c\n" + b"1,2,3\n" * 2000


def signed_url(gcs: StrictGcs, bucket: str, name: str) -> str:
    """A V4 signed URL's shape (the fake does not check the signature; attachfs reads any
    URL carrying X-Goog-Signature as plain https: the signature is the credential)."""
    return (f"{gcs.url}/{bucket}/{name}?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential="
            "reader%40p.iam.gserviceaccount.com%2F20250101%2Fauto%2Fstorage%2Fgoog4_request"
            "&X-Goog-Date=20250101T000000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host"
            "&X-Goog-Signature=" + "ab" * 128)


@pytest.fixture
def gzipped(gcs: StrictGcs, bucket: str) -> tuple[str, str]:
    gcs.put_gzip(bucket, "table.csv", TEXT, content_type="text/csv")
    return f"gs://{bucket}/table.csv", signed_url(gcs, bucket, "table.csv")


@pytest.mark.parametrize("start, end", [(None, None), (0, 100), (50, 4000), (1000, None)])
def test_gs_and_signed_url_give_the_same_bytes_of_a_gzip_encoded_object(
        gcs: StrictGcs, gzipped: tuple[str, str], start: int | None, end: int | None) -> None:
    fs = fs_for(ambient(gcs))
    native, signed = gzipped
    assert fs.cat_file(native, start=start, end=end) == fs.cat_file(signed, start=start, end=end)
    with fs.open(native) as a, fs.open(signed) as b:
        assert a.size == b.size


@pytest.mark.parametrize("via", ["gs", "signed"])
def test_a_gzip_encoded_object_reads_as_stored(gcs: StrictGcs, gzipped: tuple[str, str],
                                               via: str) -> None:
    """The decision for gzip-encoded objects: the bytes as stored (gzip), whatever the route,
    with the stored size, as listings report it and as gcsfuse reads them; ranges are ranges
    of those bytes. (Decompressive transcoding would serve a whole decompressed object to every
    ranged GET, and a size nobody can know without reading it all.)"""
    uri = gzipped[0] if via == "gs" else gzipped[1]
    stored = gzip.compress(TEXT, mtime=0)
    fs = fs_for(ambient(gcs))
    assert fs.cat_file(uri) == stored
    assert fs.cat_file(uri, start=10, end=30) == stored[10:30]
    with fs.open(uri, block_size=64) as f:
        assert f.size == len(stored)
        f.seek(len(stored) - 8)
        assert f.read() == stored[-8:]
