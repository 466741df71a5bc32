"""Azurite over HTTPS with ``--oauth basic``: what Azure bearer-token reads need (
Azurite checks a token's audience, issuer and expiry only over HTTPS). The plain-http Azurite of
the demo and most tests is started by ``attachfs.testing``; this one is for the tenancy tests
that put an authorising proxy in front of it."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from attachfs.testing import AZURE_DEV_ACCOUNT, find_azurite


@contextmanager
def azurite_https(workdir: Path, cert: str, key: str, ca_pem: str) -> Iterator[str]:
    """Start it on a free port, yield its URL once it serves, stop it (and its children)."""
    binary = find_azurite()  # RuntimeError with the fix if missing: the caller fails, never skips
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = workdir / "azurite.log"
    argv = [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--cert", cert,
            "--key", key, "--oauth", "basic", "--inMemoryPersistence", "--extentMemoryLimit",
            "256", "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"]
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"https://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, log, ca_pem)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path, ca_pem: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited ({process.returncode}): {log.read_text()[-2000:]}")
        # Its own line first: a port taken by another server between pick and bind is not ours.
        if "successfully listens on" in log.read_text(errors="replace"):
            try:
                answer = requests.get(f"{url}/{AZURE_DEV_ACCOUNT}?comp=list", timeout=1,
                                      verify=ca_pem)
            except requests.RequestException:
                pass
            else:
                if answer.headers.get("Server", "").startswith("Azurite"):
                    return
        time.sleep(0.05)
    raise RuntimeError(f"Azurite did not serve {url} within 30 s: {log.read_text()[-2000:]}")
