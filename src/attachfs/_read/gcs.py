"""The GCS reader: the JSON API's media download, a bearer token, over the shared pool.

Generations (https://cloud.google.com/storage/docs/json_api/v1/objects/get,
https://cloud.google.com/storage/docs/object-versioning): a URL that names one
(``Location.version``) reads that revision with ``generation=``, live or not, on every request;
a generation never changes, so there is nothing to pin. ``ifGenerationMatch`` is a precondition
on the *live* object: only a read of the live object pins its later ranges with it (the
generation the first answer carried), so a live object replaced mid-read fails with
``IntegrityError`` naming that generation instead of mixing bytes.

gzip-encoded objects (https://cloud.google.com/storage/docs/transcoding) are read as stored:
every request says ``Accept-Encoding: gzip``, which turns decompressive transcoding off, so the
bytes are the stored (compressed) ones, their size is the one listings report, and ranges are
ranges of them. Transcoding would ignore ``Range`` and send the whole decompressed object to
every request, with no length (a size nobody knows without reading it all), and it disables
GCS's integrity checks (the same page). gcsfuse made the same choice (it returns objects "as
stored"); ``compression="gzip"`` (pandas, fsspec) decompresses. Signed URLs of GCS objects are
read the same way (``accept_encoding``), so both routes give the same bytes.

A requester-pays opt-in (``Route.user_project``) sends ``userProject=``
(https://cloud.google.com/storage/docs/requester-pays).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import yarl

from .._credentials import gcp
from .._credentials.refresh import Stale
from .._limits import Limits
from .errors import raise_for_status, said
from .part import Part, range_header, ranged
from .transport import answered, exchange

if TYPE_CHECKING:
    from .._config import Config
    from .._rules import Route

__all__ = ["PUBLIC_ENDPOINT", "accept_encoding", "read"]

PUBLIC_ENDPOINT = "https://storage.googleapis.com"
#: Query parameters of GCS signed URLs (V4, and V2's GoogleAccessId).
_SIGNED = ("x-goog-signature", "x-goog-algorithm", "googleaccessid")
_GCS_HOSTS = ("storage.googleapis.com", "storage.cloud.google.com")


def accept_encoding(url: yarl.URL | str) -> str:
    """The ``Accept-Encoding`` a plain http(s) read of ``url`` sends: ``gzip`` for GCS (a
    signed URL, or a GCS host), so a gzip-encoded object comes as stored, exactly as through
    ``gs://`` (see the module docstring); ``identity`` for every other server, which would
    otherwise be free to compress what it sends."""
    parts = urlsplit(str(url))
    host = (parts.hostname or "").lower()
    names = {pair.partition("=")[0].lower() for pair in parts.query.split("&")}
    if host in _GCS_HOSTS or host.endswith(".storage.googleapis.com") or names & set(_SIGNED):
        return "gzip"
    return "identity"


async def read(client: Any, route: Route, start: int, end: int | None, version: str | None,
               config: Config | None, limits: Limits, if_none_match: str | None) -> Part:
    loc = route.location
    gcp_cfg = config.platform.gcp if config else None
    base = (gcp_cfg.endpoint_url if gcp_cfg and gcp_cfg.endpoint_url
            else PUBLIC_ENDPOINT).rstrip("/")
    query = "alt=media"
    if loc.version:
        query += f"&generation={loc.version}"  # that revision, live or not
    elif version:
        query += f"&ifGenerationMatch={version}"  # the live object, still the one first read
    if if_none_match:
        query += f"&ifGenerationNotMatch={if_none_match}"
    if route.user_project:
        query += f"&userProject={quote(route.user_project, safe='')}"
    url = yarl.URL(f"{base}/download/storage/v1/b/{loc.bucket}/o/{quote(loc.key, safe='')}"
                   f"?{query}", encoded=True)
    # Stored bytes, never decompressive transcoding (see the module docstring).
    headers = {"Accept-Encoding": "gzip"}
    if ranged(start, end):
        headers["Range"] = range_header(start, end)
    lease = gcp.token_lease(config, route.grant)
    if lease is not None:
        token = lease.current()
        if isinstance(token, Stale):
            token = await lease.get()
        headers["Authorization"] = f"Bearer {token}"
    answer = await exchange(route, limits, url, headers, start=start, end=end)
    if answer.status in (200, 206, 304):
        return answered(route, start, version, if_none_match, answer, "x-goog-generation")
    raise_for_status(route.uri, "gcs", answer.status,
                     said("gcs", answer.status, answer.headers, answer.body),
                     version or loc.version, answer.headers)
