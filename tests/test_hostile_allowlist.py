"""Hostile allow lists: the cloud metadata and credential endpoints open only with an exact entry.

The *never* addresses are the endpoints that hand out the machine's or the workload's
credentials: AWS IMDS (IPv4 and IPv6), the ECS task agent, the EKS Pod Identity agent (IPv4 and
IPv6), the GCP metadata server (its names, 169.254.169.254 and fd20:ce::254), the Azure IMDS and
WireServer, Alibaba's and Oracle's metadata services. A careless operator opens a network
(``169.254.0.0/16``, ``0.0.0.0/0``, ``::/0``, ``fd00::/8``), a wildcard name (``*.internal``) or
``allow_private_networks``; none of these may reach a never address, in any spelling, whether
the URL names it, a redirect leads to it or DNS answers it. Only an allow_hosts entry that is
that exact address opens it. An entry that can never match anything is a ConfigError naming it.

Safety: only literal addresses are judged through ``attachfs.explain`` (no I/O). Names go through
the fake resolver; a broken guard that lets a non-loopback answer through is stopped by
conftest's socket guard before any packet leaves (and that fails the test).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yarl
from aiohttp.abc import AbstractResolver
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import attachfs
from attachfs import AccessRefused, ConfigError
from fakes.origin import Origin

#: (what it is, address). Every one is a credential or metadata endpoint of some cloud.
NEVER_V4 = [
    ("AWS/GCP/Azure/OCI instance metadata", "169.254.169.254"),
    ("AWS ECS task metadata and credentials", "169.254.170.2"),
    ("AWS EKS Pod Identity agent", "169.254.170.23"),
    ("Azure WireServer", "168.63.129.16"),
    ("Alibaba Cloud metadata", "100.100.100.200"),
    ("Oracle Cloud legacy metadata", "192.0.0.192"),
]
NEVER_V6 = [
    ("AWS instance metadata over IPv6", "fd00:ec2::254"),
    ("AWS EKS Pod Identity agent over IPv6", "fd00:ec2::23"),
    ("GCP metadata over IPv6", "fd20:ce::254"),
]
NEVER = NEVER_V4 + NEVER_V6
NEVER_IDS = [a for _, a in NEVER]

#: The names the GCP metadata server answers to (a VM's resolver maps them to 169.254.169.254).
METADATA_NAMES = ["metadata.google.internal", "metadata", "metadata.goog"]


def _config(**http: Any) -> attachfs.Config:
    return attachfs.load_config({"platform": {"http": http}})


def v4_spellings(address: str) -> list[str]:
    """Ways a URL host may write the IPv4 ``address`` (all denote it to some resolver)."""
    ip = ipaddress.IPv4Address(address)
    n = int(ip)
    a, b, c, d = ip.packed
    return [
        address,
        f"{address}.",
        str(n),
        hex(n),
        hex(n).upper().replace("X", "x"),
        f"0{n:o}",
        ".".join(f"0{o:o}" for o in ip.packed),
        ".".join(hex(o) for o in ip.packed),
        f"{a}.{b}.{(c << 8) | d}",
        f"{a}.{(b << 16) | (c << 8) | d}",
        "".join(chr(0xFF10 + int(ch)) if ch.isdigit() else ch for ch in address),  # fullwidth
        f"[::ffff:{address}]",
        f"[::ffff:{(n >> 16):x}:{(n & 0xFFFF):x}]",
        f"[0:0:0:0:0:FFFF:{address}]",
        f"[64:ff9b::{address}]",
        f"[64:ff9b::{(n >> 16):x}:{(n & 0xFFFF):x}]",
        f"[::{address}]",
        f"[2002:{(n >> 16):x}:{(n & 0xFFFF):x}::1]",
    ]


def v6_spellings(address: str) -> list[str]:
    """Ways a URL host may write the IPv6 ``address``."""
    ip = ipaddress.IPv6Address(address)
    return [
        f"[{ip.compressed}]",
        f"[{ip.exploded}]",
        f"[{ip.compressed.upper()}]",
        f"[{ip.exploded.upper()}]",
        f"[{ip.compressed}%25eth0]",
    ]


def spellings(address: str) -> list[str]:
    ip = ipaddress.ip_address(address)
    return v4_spellings(address) if ip.version == 4 else v6_spellings(address)


def covering(address: str, exact: bool = False) -> Iterator[str]:
    """Every network that contains ``address``: /0 up to one bit short of a single address."""
    ip = ipaddress.ip_address(address)
    top = ip.max_prefixlen + (1 if exact else 0)
    for plen in range(top):
        yield str(ipaddress.ip_network(f"{address}/{plen}", strict=False))


def _refused(url: str, config: attachfs.Config) -> AccessRefused | None:
    try:
        attachfs.explain(url, config=config)
    except AccessRefused as err:
        return err
    return None


# --------------------------------------------------------------------------- literal addresses

@pytest.mark.parametrize("address", NEVER_IDS)
@pytest.mark.parametrize("opener", [
    {"allow_hosts": ["0.0.0.0/0", "::/0"]},
    {"allow_hosts": ["169.254.0.0/16", "fd00::/8", "fc00::/7"]},
    {"allow_hosts": ["168.63.0.0/16", "100.64.0.0/10", "192.0.0.0/24", "fd20::/16"]},
    {"allow_private_networks": True},
    {"allow_private_networks": True, "allow_hosts": ["0.0.0.0/0", "::/0"]},
    {"allow_hosts": ["*.internal", "*.google.internal", ".goog", "metadata"]},
    {},
], ids=["everything", "link-local+ula", "each-never-net", "private", "private+everything",
        "wildcards", "defaults"])
def test_no_network_or_switch_opens_a_never_address(address: str, opener: dict) -> None:
    """A metadata address as written in the URL is refused whatever network is allowed."""
    url = f"http://{spellings(address)[0]}/latest/meta-data/iam/security-credentials/"
    refusal = _refused(url, _config(**opener))
    assert refusal is not None, f"{url} is open under {opener}"
    assert refusal.rule.startswith("ssrf:")


@pytest.mark.parametrize("address", NEVER_IDS)
def test_the_exact_entry_opens_its_address(address: str) -> None:
    """The one way in: allow_hosts naming that address (a control: the fix must keep it)."""
    assert _refused(f"http://{spellings(address)[0]}/x", _config(allow_hosts=[address])) is None


@pytest.mark.parametrize("address", [a for _, a in NEVER_V4])
def test_wireserver_and_friends_are_refused_in_ambient_mode_too(
        address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ambient mode opens private networks on any port; never the metadata endpoints."""
    monkeypatch.delenv("ATTACHFS_CONFIG", raising=False)
    assert _refused(f"http://{address}/machine?comp=goalstate", None) is not None


