"""A scripted web origin: each path answers what the test set (a redirect, an object, a status),
and every request is recorded, with the TLS server name (SNI) the client sent.

Used by the network-guard tests to build redirect chains and to see what reached a server.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from aiohttp import web

from . import AppServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    head_status: int | None = None  # HEAD answers this status instead (a GET-signed URL)
    chunked: bool = False           # no Content-Length: the body's end is only its last chunk


class Origin(AppServer):
    """``answer(path, ...)`` scripts a path; unscripted paths are 404. ``server_names`` lists
    the SNI of every TLS handshake (None: the client sent none)."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None):
        self.answers: dict[str, Answer] = {}
        self.server_names: list[str | None] = []
        if ssl_context is not None:
            ssl_context.sni_callback = self._on_sni
        super().__init__(ssl_context=ssl_context)

    def _on_sni(self, sslobj, server_name, context) -> None:
        self.server_names.append(server_name)

    def answer(self, path: str, body: bytes = b"", *, status: int = 200,
               headers: dict[str, str] | None = None, head_status: int | None = None,
               chunked: bool = False) -> None:
        self.answers[path] = Answer(status, body, dict(headers or {}), head_status, chunked)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.answer(path, status=status, headers={"Location": location})

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def _setup(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        answer = self.answers.get(request.path)
        if answer is None:
            return web.Response(status=404, text="not scripted\n")
        if request.method == "HEAD" and answer.head_status is not None:
            return web.Response(status=answer.head_status)
        if answer.chunked and request.method == "GET":
            response = web.StreamResponse(status=answer.status, headers=answer.headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for i in range(0, len(answer.body), 65536):
                await response.write(answer.body[i:i + 65536])
            await response.write_eof()
            return response
        body = answer.body if request.method != "HEAD" else b""
        headers = dict(answer.headers)
        if request.method == "HEAD" and answer.body:
            headers.setdefault("Content-Length", str(len(answer.body)))
        return web.Response(status=answer.status, body=body, headers=headers)
