"""What ``[platform.http]`` opens, decided (pure: no I/O).

* ``allow_private_networks`` opens loopback, private (RFC 1918, ULA), link-local and shared
  (CGNAT) addresses, on any port. It never opens the cloud metadata addresses, unspecified,
  multicast, reserved, documentation or benchmarking ranges: only ``allow_hosts`` naming one
  exactly does.
* ``allow_hosts`` entries are host names (``*.example.com`` / ``.example.com`` for subdomains) or
  addresses/networks. A matching destination is open on any port.
* ``allow_ports`` (default 80, 443) applies to every destination not opened by the two above.
* Ambient mode (no config) decides like ``allow_private_networks = true`` on any port: notebooks
  reading ``http://localhost:8000`` keep working, the metadata service stays refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .addresses import IP, OPENED_BY_PRIVATE, Refusal, classify, normalise_host

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
        ips: list[IP] = [a if isinstance(a, (ipaddress.IPv4Address, ipaddress.IPv6Address))
                         else ipaddress.ip_address(str(a).split("%", 1)[0]) for a in addresses]
        if not ips:
            return Refusal("unresolved", f"{host} has no address to check")
        opened = True
        for ip in ips:
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
        if refusal.rule == "cloud-metadata":
            # Never point at the way in: this address serves the machine's own credentials.
            return ("It serves this machine's own cloud credentials: an attachment URL that "
                    "points there is a mistake or an attack; ask for the attachment's real URL")
        return f"Only an exact platform.http.allow_hosts entry in {where} opens it"
