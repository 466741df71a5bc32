"""What a command-line user reads when something is wrong: flags, never Python arguments; a
refused address stops `check` at its first step, said once, never with a way to open the
metadata service; a mistyped tenant gets "did you mean" (the operator holds the config) while
the library's own refusal never names another tenant; a missing key file is named by its path.

In-process (``cli.main``) where a fake resolver or the loopback guard must see every connection;
no test here needs the emulators.
"""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys

import pytest
from aiohttp.abc import AbstractResolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attachfs
from attachfs import AccessRefused
from attachfs._cli import commands as cli
from attachfs._net import resolver as net_resolver
from attachfs.testing.serve import to_toml

TENANTS = {
    "platform": {"aws": {"role_name": "AttachmentReader", "account_id": "307185671274"},
                 "http": {}},
    "tenants": {"acme": {"aws": {"account_id": "111122223333", "external_id": "acme-5f0c"}},
                "globex": {"direct": ["s3://globex-shared", "gs://globex-public/"]}},
}
PYTHON_WORDS = ("tenant=", "config=", "require_key", "=False", "storage_options")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("ATTACHFS_TENANT", raising=False)
    monkeypatch.delenv("ATTACHFS_CONFIG", raising=False)


@pytest.fixture
def tenants_toml(tmp_path):
    path = tmp_path / "attachfs.toml"
    path.write_text(to_toml(TENANTS))
    return path


@pytest.fixture
def ambient_toml(tmp_path):
    path = tmp_path / "ambient.toml"
    path.write_text(to_toml({"platform": {"http": {"allow_private_networks": True}}}))
    return path


