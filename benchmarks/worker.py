"""One library in one case, in a fresh process: ``python -m benchmarks.worker SPEC.json``.

A fresh process per (case, library) keeps each library's peak RSS its own and stops one
library's pools, threads or caches from warming another's. The worker builds the client, makes
one small untimed warm-up read (connections, credentials, imports), then times the repetitions
and reads nginx's access log around them to count what was requested. It writes its result as
JSON to the spec's ``out`` path.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from urllib.parse import unquote

from .clients import CLIENTS
from .nginx import LogWindow, Request, requested_bytes

MiB = 2**20


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _traffic(requests: list[Request], sizes: dict[str, int], bucket: str) -> dict:
    """Requests by method, bytes sent, and bytes asked for (by Range, else the whole object)."""
    prefix = f"/{bucket}/"
    out = {"get": 0, "head": 0, "other": 0, "sent": 0, "requested": 0, "errors": 0}
    for r in requests:
        method = r.method.upper()
        key = "get" if method == "GET" else "head" if method == "HEAD" else "other"
        out[key] += 1
        out["sent"] += r.sent
        if r.status >= 400:
            out["errors"] += 1
        path = unquote(r.path)
        size = sizes.get(path[len(prefix):], 0) if path.startswith(prefix) else 0
        out["requested"] += requested_bytes(r, size)
    out["requests"] = out["get"] + out["head"] + out["other"]
    return out


class Run:
    def __init__(self, spec: dict):
        self.spec = spec
        self.manifest = spec["manifest"]
        self.keys = self.manifest["keys"]
        self.sizes = self.manifest["objects"]
        self.bucket = self.manifest["bucket"]
        self.reps = spec["reps"]
        self.log = LogWindow(spec["log"])
        self.client = CLIENTS[spec["lib"]](
            spec["endpoint"], self.bucket, threads=spec["threads"],
            connections=spec["connections"], sizes=self.sizes, config=spec.get("config"),
            tenant=spec.get("tenant"))

    def timed(self, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        return time.perf_counter() - t0, out

    def traffic(self, requests: list[Request]) -> dict:
        return _traffic(requests, self.sizes, self.bucket)

    def warm_up(self) -> None:
        self.client.small_open(self.keys["medium"][0], 16)

    # -- the cases -----------------------------------------------------------------------

    def case_a(self) -> dict:
        key, chunk = self.keys["large"], self.spec["chunk"]
        self.warm_up()
        base_rss = _status_kib("VmRSS") * 1024
        times, traffic = [], []
        for _ in range(self.reps):
            self.log.open()
            elapsed, n = self.timed(self.client.sequential, key, chunk)
            traffic.append(self.traffic(self.log.close()))
            if n != self.sizes[key]:
                raise AssertionError(f"read {n} bytes of {self.sizes[key]}")
            times.append(elapsed)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {"times": times, "bytes": self.sizes[key], "peak_rss": peak,
                "base_rss": base_rss, "traffic": traffic}

    def _batch_reps(self, keys: list[str]) -> tuple[list[float], list[dict]]:
        expected = sum(self.sizes[k] for k in keys)
        times, traffic = [], []
        for _ in range(self.reps):
            self.log.open()
            elapsed, n = self.timed(self.client.batch, keys)
            traffic.append(self.traffic(self.log.close()))
            if n != expected:
                raise AssertionError(f"read {n} bytes of {expected}")
            times.append(elapsed)
        return times, traffic

    def case_b(self) -> dict:
        keys = self.keys["small"]
        # Untimed: enough objects at once to open the pools' connections.
        self.client.batch(keys[:max(self.spec["threads"], self.spec["connections"])])
        times, traffic = self._batch_reps(keys)
        return {"times": times, "objects": len(keys), "traffic": traffic}

    def case_c(self) -> dict:
        keys, n = self.keys["medium"], self.spec["small_read"]
        self.client.small_open(self.keys["large"], n)
        latencies, traffic = [], []
        for _ in range(self.reps):
            self.log.open()
            rep = []
            for key in keys:
                elapsed, data = self.timed(self.client.small_open, key, n)
                if len(data) != n:
                    raise AssertionError(f"read {len(data)} bytes of {n}")
                rep.append(elapsed)
            traffic.append(self.traffic(self.log.close()))
            latencies.append(rep)
        return {"latencies": latencies, "opens_per_rep": len(keys), "traffic": traffic}

    def case_d(self) -> dict:
        key = self.keys["parquet"]
        meta = self.manifest["parquet"]
        times, traffic = [], []
        # One untimed read first: pandas and pyarrow import lazily on first use.
        for rep in range(self.reps + 1):
            self.log.open()
            if isinstance(self.client, CLIENTS["raw aiohttp"]):
                elapsed, n = self.timed(self.client.parquet_floor, key, meta["ranges"],
                                        meta["footer"])
                if n != meta["floor_bytes"]:
                    raise AssertionError(f"fetched {n} bytes, floor is {meta['floor_bytes']}")
            else:
                elapsed, df = self.timed(self.client.parquet, key, meta["columns"])
                if list(df.columns) != meta["columns"] or len(df) != (
                        self.manifest["sizes"]["parquet_rows"]):
                    raise AssertionError(f"got columns {list(df.columns)}, {len(df)} rows")
                del df
            requests = self.log.close()
            if rep:
                traffic.append(self.traffic(requests))
                times.append(elapsed)
        return {"times": times, "file_size": meta["size"], "floor_bytes": meta["floor_bytes"],
                "traffic": traffic}

    def case_e(self) -> dict:
        # The first batch is cold: it includes the AssumeRole. The parent counts AssumeRole
        # requests at its STS proxy over this whole process.
        keys = self.keys["small"]
        self.log.open()
        cold, n = self.timed(self.client.batch, keys)
        cold_traffic = self.traffic(self.log.close())
        times, traffic = self._batch_reps(keys)
        return {"cold": cold, "cold_traffic": cold_traffic, "times": times,
                "objects": len(keys), "traffic": traffic}

    def run(self) -> dict:
        try:
            result = getattr(self, f"case_{self.spec['case']}")()
        finally:
            self.client.close()
        result["api"] = self.client.apis.get(self.spec["case"], "")
        return result


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    try:
        result = Run(spec).run()
    except Exception as err:  # reported in the table, the other libraries still run
        import traceback

        result = {"error": f"{type(err).__name__}: {err}"[:500],
                  "traceback": traceback.format_exc()[-4000:]}
    Path(spec["out"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
