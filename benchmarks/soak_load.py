"""The soak's client side: ``python -m benchmarks.soak_load SPEC.json``, a mixed read load.

Runs in its own process so that its RSS, fds and threads are the client's alone. ``threads``
threads share one attachfs filesystem and loop over weighted operations (every one a real
user's shape of read):

- ``cat``: ``fs.cat([16 small objects])``, a batch;
- ``cat_range``: ``fs.cat_file(path, start, end)`` of a medium object;
- ``open_partial``: ``fs.open()``, seek, two reads, close with read-ahead likely in flight;
- ``cat_iter``: ``fs.cat_iter([64 small])``, closed early half the time;
- ``sequential``: ``fs.open()`` of the large object, ``read(4 MiB)`` to the end or a random
  stop;
- ``replaced``: the whole of the object the soak replaces now and then, which must come back
  as one version entire or raise ``IntegrityError``;
- ``fork``: every ``fork_every`` seconds a forked child reads through the same filesystem
  (as a DataLoader worker does) and reports through a pipe.

Every result is checked against the files: whole for small reads and one in ``full_check``
large ones, else the first, last and a random 4 KiB of it. Nothing is kept in memory but a
file descriptor's worth: the files are read back with ``pread`` when a result is checked.

Protocol on stdout, one JSON line each: ``{"ready": ...}`` once, then a ``tick`` a second:
operations and objects done per kind, bytes read and checked, new errors (op, type, message,
start and end on the monotonic clock, which every process on the machine shares), wrong-byte
events, and for each kind the seconds (on that clock) in which an operation that succeeded
began. ``stop`` on stdin
ends it; operations still running after ``stop_grace`` seconds are reported as hung. The
process then waits, its pool intact, for EOF on stdin, so its fds can be counted at rest.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECK = 4096


class Load:
    def __init__(self, spec: dict):
        import attachfs

        self.spec = spec
        self.root = Path(spec["data_dir"])
        self.bucket = spec["bucket"]
        self.keys = spec["keys"]
        self.fs = attachfs.filesystem(config=spec["config"])
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.objects: Counter[str] = Counter()
        self.bytes = 0
        self.checked = 0
        self.errors: list[dict] = []
        self.wrong: list[dict] = []
        self.ok_seconds: dict[str, set[int]] = {}  # kind -> seconds in which a success began
        self.running: dict[int, tuple[str, float]] = {}
        weights = spec["weights"]
        self.kinds = [k for k in weights if weights[k] > 0 and k != "fork"]
        self.weights = [weights[k] for k in self.kinds]
        self.full_check = spec.get("full_check", 10)
        self.versions = [(self.root / v).read_bytes() for v in spec["replace_versions"]]

    # -- checking ----------------------------------------------------------------------------

    def path(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def expected(self, key: str, start: int, end: int) -> bytes:
        fd = os.open(self.root / self.bucket / key, os.O_RDONLY)
        try:
            return os.pread(fd, end - start, start)
        finally:
            os.close(fd)

    def check(self, op: str, key: str, start: int, data: bytes, rng: random.Random,
              *, whole: bool = False) -> None:
        """Compare ``data`` (the object's bytes from ``start``) with the file."""
        n = len(data)
        if whole or n <= 3 * CHECK or rng.randrange(self.full_check) == 0:
            windows = [(0, n)]
        else:
            mid = rng.randrange(0, n - CHECK)
            windows = [(0, CHECK), (mid, mid + CHECK), (n - CHECK, n)]
        for lo, hi in windows:
            if data[lo:hi] != self.expected(key, start + lo, start + hi):
                self.note_wrong(op, key, start + lo, hi - lo)
                return
            with self.lock:
                self.checked += hi - lo

    def note_wrong(self, op: str, key: str, offset: int, length: int) -> None:
        with self.lock:
            self.wrong.append({"op": op, "key": key, "offset": offset, "length": length,
                               "t": time.monotonic()})

    # -- operations ---------------------------------------------------------------------------

    def op_cat(self, rng: random.Random) -> int:
        keys = rng.sample(self.keys["small"], 16)
        out = self.fs.cat([self.path(k) for k in keys])
        for k in keys:
            self.check("cat", k, 0, out[self.path(k)], rng, whole=True)
        return len(keys)

    def op_cat_range(self, rng: random.Random) -> int:
        key = rng.choice(self.keys["medium"])
        size = self.spec["sizes"][key]
        start = rng.randrange(size)
        end = min(size, start + rng.randrange(1, 2 * 2**20))
        self.check("cat_range", key, start, self.fs.cat_file(self.path(key), start, end), rng)
        return 1

    def op_open_partial(self, rng: random.Random) -> int:
        key = rng.choice(self.keys["medium"])
        size = self.spec["sizes"][key]
        with self.fs.open(self.path(key), "rb") as f:
            start = rng.randrange(size // 2)
            f.seek(start)
            a = f.read(rng.randrange(1, 512 * 1024))
            b = f.read(rng.randrange(1, 1024 * 1024))
        self.check("open_partial", key, start, a + b, rng)
        return 1

    def op_cat_iter(self, rng: random.Random) -> int:
        keys = rng.sample(self.keys["small"], 64)
        by_path = {self.path(k): k for k in keys}
        stop_after = rng.randrange(4, 16) if rng.random() < 0.5 else len(keys)
        n = 0
        it = self.fs.cat_iter(list(by_path))
        try:
            for path, data in it:
                self.check("cat_iter", by_path[path], 0, data, rng, whole=True)
                n += 1
                if n >= stop_after:
                    break
        finally:
            it.close()  # an early close: what a dataloader does at the end of an epoch
        return n

    def op_sequential(self, rng: random.Random) -> int:
        key = self.keys["large"]
        size = self.spec["sizes"][key]
        stop = size if rng.random() < 0.5 else rng.randrange(size)
        pos = 0
        with self.fs.open(self.path(key), "rb") as f:
            while pos < stop:
                data = f.read(4 * 2**20)
                if not data:
                    break
                self.check("sequential", key, pos, data, rng)
                pos += len(data)
        return 1

    def op_replaced(self, rng: random.Random) -> int:
        key = self.keys["replaced"]
        parts = []
        with self.fs.open(self.path(key), "rb") as f:
            while data := f.read(2**20):
                parts.append(data)
        data = b"".join(parts)
        if data not in self.versions:
            self.note_wrong("replaced", key, 0, len(data))
        else:
            with self.lock:
                self.checked += len(data)
        return 1

    # -- the threads --------------------------------------------------------------------------

    def run_op(self, kind: str, fn: Callable[[random.Random], int], rng: random.Random) -> None:
        t0 = time.monotonic()
        ident = threading.get_ident()
        with self.lock:
            self.running[ident] = (kind, t0)
        try:
            n = fn(rng)
        except Exception as err:
            self.note_error(kind, err, t0)
        else:
            with self.lock:
                self.ops[kind] += 1
                self.objects[kind] += n
                self.ok_seconds.setdefault(kind, set()).add(int(t0))
        finally:
            with self.lock:
                self.running.pop(ident, None)

    def note_error(self, kind: str, err: BaseException, t0: float) -> None:
        with self.lock:
            self.errors.append({"op": kind, "type": type(err).__name__,
                                "message": str(err)[:300], "start": t0,
                                "end": time.monotonic()})

    def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        ops = {k: getattr(self, f"op_{k}") for k in self.kinds}
        while not self.stop.is_set():
            kind = rng.choices(self.kinds, self.weights)[0]
            self.run_op(kind, ops[kind], rng)

    def forker(self) -> None:
        every = self.spec["fork_every"]
        rng = random.Random(4242)
        while not self.stop.wait(every):
            t0 = time.monotonic()
            try:
                self.one_fork(rng.randrange(2**31))
            except Exception as err:
                self.note_error("fork", err, t0)

    def one_fork(self, seed: int) -> None:
        t0 = time.monotonic()
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a few reads through the inherited filesystem, then exit
            os.close(read_fd)
            self.lock = threading.Lock()  # another thread may have held it at the fork
            wrong_before = len(self.wrong)
            out: dict[str, Any] = {"ok": 0, "errors": []}
            rng = random.Random(seed)
            for fn in (self.op_cat, self.op_open_partial, self.op_cat, self.op_cat_range):
                try:
                    fn(rng)
                    out["ok"] += 1
                except Exception as err:
                    out["errors"].append(f"{type(err).__name__}: {str(err)[:200]}")
            out["wrong"] = len(self.wrong) - wrong_before
            os.write(write_fd, json.dumps(out).encode())
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as r:
            raw = r.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not raw:
            raise RuntimeError(f"forked child exited with status {status} and said {raw[:200]!r}")
        out = json.loads(raw)
        for message in out["errors"]:
            kind, _, text = message.partition(": ")
            with self.lock:
                self.errors.append({"op": "fork", "type": kind, "message": text,
                                    "start": t0, "end": time.monotonic()})
        if out["wrong"]:
            self.note_wrong("fork", "(child)", 0, 0)
        with self.lock:
            self.ops["fork"] += 1
            self.objects["fork"] += out["ok"]
            if not out["errors"]:
                self.ok_seconds.setdefault("fork", set()).add(int(t0))

    def tick(self) -> dict:
        with self.lock:
            out = {"tick": time.monotonic(), "ops": dict(self.ops),
                   "objects": dict(self.objects), "checked": self.checked,
                   "errors": self.errors, "wrong": self.wrong,
                   "ok_seconds": {k: sorted(v) for k, v in self.ok_seconds.items()},
                   "running": len(self.running)}
            self.errors, self.wrong, self.ok_seconds = [], [], {}
        return out


def main(argv: list[str]) -> int:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a library's prints must not corrupt the protocol
    send_lock = threading.Lock()

    def send(obj: dict) -> None:
        with send_lock:
            protocol.write(json.dumps(obj) + "\n")

    spec = json.loads(Path(argv[0]).read_text())
    load = Load(spec)
    # Warm-up: imports, the pool's first connections, a first request of every kind.
    rng = random.Random(1)
    for kind in load.kinds:
        try:
            getattr(load, f"op_{kind}")(rng)
        except Exception:
            traceback.print_exc()
    send({"ready": True, "pid": os.getpid()})
    threads = [threading.Thread(target=load.worker, args=(i,), name=f"soak-{i}", daemon=True)
               for i in range(spec["threads"])]
    if spec["weights"].get("fork"):
        threads.append(threading.Thread(target=load.forker, name="soak-fork", daemon=True))
    for t in threads:
        t.start()

    def ticker() -> None:
        while not load.stop.wait(1.0):
            send(load.tick())

    ticking = threading.Thread(target=ticker, name="soak-tick", daemon=True)
    ticking.start()
    sys.stdin.readline()  # "stop", or EOF when the orchestrator is gone
    load.stop.set()
    deadline = time.monotonic() + spec.get("stop_grace", 60)
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    ticking.join()
    final = load.tick()
    with load.lock:
        final["hung"] = [{"op": k, "since": t0} for k, t0 in load.running.values()]
    final["final"] = True
    send(final)
    # Stay, pool and all, until the orchestrator has counted our fds and sockets.
    sys.stdin.readline()
    if final["hung"]:  # a hung read would hold up the interpreter's exit
        protocol.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