never_and_spelling = st.sampled_from(NEVER_IDS).flatmap(
    lambda a: st.tuples(st.just(a), st.sampled_from(spellings(a))))


@settings(max_examples=200, deadline=None)
@given(target=never_and_spelling, data=st.data())
def test_no_covering_network_in_any_spelling_opens_a_never_address(target: tuple[str, str],
                                                                   data: st.DataObject) -> None:
    """Property: for a never address in any spelling, allow_hosts holding networks that cover
    it (its own form, or the IPv6 form the spelling uses), plus allow_private_networks either
    way, and any port: refused."""
    address, spelled = target
    forms = [address]
    host = spelled.strip("[]").split("%")[0]
    if ":" in host:
        forms.append(str(ipaddress.IPv6Address(host)))
    nets = data.draw(st.lists(st.sampled_from([n for f in forms for n in covering(f)]),
                              min_size=1, max_size=4))
    private = data.draw(st.booleans())
    port = data.draw(st.sampled_from(["", ":80", ":443", ":8080"]))
    config = _config(allow_hosts=nets, allow_private_networks=private,
                     allow_ports=[80, 443, 8080])
    url = f"http://{spelled}{port}/computeMetadata/v1/instance/service-accounts/default/token"
    assert _refused(url, config) is not None, f"{url} open with {nets}, private={private}"


# --------------------------------------------------------------------------- invalid entries

