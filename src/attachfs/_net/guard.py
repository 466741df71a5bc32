"""The network guard for plain http(s) reads (SSRF): requests, redirects and timeouts.

A plain http(s) URL is submitted by a customer: it may point at the cloud metadata service, at
an internal host, or redirect there. This module carries out the platform's ``[platform.http]``
settings (``policy.Policy`` decides, ``addresses`` classifies, ``resolver`` checks every
connection); it decides nothing about tenants.

How a read is guarded, from the outside in:

* ``Guard.open`` follows redirects by hand: every hop is checked (scheme, port, literal address),
  at most ``max_redirects`` hops, never from https back to http, and headers that carry
  credentials (``Authorization``, ``Cookie``, ``Proxy-Authorization``) are dropped when a hop
  leaves the origin they were sent to.
* Every connection of a guarded session goes through ``resolver.GuardedConnector``.
* A trace on the session refuses, before the next connection, any redirect aiohttp follows by
  itself that goes past the limit or from https to http.
* Timeouts are raised as ``ReadTimeout`` naming the phase (connect, response, body, deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import aiohttp
import yarl

from .._config import Config
from .._errors import AccessRefused, ReadTimeout
from .._limits import Limits
from .._redact import redact
from .._uri import host_problem
from .addresses import IP, Refusal, normalise_host, parse_ip
from .policy import SCHEMES, Policy
from .resolver import GuardedConnector, GuardedResolver

__all__ = ["Guard", "Reply", "literal_refusal", "refusal_in"]

REDIRECTS = (301, 302, 303, 307, 308)
CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")


def literal_refusal(config: Config | None, url: str) -> AccessRefused | None:
    """The refusal a read of ``url`` meets before any request, if its host is an IP literal (in
    any spelling) the config does not open, or its scheme is not http(s); for ``explain()``.
    A host name is judged only once resolved, at read time."""
    try:
        Guard(policy=Policy.from_config(config)).check_url(yarl.URL(url, encoded=True))
    except AccessRefused as err:
        return err
    return None


def refusal_in(err: BaseException | None) -> AccessRefused | None:
    """The guard's refusal behind ``err``: aiohttp wraps what its connector and resolver raise
    (``ClientConnectorDNSError``, ``ClientOSError``), fsspec wraps it in ``FileNotFoundError``."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, AccessRefused):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


# --------------------------------------------------------------------------- the guard

