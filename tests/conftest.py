"""Session setup: the environment first, then the local peers, and a loopback-only network.

Order matters. aiohttp builds its default SSL context when it is imported, and gcsfs reads
``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`` at import; importing ``attachfs`` imports both.
So before the ``attachfs`` package is imported at all, a standalone copy of
``attachfs/testing/environment.py`` (stdlib-only at import) makes the test CA and applies the
environment.
"""

from __future__ import annotations

import collections
import importlib.util
import ipaddress
import logging
import re
import shutil
import socket
import sys
import tempfile
import uuid
from pathlib import Path


def _load_emulators_standalone():
    spec = importlib.util.find_spec("attachfs")  # finds the package without running __init__
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("attachfs is not installed: run `pip install -e '.[test]'`")
    path = Path(list(spec.submodule_search_locations)[0]) / "testing" / "environment.py"
    standalone = importlib.util.spec_from_file_location("_attachfs_emulators_bootstrap", path)
    module = importlib.util.module_from_spec(standalone)
    sys.modules[standalone.name] = module
    standalone.loader.exec_module(module)
    return module


_too_early = sorted({"aiohttp", "gcsfs", "attachfs"} & set(sys.modules))
if _too_early:
    raise RuntimeError(f"{_too_early} imported before tests/conftest.py set the environment; "
                       "https peers and gcsfs would misbehave. Find the plugin importing them.")

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="attachfs-tests-"))
_bootstrap = _load_emulators_standalone()
TEST_CA = _bootstrap.make_local_ca(_SESSION_DIR / "ca")
_bootstrap.apply_environment(_bootstrap.peer_environment(ca_bundle=TEST_CA.bundle))

import pytest  # noqa: E402

from attachfs.testing import Emulators  # noqa: E402

# --------------------------------------------------------------------------- loopback guard


class NonLoopbackConnection(PermissionError):
    """A test tried to reach something outside 127.0.0.0/8 and ::1; nothing was sent."""


class LoopbackGuard:
    """Refuses, before any packet leaves, every connect to a non-loopback address.

    A literal address must be loopback; the only name accepted is ``localhost`` (at
    ``socket.connect`` the address is already an IP, so no name is ever resolved here).
    Every refusal is also recorded, so a test fails even if a client swallows the error.
    """

    def __init__(self) -> None:
        self.violations: list[tuple[object, ...]] = []
        self._saved: dict[str, object] = {}

    @staticmethod
    def allowed(host: object) -> bool:
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not isinstance(host, str):
            return False
        if host.lower() == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return ip.is_loopback

    def _check(self, family: int, address: object) -> None:
        if family not in (socket.AF_INET, socket.AF_INET6):
            return  # AF_UNIX and friends never leave the machine
        host = address[0] if isinstance(address, tuple) and address else address
        if not self.allowed(host):
            self.violations.append(tuple(address) if isinstance(address, tuple) else (address,))
            raise NonLoopbackConnection(
                13, f"test network guard: refusing to connect to {address!r}; tests may only "
                    "reach 127.0.0.0/8, ::1 and localhost")

    def install(self) -> None:
        guard = self
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
        real_create_connection = socket.create_connection
        self._saved = {"connect": real_connect, "connect_ex": real_connect_ex,
                       "create_connection": real_create_connection}

        def connect(sock, address):
            guard._check(sock.family, address)
            return real_connect(sock, address)

        def connect_ex(sock, address):
            guard._check(sock.family, address)
            return real_connect_ex(sock, address)

        def create_connection(address, *args, **kwargs):
            guard._check(socket.AF_INET, address)  # before any name resolution
            return real_create_connection(address, *args, **kwargs)

        socket.socket.connect = connect
        socket.socket.connect_ex = connect_ex
        socket.create_connection = create_connection

    def uninstall(self) -> None:
        if self._saved:
            socket.socket.connect = self._saved["connect"]
            socket.socket.connect_ex = self._saved["connect_ex"]
            socket.create_connection = self._saved["create_connection"]
            self._saved = {}


_GUARD = LoopbackGuard()


def pytest_configure(config):
    _GUARD.install()


