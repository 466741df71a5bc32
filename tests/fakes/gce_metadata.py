"""A fake Compute Engine metadata server: the VM identity google-auth finds when it runs on a VM
(``google/auth/compute_engine/_metadata.py`` reads ``GCE_METADATA_HOST`` and
``GCE_METADATA_IP``; ``NO_GCE_CHECK`` must not be "true").

A VM's tokens carry the VM's *access scopes*, whatever scopes a client asks for
(https://cloud.google.com/compute/docs/access/service-accounts#accesscopesiam): a VM created
with the default scopes has ``devstorage.read_only`` but not ``cloud-platform``, so the IAM
Credentials API refuses it ("Request had insufficient authentication scopes.") even when its
service account holds Token Creator. Tokens are minted by ``issue(email, scopes)`` (the fake
Google's token table), so the fake IAM endpoint knows their scopes.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from attachfs.testing.servers import AppServer

__all__ = ["FakeMetadata"]

FLAVOR = {"Metadata-Flavor": "Google"}


class FakeMetadata(AppServer):
    def __init__(self, email: str, scopes: list[str],
                 issue: Callable[[str, list[str]], str], *, project: str = "vm-project") -> None:
        super().__init__()
        self.email, self.scopes, self.project = email, scopes, project
        self._issue = issue

    def _setup(self, app: web.Application) -> None:
        app.router.add_get("/", self._ping)
        app.router.add_get("/computeMetadata/v1/project/project-id", self._project)
        app.router.add_get("/computeMetadata/v1/instance/service-accounts/{sa}/", self._account)
        app.router.add_get("/computeMetadata/v1/instance/service-accounts/{sa}/token",
                           self._token)

    def _flavored(self, request: web.Request) -> bool:
        return request.headers.get("Metadata-Flavor") == "Google"

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", headers=FLAVOR)

    async def _project(self, request: web.Request) -> web.Response:
        if not self._flavored(request):
            return web.Response(status=403)
        return web.Response(text=self.project, headers=FLAVOR)

    async def _account(self, request: web.Request) -> web.Response:
        if not self._flavored(request):
            return web.Response(status=403)
        return web.json_response({"aliases": ["default"], "email": self.email,
                                  "scopes": self.scopes}, headers=FLAVOR)

    async def _token(self, request: web.Request) -> web.Response:
        if not self._flavored(request):
            return web.Response(status=403)
        # The VM's access scopes, not the ones asked for in ?scopes=.
        token = self._issue(self.email, self.scopes)
        return web.json_response({"access_token": token, "expires_in": 3599,
                                  "token_type": "Bearer"}, headers=FLAVOR)
