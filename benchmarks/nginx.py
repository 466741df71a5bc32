"""A fast local S3-compatible read server: Debian's nginx serving a directory path-style.

``GET|HEAD /{bucket}/{key}`` answers with the file ``{root}/{bucket}/{key}``, with ``Range``
(206 + ``Content-Range``), ``ETag``, ``Last-Modified`` and ``If-Match`` (412) from nginx's static
module. Signed requests are accepted because nginx never looks at ``Authorization``; query
strings (``?x-id=GetObject``) are ignored. That is all the read path of every S3 client needs,
at a cost per request far below moto's (~5 ms), so the clients are what is measured.

``/{bucket}/copy/{n}/{key}`` serves the same file as ``/{bucket}/{key}``: a fresh name for each
repetition of a case, so that no cache keyed by URI (the client's or a future one in attachfs)
carries one repetition's bytes into the next, at no cost in disk.

Up to three servers in one nginx:

- the plain one, as fast as loopback and 2 cores allow (cases a-d, f, g);
- with ``link``, a **cloud-like link** on a second port (profile e): every response waits
  ``link.delay`` seconds before its first byte (``echo_sleep`` from Debian's
  ``libnginx-mod-http-echo``, then ``echo_exec`` to the static handler) and each response is
  capped at ``link.rate`` (``limit_rate``; it is per request, so N parallel ranges get N times
  it). What a setting really gives is measured by :func:`measure_link`, not assumed;
- with ``faults``, the plain server also answers 503 while the file ``faults/503`` exists and
  delays every response by ``faults.stall`` seconds while ``faults/stall`` exists (the soak's
  fault windows), and keeps no open-file cache so a replaced object is served at once.

nginx runs in the foreground (``daemon off``) from a config of ours in a temporary directory,
on free 127.0.0.1 ports, and writes one access-log line per request, unbuffered: end time and
duration (so a case can tell how many requests were in flight at once), request line, status,
body bytes sent, Range header, connection serial number and that connection's request count
(so connections opened are counted: a connection's first request has count 1). A
``/_nginx/status`` location on each server gives nginx's own ``accepts``/``handled``/``active``
connection counters.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

INSTALL_COMMAND = "apt-get update && apt-get install -y nginx libnginx-mod-http-echo"
ECHO_PACKAGE = "libnginx-mod-http-echo"
ECHO_MODULE_PATHS = ("/usr/lib/nginx/modules/ngx_http_echo_module.so",
                     "/usr/share/nginx/modules/ngx_http_echo_module.so")
STATUS_PATH = "/_nginx/status"

_LOG_FORMAT = ('$msec $request_time "$request" $status $body_bytes_sent "$http_range" '
               '$connection $connection_requests $server_port')
_LOG_LINE = re.compile(
    r'^(?P<msec>\S+) (?P<rtime>\S+) "(?P<method>\S+) (?P<target>\S+)[^"]*" (?P<status>\d+) '
    r'(?P<sent>\d+) "(?P<range>[^"]*)" (?P<conn>\d+) (?P<conn_requests>\d+) (?P<port>\d+)$')

_MAIN = """\
{load}{user}worker_processes {workers};
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
    {open_file_cache}
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{servers}}}
"""

# A fresh name per repetition for the same file (see the module docstring).
# No flag: the rules after it (the fault toggles) see the rewritten path.
_COPIES = r"rewrite ^/([^/]+)/copy/[0-9]+/(.*)$ /$1/$2;"

_PLAIN = """\
    server {{
        listen 127.0.0.1:{port};
        server_name _;
        root {root};
        autoindex off;
        location = {status} {{ stub_status; }}
        {copies}
{faults}        location / {{
            limit_except GET {{ deny all; }}
        }}
{stall}    }}
"""

# Fault toggles, checked per request (a stat each): the status page is never faulted.
_FAULT_RULES = """\
        set $fault "";
        if (-f {dir}/stall) {{ set $fault "stall"; }}
        if (-f {dir}/503) {{ set $fault "503"; }}
        if ($uri = {status}) {{ set $fault ""; }}
        if ($fault = "503") {{
            return 503 '<?xml version="1.0" encoding="UTF-8"?>\\n<Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message></Error>';
        }}
        if ($fault = "stall") {{ rewrite ^(.*)$ /_stall$1 last; }}