def call(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- flags, not kwargs

# Every command that reads a URI, with the arguments it needs besides the URI.
COMMANDS = [("cat", []), ("cp", ["{tmp}/out"]), ("ls", []), ("stat", []), ("explain", []),
            ("check", [])]


@pytest.mark.parametrize("command, extra", COMMANDS, ids=[c for c, _ in COMMANDS])
@pytest.mark.parametrize("case", ["no-tenant", "tenant-without-config", "unknown-tenant"])
def test_tenant_refusals_name_the_flags(capsys, tmp_path, tenants_toml, ambient_toml, command,
                                        extra, case):
    argv = {"no-tenant": ["--config", tenants_toml],
            "tenant-without-config": ["--config", ambient_toml, "--tenant", "acme"],
            "unknown-tenant": ["--config", tenants_toml, "--tenant", "nobody"]}[case]
    rest = [a.format(tmp=tmp_path) for a in extra]

    code, out, err = call(capsys, command, *argv, "s3://globex-shared/a.csv", *rest)

    assert code == 1
    text = out + err
    assert case in text  # the rule is named
    for word in PYTHON_WORDS:
        assert word not in text, word
    if case != "unknown-tenant":
        assert "--tenant" in text or "--config" in text


OBJECT_COMMANDS = [("cat", []), ("cp", ["{tmp}/out"]), ("check", [])]


@pytest.mark.parametrize("command, extra", OBJECT_COMMANDS, ids=[c for c, _ in OBJECT_COMMANDS])
@pytest.mark.parametrize("uri", ["s3://some-bucket", "gs://some-bucket/",
                                 "https://acct.blob.core.windows.net/container"])
def test_a_bucket_where_an_object_is_needed_names_the_commands(capsys, tmp_path, command,
                                                                extra, uri):
    rest = [a.format(tmp=tmp_path) for a in extra]
    code, out, err = call(capsys, command, uri, *rest)

    assert (code, out) == (2, "")
    assert "names a bucket or prefix, not an object" in err
    assert "`attachfs ls " in err
    for word in PYTHON_WORDS:
        assert word not in err, word


def test_explain_takes_a_bucket(capsys):
    code, out, err = call(capsys, "explain", "s3://some-bucket")
    assert (code, err) == (0, "")
    assert "bucket    some-bucket" in out


# --------------------------------------------------------------------------- did you mean


def test_a_mistyped_tenant_gets_did_you_mean_in_the_cli_only(capsys, tenants_toml):
    code, _, err = call(capsys, "explain", "--config", tenants_toml, "--tenant", "globx",
                        "s3://globex-shared/a.csv")
    assert code == 1
    assert "did you mean --tenant globex?" in err

    code, out, _ = call(capsys, "check", "--json", "--config", tenants_toml, "--tenant",
                        "Acme", "s3://globex-shared/a.csv")
    doc = json.loads(out)
    assert "did you mean --tenant acme?" in doc["steps"][0]["detail"]
    assert doc["fix"].startswith("pass --tenant acme")

    # Nothing close: no names at all.
    call(capsys, "explain", "--config", tenants_toml, "--tenant", "zzzz", "s3://x-bucket/k")
    _, _, err = call(capsys, "explain", "--config", tenants_toml, "--tenant", "zzzz",
                     "s3://x-bucket/k")
    assert "did you mean" not in err and "globex" not in err and "acme" not in err


def test_the_librarys_refusal_never_names_another_tenant(tenants_toml):
    # What a service relays to whoever submitted the read: no other tenant's name, anywhere in
    # the error (message, fields, pickle).
    for call_ in (lambda: attachfs.explain("s3://shared-bucket/a.csv", tenant="globx",
                                           config=str(tenants_toml)),
                  lambda: attachfs.filesystem(tenant="globx", config=str(tenants_toml)).open(
                      "s3://shared-bucket/a.csv")):
        with pytest.raises(AccessRefused) as refused:
            call_()
        err = refused.value
        assert err.rule == "unknown-tenant"
        everything = str(err) + repr(err.__dict__) + repr(pickle.dumps(err))
        assert "globex" not in everything and "acme" not in everything


# --------------------------------------------------------------------------- the guard


class FakeResolver(AbstractResolver):
    """Answers from a table, never leaving the process."""

    def __init__(self, names):
        self.names = names

    async def resolve(self, host, port=0, family=socket.AF_INET):
        answers = self.names.get(host)
        if answers is None:
            raise socket.gaierror(socket.EAI_NONAME, f"no such name {host!r}")
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in answers]

    async def close(self):
        pass


METADATA_SPELLINGS = ["169.254.169.254", "2852039166", "0xa9fea9fe", "0251.0376.0251.0376",
                      "[::ffff:169.254.169.254]", "[fd00:ec2::254]", "metadata.internal"]


@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(host=st.sampled_from(METADATA_SPELLINGS), configured=st.booleans(),
       path=st.sampled_from(["/latest/meta-data/", "/computeMetadata/v1/?recursive=true", "/"]))
def test_check_of_the_metadata_address_stops_at_route_once_and_never_says_how_to_open_it(
        capsys, monkeypatch, tenants_toml, host, configured, path):
    monkeypatch.setattr(net_resolver, "system_resolver",
                        lambda: FakeResolver({"metadata.internal": ["169.254.169.254"]}))
    url = f"http://{host}{path}"
    argv = ["check", url] + (["--config", str(tenants_toml), "--tenant", "acme"]
                             if configured else [])

    code, out, err = call(capsys, *argv)

    assert code == 1
    lines = out.splitlines()
    assert "1. route        FAILED" in lines[1]
    assert lines[2].startswith("2. credentials  skipped") and lines[3].startswith("3. read")
    text = out + err
    assert text.count("(cloud-metadata)") == 1  # the refusal, said once
    assert text.count("fix:") == 1
    assert "do not read this URL" in err
    for opener in ("allow_hosts", "allow_private_networks", "allow_ports"):
        assert opener not in text, opener


