"""A fake Entra ID (Azure AD) for azure-identity's client-credential flows, over TLS.

Serves what both azure-identity stacks read:
- the sync credentials (MSAL, with `disable_instance_discovery=True`) GET
  `{authority}/{tenant}/v2.0/.well-known/openid-configuration` first, then POST the token
  endpoint it names;
- the async credentials POST `{authority}/{tenant}/oauth2/v2.0/token` directly.

Apps are multi-tenant: `register_app` once, then `consent(tenant, app)` per customer directory;
only consented directories issue tokens, as in Entra, where an app has a service principal only
in directories that consented to it. Errors carry Entra's AADSTS error document.

Access tokens are v1.0 JWTs shaped like the ones Entra issues for Azure Storage, which Azurite
(`--oauth basic`) accepts: it checks `iss`, `aud` and the time claims, not the signature.
"""

from __future__ import annotations

import secrets
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import trustme
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from . import (
    PRINCIPAL,
    AppServer,
    InvalidJwt,
    b64url_decode,
    b64url_encode,
    decode_jwt,
    sign_jwt,
    verify_jwt,
)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW_S = 300


@dataclass
class App:
    client_id: str
    secret: str | None = None
    # thumbprint digest (SHA-1 for x5t, SHA-256 for x5t#S256) -> certificate
    certificates: dict[bytes, x509.Certificate] = field(default_factory=dict)


def _thumbprints(cert: x509.Certificate) -> list[bytes]:
    return [cert.fingerprint(algorithm) for algorithm in (hashes.SHA1(), hashes.SHA256())]


# The AADSTS errors this fake answers: code -> (HTTP status, OAuth error, message template).
AADSTS = {
    70003: (400, "unsupported_grant_type", "The app requested an unsupported grant type."),
    900144: (
        400,
        "invalid_request",
        "The request body must contain the following parameter: 'client_id'.",
    ),
    700016: (
        400,
        "unauthorized_client",
        "Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
        "This can happen if the application has not been installed by the administrator of the "
        "tenant or consented to by any user in the tenant. You may have sent your authentication "
        "request to the wrong tenant.",
    ),
    7000215: (
        401,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the client "
        "secret value, not the client secret ID, for a secret added to app '{client_id}'.",
    ),
    7000218: (
        401,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ),
    50027: (401, "invalid_client", "JWT token is invalid or malformed."),
    700027: (
        401,
        "invalid_client",
        "Client assertion failed signature validation. [Reason - {reason}, Thumbprint of key used "
        "by client: '{thumbprint}']",
    ),
    700021: (
        401,
        "invalid_client",
        "Client assertion application identifier doesn't match 'client_id' parameter.",
    ),
    700212: (
        401,
        "invalid_client",
        "No matching federated identity record found for presented assertion audience.",
    ),
    700024: (401, "invalid_client", "Client assertion is not within its valid time range."),
    1002012: (
        400,
        "invalid_scope",
        "The provided value for scope {scope} is not valid. Client credential flows must have a "
        "scope value with /.default suffixed to the resource identifier (application ID URI).",
    ),
    90033: (503, "temporarily_unavailable", "A transient error has occurred. Please try again."),
}


def _aadsts(code: int, *, status: int | None = None, **details: str) -> web.Response:
    """Entra's OAuth error document; error_description carries trace and correlation ids."""
    default_status, error, template = AADSTS[code]
    trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
    timestamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {template.format(**details)} Trace ID: {trace_id} "
            f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
        ),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return web.json_response(body, status=status or default_status)


