"""Hostile input: refused clearly, up front, naming what is wrong.

* A malformed host (a bracket out of place, a label over 63 characters, a name over 253, an
  A-label that is not valid punycode, an empty label, percent-encoded junk, a dotted-number
  name that is no IPv4 address) is a ``ValueError`` naming the URI as soon as ``explain()`` is
  asked, and the read raises the same, before any name is resolved: never a ``UnicodeError``,
  an ``InvalidURL`` or an ``Invalid IPv6 URL`` out of yarl or urllib at read time.
* A config that nests without end, or is huge, is a ``ConfigError``: no ``RecursionError``, no
  gigabytes of parsing, a bounded size.
* A service-account key given inline as a *string* (where a file path belongs) is refused like
  the table form; so is an inline PEM where a certificate path belongs. Neither is echoed.
* Two tenants may not share an AWS account and external ID, an external ID at all (the platform
  generates one per tenant), a GCP service account or an Azure directory: each would let one
  tenant read as the other.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from aiohttp.abc import AbstractResolver
from hypothesis import given, settings
from hypothesis import strategies as st

import attachfs
from attachfs import AccessRefused, ConfigError

HTTP = {"platform": {"http": {"allow_private_networks": True}}}

# --------------------------------------------------------------------------- malformed hosts

MALFORMED_HOSTS = [
    ("label over 63", "a" * 64 + ".example.com"),
    ("label of 200", "b" * 200 + ".example.com"),
    ("name over 253", ".".join(["c" * 60] * 5)),
    # 127 one-letter labels make 253 characters, the longest valid name; 128 make 255.
    ("name of 255 with short labels", ".".join(["d"] * 128)),
    ("empty label", "files..example.com"),
    ("leading dot", ".example.com"),
    ("two trailing dots", "example.com.."),
    ("bare xn--", "xn--.example.com"),
    ("punycode cut short", "xn--zz.example.com"),
    ("punycode of a control character", "xn--a.example.com"),
    ("punycode ending in a hyphen", "xn--abc-.example.com"),
    ("punycode garbage", "xn--99999999.example.com"),
    ("percent junk", "%zz.example.com"),
    ("percent NUL", "ex%00ample.com"),
    ("percent slash", "ex%2Fample.com"),
    ("percent space", "exa%20mple.com"),
    ("space", "exa mple.com"),
    ("five numbers", "1.2.3.4.5"),
    ("number over 255", "999.1.1.1"),
    ("trailing numeric label", "files.example.123"),
]
MALFORMED_URLS = [
    ("bracket unclosed", "https://[::1/x"),
    ("bracket doubled", "https://[::1]]/x"),
    ("brackets nested", "https://[[::1]]/x"),
    ("bracket mid-name", "https://ex]ample.com/x"),
    ("brackets around a name", "https://[example.com]/x"),
    ("bracket before port", "https://example.com]:443/x"),
    ("zone id not an interface", "https://[fe80::1%25%00]/x"),
] + [(why, f"https://{host}/x") for why, host in MALFORMED_HOSTS]


@pytest.mark.parametrize("url", [u for _, u in MALFORMED_URLS],
                         ids=[w for w, _ in MALFORMED_URLS])
def test_explain_refuses_a_malformed_host_naming_the_uri(url: str) -> None:
    """ValueError (not AccessRefused, not a codec error) whose message names the URI."""
    with pytest.raises(ValueError) as refused:
        attachfs.explain(url, config=HTTP)
    err = refused.value
    assert not isinstance(err, (UnicodeError, AccessRefused)), repr(err)
    host = url.split("//", 1)[1].split("/", 1)[0]
    assert host[:40] in str(err) or url[:48] in str(err), str(err)


class NoDNS(AbstractResolver):
    """A resolver that records every name asked and answers none."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: int = socket.AF_INET) -> list[dict[str, Any]]:
        self.asked.append(host)
        raise socket.gaierror(socket.EAI_NONAME, f"no DNS in this test: {host!r}")

    async def close(self) -> None:
        pass


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> NoDNS:
    from attachfs._net import resolver as netguard  # the resolver seam

    resolver = NoDNS()
    monkeypatch.setattr(netguard, "system_resolver", lambda: resolver)
    return resolver