def test_the_library_never_says_how_to_open_the_metadata_address():
    with pytest.raises(AccessRefused) as refused:
        attachfs.explain("http://169.254.169.254/latest/meta-data/", config={"platform": {"http": {}}})
    assert refused.value.rule == "ssrf:cloud-metadata"
    assert "allow_hosts" not in str(refused.value)


def test_check_of_a_private_address_says_the_refusal_once_and_the_fix_once(
        capsys, monkeypatch, tenants_toml):
    monkeypatch.setattr(net_resolver, "system_resolver",
                        lambda: FakeResolver({"files.internal": ["10.1.2.3"]}))
    code, out, err = call(capsys, "check", "--config", tenants_toml, "--tenant", "acme",
                          "https://files.internal/a.pdf")
    assert code == 1
    assert "1. route        FAILED" in out
    assert (out + err).count("is a private-network address") == 1
    assert (out + err).count("allow_private_networks") == 1 and "fix:" in err


# --------------------------------------------------------------------------- credential files


@pytest.mark.parametrize("which", ["gcp-key", "azure-cert"])
def test_a_missing_credentials_file_is_named_by_its_resolved_path(capsys, tmp_path, which):
    folder = tmp_path / "conf"
    folder.mkdir()
    if which == "gcp-key":
        platform = {"gcp": {"credentials": "keys/platform-sa.json"}}
        tenant = {"gcp": {"service_account": "attach-acme@acme-prod.iam.gserviceaccount.com"}}
        uri, key = "gs://acme-data/a.csv", "platform.gcp.credentials"
        missing = folder / "keys" / "platform-sa.json"
    else:
        platform = {"azure": {"client_id": "0a1b2c3d-0000-4000-8000-000000000001",
                              "client_certificate_path": "certs/app.pem"}}
        tenant = {"azure": {"tenant_id": "2b0c6c1e-0000-0000-0000-000000000000"}}
        uri, key = "https://acct1.blob.core.windows.net/data/a.csv", \
            "platform.azure.client_certificate_path"
        missing = folder / "certs" / "app.pem"
    config = folder / "attachfs.toml"
    config.write_text(to_toml({"platform": platform, "tenants": {"acme": tenant}}))

    for command in ("cat", "check"):
        code, out, err = call(capsys, command, "--config", config, "--tenant", "acme", uri)
        text = out + err
        assert str(missing) in text, (command, text)
        assert key in text and "does not exist" in text
        assert "no object at" not in text  # not mistaken for a missing attachment
    if which == "gcp-key":
        code, _, err = call(capsys, "policy", "gcp", "--config", config, "--tenant", "acme",
                            "--bucket", "gs://acme-data")
        assert code == 2 and str(missing) in err


# --------------------------------------------------------------------------- help and flags


def test_demo_help_has_a_description():
    done = subprocess.run([sys.executable, "-m", "attachfs", "demo", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert "Start local emulators" in done.stdout and "--serve" in done.stdout


def test_policy_azure_takes_container(capsys, tenants_toml, tmp_path):
    config = tmp_path / "az.toml"
    config.write_text(to_toml({"platform": {"azure": {"client_id": "0a1b2c3d-0000-4000-8000-000000000001",
                                                      "client_secret_env": "APP_SECRET"}},
                               "tenants": {"acme": {"azure": {"tenant_id": "2b0c6c1e-0000-0000-0000-000000000000"}}}}))
    by_container = call(capsys, "policy", "azure", "--config", config, "--tenant", "acme",
                        "--container", "acmeattachments/invoices")
    by_bucket = call(capsys, "policy", "azure", "--config", config, "--tenant", "acme",
                     "--bucket", "https://acmeattachments.blob.core.windows.net/invoices")
    assert by_container[0] == 0, by_container[2]
    assert by_container == by_bucket
    assert "containers/invoices" in by_container[1]

    code, _, err = call(capsys, "policy", "aws", "--config", tenants_toml, "--tenant", "acme",
                        "--container", "a/b")
    assert code == 2 and "--container is for `attachfs policy azure`" in err
