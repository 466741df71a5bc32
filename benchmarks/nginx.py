"""A fast local S3-compatible read server: Debian's nginx serving a directory path-style.

``GET|HEAD /{bucket}/{key}`` answers with the file ``{root}/{bucket}/{key}``, with ``Range``
(206 + ``Content-Range``), ``ETag``, ``Last-Modified`` and ``If-Match`` (412) from nginx's static
module. Signed requests are accepted because nginx never looks at ``Authorization``; query
strings (``?x-id=GetObject``) are ignored. That is all the read path of every S3 client needs,
at a cost per request far below moto's (~5 ms), so the clients are what is measured.

nginx runs in the foreground (``daemon off``) from a config of ours in a temporary directory,
on a free 127.0.0.1 port, and writes one access-log line per request (request line, status,
body bytes sent, Range header), unbuffered, so a case can count its requests and bytes.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

INSTALL_COMMAND = "apt-get update && apt-get install -y nginx"

_LOG_FORMAT = ('$msec "$request" $status $body_bytes_sent "$http_range" '
               '$connection $connection_requests')
_LOG_LINE = re.compile(
    r'^(?P<msec>\S+) "(?P<method>\S+) (?P<target>\S+)[^"]*" (?P<status>\d+) (?P<sent>\d+) '
    r'"(?P<range>[^"]*)" (?P<conn>\d+) (?P<conn_requests>\d+)$')

_CONFIG = """\
{user}worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
daemon off;
events {{ worker_connections 8192; }}
http {{
    log_format bench '{log_format}';
    access_log {tmp}/access.log bench;
    default_type application/octet-stream;
    types {{ }}
    sendfile on;
    # tcp_nopush (TCP_CORK) stays off: with it, every response after the second on a
    # keep-alive connection waited ~40 ms for its last partial segment (measured: 100 KB
    # ranges took 44 ms instead of 1 ms), which punishes exactly the clients that reuse one
    # connection for sequential ranged reads.
    tcp_nopush off;
    tcp_nodelay on;
    etag on;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=300s;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name _;
        root {root};
        autoindex off;
        location / {{
            limit_except GET {{ deny all; }}
        }}
    }}
}}
"""


def find_nginx(*, install: bool) -> str:
    """The nginx executable; with ``install`` and root, ``apt-get install nginx`` if missing."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)
    if found:
        return found
    can_apt = os.geteuid() == 0 and shutil.which("apt-get")
    if not (install and can_apt):
        raise SystemExit(f"nginx is not installed; install it with `{INSTALL_COMMAND}` "
                         "(as root) and run the benchmark again")
    print(f"nginx not found: running `{INSTALL_COMMAND}`", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"`{' '.join(cmd)}` failed:\n{done.stderr[-2000:]}")
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(found, os.X_OK):
        raise SystemExit("apt-get installed nginx but no nginx executable was found")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent():
    # nginx must not outlive the benchmark, even when it is killed with SIGKILL.
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
            threading.main_thread()):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(frozen=True)
class Request:
    """One access-log line."""

    method: str
    path: str           # without the query string
    status: int
    sent: int           # body bytes sent
    range: str          # the Range header, "" if none
    connection: int


class Nginx:
    """nginx in the foreground, serving ``root`` path-style on a free 127.0.0.1 port."""

    def __init__(self, root: str | os.PathLike, tmp: str | os.PathLike, *, workers: int = 2,
                 install: bool = True):
        self.root = Path(root).resolve()
        self.tmp = Path(tmp)
        self.workers = workers
        self.binary = find_nginx(install=install)
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.tmp / "access.log"

    def start(self, attempts: int = 3) -> Nginx:
        self.tmp.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            self.port = _free_port()
            conf = self.tmp / "nginx.conf"
            # As root, nginx's workers would drop to `nobody`, who may not read the data dir.
            user = "user root root;\n" if os.geteuid() == 0 else ""
            conf.write_text(_CONFIG.format(user=user, workers=self.workers, tmp=self.tmp,
                                           port=self.port, root=self.root,
                                           log_format=_LOG_FORMAT))
            errors = self.tmp / "stderr.log"
            with open(errors, "wb") as err:
                self.proc = subprocess.Popen(
                    [self.binary, "-p", str(self.tmp), "-c", str(conf), "-e",
                     str(self.tmp / "error.log")],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=_die_with_parent())
            if self._wait_ready(time.monotonic() + 10):
                return self
            output = errors.read_text(errors="replace") + self._error_log()
            self.stop()
            if "Address already in use" not in output:
                raise RuntimeError(f"nginx did not start:\n{output[-2000:]}")
        raise RuntimeError("nginx: no free port after several attempts")

    def _error_log(self) -> str:
        path = self.tmp / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # nginx's fast shutdown; workers follow the master
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class LogWindow:
    """The access-log lines written between :meth:`open` and :meth:`close`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.start = 0

    def open(self) -> None:
        settle(self.path)
        self.start = self.path.stat().st_size

    def close(self) -> list[Request]:
        end = settle(self.path)
        with open(self.path, "rb") as f:
            f.seek(self.start)
            text = f.read(end - self.start).decode("latin-1")
        return parse_log(text)


def settle(path: Path, quiet: float = 0.15, timeout: float = 5.0) -> int:
    """The log's size once no line has been added for ``quiet`` seconds.

    nginx logs a request after its last byte is sent, which may be just after the client has
    it; a client that drops a connection mid-body is logged when nginx notices.
    """
    deadline = time.monotonic() + timeout
    size = path.stat().st_size if path.exists() else 0
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.03)
        now = path.stat().st_size if path.exists() else 0
        if now != size:
            size, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
    return size


def parse_log(text: str) -> list[Request]:
    out = []
    for line in text.splitlines():
        m = _LOG_LINE.match(line)
        if not m:
            continue
        out.append(Request(method=m["method"], path=m["target"].split("?", 1)[0],
                           status=int(m["status"]), sent=int(m["sent"]),
                           range="" if m["range"] == "-" else m["range"],
                           connection=int(m["conn"])))
    return out


def requested_bytes(req: Request, size: int) -> int:
    """How many bytes of an object of ``size`` the request asked for (its Range, else all)."""
    if req.method != "GET":
        return 0
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", req.range.strip())
    if not m or not (m[1] or m[2]):
        return size
    if not m[1]:
        return min(int(m[2]), size)
    first = int(m[1])
    last = min(int(m[2]), size - 1) if m[2] else size - 1
    return max(0, last - first + 1)