INVALID_ENTRIES = [
    ("bad prefix length", "10.0.0.0/33"),
    ("bad IPv6 prefix length", "fe80::/129"),
    ("two prefixes", "169.254.0.0/16/8"),
    ("empty prefix", "10.0.0.0/"),
    ("not an address", "999.1.1.1"),
    ("not an IPv6 address", "fd00::ec2::254"),
    ("host:port", "files.example.com:8080"),
    ("address:port", "10.0.0.1:8080"),
    ("bracketed with port", "[::1]:80"),
    ("scheme-less URL", "//files.example.com/path"),
    ("path", "files.example.com/data"),
    ("bare star", "*"),
    ("star dot", "*."),
    ("double star", "*.*"),
    ("star inside a label", "fi*les.example.com"),
    ("star not leftmost", "files.*.com"),
    ("empty label", "files..example.com"),
    ("only a dot", "."),
    ("leading dots", "..example.com"),
    ("label over 63", "a" * 64 + ".example.com"),
    ("name over 253", ".".join(["a" * 60] * 5)),
    ("brackets around a name", "[files.example.com]"),
    ("unbalanced bracket", "[fd00::1"),
]


@pytest.mark.parametrize("entry", [e for _, e in INVALID_ENTRIES],
                         ids=[w for w, _ in INVALID_ENTRIES])
def test_an_entry_that_can_never_match_is_a_config_error_naming_it(entry: str) -> None:
    """load_config refuses it, naming the entry and the key, instead of silently ignoring it."""
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config({"platform": {"http": {"allow_hosts": ["ok.example.com", entry]}}})
    assert entry in str(refused.value)
    assert "allow_hosts" in str(refused.value)


@pytest.mark.parametrize("entry", [e for _, e in INVALID_ENTRIES[:8]],
                         ids=[w for w, _ in INVALID_ENTRIES[:8]])
def test_an_invalid_entry_in_a_toml_file_is_refused_naming_the_file(entry: str,
                                                                     tmp_path: Path) -> None:
    """The same check applies to a config file, whose name the error carries."""
    path = tmp_path / "attachfs.toml"
    path.write_text(f"[platform.http]\nallow_hosts = [{entry!r}]\n".replace("'", '"'))
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config(path)
    assert entry in str(refused.value) and str(path) in str(refused.value)


@settings(max_examples=100, deadline=None)
@given(host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){1,3}", fullmatch=True),
       port=st.integers(1, 65535))
def test_any_host_port_entry_is_refused(host: str, port: int) -> None:
    """Property: ``name:port`` is never a host name, so it can never match."""
    entry = f"{host}:{port}"
    with pytest.raises(ConfigError, match="allow_hosts"):
        attachfs.load_config({"platform": {"http": {"allow_hosts": [entry]}}})


@pytest.mark.parametrize("entry", [
    "files.example.com", "*.example.com", ".example.com", "10.0.0.0/8", "10.1.2.3",
    "fd00::/8", "fd00::1", "[fd00::1]", "169.254.169.254", "fd00:ec2::254", "FILES.Example.COM.",
    "xn--bcher-kva.example",
])
def test_valid_entries_still_load(entry: str) -> None:
    """The check refuses only entries that cannot match: these all can."""
    attachfs.load_config({"platform": {"http": {"allow_hosts": [entry]}}})


# --------------------------------------------------------------------------- names and redirects

class FakeResolver(AbstractResolver):
    """Answers from ``names`` only; never leaves the process. Unknown names do not resolve.
    A non-ASCII name is looked up as ``socket.getaddrinfo`` would send it (IDNA-encoded)."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {"localhost": ["127.0.0.1"]}

    async def resolve(self, host: str, port: int = 0,
                      family: int = socket.AF_INET) -> list[dict[str, Any]]:
        try:
            ascii_host = host.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_host = host
        answers = self.names.get(ascii_host.lower().rstrip("."))
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, f"fake resolver: no such name {host!r}")
        return [{"hostname": host, "host": a, "port": port,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in answers]

    async def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries of a broken read do not sleep (a refusal is never retried, so this only speeds
    up the failures)."""
    from attachfs._read import retry  # the backoff seam

    async def no_wait(seconds: float) -> None:
        return None

    monkeypatch.setattr(retry, "_sleep", no_wait, raising=False)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeResolver:
    """The fake resolver, installed where the network guard gets its answers."""
    from attachfs._net import resolver as netguard  # the resolver seam

    resolver = FakeResolver()
    monkeypatch.setattr(netguard, "system_resolver", lambda: resolver)
    return resolver


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with Origin() as server:
        yield server


def _fs(peers: Any, http: dict) -> Any:
    config = peers.config()
    config["platform"]["http"] = http
    return attachfs.filesystem(config=config, skip_instance_cache=True)