@dataclass
class Guard:
    """The guard and egress settings for one config (None: ambient mode)."""

    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)
    proxy: str | None = None
    trust_env: bool = False
    exempt: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def from_config(cls, config: Config | None, *, proxy: str | None = None) -> Guard:
        """The guard of ``config``; ``proxy`` is the Route's (the access rules decide it)."""
        http = config.platform.http if config is not None else None
        guard = cls(policy=Policy.from_config(config), limits=Limits.from_config(config),
                    proxy=proxy, trust_env=bool(http and http.trust_env))
        guard.exempt = frozenset(guard._proxy_addresses())
        return guard

    def _proxy_addresses(self) -> Iterable[tuple[str, int]]:
        proxies = [self.proxy] if self.proxy else []
        if self.trust_env:
            from aiohttp.helpers import proxies_from_env

            proxies += [str(info.proxy) for info in proxies_from_env().values()]
        for proxy in proxies:
            url = yarl.URL(proxy)
            if url.host:
                yield normalise_host(url.host), url.port or 80

    # -- checks ------------------------------------------------------------------------------

    def refuse(self, refusal: Refusal, host: str, url: str | yarl.URL | None = None
               ) -> AccessRefused:
        where = f"read of {redact(url)} refused" if url is not None else "connection refused"
        return AccessRefused(
            f"{where} by the network guard ({refusal.rule}): {refusal.reason}; plain http(s) "
            f"reads only reach public addresses on allowed ports. "
            f"{self.policy.how_to_open(refusal, host)}",
            uri=redact(url) if url is not None else None, rule=f"ssrf:{refusal.rule}")

    def check_url(self, url: yarl.URL) -> None:
        """Scheme, and for an IP-literal host (in any spelling) the address and port. A name
        is judged when it is resolved."""
        if url.scheme not in SCHEMES:
            raise self.refuse(Refusal("scheme", f"scheme {url.scheme!r} is not http or https"),
                              url.raw_host or "", url)
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        ip = parse_ip(host)
        if ip is not None:
            refusal = self.policy.decide(host, port, [ip])
            if refusal is not None:
                if refusal.address is None and refusal.rule != "port":
                    refusal = replace(refusal, address=str(ip))
                raise self.refuse(_spelled(refusal, host, ip), host, url)
        elif not host:
            raise self.refuse(Refusal("scheme", "the URL has no host"), "", url)
        else:
            # Parsing validated the URL a read starts from; a redirect's Location was not, and
            # a malformed name is never handed to a resolver.
            problem = host_problem(host)
            if problem is not None:
                raise self.refuse(Refusal("malformed-host", f"the host {problem}"), host, url)
            named = self.policy.refuse_name(host)
            if named is not None:
                raise self.refuse(named, host, url)

    def check_answers(self, host: str, port: int, addresses: Sequence[str]) -> None:
        refusal = self.policy.decide(host, port, addresses)
        if refusal is not None:
            if refusal.rule not in ("port", "unresolved"):
                listed = ", ".join(addresses)
                refusal = replace(refusal, reason=f"{host} resolves to {listed}: {refusal.reason}")
            raise self.refuse(refusal, host)

    # -- sessions ----------------------------------------------------------------------------

    async def session(self, loop: Any = None, **kwargs: Any) -> aiohttp.ClientSession:
        """An aiohttp session every connection of which is guarded; fsspec's ``get_client``.

        Must be called on the loop that will use it. ``kwargs`` from fsspec are ignored except
        ``headers``: the guard decides proxy, environment trust and timeouts."""
        connector = GuardedConnector(self, GuardedResolver(self), ttl_dns_cache=10,
                                     enable_cleanup_closed=False)
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._on_start)
        trace.on_request_redirect.append(self._on_redirect)
        limits = self.limits
        return aiohttp.ClientSession(
            connector=connector, trace_configs=[trace], proxy=self.proxy,
            trust_env=self.trust_env, headers=kwargs.get("headers"),
            timeout=aiohttp.ClientTimeout(total=limits.total_timeout,
                                          sock_connect=limits.connect_timeout,
                                          sock_read=limits.read_timeout))

    async def _on_start(self, session: aiohttp.ClientSession, ctx: SimpleNamespace,
                        params: aiohttp.TraceRequestStartParams) -> None:
        ctx.hops = 0
        ctx.secure = params.url.scheme == "https"
        self.check_url(params.url)

    async def _on_redirect(self, session: aiohttp.ClientSession, ctx: SimpleNamespace,
                           params: aiohttp.TraceRequestRedirectParams) -> None:
        # aiohttp follows this redirect by itself (fsspec's requests): check the next hop now,
        # before it connects. Credentials are dropped by aiohttp when the origin changes.
        location = params.response.headers.get("Location")
        if location is None:
            return
        ctx.hops = getattr(ctx, "hops", 0) + 1
        nxt = _next_hop(params.response.url, location, params.url)
        self.check_hop(nxt, ctx.hops, getattr(ctx, "secure", False), params.url)
        ctx.secure = getattr(ctx, "secure", False) or nxt.scheme == "https"

    def check_hop(self, nxt: yarl.URL, hops: int, secure: bool, first: yarl.URL) -> None:
        if hops > self.policy.max_redirects:
            raise self.refuse(Refusal("redirect-limit", f"more than {self.policy.max_redirects} "
                                      f"redirects (the next one to {redact(nxt)})"),
                              nxt.raw_host or "", first)
        if secure and nxt.scheme == "http":
            raise self.refuse(Refusal("redirect-downgrade", f"a redirect from https to "
                                      f"{redact(nxt)} would send the request in clear"),
                              nxt.raw_host or "", first)
        self.check_url(nxt)

    # -- one guarded request -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def open(self, session: aiohttp.ClientSession, url: yarl.URL, *, method: str = "GET",
                   headers: dict[str, str] | None = None, deadline: float | None = None,
                   ) -> AsyncIterator[Reply]:
        """A ``Reply`` to ``method url``, redirects followed by hand and each hop checked.

        ``deadline`` is a ``time.monotonic()`` instant the whole exchange must end by. Timeouts
        are raised as ``ReadTimeout`` naming the phase; a refusal as ``AccessRefused``.
        """
        reply = await self._send(session, url, method, dict(headers or {}), deadline)
        try:
            yield reply
        finally:
            reply.resp.release()

    async def _send(self, session: aiohttp.ClientSession, url: yarl.URL, method: str, sent: dict[str, str],
                    deadline: float | None) -> Reply:
        current, secure, hops = url, url.scheme == "https", 0
        origin = _origin(url)
        state = SimpleNamespace(phase="connect", url=url)
        try:
            while True:
                self.check_url(current)
                state.url = current
                # Bytes as stored: a Content-Encoding is never undone (offsets and sizes
                # are those of the stored bytes, as on the cloud readers' pool).
                resp = await session.request(method, current, headers=sent,
                                             allow_redirects=False, auto_decompress=False,
                                             timeout=self._timeout(deadline))
                location = resp.headers.get("Location")
                if resp.status not in REDIRECTS or location is None:
                    state.phase = "body"
                    return Reply(resp, current, hops, state)
                resp.release()
                hops += 1
                nxt = _next_hop(current, location, url)
                self.check_hop(nxt, hops, secure, url)
                if _origin(nxt) != origin:
                    # Credentials were for the origin they were given to, never the next one.
                    sent = {k: v for k, v in sent.items()
                            if k.title() not in CREDENTIAL_HEADERS}
                    origin = _origin(nxt)
                if resp.status == 303 and method != "HEAD":
                    method = "GET"
                current, secure = nxt, secure or nxt.scheme == "https"
        except AccessRefused:
            raise
        except Exception as err:
            refusal = refusal_in(err)
            if refusal is not None:
                raise self._in_context(refusal, url) from None
            timed_out = self.timeout_error(err, state, deadline)
            if timed_out is not None:
                raise timed_out from err
            raise

    def _in_context(self, refusal: AccessRefused, url: yarl.URL) -> AccessRefused:
        if refusal.uri is not None:
            return refusal
        message = str(refusal).replace("connection refused", f"read of {redact(url)} refused", 1)
        return AccessRefused(message, uri=redact(url), rule=refusal.rule)

    def _timeout(self, deadline: float | None) -> aiohttp.ClientTimeout:
        limits = self.limits
        total = None
        if deadline is not None:
            total = max(deadline - time.monotonic(), 0.001)
        return aiohttp.ClientTimeout(total=total, sock_connect=limits.connect_timeout,
                                     sock_read=limits.read_timeout)

    def timeout_error(self, err: BaseException, state: SimpleNamespace,
                      deadline: float | None) -> ReadTimeout | None:
        """``err`` as a ``ReadTimeout`` naming its phase, or None if it is no timeout."""
        if isinstance(err, ReadTimeout):
            return err
        if not isinstance(err, (asyncio.TimeoutError, TimeoutError)):
            return None
        limits = self.limits
        where = redact(state.url)
        if isinstance(err, aiohttp.ConnectionTimeoutError) or (
                isinstance(err, aiohttp.ServerTimeoutError) and state.phase == "connect"
                and "onnect" in str(err)):
            return ReadTimeout.connecting(where, limits.connect_timeout)
        if isinstance(err, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError)):
            phase = "response" if state.phase == "connect" else "body"
            return ReadTimeout.stalled(where, limits.read_timeout, phase)
        if deadline is not None and time.monotonic() >= deadline - 0.01:
            return ReadTimeout.past_deadline(where, limits.total_timeout, state.phase)
        return None


