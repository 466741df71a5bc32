"""The attachfs command line, run as the installed ``attachfs`` script against the emulators.

Most tests run the real script in a subprocess (exit codes, stdout/stderr, pipe and terminal
behaviour are what a user sees); some call ``cli.main(argv)`` in-process where a test must
inject a failure or read what the fakes recorded in between.

Sections: every command on every backend (ambient config); exit codes; ``cp`` (progress on a
terminal, quiet in a pipe, resume); then per cloud, the tenancy rules as ``check`` sees them
(each failure cause named with its fix) and ``policy`` proven on the fakes: moto IAM accepts the
AWS documents and they let the tenant read; the gcloud and az grants, applied to the fakes, turn
a failing ``check`` into a passing one.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import pty
import re
import select
import shlex
import socket
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import boto3
import pytest

from attachfs import AccessRefused
from attachfs import _credentials as credentials
from attachfs import _read as fetch
from attachfs import _rules as rules
from attachfs._cli import commands as cli
from attachfs.testing import AZURE_DEV_ACCOUNT, AZURE_DEV_KEY
from conftest import TEST_CA
from fakes.authz_proxy import AuthorizingProxy, azure_policy, gcs_policy
from fakes.azurite import azurite_https as start_azurite_https
from fakes.entra import FakeEntra
from fakes.google_iam import FakeGoogle
from stores import BACKENDS, new_store

pytestmark = pytest.mark.peers

ATTACHFS = str(Path(sys.executable).with_name("attachfs"))
DATA = bytes(range(256)) * 1200 + b"end"  # 307,203 bytes: more than transfer.OPEN_BLOCK


# ----------------------------------------------------------------------------------- helpers


def run(*argv, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The installed script, stdout and stderr captured as bytes (both are pipes)."""
    full = {**os.environ, **(env or {})}
    return subprocess.run([ATTACHFS, *map(str, argv)], capture_output=True, env=full,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def call(capsys, *argv) -> tuple[int, str, str]:
    """``cli.main`` in this process (text stdout/stderr)."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"


def write_toml(path: Path, mapping: dict) -> Path:
    lines: list[str] = []

    def table(prefix: str, m: dict) -> None:
        scalars = {k: v for k, v in m.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in m.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            lines.append(f"[{prefix}]")
        lines.extend(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in tables.items():
            table(f"{prefix}.{json.dumps(k)}" if prefix else json.dumps(k), v)

    table("", mapping)
    path.write_text("\n".join(lines) + "\n")
    return path


def fix_of(result: subprocess.CompletedProcess) -> str:
    """The text after "fix:" in a failed check's stderr."""
    err = result.stderr.decode()
    assert "fix:" in err, err
    return err.split("fix:", 1)[1]


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch):
    monkeypatch.delenv("ATTACHFS_TENANT", raising=False)
    monkeypatch.delenv("ATTACHFS_CONFIG", raising=False)
    credentials.forget_all()
    yield
    credentials.forget_all()


@pytest.fixture(scope="module")
def ambient(peers, tmp_path_factory) -> Path:
    """The emulators' config: no tenants, so ambient mode with their endpoints."""
    return write_toml(tmp_path_factory.mktemp("cli") / "ambient.toml", peers.config())


# ------------------------------------------------------------- every command, every backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_cat_writes_the_object_and_nothing_else(peers, ambient, backend):
    store = new_store(backend, peers)
    uri = store.put("dir/obj.bin", DATA)

    result = run("cat", "--config", ambient, uri)

    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == DATA


def test_cat_json_is_valid_and_carries_the_bytes(peers, ambient):
    s3 = new_store("s3", peers)
    web = new_store("http", peers)
    uris = [s3.put("a.bin", DATA), web.put("b.txt", b"hello"), s3.put("empty", b"")]

    result = run("cat", "--json", "--config", ambient, *uris)

    assert result.returncode == 0, result.stderr
    docs = json.loads(result.stdout)
    assert [d["uri"] for d in docs] == uris
    assert [base64.b64decode(d["content_base64"]) for d in docs] == [DATA, b"hello", b""]
    assert [d["size"] for d in docs] == [len(DATA), 5, 0]
    assert docs[0]["version"]  # the S3 ETag the read was pinned to


@pytest.mark.parametrize("backend", ["s3", "gcs", "azure"])
def test_ls_and_stat(peers, ambient, backend, capsys):
    store = new_store(backend, peers)
    for key in ("p/a.txt", "p/b.txt", "p/sub/c.txt"):
        store.put(key, key.encode())
    prefix = store.uri("p/")

    listed = run("ls", "--json", "--config", ambient, prefix)
    info = run("stat", "--json", "--config", ambient, store.uri("p/b.txt"))

    assert listed.returncode == 0, listed.stderr
    entries = {e["name"]: e for e in json.loads(listed.stdout)}
    assert set(entries) == {store.uri("p/a.txt"), store.uri("p/b.txt"), store.uri("p/sub")}
    assert entries[store.uri("p/a.txt")]["size"] == len(b"p/a.txt")
    assert entries[store.uri("p/sub")]["type"] == "directory"
    assert info.returncode == 0, info.stderr
    stat = json.loads(info.stdout)
    assert (stat["name"], stat["size"], stat["type"]) == (store.uri("p/b.txt"), 7, "file")

    # Text forms, in-process: names one per line (directories end in "/"), -r, -l.
    assert call(capsys, "ls", "--config", ambient, prefix) == (
        0, f"{store.uri('p/a.txt')}\n{store.uri('p/b.txt')}\n{store.uri('p/sub')}/\n", "")
    code, out, _ = call(capsys, "ls", "-r", "--config", ambient, prefix)
    assert (code, out.split()) == (0, [store.uri(k) for k in ("p/a.txt", "p/b.txt",
                                                              "p/sub/c.txt")])
    code, out, _ = call(capsys, "ls", "-l", "--config", ambient, prefix)
    assert out.splitlines()[0].split() == ["file", "7", store.uri("p/a.txt")]
    code, out, _ = call(capsys, "stat", "--config", ambient, store.uri("p/b.txt"))
    assert out.splitlines()[:3] == [f"name: {store.uri('p/b.txt')}", "size: 7", "type: file"]