@pytest.mark.parametrize("url", [u for _, u in MALFORMED_URLS],
                         ids=[w for w, _ in MALFORMED_URLS])
def test_a_read_refuses_a_malformed_host_before_resolving_it(no_dns: NoDNS, url: str) -> None:
    """``open``/``cat``/``info`` raise the same ValueError explain() raises, and no name is
    ever handed to a resolver."""
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    for call in (lambda: fs.cat_file(url), lambda: fs.info(url), lambda: fs.open(url).read()):
        with pytest.raises(ValueError) as refused:
            call()
        assert not isinstance(refused.value, UnicodeError)
        assert "://" in str(refused.value), f"the error does not name the URI: {refused.value}"
    assert no_dns.asked == []


def _label(draw: st.DrawFn) -> str:
    """A valid LDH label (never an A-label: ``??--`` is reserved for those)."""
    return draw(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
                .filter(lambda label: label[2:4] != "--"))


@st.composite
def bad_hosts(draw: st.DrawFn) -> str:
    """A valid host with one defect put in at a random label."""
    labels = [_label(draw) for _ in range(draw(st.integers(2, 5)))]
    at = draw(st.integers(0, len(labels) - 1))
    defect = draw(st.sampled_from(["long", "empty", "xn", "percent", "bracket", "total"]))
    if defect == "long":
        labels[at] = "x" * draw(st.integers(64, 120))
    elif defect == "empty":
        labels.insert(at + 1 if at < len(labels) - 1 else at, "")
    elif defect == "xn":
        labels[at] = "xn--" + draw(st.sampled_from(["", "zz", "a", "abc-", "99999999", "ab--c"]))
    elif defect == "percent":
        labels[at] += draw(st.sampled_from(["%zz", "%0", "%00", "%2F", "%20", "%5B", "%ff"]))
    elif defect == "bracket":
        labels[at] += draw(st.sampled_from(["[", "]", "[]"]))
    else:
        labels = [draw(st.sampled_from(["abcdefghij" * 6, "k" * 62]))] * 5
    return ".".join(labels)


@settings(max_examples=200, deadline=None)
@given(host=bad_hosts(), scheme=st.sampled_from(["http", "https"]),
       port=st.sampled_from(["", ":443", ":8080"]))
def test_property_a_host_with_any_defect_is_a_value_error_at_explain(host: str, scheme: str,
                                                                     port: str) -> None:
    """Property: one defect anywhere in the host is enough for a ValueError at explain()."""
    with pytest.raises(ValueError) as refused:
        attachfs.explain(f"{scheme}://{host}{port}/obj", config=HTTP)
    assert not isinstance(refused.value, UnicodeError)


@st.composite
def good_hosts(draw: st.DrawFn) -> str:
    labels = [_label(draw) for _ in range(draw(st.integers(2, 5)))]
    labels[-1] = draw(st.from_regex(r"[a-z]{2,10}", fullmatch=True))  # a TLD is not a number
    return ".".join(labels)


@settings(max_examples=100, deadline=None)
@given(host=good_hosts())
def test_property_a_well_formed_host_is_accepted(host: str) -> None:
    """A control: the checks refuse defects only."""
    assert attachfs.explain(f"https://{host}/obj", config=HTTP).backend == "http"


@pytest.mark.parametrize("host", ["xn--bcher-kva.example", "bücher.example", "例え.テスト",
                                  "a" * 63 + ".example.com", "ex_ample.com", "EXAMPLE.COM.",
                                  "files.example.com:443", ".".join(["d"] * 126) + ".e"])
