"""`attachfs demo`: start the bundled local emulators, put sample attachments in each backend,
read them back through attachfs, and print what was read, from where, and how fast.

`attachfs demo --serve` (``serve``) keeps the emulators running with the two tenants' world
seeded, writes a config file, prints it and the environment another shell needs, and waits;
the recipes in the docs run against it as written.

Everything runs on loopback and everything started is stopped on the way out, also on Ctrl-C
(and, for ``--serve``, on SIGTERM).
"""

from __future__ import annotations

import io
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

if TYPE_CHECKING:
    import pandas as pd

    from .emulators import Emulators
    from .servers import LocalHTTPServer


@dataclass
class Read:
    tenant: str | None
    uri: str
    backend: str
    mode: str
    identity: str | None
    what: str
    nbytes: int
    seconds: float
    outcome: str  # "ok", "MISMATCH", or the refusal ("AccessDenied: ...")

    @property
    def ok(self) -> bool:
        return self.outcome != "MISMATCH"


def sample_png(width: int = 64, height: int = 48) -> bytes:
    """A small gradient PNG, built by hand so the demo needs no imaging library."""
    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 4 % 256, y * 5 % 256, (x + y) * 2 % 256))
                           for x in range(width))
        for y in range(height)
    )

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + tag + body
                + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def sample_frame() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({
        "invoice": [f"INV-{i:04d}" for i in range(500)],
        "amount": [round(10 + i * 1.37, 2) for i in range(500)],
        "currency": ["EUR", "USD", "GBP", "JPY", "CHF"] * 100,
        "paid": [i % 3 != 0 for i in range(500)],
    })


def samples() -> dict[str, bytes]:
    frame = sample_frame()
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return {
        "report.csv": frame.to_csv(index=False).encode(),
        "table.parquet": buf.getvalue(),
        "photo.png": sample_png(),
    }


def _http(peers: Emulators) -> LocalHTTPServer:
    """The plain-http peer: the demo always starts one."""
    assert peers.http is not None, "the demo's emulators are started with http=True"
    return peers.http


def seed(peers: Emulators, files: dict[str, bytes]) -> dict[str, str]:
    """Put ``files`` in every backend; return {backend: uri prefix}."""
    peers.make_s3_bucket("demo-attachments")
    peers.make_gcs_bucket("demo-attachments")
    peers.make_azure_container("attachments")
    for name, data in files.items():
        key = f"samples/{name}"
        peers.put_s3("demo-attachments", key, data)
        peers.put_gcs("demo-attachments", key, data)
        peers.put_azure("attachments", key, data)
        _http(peers).put(f"/files/{quote(key)}", data)
    return {
        "s3": "s3://demo-attachments/samples/",
        "gcs": "gs://demo-attachments/samples/",
        "azure": f"https://{peers.azure_account}.blob.core.windows.net/attachments/samples/",
        "http": f"{_http(peers).url}/files/samples/",
    }


def timed_read(uri: str, data: bytes, config: dict[str, Any], tenant: str | None) -> Read:
    """Read ``uri`` for ``tenant`` through attachfs.open; a refusal is an outcome, not a crash."""
    import attachfs

    t0 = time.perf_counter()
    try:
        route = attachfs.explain(uri, tenant=tenant, config=config)
    except attachfs.AccessRefused as err:
        return Read(tenant, uri, "-", "refused", None, "attachfs.explain", 0,
                    time.perf_counter() - t0, f"AccessRefused ({err.rule}: nothing sent)")
    try:
        with attachfs.open(uri, tenant=tenant, config=config) as f:
            got = f.read()
    except attachfs.AccessDenied:
        return Read(tenant, uri, route.backend, route.mode, route.identity, "attachfs.open", 0,
                    time.perf_counter() - t0, f"AccessDenied (by {route.backend}; no fallback)")
    return Read(tenant, uri, route.backend, route.mode, route.identity, "attachfs.open",
                len(got), time.perf_counter() - t0, "ok" if got == data else "MISMATCH")


def read_all(prefixes: dict[str, str], files: dict[str, bytes], config: dict[str, Any],
             tenant: str | None = None) -> Iterator[Read]:
    import pandas as pd

    import attachfs

    frame = sample_frame()
    for prefix in prefixes.values():
        for name, data in files.items():
            uri = prefix + name
            yield timed_read(uri, data, config, tenant)
            if name.endswith(".parquet"):
                route = attachfs.explain(uri, tenant=tenant, config=config)
                t0 = time.perf_counter()
                df = pd.read_parquet(f"attach::{uri}", columns=["invoice", "amount"],
                                     storage_options={"tenant": tenant, "config": config})
                same = df.equals(frame[["invoice", "amount"]])
                yield Read(tenant, uri, route.backend, route.mode, route.identity,
                           "pd.read_parquet", int(df.memory_usage(deep=True).sum()),
                           time.perf_counter() - t0, "ok" if same else "MISMATCH")


ROLE = "AttachmentReader"
EXTERNAL_ID = "acme-5f0c"