"""
_STALL_LOCATIONS = """\
        location ^~ /_stall/ {{ internal; echo_sleep {seconds}; echo_exec @unstall; }}
        location @unstall {{ rewrite ^/_stall(/.*)$ $1 break; }}
"""

_LINK = """\
    server {{
        listen 127.0.0.1:{port};
        server_name _;
        root {root};
        location = {status} {{ stub_status; }}
        {copies}
        # The first byte of every response (200, 206, 304, 404, 412...) after `delay`; the
        # body at `rate` at most. limit_rate must sit where the file is served.
        location / {{ echo_sleep {delay}; echo_exec @static; }}
        location @static {{ limit_rate {rate}; }}
    }}
"""


@dataclass(frozen=True)
class Link:
    """A cloud-like link: first-byte delay (seconds) and nginx's ``limit_rate`` per response."""

    delay: float = 0.03
    rate: str = "64m"

    def describe(self) -> str:
        return f"echo_sleep {self.delay:g}; limit_rate {self.rate}"


@dataclass(frozen=True)
class Faults:
    """The soak's fault toggles: files in ``directory`` that nginx checks on every request."""

    directory: Path
    stall: float = 35.0     # seconds a response waits while the stall toggle is on


def _which_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None)


def _echo_module() -> str | None:
    return next((p for p in ECHO_MODULE_PATHS if os.path.exists(p)), None)


def _apt_install(packages: Iterable[str]) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"`{' '.join(cmd)}` failed:\n{done.stderr[-2000:]}")


def find_nginx(*, install: bool, echo: bool = False) -> tuple[str, str | None]:
    """nginx's executable and, with ``echo``, the echo module's path.

    With ``install`` and root, ``apt-get install``s whichever of nginx and
    libnginx-mod-http-echo is missing; otherwise stops with the command to run.
    """
    binary, module = _which_nginx(), _echo_module()
    missing = ([] if binary else ["nginx"]) + ([ECHO_PACKAGE] if echo and not module else [])
    if missing:
        can_apt = os.geteuid() == 0 and shutil.which("apt-get")
        command = f"apt-get update && apt-get install -y {' '.join(missing)}"
        if not (install and can_apt):
            raise SystemExit(f"{' and '.join(missing)} not installed; install with `{command}` "
                             "(as root) and run again")
        print(f"{', '.join(missing)} not found: running `{command}`", file=sys.stderr, flush=True)
        _apt_install(missing)
        binary, module = _which_nginx(), _echo_module()
        if not binary or (echo and not module):
            raise SystemExit(f"apt-get installed {' '.join(missing)} but nginx or its echo "
                             "module is still missing")
    return binary, module if echo else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> Callable[[], object] | None:
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
    connection: int     # nginx's connection serial number
    conn_requests: int = 1   # requests so far on that connection: 1 = a new connection
    end: float = 0.0    # when the response ended (epoch seconds, ms resolution)
    duration: float = 0.0    # request time (s): from its first byte read to the log line
    port: int = 0       # the server that answered (plain or link)

    @property
    def start(self) -> float:
        return self.end - self.duration


