"""``python -m benchmarks.churn``: which reads throw pooled connections away, counted at nginx.

A client that cancels a request with a response still coming has to close that connection
(HTTP/1.1 cannot abandon a response and reuse the socket), and its next request opens a new
one: over TLS to a cloud, a new handshake. This counts, per pattern and after a warm-up that
fills the pool, what the server saw:

- ``opened``: new connections (access-log lines that are their connection's first request);
- ``accepted``: nginx's own count of accepted connections (``stub_status``);
- ``cut_short``: responses the client hung up on (fewer body bytes sent than asked for);
- ``dropped``: pooled connections lost: the client's established connections before, plus
  those opened, minus those after (its own sockets, from /proc/self/fd and /proc/net/tcp);
- ``client_time_wait``: sockets in TIME-WAIT whose client side closed first (/proc/net/tcp).
  A close with unread response bytes sends a reset instead and leaves none, so this counts
  only the connections closed cleanly (cancelled before their response began).

The client reads over the benchmark's cloud-like link (30 ms to the first byte, ~60 MB/s a
connection), where requests are still in flight when a reader stops; on bare loopback most
responses are complete before a close can cancel them. The patterns (``--repeat`` times each): a file closed with read-ahead in flight, ``cat_iter``
closed after a few objects, and, as controls that should open nothing, the same two read to
the end. ``tests/test_soak.py`` asserts these counts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .nginx import Link, LogWindow, Nginx, requested_bytes
from .soak import BUCKET, HERE, REPO, ensure_data, socket_states, tcp_table

PATTERNS = {
    "read_to_end_then_close": "open a 4 MiB object, read() it all, close (control)",
    "cat_iter_to_the_end": "cat_iter over 100 objects, read all (control)",
    "close_with_readahead": "open a 4 MiB object, read(256 KiB) x 3, close",
    "cat_iter_closed_early": "cat_iter over 100 objects, close after 5",
}


def run(repeat: int = 20, *, data_dir: Path | None = None, install: bool = True,
        link: Link | None = None) -> dict:
    """Start nginx, run the client in its own process, return the counts per pattern."""
    from .__main__ import BENCH_KEYS, worker_env

    root = data_dir or HERE / ".data" / "soak"
    manifest = ensure_data(root)
    with tempfile.TemporaryDirectory(prefix="attachfs-churn-") as tmp:
        nginx = Nginx(root, Path(tmp) / "nginx", install=install, link=link or Link())
        with nginx:
            spec = {"endpoint": nginx.link_endpoint, "port": nginx.link_port,
                    "log": str(nginx.access_log), "keys": manifest["keys"],
                    "sizes": manifest["sizes"], "repeat": repeat}
            done = subprocess.run([sys.executable, "-m", "benchmarks.churn", "--client",
                                   json.dumps(spec)], cwd=REPO, env=worker_env(BENCH_KEYS),
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"churn client failed:\n{done.stderr[-3000:]}")
            counts = json.loads(done.stdout.strip().splitlines()[-1])
    return counts


def _client(spec: dict) -> dict:
    import attachfs
    from attachfs import _blocks

    fs = attachfs.filesystem(config={"platform": {"aws": {"endpoint_url": spec["endpoint"],
                                                          "region": "us-east-1"}}})
    keys, sizes, port = spec["keys"], spec["sizes"], spec["port"]
    small = [f"s3://{BUCKET}/{k}" for k in keys["small"]]
    medium = [f"s3://{BUCKET}/{k}" for k in keys["medium"]]
    log = LogWindow(spec["log"])
    # Warm-up: as many pooled connections as a batch or a cat_iter uses.
    fs.cat(small[:128])
    for _ in fs.cat_iter(small[:128]):
        pass
    # and this thread's own pool, which a blocking read of a file runs its GETs on: as many
    # connections as its parallel parts use once the link is measured
    for m in medium[:3]:
        _blocks.shared().clear()
        with fs.open(m, "rb") as f:
            f.read()

    def close_with_readahead(i: int) -> None:
        with fs.open(medium[i % len(medium)], "rb") as f:
            for _ in range(3):
                f.read(256 * 1024)

    def read_to_end_then_close(i: int) -> None:
        with fs.open(medium[i % len(medium)], "rb") as f:
            f.read()

    def cat_iter(i: int, stop: int | None) -> None:
        start = (i * 100) % (len(small) - 100)
        it = fs.cat_iter(small[start:start + 100])
        for n, _ in enumerate(it, 1):
            if stop is not None and n >= stop:
                break
        it.close()

    runs = {"read_to_end_then_close": read_to_end_then_close,
            "cat_iter_to_the_end": lambda i: cat_iter(i, None),
            "close_with_readahead": close_with_readahead,
            "cat_iter_closed_early": lambda i: cat_iter(i, 5)}
    out = {}
    for name, fn in runs.items():
        accepted = _accepts(spec["endpoint"])
        time_wait = _client_time_wait(port)
        pooled = _pooled(port)
        log.open()
        for i in range(spec["repeat"]):
            # Every operation reads over the link: from the block cache it would make no
            # request, and a close could cancel nothing.
            _blocks.shared().clear()
            fn(i)
        time.sleep(0.3)  # let the server log what the client hung up on
        requests = log.close()
        time_wait = _client_time_wait(port) - time_wait
        pooled_after = _pooled(port)
        reqs = [r for r in requests if not r.path.startswith("/_nginx/")]
        cut = 0
        for r in reqs:
            key = r.path.split(f"/{BUCKET}/", 1)[-1]
            if r.method == "GET" and r.status in (200, 206) and r.sent < requested_bytes(
                    r, sizes.get(key, 0)):
                cut += 1
        opened = sum(1 for r in reqs if r.conn_requests == 1)
        out[name] = {"operations": spec["repeat"], "requests": len(reqs), "opened": opened,
                     "pooled_before": pooled, "pooled_after": pooled_after,
                     "dropped": pooled + opened - pooled_after,
                     "accepted": _accepts(spec["endpoint"]) - accepted - 1,  # its own probe
                     "cut_short": cut, "client_time_wait": time_wait,
                     "what": PATTERNS[name]}
    return out


def _accepts(endpoint: str) -> int:
    import http.client
    import re

    host, port = endpoint.split("://", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/_nginx/status")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return int(re.findall(r"\d+", text)[1])


def _pooled(port: int) -> int:
    """This process's established connections to ``port``."""
    return socket_states(port)["ESTABLISHED"]


def _client_time_wait(port: int) -> int:
    return sum(1 for _, rport, state, _ in tcp_table() if rport == port and state == "TIME_WAIT")


def table(counts: dict) -> str:
    lines = ["| pattern | operations | requests | pooled connections dropped | new connections "
             "(log) | accepted (nginx) | responses cut short | client-closed TIME-WAIT |",
             "|---|---|---|---|---|---|---|---|"]
    for c in counts.values():
        lines.append(f"| {c['what']} | {c['operations']} | {c['requests']} | {c['dropped']} "
                     f"({c['pooled_before']} -> {c['pooled_after']}) | {c['opened']} | "
                     f"{c['accepted']} | {c['cut_short']} | {c['client_time_wait']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.churn", description=__doc__.split(
        "\n")[0])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--json", type=Path)
    p.add_argument("--no-install", action="store_true")
    p.add_argument("--client", help=argparse.SUPPRESS)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    if args.client:
        print(json.dumps(_client(json.loads(args.client))))
        return 0
    counts = run(args.repeat, install=not args.no_install)
    print(table(counts))
    if args.json:
        args.json.write_text(json.dumps(counts, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
