"""The network guard (attachfs._net): the decision as tables, then end to end against local servers.

Safety rule for this file: the machine may only send packets to loopback, even if the guard under
test is broken. So end-to-end refusals use loopback spellings and names the fake resolver maps to
127.0.0.x (no name ever reaches a real DNS server); non-loopback destinations are judged by the
pure functions, or sit behind conftest's socket-level net, which refuses every non-loopback
connect before it happens and fails the test (a fake answer of 8.8.8.8 is only ever *judged*).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
import yarl
from aiohttp.abc import AbstractResolver

import attachfs
from attachfs import AccessRefused
from attachfs._net import resolver as net_resolver
from attachfs._net.addresses import Refusal, classify, parse_ip
from attachfs._net.guard import Guard, literal_refusal
from attachfs._net.policy import Policy
from conftest import TEST_CA
from fakes.origin import Origin

# --------------------------------------------------------------------------- the pure decision

CLASSIFY = [
    # address, refusal rule (None: public)
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("172.32.0.1", None),
    ("100.128.0.1", None),
    ("2001:4860:4860::8888", None),
    ("2606:4700:4700::1111", None),
    ("169.254.169.254", "cloud-metadata"),
    ("169.254.170.2", "cloud-metadata"),
    ("fd00:ec2::254", "cloud-metadata"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fec0::1", "private"),
    ("100.64.0.1", "shared"),
    ("100.127.255.254", "shared"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.8", "reserved"),
    ("192.88.99.1", "reserved"),
    ("100::1", "reserved"),
    ("4000::1", "reserved"),
    ("5f00::1", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    # IPv6 forms that embed an IPv4 address are judged by it
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "cloud-metadata"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:8.8.8.8", None),
    ("::10.0.0.1", "private"),                # IPv4-compatible (deprecated)
    ("::127.0.0.1", "loopback"),
    ("::ffff:0:10.0.0.1", "private"),         # IPv4-translated (SIIT)
    ("64:ff9b::10.0.0.1", "private"),         # NAT64 well-known prefix
    ("64:ff9b::169.254.169.254", "cloud-metadata"),
    ("64:ff9b::127.0.0.1", "loopback"),
    ("64:ff9b::8.8.8.8", None),
    ("64:ff9b:1::1", "private"),              # local-use NAT64: "global" to some Pythons
    ("2002:a00:1::1", "private"),             # 6to4 of 10.0.0.1
    ("2002:a9fe:a9fe::1", "cloud-metadata"),  # 6to4 of 169.254.169.254
    ("2002:7f00:1::1", "loopback"),
    ("2002:808:808::1", None),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1
    ("2001:0:a00:1:8000:63bf:3fff:fdd2", "private"),        # Teredo, server 10.0.0.1
]


@pytest.mark.parametrize("address, rule", CLASSIFY, ids=[a for a, _ in CLASSIFY])
def test_classify(address, rule):
    refusal = classify(ipaddress.ip_address(address))
    assert (refusal.rule if refusal else None) == rule
    if refusal is not None:
        assert str(ipaddress.ip_address(address.split("%")[0])) in refusal.reason


SPELLINGS = [
    # how a URL may write an address, what it is (None: a name)
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0X7F000001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("0x7f.0.0.1", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("127.000.000.001", "127.0.0.1"),
    ("0", "0.0.0.0"),
    ("0xa9fea9fe", "169.254.169.254"),
    ("2852039166", "169.254.169.254"),
    ("169.254.43518", "169.254.169.254"),
    ("012.0.0.1", "10.0.0.1"),
    ("127.0.0.1.", "127.0.0.1"),
    ("%31%32%37.0.0.1", "127.0.0.1"),
    ("①②⑦.0.0.1", "127.0.0.1"),
    ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
    ("[::1]", "::1"),
    ("::1", "::1"),
    ("[fe80::1%25eth0]", "fe80::1%eth0"),
    ("example.com", None),
    ("localhost", None),
    ("1.2.3.4.5", None),
    ("256.1.1.1", None),
    ("08.0.0.1", None),
    ("0x", "0.0.0.0"),
    ("1.2.3.0x100", None),
]


@pytest.mark.parametrize("host, address", SPELLINGS, ids=[h for h, _ in SPELLINGS])
def test_parse_ip(host, address):
    parsed = parse_ip(host)
    assert (str(parsed) if parsed is not None else None) == address


@pytest.mark.parametrize("host", [h for h, a in SPELLINGS
                                  if a and ":" not in a and h.isascii() and "%" not in h
                                  and not h.endswith(".") and h != "0x"])
def test_parse_ip_reads_ipv4_like_inet_aton(host):
    assert str(parse_ip(host)) == socket.inet_ntoa(socket.inet_aton(host))


DECIDE = [
    # Policy(**open), host, port, answers -> refusal rule (None: allowed)
    ({}, "example.com", 443, ["93.184.216.34"], None),
    ({}, "example.com", 80, ["93.184.216.34", "2606:2800:220:1::1"], None),
    ({}, "example.com", 8080, ["93.184.216.34"], "port"),
    ({"allow_ports": (8080,)}, "example.com", 8080, ["93.184.216.34"], None),
    ({}, "rebind.example", 443, ["93.184.216.34", "127.0.0.1"], "loopback"),
    ({}, "rebind.example", 443, ["127.0.0.1", "93.184.216.34"], "loopback"),
    ({}, "meta.example", 80, ["169.254.169.254"], "cloud-metadata"),
    ({}, "corp.example", 443, ["10.1.2.3"], "private"),
    ({}, "v6.example", 443, ["fd00::1"], "private"),
    ({}, "nat64.example", 443, ["64:ff9b::a9fe:a9fe"], "cloud-metadata"),
    ({}, "nothing.example", 443, [], "unresolved"),
    ({"allow_private_networks": True}, "corp.example", 8443, ["10.1.2.3"], None),
    ({"allow_private_networks": True}, "localhost", 5000, ["127.0.0.1", "::1"], None),
    ({"allow_private_networks": True}, "meta.example", 80, ["169.254.169.254"],
     "cloud-metadata"),
    ({"allow_private_networks": True}, "zero.example", 80, ["0.0.0.0"], "unspecified"),
    ({"allow_private_networks": True}, "mc.example", 80, ["239.1.1.1"], "multicast"),
    ({"allow_private_networks": True}, "mixed.example", 8443, ["10.0.0.1", "8.8.8.8"], "port"),
    ({"allow_hosts": ("169.254.169.254",)}, "169.254.169.254", 80, ["169.254.169.254"], None),
    ({"allow_hosts": ("internal.example",)}, "internal.example", 8443, ["10.0.0.1"], None),
    ({"allow_hosts": ("internal.example",)}, "INTERNAL.example.", 8443, ["10.0.0.1"], None),
    ({"allow_hosts": ("internal.example",)}, "other.example", 443, ["10.0.0.1"], "private"),
    ({"allow_hosts": ("*.corp.example",)}, "a.corp.example", 9000, ["10.0.0.1"], None),
    ({"allow_hosts": ("*.corp.example",)}, "corp.example", 443, ["10.0.0.1"], "private"),
    ({"allow_hosts": (".corp.example",)}, "b.a.corp.example", 443, ["10.0.0.1"], None),
    ({"allow_hosts": ("10.0.0.0/8",)}, "any.example", 9000, ["10.9.8.7"], None),
    ({"allow_hosts": ("10.0.0.0/8",)}, "any.example", 9000, ["11.0.0.1"], "port"),
    ({"allow_hosts": ("10.0.0.0/8",)}, "any.example", 443, ["10.0.0.1", "192.168.0.1"],
     "private"),
    ({"allow_hosts": ("fd00::/8",)}, "v6.example", 443, ["fd00::5"], None),
]


@pytest.mark.parametrize("opened, host, port, answers, rule", DECIDE)
def test_decide(opened, host, port, answers, rule):
    refusal = Policy(**opened).decide(host, port, answers)
    assert (refusal.rule if refusal else None) == rule


def test_ambient_mode_opens_private_networks_and_ports_but_not_metadata():
    ambient = Policy.from_config(None)
    assert ambient.decide("localhost", 8000, ["127.0.0.1"]) is None
    assert ambient.decide("h.example", 8000, ["93.184.216.34"]) is None
    assert ambient.decide("m.example", 80, ["169.254.169.254"]).rule == "cloud-metadata"


def test_a_configured_setup_guards_by_default():
    config = attachfs.load_config({"platform": {"http": {}}})
    policy = Policy.from_config(config)
    assert policy.decide("localhost", 80, ["127.0.0.1"]).rule == "loopback"
    assert policy.allow_ports == (80, 443) and policy.max_redirects == 5


# --------------------------------------------------------------------------- end to end

class FakeResolver(AbstractResolver):
    """Answers from a table and never leaves the process; unknown names do not resolve."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {"localhost": ["127.0.0.1"]}
        self.asked: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.asked.append(host)
        answers = self.names.get(host.lower().rstrip("."))
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, f"fake resolver: no such name {host!r}")
        return [{"hostname": host, "host": a, "port": port,
                 "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in answers]

    async def close(self) -> None:
        pass


@pytest.fixture
def dns(monkeypatch):
    resolver = FakeResolver()
    monkeypatch.setattr(net_resolver, "system_resolver", lambda: resolver)
    return resolver


@pytest.fixture
def connects(monkeypatch):
    """Every address a socket connected to (or tried to) during the test."""
    seen: list[object] = []
    real = socket.socket.connect

    def spy(sock, address):
        seen.append(address)
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    return seen


@pytest.fixture(scope="module")
def origin():
    with Origin() as server:
        yield server


@pytest.fixture(scope="module")
def tls_origin():
    ctx = TEST_CA.server_ssl_context()
    with Origin(ssl_context=ctx) as server:
        yield server


@pytest.fixture(scope="module")
def pinned_origin():
    """An https origin whose certificate names only ``pinned.test``."""
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    TEST_CA.ca.issue_cert("pinned.test").configure_cert(ctx)
    with Origin(ssl_context=ctx) as server:
        yield server


@pytest.fixture
def target(peers):
    """The server a refused read must never reach: peers.http with one object."""
    server = peers.http
    server.put("/g/obj", b"guarded bytes")
    server.clear_requests()
    return server


@pytest.fixture
def servers(origin, tls_origin, pinned_origin, target):
    for s in (origin, tls_origin, pinned_origin):
        s.answers.clear()
        s.clear_requests()
        s.server_names.clear()
    return {"origin": origin, "tls": tls_origin, "pinned": pinned_origin, "target": target}


def _port(url: str) -> int:
    return yarl.URL(url).port


def _config(peers, http: dict) -> dict:
    config = peers.config()
    config["platform"]["http"] = http
    return config


# Each row: url, [platform.http], fake DNS, redirects the origin answers (path -> Location),
# and the refusal rule expected. {target}/{origin}/{tls} are those servers' ports. In every row
# the target must see nothing, and nothing may connect to it.
REFUSED = [
    ("literal", "http://127.0.0.1:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("localhost", "http://localhost:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("decimal", "http://2130706433:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("hex", "http://0x7f000001:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("octal", "http://0177.0.0.1:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("short", "http://127.1:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("hex-dotted", "http://0x7f.0.0.1:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("octal-int", "http://017700000001:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("trailing-dot", "http://127.0.0.1.:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("percent", "http://%31%32%37.0.0.1:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("fullwidth", "http://①②⑦.0.0.1:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("mapped", "http://[::ffff:127.0.0.1]:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("mapped-hex", "http://[::ffff:7f00:1]:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("compatible", "http://[::127.0.0.1]:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("ipv6", "http://[::1]:{target}/g/obj", {}, {}, {}, "ssrf:loopback"),
    ("unspecified", "http://0:{target}/g/obj", {"allow_private_networks": True}, {}, {},
     "ssrf:unspecified"),
    ("unspecified-dotted", "http://0.0.0.0:{target}/g/obj", {"allow_private_networks": True},
     {}, {}, "ssrf:unspecified"),
    ("name-127.0.0.2", "http://internal.test:{target}/g/obj", {},
     {"internal.test": ["127.0.0.2"]}, {}, "ssrf:loopback"),
    ("rebinding: public first, loopback second", "http://rebind.test:{target}/g/obj", {},
     {"rebind.test": ["8.8.8.8", "127.0.0.1"]}, {}, "ssrf:loopback"),
    ("rebinding: loopback first", "http://rebind.test:{target}/g/obj", {},
     {"rebind.test": ["127.0.0.1", "8.8.8.8"]}, {}, "ssrf:loopback"),
    ("metadata even with private networks open", "http://meta.test:{target}/g/obj",
     {"allow_private_networks": True}, {"meta.test": ["169.254.169.254"]}, {},
     "ssrf:cloud-metadata"),
    ("public address on a closed port", "http://public.test:{target}/g/obj", {},
     {"public.test": ["8.8.8.8"]}, {}, "ssrf:port"),
    ("a name allowed is not its address", "http://127.0.0.1:{target}/g/obj",
     {"allow_hosts": ["localhost"]}, {}, {}, "ssrf:loopback"),
    ("redirect to a private literal", "http://origin.test:{origin}/r",
     {"allow_hosts": ["origin.test"]}, {"origin.test": ["127.0.0.1"]},
     {"/r": "http://127.0.0.1:{target}/g/obj"}, "ssrf:loopback"),
    ("redirect to an odd spelling", "http://origin.test:{origin}/r",
     {"allow_hosts": ["origin.test"]}, {"origin.test": ["127.0.0.1"]},
     {"/r": "http://2130706433:{target}/g/obj"}, "ssrf:loopback"),
    ("redirect to a name that resolves private", "http://origin.test:{origin}/r",
     {"allow_hosts": ["origin.test"]}, {"origin.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]},
     {"/r": "http://evil.test:{target}/g/obj"}, "ssrf:loopback"),
    ("redirect to metadata", "http://origin.test:{origin}/r",
     {"allow_hosts": ["origin.test"], "allow_private_networks": True},
     {"origin.test": ["127.0.0.1"]}, {"/r": "http://169.254.169.254/latest/meta-data/"},
     "ssrf:cloud-metadata"),
    ("redirect chain over the limit", "http://origin.test:{origin}/r1",
     {"allow_hosts": ["origin.test"], "max_redirects": 2}, {"origin.test": ["127.0.0.1"]},
     {"/r1": "/r2", "/r2": "/r3", "/r3": "http://origin.test:{origin}/r4",
      "/r4": "http://127.0.0.1:{target}/g/obj"}, "ssrf:redirect-limit"),
    ("redirect https -> http downgrade", "https://localhost:{tls}/r",
     {"allow_hosts": ["localhost"]}, {},
     {"/r": "http://localhost:{target}/g/obj"}, "ssrf:redirect-downgrade"),
    ("redirect to another scheme", "http://origin.test:{origin}/r",
     {"allow_hosts": ["origin.test"]}, {"origin.test": ["127.0.0.1"]},
     {"/r": "file:///etc/passwd"}, "ssrf:scheme"),
]


def _fill(text: str, servers) -> str:
    return text.format(target=_port(servers["target"].url), origin=servers["origin"].port,
                       tls=servers["tls"].port)


@pytest.mark.parametrize("url, http, names, redirects, rule",
                         [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_reads_reach_nothing(peers, servers, dns, connects, url, http, names,
                                     redirects, rule):
    dns.names.update(names)
    for path, location in redirects.items():
        servers["origin"].redirect(path, _fill(location, servers))
        servers["tls"].redirect(path, _fill(location, servers))
    fs = attachfs.filesystem(config=_config(peers, http), skip_instance_cache=True)
    url = _fill(url, servers)
    with pytest.raises(AccessRefused) as refused:
        fs.cat_file(url)
    assert refused.value.rule == rule
    target_port = _port(servers["target"].url)
    assert servers["target"].requests == []
    assert not [a for a in connects if isinstance(a, tuple) and a[1] == target_port]
    assert "?" not in str(refused.value) or "<redacted>" in str(refused.value)


def test_refusal_names_the_rule_the_address_and_how_to_open_it(peers, servers, dns):
    fs = attachfs.filesystem(config=_config(peers, {}), skip_instance_cache=True)
    with pytest.raises(AccessRefused) as refused:
        fs.cat_file(f"http://0x7f000001:{_port(servers['target'].url)}/g/obj?sig=SECRET")
    message = str(refused.value)
    assert "loopback" in message and "127.0.0.1" in message and "0x7f000001" in message
    assert "allow_private_networks" in message and "allow_hosts" in message
    assert "SECRET" not in message and "SECRET" not in repr(refused.value.__dict__)


def test_every_entry_point_is_guarded(peers, servers, dns, connects, tmp_path):
    fs = attachfs.filesystem(config=_config(peers, {}), skip_instance_cache=True)
    url = f"http://localhost:{_port(servers['target'].url)}/g/obj"
    calls = {
        "info": lambda: fs.info(url),
        "exists": lambda: fs.exists(url),
        "size": lambda: fs.size(url),
        "open": lambda: fs.open(url).read(1),  # open itself may make no request
        "cat": lambda: fs.cat([url]),
        "get": lambda: fs.get(url, str(tmp_path / "x")),
        "ls": lambda: fs.ls(url),
    }
    for name, call in calls.items():
        with pytest.raises(AccessRefused, match="loopback"):
            call()
            pytest.fail(f"{name} was not refused")
    assert servers["target"].requests == []


def test_redirects_aiohttp_follows_itself_are_checked_too(peers, servers, dns):
    # fsspec's ls fetches the page with aiohttp following redirects: the session's trace and
    # connector refuse the private hop before it connects.
    dns.names["origin.test"] = ["127.0.0.1"]
    servers["origin"].redirect("/dir/", f"http://127.0.0.1:{_port(servers['target'].url)}/g/")
    fs = attachfs.filesystem(config=_config(peers, {"allow_hosts": ["origin.test"]}),
                             skip_instance_cache=True)
    with pytest.raises(AccessRefused, match="loopback"):
        fs.ls(f"http://origin.test:{servers['origin'].port}/dir/")
    assert servers["target"].requests == []


ALLOWED = [
    ("private networks open", "http://127.0.0.1:{target}/g/obj",
     {"allow_private_networks": True}),
    ("host allowed by name", "http://localhost:{target}/g/obj", {"allow_hosts": ["localhost"]}),
    ("network allowed", "http://127.0.0.1:{target}/g/obj", {"allow_hosts": ["127.0.0.0/8"]}),
    ("address allowed", "http://[::ffff:127.0.0.1]:{target}/g/obj",
     {"allow_hosts": ["127.0.0.1"]}),
]


@pytest.mark.parametrize("url, http", [r[1:] for r in ALLOWED], ids=[r[0] for r in ALLOWED])
def test_allowed_reads(peers, servers, dns, url, http):
    fs = attachfs.filesystem(config=_config(peers, http), skip_instance_cache=True)
    assert fs.cat_file(_fill(url, servers)) == b"guarded bytes"
    assert [r.path for r in servers["target"].requests] == ["/g/obj"]


def test_redirects_within_the_limit_are_followed(peers, servers, dns):
    dns.names["origin.test"] = ["127.0.0.1"]
    target = _port(servers["target"].url)
    servers["origin"].redirect("/a", "/b", status=301)
    servers["origin"].redirect("/b", f"http://localhost:{target}/g/obj", status=307)
    config = _config(peers, {"allow_hosts": ["origin.test", "localhost"], "max_redirects": 2})
    fs = attachfs.filesystem(config=config, skip_instance_cache=True)
    assert fs.cat_file(f"http://origin.test:{servers['origin'].port}/a") == b"guarded bytes"
    assert servers["origin"].paths == ["/a", "/b"]
    assert fs.info(f"http://origin.test:{servers['origin'].port}/a")["size"] == 13


def test_pinned_address_keeps_the_name_for_host_and_tls(peers, servers, dns, connects):
    # The resolver's checked answer is what is connected to; Host and SNI still say the name
    # (the certificate names only pinned.test, so TLS fails unless SNI and verification use it).
    dns.names["pinned.test"] = ["127.0.0.1"]
    pinned = servers["pinned"]
    pinned.answer("/x", b"pinned bytes")
    fs = attachfs.filesystem(config=_config(peers, {"allow_hosts": ["pinned.test"]}),
                             skip_instance_cache=True)
    url = f"https://pinned.test:{pinned.port}/x"
    assert fs.cat_file(url) == b"pinned bytes"
    assert fs.cat_file(url) == b"pinned bytes"
    assert pinned.requests[0].headers["Host"] == f"pinned.test:{pinned.port}"
    assert pinned.server_names[0] == "pinned.test"
    assert ("127.0.0.1", pinned.port) in connects
    assert dns.asked.count("pinned.test") == 1  # resolved once, the checked answer reused


def test_credentials_are_not_forwarded_to_another_origin(peers, servers, dns):
    dns.names["other.test"] = ["127.0.0.1"]
    origin, target = servers["origin"], servers["target"]
    origin.redirect("/same", "/away")
    origin.redirect("/away", f"http://other.test:{_port(target.url)}/g/obj")
    guard = Guard.from_config(attachfs.load_config(_config(
        peers, {"allow_hosts": ["localhost", "other.test"]})))

    async def go():
        session = await guard.session()
        try:
            url = yarl.URL(f"http://localhost:{origin.port}/same")
            async with guard.open(session, url, headers={"Authorization": "Bearer t0ken",
                                                         "X-Keep": "1"}) as reply:
                return reply.resp.status, await reply.resp.read()
        finally:
            await session.close()

    assert asyncio.run(go()) == (200, b"guarded bytes")
    assert [r.headers.get("Authorization") for r in origin.requests] == ["Bearer t0ken"] * 2
    assert "Authorization" not in target.requests[0].headers
    assert target.requests[0].headers["X-Keep"] == "1"


def test_ambient_mode_reads_loopback_and_refuses_metadata(servers, dns):
    fs = attachfs.filesystem(skip_instance_cache=True)
    assert fs.cat_file(f"{servers['target'].url}/g/obj") == b"guarded bytes"
    dns.names["meta.test"] = ["169.254.169.254"]
    with pytest.raises(AccessRefused) as refused:
        fs.cat_file("http://meta.test/latest/meta-data/")
    assert refused.value.rule == "ssrf:cloud-metadata"


def test_errors_pickle_with_their_fields():
    import errno
    import pickle

    from attachfs import GaveUp, ReadTimeout, TooLarge

    timeout = ReadTimeout("https://h/x", "waited 1 s for more of the body (read timeout)",
                          phase="body", seconds=1.0)
    errors = [timeout, TooLarge("too big", url="https://h/x", size=10, limit=5),
              GaveUp("gave up", attempts=3, last_status=503, uri="https://h/x"),
              Guard().refuse(Refusal("loopback", "127.0.0.1 is a loopback address"),
                             "h", "https://h/x?sig=S")]
    for err in errors:
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
        assert back.__dict__ == err.__dict__
    assert pickle.loads(pickle.dumps(timeout)).errno == errno.ETIMEDOUT
    assert isinstance(timeout, OSError) and str(timeout).startswith("timed out reading https://h/x")
    assert "sig=S" not in str(errors[-1]) and errors[-1].rule == "ssrf:loopback"


def test_info_of_a_url_signed_for_get_falls_back_to_a_one_byte_get(peers, servers, dns):
    origin = servers["origin"]
    origin.answer("/signed", b"0123456789", head_status=403,
                  headers={"Content-Range": "bytes 0-0/10"})
    dns.names["origin.test"] = ["127.0.0.1"]
    fs = attachfs.filesystem(config=_config(peers, {"allow_hosts": ["origin.test"]}),
                             skip_instance_cache=True)
    url = f"http://origin.test:{origin.port}/signed?X-Amz-Signature=abc"
    assert fs.info(url)["size"] == 10
    assert [(r.method, r.headers.get("Range")) for r in origin.requests] == [
        ("HEAD", None), ("GET", "bytes=0-0")]


@pytest.mark.parametrize("url, rule", [
    ("http://169.254.169.254/latest/meta-data/", "ssrf:cloud-metadata"),
    ("http://0x7f000001/x", "ssrf:loopback"),
    ("http://[::ffff:10.0.0.1]/x", "ssrf:private"),
    ("http://93.184.216.34:8080/x", "ssrf:port"),
    ("http://files.example/x", None),
    ("https://93.184.216.34/x", None),
])
def test_literal_refusal_decides_without_io(url, rule):
    refusal = literal_refusal(attachfs.load_config({}), url)
    assert (refusal.rule if refusal else None) == rule