class FakeEntra(AppServer):
    """Fake Entra ID on https://127.0.0.1:<free port>, its certificate issued by `ca`.

    Attributes: `authority` (pass as azure-identity's `authority=`), `ca` (the trustme CA),
    `ca_path` (its PEM, for `connection_verify=`), `token_lifetime` (seconds), `clock`.
    """

    def __init__(
        self,
        *,
        ca: trustme.CA | None = None,
        token_lifetime: float = 3600,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
    ):
        self.ca = ca or trustme.CA()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(server_ctx)
        super().__init__(host=host, ssl_context=server_ctx)
        self.token_lifetime = self._initial_lifetime = token_lifetime
        self.clock = clock
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._signing_kid = secrets.token_urlsafe(20)
        self._apps: dict[str, App] = {}
        self._consents: set[tuple[str, str]] = set()
        self._failures: list[int] = []
        self._state_lock = threading.Lock()
        self._ca_dir = tempfile.TemporaryDirectory(prefix="fake-entra-ca-")
        self.ca_path = Path(self._ca_dir.name) / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))

    def _setup(self, app: web.Application) -> None:
        app.router.add_get(
            "/{tenant}/v2.0/.well-known/openid-configuration", self._openid_configuration
        )
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._keys)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)

    @property
    def authority(self) -> str:
        return self.url

    def token_url(self, tenant_id: str) -> str:
        return f"{self.authority}/{tenant_id}/oauth2/v2.0/token"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this fake's CA (for aiohttp or urllib callers)."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    # --- Directory ---------------------------------------------------------------------------

    def register_app(
        self, client_id: str, secret: str | None = None, certificate_pem: str | bytes | None = None
    ) -> None:
        """Register (or replace) a multi-tenant app with a client secret and/or a certificate."""
        app = App(client_id, secret)
        if certificate_pem is not None:
            data = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
            cert = x509.load_pem_x509_certificate(data)
            app.certificates = dict.fromkeys(_thumbprints(cert), cert)
        with self._state_lock:
            self._apps[client_id] = app

    def consent(self, tenant_id: str, client_id: str) -> None:
        """Admin consent in `tenant_id`: the app gets a service principal there."""
        with self._state_lock:
            self._consents.add((tenant_id, client_id))

    def revoke_consent(self, tenant_id: str, client_id: str) -> None:
        with self._state_lock:
            self._consents.discard((tenant_id, client_id))

    @staticmethod
    def object_id(tenant_id: str, client_id: str) -> str:
        """The app's service-principal object id in `tenant_id` (the token's `oid`)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"entra:{tenant_id}:{client_id}"))

    def reset(self) -> None:
        """Forget apps, consents, pending failures and records; restore the token lifetime."""
        with self._state_lock:
            self._apps.clear()
            self._consents.clear()
            self._failures.clear()
        self.token_lifetime = self._initial_lifetime
        self.clear_requests()

    def fail_next(self, count: int, *, status: int = 503) -> None:
        """Answer the next `count` token requests with `status`."""
        with self._state_lock:
            self._failures.extend([status] * count)

    # --- Handlers ----------------------------------------------------------------------------

    async def _openid_configuration(self, request: web.Request) -> web.Response:
        base = f"{self.authority}/{request.match_info['tenant']}"
        return web.json_response(
            {
                "issuer": f"{base}/v2.0",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "tenant_region_scope": None,
                "cloud_instance_name": "microsoftonline.com",
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        numbers = self._signing_key.public_key().public_numbers()

        def b64_int(value: int) -> str:
            return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        key = {
            "kty": "RSA",
            "use": "sig",
            "kid": self._signing_kid,
            "n": b64_int(numbers.n),
            "e": b64_int(numbers.e),
        }
        return web.json_response({"keys": [key]})

    async def _token(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        with self._state_lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return _aadsts(90033, status=failure)
        form = await request.post()
        client_id = str(form.get("client_id", ""))
        if form.get("grant_type") != "client_credentials":
            return _aadsts(70003)
        if not client_id:
            return _aadsts(900144)
        with self._state_lock:
            app = self._apps.get(client_id)
            consented = (tenant, client_id) in self._consents
        # Entra looks the app up in the tenant's directory before it checks any credential.
        if app is None or not consented:
            return _aadsts(700016, client_id=client_id, tenant=tenant)
        refusal = self._authenticate_client(app, form, tenant)
        if refusal is not None:
            return refusal
        request[PRINCIPAL] = (tenant, client_id)
        scopes = str(form.get("scope", "")).split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return _aadsts(1002012, scope=str(form.get("scope", "")))
        lifetime = int(self.token_lifetime)
        resource = scopes[0].removesuffix("/.default")
        token = self._access_token(tenant, client_id, resource, lifetime, form)
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            }
        )

    def _authenticate_client(self, app: App, form, tenant: str) -> web.Response | None:
        if "client_assertion" in form:
            return self._verify_assertion(app, form, tenant)
        if "client_secret" not in form:
            return _aadsts(7000218)
        secret = str(form["client_secret"])
        if app.secret is None or not secrets.compare_digest(secret, app.secret):
            return _aadsts(7000215, client_id=app.client_id)
        return None

    def _verify_assertion(self, app: App, form, tenant: str) -> web.Response | None:
        assertion = str(form["client_assertion"])
        try:
            if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
                raise InvalidJwt("unsupported client_assertion_type")
            header, _ = decode_jwt(assertion)
        except InvalidJwt:
            return _aadsts(50027)
        # MSAL and azure-identity both send base64url *with* padding; RFC 7515 says without.
        thumbprint = str(header.get("x5t#S256") or header.get("x5t") or "")
        try:
            cert = app.certificates.get(b64url_decode(thumbprint.rstrip("=")))
        except ValueError:
            cert = None
        if cert is None:
            return _aadsts(700027, reason="The key was not found.", thumbprint=thumbprint)
        try:
            _, claims = verify_jwt(assertion, cert.public_key())
        except InvalidJwt:
            return _aadsts(700027, reason="The signature is invalid.", thumbprint=thumbprint)
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return _aadsts(700021)
        if not str(claims.get("aud", "")).endswith(f"/{tenant}/oauth2/v2.0/token"):
            return _aadsts(700212)
        now, valid_from = self.clock(), claims.get("nbf", claims.get("iat", 0))
        if not valid_from - CLOCK_SKEW_S <= now < claims.get("exp", 0) + CLOCK_SKEW_S:
            return _aadsts(700024)
        return None

    def _access_token(self, tenant: str, client_id: str, resource: str, lifetime: int, form) -> str:
        now = int(self.clock())
        oid = self.object_id(tenant, client_id)
        issuer = f"https://sts.windows.net/{tenant}/"
        claims = {
            "aud": resource,
            "iss": issuer,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "aio": secrets.token_urlsafe(24),
            "appid": client_id,
            "azp": client_id,
            "appidacr": "2" if "client_assertion" in form else "1",
            "idp": issuer,
            "idtyp": "app",
            "oid": oid,
            "rh": "0.fake.",
            "sub": oid,
            "tid": tenant,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
        }
        return sign_jwt(claims, self._signing_key, x5t=self._signing_kid, kid=self._signing_kid)


def self_signed_certificate(common_name: str = "attachfs-test-app") -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) of a fresh self-signed RSA certificate for an app."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
