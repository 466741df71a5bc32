"""The GCS reader: the JSON API's media download, a bearer token, over the shared pool.

The generation seen by the first answer pins every later range (``ifGenerationMatch``), so an
object replaced mid-read fails with ``IntegrityError`` instead of mixing bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import yarl

from .._credentials import gcp
from .._limits import Limits
from .errors import raise_for_status, xml_code
from .part import Part, range_header, ranged
from .transport import answered, exchange

if TYPE_CHECKING:
    from .._config import Config
    from .._rules import Route

__all__ = ["read"]

PUBLIC_ENDPOINT = "https://storage.googleapis.com"


async def read(client: Any, route: Route, start: int, end: int | None, version: str | None,
               config: Config | None, limits: Limits, if_none_match: str | None) -> Part:
    loc = route.location
    gcp_cfg = config.platform.gcp if config else None
    base = (gcp_cfg.endpoint_url if gcp_cfg and gcp_cfg.endpoint_url
            else PUBLIC_ENDPOINT).rstrip("/")
    query = "alt=media"
    if version or loc.version:
        query += f"&ifGenerationMatch={version or loc.version}"
    if if_none_match:
        query += f"&ifGenerationNotMatch={if_none_match}"
    url = yarl.URL(f"{base}/download/storage/v1/b/{loc.bucket}/o/{quote(loc.key, safe='')}"
                   f"?{query}", encoded=True)
    headers = {"Range": range_header(start, end)} if ranged(start, end) else {}
    lease = gcp.token_lease(config, route.grant)
    if lease is not None:
        headers["Authorization"] = f"Bearer {await lease.get()}"
    status, answer, body = await exchange(route, limits, url, headers)
    if status in (200, 206, 304):
        return answered(route, start, version, if_none_match, status, answer, body,
                        "x-goog-generation")
    raise_for_status(route.uri, "gcs", status, xml_code(body), version, answer)
