"""The S3 access rules, end to end against moto with IAM enforcement on.

moto evaluates identity policies of users and assumed roles and refuses a wrong ExternalId for a
same-account role, so: the platform is an IAM user whose own policy can read
``platform-readable``; the tenant's role lives in the same account, trusts exactly that user
with an ExternalId condition, and can read only ``acme-data``. STS calls go through a recording
proxy so the tests count AssumeRole requests on the wire.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

import attachfs
from attachfs import _credentials as credentials
from attachfs._credentials import aws as aws_credentials
from attachfs._credentials import refresh
from fakes.authz_proxy import AuthorizingProxy

ACCOUNT = "123456789012"  # moto's default account: platform and tenant role share it
ROLE = "AttachmentReader"
EXTERNAL_ID = "acme-5f0c"
PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture(scope="module")
def aws(peers):
    """Seed IAM and S3 with enforcement off, then switch enforcement on for the module."""
    peers.reset()
    suffix = uuid.uuid4().hex[:8]
    buckets = {"acme": f"acme-data-{suffix}", "platform": f"platform-readable-{suffix}",
               "other": f"unclaimed-{suffix}"}
    admin = dict(endpoint_url=peers.s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing")
    s3 = boto3.client("s3", **admin)
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="doc.bin", Body=PAYLOAD)
        s3.put_object(Bucket=bucket, Key="dir/a.txt", Body=b"A")
    keys = peers.seed_delegation(platform_buckets=[buckets["platform"]], role_name=ROLE,
                                 role_buckets=[buckets["acme"]], external_id=EXTERNAL_ID)["keys"]
    with AuthorizingProxy(peers.s3_endpoint, preserve_host=True) as sts_proxy:
        peers.enable_iam()
        try:
            yield {"buckets": buckets, "keys": keys, "sts": sts_proxy, "peers": peers}
        finally:
            peers.disable_iam()


@pytest.fixture
def config(aws):
    peers = aws["peers"]
    return {
        "platform": {"aws": {"role_name": ROLE, "account_id": ACCOUNT,
                             "endpoint_url": peers.s3_endpoint,
                             "sts_endpoint_url": aws["sts"].url, "region": "us-east-1"}},
        "tenants": {
            "acme": {"aws": {"account_id": ACCOUNT, "external_id": EXTERNAL_ID}},
            "globex": {"direct": [{"uri": f"s3://{aws['buckets']['platform']}",
                                   "owner": ACCOUNT}]},
            "mallory": {"aws": {"account_id": ACCOUNT, "external_id": "not-the-agreed-id"}},
        },
    }


@pytest.fixture(autouse=True)
def platform_identity(aws, monkeypatch):
    """The process runs as the platform's IAM user; leases start empty in every test."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", aws["keys"]["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws["keys"]["SecretAccessKey"])
    credentials.forget_all()
    aws["sts"].clear_requests()
    yield
    credentials.forget_all()


def assume_role_calls(aws) -> int:
    return sum(1 for r in aws["sts"].requests
               if isinstance(r.body, dict) and r.body.get("Action") in ("AssumeRole",
                                                                        ["AssumeRole"]))


def fs_for(tenant, config):
    return attachfs.filesystem(tenant=tenant, config=config, skip_instance_cache=True)


def test_delegated_tenant_reads_through_its_role(aws, config):
    uri = f"s3://{aws['buckets']['acme']}/doc.bin"
    route = attachfs.explain(uri, tenant="acme", config=config)
    assert (route.mode, route.identity) == ("delegated", f"arn:aws:iam::{ACCOUNT}:role/{ROLE}")
    fs = fs_for("acme", config)
    assert fs.cat_file(uri) == PAYLOAD
    with fs.open(uri, block_size=64 * 1024) as f:
        f.seek(300_000)
        assert f.read(1000) == PAYLOAD[300_000:301_000]
    assert fs.ls(f"s3://{aws['buckets']['acme']}/dir/", detail=False) == [
        f"s3://{aws['buckets']['acme']}/dir/a.txt"]
    assert assume_role_calls(aws) == 1
    body = next(r.body for r in aws["sts"].requests if r.body.get("Action") == "AssumeRole")
    assert body["ExternalId"] == EXTERNAL_ID
    assert body["RoleSessionName"] == "attachfs-acme"