def set_up_tenants(peers: Emulators, files: dict[str, bytes],
                   acme_extra: dict[str, bytes] | None = None,
                   ) -> tuple[dict[str, Any], list[tuple[str, str, bytes | None]]]:
    """Two tenants on the emulators, with moto enforcing IAM.

    acme set up delegated access (a role the platform assumes with acme's ExternalId, allowed
    to read acme's bucket only); globex did not, and claims its buckets for direct reads by
    the platform's own identity. ``acme_extra`` ({key: bytes}) is put in acme's bucket too.
    Returns the config and the reads to make: (tenant, uri, expected bytes or None when the
    read must be refused).
    """
    import boto3

    from . import environment

    admin = dict(endpoint_url=peers.s3_endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing")
    s3 = boto3.client("s3", **admin)
    for bucket in ("acme-attachments", "globex-attachments"):
        s3.create_bucket(Bucket=bucket)
        for name, data in files.items():
            s3.put_object(Bucket=bucket, Key=f"samples/{name}", Body=data)
    for key, data in (acme_extra or {}).items():
        s3.put_object(Bucket="acme-attachments", Key=key, Body=data)
    peers.make_gcs_bucket("globex-attachments")
    peers.make_azure_container("globex-public", public=True)
    for name, data in files.items():
        peers.put_gcs("globex-attachments", f"samples/{name}", data)
        peers.put_azure("globex-public", f"samples/{name}", data)

    seeded = peers.seed_delegation(platform_buckets=["globex-attachments"], role_name=ROLE,
                                   role_buckets=["acme-attachments"], external_id=EXTERNAL_ID)
    keys = seeded["keys"]
    peers.enable_iam()
    # From here on this process is the platform: its own AWS identity is the IAM user.
    environment.apply_environment({"AWS_ACCESS_KEY_ID": keys["AccessKeyId"],
                                 "AWS_SECRET_ACCESS_KEY": keys["SecretAccessKey"]})
    config = peers.config()
    config["platform"]["aws"].update(role_name=ROLE, account_id="123456789012")
    config["tenants"] = {
        "acme": {"aws": {"account_id": "123456789012", "external_id": EXTERNAL_ID}},
        "globex": {"direct": ["s3://globex-attachments", "gs://globex-attachments"]},
    }
    azure = f"https://{peers.azure_account}.blob.core.windows.net"
    reads = [
        ("acme", "s3://acme-attachments/samples/report.csv", files["report.csv"]),
        ("acme", "s3://acme-attachments/samples/table.parquet", files["table.parquet"]),
        ("acme", f"{_http(peers).url}/files/samples/photo.png", files["photo.png"]),
        ("globex", "s3://globex-attachments/samples/report.csv", files["report.csv"]),
        ("globex", "gs://globex-attachments/samples/photo.png", files["photo.png"]),
        ("globex", f"{azure}/globex-public/samples/photo.png", files["photo.png"]),
        # Refused: acme's role cannot read globex's bucket, and attachfs never falls back to
        # the platform's own keys; globex never claimed acme's bucket (the confused deputy).
        ("acme", "s3://globex-attachments/samples/report.csv", None),
        ("globex", "s3://acme-attachments/samples/report.csv", None),
    ]
    return config, reads


def print_table(reads: list[Read], out: TextIO = sys.stdout) -> None:
    rows = [("tenant", "backend", "mode", "identity", "read with", "uri", "bytes", "ms",
             "outcome")]
    for r in reads:
        rows.append((r.tenant or "-", r.backend, r.mode, r.identity or "-", r.what, r.uri,
                     f"{r.nbytes:,}", f"{r.seconds * 1000:.1f}", r.outcome))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def run(out: TextIO = sys.stdout) -> int:
    from . import emulators, environment

    # No SDK may find real credentials or a metadata server; set before gcsfs/aiohttp load.
    environment.apply_environment(environment.peer_environment())
    with tempfile.TemporaryDirectory(prefix="attachfs-demo-") as workdir:
        print("starting local emulators (moto S3/STS, fake-gcs-server, Azurite, http) ...",
              file=out, flush=True)
        t0 = time.perf_counter()
        try:
            with emulators.Emulators(workdir, https=False) as peers:
                environment.apply_environment(peers.env())
                print(f"  up in {time.perf_counter() - t0:.1f}s: S3 {peers.s3_endpoint}, "
                      f"GCS {peers.gcs_endpoint}, Azure {peers.azure_endpoint}, "
                      f"http {_http(peers).url}", file=out, flush=True)
                files = samples()
                prefixes = seed(peers, files)
                print(f"  put {len(files)} sample attachments (csv, parquet, png) in each "
                      "backend\n", file=out, flush=True)
                reads = list(read_all(prefixes, files, peers.config()))
                print("1. ambient mode (no tenants): each backend's default credentials",
                      file=out)
                print_table(reads, out)
                config, plan = set_up_tenants(peers, files)
                tenant_reads = []
                for tenant, uri, data in plan:
                    read = timed_read(uri, data or b"", config, tenant)
                    refused = read.outcome.startswith("Access")
                    if refused != (data is None):
                        read.outcome = f"UNEXPECTED ({read.outcome})"
                    tenant_reads.append(read)
                print("\n2. two tenants, moto enforcing IAM: acme delegated (AssumeRole with "
                      "its ExternalId), globex direct (claimed buckets)", file=out)
                print_table(tenant_reads, out)
                reads += tenant_reads
        except KeyboardInterrupt:
            print("\ninterrupted: emulators stopped", file=out)
            return 130
    bad = [r for r in reads if r.outcome == "MISMATCH" or r.outcome.startswith("UNEXPECTED")]
    total = sum(r.nbytes for r in reads)
    print(f"\n{len(reads)} reads, {total:,} bytes, {len(bad)} unexpected outcomes; "
          "emulators stopped.", file=out)
    return 1 if bad else 0
