"""A fake of Google's OAuth token endpoint and IAM Credentials API, for google-auth as client.

- `POST /token`: the service-account JWT-bearer grant
  (https://developers.google.com/identity/protocols/oauth2/service-account#httprest).
- `POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken`: impersonation
  (https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateAccessToken),
  allowed only where `grant_token_creator(source, target)` was called, as Google allows it only
  to holders of roles/iam.serviceAccountTokenCreator on the target.

Access tokens are opaque random strings; `principal_for_token` maps them back to the service
account, which is what an authorising proxy in front of a storage emulator needs.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import PRINCIPAL, AppServer, InvalidJwt, decode_jwt, verify_jwt

# google-auth puts this audience in every service-account assertion, whatever token_uri says.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Scopes that allow calling the IAM Credentials API with a source token.
IAM_SCOPES = frozenset(
    {"https://www.googleapis.com/auth/iam", "https://www.googleapis.com/auth/cloud-platform"}
)
MAX_LIFETIME_S = 3600  # 43200 only with the constraints/iam.allowServiceAccountCredentialLifetimeExtension org policy
CLOCK_SKEW_S = 300


@dataclass(frozen=True)
class IssuedToken:
    principal: str
    scopes: tuple[str, ...]
    expires_at: float
    via: str  # "jwt-bearer" or "impersonation"


def _rpc_error(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """Google's JSON error document for its JSON/gRPC-transcoded APIs."""
    error = {"code": status, "message": message, "status": code, **extra}
    return web.json_response({"error": error}, status=status)


UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)
GET_ACCESS_TOKEN = "iam.serviceAccounts.getAccessToken"
DENIED = f"Permission '{GET_ACCESS_TOKEN}' denied on resource (or it may not exist)."


def _error_info(reason: str, **metadata: str) -> dict[str, Any]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "iam.googleapis.com",
        "metadata": {"service": "iamcredentials.googleapis.com", **metadata},
    }


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)