NAMED = [
    # (why, host, what DNS answers, [platform.http])
    ("GCP name under *.internal", "metadata.google.internal", ["169.254.169.254"],
     {"allow_hosts": ["*.internal"]}),
    ("GCP name under *.google.internal", "metadata.google.internal", ["169.254.169.254"],
     {"allow_hosts": ["*.google.internal"]}),
    ("GCP name under .internal, upper case", "METADATA.GOOGLE.INTERNAL.", ["169.254.169.254"],
     {"allow_hosts": [".internal"]}),
    ("GCP name in fullwidth letters (IDNA maps it)", "ｍｅｔａｄａｔａ.google.internal",
     ["169.254.169.254"], {"allow_hosts": ["*.google.internal"]}),
    ("GCP short name under private networks", "metadata", ["169.254.169.254"],
     {"allow_private_networks": True}),
    ("metadata.goog under *.goog", "metadata.goog", ["169.254.169.254"],
     {"allow_hosts": ["*.goog"]}),
    ("GCP name answering IPv6", "metadata.google.internal", ["fd20:ce::254"],
     {"allow_hosts": ["*.internal"], "allow_private_networks": True}),
    ("an allowed partner name hijacked to IMDS", "files.partner.test", ["169.254.169.254"],
     {"allow_hosts": ["files.partner.test"]}),
    ("an allowed wildcard hijacked to IMDS over IPv6", "a.partner.test", ["fd00:ec2::254"],
     {"allow_hosts": ["*.partner.test"]}),
    ("IMDS among public answers", "files.partner.test", ["93.184.216.34", "169.254.169.254"],
     {"allow_hosts": ["files.partner.test"]}),
    ("ECS agent by name, link-local net open", "agent.test", ["169.254.170.2"],
     {"allow_hosts": ["169.254.0.0/16"]}),
    ("EKS agent by name, private networks", "agent.test", ["169.254.170.23"],
     {"allow_private_networks": True}),
    ("EKS agent IPv6 by name, fd00::/8 open", "agent.test", ["fd00:ec2::23"],
     {"allow_hosts": ["fd00::/8"]}),
    ("WireServer by name, everything open", "wire.test", ["168.63.129.16"],
     {"allow_hosts": ["0.0.0.0/0"]}),
    ("Alibaba by name, private networks", "meta.test", ["100.100.100.200"],
     {"allow_private_networks": True}),
    ("IMDS by NAT64 answer, ::/0 open", "meta.test", ["64:ff9b::a9fe:a9fe"],
     {"allow_hosts": ["::/0"]}),
    ("IMDS by mapped answer, 0.0.0.0/0 open", "meta.test", ["::ffff:169.254.169.254"],
     {"allow_hosts": ["0.0.0.0/0"]}),
]


