"""The entries of ``platform.http.allow_hosts``: what each names, or why it can never match."""

from __future__ import annotations

import ipaddress
import re

from .._uri import host_problem, idna_host, ipv4_number


def allow_entry(entry: str) -> tuple[str, str]:
    """What a ``platform.http.allow_hosts`` entry names, normalised: ``("address", "10.0.0.1")``
    (an IPv6 address with or without brackets; a /32 or /128 is an address too), ``("network",
    "10.0.0.0/8")``, ``("name", "files.example.com")`` (lower case, no trailing dot, IDNA
    A-labels) or ``("suffix", ".example.com")`` for ``*.example.com`` and ``.example.com``.
    ``ValueError`` saying why an entry can never match anything (a port, a path, a URL, a star
    that is not the whole leftmost label, a malformed address, network or name)."""
    if re.search(r"\s", entry) or "://" in entry or re.search(r"[?#@]", entry):
        return _never_matches("a host, not a URL: no scheme, user info, query or whitespace")
    if entry.startswith("[") or entry.endswith("]"):
        if not (entry.startswith("[") and entry.endswith("]")) or entry.count("[") > 1:
            return _never_matches("brackets go around an IPv6 address only, with no port "
                                  "(ports are opened with allow_ports)")
        try:
            return "address", str(ipaddress.IPv6Address(entry[1:-1]))
        except ValueError:
            return _never_matches("brackets go around an IPv6 address only")
    if "/" in entry:
        try:
            net = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return _never_matches("not an address/prefix network (and a host has no path)")
        if net.prefixlen == net.max_prefixlen:
            return "address", str(net.network_address)
        return "network", str(net)
    if ":" in entry:
        try:
            return "address", str(ipaddress.IPv6Address(entry))
        except ValueError:
            return _never_matches("not an IPv6 address, and a host has no :port (ports are "
                                  "opened with platform.http.allow_ports)")
    suffix = entry.startswith(("*.", "."))
    name = entry[2:] if entry.startswith("*.") else entry[1:] if suffix else entry
    if "*" in name:
        return _never_matches("* stands only for the whole leftmost label, as in *.example.com")
    problem = host_problem(name)
    if problem is not None:
        return _never_matches(problem.replace(repr(name[:80]), "the name", 1))
    name = name.lower().removesuffix(".")
    number = ipv4_number(name)
    if number is not None:
        if suffix:
            return _never_matches("an address has no subdomains")
        return "address", str(ipaddress.IPv4Address(number))
    if not name.isascii():
        name = idna_host(name)
    return ("suffix", f".{name}") if suffix else ("name", name)


def _never_matches(why: str) -> tuple[str, str]:
    raise ValueError(why)
