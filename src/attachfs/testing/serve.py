"""`attachfs demo --serve`: the demo's emulators and tenants, kept running for your own reads.

Starts moto (S3 and STS, IAM enforced), fake-gcs-server, Azurite and a local http server on
127.0.0.1, seeds the two tenants of ``attachfs demo`` (acme: delegated on AWS; globex: direct
reads of the buckets it claims, and an anonymous Azure container), writes their config to a
file, prints it with the ``export`` lines another shell needs, and waits. Ctrl-C (SIGINT) or
SIGTERM stops every emulator and removes the temporary directory; the exit code is 0.

What is seeded (the recipes in the docs read exactly these):

* ``s3://acme-attachments/samples/{report.csv,table.parquet,photo.png}``,
  ``s3://acme-attachments/images/0000.png`` ... ``0063.png`` and the parquet dataset
  ``s3://acme-attachments/sales/region={eu,us}/part-0.parquet``: tenant acme (delegated);
* ``s3://globex-attachments/samples/...``, ``gs://globex-attachments/samples/...`` (claimed) and
  ``https://devstoreaccount1.blob.core.windows.net/globex-public/samples/...`` (public):
  tenant globex;
* ``http://127.0.0.1:PORT/files/samples/...``: any tenant (the config opens loopback).
"""

from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import quote

__all__ = ["IMAGES", "serve", "to_toml"]

#: How many small images acme's bucket holds for the PyTorch recipe.
IMAGES = 64


def to_toml(mapping: Mapping[str, Any]) -> str:
    """A config mapping (tables of strings, numbers, booleans and lists) as TOML text."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # a JSON string is a valid TOML basic string
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, Mapping):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"cannot write {type(v).__name__} as TOML")

    def table(prefix: str, m: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in m.items() if not isinstance(v, Mapping)}
        tables = {k: v for k, v in m.items() if isinstance(v, Mapping)}
        if prefix and (scalars or not tables):
            lines.append(f"\n[{prefix}]")
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        for k, v in tables.items():
            table(f"{prefix}.{k}" if prefix else k, v)

    table("", mapping)
    return "\n".join(lines).lstrip("\n") + "\n"


def _acme_extra() -> dict[str, bytes]:
    """acme's images (a training set) and a hive-partitioned parquet dataset."""
    import pandas as pd

    from .demo import sample_png

    extra = {f"images/{i:04d}.png": sample_png(16 + i % 8, 12 + i % 5) for i in range(IMAGES)}
    for region, offset in (("eu", 0), ("us", 100)):
        frame = pd.DataFrame({"order": [f"ORD-{offset + i:04d}" for i in range(50)],
                              "amount": [round(5 + (offset + i) * 0.75, 2) for i in range(50)],
                              "day": [1 + i % 7 for i in range(50)]})
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        extra[f"sales/region={region}/part-0.parquet"] = buf.getvalue()
    return extra


def _environment(peers: Any, config_path: Path) -> dict[str, str | None]:
    """What a shell reading from the emulators needs: ``None`` means unset it."""
    from . import environment

    env: dict[str, str | None] = dict(environment.peer_environment())
    env.update(peers.env())
    # The platform's own AWS identity: the IAM user set_up_tenants made (moto's keys, local).
    env["AWS_ACCESS_KEY_ID"] = os.environ["AWS_ACCESS_KEY_ID"]
    env["AWS_SECRET_ACCESS_KEY"] = os.environ["AWS_SECRET_ACCESS_KEY"]
    env["ATTACHFS_CONFIG"] = str(config_path)
    env["ATTACHFS_TENANT"] = None  # each recipe names its tenant
    return env


def shell_lines(env: Mapping[str, str | None]) -> list[str]:
    """``export NAME=value`` for each value, then one ``unset`` of the names mapped to None."""
    lines = [f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())
             if value is not None]
    unset = sorted(name for name, value in env.items() if value is None)
    if unset:
        lines.append("unset " + " ".join(unset))
    return lines


class _Stop(Exception):
    """SIGTERM: leave the wait and clean up as for Ctrl-C."""


def serve(out: TextIO = sys.stdout, *, wait: Callable[[], None] = signal.pause) -> int:
    """Run the emulators with the demo's tenants until Ctrl-C or SIGTERM; 0 when stopped."""
    from . import emulators, environment
    from .demo import _http, samples, set_up_tenants

    environment.apply_environment(environment.peer_environment())

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C is how a user stops it, even when started from a shell that ignores SIGINT in
    # background jobs.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="attachfs-demo-"))
    try:
        print("starting local emulators (moto S3/STS, fake-gcs-server, Azurite, http) ...",
              file=out, flush=True)
        t0 = time.perf_counter()
        with emulators.Emulators(workdir, https=False) as peers:
            environment.apply_environment(peers.env())
            files = samples()
            web = _http(peers)
            for name, data in files.items():
                web.put(f"/files/samples/{quote(name)}", data)
            config, _ = set_up_tenants(peers, files, acme_extra=_acme_extra())
            config_path = workdir / "attachfs.toml"
            config_path.write_text(
                "# attachfs demo --serve: the emulators' endpoints and the demo's two tenants.\n"
                + to_toml(config), encoding="utf-8")
            env = _environment(peers, config_path)
            env_file = workdir / "env.sh"
            env_file.write_text("\n".join(shell_lines(env)) + "\n", encoding="utf-8")
            _announce(out, peers, web.url, config_path, env, env_file,
                      time.perf_counter() - t0)
            try:
                while True:
                    wait()
            except (KeyboardInterrupt, _Stop):
                print("\nstopping the emulators ...", file=out, flush=True)
    except (KeyboardInterrupt, _Stop):  # during start-up: Emulators stopped what had started
        print("\ninterrupted while starting", file=out, flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        shutil.rmtree(workdir, ignore_errors=True)
    print("stopped: every emulator started here has exited; the config and env files are "
          "removed.", file=out, flush=True)
    return 0


def _announce(out: TextIO, peers: Any, http_url: str, config_path: Path,
              env: Mapping[str, str | None], env_file: Path, seconds: float) -> None:
    azure = f"https://{peers.azure_account}.blob.core.windows.net"
    text = f"""\
up in {seconds:.1f}s:
  S3 and STS  {peers.s3_endpoint}  (moto, IAM enforced)
  GCS         {peers.gcs_endpoint}  (fake-gcs-server)
  Azure Blob  {peers.azure_endpoint.format(account=peers.azure_account)}  (Azurite; blob URLs {azure}/...)
  http        {http_url}

config: {config_path}
  tenant acme    delegated on AWS: assumes AttachmentReader with its ExternalId
                 s3://acme-attachments/samples/report.csv, table.parquet, photo.png
                 s3://acme-attachments/images/0000.png ... {IMAGES - 1:04d}.png
                 s3://acme-attachments/sales/  (parquet dataset: region=eu, region=us)
  tenant globex  direct: reads only the buckets it claims, as the platform
                 s3://globex-attachments/samples/..., gs://globex-attachments/samples/...
                 {azure}/globex-public/samples/...  (public container: anonymous)
  any tenant     {http_url}/files/samples/...

In another shell, paste these lines (or: source {env_file}):

"""
    text += "\n".join(shell_lines(env)) + "\n"
    text += ("\nthen, for example:\n"
             "  attachfs ls --tenant acme s3://acme-attachments/samples/\n"
             "  attachfs check --tenant globex gs://globex-attachments/samples/photo.png\n"
             "\nPress Ctrl-C to stop everything.\n")
    out.write(text)
    out.flush()
