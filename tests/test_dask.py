"""Dask distributed over attachfs: two tenants, worker processes, no secret on the wire.

``dd.read_parquet("attach::s3://...", storage_options={"tenant": ..., "config": ...})`` runs on a
``LocalCluster`` of two worker *processes* (one thread each), for two tenants with different
access modes against moto with IAM enforcement on:

* acme: delegated, an AWS integration: every reader assumes acme's role (AssumeRole with its
  ExternalId) from the platform's own identity;
* globex: direct, no integration, claims the platform's bucket (owner pinned): reads as the
  platform's own identity.

The workers are handed the platform's identity the way a deployment would: in their
environment. What crosses the wire to them is the filesystem's recipe (tenant + config path),
so each worker derives its own tenant credentials; the STS endpoint sits behind a recording
proxy, and every AssumeRole is counted there. Each worker logs at DEBUG (botocore included) to
a file of its own; those files, the workers' and nanny's log buffers, and the task graph as the
client pickles it and as the scheduler holds it are all scanned for the actual secret values.

One cluster for the whole module: starting worker processes is the slow part.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import sys
import uuid
from pathlib import Path

import boto3
import cloudpickle
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed.protocol.pickle import dumps

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import attachfs  # noqa: E402
from attachfs import _credentials as credentials  # noqa: E402
from attachfs._credentials import aws as aws_credentials  # noqa: E402
from fakes.authz_proxy import AuthorizingProxy  # noqa: E402

pytestmark = [
    pytest.mark.peers,
    # dask's parquet reader still passes inplace= to pandas (deprecated in pandas 3.1).
    pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index"),
]

ACCOUNT = "123456789012"  # moto's default account: the platform and the tenant role share it
ROLE = "AttachmentReader"
EXTERNAL_ID = "acme-7d1e"
N_WORKERS = 2
PARTS = 8  # files per tenant: enough that both single-threaded workers get some

# Functions and classes of this module run inside the workers: ship them by value, so a worker
# never has to import the test module (or find tests/ on its path).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


# --------------------------------------------------------------------------- data


def orders(part: int) -> pd.DataFrame:
    n = 250
    return pd.DataFrame({
        "order_id": range(part * n, (part + 1) * n),
        "customer": [f"acme-cust-{(part * n + i) % 37}" for i in range(n)],
        "amount": [round((part * n + i) * 0.75, 2) for i in range(n)],
    })


def events(part: int) -> pd.DataFrame:
    n = 200
    return pd.DataFrame({
        "event_id": range(part * n, (part + 1) * n),
        "kind": [("open", "read", "close")[i % 3] for i in range(n)],
        "bytes": [(part * n + i) * 17 for i in range(n)],
    })


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- moto + IAM


@pytest.fixture(scope="module")
def aws(peers, tmp_path_factory):
    """Seed S3 and IAM with enforcement off, then turn it on for the module.

    The platform is an IAM user whose own policy reads globex's claimed bucket and may call
    sts:AssumeRole; acme's role (same account) trusts exactly that user with an
    ExternalId condition and reads only acme's bucket.
    """
    peers.reset()
    suffix = uuid.uuid4().hex[:8]
    buckets = {"acme": f"acme-orders-{suffix}", "globex": f"platform-events-{suffix}"}
    admin = dict(endpoint_url=peers.s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing")
    s3 = boto3.client("s3", **admin)
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
    # The same files on local disk: what a local read reads.
    local = tmp_path_factory.mktemp("local")
    for tenant, prefix, make in (("acme", "orders", orders), ("globex", "events", events)):
        (local / prefix).mkdir()
        for part in range(PARTS):
            data = parquet_bytes(make(part))
            key = f"{prefix}/part-{part:02d}.parquet"
            s3.put_object(Bucket=buckets[tenant], Key=key, Body=data)
            (local / key).write_bytes(data)
    keys = peers.seed_delegation(platform_buckets=[buckets["globex"]], role_name=ROLE,
                                 role_buckets=[buckets["acme"]], external_id=EXTERNAL_ID)["keys"]
    with AuthorizingProxy(peers.s3_endpoint, preserve_host=True) as sts:
        # The config is a file: what a pickled filesystem carries is its path, not its content.
        config = tmp_path_factory.mktemp("dask") / "attachfs.toml"
        config.write_text(f"""
