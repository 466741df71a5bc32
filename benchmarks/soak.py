"""``python -m benchmarks.soak``: a mixed read load against nginx for minutes, with faults.

The benchmark's nginx serves S3-style objects (benchmarks/nginx.py, with its fault toggles);
a load process (benchmarks/soak_load.py) reads through attachfs with several threads and a
forked child; this process injects faults and, every ``--interval`` seconds, prints reads/s,
errors by type, the load process's RSS, fds and threads, its connections to nginx, sockets in
TIME-WAIT (from /proc/net/tcp, split by which side closed first) and connections nginx
accepted, and how many bytes were checked against the files.

The faults, each a window of time (``--plan``):

- ``restart``: nginx stopped, then started again on the same port ``--outage`` seconds later;
- ``reload``: nginx's graceful reload (new workers; idle keep-alive connections are closed);
- ``503``: every request answered ``503 ServiceUnavailable`` for a few seconds;
- ``stall``: every request arriving in the window waits ``--stall`` seconds for its first
  byte (longer than the client's read timeout, by default);
- ``replace``: the object the ``replaced`` readers read is swapped for its other version.

The verdict, which ``tests/test_soak.py`` asserts on a one-minute run: no wrong byte; no error
outside the fault windows; inside each, only the errors that fault may cause (a replaced
object: ``IntegrityError``; the rest should be ridden out by retries); every kind of read
succeeds again after every fault; and no fd growth (file descriptors other than files and
sockets, and no socket left in CLOSE-WAIT, after the load stops).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .nginx import Faults, Nginx, parse_log

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MiB = 2**20
BUCKET = "soak"

#: The errors a fault may cause; every other error in its window fails the soak.
ALLOWED = {"replace": {"IntegrityError"}}
#: Seconds after a fault ends during which its retries may still be settling.
GRACE = 2.0
WEIGHTS = {"cat": 4, "cat_range": 2, "open_partial": 3, "cat_iter": 2, "sequential": 1,
           "replaced": 1, "fork": 1}


# --------------------------------------------------------------------------- data

def ensure_data(root: Path) -> dict:
    """Small, medium and large objects, and the two versions of the replaced one."""
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if all((root / BUCKET / k).is_file() for k in manifest["sizes"]):
            return manifest
    shutil.rmtree(root, ignore_errors=True)
    sizes: dict[str, int] = {}
    keys: dict = {"small": [f"small/{i:04d}.bin" for i in range(400)],
                  "medium": [f"medium/{i:02d}.bin" for i in range(12)],
                  "large": "large/object.bin", "replaced": "replaced/object.bin"}
    for key, size in ([(k, 64 * 1024) for k in keys["small"]]
                      + [(k, 4 * MiB) for k in keys["medium"]] + [(keys["large"], 64 * MiB)]):
        path = root / BUCKET / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        sizes[key] = size
    versions = ["versions/replaced.A", "versions/replaced.B"]
    for v in versions:
        (root / v).parent.mkdir(parents=True, exist_ok=True)
        (root / v).write_bytes(os.urandom(8 * MiB))
    target = root / BUCKET / keys["replaced"]
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / versions[0], target)
    sizes[keys["replaced"]] = 8 * MiB
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    manifest = {"bucket": BUCKET, "keys": keys, "sizes": sizes, "replace_versions": versions}
    manifest_path.write_text(json.dumps(manifest))
    return manifest


def swap_version(root: Path, manifest: dict) -> str:
    """Replace the served object with its other version, atomically (a rename): reads in
    flight keep the old file, new requests get the new one."""
    target = root / BUCKET / manifest["keys"]["replaced"]
    versions = [root / v for v in manifest["replace_versions"]]
    now = target.read_bytes()
    new = versions[1] if now == versions[0].read_bytes() else versions[0]
    tmp = target.with_suffix(".swap")
    shutil.copyfile(new, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return new.name


# --------------------------------------------------------------------------- the plan

@dataclass
class Fault:
    kind: str
    at: float                 # seconds after the load starts
    duration: float = 0.0
    extra: float = 0.0        # seconds the window stays open after the fault ends
    started: float | None = None   # monotonic
    ended: float | None = None

    @property
    def window(self) -> tuple[float, float]:
        """The monotonic interval in which errors are this fault's."""
        return (self.started or 0.0, (self.ended or math.inf) + self.extra + GRACE)

    def label(self) -> str:
        what = {"restart": f"nginx stopped for {self.duration:g} s",
                "reload": "nginx reload", "503": f"503 for {self.duration:g} s",
                "stall": f"stall: requests wait {self.extra:g} s for {self.duration:g} s",
                "replace": "object replaced"}[self.kind]
        return f"{self.kind} at {self.at:g} s ({what})"