def pytest_collection_modifyitems(config, items):
    """Every test that starts or uses the local peers is marked ``peers``; every other test is
    ``unit``: ``pytest -m unit`` (or ``-m "not peers"``) is the fast run."""
    for item in items:
        uses_peers = "peers" in getattr(item, "fixturenames", ()) or item.get_closest_marker(
            "peers") is not None
        item.add_marker(pytest.mark.peers if uses_peers else pytest.mark.unit)


def pytest_unconfigure(config):
    _GUARD.uninstall()
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def loopback_guard() -> LoopbackGuard:
    """The installed guard; a test that provokes it on purpose removes its violations."""
    return _GUARD


@pytest.fixture(autouse=True)
def _only_loopback_connections():
    seen = len(_GUARD.violations)
    yield
    new = _GUARD.violations[seen:]
    if new:
        pytest.fail(f"the test tried to connect outside loopback: {new}", pytrace=False)


# --------------------------------------------------------------------------- peers


@pytest.fixture(scope="session")
def peers(tmp_path_factory):
    """All five peers, started once; a peer that cannot start errors the test with the reason."""
    with Emulators(tmp_path_factory.mktemp("peers"), ca=TEST_CA) as emulators:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in emulators.env().items():
                mp.setenv(name, value)
            yield emulators


def _clear_fsspec_instance_caches() -> None:
    if "fsspec" not in sys.modules:
        return
    from fsspec.registry import registry

    for cls in registry.values():  # the classes already imported, no others
        cls.clear_instance_cache()


@pytest.fixture
def clean_peers(peers):
    """``peers`` emptied before the test (and fsspec's cached filesystems dropped)."""
    peers.reset()
    _clear_fsspec_instance_caches()
    return peers


@pytest.fixture
def names():
    """``names()`` -> a fresh bucket/container name, valid on S3, GCS and Azure."""
    return lambda prefix="t": f"{prefix}-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def attach_config(peers):
    return peers.config()


# --------------------------------------------------------------------------- secrets in logs


class SecretWatch(logging.Handler):
    """Every DEBUG record of the whole run, checked for every credential value attachfs leases.

    A secret is often logged (by an SDK) moments before its value is known to anyone (the
    response that carries it), so the last few thousand messages are kept and re-checked
    whenever a new secret is leased. The emulators' own loggers are left out: moto runs
    in-process and logs the headers it receives, which is the cloud's side of the wire.
    """

    PEER_LOGGERS = ("moto", "werkzeug")
    #: The tests' own IAM administration: creating a tenant's role with its trust policy, as the
    #: customer does in their own account, names the external ID by design (attachfs never
    #: calls IAM). attachfs remembers an external ID only when it first sends it, so the
    #: re-check of earlier messages would otherwise find that set-up.
    CUSTOMER_SIDE = re.compile(r"OperationModel\(name=(?:CreateRole|UpdateAssumeRolePolicy|"
                               r"GetRole)\)|https://iam\.amazonaws\.com/doc/")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.recent: collections.deque[tuple[str, str]] = collections.deque(maxlen=5000)
        self.secrets: set[str] = set()
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(self.PEER_LOGGERS):
            return
        try:
            message = record.getMessage()
        except Exception:
            return
        self.recent.append((record.name, message))
        self._check([(record.name, message)], self.secrets)

    def learn(self, values) -> None:
        new = {v for v in values if v and len(v) >= 8} - self.secrets
        if new:
            self.secrets |= new
            self._check(list(self.recent), new)

    def _check(self, messages, secrets) -> None:
        for name, message in messages:
            if self.CUSTOMER_SIDE.search(message):
                continue
            for secret in secrets:
                if secret in message:
                    self.leaks.append(f"{name}: ...{secret[:4]}... in {message[:120]!r}")


_WATCH = SecretWatch()


@pytest.fixture(scope="session", autouse=True)
def _no_secret_in_debug_logs():
    from attachfs import _redact as scrub

    remember = scrub.remember

    def remember_and_watch(values):
        values = list(values)
        _WATCH.learn(values)
        remember(values)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(_WATCH)
    scrub.remember = remember_and_watch
    yield _WATCH
    scrub.remember = remember
    root.removeHandler(_WATCH)
    root.setLevel(level)
    assert not _WATCH.leaks, "secrets reached the DEBUG logs:\n" + "\n".join(_WATCH.leaks[:20])
