"""Local fakes of the cloud identity services attachfs talks to.

There is no emulator for Google's IAM Credentials API or for Entra ID's token endpoint, so these
fakes speak the real wire protocol and the real client libraries (google-auth, azure-identity)
are their clients:

- `google_iam.FakeGoogle`: OAuth JWT-bearer token endpoint + IAM Credentials generateAccessToken.
- `entra.FakeEntra`: Entra ID (Azure AD) v2.0 token endpoint and OIDC discovery, over TLS.
- `authz_proxy.AuthorizingProxy`: a reverse proxy that enforces per-principal bucket grants in
  front of storage emulators that check no credentials themselves.

They are built on `attachfs.testing.servers` (an aiohttp application on its own thread and event
loop that records every request); this module holds the few JWT primitives the fakes share
(built on `cryptography` alone).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from attachfs.testing.servers import PRINCIPAL, RECORD, AppServer, RecordedRequest

__all__ = [
    "PRINCIPAL",
    "RECORD",
    "InvalidJwt",
    "RecordedRequest",
    "AppServer",
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
