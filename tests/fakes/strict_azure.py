"""A strict Azure Blob Storage: Get Blob the way Azure is documented to answer it, where
Azurite does not model the case.

Addressed path-style (``/{account}/{container}/{blob}``, as attachfs's ``endpoint_url``
template and Azurite use) or host-style (``Host: {account}.blob.core.<cloud suffix>``, path
``/{container}/{blob}``, as the public and sovereign clouds are: https://learn.microsoft.com/
azure/storage/common/storage-account-overview#storage-account-endpoints).

What it models, with the status and ``x-ms-error-code`` of
https://learn.microsoft.com/rest/api/storageservices/blob-service-error-codes and
https://learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes:

* an anonymous read of a private container: 404 ``ResourceNotFound`` (Azure does not reveal
  that the container exists; a missing blob of a public container is 404 ``BlobNotFound``);
* ``firewall = True``: 403 ``AuthorizationFailure``, the account's network rules refuse the
  caller's address (https://learn.microsoft.com/azure/storage/common/storage-network-security);
* ``role_missing = True``: 403 ``AuthorizationPermissionMismatch`` for a bearer token whose
  principal has no data role (Storage Blob Data Reader) on the container;
* a blob in the Archive tier: 409 ``BlobArchived`` (https://learn.microsoft.com/azure/storage/
  blobs/archive-rehydrate-overview: rehydrate before reading);
* ``honour_range = False``: a ranged GET answered 200 with the whole blob (object_store
  ``src/client/get.rs``: ``NotPartial``); ``x-ms-range`` wins over ``Range`` (Get Blob docs).
"""

from __future__ import annotations

import hashlib
import re
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from attachfs.testing.servers import AppServer, RecordedRequest

__all__ = ["AzureBlob", "StrictAzure"]

_HOST = re.compile(r"(?P<account>[a-z0-9]{3,24})\.blob\.core\.")


@dataclass
class AzureBlob:
    data: bytes
    tier: str = "Hot"                 # "Archive": 409 BlobArchived
    content_type: str = "application/octet-stream"

    @property
    def etag(self) -> str:
        return f'"0x{hashlib.md5(self.data).hexdigest()[:15].upper()}"'


@dataclass
class AzureContainer:
    public: bool = False
    blobs: dict[str, AzureBlob] = field(default_factory=dict)


class StrictAzure(AppServer):
    """``container(account, name, public=...)``; ``put(account, container, blob, data)``."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(host=host, port=port, ssl_context=ssl_context)
        self.honour_range = True
        self.firewall = False
        self.role_missing = False
        self.containers: dict[tuple[str, str], AzureContainer] = {}
        self._state = threading.Lock()

    def container(self, account: str, name: str, **settings: Any) -> AzureContainer:
        with self._state:
            found = self.containers.setdefault((account, name), AzureContainer())
            for attr, value in settings.items():
                setattr(found, attr, value)
            return found

    def put(self, account: str, container: str, blob: str, data: bytes,
            **fields: str) -> AzureBlob:
        c = self.container(account, container)
        with self._state:
            c.blobs[blob] = AzureBlob(data, **fields)
            return c.blobs[blob]

    def reset(self) -> None:
        with self._state:
            self.containers.clear()
        self.honour_range, self.firewall, self.role_missing = True, False, False
        self.clear_requests()

    def gets(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "GET"]

    def _setup(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    def _target(self, request: web.Request) -> tuple[str, str, str]:
        path = request.raw_path.split("?", 1)[0]
        m = _HOST.match(request.host.lower())
        if m:
            account, rest = m["account"], path[1:]
        else:
            account, _, rest = path[1:].partition("/")
        container, _, blob = rest.partition("/")
        return account, unquote(container), unquote(blob)

    async def _handle(self, request: web.Request) -> web.Response:
        if self.firewall:
            return _error(403, "AuthorizationFailure",
                          "This request is not authorized to perform this operation.")
        account, container_name, blob_name = self._target(request)
        bearer = request.headers.get("Authorization", "").startswith("Bearer ")
        container = self.containers.get((account, container_name))
        if not bearer and (container is None or not container.public):
            return _error(404, "ResourceNotFound", "The specified resource does not exist.")
        if bearer and self.role_missing:
            return _error(403, "AuthorizationPermissionMismatch", "This request is not "
                          "authorized to perform this operation using this permission.")
        if container is None:
            return _error(404, "ContainerNotFound", "The specified container does not exist.")
        blob = container.blobs.get(blob_name)
        if blob is None:
            return _error(404, "BlobNotFound", "The specified blob does not exist.")
        if blob.tier == "Archive":
            return _error(409, "BlobArchived", "This operation is not permitted on an "
                          "archived blob.")
        headers = {"ETag": blob.etag, "Content-Type": blob.content_type,
                   "x-ms-blob-type": "BlockBlob", "x-ms-access-tier": blob.tier,
                   "Accept-Ranges": "bytes"}
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != blob.etag:
            return _error(412, "ConditionNotMet", "The condition specified using HTTP "
                          "conditional header(s) is not met.")
        if request.headers.get("If-None-Match") == blob.etag:
            return web.Response(status=304, headers={"ETag": blob.etag})
        body, status = blob.data, 200
        spec = request.headers.get("x-ms-range") or request.headers.get("Range")
        if spec is not None and self.honour_range:
            first_s, _, last_s = spec.partition("=")[2].partition("-")
            first = int(first_s)
            if first >= len(blob.data):
                return _error(416, "InvalidRange", "The range specified is invalid for the "
                              "current size of the resource.",
                              **{"Content-Range": f"bytes */{len(blob.data)}"})
            last = min(int(last_s), len(blob.data) - 1) if last_s else len(blob.data) - 1
            headers["Content-Range"] = f"bytes {first}-{last}/{len(blob.data)}"
            body, status = blob.data[first:last + 1], 206
        return web.Response(status=status, body=body, headers=headers)


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>'
            f"{message}\nRequestId:5c1f3b6e-001e-0000-0000-000000000000\nTime:"
            "2025-01-01T00:00:00.0000000Z</Message></Error>")
    return web.Response(status=status, body=body.encode(), content_type="application/xml",
                        headers={"x-ms-error-code": code, **headers})
