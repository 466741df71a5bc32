"""A PyTorch DataLoader reading attachments through attachfs in worker processes.

One tenant, four backends in one Dataset: S3 delegated (acme's role, assumed through STS against
moto with IAM enforcement on), GCS direct (a bucket acme claims), Azure anonymous (a public
container; acme has no Azure integration) and plain http. ``num_workers=2`` under both start
methods, each test with a deadline (pytest-timeout, and the DataLoader's own ``timeout``), so a
worker that hangs fails the test instead of the run.

Credentials: the parent reads once before the loader starts, so it holds acme's assumed-role
session. A forked worker inherits it and must not call STS again; a spawned worker starts from
the filesystem's recipe and derives its own. Every AssumeRole is counted at a recording proxy
in front of moto's STS.
"""

from __future__ import annotations

import hashlib
import os
import uuid

import boto3
import pytest

torch = pytest.importorskip("torch")

import attachfs  # noqa: E402
from attachfs import _credentials as credentials  # noqa: E402
from fakes.authz_proxy import AuthorizingProxy  # noqa: E402

pytestmark = pytest.mark.peers

ACCOUNT = "123456789012"  # moto's default account: the platform and the tenant role share it
ROLE = "AttachmentReader"
EXTERNAL_ID = "acme-3b9a"
WORKERS = 2
PER_BACKEND = 2  # one sample of each backend for each worker (indices go round-robin)
DEADLINE = 120  # seconds for a whole test; the loader waits at most 60 s for one sample


class Attachments(torch.utils.data.Dataset):
    """Attachment URIs read through one attachfs filesystem; a sample is the bytes as a tensor
    plus who read it. Pickled to spawned workers with the filesystem as its recipe."""

    def __init__(self, fs, uris: list[str]):
        self.fs = fs
        self.uris = uris

    def __len__(self) -> int:
        return len(self.uris)

    def __getitem__(self, index: int) -> dict:
        with self.fs.open(self.uris[index], "rb") as f:
            data = f.read()
        return {"index": index, "pid": os.getpid(),
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": torch.frombuffer(bytearray(data), dtype=torch.uint8)}


def payload(backend: str, n: int) -> bytes:
    """Distinct, incompressible-looking bytes per sample; sizes vary around 200 KiB."""
    seed = hashlib.sha256(f"{backend}-{n}".encode()).digest()
    size = 150_000 + 40_000 * n + len(backend) * 1_000
    out = bytearray()
    while len(out) < size:
        seed = hashlib.sha256(seed).digest()
        out += seed * 64
    return bytes(out[:size])


@pytest.fixture(scope="module")
def world(peers):
    """Samples in all four backends, IAM seeded for acme's role, then enforcement on."""
    peers.reset()
    suffix = uuid.uuid4().hex[:8]
    s3_bucket, gcs_bucket, container = (f"acme-train-{suffix}", f"acme-shared-{suffix}",
                                        f"public-{suffix}")
    admin = dict(endpoint_url=peers.s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing")
    s3 = boto3.client("s3", **admin)
    s3.create_bucket(Bucket=s3_bucket)
    peers.make_gcs_bucket(gcs_bucket)
    peers.make_azure_container(container, public=True)
    uris, expected = [], []
    for backend in ("s3", "gcs", "azure", "http"):
        for n in range(PER_BACKEND):
            data, key = payload(backend, n), f"samples/{backend}-{n}.bin"
            if backend == "s3":
                s3.put_object(Bucket=s3_bucket, Key=key, Body=data)
                uris.append(f"s3://{s3_bucket}/{key}")
            elif backend == "gcs":
                peers.put_gcs(gcs_bucket, key, data)
                uris.append(f"gs://{gcs_bucket}/{key}")
            elif backend == "azure":
                peers.put_azure(container, key, data)
                uris.append(f"https://{peers.azure_account}.blob.core.windows.net/"
                            f"{container}/{key}")
            else:
                peers.http.put(f"/{suffix}/{key}", data)
                uris.append(f"{peers.http.url}/{suffix}/{key}")
            expected.append(data)
    keys = peers.seed_delegation(platform_buckets=[], role_name=ROLE, role_buckets=[s3_bucket],
                                 external_id=EXTERNAL_ID)["keys"]
    with AuthorizingProxy(peers.s3_endpoint, preserve_host=True) as sts:
        config = peers.config()
        config["platform"]["aws"].update(role_name=ROLE, account_id=ACCOUNT,
                                         sts_endpoint_url=sts.url)
        del config["platform"]["azure"]["account_key_env"]  # no shared key: anonymous reads
        config["tenants"] = {"acme": {"aws": {"account_id": ACCOUNT, "external_id": EXTERNAL_ID},
                                      "direct": [f"gs://{gcs_bucket}"]}}
        peers.enable_iam()
        try:
            yield {"uris": uris, "expected": expected, "keys": keys, "sts": sts,
                   "config": config}
        finally:
            peers.disable_iam()


@pytest.fixture
def dataset(world, monkeypatch):
    """The Dataset, its parent process running as the platform's AWS identity (workers
    inherit the environment), with acme's session fetched once before any worker starts."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", world["keys"]["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", world["keys"]["SecretAccessKey"])
    credentials.forget_all()
    world["sts"].clear_requests()
    fs = attachfs.filesystem(tenant="acme", config=world["config"], skip_instance_cache=True)
    modes = [fs.route(uri).mode for uri in world["uris"]]
    assert modes == ["delegated"] * 2 + ["direct"] * 2 + ["anonymous"] * 2 + ["url"] * 2
    assert fs.cat_file(world["uris"][0]) == world["expected"][0]
    assert assume_role_calls(world) == 1
    yield Attachments(fs, world["uris"])
    credentials.forget_all()


def assume_role_calls(world) -> int:
    return sum(1 for r in world["sts"].requests
               if isinstance(r.body, dict) and r.body.get("Action") == "AssumeRole")


def load_all(dataset, start_method: str) -> list[dict]:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=WORKERS,
        multiprocessing_context=start_method, timeout=60)
    return list(loader)


@pytest.mark.timeout(DEADLINE)
@pytest.mark.parametrize(("start_method", "sessions"), [
    pytest.param("fork", 0, id="fork-reuses-the-parents-session"),
    pytest.param("spawn", WORKERS, id="spawn-derives-one-session-per-worker"),
])
def test_every_sample_is_read_in_worker_processes(world, dataset, start_method, sessions):
    samples = load_all(dataset, start_method)

    assert [s["index"] for s in samples] == list(range(len(world["uris"])))
    for sample, data in zip(samples, world["expected"], strict=True):
        uri = world["uris"][sample["index"]]
        assert sample["sha256"] == hashlib.sha256(data).hexdigest(), uri
        assert sample["bytes"].numpy().tobytes() == data, uri
    pids = {s["pid"] for s in samples}
    assert len(pids) == WORKERS and os.getpid() not in pids
    # Round-robin: each worker read one sample of every backend, S3 included.
    for pid in pids:
        read_by = [world["uris"][s["index"]].split(":", 1)[0] for s in samples
                   if s["pid"] == pid]
        assert sorted(read_by) == ["gs", "http", "https", "s3"]

    # The parent's one AssumeRole, plus one per worker that had to derive its own session.
    assert assume_role_calls(world) == 1 + sessions
    bodies = [r.body for r in world["sts"].requests if r.body.get("Action") == "AssumeRole"]
    assert {(b["ExternalId"], b["RoleSessionName"]) for b in bodies} == {
        (EXTERNAL_ID, "attachfs-acme")}