class FakeGoogle(AppServer):
    """Fake OAuth + IAM Credentials endpoints on http://127.0.0.1:<free port>.

    `token_lifetime` caps every token the fake issues (seconds); set it low for refresh tests.
    `clock` is the fake's notion of now (seconds since the epoch): move it to expire tokens.
    """

    def __init__(
        self,
        *,
        project_id: str = "attachfs-test",
        token_lifetime: float = 3600,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
    ):
        super().__init__(host=host)
        self.project_id = project_id
        self.token_lifetime = self._initial_lifetime = token_lifetime
        self.clock = clock
        self._keys: dict[str, rsa.RSAPrivateKey] = {}  # private_key_id -> key
        self._key_owner: dict[str, str] = {}  # private_key_id -> email
        self._token_creators: set[tuple[str, str]] = set()
        self._tokens: dict[str, IssuedToken] = {}
        self._failures: dict[str, list[int]] = {"token": [], "iam": []}
        self._state_lock = threading.Lock()

    def _setup(self, app: web.Application) -> None:
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/serviceAccounts/{name}", self._iam)

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    # --- Test-facing API ---------------------------------------------------------------------

    def platform_service_account(self, email: str) -> dict[str, Any]:
        """A service-account key (as the JSON key file's dict) for `email`, valid at this fake.

        Each call mints a new key for the account; all of an account's keys stay valid.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        with self._state_lock:
            self._keys[key_id] = key
            self._key_owner[key_id] = email
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(int.from_bytes(secrets.token_bytes(8), "big")),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_url,
            "universe_domain": "googleapis.com",
        }

    def write_service_account_file(self, email: str, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.platform_service_account(email)))
        path.chmod(0o600)
        return path

    def grant_token_creator(self, source_email: str, target_email: str) -> None:
        """roles/iam.serviceAccountTokenCreator for `source_email` on `target_email`."""
        with self._state_lock:
            self._token_creators.add((source_email, target_email))

    def revoke_token_creator(self, source_email: str, target_email: str) -> None:
        with self._state_lock:
            self._token_creators.discard((source_email, target_email))

    def iam_endpoint_for(self, email: str) -> str:
        """The full generateAccessToken URL, as google-auth's `iam_endpoint_override` wants it."""
        return f"{self.url}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"

    def token_info(self, token: str) -> IssuedToken | None:
        """What the fake issued `token` for, or None if unknown or expired."""
        with self._state_lock:
            issued = self._tokens.get(token)
        if issued is None or issued.expires_at <= self.clock():
            return None
        return issued

    def principal_for_token(self, token: str) -> str | None:
        issued = self.token_info(token)
        return issued.principal if issued else None

    def revoke_tokens(self, principal: str | None = None) -> None:
        """Forget every issued token (of `principal` only, if given)."""
        with self._state_lock:
            for token, issued in list(self._tokens.items()):
                if principal is None or issued.principal == principal:
                    del self._tokens[token]

    def reset(self) -> None:
        """Forget grants, tokens, pending failures and records; service-account keys stay valid."""
        with self._state_lock:
            self._token_creators.clear()
            self._tokens.clear()
            for pending in self._failures.values():
                pending.clear()
        self.token_lifetime = self._initial_lifetime
        self.clear_requests()

    def fail_next(self, count: int, *, status: int = 500, endpoint: str = "iam") -> None:
        """Answer the next `count` calls to `endpoint` ("iam" or "token") with `status`."""
        if endpoint not in self._failures:
            raise ValueError(f"endpoint must be 'iam' or 'token', not {endpoint!r}")
        with self._state_lock:
            self._failures[endpoint].extend([status] * count)

    # --- Handlers ----------------------------------------------------------------------------

    def _injected_failure(self, endpoint: str) -> web.Response | None:
        with self._state_lock:
            if not self._failures[endpoint]:
                return None
            status = self._failures[endpoint].pop(0)
        return _rpc_error(status, "INTERNAL", "Internal error encountered.")

    def _issue(
        self, principal: str, scopes: Iterable[str], lifetime: float, via: str
    ) -> tuple[str, float]:
        token = "ya29.fake-" + secrets.token_urlsafe(32)
        expires_at = self.clock() + min(lifetime, self.token_lifetime)
        with self._state_lock:
            self._tokens[token] = IssuedToken(principal, tuple(scopes), expires_at, via)
        return token, expires_at

    async def _token(self, request: web.Request) -> web.Response:
        if failure := self._injected_failure("token"):
            return failure
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return _oauth_error(
                "unsupported_grant_type", "Invalid grant_type: " + str(form.get("grant_type"))
            )
        assertion = str(form.get("assertion", ""))
        try:
            header, _ = decode_jwt(assertion)
            with self._state_lock:
                key = self._keys.get(header.get("kid", ""))
                owner = self._key_owner.get(header.get("kid", ""))
            if key is None:
                return _oauth_error("invalid_grant", "Invalid JWT Signature.")
            _, claims = verify_jwt(assertion, key.public_key())
        except InvalidJwt:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        if claims.get("iss") != owner:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        request[PRINCIPAL] = owner
        if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.token_url):
            return _oauth_error("invalid_grant", "Invalid JWT: Failed audience check.")
        now, issued, expires = self.clock(), claims.get("iat", 0), claims.get("exp", 0)
        if expires - issued > 3600 or not issued - CLOCK_SKEW_S <= now < expires + CLOCK_SKEW_S:
            return _oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
                "timeframe. Check your iat and exp values in the JWT claim.",
            )
        scopes = str(claims.get("scope", "")).split()
        if not scopes:
            return _oauth_error(
                "invalid_scope", "Invalid OAuth scope or ID token audience provided."
            )
        token, expires_at = self._issue(owner, scopes, 3600, "jwt-bearer")
        return web.json_response(
            {"access_token": token, "expires_in": int(expires_at - now), "token_type": "Bearer"}
        )

    async def _iam(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        target, _, method = name.rpartition(":")
        if method != "generateAccessToken" or request.match_info["project"] != "-":
            return _rpc_error(404, "NOT_FOUND", f"Method not found: {name}")
        auth = request.headers.get("Authorization", "")
        source = self.token_info(auth[len("Bearer ") :]) if auth.startswith("Bearer ") else None
        if source is None:
            reason = "ACCESS_TOKEN_TYPE_UNSUPPORTED" if auth else "CREDENTIALS_MISSING"
            return _rpc_error(
                401, "UNAUTHENTICATED", UNAUTHENTICATED, details=[_error_info(reason)]
            )
        request[PRINCIPAL] = source.principal
        if failure := self._injected_failure("iam"):
            return failure
        if not IAM_SCOPES.intersection(source.scopes):
            return _rpc_error(
                403, "PERMISSION_DENIED", "Request had insufficient authentication scopes."
            )
        try:
            body = await request.json()
            scopes = list(body["scope"])
            lifetime = int(str(body.get("lifetime") or "3600s").removesuffix("s"))
            delegates = [d.rpartition("/")[2] for d in body.get("delegates") or []]
        except (ValueError, KeyError, TypeError):
            return _rpc_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not scopes:
            return _rpc_error(400, "INVALID_ARGUMENT", "Scope required.")
        if not 0 < lifetime <= MAX_LIFETIME_S:
            return _rpc_error(
                400,
                "INVALID_ARGUMENT",
                f"The lifetime must be between 1s and {MAX_LIFETIME_S}s (got {lifetime}s).",
            )
        # Each link of source -> delegates... -> target needs Token Creator on the next one.
        chain = [source.principal, *delegates, target]
        with self._state_lock:
            allowed = all(
                link in self._token_creators for link in zip(chain, chain[1:], strict=False)
            )
        if not allowed:
            details = [_error_info("IAM_PERMISSION_DENIED", permission=GET_ACCESS_TOKEN)]
            return _rpc_error(403, "PERMISSION_DENIED", DENIED, details=details)
        token, expires_at = self._issue(target, scopes, lifetime, "impersonation")
        expire_time = datetime.fromtimestamp(expires_at, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        return web.json_response({"accessToken": token, "expireTime": expire_time})
