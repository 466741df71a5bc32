"""What ``[platform.http]`` opens, decided (pure: no I/O).

* The *never* addresses (``addresses.NEVER``: the cloud metadata and credential endpoints, in
  every spelling and every IPv6 form that embeds one) are judged first. Only an ``allow_hosts``
  entry that *is* that address (``169.254.169.254``, ``[fd00:ec2::254]``, or a /32 or /128 of
  it) opens one. No network entry (``169.254.0.0/16``, ``0.0.0.0/0``, ``::/0``), no name or
  wildcard entry and not ``allow_private_networks`` does, whatever the URL, a redirect or DNS
  says. The names that only mean a metadata service (``addresses.NEVER_NAMES``:
  ``metadata.google.internal``...) are refused before they are resolved unless an exact name
  entry names them, and their answers are still judged.
* ``allow_private_networks`` opens loopback, private (RFC 1918, ULA), link-local and shared
  (CGNAT) addresses, on any port. It never opens the never addresses, unspecified, multicast,
  reserved, documentation or benchmarking ranges.
* ``allow_hosts`` entries (validated by ``_config.allow_entry``) are addresses, networks, host
  names or ``*.example.com`` / ``.example.com`` suffixes. An address or network entry opens the
  addresses in it (but never a never address it merely covers), on any port. A name entry
  opens what ``allow_private_networks`` opens, on any port, for that name only: it trusts the
  name, not whatever DNS answers for it, so its answers are still judged (no never address,
  no unspecified, multicast or reserved address).
* ``allow_ports`` (default 80, 443) applies to every destination not opened by the above.
* Ambient mode (no config) decides like ``allow_private_networks = true`` on any port: notebooks
  reading ``http://localhost:8000`` keep working, the metadata endpoints stay refused.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._config import allow_entry
from .addresses import (
    IP,
    OPENED_BY_PRIVATE,
    Refusal,
    classify,
    never,
    never_name,
    normalise_host,
    parse_ip,
)

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["SCHEMES", "Policy"]

SCHEMES = ("http", "https")


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
    def from_config(cls, config: Config | None) -> Policy:
        if config is None:
            return cls(allow_private_networks=True, any_port=True, max_redirects=10)
        http = config.platform.http
        return cls(allow_private_networks=http.allow_private_networks,
                   allow_hosts=tuple(http.allow_hosts), allow_ports=tuple(http.allow_ports),
                   max_redirects=http.max_redirects, source=config.source)

    @functools.cached_property
    def _entries(self) -> dict[str, frozenset[str]]:
        """The entries by kind (``allow_entry``): address, network, name, suffix."""
        kinds: dict[str, set[str]] = {k: set() for k in ("address", "network", "name", "suffix")}
        for entry in self.allow_hosts:
            kind, value = allow_entry(entry)
            kinds[kind].add(value)
        return {k: frozenset(v) for k, v in kinds.items()}

    @functools.cached_property
    def _networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        found = [ipaddress.ip_network(n) for n in self._entries["network"]]
        found += [ipaddress.ip_network(a) for a in self._entries["address"]]
        return tuple(found)

    def _host_allowed(self, host: str) -> bool:
        """Whether a name entry (exact or suffix) names ``host``; never for an IP literal."""
        if parse_ip(host) is not None:
            return False
        entries = self._entries
        return host in entries["name"] or any(
            host.endswith(suffix) and host != suffix[1:] for suffix in entries["suffix"])

    def _exact(self, ip: IP) -> bool:
        """Whether an address entry is ``ip`` (what opens a never address)."""
        return str(_unmapped(ip)) in self._entries["address"]

    def _address_allowed(self, ip: IP) -> bool:
        ip = _unmapped(ip)  # the same destination as the IPv4 address
        return any(ip.version == net.version and ip in net for net in self._networks)

    def refuse_name(self, host: str) -> Refusal | None:
        """The refusal of a host *name* on its own, before it is resolved: a name that only
        means a metadata service, unless an exact name entry names it."""
        host = normalise_host(host)
        named = never_name(host)
        return None if named is None or host in self._entries["name"] else named

    def decide(self, host: str, port: int, addresses: Iterable[IP | str]) -> Refusal | None:
        """Whether a connection to ``host``:``port`` at ``addresses`` (every answer the
        resolver gave, or the literal itself) is refused. Pure."""
        host = normalise_host(host)
        named = self.refuse_name(host)
        if named is not None:
            return named
        ips: list[IP] = [a if isinstance(a, (ipaddress.IPv4Address, ipaddress.IPv6Address))
                         else ipaddress.ip_address(str(a).split("%", 1)[0]) for a in addresses]
        if not ips:
            return Refusal("unresolved", f"{host} has no address to check")
        by_name = self._host_allowed(host)
        opened = True
        for ip in ips:
            found = never(ip)
            if found is not None:
                if self._exact(found[0]) or self._exact(ip):
                    continue
                return found[1]
            if self._address_allowed(ip):
                continue
            refusal = classify(ip)
            if refusal is None:
                opened = opened and by_name  # public: the port rule applies, unless named
                continue
            if (self.allow_private_networks or by_name) and refusal.rule in OPENED_BY_PRIVATE:
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
        if refusal.rule == "malformed-host":
            return "Fix the host: it is no host name, IPv4 or IPv6 address"
        if refusal.rule in ("scheme", "redirect-limit", "redirect-downgrade"):
            return "Read the final URL directly, over https"
        if refusal.rule == "cloud-metadata":
            # Never point at the way in: this address serves the machine's own credentials.
            return ("It serves this machine's own cloud credentials: an attachment URL that "
                    "points there is a mistake or an attack; ask for the attachment's real URL")
        return f"Only an exact platform.http.allow_hosts entry in {where} opens it"


def _unmapped(ip: IP) -> IP:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
    return ip