class Nginx:
    """nginx in the foreground, serving ``root`` path-style on free 127.0.0.1 ports."""

    def __init__(self, root: str | os.PathLike, tmp: str | os.PathLike, *, workers: int = 2,
                 install: bool = True, link: Link | None = None, faults: Faults | None = None):
        self.root = Path(root).resolve()
        self.tmp = Path(tmp)
        self.workers = workers
        self.link = link
        self.faults = faults
        self.binary, self.echo_module = find_nginx(
            install=install, echo=link is not None or faults is not None)
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.link_port = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def link_endpoint(self) -> str:
        if not self.link:
            raise RuntimeError("this nginx has no cloud-like link (Nginx(link=Link(...)))")
        return f"http://127.0.0.1:{self.link_port}"

    @property
    def access_log(self) -> Path:
        return self.tmp / "access.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def config(self) -> str:
        fmt = {"root": self.root, "status": STATUS_PATH, "copies": _COPIES}
        faults = stall = ""
        if self.faults:
            faults = _FAULT_RULES.format(dir=self.faults.directory, **fmt)
            stall = _STALL_LOCATIONS.format(seconds=f"{self.faults.stall:g}")
        servers = _PLAIN.format(port=self.port, faults=faults, stall=stall, **fmt)
        if self.link:
            servers += _LINK.format(port=self.link_port, delay=f"{self.link.delay:g}",
                                    rate=self.link.rate, **fmt)
        # As root, nginx's workers would drop to `nobody`, who may not read the data dir.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        load = f"load_module {self.echo_module};\n" if self.echo_module else ""
        cache = ("open_file_cache off;" if self.faults
                 else "open_file_cache max=10000 inactive=300s;")
        return _MAIN.format(load=load, user=user, workers=self.workers, tmp=self.tmp,
                            log_format=_LOG_FORMAT, open_file_cache=cache, servers=servers)

    def start(self, attempts: int = 3) -> Nginx:
        """Start, on new free ports the first time and on the same ports after a stop."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        if self.faults:
            self.faults.directory.mkdir(parents=True, exist_ok=True)
        fixed = bool(self.port)
        for attempt in range(attempts * (10 if fixed else 1)):
            if not fixed:
                self.port = _free_port()
                self.link_port = _free_port() if self.link else 0
            conf = self.tmp / "nginx.conf"
            conf.write_text(self.config())
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
            if fixed:
                time.sleep(0.1 * (attempt + 1))
        raise RuntimeError("nginx: no free port after several attempts")

    def _error_log(self) -> str:
        path = self.tmp / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait_ready(self, deadline: float) -> bool:
        ports = [self.port] + ([self.link_port] if self.link else [])
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                for port in ports:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        pass
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def reload(self) -> None:
        """nginx's graceful reload (SIGHUP): new workers; old ones finish what is in flight
        and close their idle keep-alive connections."""
        if self.pid is not None:
            os.kill(self.pid, signal.SIGHUP)

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

    def status(self, port: int | None = None) -> dict[str, int] | None:
        """nginx's connection counters (``accepts``, ``handled``, ``active``, ``reading``,
        ``writing``, ``waiting``), or None when it does not answer."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=2)
            try:
                conn.request("GET", STATUS_PATH)
                text = conn.getresponse().read().decode()
            finally:
                conn.close()
        except OSError:
            return None
        nums = [int(x) for x in re.findall(r"\d+", text)]
        if len(nums) != 7:
            return None
        keys = ("active", "accepts", "handled", "requests", "reading", "writing", "waiting")
        return dict(zip(keys, nums, strict=True))

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def measure_link(endpoint: str, path: str, size: int, *, probes: int = 10,
                 body: int = 64 * 2**20) -> dict[str, float]:
    """What a link really gives, on one keep-alive connection: the median time to the first
    byte of a 1-byte range, and the throughput of one GET of ``min(size, body)`` bytes."""
    host, port = endpoint.split("://", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        firsts = []
        for _ in range(probes):
            t0 = time.perf_counter()
            conn.request("GET", path, headers={"Range": "bytes=0-0"})
            resp = conn.getresponse()
            firsts.append(time.perf_counter() - t0)
            resp.read()
        n = min(size, body)
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Range": f"bytes=0-{n - 1}"})
        resp = conn.getresponse()
        got = 0
        while chunk := resp.read(2**20):
            got += len(chunk)
        seconds = time.perf_counter() - t0
    finally:
        conn.close()
    return {"first_byte_ms": statistics.median(firsts) * 1000,
            "one_connection_mb_s": got / seconds / 1e6, "probe_bytes": got}


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
                           connection=int(m["conn"]), conn_requests=int(m["conn_requests"]),
                           end=float(m["msec"]), duration=float(m["rtime"]),
                           port=int(m["port"])))
    return out


def in_flight(requests: Iterable[Request]) -> dict[str, float]:
    """How many requests the server had in flight at once: the most, and the average over
    the time any was (from each line's end time and duration, both to the millisecond)."""
    events = sorted([(r.start, 1) for r in requests] + [(r.end, -1) for r in requests],
                    key=lambda e: (e[0], e[1]))
    peak = level = 0
    busy = weighted = 0.0
    last = None
    for t, step in events:
        if last is not None and level:
            busy += t - last
            weighted += level * (t - last)
        level += step
        peak = max(peak, level)
        last = t
    return {"max": float(peak), "mean": weighted / busy if busy else 0.0}


def connections(requests: Iterable[Request]) -> dict[str, int]:
    """Connections used, and opened (their first request is in ``requests``)."""
    requests = list(requests)
    return {"used": len({r.connection for r in requests}),
            "opened": sum(1 for r in requests if r.conn_requests == 1)}


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
