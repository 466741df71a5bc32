"""The network guard for plain http(s) reads (SSRF), and the egress settings of every backend.

A plain http(s) URL is submitted by a customer: it may point at the cloud metadata service, at
an internal host, or redirect there (DESIGN.md, "SSRF"). This module carries out the platform's
``[platform.http]`` settings; it decides nothing about tenants.

How a read is guarded, from the outside in:

* ``Guard.open`` follows redirects by hand: every hop is checked (scheme, port, literal address),
  at most ``max_redirects`` hops, never from https back to http, and headers that carry
  credentials (``Authorization``, ``Cookie``, ``Proxy-Authorization``) are dropped when a hop
  leaves the origin they were sent to.
* ``GuardedConnector`` checks every connection aiohttp opens, whoever asked for it (our reads,
  fsspec's HTTPFileSystem for ``info``/``ls``, a redirect aiohttp follows itself): an IP-literal
  host is judged as written (including the odd spellings ``inet_aton`` accepts, which aiohttp
  would otherwise hand to the resolver), and a name goes through ``GuardedResolver``.
* ``GuardedResolver`` resolves a name once, judges *every* answer, and returns only checked
  answers: aiohttp connects to exactly those addresses while ``Host`` and TLS SNI keep the name,
  so DNS rebinding cannot swap the address between check and connect. One refused answer refuses
  the name (a name that answers a public address and 127.0.0.1 is an attack, not a fallback).
* A trace on the session refuses, before the next connection, any redirect aiohttp follows by
  itself that goes past the limit or from https to http.

The decision itself is pure (``classify``, ``parse_ip``, ``Policy.decide``) and is an explicit
table, not ``ipaddress.is_private``/``is_global`` alone, whose answers changed across Python
releases (``64:ff9b:1::/48`` is "global" in some). "Must be global" is the last line, after the
table. An address that embeds an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4,
Teredo) is judged by the embedded address too.

Through an egress proxy the proxy connects, not us: the target name is still resolved here and
every answer judged (fail closed if it does not resolve), but the proxy resolves it again. The
egress proxy should refuse private destinations too; this guard cannot pin its connection.

Decisions where DESIGN.md is open:

* ``allow_private_networks`` opens loopback, private (RFC 1918, ULA), link-local and shared
  (CGNAT) addresses, on any port. It never opens the cloud metadata addresses, unspecified,
  multicast, reserved, documentation or benchmarking ranges: only ``allow_hosts`` naming one
  exactly does.
* ``allow_hosts`` entries are host names (``*.example.com`` / ``.example.com`` for subdomains) or
  addresses/networks. A matching destination is open on any port.
* ``allow_ports`` (default 80, 443) applies to every destination not opened by the two above.
* Ambient mode (no config) guards like ``allow_private_networks = true`` on any port: notebooks
  reading ``http://localhost:8000`` keep working, the metadata service stays refused.
* Limits have no config keys yet: ``Limits`` defaults apply (``DEFAULT_LIMITS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver

from .errors import AccessRefused, _rebuild

__all__ = [
    "DEFAULT_LIMITS", "Guard", "GuardedConnector", "GuardedResolver", "Limits", "Policy",
    "ReadTimeout", "Refusal", "TooLarge", "classify", "literal_refusal", "parse_ip", "redact",
]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = ("http", "https")
REDIRECTS = (301, 302, 303, 307, 308)
CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")


# --------------------------------------------------------------------------- the decision (pure)

@dataclass(frozen=True)
class Refusal:
    """Why a destination is refused: ``rule`` is stable (``AccessRefused.rule``), ``reason``
    says it in words, naming the address."""

    rule: str
    reason: str
    address: str | None = None


def _nets(*specs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(s) for s in specs)


# (rule, what it is, networks). Order matters: the first match names the refusal. Built from the
# IANA IPv4/IPv6 special-purpose registries, refusing every entry that is not globally reachable
# (and a few that are, but are never an attachment server: 6to4 relays, AS112-free anycast).
_CLOUD_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # AWS, GCP, Azure, OpenStack ... instance metadata
    "169.254.170.2",     # AWS ECS task metadata
    "169.254.169.123",   # AWS time sync
    "fd00:ec2::254",     # AWS instance metadata over IPv6
    "fd00:ec2::123",
))
_TABLE_V4 = (
    ("unspecified", "an unspecified / 'this network' address", _nets("0.0.0.0/8")),
    ("loopback", "a loopback address", _nets("127.0.0.0/8")),
    ("private", "a private-network address (RFC 1918)",
     _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("shared", "a shared/CGNAT address (RFC 6598)", _nets("100.64.0.0/10")),
    ("link-local", "a link-local address", _nets("169.254.0.0/16")),
    ("multicast", "a multicast address", _nets("224.0.0.0/4")),
    ("reserved", "a reserved or broadcast address", _nets("240.0.0.0/4")),
    ("reserved", "an IETF protocol-assignment address", _nets("192.0.0.0/24")),
    ("reserved", "a 6to4 relay anycast address", _nets("192.88.99.0/24")),
    ("documentation", "a documentation address",
     _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")),
    ("benchmarking", "a benchmarking address", _nets("198.18.0.0/15")),
)
_TABLE_V6 = (
    ("unspecified", "the unspecified address", _nets("::/128")),
    ("loopback", "the loopback address", _nets("::1/128")),
    ("private", "a unique-local address (fc00::/7)", _nets("fc00::/7")),
    ("private", "a site-local address (deprecated fec0::/10)", _nets("fec0::/10")),
    ("link-local", "a link-local address", _nets("fe80::/10")),
    ("multicast", "a multicast address", _nets("ff00::/8")),
    ("private", "a local-use NAT64 address (64:ff9b:1::/48)", _nets("64:ff9b:1::/48")),
    ("reserved", "a discard-only address", _nets("100::/64")),
    ("documentation", "a documentation address", _nets("2001:db8::/32", "3fff::/20")),
    ("benchmarking", "a benchmarking address", _nets("2001:2::/48")),
    ("reserved", "an ORCHID / IETF protocol-assignment address", _nets("2001::/23")),
    ("reserved", "an SRv6 SID address", _nets("5f00::/16")),
)
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")

#: Refusals ``allow_private_networks`` opens (the others only ``allow_hosts`` opens).
OPENED_BY_PRIVATE = frozenset({"loopback", "private", "shared", "link-local"})


def _embedded(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """IPv4 addresses an IPv6 address stands for, with the form that embeds them."""
    n = int(ip)
    out: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip.ipv4_mapped is not None:
        out.append(("IPv4-mapped", ip.ipv4_mapped))
    elif n >> 32 == 0 and n > 1:  # ::a.b.c.d, deprecated IPv4-compatible (not :: and ::1)
        out.append(("IPv4-compatible", ipaddress.IPv4Address(n & 0xFFFFFFFF)))
    elif n >> 32 == 0xFFFF0000:  # ::ffff:0:a.b.c.d, IPv4-translated (SIIT)
        out.append(("IPv4-translated", ipaddress.IPv4Address(n & 0xFFFFFFFF)))
    elif n >> 32 == 0x0064FF9B << 64:  # 64:ff9b::/96, well-known NAT64 prefix
        out.append(("NAT64", ipaddress.IPv4Address(n & 0xFFFFFFFF)))
    if ip.sixtofour is not None:
        out.append(("6to4", ip.sixtofour))
    if ip.teredo is not None:
        server, client = ip.teredo
        out.append(("Teredo server", server))
        out.append(("Teredo client", client))
    return out


def classify(ip: IP) -> Refusal | None:
    """Refusal for a destination address on its own, or None if it is public.

    The explicit table first, then the embedded IPv4 address of IPv6 forms that carry one, then
    "must be global" (IPv6: inside 2000::/3; both: Python's ``is_global``) as the last line.
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    shown = str(ip)
    if ip in _CLOUD_METADATA:
        return Refusal("cloud-metadata", f"{shown} is a cloud metadata service address", shown)
    if isinstance(ip, ipaddress.IPv6Address):
        for form, inner in _embedded(ip):
            refusal = classify(inner)
            if refusal is not None:
                standing_for = refusal.reason.replace(" is ", ", ", 1)
                return Refusal(refusal.rule, f"{shown} is an {form} address standing for "
                                             f"{standing_for}", shown)
        if _embedded(ip):
            return None  # a public IPv4 address in IPv6 form: judged by that address
    table = _TABLE_V4 if isinstance(ip, ipaddress.IPv4Address) else _TABLE_V6
    for rule, what, nets in table:
        for net in nets:
            if ip in net:
                return Refusal(rule, f"{shown} is {what} ({net})", shown)
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST_V6:
        return Refusal("reserved", f"{shown} is outside global unicast space (2000::/3)", shown)
    if not ip.is_global:
        return Refusal("not-global", f"{shown} is not a globally reachable address", shown)
    return None


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """IPv4 address of ``text`` spelled as ``inet_aton`` reads it (``2130706433``,
    ``0x7f000001``, ``0177.0.0.1``, ``127.1``), else None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                value = int(part[2:] or "0", 16)
            elif len(part) > 1 and part.startswith("0"):
                value = int(part, 8)
            else:
                value = int(part, 10)
        except ValueError:
            return None
        if not part.isascii() or value < 0:
            return None
        values.append(value)
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    n = 0
    for v in head:
        n = n << 8 | v
    return ipaddress.IPv4Address(n << (8 * (4 - len(head))) | last)


def normalise_host(host: str) -> str:
    """A URL host as resolvers and connectors will see it: percent-decoded, NFKC (``①`` is
    ``1``), lower case, brackets and one trailing dot removed."""
    host = unicodedata.normalize("NFKC", unquote(host)).strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    return host


def parse_ip(host: str) -> IP | None:
    """The address ``host`` (as written in a URL) denotes if it is an IP literal in any
    spelling a resolver would accept, else None (a name)."""
    host = normalise_host(host)
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    return _inet_aton(host)


@dataclass(frozen=True)
class Policy:
    """What ``[platform.http]`` opens. ``any_port``: ambient mode, every port is open."""

    allow_private_networks: bool = False
    allow_hosts: tuple[str, ...] = ()
    allow_ports: tuple[int, ...] = (80, 443)
    max_redirects: int = 5
    any_port: bool = False
    source: str | None = None  # the config file, named in refusals

    @classmethod
    def from_config(cls, config) -> Policy:
        if config is None:
            return cls(allow_private_networks=True, any_port=True, max_redirects=10)
        http = config.platform.http
        return cls(allow_private_networks=http.allow_private_networks,
                   allow_hosts=tuple(http.allow_hosts), allow_ports=tuple(http.allow_ports),
                   max_redirects=http.max_redirects, source=config.source)

    def _host_allowed(self, host: str) -> bool:
        for entry in self.allow_hosts:
            entry = entry.lower().rstrip(".")
            if entry.startswith("*."):
                entry = entry[1:]
            if entry.startswith("."):
                if host.endswith(entry) and host != entry[1:]:
                    return True
            elif host == entry:
                return True
        return False

    def _address_allowed(self, ip: IP) -> bool:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # the same destination as the IPv4 address
        for entry in self.allow_hosts:
            try:
                net = ipaddress.ip_network(entry.strip("[]"), strict=False)
            except ValueError:
                continue
            if ip.version == net.version and ip in net:
                return True
        return False

    def decide(self, host: str, port: int, addresses: Iterable[IP | str]) -> Refusal | None:
        """Whether a connection to ``host``:``port`` at ``addresses`` (every answer the
        resolver gave, or the literal itself) is refused. Pure."""
        host = normalise_host(host)
        if self._host_allowed(host):
            return None
        addresses = [a if isinstance(a, ipaddress._BaseAddress) else
                     ipaddress.ip_address(str(a).split("%", 1)[0]) for a in addresses]
        if not addresses:
            return Refusal("unresolved", f"{host} has no address to check")
        opened = True
        for ip in addresses:
            if self._address_allowed(ip):
                continue
            refusal = classify(ip)
            if refusal is None:
                opened = False  # public: the port rule applies
                continue
            if self.allow_private_networks and refusal.rule in OPENED_BY_PRIVATE:
                continue
            return refusal
        if not (opened or self.any_port or port in self.allow_ports):
            ports = ", ".join(map(str, self.allow_ports))
            return Refusal("port", f"port {port} is not an allowed port ({ports})")
        return None

    def how_to_open(self, refusal: Refusal, host: str) -> str:
        where = self.source or "the config"
        if refusal.rule == "port":
            return f"To open it, add the port to platform.http.allow_ports in {where}"
        if refusal.rule in OPENED_BY_PRIVATE:
            return (f"To read it deliberately, set platform.http.allow_private_networks = true "
                    f"or add \"{host}\" to platform.http.allow_hosts in {where}")
        if refusal.rule in ("scheme", "redirect-limit", "redirect-downgrade"):
            return "Read the final URL directly, over https"
        return f"Only an exact platform.http.allow_hosts entry in {where} opens it"


def literal_refusal(config, url: str) -> AccessRefused | None:
    """The refusal a read of ``url`` meets before any request, if its host is an IP literal (in
    any spelling) the config does not open, or its scheme is not http(s); for ``explain()``.
    A host name is judged only once resolved, at read time."""
    try:
        Guard(policy=Policy.from_config(config)).check_url(yarl.URL(url, encoded=True))
    except AccessRefused as err:
        return err
    return None


def redact(url: str | yarl.URL) -> str:
    """A URL fit for a message: no user info, no query (a signed URL's query is its key)."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rpartition("@")[2]
    query = "<redacted>" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# --------------------------------------------------------------------------- errors

class ReadTimeout(OSError):
    """A read took too long in one ``phase``: ``connect``, ``response`` (waiting for the
    headers), ``body`` (no byte for ``seconds``, or slower than the minimum rate) or
    ``deadline`` (the whole read, retries included).

    An ``OSError`` with ``errno.ETIMEDOUT``, deliberately not a ``TimeoutError``: fsspec's
    synchronous wrapper replaces every ``TimeoutError`` with a message-less ``FSTimeoutError``,
    and this message is the one that says what timed out."""

    def __init__(self, url: str | None, detail: str, *, phase: str,
                 seconds: float | None = None):
        import errno

        super().__init__(errno.ETIMEDOUT, f"timed out reading {url}: {detail}")
        self.url = url
        self.detail = detail
        self.phase = phase
        self.seconds = seconds

    def __str__(self) -> str:
        return f"timed out reading {self.url}: {self.detail}"

    def __reduce__(self):
        return _rebuild_timeout, (type(self), self.url, self.detail, self.phase, self.seconds)


def _rebuild_timeout(cls, url, detail, phase, seconds):
    return cls(url, detail, phase=phase, seconds=seconds)


class TooLarge(OSError):
    """The object is larger than the per-object size cap; its body was not read."""

    def __init__(self, message: str, *, url: str | None = None, size: int | None = None,
                 limit: int | None = None):
        super().__init__(message)
        self.url = url
        self.size = size
        self.limit = limit

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return _rebuild, (type(self), self.args, self.__dict__)


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


# --------------------------------------------------------------------------- limits

@dataclass(frozen=True)
class Limits:
    """Timeouts (seconds), the size cap and the retry budget of one plain http(s) read."""

    connect_timeout: float = 10.0       # TCP + TLS handshake
    read_timeout: float = 30.0          # no byte at all for this long (headers or body)
    min_rate: float = 1024.0            # bytes/s the body must average over read_timeout
    total_timeout: float = 600.0        # the whole read, redirects and retries included
    max_object_bytes: int = 5 * 2**30   # per object, from Content-Length/Content-Range
    max_attempts: int = 5
    backoff_base: float = 0.25
    backoff_cap: float = 10.0

    @classmethod
    def from_config(cls, config) -> Limits:
        # The config has no keys for these yet; read them if a later config has them.
        http = config.platform.http if config is not None else None
        base = DEFAULT_LIMITS
        values = {f: getattr(http, f) for f in base.__dataclass_fields__
                  if getattr(http, f, None) is not None}
        return replace(base, **values) if values else base


DEFAULT_LIMITS = Limits()


# --------------------------------------------------------------------------- resolve + connect

def system_resolver() -> AbstractResolver:
    """The resolver answers come from. Never aiodns: it may bypass /etc/hosts and nsswitch.
    Tests replace this function with a fake that never leaves the process."""
    return aiohttp.ThreadedResolver()


class GuardedResolver(AbstractResolver):
    """Resolves once and returns only answers the policy accepts; refuses the name if any
    answer is refused. The configured proxy's own address is not judged (it is the platform's
    egress, named in the config)."""

    def __init__(self, guard: Guard, inner: AbstractResolver | None = None):
        self.guard = guard
        self.inner = inner or system_resolver()

    async def answers(self, host: str, port: int, family=socket.AF_UNSPEC) -> list[dict]:
        try:
            return await self.inner.resolve(host, port, family=family)
        except OSError as err:
            raise OSError(err.errno, f"could not resolve {host!r}: {err}") from err

    async def resolve(self, host: str, port: int = 0, family=socket.AF_INET) -> list[dict]:
        answers = await self.answers(host, port, family)
        if (normalise_host(host), port) not in self.guard.exempt:
            self.guard.check_answers(host, port, [a["host"] for a in answers])
        return answers

    async def close(self) -> None:
        await self.inner.close()


class GuardedConnector(aiohttp.TCPConnector):
    """Checks every connection before it is made (see the module docstring)."""

    def __init__(self, guard: Guard, resolver: GuardedResolver, **kwargs: Any):
        super().__init__(resolver=resolver, **kwargs)
        self.guard = guard
        self.guarded_resolver = resolver

    async def connect(self, req, traces, timeout):
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


# --------------------------------------------------------------------------- the guard

@dataclass
class Guard:
    """The guard and egress settings for one config (None: ambient mode)."""

    policy: Policy = field(default_factory=Policy)
    limits: Limits = DEFAULT_LIMITS
    proxy: str | None = None
    trust_env: bool = False
    exempt: frozenset[tuple[str, int]] = frozenset()

    @classmethod
    def from_config(cls, config, *, proxy: str | None = None) -> Guard:
        """The guard of ``config``; ``proxy`` is the Route's (rules.py decides it)."""
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

    def check_answers(self, host: str, port: int, addresses: Sequence[str]) -> None:
        refusal = self.policy.decide(host, port, addresses)
        if refusal is not None:
            if refusal.rule not in ("port", "unresolved"):
                listed = ", ".join(addresses)
                refusal = replace(refusal, reason=f"{host} resolves to {listed}: {refusal.reason}")
            raise self.refuse(refusal, host)

    # -- sessions ----------------------------------------------------------------------------

    async def session(self, loop=None, **kwargs: Any) -> aiohttp.ClientSession:
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

    async def _on_start(self, session, ctx: SimpleNamespace, params) -> None:
        ctx.hops = 0
        ctx.secure = params.url.scheme == "https"
        self.check_url(params.url)

    async def _on_redirect(self, session, ctx: SimpleNamespace, params) -> None:
        # aiohttp follows this redirect by itself (fsspec's requests): check the next hop now,
        # before it connects. Credentials are dropped by aiohttp when the origin changes.
        location = params.response.headers.get("Location")
        if location is None:
            return
        ctx.hops = getattr(ctx, "hops", 0) + 1
        nxt = params.response.url.join(yarl.URL(location, encoded=True))
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
                   headers: dict[str, str] | None = None, deadline: float | None = None):
        """A ``Reply`` to ``method url``, redirects followed by hand and each hop checked.

        ``deadline`` is a ``time.monotonic()`` instant the whole exchange must end by. Timeouts
        are raised as ``ReadTimeout`` naming the phase; a refusal as ``AccessRefused``.
        """
        reply = await self._send(session, url, method, dict(headers or {}), deadline)
        try:
            yield reply
        finally:
            reply.resp.release()

    async def _send(self, session, url: yarl.URL, method: str, sent: dict[str, str],
                    deadline: float | None) -> Reply:
        current, secure, hops = url, url.scheme == "https", 0
        origin = _origin(url)
        state = SimpleNamespace(phase="connect", url=url)
        try:
            while True:
                self.check_url(current)
                state.url = current
                resp = await session.request(method, current, headers=sent,
                                             allow_redirects=False,
                                             timeout=self._timeout(deadline))
                location = resp.headers.get("Location")
                if resp.status not in REDIRECTS or location is None:
                    state.phase = "body"
                    return Reply(resp, current, hops, state)
                resp.release()
                hops += 1
                nxt = current.join(yarl.URL(location, encoded=True))
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
            return ReadTimeout(where, f"no connection within {limits.connect_timeout:g} s "
                                      "(connect timeout)", phase="connect",
                               seconds=limits.connect_timeout)
        if isinstance(err, aiohttp.SocketTimeoutError) or isinstance(
                err, aiohttp.ServerTimeoutError):
            phase = "response" if state.phase == "connect" else "body"
            what = "the response headers" if phase == "response" else "more of the body"
            return ReadTimeout(where, f"waited {limits.read_timeout:g} s for {what} "
                                      "(read timeout)", phase=phase, seconds=limits.read_timeout)
        if deadline is not None and time.monotonic() >= deadline - 0.01:
            return self.deadline_error(state.url, state.phase)
        return None

    def deadline_error(self, url, phase: str, detail: str = "") -> ReadTimeout:
        where = redact(url)
        doing = {"connect": "connecting", "body": "reading the body"}.get(phase, phase)
        return ReadTimeout(where, f"the read took longer than its "
                                  f"{self.limits.total_timeout:g} s deadline (while {doing}"
                                  f"{detail})", phase="deadline",
                           seconds=self.limits.total_timeout)

    async def read_body(self, reply: Reply, sink: bytearray, *, limit: int | None = None,
                        deadline: float | None = None, skip: int = 0) -> int:
        """Append the body (after ``skip`` bytes, at most ``limit`` bytes) to ``sink``.

        Returns the number of body bytes received (skipped ones included). A stall longer than
        the read timeout, a drip slower than ``min_rate`` or the deadline raise ``ReadTimeout``;
        a connection that breaks raises aiohttp's error (the caller may resume)."""
        limits, resp, state = self.limits, reply.resp, reply.state
        received = 0
        window_start, window_bytes = time.monotonic(), 0
        try:
            while True:
                chunk = await resp.content.readany()
                if not chunk:
                    return received
                received += len(chunk)
                window_bytes += len(chunk)
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                if limit is not None:
                    chunk = chunk[:max(limit, 0)]
                    limit -= len(chunk)
                sink += chunk
                if limit is not None and limit <= 0 and not skip:
                    return received
                now = time.monotonic()
                if now - window_start >= limits.read_timeout:
                    if window_bytes < limits.min_rate * (now - window_start):
                        rate = window_bytes / (now - window_start)
                        raise ReadTimeout(
                            redact(state.url), f"the body arrived at {rate:.0f} B/s, under the "
                            f"minimum of {limits.min_rate:g} B/s (slow body)", phase="body",
                            seconds=limits.read_timeout)
                    window_start, window_bytes = now, 0
        except BaseException as err:
            timed_out = self.timeout_error(err, state, deadline)
            if timed_out is not None and timed_out is not err:
                raise timed_out from err
            raise


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


def _origin(url: yarl.URL) -> tuple[str, str, int | None]:
    return url.scheme, normalise_host(url.raw_host or ""), url.port


# --------------------------------------------------------------------------- fsspec + egress

def _http_filesystem_class():
    from fsspec.callbacks import DEFAULT_CALLBACK
    from fsspec.implementations.http import HTTPFileSystem
    from fsspec.utils import isfilelike

    class GuardedHTTPFileSystem(HTTPFileSystem):
        """fsspec's HTTPFileSystem over a guarded session; ``info``, ``cat`` and ``get`` go
        through the guarded, retrying read path, and a refusal surfaces as ``AccessRefused``
        (fsspec's own ``info`` turns every error into ``FileNotFoundError``)."""

        def __init__(self, guard: Guard, **kwargs: Any):
            self.guard = guard
            super().__init__(get_client=guard.session, **kwargs)

        async def _info(self, url, **kwargs):
            from . import retry

            session = await self.set_session()
            target = yarl.URL(url, encoded=True)
            limits = self.guard.limits
            deadline = time.monotonic() + limits.total_timeout

            async def probe(method: str, headers: dict[str, str]) -> dict[str, Any]:
                from .fetch import _http_transient  # the read path's idea of transient

                async def attempt(n: int) -> dict[str, Any]:
                    return await self._probe(session, target, method, headers, deadline)

                return await retry.run(attempt, what=f"reading the metadata of {redact(url)}",
                                       max_attempts=limits.max_attempts,
                                       base=limits.backoff_base, cap=limits.backoff_cap,
                                       deadline=deadline, classify=_http_transient)

            info = await probe("HEAD", {"Accept-Encoding": "identity"})
            if info.get("size") is None:
                # No HEAD, or no length in it: one byte of the body says the size.
                info.update(await probe("GET", {"Accept-Encoding": "identity",
                                                "Range": "bytes=0-0"}))
            return {"name": url, "size": None, **info, "type": "file"}

        async def _probe(self, session, url: yarl.URL, method: str, headers: dict[str, str],
                         deadline: float) -> dict[str, Any]:
            from .retry import Retry, retry_after, status_retryable

            async with self.guard.open(session, url, method=method, headers=headers,
                                       deadline=deadline) as reply:
                resp = reply.resp
                status = resp.status
                if status == 404:
                    raise FileNotFoundError(2, f"No such attachment: {redact(url)}",
                                            redact(url))
                if method == "HEAD" and status in (400, 401, 403, 405, 501):
                    # A signed URL is signed for GET: its HEAD is refused (S3, GCS answer 403).
                    # The one-byte GET that follows decides.
                    return {}
                if status in (401, 403):
                    raise PermissionError(f"HTTP {status} for {redact(url)}")
                if status_retryable(status):
                    raise Retry(f"HTTP {status}", status=status,
                                retry_after=retry_after(resp.headers.get("Retry-After")))
                if status >= 400:
                    raise OSError(f"HTTP {status} {resp.reason or ''} for {redact(url)}")
                info: dict[str, Any] = {"url": str(reply.url)}
                h = resp.headers
                encoded = h.get("Content-Encoding", "identity").lower() not in ("identity", "")
                content_range = h.get("Content-Range", "")
                if status == 206 and "/" in content_range:
                    total = content_range.rsplit("/", 1)[1]
                    info["size"] = int(total) if total.isdigit() else None
                elif "Content-Length" in h and not encoded and status == 200:
                    info["size"] = int(h["Content-Length"])
                if "Content-Type" in h:
                    info["mimetype"] = h["Content-Type"].partition(";")[0]
                for name in ("ETag", "Content-MD5", "Digest", "Last-Modified"):
                    if h.get(name):
                        info[name] = h[name]
                return info

        async def _exists(self, path, **kwargs):
            try:
                await self._info(path)
                return True
            except FileNotFoundError:
                return False

        async def _cat_file(self, url, start=None, end=None, **kwargs):
            from .fetch import http_part

            session = await self.set_session()
            start = start or 0
            if start < 0 or (end is not None and end < 0):
                size = (await self._info(url))["size"]
                start = max(size + start, 0) if start < 0 else start
                end = size + end if end is not None and end < 0 else end
            if end is not None and end <= start:
                return b""
            return (await http_part(self.guard, session, url, start, end, None)).data

        async def _get_file(self, rpath, lpath, chunk_size=16 * 2**20,
                            callback=DEFAULT_CALLBACK, **kwargs):
            # Part by part through the read path: each part retried and resumed, every part
            # pinned to the version of the first (a replaced object fails, never mixes).
            from .fetch import http_part

            session = await self.set_session()
            out = lpath if isfilelike(lpath) else open(lpath, "wb")  # noqa: ASYNC230
            try:
                pos, version, size = 0, None, None
                while size is None or pos < size:
                    part = await http_part(self.guard, session, rpath, pos, pos + chunk_size,
                                           version)
                    if size is None:
                        size, version = part.size, part.version
                        callback.set_size(size)
                    if not part.data:
                        break
                    out.write(part.data)
                    pos += len(part.data)
                    callback.relative_update(len(part.data))
            finally:
                if out is not lpath:
                    out.close()

        async def _ls(self, url, detail=True, **kwargs):
            try:
                return await super()._ls(url, detail=detail, **kwargs)
            except Exception as err:
                refusal = refusal_in(err)
                if refusal is not None:
                    raise refusal from None
                raise

    return GuardedHTTPFileSystem


_classes: dict[str, type] = {}


def http_filesystem(guard: Guard, **kwargs: Any):
    """fsspec's HTTPFileSystem carrying ``guard`` (``.guard``) for every request it makes."""
    if "http" not in _classes:
        _classes["http"] = _http_filesystem_class()
    return _classes["http"](guard, **kwargs)


def gcsfs_egress(proxy: str | None, trust_env: bool) -> dict[str, Any]:
    """``GCSFileSystem`` options: its aiohttp session through ``proxy``, never the
    environment's proxies unless ``trust_env``."""
    session_kwargs: dict[str, Any] = {"trust_env": trust_env}
    if proxy:
        session_kwargs["proxy"] = proxy
    return {"session_kwargs": session_kwargs}


def azure_client_egress(proxy: str | None, trust_env: bool) -> dict[str, Any]:
    """Azure SDK client options: ``proxies`` for the configured proxy; ``use_env_settings``
    off (azure-core reads ``HTTPS_PROXY`` by default)."""
    options: dict[str, Any] = {"use_env_settings": trust_env}
    if proxy:
        options["proxies"] = {"http": proxy, "https": proxy}
    return options


def _azure_filesystem_class():
    from adlfs import AzureBlobFileSystem
    from adlfs.spec import _USER_AGENT
    from azure.storage.blob.aio import BlobServiceClient

    class EgressAzureBlobFileSystem(AzureBlobFileSystem):
        """adlfs with its Azure SDK client built with our egress options (adlfs passes none
        through). Connects the way adlfs does for the option sets credentials/azure.py makes:
        a connection string, or an account with a credential, a key, or nothing."""

        def __init__(self, *, egress: dict[str, Any], **kwargs: Any):
            self.egress = egress
            super().__init__(**kwargs)

        def do_connect(self):
            try:
                if self.connection_string is not None:
                    self.service_client = BlobServiceClient.from_connection_string(
                        conn_str=self.connection_string, user_agent=_USER_AGENT, **self.egress)
                    return
                host = getattr(self, "account_host", None) or (
                    f"{self.account_name}.blob.core.windows.net")
                self.account_url = f"https://{host}"
                credential = self.credential or self.account_key
                kwargs: dict[str, Any] = {"account_url": self.account_url,
                                          "user_agent": _USER_AGENT, **self.egress}
                if credential is not None:
                    kwargs.update(credential=credential, _location_mode=self.location_mode)
                self.service_client = BlobServiceClient(**kwargs)
            except Exception as err:
                raise ValueError(f"unable to connect to account for {err}") from err

    return EgressAzureBlobFileSystem


def azure_filesystem(*, proxy: str | None, trust_env: bool, **kwargs: Any):
    """adlfs's AzureBlobFileSystem whose traffic goes through ``proxy`` (or directly), never
    through the environment's proxies unless ``trust_env``."""
    if "azure" not in _classes:
        _classes["azure"] = _azure_filesystem_class()
    return _classes["azure"](egress=azure_client_egress(proxy, trust_env), **kwargs)