TENANT_CONFIG = {
    "platform": {"aws": {"role_name": "AttachmentReader", "account_id": "307185671274"},
                 "http": {"proxy": "http://egress.internal:3128"}},
    "tenants": {"acme": {"aws": {"account_id": "111122223333", "external_id": "acme-5f0c"}},
                "globex": {"direct": [{"uri": "gs://globex-pub/data/"}]}},
}


def test_explain_prints_the_route_and_the_rule(tmp_path):
    cfg = write_toml(tmp_path / "t.toml", TENANT_CONFIG)

    text = run("explain", "--config", cfg, "--tenant", "acme",
               "https://s3-us-west-2.amazonaws.com/acme-data/k%20ey")
    as_json = run("explain", "--json", "--config", cfg, "--tenant", "globex",
                  "gs://globex-pub/data/x.csv")

    assert text.returncode == 0, text.stderr
    rows = dict(line.split(None, 1) for line in text.stdout.decode().splitlines())
    assert rows["uri"] == "s3://acme-data/k ey"
    assert rows["mode"] == "delegated"
    assert rows["identity"] == "arn:aws:iam::111122223333:role/AttachmentReader"
    assert rows["rule"] == rules.RULE_S3_DELEGATED
    assert rows["region"] == "us-west-2" and rows["proxy"] == "-"  # S3 never uses the proxy
    doc = json.loads(as_json.stdout)
    assert (doc["backend"], doc["mode"], doc["identity"]) == ("gcs", "direct", "platform:gcp")
    assert doc["claim"] == {"uri": "gs://globex-pub/data/", "owner": None}
    assert doc["proxy"] == "http://egress.internal:3128"
    assert doc["rule"] == rules.RULE_GCS_DIRECT
    assert "acme-5f0c" not in text.stdout.decode() + as_json.stdout.decode()


def test_explain_never_prints_a_signature():
    signed = ("https://acme-data.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
              "&X-Amz-Signature=deadbeefcafe0123456789")
    for argv in (["explain", signed], ["explain", "--json", signed]):
        result = run(*argv)
        assert result.returncode == 0, result.stderr
        assert b"deadbeefcafe0123456789" not in result.stdout + result.stderr


# ------------------------------------------------------------------------------ exit codes


@pytest.mark.parametrize("argv, code, says", [
    # argparse's own usage errors
    ([], 2, "usage"),
    (["cat"], 2, "usage"),
    (["cat", "--no-such-flag", "s3://b-one/k"], 2, "unrecognized arguments"),
    (["policy", "nocloud"], 2, "invalid choice"),
    # attachfs's: a message on stderr, nothing on stdout
    (["cat", "--config", "{ambient}", "not-a-uri"], 2, "has no scheme"),
    (["stat", "--config", "{missing}", "s3://b-one/k"], 2, "cannot read the config file"),
    (["policy", "aws", "--tenant", "acme"], 2, "--config"),
    (["cat", "--config", "{ambient}", "--tenant", "acme", "s3://b-one/k"], 1,
     "tenant-without-config"),
    (["cat", "--config", "{ambient}", "{s3}/no-such-key"], 1, "No such attachment"),
    (["explain", "--config", "{tenants}", "--tenant", "globex", "s3://b-one/k"], 1,
     "is not claimed by tenant 'globex'"),
])
def test_exit_codes(peers, ambient, tmp_path, capsys, argv, code, says):
    store = new_store("s3", peers)
    fill = {"ambient": ambient, "missing": tmp_path / "missing.toml",
            "tenants": write_toml(tmp_path / "t.toml", TENANT_CONFIG),
            "s3": store.uri().rstrip("/")}
    argv = [a.format(**{k: str(v) for k, v in fill.items()}) for a in argv]

    result = run(*argv)

    assert result.returncode == code, result.stderr
    assert result.stdout == b""  # data only, and there is none
    assert says in result.stderr.decode()
    assert b"Traceback" not in result.stderr
    if says in ("usage", "unrecognized arguments", "invalid choice"):
        return
    assert result.stderr.startswith(b"attachfs: ")
    # The same failure with --json (in-process): one JSON object on stderr, the same code.
    assert cli.main([argv[0], "--json", *argv[1:]]) == code
    out, err = capsys.readouterr()
    assert out == ""
    error = json.loads(err)["error"]
    assert error["exit_code"] == code and says in json.dumps(error)


def test_environment_supplies_tenant_and_config(tmp_path):
    cfg = write_toml(tmp_path / "t.toml", TENANT_CONFIG)
    env = {"ATTACHFS_CONFIG": str(cfg), "ATTACHFS_TENANT": "acme"}

    from_env = run("explain", "--json", "s3://acme-data/k", env=env)
    overridden = run("explain", "--json", "--tenant", "", "s3://acme-data/k", env=env)

    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["tenant"] == "acme"
    assert overridden.returncode == 1  # --tenant "" means no tenant: refused, not acme
    assert json.loads(overridden.stderr)["error"]["rule"] == "no-tenant"