def test_unusual_but_valid_hosts_are_accepted(host: str) -> None:
    """A control: IDNs, 63-character labels, underscores, upper case and a trailing dot."""
    assert attachfs.explain(f"https://{host}/obj", config=HTTP).backend == "http"


# --------------------------------------------------------------------------- nesting and size

DEEP = 100_000
DEEP_TOML = [
    ("arrays", "[tenants.acme]\ndirect = " + "[" * DEEP + "]" * DEEP + "\n"),
    ("inline tables", "[platform]\nhttp = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n"),
    ("arrays in allow_hosts", "[platform.http]\nallow_hosts = " + "[" * DEEP + "]" * DEEP + "\n"),
    ("mixed", "[platform.http]\nallow_hosts = " + "[{a = " * (DEEP // 2) + "1" + "}]" * (DEEP // 2)
     + "\n"),
]


@pytest.mark.parametrize("text", [t for _, t in DEEP_TOML], ids=[w for w, _ in DEEP_TOML])
def test_deeply_nested_toml_is_a_config_error(tmp_path: Path, text: str) -> None:
    """100,000 levels of arrays or inline tables: ConfigError naming the file."""
    path = tmp_path / "deep.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config(path)
    assert str(path) in str(refused.value)


def test_a_deeply_nested_mapping_is_a_config_error() -> None:
    """The same through a mapping (``config={...}``): no RecursionError."""
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(20_000):
        inner["a"] = {}
        inner = inner["a"]
    for mapping in ({"platform": {"http": deep}}, {"tenants": {"acme": deep}}, deep):
        with pytest.raises(ConfigError):
            attachfs.load_config(mapping)


def test_a_deeply_nested_list_in_a_mapping_is_a_config_error() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(20_000):
        inner.append([])
        inner = inner[0]
    with pytest.raises(ConfigError):
        attachfs.load_config({"platform": {"http": {"allow_hosts": deep}}})


def test_a_huge_config_file_is_refused_by_its_size(tmp_path: Path) -> None:
    """A 64 MiB config (here all comments, so valid TOML) is refused before it is parsed."""
    path = tmp_path / "huge.toml"
    line = "# " + "x" * 1021 + "\n"
    with path.open("w") as f:
        for _ in range(64):
            f.write(line * 1024)
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config(path)
    assert str(path) in str(refused.value)


def test_a_large_realistic_config_still_loads(tmp_path: Path) -> None:
    """A control for the bound: 2,000 tenants, each with an integration, loads."""
    lines = ['[platform.aws]', 'role_name = "AttachmentReader"', ""]
    for i in range(2000):
        lines += [f"[tenants.t{i:05d}]",
                  f'aws = {{ account_id = "{100000000000 + i}", external_id = "ext-{i:08x}-gen" }}',
                  f'direct = ["gs://tenant-{i:05d}-bucket/"]', ""]
    path = tmp_path / "many.toml"
    path.write_text("\n".join(lines))
    assert len(attachfs.load_config(path).tenants) == 2000


def test_quadratic_dotted_keys_are_refused_within_bounded_memory(tmp_path: Path) -> None:
    """A 40 KB config of one dotted key with 20,000 parts costs tomllib seconds and ~1.5 GiB
    (its dotted-key handling is quadratic). In a child limited to 1 GiB more address space than
    it has after import, loading it must be a ConfigError, not a MemoryError."""
    path = tmp_path / "dotted.toml"
    path.write_text("platform.http." + ".".join(["a"] * 20_000) + " = 1\n")
    script = textwrap.dedent(f"""
        import resource, attachfs
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * resource.getpagesize()
        limit = used + 2**30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            attachfs.load_config({str(path)!r})
            print("loaded")
        except BaseException as err:
            print(type(err).__name__)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert done.stdout.decode().strip().splitlines()[-1:] == ["ConfigError"], (
        done.stdout.decode()[-500:], done.stderr.decode()[-1000:])


# --------------------------------------------------------------------------- inline secrets

KEY = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"
       "InlineKeyMaterialInlineKeyMaterial\n-----END PRIVATE KEY-----\n")
SA = {"type": "service_account", "project_id": "p", "private_key_id": "abc123",
      "private_key": KEY, "client_email": "sa@p.iam.gserviceaccount.com",
      "token_uri": "https://oauth2.googleapis.com/token"}

INLINE_CREDENTIALS = [
    ("json", json.dumps(SA)),
    ("pretty json", json.dumps(SA, indent=2)),
    ("json after whitespace", "  \n" + json.dumps(SA)),
    ("json without private key", json.dumps({k: v for k, v in SA.items() if k != "private_key"})),
    ("base64 json", base64.b64encode(json.dumps(SA).encode()).decode()),
    ("bare PEM", KEY),
]


@pytest.mark.parametrize("value", [v for _, v in INLINE_CREDENTIALS],
                         ids=[w for w, _ in INLINE_CREDENTIALS])
def test_an_inline_service_account_string_is_refused(value: str) -> None:
    """``[platform.gcp] credentials`` holding the key itself, not a path: ConfigError that
    says where the key belongs, without repeating any of it."""
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config({"platform": {"gcp": {"credentials": value}}})
    message = str(refused.value)
    assert "platform.gcp.credentials" in message
    assert "InlineKeyMaterial" not in message and "BEGIN PRIVATE KEY" not in message
    assert value[:20] not in message or value[:20].strip() == ""


def test_an_inline_service_account_string_in_a_toml_file_is_refused(tmp_path: Path) -> None:
    """The same in a TOML file, written as a multi-line literal string."""
    path = tmp_path / "attachfs.toml"
    path.write_text("[platform.gcp]\ncredentials = '''\n" + json.dumps(SA, indent=2) + "\n'''\n")
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config(path)
    assert "InlineKeyMaterial" not in str(refused.value)


def test_an_inline_pem_certificate_is_refused() -> None:
    """``client_certificate_path`` holding the PEM itself: refused, not echoed."""
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config({"platform": {"azure": {
            "client_id": "00000000-0000-0000-0000-0000000000a1",
            "client_certificate_path": KEY + "-----BEGIN CERTIFICATE-----\nMIIC\n"
                                             "-----END CERTIFICATE-----\n"}}})
    assert "InlineKeyMaterial" not in str(refused.value)


# --------------------------------------------------------------------------- shared identities

AZURE_PLATFORM = {"client_id": "00000000-0000-0000-0000-0000000000a1",
                  "client_secret_env": "ATTACHFS_AZURE_CLIENT_SECRET"}
DIRECTORY = "2b0c6c1e-0000-0000-0000-000000000000"


def _two(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str] = ("acme", "beta")
         ) -> dict[str, Any]:
    return {"platform": {"aws": {"role_name": "AttachmentReader"}, "azure": AZURE_PLATFORM},
            "tenants": {names[0]: a, names[1]: b}}


SHARED = [
    ("aws account + external id",
     {"aws": {"account_id": "111122223333", "external_id": "acme-5f0c"}},
     {"aws": {"account_id": "111122223333", "external_id": "acme-5f0c"}}),
    ("external id in two accounts",
     {"aws": {"account_id": "111122223333", "external_id": "shared-5f0c"}},
     {"aws": {"account_id": "444455556666", "external_id": "shared-5f0c"}}),
    ("gcp service account",
     {"gcp": {"service_account": "reader@acme-prod.iam.gserviceaccount.com"}},
     {"gcp": {"service_account": "reader@acme-prod.iam.gserviceaccount.com"}}),
    ("azure directory", {"azure": {"tenant_id": DIRECTORY}}, {"azure": {"tenant_id": DIRECTORY}}),
    ("azure directory, other case", {"azure": {"tenant_id": DIRECTORY}},
     {"azure": {"tenant_id": DIRECTORY.upper()}}),
]


@pytest.mark.parametrize("a, b", [(a, b) for _, a, b in SHARED], ids=[w for w, _, _ in SHARED])
def test_two_tenants_sharing_an_identity_is_a_config_error(a: dict[str, Any],
                                                           b: dict[str, Any]) -> None:
    """Either tenant could read as the other: the config is refused, naming both."""
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config(_two(a, b))
    assert "acme" in str(refused.value) and "beta" in str(refused.value)


INTEGRATIONS = {
    "aws": lambda v: {"aws": {"account_id": f"{111122223333 + v % 7:012d}",
                              "external_id": f"ext-{v:06d}"}},
    "gcp": lambda v: {"gcp": {"service_account": f"sa{v}@p.iam.gserviceaccount.com"}},
    "azure": lambda v: {"azure": {"tenant_id": f"2b0c6c1e-0000-0000-0000-{v:012d}"}},
}


@settings(max_examples=100, deadline=None)
@given(names=st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True), min_size=2,
                      max_size=6, unique=True),
       cloud=st.sampled_from(list(INTEGRATIONS)), data=st.data())
def test_property_any_two_tenants_sharing_an_integration_are_refused(
        names: list[str], cloud: str, data: st.DataObject) -> None:
    """Property: among any number of tenants with distinct integrations, making any two share
    one is a ConfigError naming those two; with all distinct, the config loads."""
    tenants = {n: INTEGRATIONS[cloud](i) for i, n in enumerate(names)}
    config = {"platform": {"aws": {"role_name": "AttachmentReader"}, "azure": AZURE_PLATFORM},
              "tenants": tenants}
    attachfs.load_config(config)
    first, second = data.draw(st.lists(st.sampled_from(names), min_size=2, max_size=2,
                                       unique=True))
    tenants[second] = json.loads(json.dumps(tenants[first]))
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config(config)
    assert first in str(refused.value) and second in str(refused.value)



# --------------------------------------------------------------------------- beyond the review

@pytest.mark.parametrize("url", [u for _, u in MALFORMED_URLS][:7] + [
    "https://a..b/x", "https://xn--zz.example.com/x", "https://files.example.123/x"])
def test_every_operation_refuses_a_malformed_host_before_resolving_it(no_dns: NoDNS,
                                                                      tmp_path: Path,
                                                                      url: str) -> None:
    """``ls``, ``get_file``, ``cat`` of many and ``exists`` as well: ValueError naming the URI,
    and no name handed to a resolver."""
    fs = attachfs.filesystem(config=HTTP, skip_instance_cache=True)
    for call in (lambda: fs.ls(url), lambda: fs.get_file(url, str(tmp_path / "out")),
                 lambda: fs.cat([url], on_error="raise"), lambda: fs.exists(url)):
        with pytest.raises(ValueError) as refused:
            call()
        assert "://" in str(refused.value) and not isinstance(refused.value, UnicodeError)
    assert no_dns.asked == []


@pytest.mark.parametrize("section, key, url", [
    ("http", "proxy", "http://egress..internal:3128"),
    ("http", "proxy", "http://[::1:3128"),
    ("aws", "endpoint_url", "http://xn--zz.example:9000"),
    ("aws", "sts_endpoint_url", "https://" + "s" * 64 + ".example"),
    ("gcp", "token_uri", "https://oauth2.googleapis.123/token"),
    ("azure", "authority", "https://login.micro%zzsoft.com"),
    ("azure", "endpoint_url", "http://[127.0.0.1]:10000/{account}"),
])
def test_a_config_url_with_a_malformed_host_is_refused(section: str, key: str,
                                                       url: str) -> None:
    """The config's own URLs get the same host check as the URLs reads are given."""
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config({"platform": {section: {key: url}}})
    assert f"platform.{section}.{key}" in str(refused.value)


def test_a_mapping_that_contains_itself_is_a_config_error() -> None:
    loop: dict[str, Any] = {}
    loop["again"] = loop
    with pytest.raises(ConfigError):
        attachfs.load_config({"platform": {"http": loop}})


@pytest.mark.parametrize("text", [
    '[platform.aws]\nprofile = """' + "[{" * 200 + "a.b." * 200 + '"""\n',
    "[platform.aws]\nprofile = '" + "[" * 200 + "'\n",
    "# " + "[" * 500 + "." * 500 + "\n[platform.aws]\nprofile = \"p\"\n",
    '[platform.aws]\n"' + "a." * 100 + '" = 1\n',
], ids=["multi-line string", "literal string", "comment", "quoted key"])
def test_brackets_and_dots_in_strings_and_comments_are_not_counted(tmp_path: Path,
                                                                   text: str) -> None:
    """A control for the pre-scan: only structure counts, not the text of strings, comments
    or quoted keys (the quoted key is then refused as unknown, by the loader, not the scan)."""
    path = tmp_path / "a.toml"
    path.write_text(text)
    try:
        attachfs.load_config(path)
    except ConfigError as err:
        assert "nested" not in str(err) and "dotted parts" not in str(err), str(err)


@pytest.mark.parametrize("text, refused", [
    ("platform." + ".".join(["a"] * 14) + " = 1\n", False),
    ("platform." + ".".join(["a"] * 16) + " = 1\n", True),
    ("[platform." + ".".join(["a"] * 16) + "]\n", True),
    ("[platform]\nhttp = {" + ".".join(["a"] * 17) + " = 1}\n", True),
    ("x = " + "[" * 32 + "]" * 32 + "\n", False),
    ("x = " + "[" * 33 + "]" * 33 + "\n", True),
])
def test_the_pre_scan_bounds_are_exact(tmp_path: Path, text: str, refused: bool) -> None:
    """16 parts per key and 32 levels of nesting are the bounds (above any real config, far
    below what makes tomllib slow)."""
    path = tmp_path / "a.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        attachfs.load_config(path)
    bounded = "nested" in str(err.value) or "dotted parts" in str(err.value)
    assert bounded == refused, str(err.value)


@pytest.mark.parametrize("key, value", [
    ("client_certificate_path", base64.b64encode(KEY.encode()).decode()),
    ("client_certificate_path", "certs/app.pem\n" + KEY),
    ("client_certificate_path", base64.urlsafe_b64encode(json.dumps(SA).encode()).decode()),
])
def test_more_inline_forms_are_refused(key: str, value: str) -> None:
    """A base64 PEM, a path followed by the PEM, a URL-safe base64 key: refused, not echoed."""
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config({"platform": {"azure": {
            "client_id": "00000000-0000-0000-0000-0000000000a1", key: value}}})
    message = str(refused.value)
    assert "InlineKeyMaterial" not in message and value[:24] not in message


def test_one_account_with_two_external_ids_loads() -> None:
    """A decision, kept by a control: two tenants may name one AWS account with different
    external IDs. A tenant can type any account id; the role's trust policy admits only the
    external ID its owner agreed to (the test_tenancy_aws 'mallory' case), and refusing the
    whole config would let one tenant's typo stop every tenant's reads."""
    config = attachfs.load_config(_two(
        {"aws": {"account_id": "111122223333", "external_id": "acme-5f0c"}},
        {"aws": {"account_id": "111122223333", "external_id": "beta-77aa"}}))
    assert set(config.tenants) == {"acme", "beta"}


def test_a_shared_external_id_is_not_repeated_in_the_error() -> None:
    """The refusal names the two tenants, not the external ID (kept out of messages)."""
    with pytest.raises(ConfigError) as refused:
        attachfs.load_config(_two(
            {"aws": {"account_id": "111122223333", "external_id": "sh4red-ext-id"}},
            {"aws": {"account_id": "444455556666", "external_id": "sh4red-ext-id"}}))
    assert "sh4red-ext-id" not in str(refused.value)