[platform.aws]
role_name = "{ROLE}"
account_id = "{ACCOUNT}"
endpoint_url = "{peers.s3_endpoint}"
sts_endpoint_url = "{sts.url}"
region = "us-east-1"

[tenants.acme]
aws = {{ account_id = "{ACCOUNT}", external_id = "{EXTERNAL_ID}" }}

[tenants.globex]
direct = [{{ uri = "s3://{buckets['globex']}", owner = "{ACCOUNT}" }}]
""")
        peers.enable_iam()
        try:
            yield {"buckets": buckets, "keys": keys, "sts": sts, "config": str(config),
                   "local": local}
        finally:
            peers.disable_iam()


def assume_role_calls(sts) -> int:
    return sum(1 for r in sts.requests
               if isinstance(r.body, dict) and r.body.get("Action") == "AssumeRole")


# --------------------------------------------------------------------------- the cluster


class LogToFile(distributed.WorkerPlugin):
    """Every log record of the worker process, DEBUG and up, into a file of its own."""

    name = "attachfs-test-log-to-file"

    def __init__(self, directory: str):
        self.directory = directory

    def setup(self, worker):
        handler = logging.FileHandler(Path(self.directory) / f"worker-{os.getpid()}.log")
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        # distributed and tornado chat about every message at DEBUG; what reads and
        # authenticates (botocore, aiobotocore, s3fs, fsspec, urllib3, attachfs) stays DEBUG.
        for name in ("distributed", "tornado", "asyncio"):
            logging.getLogger(name).setLevel(logging.INFO)


@pytest.fixture(scope="module")
def cluster(aws, peers, tmp_path_factory):
    """Two worker processes given the platform's identity in their environment, as a
    deployment would; and the client process runs as the platform too (it reads metadata)."""
    logs = tmp_path_factory.mktemp("worker-logs")
    identity = {"AWS_ACCESS_KEY_ID": aws["keys"]["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": aws["keys"]["SecretAccessKey"]}
    env = {**peers.env(), **identity}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in identity.items():
            mp.setenv(name, value)
        with distributed.LocalCluster(n_workers=N_WORKERS, threads_per_worker=1,
                                      processes=True, host="127.0.0.1",
                                      dashboard_address="127.0.0.1:0", env=env) as cluster:
            with distributed.Client(cluster) as client:
                client.register_plugin(LogToFile(str(logs)))
                yield {"client": client, "logs": logs}


@pytest.fixture
def fresh(aws, cluster):
    """Leases start empty here and in every worker; the STS log starts empty."""
    credentials.forget_all()
    cluster["client"].run(credentials.forget_all)
    aws["sts"].clear_requests()
    yield
    credentials.forget_all()


# --------------------------------------------------------------------------- helpers


def read(uri: str, tenant: str, aws):
    return dd.read_parquet(f"attach::{uri}",
                           storage_options={"tenant": tenant, "config": aws["config"]})


def _worker_leases() -> list[dict]:
    """Runs in a worker: the assumed-role leases this process fetched, secrets included (the
    test needs the values to look for them; they never leave the test)."""
    from attachfs._credentials import refresh as creds

    out = []
    for key, lease in list(creds._leases.items()):
        if key[0] != "aws" or lease.lease is None:
            continue
        value = lease.lease.value
        out.append({"what": lease.what, "fetches": lease.fetches,
                    "secrets": [value.secret_key, value.token]})
    return out


def _scheduler_tasks(dask_scheduler=None) -> bytes:
    """Runs in the scheduler: every task it holds, pickled as it would ship them."""
    from distributed.protocol.pickle import dumps

    return b"".join(dumps(ts.run_spec) for ts in dask_scheduler.tasks.values()
                    if ts.run_spec is not None)


def client_lease(aws, tenant_uri: str):
    fs = attachfs.filesystem(tenant="acme", config=aws["config"], skip_instance_cache=True)
    return aws_credentials.assumed_role(fs.config, fs.route(tenant_uri).grant)


# --------------------------------------------------------------------------- tests


def test_two_tenants_read_on_worker_processes_equal_a_local_read(aws, cluster, fresh):
    acme = read(f"s3://{aws['buckets']['acme']}/orders/", "acme", aws)
    globex = read(f"s3://{aws['buckets']['globex']}/events/", "globex", aws)
    assert acme.npartitions == PARTS and globex.npartitions == PARTS

    got_acme, got_globex = dask.compute(acme, globex)

    for got, prefix, make in ((got_acme, "orders", orders), (got_globex, "events", events)):
        local = dd.read_parquet(str(aws["local"] / prefix)).compute(scheduler="sync")
        pd.testing.assert_frame_equal(got, local)
        written = pd.concat([make(p) for p in range(PARTS)], ignore_index=True)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), written, check_dtype=False)


def test_each_worker_assumes_the_role_itself_at_most_once(aws, cluster, fresh):
    client = cluster["client"]
    acme = read(f"s3://{aws['buckets']['acme']}/orders/", "acme", aws)
    globex = read(f"s3://{aws['buckets']['globex']}/events/", "globex", aws)
    # Twice over: the second pass must reuse every lease the first one made.
    for _ in range(2):
        dask.compute(acme.amount.sum(), globex.bytes.sum())

    in_client = client_lease(aws, f"s3://{aws['buckets']['acme']}/orders/x").fetches
    per_worker = client.run(_worker_leases)
    assert len(per_worker) == N_WORKERS
    role = f"role arn:aws:iam::{ACCOUNT}:role/{ROLE}"
    for worker, leases in per_worker.items():
        # Only acme (delegated) has a lease; globex reads as the platform's own identity.
        assert [(lease["what"], lease["fetches"]) for lease in leases] == [(role, 1)], worker
    # Every AssumeRole on the wire is accounted for: one per worker, at most one for the
    # client (dask reads the parquet metadata there to build the graph).
    assert in_client <= 1
    assert assume_role_calls(aws["sts"]) == in_client + N_WORKERS
    bodies = [r.body for r in aws["sts"].requests if r.body.get("Action") == "AssumeRole"]
    assert {(b["ExternalId"], b["RoleSessionName"]) for b in bodies} == {
        (EXTERNAL_ID, "attachfs-acme")}


def test_no_secret_in_the_task_graph_or_the_workers_logs(aws, cluster, fresh):
    client = cluster["client"]
    acme = read(f"s3://{aws['buckets']['acme']}/orders/", "acme", aws)
    globex = read(f"s3://{aws['buckets']['globex']}/events/", "globex", aws)
    # What the client ships (the optimized expression, pickled as distributed pickles it) and
    # the tasks it materializes into.
    expr = dask.base.collections_to_expr([acme, globex]).optimize()
    shipped = [pickle.dumps(acme), dumps(expr), cloudpickle.dumps(dict(expr.__dask_graph__()))]

    held = client.persist([acme, globex])
    distributed.wait(held)
    shipped.append(client.run_on_scheduler(_scheduler_tasks))
    total = sum(len(frame) for frame in client.compute(held, sync=True))
    assert total == PARTS * (250 + 200)
    del held

    secrets = {"platform secret key": aws["keys"]["SecretAccessKey"]}
    lease = client_lease(aws, f"s3://{aws['buckets']['acme']}/orders/x").lease
    assert lease is not None  # the client read metadata as acme: it holds a session too
    secrets["client's session secret key"] = lease.value.secret_key
    secrets["client's session token"] = lease.value.token
    for worker, leases in client.run(_worker_leases).items():
        (worker_lease,) = leases
        secrets[f"{worker}'s session secret key"] = worker_lease["secrets"][0]
        secrets[f"{worker}'s session token"] = worker_lease["secrets"][1]
    assert len(set(secrets.values())) == len(secrets)  # every worker got a session of its own

    log_files = sorted(cluster["logs"].glob("worker-*.log"))
    assert len(log_files) == N_WORKERS
    logs = [path.read_text(errors="replace") for path in log_files]
    # The DEBUG logs did see the credential traffic (so the scan below can fail).
    assert all("AssumeRole" in text for text in logs)
    buffers = [client.get_worker_logs(), client.get_worker_logs(nanny=True),
               client.get_scheduler_logs()]
    logs.append(repr(buffers))

    for name, secret in secrets.items():
        assert len(secret) >= 16, name
        for blob in shipped:
            assert secret.encode() not in blob, f"{name} is in the task graph"
        for text in logs:
            assert secret not in text, f"{name} is in a worker's log"
    # What the graph does carry is the recipe: the tenant and the config's path.
    assert all(aws["config"].encode() in blob for blob in shipped)
