"""Loading and validating the config: every mistake names the file, the key, and the fix."""

from __future__ import annotations

import os
import pickle
import textwrap

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from attachfs import ConfigError
from attachfs._config import (
    AwsIntegration,
    AwsPlatform,
    AzureIntegration,
    CacheConfig,
    Claim,
    Config,
    GcpIntegration,
    HttpPlatform,
    Tenant,
    load_config,
    resolve_config,
)
from attachfs._uri import parse

APP = "0d3c3a5e-1111-4222-8333-944445555666"

# The example config of the design, with two edits it needs to be valid:
# client_id = "..." is a GUID here, and the `direct` claims belong to a tenant without AWS/GCP
# integrations (on acme, which has both, they would be dead config: see test below).
EXAMPLE = f"""
[platform.aws]
role_name = "AttachmentReader"
account_id = "307185671274"
# endpoint_url = "http://127.0.0.1:9000"

[platform.gcp]
# credentials = "platform-sa.json"

[platform.azure]
client_id = "{APP}"
client_secret_env = "ATTACHFS_AZURE_CLIENT_SECRET"

[platform.http]
proxy = "http://egress.internal:3128"
allow_private_networks = false

[tenants.acme]
aws   = {{ account_id = "111122223333", external_id = "acme-5f0c" }}
gcp   = {{ service_account = "attach-acme@acme-prod.iam.gserviceaccount.com" }}
azure = {{ tenant_id = "2b0c6c1e-0000-0000-0000-000000000000" }}

[tenants.globex]
direct = ["s3://acme-shared-bucket", "gs://acme-public/"]
"""