def plan(seconds: float, *, outage: float, stall: float, kind: str) -> list[Fault]:
    """``ci``: each fault once in a minute; ``cycle``: the faults again every 100 s."""
    def cycle(t0: float) -> list[Fault]:
        return [Fault("restart", t0 + 4, outage), Fault("reload", t0 + outage + 9),
                Fault("503", t0 + outage + 13, 3), Fault("stall", t0 + outage + 20, 2, stall),
                Fault("replace", t0 + outage + stall + 26)]

    if kind == "ci":
        faults = cycle(0)
    else:
        length = max(100.0, outage + stall + 45)
        faults = [f for n in range(int(seconds // length) or 1) for f in cycle(n * length)]
    return [f for f in faults if f.at + f.duration + f.extra + GRACE < seconds]


# --------------------------------------------------------------------------- /proc

_TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT"}


def tcp_table() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every IPv4/IPv6 TCP socket."""
    out = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            out.append((int(f[1].rsplit(":", 1)[1], 16), int(f[2].rsplit(":", 1)[1], 16),
                        _TCP_STATES.get(f[3], f[3]), int(f[9])))
    return out


def _fd_targets(pid: int | str) -> list[str]:
    """What each of the process's fds links to (``socket:[inode]``, a path, ``pipe:[...]``)."""
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:  # closed meanwhile
            continue
    return targets


def socket_states(port: int, pid: int | str = "self", *,
                  table: list[tuple[int, int, str, int]] | None = None) -> Counter[str]:
    """How many of the process's TCP sockets to ``port`` are in each state."""
    inodes = {int(t[8:-1]) for t in _fd_targets(pid) if t.startswith("socket:[")}
    return Counter(state for _, rport, state, inode in (table or tcp_table())
                   if inode in inodes and rport == port)


def process_stats(pid: int, port: int) -> dict:
    """RSS, threads, fds by kind, and the process's sockets to ``port`` by TCP state."""
    out: dict = {"rss_mib": 0.0, "threads": 0, "fds": 0, "fd_files": 0, "fd_sockets": 0,
                 "fd_other": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss_mib"] = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
        for target in _fd_targets(pid):
            out["fds"] += 1
            if target.startswith("socket:["):
                out["fd_sockets"] += 1
            elif target.startswith("/") and not target.startswith("/dev/"):
                out["fd_files"] += 1
            else:
                out["fd_other"] += 1  # pipes, eventfds, epoll, /dev/...
        table = tcp_table()
        mine = socket_states(port, pid, table=table)
    except OSError:  # the process ended
        return out
    out["established"] = mine["ESTABLISHED"]
    out["close_wait"] = mine["CLOSE_WAIT"]
    out["time_wait_client"] = sum(1 for _, rport, s, _ in table
                                  if rport == port and s == "TIME_WAIT")
    out["time_wait_server"] = sum(1 for lport, _, s, _ in table
                                  if lport == port and s == "TIME_WAIT")
    return out


# --------------------------------------------------------------------------- the run

@dataclass
class Soak:
    seconds: float
    faults: list[Fault]
    data_dir: Path
    threads: int = 8
    interval: float = 15.0
    stall: float = 35.0
    install: bool = True
    fork_every: float = 10.0
    #: attachfs's ``[limits]`` for the load (empty: the defaults).
    limits: dict = field(default_factory=dict)
    log: Callable[[str], object] = print
    ticks: list[dict] = field(default_factory=list)
    t0: float = 0.0

    def run(self) -> dict:
        manifest = ensure_data(self.data_dir)
        root = self.data_dir
        # Start from version A of the replaced object.
        shutil.copyfile(root / manifest["replace_versions"][0],
                        root / BUCKET / manifest["keys"]["replaced"])
        tmp = Path(tempfile.mkdtemp(prefix="attachfs-soak-"))
        faults_dir = tmp / "faults"
        nginx = Nginx(root, tmp / "nginx", install=self.install,
                      faults=Faults(faults_dir, stall=self.stall))
        load = None
        try:
            nginx.start()
            self.log(f"nginx at {nginx.endpoint} serving {root}; load: {self.threads} threads"
                     f" and a forked child every {self.fork_every:g} s, for {self.seconds:g} s"
                     + (f"; limits {self.limits}" if self.limits else ""))
            for f in self.faults:
                self.log(f"  fault planned: {f.label()}")
            load = self._start_load(manifest, nginx, tmp)
            return self._drive(load, nginx, manifest, faults_dir)
        finally:
            if load is not None and load.poll() is None:
                load.kill()
                load.wait()
            nginx.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    def _start_load(self, manifest: dict, nginx: Nginx, tmp: Path) -> subprocess.Popen:
        from .__main__ import BENCH_KEYS, worker_env

        spec = {"data_dir": str(self.data_dir), "bucket": BUCKET, "keys": manifest["keys"],
                "sizes": manifest["sizes"], "replace_versions": manifest["replace_versions"],
                "threads": self.threads, "weights": WEIGHTS, "fork_every": self.fork_every,
                "config": {"platform": {"aws": {"endpoint_url": nginx.endpoint,
                                                "region": "us-east-1"}}}}
        if self.limits:
            spec["config"]["limits"] = self.limits
        path = tmp / "load.json"
        path.write_text(json.dumps(spec))
        self.stderr_path = tmp / "load.stderr"
        with open(self.stderr_path, "wb") as err:
            return subprocess.Popen([sys.executable, "-m", "benchmarks.soak_load", str(path)],
                                    cwd=REPO, env=worker_env(BENCH_KEYS), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, bufsize=0)

    def _drive(self, load: subprocess.Popen, nginx: Nginx, manifest: dict,
               faults_dir: Path) -> dict:
        lines = _Lines(load)
        ready = lines.next(time.monotonic() + 300)
        if not ready or not ready.get("ready"):
            raise RuntimeError("the load did not start: "
                               + self.stderr_path.read_text(errors="replace")[-3000:])
        pid = load.pid
        baseline = process_stats(pid, nginx.port)
        self.t0 = t0 = time.monotonic()
        state = _State(nginx, t0)
        pending = sorted(self.faults, key=lambda f: f.at)
        active: list[Fault] = []
        next_report = t0 + self.interval
        end = t0 + self.seconds
        while (now := time.monotonic()) < end:
            for f in [f for f in pending if t0 + f.at <= now]:
                pending.remove(f)
                self._begin(f, nginx, manifest, faults_dir)
                active.append(f)
            for f in [f for f in active if now >= f.started + f.duration]:
                active.remove(f)
                self._finish(f, nginx, faults_dir)
            if now >= next_report:
                self._report(state, process_stats(pid, nginx.port), active)
                next_report += self.interval
            msg = lines.next(now + 0.2)
            if msg is None and load.poll() is not None:
                raise RuntimeError("the load process died: "
                                   + self.stderr_path.read_text(errors="replace")[-3000:])
            if msg:
                state.add(msg)
        for f in active:
            self._finish(f, nginx, faults_dir)
        load.stdin.write(b"stop\n")
        load.stdin.flush()
        final = None
        deadline = time.monotonic() + 90
        while final is None and (msg := lines.next(deadline)) is not None:
            state.add(msg)
            final = msg if msg.get("final") else None
        # Quiet: pooled connections the server closed are noticed, then fds are counted.
        time.sleep(1.0)
        ended = process_stats(pid, nginx.port) if load.poll() is None else {}
        load.stdin.close()
        try:
            load.wait(30)
        except subprocess.TimeoutExpired:
            load.kill()
        self._report(state, ended, [])
        return self._verdict(state, baseline, ended, final)

    # -- faults ---------------------------------------------------------------------------

    def _begin(self, f: Fault, nginx: Nginx, manifest: dict, faults_dir: Path) -> None:
        f.started = time.monotonic()
        if f.kind == "restart":
            nginx.stop()
        elif f.kind == "reload":
            nginx.reload()
        elif f.kind == "503":
            (faults_dir / "503").touch()
        elif f.kind == "stall":
            (faults_dir / "stall").touch()
        elif f.kind == "replace":
            swap_version(self.data_dir, manifest)
        self.log(f"[{f.started - self.t0:6.1f}s] fault begins: {f.label()}")

    def _finish(self, f: Fault, nginx: Nginx, faults_dir: Path) -> None:
        if f.kind == "restart":
            nginx.start()
        elif f.kind in ("503", "stall"):
            (faults_dir / f.kind).unlink(missing_ok=True)
        f.ended = time.monotonic()
        if f.duration:
            self.log(f"[{f.ended - self.t0:6.1f}s] fault ends: {f.kind}")

    # -- reports --------------------------------------------------------------------------

    def _report(self, state: _State, stats: dict, active: list[Fault]) -> None:
        line = state.interval_line(stats, active)
        self.ticks.append(state.last_interval)
        self.log(line)

    def _verdict(self, state: _State, baseline: dict, ended: dict, final: dict | None) -> dict:
        windows = [(f, *f.window) for f in self.faults if f.started is not None]
        by_window: dict[str, list[dict]] = defaultdict(list)
        outside, not_allowed = [], defaultdict(list)
        for e in state.errors:
            # The fault the read was in when it failed; else the latest one it lived through.
            owner = next((f for f, lo, hi in windows if lo <= e["end"] <= hi), None) or next(
                (f for f, lo, hi in reversed(windows) if e["start"] <= hi and e["end"] >= lo),
                None)
            if owner is None:
                outside.append(e)
                continue
            by_window[owner.label()].append(e)
            allowed = ALLOWED.get(owner.kind, set())
            if e["type"] not in allowed or (owner.kind == "replace" and e["op"] != "replaced"):
                not_allowed[owner.label()].append(e)
        recovery = {}
        for i, (f, lo, _) in enumerate(windows):
            until = windows[i + 1][1] if i + 1 < len(windows) else math.inf
            recovery[f.label()] = state.recovered(f.ended or lo, until)
        retries_by_window: dict[str, Counter[str]] = defaultdict(Counter)
        for t, counts in state.retries:
            owner = next((f for f, lo, hi in windows if lo <= t <= hi + 1.0), None)
            retries_by_window[owner.label() if owner else "outside"].update(counts)
        hung = (final or {}).get("hung", [])
        growth = {
            "fd_other": ended.get("fd_other", 0) - baseline.get("fd_other", 0),
            "close_wait": ended.get("close_wait", 0),
            # Sockets that are not a live connection to the server, beyond those at the start
            # (each event loop holds a socket pair to wake itself: fsspec's, and the loop of
            # each thread that read).
            "fd_sockets_beyond_established": (
                ended.get("fd_sockets", 0) - ended.get("established", 0)
                - (baseline.get("fd_sockets", 0) - baseline.get("established", 0))),
        }
        result = {
            "seconds": self.seconds,
            "faults": [dict(asdict(f), label=f.label(), window=list(f.window))
                       for f in self.faults],
            "totals": state.totals(),
            "wrong": state.wrong,
            "errors_by_window": {k: _by_type(v) for k, v in by_window.items()},
            "errors_outside": outside,
            "retries_by_window": {k: dict(v) for k, v in retries_by_window.items()},
            "errors_not_allowed": {k: _by_type(v) for k, v in not_allowed.items()},
            "error_examples": {k: v[:3] for k, v in not_allowed.items()},
            "recovery": recovery,
            "hung": hung,
            "baseline": baseline, "end": ended, "fd_growth": growth,
            "intervals": self.ticks,
        }
        result["ok"] = bool(
            not state.wrong and not outside and not not_allowed and not hung and final
            and all(all(r.values()) for r in recovery.values())
            and growth["fd_other"] <= 2 and growth["close_wait"] == 0
            and growth["fd_sockets_beyond_established"] <= 2)
        result["failures"] = failures(result)
        return result


class _Lines:
    """JSON lines from a child's stdout, with a deadline (select on the raw pipe)."""

    def __init__(self, proc: subprocess.Popen):
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def next(self, deadline: float) -> dict | None:
        import select

        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line) if line.startswith(b"{") else self.next(deadline)


def _by_type(errors: list[dict]) -> dict[str, int]:
    return dict(Counter(f"{e['op']}: {e['type']}" for e in errors))


class _State:
    """Everything the load process has reported, and the server's side of it."""

    def __init__(self, nginx: Nginx, t0: float):
        self.nginx = nginx
        self.t0 = t0
        self.ops: dict[str, int] = {}
        self.objects: dict[str, int] = {}
        self.checked = 0
        self.errors: list[dict] = []
        self.wrong: list[dict] = []
        self.success_spans: dict[str, set[tuple[int, int]]] = defaultdict(set)
        self.last = {"t": t0, "objects": 0, "checked": 0, "errors": 0, "accepts": None,
                     "log_offset": nginx.access_log.stat().st_size
                     if nginx.access_log.exists() else 0}
        self.retries: list[tuple[float, dict[str, int]]] = []  # (tick, retries since the last)
        self.accepted = 0
        self.opened_log = 0
        self.requests = 0
        self.statuses: Counter[int] = Counter()
        self.last_interval: dict = {}

    def add(self, msg: dict) -> None:
        if "tick" not in msg:
            return
        self.ops, self.objects, self.checked = msg["ops"], msg["objects"], msg["checked"]
        self.errors += msg["errors"]
        self.wrong += msg["wrong"]
        if msg.get("retries"):
            self.retries.append((msg["tick"], msg["retries"]))
        for kind, spans in msg["ok_spans"].items():
            self.success_spans[kind].update(tuple(span) for span in spans)

    def recovered(self, after: float, until: float) -> dict[str, bool]:
        """For each kind of read that succeeded at all: did one succeed that ended after the
        fault ended and began before the next fault began? It either started afresh after the
        fault, or rode it out: a read waiting out a fault's last retry wait when the next one
        begins a few seconds later is recovery too. The forked child, which runs every ten
        seconds or so, is asked only after the last fault."""
        out = {}
        for kind, spans in self.success_spans.items():
            if kind == "fork" and until != math.inf:
                continue
            out[kind] = any(end > after and start < until for start, end in spans)
        return out

    def _server(self) -> dict:
        """Connections nginx accepted, and requests/new connections/statuses in its log."""
        status = self.nginx.status()
        accepted = None
        if status is not None:
            prev = self.last["accepts"]
            # After a restart the counter starts again from 0.
            accepted = status["accepts"] - prev if prev is not None and status["accepts"] >= prev \
                else status["accepts"]
            self.last["accepts"] = status["accepts"]
            self.accepted += accepted
        path = self.nginx.access_log
        requests = opened = 0
        statuses: Counter[int] = Counter()
        if path.exists():
            with open(path, "rb") as f:
                f.seek(self.last["log_offset"])
                data = f.read()
            cut = data.rfind(b"\n") + 1
            self.last["log_offset"] += cut
            for r in parse_log(data[:cut].decode("latin-1")):
                if r.path.startswith("/_nginx/"):
                    continue
                requests += 1
                opened += r.conn_requests == 1
                statuses[r.status] += 1
        self.requests += requests
        self.opened_log += opened
        self.statuses.update(statuses)
        return {"accepted": accepted, "requests": requests, "opened": opened,
                "statuses": dict(statuses)}

    def interval_line(self, stats: dict, active: list[Fault]) -> str:
        now = time.monotonic()
        dt = max(1e-6, now - self.last["t"])
        objects = sum(self.objects.values())
        errors = len(self.errors)
        server = self._server()
        retried: Counter[str] = Counter()
        for t, counts in self.retries:
            if t > self.last.get("retries_t", 0.0):
                retried.update(counts)
        self.last["retries_t"] = max([t for t, _ in self.retries], default=0.0)
        by_type = Counter(e["type"] for e in self.errors)
        new_errors = Counter(e["type"] for e in self.errors[self.last["errors"]:])
        self.last_interval = {
            "t": round(now - self.t0, 1), "reads_per_s": (objects - self.last["objects"]) / dt,
            "checked_mib": self.checked / MiB, "wrong": len(self.wrong),
            "errors": dict(new_errors), "errors_total": dict(by_type),
            "retries": dict(retried), **stats,
            "server": server, "active_faults": [f.kind for f in active]}
        self.last.update(t=now, objects=objects, checked=self.checked, errors=errors)
        errs = (", ".join(f"{k} {v}" for k, v in new_errors.most_common()) or "none")
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(server["statuses"].items()))
        accepted = "?" if server["accepted"] is None else server["accepted"]
        retries = (", ".join(f"{k} {v}" for k, v in retried.most_common()) or "none")
        return (f"[{now - self.t0:6.1f}s] {self.last_interval['reads_per_s']:7.0f} reads/s | "
                f"errors {errs} (total {errors}) | retries {retries} | "
                f"RSS {stats.get('rss_mib', 0):.0f} MiB, "
                f"fds {stats.get('fds', '?')} ({stats.get('fd_sockets', '?')} sockets), "
                f"threads {stats.get('threads', '?')} | conns {stats.get('established', '?')} "
                f"established, {stats.get('close_wait', '?')} close-wait, nginx accepted "
                f"{accepted} ({server['opened']} new in log) | TIME-WAIT "
                f"{stats.get('time_wait_client', '?')} client-closed, "
                f"{stats.get('time_wait_server', '?')} server-closed | requests "
                f"{server['requests']} ({codes}) | checked {self.checked / MiB:,.0f} MiB, "
                f"wrong {len(self.wrong)}"
                + (f" | fault now: {', '.join(f.kind for f in active)}" if active else ""))

    def totals(self) -> dict:
        return {"ops": self.ops, "objects": self.objects, "checked_mib": self.checked / MiB,
                "errors": len(self.errors), "wrong": len(self.wrong),
                "nginx_accepted": self.accepted, "new_connections_in_log": self.opened_log,
                "requests": self.requests, "statuses": dict(self.statuses)}


def failures(result: dict) -> list[str]:
    """What failed, in words: which fault window produced which errors."""
    out = []
    if result["wrong"]:
        out.append(f"{len(result['wrong'])} wrong-byte events, e.g. {result['wrong'][:3]}")
    if result["errors_outside"]:
        out.append(f"{len(result['errors_outside'])} errors outside every fault window: "
                   f"{_by_type(result['errors_outside'])}, e.g. "
                   f"{[e['message'] for e in result['errors_outside'][:2]]}")
    for label, counts in result["errors_not_allowed"].items():
        examples = [e["message"] for e in result["error_examples"].get(label, [])[:2]]
        out.append(f"fault '{label}' produced {counts} (should be ridden out), e.g. {examples}")
    for label, kinds in result["recovery"].items():
        bad = [k for k, ok in kinds.items() if not ok]
        if bad:
            out.append(f"after fault '{label}', no successful {', '.join(bad)} before the next")
    if result["hung"]:
        out.append(f"reads still running at the end: {result['hung']}")
    g = result["fd_growth"]
    if g["fd_other"] > 2 or g["close_wait"] or g["fd_sockets_beyond_established"] > 2:
        out.append(f"fd growth: {g} (baseline {result['baseline']}, end {result['end']})")
    return out


def summary(result: dict) -> str:
    t = result["totals"]
    lines = ["", "soak summary:",
             f"  {sum(t['objects'].values()):,} objects read in {sum(t['ops'].values()):,} "
             f"operations ({t['ops']}), {t['checked_mib']:,.0f} MiB checked, "
             f"{t['wrong']} wrong", f"  errors: {t['errors']} "
             f"(by fault window: {result['errors_by_window'] or 'none'}; outside: "
             f"{_by_type(result['errors_outside']) or 'none'})",
             f"  retries (by fault window; a second's retries count where it ends): "
             f"{result['retries_by_window'] or 'none'}",
             f"  server: {t['requests']:,} requests {t['statuses']}, {t['nginx_accepted']:,} "
             f"connections accepted, {t['new_connections_in_log']:,} new connections in the log",
             f"  client: baseline {result['baseline']}", f"          end {result['end']}",
             f"  verdict: {'OK' if result['ok'] else 'FAILED'}"]
    lines += [f"    - {f}" for f in result["failures"]]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split(
        "\n")[0])
    p.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 10)))
    p.add_argument("--seconds", type=float, help="overrides --minutes")
    p.add_argument("--plan", choices=("ci", "cycle"), default="cycle",
                   help="ci: each fault once; cycle: again every ~100 s (default)")
    p.add_argument("--outage", type=float, default=10.0, help="seconds nginx stays stopped")
    p.add_argument("--stall", type=float, default=35.0,
                   help="seconds a request waits in the stall window (attachfs's read "
                        "timeout is 30 s)")
    p.add_argument("--read-timeout", type=float,
                   help="attachfs's read timeout for the load (default: its own, 30 s); the "
                        "one-minute soak sets it under --stall so the stall is retried")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--interval", type=float, default=15.0, help="seconds between reports")
    p.add_argument("--fork-every", type=float, default=10.0)
    p.add_argument("--data-dir", type=Path, default=HERE / ".data" / "soak")
    p.add_argument("--json", type=Path, help="write the whole result here")
    p.add_argument("--no-install", action="store_true",
                   help="do not apt-get install nginx or its echo module when missing")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    seconds = args.seconds or args.minutes * 60
    soak = Soak(seconds=seconds, data_dir=args.data_dir, threads=args.threads,
                interval=args.interval, stall=args.stall, install=not args.no_install,
                fork_every=args.fork_every,
                limits={"read_timeout": args.read_timeout} if args.read_timeout else {},
                faults=plan(seconds, outage=args.outage, stall=args.stall, kind=args.plan),
                log=lambda m: print(m, flush=True))
    # A SIGTERM (make interrupted, CI timeout) still stops nginx and the load.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = soak.run()
    print(summary(result), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
