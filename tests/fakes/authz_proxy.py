"""A reverse proxy that enforces per-principal grants in front of a storage emulator.

fake-gcs-server and Azurite check no tenant boundaries (fake-gcs-server ignores Authorization;
Azurite `--oauth basic` checks a bearer token's shape, not its tenant or app). The proxy
forwards every request byte for byte (method, raw path and query, headers, body; the response
streamed back with Range/ETag/Content-Range untouched) once `authorize(request)` agrees, and
records each request with the principal the policy resolved.

`authorize(request)` returns None to forward, or `(status, body, headers)` to refuse; it may set
`request[PRINCIPAL]`, which is what gets recorded. `gcs_policy` and `azure_policy` build the
two policies the tests need.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from . import PRINCIPAL, RECORD, AppServer, InvalidJwt, decode_jwt

Refusal = tuple[int, bytes | str, Mapping[str, str]]
Authorize = Callable[[web.Request], Refusal | None | Awaitable[Refusal | None]]

ANONYMOUS = "anonymous"
# RFC 9110 7.6.1 hop-by-hop headers, plus those aiohttp recomputes for the next hop.
_HOP_BY_HOP = frozenset(
    "connection keep-alive proxy-authenticate proxy-authorization te trailer transfer-encoding "
    "upgrade host content-length".split()
)


class AuthorizingProxy(AppServer):
    """Reverse proxy on 127.0.0.1:<free port> to `upstream` (e.g. "http://127.0.0.1:4443").

    `tls`: serve HTTPS to clients, as `(certfile, keyfile)` or a server SSLContext.
    `upstream_ca`: CA file or client SSLContext for an https upstream.
    `authorize` may be swapped at any time; None forwards everything (a recording proxy).
    """

    def __init__(
        self,
        upstream: str,
        authorize: Authorize | None = None,
        *,
        tls: tuple[str | Path, str | Path] | ssl.SSLContext | None = None,
        upstream_ca: str | Path | ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        preserve_host: bool = False,
    ):
        # preserve_host: forward the client's Host header, so SigV4 signatures (which cover
        # Host) still match at an upstream that does not route by host (moto's STS, path-style).
        self.preserve_host = preserve_host
        if isinstance(tls, tuple):
            server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            tls = server_ctx
        super().__init__(host=host, ssl_context=tls)
        self.upstream = upstream.rstrip("/")
        self.authorize = authorize
        if isinstance(upstream_ca, (str, Path)):
            upstream_ca = ssl.create_default_context(cafile=str(upstream_ca))
        self._upstream_ssl = upstream_ca
        self._session: aiohttp.ClientSession | None = None
        # Requests being answered now, and the most at once since ``clear_requests``. ``delay``
        # holds each request that long before forwarding it, so requests a client sends
        # together are seen together (a count, not a timing).
        self.in_flight = 0
        self.in_flight_max = 0
        self.delay = 0.0

    def clear_requests(self) -> None:
        super().clear_requests()
        self.in_flight_max = self.in_flight

    def _setup(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._forward)
        app.on_startup.append(self._open_session)
        app.on_cleanup.append(self._close_session)

    async def _open_session(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._upstream_ssl if self._upstream_ssl else True),
            auto_decompress=False,  # bytes pass through as the upstream encoded them
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
        )

    async def _close_session(self, app: web.Application) -> None:
        await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if self.authorize is not None:
            refusal = self.authorize(request)
            if inspect.isawaitable(refusal):
                refusal = await refusal
            if refusal is not None:
                status, body, headers = refusal
                return web.Response(status=status, body=body, headers=headers)
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return await self._pass(request)
        finally:
            self.in_flight -= 1

    async def _pass(self, request: web.Request) -> web.StreamResponse:
        record = request[RECORD]
        record.principal = request.get(PRINCIPAL)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        if self.preserve_host:
            headers.append(("Host", request.host))
        url = URL(self.upstream + request.raw_path, encoded=True)
        async with self._session.request(
            request.method, url, headers=headers, data=await request.read(), allow_redirects=False
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() in _HOP_BY_HOP - {"content-length"}:
                    continue
                if name.lower() == "location" and value.startswith(self.upstream):
                    # Resumable-upload sessions must come back through the proxy too.
                    value = self.url + value[len(self.upstream) :]
                response.headers.add(name, value)
            record.status = upstream.status
            await response.prepare(request)
            async for chunk in upstream.content.iter_chunked(1 << 16):
                await response.write(chunk)
            await response.write_eof()
            return response


def _bearer(request: web.Request) -> str | None:
    """The bearer token, "" for a non-bearer Authorization, None when there is none."""
    auth = request.headers.get("Authorization")
    if auth is None:
        return None
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# --- GCS -------------------------------------------------------------------------------------------

_GCS_JSON = re.compile(
    r"^/(?:download/|upload/)?storage/v1/b/(?P<bucket>[^/]+)(?P<objects>/o(?:/|$))?"
)
_GCS_VERB = {"POST": "create", "PUT": "create", "PATCH": "update", "DELETE": "delete"}


def gcs_target(path: str) -> tuple[str | None, bool]:
    """(bucket, whether objects are addressed) of a GCS JSON or XML API path.

    The bucket is None for calls not addressed to one bucket (bucket listing, batch).
    """
    if match := _GCS_JSON.match(path):
        return match["bucket"], match["objects"] is not None
    if path.startswith(("/storage/", "/upload/", "/download/", "/batch/")):
        return None, False
    bucket, _, name = path.lstrip("/").partition("/")  # XML API: /{bucket}/{object}
    return bucket or None, bool(name)


def _gcs_error(status: int, message: str, reason: str, **headers: str) -> Refusal:
    error = {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
    }
    return (
        status,
        json.dumps({"error": error}),
        {"Content-Type": "application/json; charset=UTF-8", **headers},
    )


def gcs_policy(
    principal_for_token: Callable[[str], str | None], allowed: Mapping[str, set[str]]
) -> Authorize:
    """Bearer token -> principal (e.g. `FakeGoogle.principal_for_token`) -> buckets it may use.

    `allowed` maps a principal, or "anonymous" for requests without Authorization, to bucket
    names ("*" for all). Unknown or missing credentials get 401, other buckets 403, both with
    Google's JSON error shape. `allowed` is read per request, so tests may mutate it.
    """

    def authorize(request: web.Request) -> Refusal | None:
        token = _bearer(request)
        principal = ANONYMOUS if token is None else (principal_for_token(token) if token else None)
        request[PRINCIPAL] = principal
        if principal is None:
            challenge = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
            return _gcs_error(401, "Invalid Credentials", "authError", **challenge)
        bucket, objects = gcs_target(request.path)
        buckets = allowed.get(principal, set())
        if "*" in buckets or (bucket is not None and bucket in buckets):
            return None
        kind = "objects" if objects else "buckets"
        listing = bucket is None or request.path.rstrip("/").endswith("/o")
        permission = f"storage.{kind}.{_GCS_VERB.get(request.method, 'list' if listing else 'get')}"
        who = "Anonymous caller" if principal == ANONYMOUS else principal
        message = (
            f"{who} does not have {permission} access to the Google Cloud Storage "
            f"{kind[:-1] if bucket else 'project'}. "
            f"Permission '{permission}' denied on resource (or it may not exist)."
        )
        if principal == ANONYMOUS:
            return _gcs_error(401, message, "required")
        return _gcs_error(403, message, "forbidden")

    return authorize


# --- Azure -----------------------------------------------------------------------------------------

AzurePrincipal = tuple[str, str] | str  # (tenant id, app id) or "anonymous"


def azure_path(path: str) -> tuple[str | None, str | None]:
    """(account, container) of a path-style blob URL path, as Azurite serves it."""
    parts = path.lstrip("/").split("/", 2)
    account = parts[0] or None
    container = parts[1] if len(parts) > 1 and parts[1] else None
    return account, container


_AZURE_UNAUTHENTICATED = (
    "Server failed to authenticate the request. "
    "Please refer to the information in the www-authenticate header."
)


def _azure_error(status: int, code: str, message: str = _AZURE_UNAUTHENTICATED) -> Refusal:
    # No WWW-Authenticate challenge: on a 401 that names another tenant the storage SDK would
    # fetch a token for that tenant, which is not what a refusal here should provoke.
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return status, body, {"Content-Type": "application/xml", "x-ms-error-code": code}


def azure_principal(request: web.Request) -> AzurePrincipal | None:
    """(tid, appid) of the bearer JWT (signature unchecked), "anonymous", or None if unreadable."""
    token = _bearer(request)
    if token is None:
        return ANONYMOUS
    try:
        _, claims = decode_jwt(token)
    except InvalidJwt:
        return None
    tenant, app = claims.get("tid"), claims.get("appid") or claims.get("azp")
    return (tenant, app) if tenant and app else None


def azure_policy(allowed: Mapping[AzurePrincipal, set[tuple[str, str]]]) -> Authorize:
    """(tenant, app) of the bearer token, or "anonymous" -> the (account, container) it may use.

    A container of "*" grants the whole account, including account-level calls (list
    containers). Refusals are Azure Storage's XML error with `x-ms-error-code`: 401
    NoAuthenticationInformation (anonymous) or InvalidAuthenticationInfo (unreadable token),
    403 AuthorizationPermissionMismatch (authenticated but not granted).
    """

    def authorize(request: web.Request) -> Refusal | None:
        principal = azure_principal(request)
        request[PRINCIPAL] = principal
        if principal is None:
            return _azure_error(401, "InvalidAuthenticationInfo")
        account, container = azure_path(request.path)
        grants = allowed.get(principal, set())
        if (account, "*") in grants or (container is not None and (account, container) in grants):
            return None
        if principal == ANONYMOUS:
            return _azure_error(401, "NoAuthenticationInformation")
        return _azure_error(
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        )

    return authorize