@pytest.mark.parametrize("host, answers, http", [r[1:] for r in NAMED], ids=[r[0] for r in NAMED])
def test_names_that_resolve_to_a_never_address_are_refused(peers: Any, dns: FakeResolver,
                                                           host: str, answers: list[str],
                                                           http: dict) -> None:
    """A name the allow list opens is still refused when DNS answers a never address."""
    dns.names[host.encode("idna").decode("ascii").lower().rstrip(".")] = answers
    fs = _fs(peers, http)
    with pytest.raises(AccessRefused) as refused:
        fs.cat_file(f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token")
    assert refused.value.rule.startswith("ssrf:")


@pytest.mark.parametrize("location, http", [
    ("http://169.254.169.254/latest/meta-data/iam/security-credentials/",
     {"allow_hosts": ["origin.test", "169.254.0.0/16"]}),
    ("http://0xa9fea9fe/latest/api/token", {"allow_hosts": ["origin.test", "0.0.0.0/0"]}),
    ("http://[fd00:ec2::254]/latest/meta-data/",
     {"allow_hosts": ["origin.test", "fd00::/8"], "allow_private_networks": True}),
    ("http://[::ffff:169.254.170.2]/v2/credentials/x",
     {"allow_hosts": ["origin.test"], "allow_private_networks": True}),
    ("http://metadata.google.internal/computeMetadata/v1/",
     {"allow_hosts": ["origin.test", "*.internal"]}),
    ("http://168.63.129.16/machine?comp=goalstate", {"allow_hosts": ["origin.test"]}),
], ids=["imds-link-local-net", "imds-hex-everything", "imds6-ula", "ecs-mapped-private",
        "gcp-name-wildcard", "wireserver-default"])
def test_redirects_to_a_never_address_are_refused(peers: Any, dns: FakeResolver, origin: Origin,
                                                  location: str, http: dict) -> None:
    """An allowed origin that redirects to a metadata endpoint: the hop is refused."""
    dns.names["origin.test"] = ["127.0.0.1"]
    dns.names["metadata.google.internal"] = ["169.254.169.254"]
    origin.answers.clear()
    origin.redirect("/r", location)
    fs = _fs(peers, http)
    with pytest.raises(AccessRefused) as refused:
        fs.cat_file(f"http://origin.test:{origin.port}/r")
    assert refused.value.rule.startswith("ssrf:")


@settings(max_examples=30, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(METADATA_NAMES), answer=st.sampled_from(["169.254.169.254",
                                                                    "fd20:ce::254"]),
       entries=st.lists(st.sampled_from(["*.internal", "*.google.internal", ".internal", "*.goog",
                                         "metadata", "metadata.google.internal", "169.254.0.0/16",
                                         "fd00::/8", "fc00::/7", "0.0.0.0/0", "::/0"]),
                        min_size=1, max_size=4),
       private=st.booleans(), upper=st.booleans(), dot=st.booleans())
def test_gcp_metadata_names_never_open_except_by_the_exact_address(
        peers: Any, dns: FakeResolver, name: str, answer: str, entries: list[str],
        private: bool, upper: bool, dot: bool) -> None:
    """Property: a GCP metadata name answering its address stays refused under any mix of
    wildcards, networks and allow_private_networks, in any case, with or without the
    trailing dot (entries naming the *names* do not name the address)."""
    dns.names[name] = [answer]
    host = (name.upper() if upper else name) + ("." if dot else "")
    fs = _fs(peers, {"allow_hosts": entries, "allow_private_networks": private})
    with pytest.raises(AccessRefused):
        fs.cat_file(f"http://{host}/computeMetadata/v1/instance/service-accounts/default/token")


def test_literal_refusals_name_the_address_as_written_and_as_meant() -> None:
    """The refusal of an odd spelling says which metadata address it stands for."""
    refusal = _refused("http://0xa9fea9fe/latest/meta-data/",
                       _config(allow_hosts=["169.254.0.0/16"]))
    assert refusal is not None
    assert "169.254.169.254" in str(refusal) and "0xa9fea9fe" in str(refusal)


def test_url_host_of_every_spelling_is_parseable() -> None:
    """Sanity of the table above: yarl accepts every spelling as a URL host."""
    for _, address in NEVER:
        for spelled in spellings(address):
            assert yarl.URL(f"http://{spelled}/x").raw_host, spelled


# --------------------------------------------------------------------------- beyond the review
# Endpoints, names, embeddings and entry kinds the review did not name, tried the same way.

#: Names that only ever mean a metadata service.
NEVER_NAMES = ["metadata.google.internal", "metadata.goog", "metadata", "instance-data",
               "instance-data.ec2.internal", "metadata.tencentyun.com"]


def _policy(**opened: Any) -> Any:
    from attachfs._net.policy import Policy  # the pure decision, without a config file

    return Policy(**opened)


def allow_entry(entry: str) -> tuple[str, str]:
    from attachfs._config import allow_entry as parse  # the entry parser the policy shares

    return parse(entry)

#: Never addresses the review's table did not list: Tencent's metadata, AWS time sync (v4, v6).
MORE_NEVER = ["169.254.0.23", "169.254.169.123", "fd00:ec2::123"]


@pytest.mark.parametrize("address", MORE_NEVER)
@pytest.mark.parametrize("opener", [
    {"allow_hosts": ["169.254.0.0/16", "fd00::/8"]},
    {"allow_private_networks": True},
    {"allow_hosts": ["0.0.0.0/0", "::/0"], "allow_private_networks": True},
], ids=["link-local+ula", "private", "everything"])
def test_more_metadata_addresses_are_never_addresses(address: str, opener: dict) -> None:
    """Tencent Cloud's metadata service and AWS time sync are refused like IMDS."""
    url = f"http://{spellings(address)[0]}/latest/"
    refusal = _refused(url, _config(**opener))
    assert refusal is not None and refusal.rule == "ssrf:cloud-metadata", url
    exact = {**opener, "allow_hosts": [*opener.get("allow_hosts", []), address]}
    assert _refused(url, _config(**exact)) is None


def _embeddings(address: str) -> list[str]:
    """IPv6 forms that stand for the IPv4 ``address``, as a resolver could answer them:
    mapped, compatible, NAT64, 6to4 and Teredo (server and obfuscated client)."""
    n = int(ipaddress.IPv4Address(address))
    hi, lo = n >> 16, n & 0xFFFF
    return [f"::ffff:{address}", f"::{hi:x}:{lo:x}", f"64:ff9b::{hi:x}:{lo:x}",
            f"2002:{hi:x}:{lo:x}::1", f"2001:0:{hi:x}:{lo:x}::1",
            f"2001:0:4136:e378:8000:63bf:{hi ^ 0xFFFF:x}:{lo ^ 0xFFFF:x}"]


@settings(max_examples=300, deadline=None)
@given(address=st.sampled_from([a for a in NEVER_IDS + MORE_NEVER if ":" not in a]),
       form=st.integers(0, 5), data=st.data())
def test_property_no_answer_that_embeds_a_never_address_opens(address: str, form: int,
                                                              data: st.DataObject) -> None:
    """Property: a DNS answer in any IPv6 form that embeds a never address is refused under
    any mix of covering networks (of either form), name entries for the host and
    allow_private_networks."""
    answer = _embeddings(address)[form]
    nets = list(covering(address)) + list(covering(answer))
    entries = data.draw(st.lists(st.sampled_from(nets + ["files.test", "*.test"]), max_size=4))
    policy = _policy(allow_hosts=tuple(entries), allow_private_networks=data.draw(st.booleans()))
    refusal = policy.decide("files.test", 443, [answer])
    assert refusal is not None and refusal.rule == "cloud-metadata", (answer, entries)
    assert _policy(allow_hosts=(address,)).decide("files.test", 443, [answer]) is None


@pytest.mark.parametrize("name", NEVER_NAMES)
def test_metadata_names_are_refused_before_they_are_resolved(peers: Any, dns: FakeResolver,
                                                             name: str) -> None:
    """``instance-data``, ``metadata.tencentyun.com``, the GCP names...: refused by explain()
    (no DNS) and by a read, without asking the resolver, whatever wildcard is open."""
    http = {"allow_hosts": ["*.internal", "*.goog", "*.com", "*.test"],
            "allow_private_networks": True}
    refusal = _refused(f"http://{name}/latest/", _config(**http))
    assert refusal is not None and refusal.rule == "ssrf:cloud-metadata"
    dns.names[name] = ["127.0.0.1"]
    asked: list[str] = []
    real = dns.resolve

    async def recording(host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
        asked.append(host)
        return await real(host, port, family)

    dns.resolve = recording  # type: ignore[method-assign]
    with pytest.raises(AccessRefused):
        _fs(peers, http).cat_file(f"http://{name.upper()}./latest/")
    assert asked == []


def test_an_exact_name_entry_lifts_only_the_name(peers: Any, dns: FakeResolver,
                                                 origin: Origin) -> None:
    """A metadata name opened by its exact entry is still judged by its answers: a metadata
    address stays refused, a loopback test server (the control) is read."""
    origin.answers.clear()
    origin.answer("/x", b"ok")
    dns.names["instance-data"] = ["169.254.169.254"]
    fs = _fs(peers, {"allow_hosts": ["instance-data"]})
    with pytest.raises(AccessRefused) as refused:
        fs.cat_file(f"http://instance-data:{origin.port}/x")
    assert refused.value.rule == "ssrf:cloud-metadata"
    dns.names["instance-data"] = ["127.0.0.1"]
    assert _fs(peers, {"allow_hosts": ["instance-data"]}).cat_file(
        f"http://instance-data:{origin.port}/x") == b"ok"


@pytest.mark.parametrize("answer, rule", [
    ("0.0.0.0", "unspecified"), ("224.0.0.251", "multicast"), ("240.0.0.1", "reserved"),
    ("192.0.2.10", "documentation"), ("::", "unspecified"), ("ff02::1", "multicast"),
])
def test_a_name_entry_trusts_the_name_not_what_it_resolves_to(answer: str, rule: str) -> None:
    """A name entry lifts the private-network and port rules for that name; it does not open
    the addresses only an address or network entry opens (0.0.0.0 reaches the local host)."""
    for entry in ("files.test", "*.test", ".test"):
        refusal = _policy(allow_hosts=(entry,)).decide("a.files.test" if "*" in entry or
                                                      entry.startswith(".") else "files.test",
                                                      8443, [answer])
        assert refusal is not None and refusal.rule == rule, entry
    assert _policy(allow_hosts=(answer,)).decide("files.test", 8443, [answer]) is None
    assert _policy(allow_hosts=("files.test",)).decide("files.test", 8443, ["10.0.0.1"]) is None


@pytest.mark.parametrize("location", [
    "http://instance-data/latest/meta-data/", "http://metadata.tencentyun.com/meta-data/",
    "http://a..b/x", "http://xn--zz.test/x", "http://files.test.123/x",
])
def test_redirects_to_a_metadata_name_or_a_malformed_host_are_refused_unresolved(
        peers: Any, dns: FakeResolver, origin: Origin, location: str) -> None:
    """The hop's host is judged before it is resolved: a metadata name, or a host no URL
    may have (the read's own URL was checked when it was parsed; a Location was not)."""
    dns.names["origin.test"] = ["127.0.0.1"]
    origin.answers.clear()
    origin.redirect("/r", location)
    asked: list[str] = []
    real = dns.resolve

    async def recording(host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
        asked.append(host)
        return await real(host, port, family)

    dns.resolve = recording  # type: ignore[method-assign]
    fs = _fs(peers, {"allow_hosts": ["origin.test", "*.test", "*.com"]})
    with pytest.raises(AccessRefused) as refused:
        fs.cat_file(f"http://origin.test:{origin.port}/r")
    assert refused.value.rule in ("ssrf:cloud-metadata", "ssrf:malformed-host")
    assert asked == ["origin.test"]


entry_forms = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.tuples(st.ip_addresses(v=6), st.integers(0, 128)).map(lambda t: f"{t[0]}/{t[1]}"),
    st.tuples(st.sampled_from(["", "*.", "."]),
              st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){1,3}", fullmatch=True),
              st.booleans(), st.booleans())
    .map(lambda t: t[0] + (t[1].upper() if t[2] else t[1]) + ("." if t[3] else "")),
)


@settings(max_examples=300, deadline=None)
@given(entry=entry_forms)
def test_property_every_valid_entry_has_one_normal_form(entry: str) -> None:
    """Property: each valid entry loads, its normal form (as the loaded config keeps it)
    parses to the same thing, and the policy built from either decides alike."""
    kind, value = allow_entry(entry)
    loaded = attachfs.load_config({"platform": {"http": {"allow_hosts": [entry]}}})
    (kept,) = loaded.platform.http.allow_hosts
    assert allow_entry(kept) == (kind, value)
    probe = value.lstrip(".") if kind in ("name", "suffix") else value.split("/")[0]
    host = f"a.{probe}" if kind == "suffix" else probe
    answer = "10.0.0.1" if kind in ("name", "suffix") else probe
    assert (_policy(allow_hosts=(entry,)).decide(host, 8443, [answer])
            == _policy(allow_hosts=(kept,)).decide(host, 8443, [answer]))


@settings(max_examples=200, deadline=None)
@given(host=st.from_regex(r"[a-z0-9_-]{1,70}(\.[a-z0-9_-]{1,70}){0,4}\.?", fullmatch=True))
def test_property_a_name_entry_is_valid_exactly_when_it_is_a_valid_url_host(host: str) -> None:
    """Property: allow_hosts and URLs share one host syntax: a name that explain() would
    refuse as a URL host can never match, and is refused as an entry too."""
    try:
        attachfs.explain(f"https://{host}/x", config=HTTP_OPEN)
        as_url = True
    except AccessRefused:  # parsed, then refused by the guard (0, 10.1, ...): a valid host
        as_url = True
    except ValueError:
        as_url = False
    try:
        allow_entry(host)
        as_entry = True
    except ValueError:
        as_entry = False
    assert as_url == as_entry, host


HTTP_OPEN = {"platform": {"http": {"allow_private_networks": True}}}
