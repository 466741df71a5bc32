"""The other transport measured for attachfs's S3 reads: obstore (Rust ``object_store``) as the
data plane behind the read path, for the side-by-side comparison (variant ``attachfs, obstore
data plane``; docs/benchmarks.md, "The transport").

``install()`` replaces the S3 reader behind ``attachfs._read.read`` in this process (a
benchmark worker) with ``read`` below: everything above it is attachfs's as shipped (routing,
the file, batches, parallel parts, the retry loop and its budget, error translation). The
request itself is obstore's ``get_async`` on an ``S3Store`` per (endpoint, bucket, region,
identity) whose credentials come from attachfs's lease (``credential_provider``): the same
identity the Route chose, refreshed by the same lease. obstore's own retries are off (the read
path's loop retries). Version pinning is obstore's ``if_match``; ranges its ``range``.
``ExpectedBucketOwner`` could ride in the store's ``default_headers``, which object_store signs
(checked); the benchmark reads no owner-pinned bucket.

What it cannot keep, found while building it (why it is a benchmark variant and not the
shipped plane):

* A server that answers a ranged GET with the whole object (S3 for a suffix of an empty
  object; S3-compatible stores and caching proxies for any range) fails in object_store
  (``NotPartial``, ``src/client/get.rs``); attachfs reads it.
* Fork: obstore's tokio runtime does not survive ``fork()``. A forked child (a PyTorch
  DataLoader worker's default start method on Linux) hangs on its first request, with the
  parent's store or a new one (checked here with obstore 0.12.1; obstore's maintainers:
  "obstore is not fork safe", developmentseed/obstore#441).
* Errors arrive as obstore exceptions carrying text, not the status, error code and headers
  (``Retry-After``, ``x-amz-bucket-region``) the read path's error table, retry classifier and
  region redirects work from; they are mapped back below only coarsely.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

__all__ = ["install", "read"]

_stores: dict[tuple[Any, ...], Any] = {}


def install() -> None:
    from attachfs import _read

    _read._READERS["s3"] = read


def _store(config: Any, route: Any) -> Any:
    from obstore.store import S3Store

    from attachfs._read import s3

    loc = route.location
    base, _host, _path, region = s3.request_target(config, loc)
    key = (os.getpid(), base, loc.bucket, region, route.grant, route.tenant)
    store = _stores.get(key)
    if store is None:
        lease = s3._lease(config, route)

        def credentials() -> dict[str, Any]:
            creds = lease.get_sync()
            current = lease.lease
            expires = (dt.datetime.fromtimestamp(current.expires_at, dt.timezone.utc)
                       if current is not None else None)
            return {"access_key_id": creds.access_key, "secret_access_key": creds.secret_key,
                    "token": creds.token, "expires_at": expires}

        store = _stores[key] = S3Store(
            loc.bucket, endpoint=base, region=region, virtual_hosted_style_request=False,
            credential_provider=credentials,  # type: ignore[arg-type]
            client_options={"allow_http": True, "http1_only": True},
            retry_config={"max_retries": 0})
    return store


async def read(client: Any, route: Any, start: int, end: int | None, version: str | None,
               config: Any, limits: Any, if_none_match: str | None) -> Any:
    import obstore
    from obstore.exceptions import NotFoundError, PreconditionError

    from attachfs._read.errors import Retry, Unsatisfiable, changed
    from attachfs._read.part import Part

    options: dict[str, Any] = {}
    if start < 0:
        options["range"] = {"suffix": -start}
    elif end is not None:
        options["range"] = (start, end)
    elif start:
        options["range"] = {"offset": start}
    if version:
        options["if_match"] = version
    if if_none_match:
        options["if_none_match"] = if_none_match
    try:
        result = await obstore.get_async(_store(config, route), route.location.key,
                                         options=options)
        data = await result.bytes_async()
    except PreconditionError as err:
        raise changed(route.uri, version) from err
    except NotFoundError as err:
        raise FileNotFoundError(route.uri) from err
    except Exception as err:
        text = str(err)
        if "Range" in text and "416" in text:
            raise Unsatisfiable() from err
        if any(code in text for code in ("500", "502", "503", "504", "Timeout", "connection")):
            raise Retry(f"obstore: {type(err).__name__}") from err
        raise
    meta = result.meta
    return Part(bytes(data), max(start, 0) if start >= 0 else meta["size"] - len(data),
                meta["size"], meta.get("e_tag"))