@dataclass
class Reply:
    """A response of ``Guard.open``: the final hop's ``resp`` and ``url``."""

    resp: aiohttp.ClientResponse
    url: yarl.URL
    hops: int
    state: SimpleNamespace


def _spelled(refusal: Refusal, host: str, ip: IP) -> Refusal:
    """Name the spelling when the URL wrote an address another way (``0x7f000001``)."""
    written = normalise_host(host)
    if written == str(ip) or refusal.rule == "port" or ip.version == 6:
        return refusal
    return replace(refusal, reason=f"host {host!r} is the address {ip}: {refusal.reason}")


def _next_hop(current: yarl.URL, location: str, first: yarl.URL) -> yarl.URL:
    """Where a redirect's ``Location`` leads; a Location that is no URL (``http://[::1``) is the
    server's fault, an ``OSError`` naming the read (redacted), not a ``ValueError`` of yarl."""
    try:
        nxt = current.join(yarl.URL(location, encoded=True))
        nxt.port  # noqa: B018 -- a bad port raises here, not at connect time
    except (ValueError, UnicodeError, TypeError):
        raise OSError(f"read of {redact(first)}: the server redirected to a Location that is "
                      f"not a valid URL ({redact(location)})") from None
    return nxt


def _origin(url: yarl.URL) -> tuple[str, str, int | None]:
    return url.scheme, normalise_host(url.raw_host or ""), url.port