def write(tmp_path, text: str, name: str = "attachfs.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_design_example_loads(tmp_path):
    path = write(tmp_path, EXAMPLE)
    config = load_config(path)
    assert config.source == path
    assert config.multi_tenant is True
    assert config.platform.aws == AwsPlatform(role_name="AttachmentReader",
                                              account_id="307185671274")
    assert config.platform.http == HttpPlatform(proxy="http://egress.internal:3128")
    assert config.platform.azure.client_id == APP
    assert config.platform.azure.client_secret_env == "ATTACHFS_AZURE_CLIENT_SECRET"
    assert config.platform.gcp.credentials is None
    assert config.cache is None
    assert config.tenants["acme"] == Tenant(
        name="acme",
        aws=AwsIntegration(account_id="111122223333", external_id="acme-5f0c"),
        gcp=GcpIntegration(service_account="attach-acme@acme-prod.iam.gserviceaccount.com"),
        azure=AzureIntegration(tenant_id="2b0c6c1e-0000-0000-0000-000000000000"))
    assert config.tenants["globex"].direct == (
        Claim(uri="s3://acme-shared-bucket", backend="s3", bucket="acme-shared-bucket"),
        Claim(uri="gs://acme-public", backend="gcs", bucket="acme-public"))


def test_design_example_claims_on_an_integrated_tenant_are_dead_config(tmp_path):
    text = EXAMPLE.replace("[tenants.globex]\n", "")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.key == "tenants.acme.direct[0]"
    assert "has an AWS integration" in str(info.value)


def test_load_from_mapping_and_config_and_path_like(tmp_path):
    mapping = tomllib.loads(EXAMPLE)
    config = load_config(mapping)
    assert config.source is None
    assert load_config(config) is config
    from_file = load_config(write(tmp_path, EXAMPLE))
    assert from_file.tenants == config.tenants and from_file.platform == config.platform
    assert load_config(tmp_path / "attachfs.toml") is from_file  # os.PathLike; cached
    with pytest.raises(TypeError):
        load_config(42)


def test_file_reload_after_change(tmp_path):
    path = write(tmp_path, '[platform.aws]\nrole_name = "A"\n')
    first = load_config(path)
    write(tmp_path, '[platform.aws]\nrole_name = "Bee"\n')
    os.utime(path, ns=(1, 1))
    assert load_config(path).platform.aws.role_name == "Bee"
    assert first.platform.aws.role_name == "A"


def test_empty_config_is_valid_and_not_multi_tenant():
    config = load_config({})
    assert config.multi_tenant is False
    assert config.platform.http == HttpPlatform()
    assert config.platform.http.allow_ports == (80, 443)


def test_relative_paths_resolve_against_the_config_file(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    path = write(tmp_path, """
        [platform.gcp]
        credentials = "keys/platform-sa.json"
        [platform.azure]
        client_certificate_path = "../app.pem"
        [cache]
        directory = "cache"
        max_bytes = 1000
        ttl_seconds = 60
    """, "conf/attachfs.toml")
    monkeypatch.chdir("/")
    config = load_config(path)
    assert config.platform.gcp.credentials == str(tmp_path / "conf/keys/platform-sa.json")
    assert config.platform.azure.client_certificate_path == str(tmp_path / "app.pem")
    assert config.cache == CacheConfig(directory=str(tmp_path / "conf/cache"), max_bytes=1000,
                                       ttl_seconds=60.0)


def test_relative_paths_of_a_mapping_resolve_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config({"platform": {"gcp": {"credentials": "sa.json"}}})
    assert config.platform.gcp.credentials == str(tmp_path / "sa.json")


def test_gcp_anonymous_credentials_are_kept_literally():
    config = load_config({"platform": {"gcp": {"credentials": "anonymous",
                                               "endpoint_url": "http://127.0.0.1:4443"}}})
    assert config.platform.gcp.credentials == "anonymous"
    assert config.platform.gcp.endpoint_url == "http://127.0.0.1:4443"


def test_http_platform_values():
    config = load_config({"platform": {"http": {
        "allow_private_networks": True, "allow_hosts": ["Localhost", "10.0.0.0/8"],
        "allow_ports": [8080], "trust_env": True, "max_redirects": 0}}})
    assert config.platform.http == HttpPlatform(
        proxy=None, allow_private_networks=True, allow_hosts=("localhost", "10.0.0.0/8"),
        allow_ports=(8080,), trust_env=True, max_redirects=0)


def test_azure_endpoint_template_and_account():
    config = load_config({"platform": {"azure": {
        "endpoint_url": "http://127.0.0.1:10000/{account}", "account": "devstoreaccount1",
        "account_key_env": "AZURITE_KEY"}}})
    assert config.platform.azure.endpoint_url == "http://127.0.0.1:10000/{account}"
    assert config.platform.azure.account == "devstoreaccount1"


def test_claims_table_form_owner_and_prefix():
    config = load_config({"tenants": {"globex": {"direct": [
        {"uri": "https://s3.us-west-2.amazonaws.com/globex-data", "owner": "444455556666"},
        "gs://shared-bucket/globex/"]}}})
    pinned, prefixed = config.tenants["globex"].direct
    assert pinned == Claim(uri="s3://globex-data", backend="s3", bucket="globex-data",
                           owner="444455556666")
    assert prefixed == Claim(uri="gs://shared-bucket/globex/", backend="gcs",
                             bucket="shared-bucket", prefix="globex/")


def test_requester_pays_opt_ins_on_claims_and_integrations():
    config = load_config({
        "platform": {"aws": {"role_name": "Reader"}},
        "tenants": {
            "acme": {"aws": {"account_id": "111122223333", "external_id": "x-1",
                             "requester_pays": True},
                     "gcp": {"service_account": "sa@p.iam.gserviceaccount.com",
                             "user_project": "acme-billing"}},
            "globex": {"direct": [{"uri": "s3://open-data", "requester_pays": True},
                                  {"uri": "gs://public-sets", "user_project": "plat-billing"}]},
        }})
    acme = config.tenants["acme"]
    assert acme.aws.requester_pays and acme.gcp.user_project == "acme-billing"
    s3_claim, gcs_claim = config.tenants["globex"].direct
    assert (s3_claim.requester_pays, s3_claim.user_project) == (True, None)
    assert (gcs_claim.requester_pays, gcs_claim.user_project) == (False, "plat-billing")


@pytest.mark.parametrize("uri,covered", [
    ("gs://shared-bucket/globex/a.png", True),
    ("gs://shared-bucket/globex/", True),
    ("gs://shared-bucket/globex-evil/a.png", False),
    ("gs://shared-bucket/other/a.png", False),
    ("gs://other-bucket/globex/a.png", False),
    ("s3://shared-bucket/globex/a.png", False),
])
def test_claim_covers(uri, covered):
    claim = Claim(uri="gs://shared-bucket/globex/", backend="gcs", bucket="shared-bucket",
                  prefix="globex/")
    assert claim.covers(parse(uri, require_key=False)) is covered


def test_disjoint_prefixes_of_one_bucket_may_go_to_two_tenants():
    config = load_config({"tenants": {"a": {"direct": ["gs://shared-bucket/a/"]},
                                      "b": {"direct": ["gs://shared-bucket/b/"]}}})
    assert [t.direct[0].prefix for t in config.tenants.values()] == ["a/", "b/"]


def test_tenants_are_read_only_and_config_hashable():
    config = load_config(tomllib.loads(EXAMPLE))
    with pytest.raises(TypeError):
        config.tenants["evil"] = config.tenants["acme"]
    assert config == load_config(tomllib.loads(EXAMPLE))
    assert hash(config) == hash(load_config(tomllib.loads(EXAMPLE)))
    assert config != load_config({})


def test_repr_shows_no_external_id():
    config = load_config(tomllib.loads(EXAMPLE))
    assert "acme-5f0c" not in repr(config)
    assert "acme-5f0c" not in repr(config.tenants["acme"])
    assert "111122223333" in repr(config.tenants["acme"])
    assert repr(config).startswith("Config(source=None, tenants=['acme', 'globex'], digest=")


def test_digest_tells_configs_apart():
    a = load_config({"tenants": {"t": {"aws": {"account_id": "111122223333",
                                                "external_id": "one"}}},
                     "platform": {"aws": {"role_name": "R"}}})
    b = load_config({"tenants": {"t": {"aws": {"account_id": "111122223333",
                                                "external_id": "two"}}},
                     "platform": {"aws": {"role_name": "R"}}})
    assert a.digest != b.digest and len(a.digest) == 16


# ---------------------------------------------------------------- $ATTACHFS_CONFIG

def test_resolve_config_without_anything_is_ambient(monkeypatch):
    monkeypatch.delenv("ATTACHFS_CONFIG", raising=False)
    assert resolve_config() is None
    assert Config.from_env() is None


def test_resolve_config_reads_the_env_var(tmp_path, monkeypatch):
    path = write(tmp_path, EXAMPLE)
    monkeypatch.setenv("ATTACHFS_CONFIG", path)
    assert resolve_config().source == path
    assert Config.from_env().source == path
    assert resolve_config({}).multi_tenant is False  # an explicit config wins


def test_env_var_naming_a_missing_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTACHFS_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError) as info:
        resolve_config()
    assert "$ATTACHFS_CONFIG" in str(info.value)
    assert info.value.source == str(tmp_path / "missing.toml")


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.source == str(tmp_path / "nope.toml")
    path = write(tmp_path, "[platform.aws\nrole_name = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.source == path and "not valid TOML" in str(info.value)


# ---------------------------------------------------------------- pickling

def test_file_config_pickles_as_its_path_and_revalidates(tmp_path):
    path = write(tmp_path, EXAMPLE)
    config = load_config(path)
    data = pickle.dumps(config)
    assert b"acme-5f0c" not in data and path.encode() in data
    assert pickle.loads(data) == config
    write(tmp_path, EXAMPLE.replace('role_name = "AttachmentReader"', 'rolename = "X"'))
    os.utime(path, ns=(2, 2))
    with pytest.raises(ConfigError) as info:
        pickle.loads(data)
    assert info.value.key == "platform.aws.rolename"


def test_mapping_config_pickles_as_its_mapping(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mapping = tomllib.loads(EXAMPLE)
    mapping["platform"]["gcp"] = {"credentials": "sa.json"}
    config = load_config(mapping)
    monkeypatch.chdir("/")  # a worker elsewhere still finds the same file
    again = pickle.loads(pickle.dumps(config))
    assert again == config and again.source is None
    assert again.platform.gcp.credentials == str(tmp_path / "sa.json")
    assert again.raw == config.raw


# ---------------------------------------------------------------- invalid configs

AZ = f'[platform.azure]\nclient_id = "{APP}"\nclient_secret_env = "S"\n'
AWS = '[platform.aws]\nrole_name = "R"\n'
ACME_AWS = '[tenants.acme.aws]\naccount_id = "111122223333"\nexternal_id = "ext-id"\n'

# (row id, TOML, dotted key named by the error, fragment of the message)
INVALID = [
    ("unknown top-level key", '[platfrom.aws]\nrole_name = "R"\n', "platfrom",
     "did you mean 'platform'?"),
    ("unknown key in a section", '[platform.aws]\nrolename = "R"\n', "platform.aws.rolename",
     "did you mean 'role_name'?"),
    ("unknown tenant key", '[tenants.acme]\ndirekt = []\n', "tenants.acme.direkt",
     "did you mean 'direct'?"),
    ("unknown cloud section", '[platform.gce]\n', "platform.gce", "did you mean 'gcp'?"),
    ("inline AWS secret key", '[platform.aws]\nsecret_access_key = "wJalr"\n',
     "platform.aws.secret_access_key", "secrets are never inline: use profile"),
    ("inline AWS key id", '[platform.aws]\naws_access_key_id = "AKIA"\n',
     "platform.aws.aws_access_key_id", "secrets are never inline"),
    ("inline Azure client secret", '[platform.azure]\nclient_secret = "abc~def"\n',
     "platform.azure.client_secret",
     "secrets are never inline: put it in an environment variable and name it with "
     "client_secret_env"),
    ("inline Azure account key", '[platform.azure]\naccount_key = "Eby8=="\n',
     "platform.azure.account_key", "name it with account_key_env"),
    ("Azure connection string", '[platform.azure]\nconnection_string = "Default..."\n',
     "platform.azure.connection_string", "account_key_env"),
    ("SAS token", '[platform.azure]\nsas_token = "sv=1&sig=x"\n', "platform.azure.sas_token",
     "belongs in the URL it signs"),
    ("inline GCP private key", '[platform.gcp]\nprivate_key = "-----BEGIN"\n',
     "platform.gcp.private_key", 'credentials = "path/to/key.json"'),
    ("inline GCP service-account JSON", '[platform.gcp.credentials]\ntype = "service_account"\n',
     "platform.gcp.credentials", "in a file"),
    ("secret in a tenant", '[tenants.acme.aws]\nsecret_access_key = "x"\n',
     "tenants.acme.aws.secret_access_key", "a tenant needs none"),
    ("proxy password", '[platform.http]\nproxy = "http://u:pw@proxy:3128"\n',
     "platform.http.proxy", "secrets are never inline: remove the user:password@"),
    ("env var name that is a secret", '[platform.azure]\nclient_secret_env = "abc~d.ef"\n',
     "platform.azure.client_secret_env", "the name of an environment variable"),
    ("account id too short", AWS + '[tenants.acme.aws]\naccount_id = "11112222333"\n'
     'external_id = "ext-id"\n', "tenants.acme.aws.account_id", "12-digit"),
    ("account id as an integer", AWS + '[tenants.acme.aws]\naccount_id = 111122223333\n'
     'external_id = "ext-id"\n', "tenants.acme.aws.account_id", "must be a non-empty string"),
    ("platform account id", '[platform.aws]\naccount_id = "30718567127x"\n',
     "platform.aws.account_id", "12-digit"),
    ("external id too short", AWS + '[tenants.acme.aws]\naccount_id = "111122223333"\n'
     'external_id = "x"\n', "tenants.acme.aws.external_id", "2-1224 characters"),
    ("external id missing", AWS + '[tenants.acme.aws]\naccount_id = "111122223333"\n',
     "tenants.acme.aws.external_id", "is required"),
    ("role name with a space", '[platform.aws]\nrole_name = "Attachment Reader"\n',
     "platform.aws.role_name", "an IAM role name"),
    ("role name too long", f'[platform.aws]\nrole_name = "{"R" * 65}"\n',
     "platform.aws.role_name", "1-64 characters"),
    ("service account not Google", '[tenants.acme.gcp]\nservice_account = "sa@acme.com"\n',
     "tenants.acme.gcp.service_account", "name@project.iam.gserviceaccount.com"),
    ("azure tenant id not a GUID", AZ + '[tenants.acme.azure]\ntenant_id = "acme.onmicrosoft.com"\n',
     "tenants.acme.azure.tenant_id", "a GUID"),
    ("client id not a GUID", '[platform.azure]\nclient_id = "..."\n', "platform.azure.client_id",
     "a GUID"),
    ("endpoint not http(s)", '[platform.aws]\nendpoint_url = "ftp://127.0.0.1:9000"\n',
     "platform.aws.endpoint_url", "http(s) URL"),
    ("endpoint with a bad port", '[platform.gcp]\nendpoint_url = "http://127.0.0.1:99999"\n',
     "platform.gcp.endpoint_url", "not a valid URL"),
    ("azure endpoint without {account}", '[platform.azure]\nendpoint_url = "http://h:10000/x"\n',
     "platform.azure.endpoint_url", '"{account}"'),
    ("region", '[platform.aws]\nregion = "US East"\n', "platform.aws.region", "region name"),
    ("storage account", '[platform.azure]\naccount = "Dev_Store"\n', "platform.azure.account",
     "3-24 lowercase"),
    ("port out of range", '[platform.http]\nallow_ports = [443, 0]\n', "platform.http.allow_ports",
     "1-65535"),
    ("boolean as a string", '[platform.http]\nallow_private_networks = "no"\n',
     "platform.http.allow_private_networks", "true or false"),
    ("host with a scheme", '[platform.http]\nallow_hosts = ["http://h"]\n',
     "platform.http.allow_hosts", "no scheme"),
    ("too many redirects", '[platform.http]\nmax_redirects = 100\n', "platform.http.max_redirects",
     "from 0 to 30"),
    ("secret and certificate", AZ + 'client_certificate_path = "app.pem"\n', "platform.azure",
     "exactly one of client_secret_env or client_certificate_path"),
    ("azure tenant without the platform app", '[tenants.acme.azure]\n'
     'tenant_id = "2b0c6c1e-0000-0000-0000-000000000000"\n', "tenants.acme.azure",
     "set platform.azure.client_id"),
    ("aws tenant without role_name", ACME_AWS, "tenants.acme.aws",
     "set platform.aws.role_name"),
    ("tenant name", AWS + '[tenants."ac me"]\n', "tenants.ac me", "tenant names are 1-64"),
    ("empty [tenants]", '[tenants]\n', "tenants", "remove [tenants] for ambient mode"),
    ("tenant not a table", 'tenants = { acme = 1 }\n', "tenants.acme", "must be a table"),
    ("direct not an array", '[tenants.acme]\ndirect = "s3://bucket"\n', "tenants.acme.direct",
     "must be an array"),
    ("claim of an object", '[tenants.acme]\ndirect = ["s3://bucket/file.png"]\n',
     "tenants.acme.direct[0]", 'prefix ending in "/"'),
    ("claim of a plain URL", '[tenants.acme]\ndirect = ["https://example.com/"]\n',
     "tenants.acme.direct[0]", "carry their own authority"),
    ("claim of an Azure container",
     '[tenants.acme]\ndirect = ["https://acct.blob.core.windows.net/container"]\n',
     "tenants.acme.direct[0]", "Azure containers cannot be claimed"),
    ("malformed claim", '[tenants.acme]\ndirect = ["s3://"]\n', "tenants.acme.direct[0]",
     "not a bucket URI"),
    ("claim of a number", '[tenants.acme]\ndirect = [7]\n', "tenants.acme.direct[0]",
     "must be a bucket URI string"),
    ("dead s3 claim", AWS + ACME_AWS + '[tenants.acme]\ndirect = ["s3://bucket"]\n',
     "tenants.acme.direct[0]", "this claim would never be used"),
    ("dead gcs claim", '[tenants.acme]\ndirect = ["gs://bucket"]\n'
     '[tenants.acme.gcp]\nservice_account = "sa@p.iam.gserviceaccount.com"\n',
     "tenants.acme.direct[0]", "tenant 'acme' has a GCP integration"),
    ("owner on a GCS claim", '[tenants.acme]\ndirect = [{ uri = "gs://bucket", owner = '
     '"111122223333" }]\n', "tenants.acme.direct[0]", "owner pinning is S3-only"),
    ("requester_pays on a GCS claim", '[tenants.acme]\ndirect = [{ uri = "gs://bucket", '
     'requester_pays = true }]\n', "tenants.acme.direct[0]", "set user_project"),
    ("user_project on an S3 claim", '[tenants.acme]\ndirect = [{ uri = "s3://bucket", '
     'user_project = "my-project" }]\n', "tenants.acme.direct[0]", "set requester_pays"),
    ("requester_pays not a boolean", '[tenants.acme]\ndirect = [{ uri = "s3://bucket", '
     'requester_pays = "yes" }]\n', "tenants.acme.direct[0].requester_pays", "true or false"),
    ("malformed user_project", '[tenants.acme]\ndirect = [{ uri = "gs://bucket", '
     'user_project = "Not A Project" }]\n', "tenants.acme.direct[0].user_project",
     "project id"),
    ("malformed owner", '[tenants.acme]\ndirect = [{ uri = "s3://bucket", owner = "me" }]\n',
     "tenants.acme.direct[0].owner", "12 digits"),
    ("unknown claim key", '[tenants.acme]\ndirect = [{ uri = "s3://bucket", ownr = "1" }]\n',
     "tenants.acme.direct[0].ownr", "did you mean 'owner'?"),
    ("bucket claimed twice", '[tenants.acme]\ndirect = ["s3://bucket"]\n'
     '[tenants.globex]\ndirect = ["s3://other-bucket", "s3://bucket/"]\n',
     "tenants.globex.direct[1]", "claimed by both tenants 'acme' (s3://bucket) and 'globex'"),
    ("overlapping prefixes", '[tenants.acme]\ndirect = ["gs://bucket/a/"]\n'
     '[tenants.globex]\ndirect = ["gs://bucket/"]\n', "tenants.globex.direct[0]",
     "claimed by both tenants 'acme' (gs://bucket/a/) and 'globex' (gs://bucket)"),
    ("cache without directory", '[cache]\nmax_bytes = 10\n', "cache.directory", "is required"),
    ("cache ttl", '[cache]\ndirectory = "c"\nttl_seconds = -1\n', "cache.ttl_seconds",
     "must be a number"),
    ("platform not a table", 'platform = "aws"\n', "platform", "must be a table"),
]


@pytest.mark.parametrize("text,key,fragment", [pytest.param(*row[1:], id=row[0])
                                               for row in INVALID])
def test_invalid_config_from_file(tmp_path, text, key, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.source, info.value.key) == (path, key)
    assert str(info.value).startswith(f"{path}: {key}: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize("text,key,fragment", [pytest.param(*row[1:], id=row[0])
                                               for row in INVALID])
def test_invalid_config_from_mapping(text, key, fragment):
    with pytest.raises(ConfigError) as info:
        load_config(tomllib.loads(text))
    assert (info.value.source, info.value.key) == (None, key)
    assert str(info.value).startswith(f"{key}: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize("text,secret", [
    ('[platform.azure]\nclient_secret = "abc~SECRET"\n', "abc~SECRET"),
    ('[platform.azure]\nclient_secret_env = "abc~SECRET"\n', "abc~SECRET"),
    ('[platform.http]\nproxy = "http://u:SECRET@proxy:3128"\n', "SECRET"),
    (AWS + '[tenants.acme.aws]\naccount_id = "111122223333"\nexternal_id = "SECRET!"\n',
     "SECRET"),
])
def test_errors_never_echo_secrets(text, secret):
    with pytest.raises(ConfigError) as info:
        load_config(tomllib.loads(text))
    assert secret not in str(info.value)
    assert secret not in repr(pickle.loads(pickle.dumps(info.value)))


def test_unknown_key_lists_the_allowed_keys():
    with pytest.raises(ConfigError) as info:
        load_config({"platform": {"http": {"proxies": "http://p:3128"}}})
    assert str(info.value) == (
        "platform.http.proxies: unknown key; did you mean 'proxy'? allowed keys here: proxy, "
        "allow_private_networks, allow_hosts, allow_ports, trust_env, max_redirects")


def test_config_error_pickles_with_source_and_key(tmp_path):
    path = write(tmp_path, '[platform.aws]\nrolename = "R"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.source, again.key, str(again)) == (path, "platform.aws.rolename",
                                                     str(info.value))
