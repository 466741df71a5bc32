"""The resolver and connector every guarded connection goes through.

* ``GuardedConnector`` checks every connection aiohttp opens, whoever asked for it (our reads,
  fsspec's HTTPFileSystem for ``info``/``ls``, a redirect aiohttp follows itself): an IP-literal
  host is judged as written (including the odd spellings ``inet_aton`` accepts, which aiohttp
  would otherwise hand to the resolver), and a name goes through ``GuardedResolver``.
* ``GuardedResolver`` resolves a name once, judges *every* answer, and returns only checked
  answers: aiohttp connects to exactly those addresses while ``Host`` and TLS SNI keep the name,
  so DNS rebinding cannot swap the address between check and connect. One refused answer refuses
  the name (a name that answers a public address and 127.0.0.1 is an attack, not a fallback).

Through an egress proxy the proxy connects, not us: the target name is still resolved here and
every answer judged (fail closed if it does not resolve), but the proxy resolves it again. The
egress proxy should refuse private destinations too; this guard cannot pin its connection.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from .addresses import normalise_host, parse_ip


class Checks(Protocol):
    """What the resolver and connector ask of the guard."""

    exempt: frozenset[tuple[str, int]]

    def check_url(self, url: yarl.URL) -> None: ...

    def check_answers(self, host: str, port: int, addresses: Sequence[str]) -> None: ...

__all__ = ["GuardedConnector", "GuardedResolver", "system_resolver"]


def system_resolver() -> AbstractResolver:
    """The resolver answers come from. Never aiodns: it may bypass /etc/hosts and nsswitch.
    Tests replace this function with a fake that never leaves the process."""
    return aiohttp.ThreadedResolver()


class GuardedResolver(AbstractResolver):
    """Resolves once and returns only answers the policy accepts; refuses the name if any
    answer is refused. The configured proxy's own address is not judged (it is the platform's
    egress, named in the config)."""

    def __init__(self, guard: Checks, inner: AbstractResolver | None = None):
        self.guard = guard
        self.inner = inner or system_resolver()

    async def answers(self, host: str, port: int,
                      family: socket.AddressFamily = socket.AF_UNSPEC) -> list[ResolveResult]:
        try:
            return await self.inner.resolve(host, port, family=family)
        except OSError as err:
            raise OSError(err.errno, f"could not resolve {host!r}: {err}") from err

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self.answers(host, port, family)
        if (normalise_host(host), port) not in self.guard.exempt:
            self.guard.check_answers(host, port, [a["host"] for a in answers])
        return answers

    async def close(self) -> None:
        await self.inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """Checks every connection before it is made (see the module docstring)."""

    def __init__(self, guard: Checks, resolver: GuardedResolver, **kwargs: Any):
        super().__init__(resolver=resolver, **kwargs)
        self.guard = guard
        self.guarded_resolver = resolver

    async def connect(self, req: aiohttp.ClientRequest, traces: list[aiohttp.tracing.Trace],
                      timeout: aiohttp.ClientTimeout) -> aiohttp.connector.Connection:
        url = req.url
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        self.guard.check_url(url)
        through_proxy = req.proxy is not None
        if parse_ip(host) is None and (
                through_proxy or (normalise_host(host), port) in self.guard.exempt):
            # Through a proxy, the proxy connects: judge the name by our own answers (it
            # resolves again; see the module docstring). A target named like the proxy is
            # judged too: the resolver only lets the proxy itself through unjudged.
            answers = await self.guarded_resolver.answers(host, port)
            self.guard.check_answers(host, port, [a["host"] for a in answers])
        return await super().connect(req, traces, timeout)
