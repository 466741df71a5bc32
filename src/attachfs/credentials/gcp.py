"""Google credentials for a Route: the platform's own identity (a key file, ADC, or anonymous
for emulators)."""

from __future__ import annotations

from typing import Any

from ..config import Config
from ..rules import Route


def gcsfs_options(config: Config | None, route: Route) -> dict[str, Any]:
    """Keyword arguments for ``GCSFileSystem`` that authenticate as ``route.grant``."""
    kind = route.grant.kind
    gcp_cfg = config.platform.gcp if config else None
    if kind in ("ambient", "gcp-platform"):
        source = gcp_cfg.credentials if gcp_cfg is not None else None
        if source == "anonymous":
            return {"token": "anon"}
        if source:
            return {"token": source}
        # Application default credentials, and nothing quieter: gcsfs's own token=None would
        # fall through to anonymous when ADC is missing (STYLE.md, "Credentials").
        return {"token": "google_default"}
    raise NotImplementedError(f"GCP grant {kind!r} is not supported yet")
