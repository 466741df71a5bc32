"""`attachfs demo` as a user runs it: a subprocess, exit 0, both parts shown, nothing left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def demo_processes() -> list[int]:
    """Processes whose working directory is a demo's temp dir (the emulators it starts)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if "attachfs-demo-" in cwd:
            pids.append(int(proc.name))
    return pids


def run_demo(**kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "attachfs", "demo"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def test_demo_reads_every_backend_for_two_tenants_and_stops_everything():
    proc = run_demo()
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "1. ambient mode" in out and "2. two tenants" in out
    for backend in ("s3", "gcs", "azure", "http"):
        assert f"\n-       {backend}" in out, backend
    assert "delegated  arn:aws:iam::123456789012:role/AttachmentReader" in out
    assert "direct     platform:aws" in out and "anonymous" in out
    assert "AccessDenied (by s3; no fallback)" in out
    assert "AccessRefused (unclaimed: nothing sent)" in out
    assert "0 unexpected outcomes" in out
    assert demo_processes() == []


def test_interrupted_demo_leaves_nothing_running():
    proc = run_demo()
    deadline = time.monotonic() + 120
    line = ""
    while "up in" not in line and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line or proc.poll() is None, "demo exited before its emulators were up"
    assert demo_processes(), "the demo's emulators should be running now"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert demo_processes() == []
