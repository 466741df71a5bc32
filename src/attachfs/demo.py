"""`attachfs demo`: start the bundled local emulators, put sample attachments in each backend,
read them back through attachfs, and print what was read, from where, and how fast.

Everything runs on loopback and everything started is stopped on the way out, also on Ctrl-C.
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
from urllib.parse import quote


@dataclass
class Read:
    uri: str
    backend: str
    mode: str
    identity: str | None
    what: str
    nbytes: int
    seconds: float
    ok: bool


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


def sample_frame():
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


def seed(peers, files: dict[str, bytes]) -> dict[str, str]:
    """Put ``files`` in every backend; return {backend: uri prefix}."""
    peers.make_s3_bucket("demo-attachments")
    peers.make_gcs_bucket("demo-attachments")
    peers.make_azure_container("attachments")
    for name, data in files.items():
        key = f"samples/{name}"
        peers.put_s3("demo-attachments", key, data)
        peers.put_gcs("demo-attachments", key, data)
        peers.put_azure("attachments", key, data)
        peers.http.put(f"/files/{quote(key)}", data)
    return {
        "s3": "s3://demo-attachments/samples/",
        "gcs": "gs://demo-attachments/samples/",
        "azure": f"https://{peers.azure_account}.blob.core.windows.net/attachments/samples/",
        "http": f"{peers.http.url}/files/samples/",
    }


def read_all(prefixes: dict[str, str], files: dict[str, bytes], config: dict,
             tenant: str | None = None) -> Iterator[Read]:
    import pandas as pd

    import attachfs

    frame = sample_frame()
    for prefix in prefixes.values():
        for name, data in files.items():
            uri = prefix + name
            route = attachfs.explain(uri, tenant=tenant, config=config)
            t0 = time.perf_counter()
            with attachfs.open(uri, tenant=tenant, config=config) as f:
                got = f.read()
            yield Read(uri, route.backend, route.mode, route.identity, "attachfs.open",
                       len(got), time.perf_counter() - t0, got == data)
            if name.endswith(".parquet"):
                t0 = time.perf_counter()
                df = pd.read_parquet(f"attach::{uri}", columns=["invoice", "amount"],
                                     storage_options={"tenant": tenant, "config": config})
                yield Read(uri, route.backend, route.mode, route.identity,
                           "pd.read_parquet", int(df.memory_usage(deep=True).sum()),
                           time.perf_counter() - t0,
                           df.equals(frame[["invoice", "amount"]]))


def print_table(reads: list[Read], out=sys.stdout) -> None:
    rows = [("backend", "mode", "read with", "uri", "bytes", "ms", "ok")]
    for r in reads:
        rows.append((r.backend, r.mode, r.what, r.uri, f"{r.nbytes:,}",
                     f"{r.seconds * 1000:.1f}", "yes" if r.ok else "NO"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


def run(out=sys.stdout) -> int:
    from . import emulators

    # No SDK may find real credentials or a metadata server; set before gcsfs/aiohttp load.
    emulators.apply_environment(emulators.peer_environment())
    with tempfile.TemporaryDirectory(prefix="attachfs-demo-") as workdir:
        print("starting local emulators (moto S3/STS, fake-gcs-server, Azurite, http) ...",
              file=out, flush=True)
        t0 = time.perf_counter()
        try:
            with emulators.Emulators(workdir, https=False) as peers:
                emulators.apply_environment(peers.env())
                print(f"  up in {time.perf_counter() - t0:.1f}s: S3 {peers.s3_endpoint}, "
                      f"GCS {peers.gcs_endpoint}, Azure {peers.azure_endpoint}, "
                      f"http {peers.http.url}", file=out, flush=True)
                files = samples()
                prefixes = seed(peers, files)
                print(f"  put {len(files)} sample attachments (csv, parquet, png) in each "
                      "backend\n", file=out, flush=True)
                reads = list(read_all(prefixes, files, peers.config()))
                print_table(reads, out)
        except KeyboardInterrupt:
            print("\ninterrupted: emulators stopped", file=out)
            return 130
    bad = [r for r in reads if not r.ok]
    total = sum(r.nbytes for r in reads)
    print(f"\n{len(reads)} reads, {total:,} bytes, {len(bad)} mismatches; "
          "emulators stopped.", file=out)
    return 1 if bad else 0
