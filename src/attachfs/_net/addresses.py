"""Address classification for the network guard (pure: no I/O).

``classify`` judges one destination address on its own; ``never`` says whether it is (or, in an
IPv6 form, stands for) a cloud metadata or credential endpoint, which ``Policy`` opens only by an
exact entry; ``never_name`` does the same for the names that only mean one; ``parse_ip`` reads a
URL host the way resolvers and ``inet_aton`` would (``_uri.ipv4_number``, the one reading of a
numeric host); ``normalise_host`` is how a host is compared. The decision is
an explicit table built from the IANA IPv4 and IPv6 special-purpose registries, not
``ipaddress.is_private``/``is_global`` alone, whose answers changed across Python releases
(``64:ff9b:1::/48`` is "global" in some). "Must be global" is the last line, after the table. An
address that embeds an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) is
judged by the embedded address too.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from .._uri import ipv4_number

__all__ = ["IP", "NEVER", "NEVER_NAMES", "OPENED_BY_PRIVATE", "Refusal", "classify", "never",
           "never_name", "normalise_host", "parse_ip"]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Refusal:
    """Why a destination is refused: ``rule`` is stable (``AccessRefused.rule``), ``reason``
    says it in words, naming the address."""

    rule: str
    reason: str
    address: str | None = None


def _nets(*specs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(s) for s in specs)


#: The *never* addresses: the cloud metadata and credential endpoints. Each hands out the
#: machine's or the workload's own credentials to whoever can reach it, so no network entry,
#: wildcard name or ``allow_private_networks`` opens one: only an ``allow_hosts`` entry that is
#: that exact address (``Policy``). Judged before anything else, in every spelling and in every
#: IPv6 form that embeds an IPv4 address.
NEVER: dict[IP, str] = {ipaddress.ip_address(a): what for a, what in (
    ("169.254.169.254", "the instance metadata service (AWS, GCP, Azure, Oracle, OpenStack...)"),
    ("169.254.170.2", "the AWS ECS task metadata and credentials endpoint"),
    ("169.254.170.23", "the AWS EKS Pod Identity agent"),
    ("169.254.169.123", "the AWS time sync service"),
    ("169.254.0.23", "the Tencent Cloud metadata service"),
    ("168.63.129.16", "Azure's WireServer (host agent, extensions and their secrets)"),
    ("100.100.100.200", "the Alibaba Cloud metadata service"),
    ("192.0.0.192", "the Oracle Cloud legacy metadata service"),
    ("fd00:ec2::254", "the AWS instance metadata service over IPv6"),
    ("fd00:ec2::23", "the AWS EKS Pod Identity agent over IPv6"),
    ("fd00:ec2::123", "the AWS time sync service over IPv6"),
    ("fd20:ce::254", "the GCP metadata service over IPv6"),
)}
#: Names that only ever mean a metadata service (a VM's resolver answers them with a *never*
#: address). Refused before they are resolved; an exact ``allow_hosts`` entry naming one lifts
#: that, and its answers are still judged.
NEVER_NAMES: dict[str, str] = {
    "metadata.google.internal": "the GCP metadata service",
    "metadata.goog": "the GCP metadata service",
    "metadata": "the GCP metadata service (short name)",
    "instance-data": "the AWS instance metadata service (short name)",
    "instance-data.ec2.internal": "the AWS instance metadata service",
    "metadata.tencentyun.com": "the Tencent Cloud metadata service",
}

# (rule, what it is, networks). Order matters: the first match names the refusal. Built from the
# IANA IPv4/IPv6 special-purpose registries, refusing every entry that is not globally reachable
# (and a few that are, but are never an attachment server: 6to4 relays, AS112-free anycast).
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


def never(ip: IP) -> tuple[IP, Refusal] | None:
    """The *never* address ``ip`` is or stands for (IPv4-mapped, NAT64, 6to4... forms), with
    the refusal naming it; None if it is none."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    shown = str(ip)
    if ip in NEVER:
        return ip, Refusal("cloud-metadata", f"{shown} is {NEVER[ip]}, a cloud credential "
                                             "endpoint", shown)
    if isinstance(ip, ipaddress.IPv6Address):
        for form, inner in _embedded(ip):
            if inner in NEVER:
                return inner, Refusal("cloud-metadata", f"{shown} is an {form} address standing "
                                                        f"for {inner}, {NEVER[inner]}", shown)
    return None


def never_name(host: str) -> Refusal | None:
    """The refusal of a host name that only ever means a metadata service (``host`` as
    ``normalise_host`` gives it)."""
    what = NEVER_NAMES.get(host)
    return None if what is None else Refusal("cloud-metadata", f"{host} is {what}, a cloud "
                                                               "credential endpoint")


def classify(ip: IP) -> Refusal | None:
    """Refusal for a destination address on its own, or None if it is public.

    The *never* addresses first (``never``), then the explicit table, then the embedded IPv4
    address of IPv6 forms that carry one, then "must be global" (IPv6: inside 2000::/3; both:
    Python's ``is_global``) as the last line.
    """
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(ip.compressed.split("%", 1)[0])
    shown = str(ip)
    found = never(ip)
    if found is not None:
        return found[1]
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
    number = ipv4_number(host)
    return None if number is None else ipaddress.IPv4Address(number)