def test_delegated_tenant_never_falls_back_to_the_platform_identity(aws, config):
    # The platform's own keys can read this bucket (globex proves it below); acme's role cannot.
    uri = f"s3://{aws['buckets']['platform']}/doc.bin"
    with pytest.raises(attachfs.AccessDenied) as exc:
        fs_for("acme", config).cat_file(uri)
    err = exc.value
    assert err.identity == f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
    assert f"arn:aws:s3:::{aws['buckets']['platform']}/*" in str(err)
    assert fs_for("globex", config).cat_file(uri) == PAYLOAD


def test_direct_tenant_reads_a_bucket_it_claims(aws, config):
    uri = f"s3://{aws['buckets']['platform']}/doc.bin"
    route = attachfs.explain(uri, tenant="globex", config=config)
    assert (route.mode, route.identity) == ("direct", "platform:aws")
    assert route.grant.expected_bucket_owner == ACCOUNT
    assert fs_for("globex", config).cat_file(uri, start=5, end=10) == PAYLOAD[5:10]
    assert assume_role_calls(aws) == 0


def test_wrong_external_id_is_denied_naming_the_role_and_the_trust_policy(aws, config):
    uri = f"s3://{aws['buckets']['acme']}/doc.bin"
    with pytest.raises(attachfs.AccessDenied) as exc:
        fs_for("mallory", config).cat_file(uri)
    text = str(exc.value)
    assert f"arn:aws:iam::{ACCOUNT}:role/{ROLE}" in text
    assert "trust policy" in text and "sts:ExternalId" in text
    assert "not-the-agreed-id" not in text
    assert assume_role_calls(aws) == 1  # refused once, never retried as anyone else


def test_unclaimed_direct_read_is_refused_before_any_request(aws, config, peers):
    recorder = peers.http
    recorder.clear()
    cfg = json.loads(json.dumps(config))
    cfg["platform"]["aws"]["endpoint_url"] = recorder.url  # any request would land here
    uri = f"s3://{aws['buckets']['other']}/doc.bin"
    with pytest.raises(attachfs.AccessRefused) as exc:
        fs_for("globex", cfg).cat_file(uri)
    assert aws["buckets"]["other"] in str(exc.value) and "globex" in str(exc.value)
    with pytest.raises(attachfs.AccessRefused):
        attachfs.explain(uri, tenant="globex", config=cfg)
    assert recorder.requests == []
    assert assume_role_calls(aws) == 0


def test_owner_pinning_sends_expected_bucket_owner(aws, config, peers):
    with AuthorizingProxy(peers.s3_endpoint, preserve_host=True) as s3_proxy:
        cfg = json.loads(json.dumps(config))
        cfg["platform"]["aws"]["endpoint_url"] = s3_proxy.url
        uri = f"s3://{aws['buckets']['platform']}/doc.bin"
        assert fs_for("globex", cfg).cat_file(uri, start=0, end=4) == PAYLOAD[:4]
        gets = [r for r in s3_proxy.requests if r.method == "GET"]
        assert gets and all(r.headers.get("x-amz-expected-bucket-owner") == ACCOUNT
                            for r in gets)


def test_two_hundred_concurrent_opens_make_one_assume_role(aws, config):
    bucket = aws["buckets"]["acme"]
    fs = fs_for("acme", config)
    uris = [f"s3://{bucket}/doc.bin"] * 200

    def open_and_read(uri):
        with fs.open(uri, block_size=4096) as f:
            return f.read(16)

    with ThreadPoolExecutor(32) as pool:
        assert list(pool.map(open_and_read, uris)) == [PAYLOAD[:16]] * 200
    assert assume_role_calls(aws) == 1

    async def many():
        afs = attachfs.filesystem(tenant="acme", config=config, asynchronous=True,
                                  skip_instance_cache=True)
        return await asyncio.gather(*[afs._cat_file(u, start=0, end=8) for u in uris])

    credentials.forget_all()
    assert asyncio.run(many()) == [PAYLOAD[:8]] * 200
    assert assume_role_calls(aws) == 2


def test_credentials_expiring_mid_read_are_refreshed(aws, config, monkeypatch):
    uri = f"s3://{aws['buckets']['acme']}/doc.bin"
    fs = fs_for("acme", config)
    clock = {"now": refresh.time.time()}
    monkeypatch.setattr(refresh, "CLOCK", lambda: clock["now"])
    with fs.open(uri, block_size=64 * 1024, cache_type="none") as f:
        first = f.read(100_000)
        assert assume_role_calls(aws) == 1
        # An hour later the session is past its mandatory window: the next range waits for a
        # new one, then completes with the same bytes.
        clock["now"] += aws_credentials.DURATION_SECONDS
        rest = f.read()
    assert first + rest == PAYLOAD
    assert assume_role_calls(aws) == 2


