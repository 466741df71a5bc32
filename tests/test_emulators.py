"""The local peers answer the real clients attachfs wraps, reset to empty, and stop cleanly."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import time

import boto3
import fsspec
import pytest
import requests
from botocore.exceptions import ClientError

from attachfs.testing import Emulators, emulators, find_azurite, peer_environment

DATA = bytes(range(256)) * 40  # 10 KiB, every byte value


def _gcsfs(peers):
    import gcsfs

    return gcsfs.GCSFileSystem(token="anon", endpoint_url=peers.gcs_endpoint,
                               skip_instance_cache=True)


def _adlfs(**kwargs):
    from adlfs import AzureBlobFileSystem

    return AzureBlobFileSystem(skip_instance_cache=True, **kwargs)


# --------------------------------------------------------------------------- S3 and STS


def test_s3_put_and_get_with_boto3(clean_peers, names):
    bucket = names()
    clean_peers.make_s3_bucket(bucket)
    clean_peers.put_s3(bucket, "dir/a b+c.bin", DATA)
    s3 = boto3.client("s3", endpoint_url=clean_peers.s3_endpoint)
    assert s3.get_object(Bucket=bucket, Key="dir/a b+c.bin")["Body"].read() == DATA
    ranged = s3.get_object(Bucket=bucket, Key="dir/a b+c.bin", Range="bytes=-5")
    assert ranged["Body"].read() == DATA[-5:]


def test_sts_assume_role_returns_working_credentials(clean_peers, names):
    sts = boto3.client("sts", endpoint_url=clean_peers.s3_endpoint)
    # moto keeps one state per account and puts assumed-role credentials in the role's
    # account: same account as the seeding keys (moto's default), so the bucket is visible.
    creds = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/AttachmentReader",
                            RoleSessionName="attachfs-test", ExternalId="acme")["Credentials"]
    assert creds["AccessKeyId"] and creds["SecretAccessKey"] and creds["SessionToken"]
    bucket = names()
    clean_peers.make_s3_bucket(bucket)
    s3 = boto3.client("s3", endpoint_url=clean_peers.s3_endpoint,
                      aws_access_key_id=creds["AccessKeyId"],
                      aws_secret_access_key=creds["SecretAccessKey"],
                      aws_session_token=creds["SessionToken"])
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]


# --------------------------------------------------------------------------- GCS


def test_gcsfs_reads_whole_ranged_and_seeked(clean_peers, names):
    bucket = names()
    clean_peers.make_gcs_bucket(bucket)
    clean_peers.put_gcs(bucket, "dir/a b+c.bin", DATA)
    fs = _gcsfs(clean_peers)
    path = f"{bucket}/dir/a b+c.bin"
    assert fs.cat_file(path) == DATA
    assert fs.cat_file(path, start=100, end=300) == DATA[100:300]
    with fs.open(path, "rb") as f:
        f.seek(-7, os.SEEK_END)
        assert f.read() == DATA[-7:]


def test_gcsfs_fifty_concurrent_reads(clean_peers, names):
    bucket = names()
    clean_peers.make_gcs_bucket(bucket)
    objects = {f"{bucket}/o/{i:02d}": DATA[i:] for i in range(50)}
    for path, data in objects.items():
        clean_peers.put_gcs(bucket, path.split("/", 1)[1], data)
    fs = _gcsfs(clean_peers)
    assert fs.cat(list(objects)) == objects  # one gather of 50 GETs
    paths = list(objects)
    starts = list(range(50))
    ranges = fs.cat_ranges(paths, starts, [s + 10 for s in starts])
    assert ranges == [objects[p][s:s + 10] for p, s in zip(paths, starts, strict=True)]


# --------------------------------------------------------------------------- Azure


def test_adlfs_reads_with_connection_string(clean_peers, names):
    container = names()
    clean_peers.make_azure_container(container)
    clean_peers.put_azure(container, "dir/a b+c.bin", DATA)
    fs = _adlfs(connection_string=clean_peers.azure_connection_string)
    path = f"{container}/dir/a b+c.bin"
    assert fs.cat_file(path) == DATA
    assert fs.cat_file(path, start=10, end=20) == DATA[10:20]


def test_adlfs_reads_public_container_anonymously(clean_peers, names):
    public, private = names("pub"), names("priv")
    clean_peers.make_azure_container(public, public=True)
    clean_peers.make_azure_container(private)
    clean_peers.put_azure(public, "k.bin", DATA)
    clean_peers.put_azure(private, "k.bin", DATA)
    endpoint = clean_peers.azure_endpoint.format(account=clean_peers.azure_account)
    fs = _adlfs(connection_string=f"BlobEndpoint={endpoint};")  # no key, no SAS: anonymous
    assert fs.cat_file(f"{public}/k.bin") == DATA
    with pytest.raises(Exception, match="AuthorizationFailure"):
        fs.cat_file(f"{private}/k.bin")  # proves the read above really was anonymous


# --------------------------------------------------------------------------- http and https

RANGES = [  # Range header -> status, body slice, Content-Range (size 10)
    (None, 200, slice(None), None),
    ("bytes=0-3", 206, slice(0, 4), "bytes 0-3/10"),
    ("bytes=5-", 206, slice(5, None), "bytes 5-9/10"),
    ("bytes=-3", 206, slice(7, None), "bytes 7-9/10"),
    ("bytes=-1000", 206, slice(None), "bytes 0-9/10"),
    ("bytes=2-1000", 206, slice(2, None), "bytes 2-9/10"),
    ("bytes=10-", 416, slice(0, 0), "bytes */10"),
    ("bytes=-0", 416, slice(0, 0), "bytes */10"),
    ("bytes=0-1,4-5", 200, slice(None), None),   # multi-range: ignored
    ("bytes=5-2", 200, slice(None), None),       # malformed: ignored
    ("items=0-1", 200, slice(None), None),
]


@pytest.mark.parametrize(("range_header", "status", "body", "content_range"), RANGES)
def test_local_http_range_table(clean_peers, range_header, status, body, content_range):
    data = b"0123456789"
    clean_peers.http.put("/r.bin", data)
    headers = {"Range": range_header} if range_header else {}
    resp = requests.get(clean_peers.http.url + "/r.bin", headers=headers, timeout=10)
    assert (resp.status_code, resp.content) == (status, data[body])
    assert resp.headers.get("Content-Range") == content_range


def test_local_http_head_metadata_and_missing(clean_peers):
    server = clean_peers.http
    server.put("/m.bin", DATA, headers={"Content-Type": "text/plain", "ETag": '"v1"'})
    head = requests.head(server.url + "/m.bin", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(DATA))
    assert head.headers["ETag"] == '"v1"' and head.headers["Content-Type"] == "text/plain"
    assert head.headers["Accept-Ranges"] == "bytes" and head.headers["Last-Modified"]
    assert requests.get(server.url + "/m.bin", headers={"If-Match": '"v0"'},
                        timeout=10).status_code == 412
    assert requests.get(server.url + "/nope", timeout=10).status_code == 404


def test_local_http_path_matching(clean_peers):
    server = clean_peers.http
    server.put("/dir/a b.bin", b"space")          # same object as /dir/a%20b.bin
    server.put("/eq%3D", b"equals")               # yarl sends /eq= for /eq%3D
    server.put("/enc%2Fkey", b"one segment")      # an encoded slash is not a slash
    server.put("/lit%252F", b"percent-2F")        # the three characters %2F
    get = lambda path: requests.get(server.url + path, timeout=10)  # noqa: E731
    assert get("/dir/a%20b.bin").content == b"space"
    assert get("/dir/a%20b.bin?X-Amz-Signature=abc").content == b"space"
    assert get("/eq=").content == get("/eq%3D").content == b"equals"
    assert get("/enc%2Fkey").content == get("/enc%2fkey").content == b"one segment"
    assert get("/enc/key").status_code == 404
    assert get("/lit%252F").content == b"percent-2F"
    assert get("/lit%2F").status_code == 404
    assert server.requests[1].raw_path == "/dir/a%20b.bin?X-Amz-Signature=abc"  # raw, with query


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_local_servers_serve_ranges_to_fsspec_and_count_requests(clean_peers, scheme):
    server = getattr(clean_peers, scheme)
    server.put("/dir/obj.bin", DATA)
    fs = fsspec.filesystem("http", skip_instance_cache=True)  # aiohttp: trusts SSL_CERT_FILE
    url = f"{server.url}/dir/obj.bin"
    assert url.startswith(f"{scheme}://127.0.0.1:")
    assert fs.cat_file(url, start=100, end=164) == DATA[100:164]
    assert fs.cat_file(url) == DATA
    gets = [r for r in server.requests if r.method == "GET"]
    assert [r.headers.get("range") for r in gets] == ["bytes=100-163", None]
    assert requests.get(url, timeout=10).content == DATA  # requests: REQUESTS_CA_BUNDLE


def test_https_is_really_verified(clean_peers):
    import certifi

    clean_peers.https.put("/x", b"x")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(clean_peers.https.url + "/x", verify=certifi.where(), timeout=10)
    assert requests.get(clean_peers.https.url.replace("127.0.0.1", "localhost") + "/x",
                        timeout=10).content == b"x"


# --------------------------------------------------------------------------- reset, config


def test_reset_empties_every_peer(clean_peers, names):
    peers = clean_peers
    bucket = names()
    peers.make_s3_bucket(bucket)
    peers.put_s3(bucket, "k", b"1")
    peers.make_gcs_bucket(bucket)
    peers.put_gcs(bucket, "k", b"1")
    peers.make_azure_container(bucket)
    peers.put_azure(bucket, "k", b"1")
    peers.http.put("/k", b"1")
    peers.https.put("/k", b"1")
    s3 = boto3.client("s3", endpoint_url=peers.s3_endpoint)
    # IAM enforcement on: /moto-api/reset alone would leave it on
    requests.post(peers.s3_endpoint + "/moto-api/reset-auth", data=b"0", timeout=10)
    with pytest.raises(ClientError):
        s3.list_buckets()

    peers.reset()

    assert s3.list_buckets()["Buckets"] == []
    gcs = requests.get(peers.gcs_endpoint + "/storage/v1/b", timeout=10).json()
    assert gcs.get("items", []) == []
    from azure.storage.blob import BlobServiceClient

    azure = BlobServiceClient.from_connection_string(peers.azure_connection_string)
    assert list(azure.list_containers()) == []
    for server in (peers.http, peers.https):
        assert server.requests == []
        assert requests.get(server.url + "/k", timeout=10).status_code == 404


def test_config_and_env_point_at_the_peers(peers):
    config = peers.config()
    assert config == {"platform": {
        "aws": {"endpoint_url": peers.s3_endpoint, "sts_endpoint_url": peers.s3_endpoint,
                "region": "us-east-1"},
        "gcp": {"endpoint_url": peers.gcs_endpoint, "credentials": "anonymous"},
        "azure": {"endpoint_url": peers.azure_endpoint,
                  "account_key_env": "ATTACHFS_TEST_AZURE_KEY"},
        "http": {"allow_private_networks": True}}}
    assert peers.azure_endpoint.endswith("/{account}")
    env = peers.env()
    assert env["ATTACHFS_TEST_AZURE_KEY"] == peers.azure_key
    assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == peers.ca_bundle
    assert env["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"
    assert os.environ["ATTACHFS_TEST_AZURE_KEY"] == peers.azure_key  # applied by the fixture


def test_peer_environment_hides_ambient_credentials(monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "real-secret")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/home/me/key.json")
    env = peer_environment()
    assert env["AZURE_CLIENT_SECRET"] is None
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] is None
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert "SSL_CERT_FILE" not in env  # only set when a bundle is given


# --------------------------------------------------------------------------- lifecycle


def _refused(endpoint: str) -> bool:
    port = int(endpoint.split(":")[2].split("/")[0])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_exit_stops_everything_even_on_error(tmp_path):
    with pytest.raises(KeyError):
        with Emulators(tmp_path, s3=False, azure=False, http=False, https=False) as peers:
            endpoint = peers.gcs_endpoint
            pid = peers._procs[0].proc.pid
            assert not _refused(endpoint)
            raise KeyError("boom")
    assert _refused(endpoint)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_port_clash_is_retried(tmp_path, monkeypatch):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))  # bound, not listening: the child's bind fails at once
    ports = iter([taken.getsockname()[1]])
    real_free_port = emulators._free_port
    monkeypatch.setattr(emulators, "_free_port", lambda: next(ports, None) or real_free_port())
    with taken, Emulators(tmp_path, s3=False, azure=False, http=False, https=False) as peers:
        assert not peers.gcs_endpoint.endswith(f":{taken.getsockname()[1]}")
        peers.make_gcs_bucket("clash-bucket")


def test_startup_failure_names_emulator_command_and_output(tmp_path, monkeypatch):
    fake = tmp_path / "azurite-blob"
    fake.write_text("#!/bin/sh\necho 'Error: listen EACCES: permission denied' >&2\nexit 7\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("ATTACHFS_AZURITE", str(fake))
    peers = Emulators(tmp_path, s3=False, gcs=False, http=False, https=False)
    with pytest.raises(RuntimeError) as err:
        peers.start()
    message = str(err.value)
    assert "azurite exited with code 7" in message
    assert f"command: {fake} --blobHost 127.0.0.1" in message
    assert "listen EACCES: permission denied" in message


def test_find_azurite_explains_a_bad_override(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTACHFS_AZURITE", str(tmp_path / "missing"))
    with pytest.raises(RuntimeError, match="ATTACHFS_AZURITE=.* is not an executable"):
        find_azurite()


# --------------------------------------------------------------------------- network guard


def test_loopback_guard_refuses_before_connecting(loopback_guard, monkeypatch):
    seen = len(loopback_guard.violations)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        with pytest.raises(PermissionError, match="10.255.255.1"):
            sock.connect(("10.255.255.1", 80))
        with pytest.raises(PermissionError):
            sock.connect_ex(("10.255.255.1", 80))
        with pytest.raises(OSError):
            sock.getpeername()  # never connected: nothing was sent

    def no_dns(*args, **kwargs):
        raise AssertionError("the guard must refuse before resolving a name")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(PermissionError):
        socket.create_connection(("example.com", 443), timeout=30)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock6:
        with pytest.raises(PermissionError):
            sock6.connect(("::ffff:10.0.0.1", 80))
    assert len(loopback_guard.violations) == seen + 4
    del loopback_guard.violations[seen:]  # provoked on purpose


def test_loopback_guard_allows_loopback(loopback_guard):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    with closed:
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((host, port), timeout=10)
    assert loopback_guard.allowed("::1") and loopback_guard.allowed("127.3.2.1")
    assert not loopback_guard.allowed("10.0.0.1") and not loopback_guard.allowed("example.com")


# --------------------------------------------------------------------------- interrupted owner

_OWNER = """
import json, sys, time
from attachfs.testing import Emulators
with Emulators(sys.argv[1], s3=False, azure=sys.argv[2] == "azure", http=False,
               https=False) as peers:
    print(json.dumps([p.proc.pid for p in peers._procs]), flush=True)
    time.sleep(120)
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie runs nothing
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("signum", "which"), [
    (signal.SIGINT, "gcs"),      # Ctrl-C: KeyboardInterrupt unwinds the with-block
    (signal.SIGTERM, "gcs"),     # the safety net's handler
    (signal.SIGKILL, "azure"),   # nothing runs in the owner: PR_SET_PDEATHSIG does it
])
def test_interrupted_owner_leaves_nothing_running(tmp_path, signum, which):
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(tmp_path), which],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([owner.stdout], [], [], 60)
        assert ready, "the owner process did not start its peers"
        pids = json.loads(owner.stdout.readline())
        assert pids and not any(_gone(pid) for pid in pids)
        owner.send_signal(signum)
        owner.wait(30)
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert all(_gone(pid) for pid in pids), owner.stderr.read()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
