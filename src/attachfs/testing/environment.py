"""The environment of a process that talks to the local peers, and their TLS authority.

Standard library only at import time, so a test runner can load this file on its own and apply
the environment before aiohttp or gcsfs are imported: aiohttp builds its default SSL context at
import, and gcsfs reads ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT`` at import.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AWS_TEST_KEYS", "AZURE_DEV_ACCOUNT", "AZURE_DEV_KEY", "LocalCA", "apply_environment",
           "make_local_ca", "peer_environment"]

AZURE_DEV_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
AZURE_DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AWS_TEST_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def peer_environment(ca_bundle: str | os.PathLike[str] | None = None) -> dict[str, str | None]:
    """The environment a process talking to the peers needs; ``None`` means "unset it".

    Apply it with :func:`apply_environment` before gcsfs and aiohttp are imported:
    no SDK may find real credentials, probe a metadata server, or go through an HTTP proxy.
    """
    env: dict[str, str | None] = {
        # gcsfs 2026.x otherwise probes each bucket's layout over gRPC: 15-60 s per read.
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_DEFAULT_REGION": "us-east-1",
        **AWS_TEST_KEYS,  # moto accepts any key; these keep real ones out of reach
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