def test_no_secret_in_repr_pickle_errors_or_debug_logs(aws, config, caplog):
    caplog.set_level(logging.DEBUG)
    fs = fs_for("acme", config)
    uri = f"s3://{aws['buckets']['acme']}/doc.bin"
    f = fs.open(uri)
    f.read(10)
    lease = aws_credentials.assumed_role(fs.config, fs.route(uri).grant).lease
    # The access key *id* is an identifier (every signed request names it in its Authorization
    # header); the secret key and the session token are the secrets.
    secrets = [lease.value.secret_key, lease.value.token, aws["keys"]["SecretAccessKey"]]
    # Every log record of this process except the emulator's own (moto runs in-process here and
    # logs the headers it receives: that is the cloud's side of the wire, not ours).
    ours = "\n".join(r.getMessage() for r in caplog.records
                     if not r.name.startswith(("moto", "werkzeug")))
    texts = [repr(fs), repr(f), repr(fs.route(uri)), ours]
    blobs = [pickle.dumps(fs), pickle.dumps(f)]
    for bad in ("mallory", "acme"):
        try:
            fs_for(bad, config).cat_file(f"s3://{aws['buckets']['platform']}/doc.bin")
        except attachfs.AccessDenied as err:
            texts.append(str(err))
            blobs.append(pickle.dumps(err))
    f.close()
    for secret in secrets:
        assert all(secret not in t for t in texts), secret[:4]
        assert all(secret.encode() not in b for b in blobs), secret[:4]
    # The ExternalId is not a secret to AWS (it travels in the AssumeRole request and the
    # config), but attachfs keeps it out of what it prints itself.
    assert all(EXTERNAL_ID not in t for t in texts[:3] + texts[4:])
    # And the pickled file reopens in this process from the recipe alone.
    clone = pickle.loads(pickle.dumps(fs.open(uri)))
    assert clone.read(4) == PAYLOAD[:4]


def _read_in_child(fs, uri, f, queue):
    """Runs in the child: read through an inherited/unpickled filesystem and an open file."""
    try:
        whole = fs.cat_file(uri)
        f.seek(500_000)
        queue.put((whole == PAYLOAD, f.read(100) == PAYLOAD[500_000:500_100], None))
    except BaseException as err:  # report, don't hang the parent
        queue.put((False, False, repr(err)))


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_reads_work_in_forked_and_spawned_children(aws, config, start_method):
    import multiprocessing

    ctx = multiprocessing.get_context(start_method)
    uri = f"s3://{aws['buckets']['acme']}/doc.bin"
    fs = fs_for("acme", config)
    f = fs.open(uri, block_size=64 * 1024)
    assert f.read(4) == PAYLOAD[:4]  # the parent holds a lease and a live session
    assert assume_role_calls(aws) == 1
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(fs, uri, f, queue))
    child.start()
    try:
        result = queue.get(timeout=60)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    assert result == (True, True, None)
    assert child.exitcode == 0
    # A forked child inherits the still-valid lease; a spawned one derives its own.
    assert assume_role_calls(aws) == (1 if start_method == "fork" else 2)
    f.close()


def test_tenants_never_share_inner_filesystems_or_credentials(aws, config):
    import fsspec

    from attachfs._backends import Backends

    uri = f"s3://{aws['buckets']['acme']}/doc.bin"
    fs_acme, fs_globex = fs_for("acme", config), fs_for("globex", config)
    fs_acme.cat_file(uri)
    with pytest.raises(attachfs.AccessRefused):  # globex has not claimed acme's bucket
        fs_globex.cat_file(uri)
    cfg2 = json.loads(json.dumps(config))
    cfg2["tenants"]["globex"]["direct"].append(f"s3://{aws['buckets']['acme']}")
    fs_globex = fs_for("globex", cfg2)
    with pytest.raises(attachfs.AccessDenied):  # the platform identity cannot read it
        fs_globex.cat_file(uri)
    r_acme, r_globex = fs_acme.route(uri), fs_globex.route(uri)
    assert Backends.cache_key(r_acme) != Backends.cache_key(r_globex)
    inner_acme = fs_acme._backends.get(r_acme)
    assert inner_acme is not fs_globex._backends.get(r_globex)
    assert inner_acme.session is not None and fs_globex._backends.get(r_globex).session is not (
        inner_acme.session)
    # fsspec's own instance cache keys on the tenant too.
    a = fsspec.filesystem("attach", tenant="acme", config=config)
    b = fsspec.filesystem("attach", tenant="globex", config=config)
    assert a is not b and a is fsspec.filesystem("attach", tenant="acme", config=config)
