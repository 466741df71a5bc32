"""One library in one case, in its own process: ``python -m benchmarks.worker SPEC.json``.

A process per (case, library) keeps each library's peak RSS its own and stops one library's
pools, threads or caches from warming another's. The worker builds the client and makes an
untimed warm-up (connections, credentials, lazy imports), answers ``{"ready": true}``, then
runs one timed repetition per ``rep`` line on stdin and answers each with one JSON line; ``done``
returns the process-wide numbers (peak RSS). The parent interleaves the libraries' repetitions
round by round, so a burst of load on this shared machine lands on every library alike rather
than on whichever ran during it.

Each repetition reads nginx's access log around itself (only one worker runs at a time) to
count what was requested, how many requests were in flight at once, and how many connections
were opened. Case (f) reads a fresh name of each file every repetition (``copy/{n}/...``) and
counts three passes apart: first, second on the same reader, and after reopening. Anything a library prints goes to stderr: stdout carries only the
protocol.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import unquote

from . import access
from .clients import CLIENTS, RawAiohttp, api
from .data import base_key, copy_key
from .nginx import LogWindow, Request, connections, in_flight, requested_bytes


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def traffic(requests: list[Request], sizes: dict[str, int], bucket: str) -> dict:
    """Requests by method, bytes sent, bytes asked for (by Range, else the whole object),
    responses cut short (fewer bytes sent than asked for: the client hung up), requests in
    flight at once, and connections used and opened."""
    prefix = f"/{bucket}/"
    out = {"get": 0, "head": 0, "other": 0, "sent": 0, "requested": 0, "errors": 0,
           "cut_short": 0}
    for r in requests:
        method = r.method.upper()
        out["get" if method == "GET" else "head" if method == "HEAD" else "other"] += 1
        out["sent"] += r.sent
        if r.status >= 400:
            out["errors"] += 1
        path = unquote(r.path)
        size = sizes.get(base_key(path[len(prefix):]), 0) if path.startswith(prefix) else 0
        asked = requested_bytes(r, size)
        out["requested"] += asked
        if method == "GET" and r.status in (200, 206) and r.sent < asked:
            out["cut_short"] += 1
    out["requests"] = out["get"] + out["head"] + out["other"]
    flight = in_flight(requests)
    out["in_flight_max"], out["in_flight_mean"] = flight["max"], flight["mean"]
    conns = connections(requests)
    out["connections"], out["opened"] = conns["used"], conns["opened"]
    return out


class Worker:
    def __init__(self, spec: dict):
        self.spec = spec
        self.case = spec["case"]
        self.manifest = spec["manifest"]
        self.keys = self.manifest["keys"]
        self.sizes = self.manifest["objects"]
        self.bucket = self.manifest["bucket"]
        self.log = LogWindow(spec["log"])
        self.client = CLIENTS[spec["lib"]](
            spec["endpoint"], self.bucket, threads=spec["threads"],
            connections=spec["connections"], sizes=self.sizes, config=spec.get("config"),
            tenant=spec.get("tenant"))
        self.base_rss = 0
        self.rep_no = 0
        self.scenarios: dict[str, access.Scenario] = {}
        self.needed: dict[str, list[tuple[int, int]]] = {}

    def warm_up(self) -> None:
        c, keys, case = self.client, self.keys, self.case
        if case in ("a", "ea"):
            c.small_open(keys["medium"][0], 16)
            self.base_rss = _status_kib("VmRSS") * 1024
        elif case in ("b", "eb"):
            # Enough objects at once to open the pools' connections.
            c.batch(keys["small"][:max(self.spec["threads"], self.spec["connections"])])
        elif case == "c":
            c.small_open(keys["large"], self.spec["small_read"])
        elif case in ("d", "ed"):
            self._parquet()  # pandas and pyarrow import lazily on first use
        elif case == "f":
            self.scenarios = access.scenarios(self.manifest)
            root = Path(self.spec["data_dir"]) / self.bucket
            for name, sc in self.scenarios.items():
                self.needed[name] = access.needed(sc, str(root / sc.key))
                try:  # imports, pools; on copy 0, which no repetition reads
                    self._scenario(sc, copy_key(sc.key, 0), self.needed[name])
                except Exception:
                    pass  # the repetitions report it, scenario by scenario
        # (g): nothing; the first repetition is the cold one, AssumeRole included.

    def rep(self) -> dict:
        """One timed repetition, with the requests it made."""
        self.client.reset()
        if self.case == "f":
            return self._rep_f()
        self.log.open()
        out = getattr(self, f"_rep_{self.case}")()
        out["traffic"] = traffic(self.log.close(), self.sizes, self.bucket)
        return out

    def _traffic(self) -> dict:
        return traffic(self.log.close(), self.sizes, self.bucket)

    def _rep_f(self) -> dict:
        self.rep_no += 1
        out: dict = {"scenarios": {}}
        for name, sc in self.scenarios.items():
            # Two scenarios may read the same file (the netCDF variable whole, then a slice):
            # each starts cold, as each repetition does.
            self.client.reset()
            try:
                out["scenarios"][name] = self._scenario(sc, copy_key(sc.key, self.rep_no),
                                                        self.needed[name])
            except Exception as err:
                out["scenarios"][name] = _error(err)
        return out

    def _scenario(self, sc: access.Scenario, key: str, needed: list[tuple[int, int]]) -> dict:
        """Three passes: a new file, the same reader again, a reopened file."""
        out: dict = {"needed": sum(e - s for s, e in needed)}
        c = self.client
        if isinstance(c, RawAiohttp):  # the floor: exactly the needed ranges, gathered
            self.log.open()
            t0 = time.perf_counter()
            n = c.fetch_ranges(key, [[s, e] for s, e in needed])
            out["time"] = time.perf_counter() - t0
            out["passes"] = [self._traffic()]
            if n != out["needed"]:
                raise AssertionError(f"fetched {n} bytes of {out['needed']}")
            return out
        passes, times = [], []
        f = state = None
        try:
            for step in ("first", "again", "reopened"):
                self.log.open()
                t0 = time.perf_counter()
                if step != "again":
                    if state is not None:
                        sc.close(state)
                        f.close()
                    f = c.open_random(key)
                    state = sc.open(f)
                sc.read(state)
                times.append(time.perf_counter() - t0)
                passes.append(self._traffic())
        finally:
            if state is not None:
                sc.close(state)
            if f is not None:
                f.close()
        out.update(time=times[0], times=times, passes=passes)
        return out

    def _rep_a(self) -> dict:
        key = self.keys["large"]
        t0 = time.perf_counter()
        n = self.client.sequential(key, self.spec["chunk"])
        elapsed = time.perf_counter() - t0
        if n != self.sizes[key]:
            raise AssertionError(f"read {n} bytes of {self.sizes[key]}")
        return {"time": elapsed}

    def _rep_b(self) -> dict:
        keys = self.keys["small"]
        t0 = time.perf_counter()
        n = self.client.batch(keys)
        elapsed = time.perf_counter() - t0
        expected = sum(self.sizes[k] for k in keys)
        if n != expected:
            raise AssertionError(f"read {n} bytes of {expected}")
        return {"time": elapsed}

    _rep_ea = _rep_a
    _rep_eb = _rep_g = _rep_b

    def _rep_c(self) -> dict:
        n = self.spec["small_read"]
        latencies = []
        for key in self.keys["medium"]:
            t0 = time.perf_counter()
            data = self.client.small_open(key, n)
            latencies.append(time.perf_counter() - t0)
            if len(data) != n:
                raise AssertionError(f"read {len(data)} bytes of {n}")
        return {"latencies": latencies}

    def _rep_d(self) -> dict:
        t0 = time.perf_counter()
        self._parquet()
        return {"time": time.perf_counter() - t0}

    _rep_ed = _rep_d

    def _parquet(self) -> None:
        key, meta = self.keys["parquet"], self.manifest["parquet"]
        if isinstance(self.client, RawAiohttp):
            n = self.client.parquet_floor(key, meta["ranges"], meta["footer"])
            if n != meta["floor_bytes"]:
                raise AssertionError(f"fetched {n} bytes, the floor is {meta['floor_bytes']}")
            return
        df = self.client.parquet(key, meta["columns"])
        rows = self.manifest["sizes"]["parquet_rows"]
        if list(df.columns) != meta["columns"] or len(df) != rows:
            raise AssertionError(f"got columns {list(df.columns)} and {len(df)} rows")

    def final(self) -> dict:
        self.client.close()
        # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark into ru_maxrss
        # across fork and exec, so every worker reported the harness's own peak.
        peak = _status_kib("VmHWM") * 1024 or (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        return {"peak_rss": peak,
                "base_rss": self.base_rss, "api": api(type(self.client), self.case)}


def _error(err: BaseException) -> dict:
    return {"error": f"{type(err).__name__}: {err}"[:500],
            "traceback": traceback.format_exc()[-4000:]}


def main(argv: list[str]) -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a library's prints must not corrupt the protocol

    def send(obj: dict) -> None:
        protocol.write(json.dumps(obj) + "\n")

    spec = json.loads(Path(argv[0]).read_text())
    try:
        worker = Worker(spec)
        worker.warm_up()
    except Exception as err:
        send(_error(err))
        return 1
    send({"ready": True})
    for line in sys.stdin:
        command = line.strip()
        if command == "rep":
            try:
                send(worker.rep())
            except Exception as err:
                send(_error(err))
        elif command == "done":
            send(worker.final())
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
