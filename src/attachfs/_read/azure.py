"""The Azure Blob reader: Get Blob with a bearer token (or none) over the shared pool.

Reads authorised by a shared key (ambient mode, emulators) go through the Azure SDK client
adlfs built, which signs them. Every later range carries the first answer's ETag as
``If-Match``. A blob of a sovereign cloud is read from that cloud's own endpoint
(``https://{account}.blob.{Location.endpoint_suffix}``), with a token of its own authority.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._credentials import azure
from .._credentials.refresh import Stale
from .._limits import Limits
from .._uri import AZURE_PUBLIC_SUFFIX
from .errors import Said, changed, raise_for_status, said
from .part import Part, range_header, ranged, size_from
from .transport import answered, exchange, object_url

if TYPE_CHECKING:
    from .._config import Config
    from .._rules import Route

__all__ = ["API_VERSION", "read"]

API_VERSION = "2021-08-06"


async def read(client: Any, route: Route, start: int, end: int | None, version: str | None,
               config: Config | None, limits: Limits, if_none_match: str | None) -> Part:
    if route.grant.kind == "ambient":
        # Shared keys and adlfs's own default chain: the Azure SDK signs those requests.
        return await _read_sdk(client, route, start, end, version)
    loc = route.location
    az_cfg = config.platform.azure if config else None
    account = loc.account  # the Route filled in platform.azure.account where it applies
    suffix = loc.endpoint_suffix or AZURE_PUBLIC_SUFFIX
    base = (az_cfg.endpoint_url.format(account=account) if az_cfg and az_cfg.endpoint_url
            else f"https://{account}.blob.{suffix}").rstrip("/")
    url = object_url(base, f"/{loc.bucket}/{quote(loc.key, safe='/~')}")
    headers = {"x-ms-version": API_VERSION}
    if ranged(start, end):
        headers["x-ms-range"] = range_header(start, end)
    if version:
        headers["If-Match"] = version
    if if_none_match:
        headers["If-None-Match"] = if_none_match
    if route.grant.kind == "azure-app":
        lease = azure.token_lease(config, route.grant)
        token = lease.current()
        if isinstance(token, Stale):
            token = await lease.get()
        headers["Authorization"] = f"Bearer {token.token}"
    answer = await exchange(route, limits, url, headers, start=start, end=end)
    if answer.status in (200, 206, 304):
        return answered(route, start, version, if_none_match, answer, "ETag")
    raise_for_status(route.uri, "azure", answer.status,
                     said("azure", answer.status, answer.headers, answer.body), version,
                     answer.headers)


async def _read_sdk(client: Any, route: Route, start: int, end: int | None,
                    version: str | None) -> Part:
    """Through adlfs's ``service_client`` (an Azure SDK ``BlobServiceClient``)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import HttpResponseError, ResourceModifiedError

    loc = route.location
    blob = client.service_client.get_blob_client(loc.bucket, loc.key)
    kwargs: dict[str, Any] = {}
    if ranged(start, end):
        kwargs["offset"] = start
        kwargs["length"] = None if end is None else end - start
    if version:
        kwargs.update(etag=version, match_condition=MatchConditions.IfNotModified)
    try:
        async with blob:
            stream = await blob.download_blob(**kwargs)
            data = await stream.readall()
    except ResourceModifiedError as err:
        raise changed(route.uri, version) from err
    except HttpResponseError as err:
        status = err.status_code or 0
        raise_for_status(route.uri, "azure", status,
                         Said(status, getattr(err, "error_code", None)), version)
    # properties.size is the length of the range downloaded; the blob's size is in Content-Range.
    props = stream.properties
    size = size_from(props.content_range, start, len(data))
    meta = {name: str(value) for name, value in (
        ("ETag", props.etag), ("x-ms-version-id", getattr(props, "version_id", None)),
        ("Last-Modified", props.last_modified.isoformat() if props.last_modified else None),
        ("Content-Type", props.content_settings.content_type if props.content_settings
         else None)) if value}
    return Part(data, start, size, props.etag, meta=meta)