def test_cat_into_a_closed_pipe_exits_quietly(peers, ambient):
    uri = new_store("s3", peers).put("big.bin", os.urandom(6 * 2**20))
    proc = subprocess.Popen([ATTACHFS, "cat", "--config", str(ambient), uri],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    assert len(proc.stdout.read(1000)) == 1000
    proc.stdout.close()  # `| head -c 1000`
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == cli.EXIT_PIPE
    assert err == b""


# -------------------------------------------------------------------------------------- cp


def test_cp_to_a_file_a_directory_and_recursively(peers, ambient, tmp_path, capsys):
    store = new_store("s3", peers)
    one = store.put("docs/one.bin", DATA)
    two = store.put("docs/deep/two.txt", b"two")

    assert call(capsys, "cp", "--config", ambient, one, tmp_path / "file.bin")[0] == 0
    assert (tmp_path / "file.bin").read_bytes() == DATA
    assert call(capsys, "cp", "--config", ambient, one, two, f"{tmp_path}/flat/")[0] == 0
    assert (tmp_path / "flat" / "one.bin").read_bytes() == DATA
    assert (tmp_path / "flat" / "two.txt").read_bytes() == b"two"
    code, out, err = call(capsys, "cp", "-r", "--json", "--config", ambient,
                          store.uri("docs/"), tmp_path / "tree")
    assert (code, err) == (0, "")
    assert (tmp_path / "tree" / "one.bin").read_bytes() == DATA
    assert (tmp_path / "tree" / "deep" / "two.txt").read_bytes() == b"two"
    report = json.loads(out)
    assert report["files"] == 2 and report["bytes"] == len(DATA) + 3
    assert {c["uri"] for c in report["copied"]} == {one, two}
    assert not list(tmp_path.rglob("*.part*"))  # nothing half-done left behind

    # Two objects to something that is not a directory is a usage error; nothing is written.
    code, _, err = call(capsys, "cp", "--config", ambient, one, two, tmp_path / "nodir")
    assert code == 2 and "must be a directory" in err
    assert not (tmp_path / "nodir").exists()
    code, _, err = call(capsys, "cp", "-r", "--config", ambient, store.uri("docs/"),
                        tmp_path / "file.bin")
    assert code == 2 and "must be a directory" in err
    assert (tmp_path / "file.bin").read_bytes() == DATA


def test_cp_never_writes_outside_the_destination(peers, ambient, tmp_path, capsys):
    store = new_store("s3", peers)
    store.put("p/ok.txt", b"ok")
    store.put("p/../../escaped.txt", b"evil")  # a key, not a path, to S3

    code, _, err = call(capsys, "cp", "-r", "--config", ambient, store.uri("p/"),
                        tmp_path / "dest" / "in")

    assert code == 2 and "not a safe local path" in err
    assert not list(tmp_path.rglob("escaped.txt"))


def test_cp_is_quiet_in_a_pipe(peers, ambient, tmp_path):
    uri = new_store("s3", peers).put("big.bin", DATA * 8)

    result = run("cp", "--config", ambient, uri, tmp_path / "out.bin")

    assert result.returncode == 0
    assert (result.stdout, result.stderr) == (b"", b"")
    assert (tmp_path / "out.bin").read_bytes() == DATA * 8


def _run_on_a_terminal(argv: list[str], timeout: float = 60) -> tuple[int, bytes, bytes]:
    """Run the script with stderr on a pty (stdout a pipe): (exit code, stdout, terminal)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([ATTACHFS, *argv], stdout=subprocess.PIPE, stderr=slave,
                            stdin=subprocess.DEVNULL)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        out = proc.stdout.read()
        return proc.wait(timeout=10), out, seen
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_cp_shows_progress_and_throughput_on_a_terminal(peers, ambient, tmp_path):
    store = new_store("s3", peers)
    big = store.put("big.bin", DATA * 20)  # 6 MiB: several chunks
    small = store.put("small.txt", b"small")

    code, out, terminal = _run_on_a_terminal(
        ["cp", "--config", str(ambient), big, small, f"{tmp_path}/"])

    assert code == 0, terminal
    assert out == b""
    text = terminal.decode()
    assert "\r" in text  # the line rewrites itself
    assert re.search(r"\[1/2\] big\.bin\s+\[#+-*\]\s+\d+%", text), text
    assert re.search(r"\d+\.\d (B|KiB|MiB|GiB)/s", text), text  # throughput
    assert "100%" in text
    assert re.search(r"copied 2 files, 5\.9 MiB in [\d.]+ s", text), text
    assert (tmp_path / "big.bin").read_bytes() == DATA * 20

    # --no-progress: silent even on a terminal.
    code, _, terminal = _run_on_a_terminal(
        ["cp", "--no-progress", "--config", str(ambient), small, f"{tmp_path}/again/"])
    assert (code, terminal) == (0, b"")


@pytest.fixture
def recorded_s3(peers, tmp_path):
    """A recording proxy in front of moto, and an ambient config that reads through it."""
    with AuthorizingProxy(peers.s3_endpoint, preserve_host=True) as proxy:
        cfg = peers.config()
        cfg["platform"]["aws"]["endpoint_url"] = proxy.url
        yield proxy, write_toml(tmp_path / "recorded.toml", cfg)


def _interrupt_after(monkeypatch, reads: int) -> None:
    """Make the copy fail (a dropped connection) after ``reads`` ranged GETs."""
    real = fetch.read
    count = {"n": 0}

    async def flaky(*args, **kwargs):
        count["n"] += 1
        if count["n"] > reads:
            raise ConnectionResetError("connection dropped (test)")
        return await real(*args, **kwargs)

    monkeypatch.setattr(fetch, "read", flaky)


def _settle(deadline: float = 30.0) -> None:
    """Wait until fsspec's loop runs no task: a read-ahead of the interrupted copy is left to
    finish into the pool (it keeps the connection), and must not be counted as the resume's."""
    import asyncio
    import time

    import fsspec.asyn

    async def pending() -> int:
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    loop = fsspec.asyn.get_loop()
    end = time.monotonic() + deadline
    while asyncio.run_coroutine_threadsafe(pending(), loop).result() and time.monotonic() < end:
        time.sleep(0.01)


def _ranges(proxy) -> list[tuple[int | None, int | None]]:
    """(first byte, last byte) of each recorded GET; (None, n) for a suffix of n bytes."""
    out = []
    for r in proxy.requests:
        if r.method != "GET":
            continue
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", r.headers.get("Range", "bytes=0-"))
        first, last = (int(x) if x else None for x in m.groups())
        out.append((first, last))
    return out


def test_cp_resumes_a_partial_copy_byte_exact(peers, recorded_s3, tmp_path, capsys,
                                              monkeypatch):
    proxy, cfg = recorded_s3
    payload = os.urandom(9 * 2**20 + 12345)
    uri = new_store("s3", peers).put("large.bin", payload)
    dest = tmp_path / "large.bin"

    _interrupt_after(monkeypatch, reads=2)
    code, _, err = call(capsys, "cp", "--config", cfg, uri, dest)
    monkeypatch.undo()
    assert code == 1 and "connection dropped" in err
    partial = (tmp_path / "large.bin.part").stat().st_size
    assert 2 * 2**20 <= partial < len(payload)  # enough to tell a resume from a restart
    assert payload.startswith((tmp_path / "large.bin.part").read_bytes())
    assert not dest.exists()

    _settle()
    proxy.clear_requests()
    result = run("cp", "--json", "--config", cfg, uri, dest)

    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == payload
    assert hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(payload).digest()
    [copied] = json.loads(result.stdout)["copied"]
    assert copied["resumed_from"] == partial
    assert not list(tmp_path.glob("*.part*"))
    # The second run fetched the rest, not the whole object again: apart from one small
    # request that learns the version (a tail or a first block), every range starts at or
    # after the partial length, and all of them are pinned to that version.
    ranges = _ranges(proxy)
    small = [r for r in ranges if r[0] is None or r[0] < partial]
    assert len(small) <= 1, ranges
    assert partial in [r[0] for r in ranges], ranges
    fetched = sum((r[1] - r[0] + 1) if r[0] is not None else r[1] for r in ranges)
    assert fetched <= len(payload) - partial + 2**20, ranges  # not the whole object again
    gets = [r for r in proxy.requests if r.method == "GET"]
    assert {r.headers.get("If-Match") for r in gets[1:]} == {copied["version"]}, [(r.headers.get("Range"), r.headers.get("If-Match")) for r in gets]


def test_cp_starts_over_when_the_object_changed(peers, recorded_s3, tmp_path, capsys,
                                                monkeypatch):
    _, cfg = recorded_s3
    store = new_store("s3", peers)
    old, new = os.urandom(5 * 2**20), os.urandom(5 * 2**20)
    uri = store.put("changing.bin", old)
    dest = tmp_path / "changing.bin"
    _interrupt_after(monkeypatch, reads=1)
    assert call(capsys, "cp", "--config", cfg, uri, dest)[0] == 1
    monkeypatch.undo()
    assert (tmp_path / "changing.bin.part").stat().st_size > 0

    store.put("changing.bin", new)  # same key and size, another version
    result = run("cp", "--json", "--config", cfg, uri, dest)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["copied"][0]["resumed_from"] == 0
    assert dest.read_bytes() == new


# ------------------------------------------------------------------- check: generic causes


def test_check_names_the_rule_that_refused_a_read(peers, ambient, capsys, monkeypatch):
    # The SSRF guard refuses at connect time, inside the read; whatever its rule is called,
    # check reports the read step, the rule's name and its message.
    uri = new_store("http", peers).put("x.txt", b"x")

    async def refused(client, route, *args):
        raise AccessRefused("read of http://10.0.0.1/x refused by the network guard "
                            "(private): 10.0.0.1 is a private address", uri=route.uri,
                            rule="ssrf:private")

    monkeypatch.setattr(fetch.http, "read", refused)
    code, out, err = call(capsys, "check", "--json", "--config", ambient, uri)

    assert code == 1
    report = json.loads(out)
    assert report["failed_step"] == "read"
    assert [s["status"] for s in report["steps"]] == ["ok", "ok", "failed"]
    assert report["steps"][2]["error"]["rule"] == "ssrf:private"
    assert "private addresses" in report["fix"] and "allow_private_networks" in report["fix"]
    assert report["exit_code"] == 1
    assert err == ""  # --json: one document, on stdout


def test_check_passes_every_step_in_ambient_mode(peers, ambient):
    uri = new_store("gcs", peers).put("x.txt", b"xyz")

    result = run("check", "--config", ambient, uri)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert re.match(r"1\. route\s+ok\s+gcs, ambient", lines[1])
    assert re.match(r"2\. credentials\s+ok", lines[2])
    assert re.match(r"3\. read\s+ok\s+read 1 byte", lines[3])
    assert result.stderr == b""


# ============================================================================================
# AWS: moto with IAM enforcement on: the platform is an IAM user; the tenant's role
# lives in the same account (moto evaluates the trust policy only there) and trusts that user.
# ============================================================================================

ACCOUNT = "123456789012"  # moto's account: platform and tenant roles share it
ROLE = "AttachmentReader"
EXTERNAL_ID = "acme-5f0c"


def _moto_reset(peers) -> None:
    """Empty moto only (IAM included); the other emulators keep this module's buckets."""
    host, port = peers.s3_endpoint.rsplit("/", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", "/moto-api/reset", body=b"")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    peers.disable_iam()  # /moto-api/reset keeps enforcement as it was


def _admin(peers, service: str):
    return boto3.client(service, endpoint_url=peers.s3_endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def iam_world(peers):
    """Seeded with enforcement off; the ``aws`` fixture turns it on for each test."""
    _moto_reset(peers)
    suffix = uuid.uuid4().hex[:8]
    buckets = {name: f"{name}-{suffix}" for name in ("acme", "platform", "other", "newco")}
    s3 = _admin(peers, "s3")
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="doc.bin", Body=DATA)
    seeded = peers.seed_delegation(platform_buckets=[buckets["platform"]], role_name=ROLE,
                                   role_buckets=[buckets["acme"]], external_id=EXTERNAL_ID,
                                   user=f"attachfs-platform-{suffix}")
    keys, user_arn = seeded["keys"], seeded["user_arn"]
    return {"buckets": buckets, "keys": keys, "user_arn": user_arn, "suffix": suffix}


@pytest.fixture
def aws(iam_world, peers, monkeypatch):
    """The process (and every script it runs) is the platform's IAM user; enforcement on."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", iam_world["keys"]["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", iam_world["keys"]["SecretAccessKey"])
    peers.enable_iam()
    try:
        yield iam_world
    finally:
        peers.disable_iam()


def _aws_config(peers, world, role: str = ROLE, tenants: dict | None = None) -> dict:
    return {
        "platform": {"aws": {"role_name": role, "account_id": ACCOUNT,
                             "endpoint_url": peers.s3_endpoint,
                             "sts_endpoint_url": peers.s3_endpoint, "region": "us-east-1"}},
        "tenants": tenants or {
            "acme": {"aws": {"account_id": ACCOUNT, "external_id": EXTERNAL_ID}},
            "globex": {"direct": [{"uri": f"s3://{world['buckets']['platform']}",
                                   "owner": ACCOUNT}]},
            "mallory": {"aws": {"account_id": ACCOUNT, "external_id": "not-the-agreed-id"}},
        },
    }


@pytest.fixture
def aws_cfg(aws, peers, tmp_path) -> Path:
    return write_toml(tmp_path / "aws.toml", _aws_config(peers, aws))


def test_aws_commands_read_as_the_tenants_role(aws, aws_cfg, tmp_path):
    acme = aws["buckets"]["acme"]
    uri = f"s3://{acme}/doc.bin"

    cat = run("cat", "--config", aws_cfg, "--tenant", "acme", uri)
    ls = run("ls", "--config", aws_cfg, "--tenant", "acme", f"s3://{acme}/")
    stat = run("stat", "--json", "--config", aws_cfg, "--tenant", "acme", uri)
    cp = run("cp", "--config", aws_cfg, "--tenant", "acme", uri, tmp_path / "doc.bin")
    check = run("check", "--config", aws_cfg, "--tenant", "acme", uri)
    # The platform's own identity can read the platform bucket; acme's role cannot.
    denied = run("cat", "--config", aws_cfg, "--tenant", "acme",
                 f"s3://{aws['buckets']['platform']}/doc.bin")

    assert (cat.returncode, cat.stdout, cat.stderr) == (0, DATA, b"")
    assert ls.stdout.decode().split() == [uri]
    assert json.loads(stat.stdout)["size"] == len(DATA)
    assert cp.returncode == 0 and (tmp_path / "doc.bin").read_bytes() == DATA
    assert check.returncode == 0, check.stderr
    assert f"assumed arn:aws:iam::{ACCOUNT}:role/{ROLE}" in check.stdout.decode()
    assert denied.returncode == 1 and denied.stdout == b""
    assert f"arn:aws:s3:::{aws['buckets']['platform']}/*" in denied.stderr.decode()


@pytest.mark.parametrize("tenant, bucket, step, fix_says", [
    pytest.param("mallory", "acme", "credentials",
                 ["trust policy", "sts:ExternalId", "attachfs policy aws --tenant mallory"],
                 id="assume-role-refused"),
    pytest.param("acme", "platform", "read",
                 ["permission policy", "s3:GetObject", "arn:aws:s3:::{bucket}/*",
                  "attachfs policy aws --tenant acme"], id="get-object-denied"),
    pytest.param("globex", "other", "route",
                 ["add a claim", "\"s3://{bucket}\" in tenants.globex.direct",
                  "delegated access", "attachfs policy aws --tenant globex"],
                 id="unclaimed-bucket"),
])
def test_aws_check_names_the_failed_step_and_the_fix(aws, aws_cfg, capsys, tenant, bucket,
                                                    step, fix_says):
    name = aws["buckets"][bucket]
    uri = f"s3://{name}/doc.bin"
    says = [s.format(bucket=name) for s in fix_says]

    result = run("check", "--config", aws_cfg, "--tenant", tenant, uri)

    assert result.returncode == 1
    number = ["route", "credentials", "read"].index(step) + 1
    assert re.search(rf"^{number}\. {step}\s+FAILED", result.stdout.decode(), re.M)
    assert f"check failed at step {number} ({step})" in result.stderr.decode()
    fix = fix_of(result)
    for words in says:
        assert words in fix, fix
    assert "not-the-agreed-id" not in result.stdout.decode() + result.stderr.decode()

    credentials.forget_all()
    code, out, _ = call(capsys, "check", "--json", "--config", aws_cfg, "--tenant", tenant, uri)
    report = json.loads(out)
    assert (code, report["ok"], report["failed_step"]) == (1, False, step)
    for words in says:
        assert words in report["fix"]


def test_policy_aws_is_accepted_by_iam_and_lets_the_tenant_read(aws, peers, tmp_path):
    world = aws
    suffix = world["suffix"]
    role = f"AttachfsGenerated{suffix}"  # its own role name: acme's role stays as it is
    target = world["buckets"]["newco"]
    config = _aws_config(peers, world, role=role, tenants={
        "newco": {"aws": {"account_id": ACCOUNT, "external_id": f"newco-{suffix}"}},
        "intruder": {"aws": {"account_id": ACCOUNT, "external_id": f"guess-{suffix}"}}})
    # moto's 500 for a role that does not exist is retried like any 5xx: for 1 s, not 60.
    config["limits"] = {"retry_window": 1.0}
    cfg = write_toml(tmp_path / "newco.toml", config)
    as_json = run("policy", "aws", "--json", "--config", cfg, "--tenant", "newco",
                  "--bucket", target)
    as_text = run("policy", "aws", "--config", cfg, "--tenant", "newco", "--bucket", target)
    assert as_json.returncode == 0 and as_text.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["role_name"] == role
    text = as_text.stdout.decode()
    assert json.dumps(doc["trust_policy"], indent=2) in text
    assert json.dumps(doc["permission_policy"], indent=2) in text

    # Before the role exists, newco cannot read. (moto hands out a session for a role that
    # does not exist and fails the read with a 500, so only the outcome is asserted here.)
    before = run("cat", "--config", cfg, "--tenant", "newco", f"s3://{target}/doc.bin")
    assert (before.returncode, before.stdout) == (1, b"")

    peers.disable_iam()  # the customer creating the role: as an administrator
    iam = _admin(peers, "iam")
    iam.create_role(RoleName=doc["role_name"],
                    AssumeRolePolicyDocument=json.dumps(doc["trust_policy"]))
    iam.put_role_policy(RoleName=doc["role_name"], PolicyName=doc["permission_policy_name"],
                        PolicyDocument=json.dumps(doc["permission_policy"]))
    stored = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert stored == doc["trust_policy"]
    assert json.loads(json.dumps(iam.get_role_policy(
        RoleName=role, PolicyName=doc["permission_policy_name"])["PolicyDocument"])) == \
        doc["permission_policy"]
    # moto refuses a trust principal of arn:aws:iam::ACCOUNT:root when evaluating AssumeRole
    # (AWS accepts it: the account root delegates to its IAM users). To prove the
    # rest of the generated policy works, the principal alone is swapped for the platform
    # user's exact ARN; the ExternalId condition and the permission policy stay as generated.
    trust = json.loads(json.dumps(doc["trust_policy"]))
    assert trust["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    trust["Statement"][0]["Principal"] = {"AWS": world["user_arn"]}
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trust))
    # A versioned object: reading a named version needs s3:GetObjectVersion, which moto's IAM
    # enforcement checks as AWS does (GetObject docs, "Permissions").
    s3 = _admin(peers, "s3")
    s3.put_bucket_versioning(Bucket=target, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=target, Key="versioned.bin", Body=b"first")["VersionId"]
    s3.put_object(Bucket=target, Key="versioned.bin", Body=b"second")
    peers.enable_iam()
    credentials.forget_all()

    versioned = run("cat", "--config", cfg, "--tenant", "newco",
                    f"https://{target}.s3.amazonaws.com/versioned.bin?versionId={first}")
    read = run("cat", "--config", cfg, "--tenant", "newco", f"s3://{target}/doc.bin")
    check = run("check", "--config", cfg, "--tenant", "newco", f"s3://{target}/doc.bin")
    # The permission policy grants that bucket only ...
    other = run("cat", "--config", cfg, "--tenant", "newco",
                f"s3://{world['buckets']['acme']}/doc.bin")
    # ... and the trust policy's ExternalId condition keeps out a tenant that guessed the role.
    intruder = run("check", "--config", cfg, "--tenant", "intruder", f"s3://{target}/doc.bin")

    assert (read.returncode, read.stdout) == (0, DATA), read.stderr
    assert (versioned.returncode, versioned.stdout) == (0, b"first"), versioned.stderr
    assert check.returncode == 0, check.stderr
    assert other.returncode == 1 and "s3:GetObject" in other.stderr.decode()
    assert intruder.returncode == 1 and "sts:ExternalId" in fix_of(intruder)


def test_policy_bucket_is_accepted_as_an_s3_bucket_policy(aws, peers, tmp_path):
    world = aws
    cfg = write_toml(tmp_path / "aws.toml", _aws_config(peers, world))
    result = run("policy", "bucket", "--json", "--config", cfg, "--tenant", "globex")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["s3"]
    assert entry["bucket"] == world["buckets"]["platform"]

    peers.disable_iam()
    s3 = _admin(peers, "s3")
    s3.put_bucket_policy(Bucket=entry["bucket"], Policy=json.dumps(entry["policy"]))
    try:
        assert json.loads(s3.get_bucket_policy(Bucket=entry["bucket"])["Policy"]) == \
            entry["policy"]
    finally:
        s3.delete_bucket_policy(Bucket=entry["bucket"])
        peers.enable_iam()


# ============================================================================================
# GCS: google-auth against FakeGoogle; an authorising proxy in front of fake-gcs-server lets
# each principal read only its own buckets (as in test_tenancy_gcs.py).
# ============================================================================================

GCP_PLATFORM = "platform@attach-platform.iam.gserviceaccount.com"
READER = "reader@acme-prod.iam.gserviceaccount.com"
NOBODY = "nobody@acme-prod.iam.gserviceaccount.com"
NEWSA = "attach-newco@newco-prod.iam.gserviceaccount.com"
_GCS = uuid.uuid4().hex[:10]
ACME_GCS, PLATFORM_GCS, NEWCO_GCS = f"acme-g-{_GCS}", f"platform-g-{_GCS}", f"newco-g-{_GCS}"


@pytest.fixture(scope="module")
def google():
    with FakeGoogle(project_id="attach-platform") as fake:
        fake.grant_token_creator(GCP_PLATFORM, READER)
        yield fake


@pytest.fixture(scope="module")
def gcs_allowed() -> dict:
    return {READER: {ACME_GCS}, GCP_PLATFORM: {PLATFORM_GCS}}


@pytest.fixture(scope="module")
def gcs_world(peers, google, gcs_allowed, tmp_path_factory):
    for bucket in (ACME_GCS, PLATFORM_GCS, NEWCO_GCS):
        peers.make_gcs_bucket(bucket)
        peers.put_gcs(bucket, "docs/report.bin", DATA)
    key = google.write_service_account_file(
        GCP_PLATFORM, tmp_path_factory.mktemp("gcp") / "platform-sa.json")
    with AuthorizingProxy(peers.gcs_endpoint,
                          gcs_policy(google.principal_for_token, gcs_allowed)) as proxy:
        cfg = write_toml(tmp_path_factory.mktemp("gcp") / "gcp.toml", {
            "platform": {"gcp": {"credentials": str(key), "endpoint_url": proxy.url,
                                 "iam_endpoint_url": google.url}},
            "tenants": {"acme": {"gcp": {"service_account": READER}},
                        "globex": {"direct": [f"gs://{PLATFORM_GCS}"]},
                        "initech": {"gcp": {"service_account": NOBODY}},
                        "newco": {"gcp": {"service_account": NEWSA}}},
        })
        yield {"proxy": proxy, "config": cfg}


def test_gcs_commands_read_as_the_impersonated_service_account(gcs_world, google):
    cfg, proxy = gcs_world["config"], gcs_world["proxy"]
    proxy.clear_requests()
    uri = f"gs://{ACME_GCS}/docs/report.bin"

    cat = run("cat", "--config", cfg, "--tenant", "acme", uri)
    ls = run("ls", "--config", cfg, "--tenant", "acme", f"gs://{ACME_GCS}/docs/")
    check = run("check", "--config", cfg, "--tenant", "acme", uri)
    direct = run("cat", "--config", cfg, "--tenant", "globex",
                 f"gs://{PLATFORM_GCS}/docs/report.bin")

    assert (cat.returncode, cat.stdout) == (0, DATA), cat.stderr
    assert ls.stdout.decode().split() == [uri]
    assert check.returncode == 0, check.stderr
    assert f"impersonated {READER}" in check.stdout.decode()
    assert (direct.returncode, direct.stdout) == (0, DATA), direct.stderr
    assert {r.principal for r in proxy.requests} == {READER, GCP_PLATFORM}


@pytest.mark.parametrize("tenant, bucket, step, fix_says", [
    pytest.param("initech", ACME_GCS, "credentials",
                 ["Service Account Token Creator", NOBODY, "attachfs policy gcp"],
                 id="impersonation-refused"),
    pytest.param("acme", PLATFORM_GCS, "read",
                 ["Storage Object Viewer", f"gs://{PLATFORM_GCS}", READER], id="gcs-denied"),
    pytest.param("globex", ACME_GCS, "route",
                 ["add a claim", f"\"gs://{ACME_GCS}\" in tenants.globex.direct",
                  "delegated access"], id="unclaimed-bucket"),
])
def test_gcs_check_names_the_failed_step_and_the_fix(gcs_world, tenant, bucket, step,
                                                    fix_says):
    result = run("check", "--config", gcs_world["config"], "--tenant", tenant,
                 f"gs://{bucket}/docs/report.bin")

    assert result.returncode == 1
    assert f"({step})" in result.stderr.decode()
    fix = fix_of(result)
    for words in fix_says:
        assert words in fix, fix


def _gcloud(text: str) -> list[list[str]]:
    return [shlex.split(line) for line in text.splitlines() if line.startswith("gcloud ")]


def _flag(argv: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}="))


def test_policy_gcp_grants_applied_to_the_fakes_make_check_pass(gcs_world, google,
                                                                gcs_allowed):
    cfg = gcs_world["config"]
    uri = f"gs://{NEWCO_GCS}/docs/report.bin"
    result = run("policy", "gcp", "--config", cfg, "--tenant", "newco",
                 "--bucket", f"gs://{NEWCO_GCS}")
    assert result.returncode == 0, result.stderr
    create, token_creator, reader = _gcloud(result.stdout.decode())

    assert create[:5] == ["gcloud", "iam", "service-accounts", "create", "attach-newco"]
    assert "--project=newco-prod" in create
    assert run("check", "--config", cfg, "--tenant", "newco", uri).returncode == 1

    # The customer runs the two grants; here they are applied to the fakes, as written.
    assert token_creator[:5] == ["gcloud", "iam", "service-accounts", "add-iam-policy-binding",
                                 NEWSA]
    assert _flag(token_creator, "role") == "roles/iam.serviceAccountTokenCreator"
    google.grant_token_creator(_flag(token_creator, "member").removeprefix("serviceAccount:"),
                               token_creator[4])
    assert _flag(reader, "role") == "roles/storage.objectViewer"
    member = _flag(reader, "member").removeprefix("serviceAccount:")
    gcs_allowed.setdefault(member, set()).add(reader[4].removeprefix("gs://"))
    try:
        after = run("check", "--config", cfg, "--tenant", "newco", uri)
        assert after.returncode == 0, after.stdout + after.stderr
    finally:
        google.revoke_token_creator(GCP_PLATFORM, NEWSA)
        gcs_allowed.pop(member, None)


# ============================================================================================
# Azure: azure-identity against FakeEntra; the storage SDK (through adlfs) against HTTPS
# Azurite behind an authorising proxy (as in test_tenancy_azure.py).
# ============================================================================================

APP = str(uuid.uuid4())
DIR_A, DIR_B, DIR_C = (str(uuid.uuid4()) for _ in range(3))  # acme, initech, newco
SECRET_ENV = "ATTACHFS_TEST_CLI_APP_SECRET"
SECRET = f"cli-app-secret-{uuid.uuid4().hex}"
AZ_GRANTS: dict = {(DIR_A, APP): {(AZURE_DEV_ACCOUNT, "acme-c")}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def azure_world(tmp_path_factory):
    work = tmp_path_factory.mktemp("azure-cli")
    leaf = TEST_CA.ca.issue_cert("127.0.0.1", "localhost")
    leaf.cert_chain_pems[0].write_to_path(str(work / "cert.pem"))
    leaf.private_key_pem.write_to_path(str(work / "key.pem"))
    tls = (str(work / "cert.pem"), str(work / "key.pem"))
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(
                start_azurite_https(work, tls[0], tls[1], str(TEST_CA.cert_pem)))
        except RuntimeError as err:  # never skipped: CI must run every emulator-backed test
            pytest.fail(str(err))
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient(f"{url}/{AZURE_DEV_ACCOUNT}", connection_verify=str(
                TEST_CA.cert_pem), credential={"account_name": AZURE_DEV_ACCOUNT,
                                               "account_key": AZURE_DEV_KEY}) as service:
            for name in ("acme-c", "platform-c", "newco-c"):
                service.create_container(name)
                service.get_blob_client(name, "obj.bin").upload_blob(DATA)
        with FakeEntra(ca=TEST_CA.ca) as entra, AuthorizingProxy(
                url, azure_policy(AZ_GRANTS), tls=tls,
                upstream_ca=str(TEST_CA.cert_pem)) as proxy:
            cfg = write_toml(work / "azure.toml", {
                "platform": {"azure": {"client_id": APP, "client_secret_env": SECRET_ENV,
                                       "authority": entra.authority,
                                       "endpoint_url": f"{proxy.url}/{{account}}"}},
                "tenants": {"acme": {"azure": {"tenant_id": DIR_A}},
                            "initech": {"azure": {"tenant_id": DIR_B}},
                            "newco": {"azure": {"tenant_id": DIR_C}}},
            })
            yield {"entra": entra, "proxy": proxy, "config": cfg}


@pytest.fixture
def azure(azure_world, monkeypatch):
    entra = azure_world["entra"]
    entra.reset()
    entra.register_app(APP, secret=SECRET)
    entra.consent(DIR_A, APP)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return azure_world


def blob(container: str) -> str:
    return f"https://{AZURE_DEV_ACCOUNT}.blob.core.windows.net/{container}/obj.bin"


def test_azure_commands_read_as_the_app_in_the_tenants_directory(azure):
    cfg = azure["config"]

    cat = run("cat", "--config", cfg, "--tenant", "acme", blob("acme-c"))
    check = run("check", "--config", cfg, "--tenant", "acme", blob("acme-c"))

    assert (cat.returncode, cat.stdout) == (0, DATA), cat.stderr
    assert check.returncode == 0, check.stderr
    assert f"got a token for app {APP} in directory {DIR_A}" in check.stdout.decode()
    assert SECRET.encode() not in cat.stderr + check.stdout + check.stderr


@pytest.mark.parametrize("tenant, container, step, fix_says", [
    pytest.param("initech", "acme-c", "credentials", ["administrator", "consent"],
                 id="token-refused-no-consent"),
    pytest.param("acme", "platform-c", "read",
                 ["Storage Blob Data Reader", APP, "platform-c",
                  "attachfs policy azure --tenant acme"], id="blob-403"),
])
def test_azure_check_names_the_failed_step_and_the_fix(azure, tenant, container, step,
                                                      fix_says):
    result = run("check", "--config", azure["config"], "--tenant", tenant, blob(container))

    assert result.returncode == 1
    assert f"({step})" in result.stderr.decode()
    fix = fix_of(result)
    for words in fix_says:
        assert words in fix, fix
    assert SECRET.encode() not in result.stdout + result.stderr
    assert b"get_token failed" not in result.stderr  # azure-identity's own log stays quiet


def test_policy_azure_steps_applied_to_the_fakes_make_check_pass(azure):
    cfg, entra = azure["config"], azure["entra"]
    result = run("policy", "azure", "--json", "--config", cfg, "--tenant", "newco",
                 "--bucket", f"https://{AZURE_DEV_ACCOUNT}.blob.core.windows.net/newco-c")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)

    def check():
        credentials.forget_all()
        return run("check", "--config", cfg, "--tenant", "newco", blob("newco-c"))

    before = check()
    assert before.returncode == 1 and "(credentials)" in before.stderr.decode()

    # Step 1, the consent link: it names the directory and the app that gets consent.
    m = re.fullmatch(r"(.+)/([0-9a-f-]{36})/adminconsent\?client_id=([0-9a-f-]{36})",
                     doc["consent_url"])
    assert m and m[1] == entra.authority
    entra.consent(m[2], m[3])
    halfway = check()
    assert halfway.returncode == 1 and "(read)" in halfway.stderr.decode()
    assert "Storage Blob Data Reader" in fix_of(halfway)

    # Step 2, the role assignment, as the az command line grants it.
    [assign] = [c for c in doc["commands"] if c[:3] == ["az", "role", "assignment"]]
    assert assign[assign.index("--role") + 1] == "Storage Blob Data Reader"
    scope = re.fullmatch(r"\$\(az storage account show --name (\w+) --query id --output tsv\)"
                         r"/blobServices/default/containers/([\w-]+)",
                         assign[assign.index("--scope") + 1])
    # The service principal is named by its object id, looked up from the app id by az.
    assert assign[assign.index("--assignee-principal-type") + 1] == "ServicePrincipal"
    principal = re.fullmatch(r"\$\(az ad sp show --id ([0-9a-f-]{36}) --query id --output tsv\)",
                             assign[assign.index("--assignee-object-id") + 1])
    AZ_GRANTS[(DIR_C, principal[1])] = {(scope[1], scope[2])}
    try:
        after = check()
        assert after.returncode == 0, after.stdout + after.stderr
    finally:
        AZ_GRANTS.pop((DIR_C, APP), None)
