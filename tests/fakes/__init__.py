"""Local fakes of the cloud identity services attachfs talks to.

There is no emulator for Google's IAM Credentials API or for Entra ID's token endpoint, so these
fakes speak the real wire protocol and the real client libraries (google-auth, azure-identity)
are their clients:

- `google_iam.FakeGoogle`: OAuth JWT-bearer token endpoint + IAM Credentials generateAccessToken.
- `entra.FakeEntra`: Entra ID (Azure AD) v2.0 token endpoint and OIDC discovery, over TLS.
- `authz_proxy.AuthorizingProxy`: a reverse proxy that enforces per-principal bucket grants in
  front of storage emulators that check no credentials themselves.

This module holds what they share: an aiohttp server on its own thread and event loop (a fake on
the caller's loop deadlocks against fsspec's synchronous calls), request recording, and the few
JWT primitives the fakes need (built on `cryptography` alone).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from multidict import CIMultiDict

__all__ = [
    "PRINCIPAL",
    "RECORD",
    "InvalidJwt",
    "RecordedRequest",
    "ThreadedServer",
    "b64url_decode",
    "b64url_encode",
    "decode_jwt",
    "sign_jwt",
    "verify_jwt",
]


# --- JWT -----------------------------------------------------------------------------------------


class InvalidJwt(ValueError):
    """A JWT that cannot be parsed or whose signature does not verify."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _rsa_padding(alg: str) -> padding.AsymmetricPadding:
    if alg == "RS256":
        return padding.PKCS1v15()
    if alg == "PS256":
        # MSAL signs certificate assertions with PS256 once it knows the SHA-256 thumbprint.
        return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    raise InvalidJwt(f"unsupported JWT alg {alg!r}")


def sign_jwt(claims: dict[str, Any], key: rsa.RSAPrivateKey, **header: Any) -> str:
    """Encode and sign `claims`; `header` adds fields such as kid or x5t (alg defaults RS256)."""
    header = {"alg": "RS256", "typ": "JWT", **header}
    signing_input = ".".join(
        b64url_encode(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = key.sign(signing_input.encode(), _rsa_padding(header["alg"]), hashes.SHA256())
    return f"{signing_input}.{b64url_encode(signature)}"


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of `token`, without checking the signature."""
    try:
        header_b64, claims_b64, _ = token.split(".")
        header, claims = (
            json.loads(b64url_decode(header_b64)),
            json.loads(b64url_decode(claims_b64)),
        )
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidJwt(f"malformed JWT: {err}") from err
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidJwt("malformed JWT: header and claims must be JSON objects")
    return header, claims


def verify_jwt(token: str, key: rsa.RSAPublicKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of `token` once its RS256/PS256 signature verifies against `key`."""
    header, claims = decode_jwt(token)
    signing_input, _, signature = token.rpartition(".")
    alg = header.get("alg", "")
    pad = (
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
        if alg == "PS256"
        else _rsa_padding(alg)
    )
    try:
        key.verify(b64url_decode(signature), signing_input.encode(), pad, hashes.SHA256())
    except (InvalidSignature, ValueError) as err:
        raise InvalidJwt("JWT signature does not verify") from err
    return header, claims


# --- Server on its own thread ---------------------------------------------------------------------

# Handlers and proxy policies set `request[PRINCIPAL]` to whoever they resolved the caller to.
PRINCIPAL = web.RequestKey("principal", object)


@dataclass
class RecordedRequest:
    """One request a fake received, as the tests see it (`request[RECORD]` inside handlers).

    `path` is percent-decoded; `raw_path` is the request target as sent, query included.
    `body` is the parsed form (dict of single values) or JSON document when the request carried
    one, else the raw bytes. `principal` is whoever the fake resolved the caller to (None when it
    could not); `status` is the status the fake answered.
    """

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: Any
    principal: Any = None
    status: int | None = None


# A handler that streams its response fills its record in before the client can read the end.
RECORD = web.RequestKey("record", RecordedRequest)


def _parse_body(content_type: str, raw: bytes) -> Any:
    if not raw:
        return None
    if content_type == "application/x-www-form-urlencoded":
        return {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
    if content_type.endswith("json"):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


class ThreadedServer:
    """An aiohttp application served on `host`, a free port, from a thread with its own loop.

    Subclasses add routes in `_setup(app)`. Every request is recorded; a handler sets
    `request[PRINCIPAL]` to have the caller's identity recorded with it.
    """

    def __init__(self, *, host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None,
                 port: int = 0):
        self.host = host
        self.port: int | None = None
        self._bind_port = port  # 0: a free port; a fixed one for servers that must be on 443
        self._ssl_context = ssl_context
        self._records: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # Subclass hook.
    def _setup(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        scheme = "https" if self._ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self._ssl_context else 80
        return f"{scheme}://{host}" + ("" if self.port == default else f":{self.port}")

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    def clear_requests(self) -> None:
        with self._lock:
            self._records.clear()

    def start(self):
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as err:  # reported to start()'s caller
                failure.append(err)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not started.wait(timeout=30):
            raise RuntimeError(f"{type(self).__name__} did not start within 30 s")
        if failure:
            self._thread.join()
            self._thread = self._loop = None
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = self._loop = None
        self.port = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._record], client_max_size=1 << 30)
        self._setup(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._bind_port, ssl_context=self._ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]

    @web.middleware
    async def _record(self, request: web.Request, handler) -> web.StreamResponse:
        raw = await request.read()
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            raw_path=request.raw_path,
            query=dict(request.query),
            headers=CIMultiDict(request.headers),
            body=_parse_body(request.content_type, raw),
        )
        request[RECORD] = record
        with self._lock:
            self._records.append(record)
        try:
            response = await handler(request)
        except web.HTTPException as err:
            record.status = err.status
            raise
        finally:
            record.principal = request.get(PRINCIPAL)
        record.status = response.status
        return response
