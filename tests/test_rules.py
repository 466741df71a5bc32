"""The access rules as a table: (config, tenant, URI) -> mode, identity, claim, proxy, grant.

Read each row as one sentence of the spec.
"""

from __future__ import annotations

import pickle

import pytest

from attachfs import AccessRefused, ConfigError
from attachfs._config import Claim, load_config
from attachfs._rules import Grant, Route, route, session_name
from attachfs._uri import Location, parse

PROXY = "http://egress.internal:3128"
ROLE = "AttachmentReader"
APP = "0d3c3a5e-1111-4222-8333-944445555666"
ACME_DIR = "2b0c6c1e-0000-0000-0000-000000000000"
EXTERNAL_ID = "acme-5f0c-do-not-print"

MULTI = load_config({
    "platform": {
        "aws": {"role_name": ROLE, "account_id": "307185671274"},
        "azure": {"client_id": APP, "client_secret_env": "ATTACHFS_AZURE_CLIENT_SECRET",
                  "account": "defaultacct"},
        "http": {"proxy": PROXY},
    },
    "tenants": {
        # every integration: never reads directly
        "acme": {"aws": {"account_id": "111122223333", "external_id": EXTERNAL_ID},
                 "gcp": {"service_account": "attach-acme@acme-prod.iam.gserviceaccount.com"},
                 "azure": {"tenant_id": ACME_DIR}},
        # no integration: direct reads of what it claims, nothing else
        "globex": {"direct": ["s3://globex-data",
                              {"uri": "s3://globex-pinned", "owner": "444455556666"},
                              "gs://globex-public",
                              "gs://shared-bucket/globex/"]},
        # AWS integration only: S3 delegated, GCS direct
        "initech": {"aws": {"account_id": "222233334444", "external_id": "initech-77"},
                    "direct": ["gs://initech-bucket"]},
    },
})
TENANTLESS = load_config({"platform": {"http": {"proxy": PROXY}}})
CONFIGS = {"multi": MULTI, "tenantless": TENANTLESS, "none": None}

ACME_ROLE = f"arn:aws:iam::111122223333:role/{ROLE}"
INITECH_ROLE = f"arn:aws:iam::222233334444:role/{ROLE}"
ACME_SA = "attach-acme@acme-prod.iam.gserviceaccount.com"
S3_SIGNED = ("https://acme-data.s3.amazonaws.com/a.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAEXAMPLE%2F20250101&X-Amz-Signature=deadbeefcafe")
GCS_SIGNED = "https://storage.googleapis.com/acme/a.png?X-Goog-Signature=feedface"
AZURE_SAS = "https://acmeacct.blob.core.windows.net/cont/a.png?sv=2022-11-02&sig=c2VjcmV0"


def claim(uri: str) -> Claim:
    """The claim of MULTI whose uri is ``uri``."""
    return next(c for t in MULTI.tenants.values() for c in t.direct if c.uri == uri)


R = AccessRefused
# (row id, config, tenant, URI,
#  mode | (AccessRefused, rule), identity, claim uri, proxy, grant)
RULES = [
    # -- ambient mode: no config, or a config without tenants ------------------------------
    ("ambient s3", "none", None, "s3://bucket/k", "ambient", None, None, None, Grant("ambient")),
    ("ambient gcs", "none", None, "gs://bucket/k", "ambient", None, None, None, Grant("ambient")),
    ("ambient azure", "none", None, "https://acct.blob.core.windows.net/cont/k",
     "ambient", None, None, None, Grant("ambient")),
    ("ambient http", "none", None, "https://example.com/a.pdf",
     "url", None, None, None, Grant("none")),
    ("tenantless config: s3 never proxied", "tenantless", None, "s3://bucket/k",
     "ambient", None, None, None, Grant("ambient")),
    ("tenantless config: gcs proxied", "tenantless", None, "gs://bucket/k",
     "ambient", None, None, PROXY, Grant("ambient")),
    ("tenantless config: azure proxied", "tenantless", None, "az://cont/k",
     "ambient", None, None, PROXY, Grant("ambient")),
    ("tenantless config: http proxied", "tenantless", None, "https://example.com/a",
     "url", None, None, PROXY, Grant("none")),
    ("tenant without a config fails closed", "none", "acme", "s3://bucket/k",
     (R, "tenant-without-config"), None, None, None, None),
    ("tenant with a tenantless config fails closed", "tenantless", "acme", "gs://bucket/k",
     (R, "tenant-without-config"), None, None, None, None),
    # -- multi-tenant: who is reading must be known -----------------------------------------
    ("no tenant", "multi", None, "s3://globex-data/k", (R, "no-tenant"),
     None, None, None, None),
    ("no tenant, even for http", "multi", None, "https://example.com/a", (R, "no-tenant"),
     None, None, None, None),
    ("unknown tenant", "multi", "hooli", "s3://globex-data/k", (R, "unknown-tenant"),
     None, None, None, None),
    # -- S3 ----------------------------------------------------------------------------------
    ("s3 + aws integration: assume role", "multi", "acme", "s3://acme-data/a.png",
     "delegated", ACME_ROLE, None, None,
     Grant("aws-assume-role", role_arn=ACME_ROLE, external_id=EXTERNAL_ID,
           session_name="attachfs-acme")),
    ("s3 https form + aws integration", "multi", "acme",
     "https://s3-us-west-2.amazonaws.com/acme-data/a.png", "delegated", ACME_ROLE, None, None,
     Grant("aws-assume-role", role_arn=ACME_ROLE, external_id=EXTERNAL_ID,
           session_name="attachfs-acme")),
    ("s3 + aws integration ignores other tenants' claims", "multi", "initech",
     "s3://globex-data/k", "delegated", INITECH_ROLE, None, None,
     Grant("aws-assume-role", role_arn=INITECH_ROLE, external_id="initech-77",
           session_name="attachfs-initech")),
    ("s3 no integration, claimed: platform identity", "multi", "globex",
     "s3://globex-data/a.png", "direct", "platform:aws", "s3://globex-data", None,
     Grant("aws-platform")),
    ("s3 no integration, claimed with owner: pinned", "multi", "globex",
     "s3://globex-pinned/a.png", "direct", "platform:aws", "s3://globex-pinned", None,
     Grant("aws-platform", expected_bucket_owner="444455556666")),
    ("s3 no integration, unclaimed: refused", "multi", "globex", "s3://acme-data/a.png",
     (R, "unclaimed"), None, None, None, None),
    # -- GCS ---------------------------------------------------------------------------------
    ("gcs + gcp integration: impersonate", "multi", "acme", "gs://acme-data/a.png",
     "delegated", ACME_SA, None, PROXY, Grant("gcp-impersonate", service_account=ACME_SA)),
    ("gcs no integration, claimed bucket", "multi", "globex", "gs://globex-public/a.png",
     "direct", "platform:gcp", "gs://globex-public", PROXY, Grant("gcp-platform")),
    ("gcs no integration, inside claimed prefix", "multi", "globex",
     "gs://shared-bucket/globex/2024/a.png", "direct", "platform:gcp",
     "gs://shared-bucket/globex/", PROXY, Grant("gcp-platform")),
    ("gcs no integration, outside claimed prefix", "multi", "globex",
     "gs://shared-bucket/other/a.png", (R, "unclaimed"), None, None, None, None),
    ("gcs prefix claim stops at '/'", "multi", "globex", "gs://shared-bucket/globex-evil/a",
     (R, "unclaimed"), None, None, None, None),
    ("gcs no integration, unclaimed", "multi", "globex", "gs://acme-data/a.png",
     (R, "unclaimed"), None, None, None, None),
    ("gcs: another tenant's claim does not count", "multi", "initech",
     "gs://globex-public/a.png", (R, "unclaimed"), None, None, None, None),
    ("gcs direct while s3 delegated", "multi", "initech", "gs://initech-bucket/a.png",
     "direct", "platform:gcp", "gs://initech-bucket", PROXY, Grant("gcp-platform")),
    # -- Azure -------------------------------------------------------------------------------
    ("azure + azure integration: platform app in tenant directory", "multi", "acme",
     "https://acmeacct.blob.core.windows.net/cont/a.png", "delegated",
     f"azure-app:{APP}@{ACME_DIR}", None, PROXY,
     Grant("azure-app", azure_tenant_id=ACME_DIR, client_id=APP)),
    ("azure no integration: anonymous", "multi", "globex",
     "https://globexacct.blob.core.windows.net/cont/a.png", "anonymous", None, None, PROXY,
     Grant("anonymous")),
    ("azure no integration, s3 integration elsewhere: anonymous", "multi", "initech",
     "abfss://cont@initechacct.dfs.core.windows.net/a.png", "anonymous", None, None, PROXY,
     Grant("anonymous")),
    # -- URLs that carry their own authority -------------------------------------------------
    ("plain https", "multi", "globex", "https://example.com/a.pdf",
     "url", None, None, PROXY, Grant("none")),
    ("presigned S3 URL: no credentials even with aws integration", "multi", "acme", S3_SIGNED,
     "url", None, None, PROXY, Grant("none")),
    ("signed GCS URL", "multi", "acme", GCS_SIGNED, "url", None, None, PROXY, Grant("none")),
    ("Azure SAS URL", "multi", "acme", AZURE_SAS, "url", None, None, PROXY, Grant("none")),
]


@pytest.mark.parametrize(
    "config,tenant,uri,mode,identity,claim_uri,proxy,grant",
    [pytest.param(*row[1:], id=row[0]) for row in RULES])
def test_rule(config, tenant, uri, mode, identity, claim_uri, proxy, grant):
    location = parse(uri)
    if isinstance(mode, tuple):
        with pytest.raises(mode[0]) as info:
            route(CONFIGS[config], tenant, location)
        assert info.value.rule == mode[1]
        assert info.value.tenant == tenant
        assert info.value.uri == location.uri
        return
    r = route(CONFIGS[config], tenant, location)
    assert (r.mode, r.identity, r.proxy, r.grant) == (mode, identity, proxy, grant)
    assert r.claim == (None if claim_uri is None else claim(claim_uri))
    assert (r.backend, r.location.key, r.uri, r.tenant) == (
        location.backend, location.key, r.location.uri, tenant)
    assert r.rule


def test_table_covers_every_mode_and_grant_kind():
    modes = {row[4] for row in RULES if isinstance(row[4], str)}
    kinds = {row[8].kind for row in RULES if row[8] is not None}
    assert modes == {"ambient", "delegated", "direct", "anonymous", "url"}
    assert kinds == {"ambient", "aws-assume-role", "aws-platform", "gcp-impersonate",
                     "gcp-platform", "azure-app", "anonymous", "none"}


def test_route_fields_for_a_delegated_s3_read():
    r = route(MULTI, "acme", parse("https://acme-data.s3.us-west-2.amazonaws.com/dir/a b.png"))
    assert r.uri == "s3://acme-data/dir/a b.png"
    assert r.backend == "s3"
    assert r.location == Location("s3", "acme-data", "dir/a b.png", region="us-west-2")
    assert r.tenant == "acme"
    assert r.rule.startswith("S3 with the tenant's AWS integration")


def test_repr_never_shows_the_external_id():
    r = route(MULTI, "acme", parse("s3://acme-data/k"))
    assert r.grant.external_id == EXTERNAL_ID
    assert EXTERNAL_ID not in repr(r)
    assert EXTERNAL_ID not in repr(r.grant)
    assert EXTERNAL_ID not in str(r)
    assert ACME_ROLE in repr(r)


def test_repr_never_shows_a_url_signature():
    r = route(MULTI, "acme", parse(S3_SIGNED))
    assert "deadbeefcafe" not in repr(r)
    assert "AKIAEXAMPLE" not in repr(r)
    assert r.uri == S3_SIGNED  # the read itself still needs the signed URL


def test_unclaimed_refusal_names_bucket_tenant_and_both_fixes():
    with pytest.raises(AccessRefused) as info:
        route(MULTI, "globex", parse("s3://acme-data/a.png"))
    msg = str(info.value)
    assert "s3://acme-data" in msg and "'globex'" in msg
    assert 'add "s3://acme-data" to tenants.globex.direct' in msg
    assert "tenants.globex.aws = { account_id, external_id }" in msg


def test_unclaimed_gcs_refusal_names_the_gcp_fix():
    with pytest.raises(AccessRefused) as info:
        route(MULTI, "globex", parse("gs://acme-data/a.png"))
    assert 'add "gs://acme-data" to tenants.globex.direct' in str(info.value)
    assert "tenants.globex.gcp = { service_account }" in str(info.value)


def test_unknown_tenant_does_not_leak_other_tenant_names():
    with pytest.raises(AccessRefused) as info:
        route(MULTI, "hooli", parse("s3://some-bucket/k"))
    msg = str(info.value)
    assert "unknown tenant 'hooli'" in msg
    assert "[tenants]" in msg
    for name in MULTI.tenants:
        assert name not in msg


def test_missing_tenant_says_how_to_set_one():
    with pytest.raises(AccessRefused) as info:
        route(MULTI, None, parse("gs://globex-public/k"))
    assert "set tenant= or $ATTACHFS_TENANT" in str(info.value)


def test_empty_tenant_string_is_no_tenant():
    assert route(None, "", parse("s3://bucket/k")).mode == "ambient"
    with pytest.raises(AccessRefused):
        route(MULTI, "", parse("s3://globex-data/k"))


def test_azure_uri_without_account_takes_the_platform_default():
    r = route(MULTI, "globex", parse("az://cont/a.png"))
    assert r.location.account == "defaultacct"
    assert r.uri == "https://defaultacct.blob.core.windows.net/cont/a.png"


def test_azure_uri_without_any_account_in_multi_tenant_config_is_a_config_error():
    config = load_config({"tenants": {"globex": {}}})
    with pytest.raises(ConfigError) as info:
        route(config, "globex", parse("az://cont/a.png"))
    assert info.value.key == "platform.azure.account"


def test_azure_uri_without_account_stays_unset_in_ambient_mode():
    assert route(None, None, parse("az://cont/a.png")).location.account is None


@pytest.mark.parametrize("tenant,expected", [
    ("acme", "attachfs-acme"),
    ("a.b_c-d", "attachfs-a.b_c-d"),
    ("x" * 64, "attachfs-" + "x" * 55),
    ("bad name/ü", "attachfs-bad-name--"),
])
def test_session_name(tenant, expected):
    assert session_name(tenant) == expected


def test_route_and_grant_are_hashable_and_picklable():
    r = route(MULTI, "globex", parse("s3://globex-pinned/k"))
    assert hash(r) == hash(route(MULTI, "globex", parse("s3://globex-pinned/k")))
    assert {r.grant: 1}[Grant("aws-platform", expected_bucket_owner="444455556666")] == 1
    assert pickle.loads(pickle.dumps(r)) == r
    assert isinstance(r, Route)


def test_refusal_is_made_before_anything_else_and_pickles():
    with pytest.raises(AccessRefused) as info:
        route(MULTI, "globex", parse("gs://acme-data/k"))
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.rule, again.tenant, str(again)) == ("unclaimed", "globex", str(info.value))


def test_tenant_is_checked_before_the_azure_account():
    config = load_config({"tenants": {"globex": {}}})
    with pytest.raises(AccessRefused):
        route(config, None, parse("az://cont/a.png"))


def test_requester_pays_comes_from_the_claim_or_the_integration():
    config = load_config({
        "platform": {"aws": {"role_name": ROLE}},
        "tenants": {
            "acme": {"aws": {"account_id": "111122223333", "external_id": EXTERNAL_ID,
                             "requester_pays": True},
                     "gcp": {"service_account": ACME_SA, "user_project": "acme-billing"}},
            "globex": {"direct": [{"uri": "s3://open-data", "requester_pays": True},
                                  "s3://plain-data",
                                  {"uri": "gs://public-sets", "user_project": "plat-billing"}]},
        }})
    assert route(config, "acme", parse("s3://any/k")).requester_pays
    assert route(config, "acme", parse("gs://any/k")).user_project == "acme-billing"
    assert route(config, "globex", parse("s3://open-data/k")).requester_pays
    assert not route(config, "globex", parse("s3://plain-data/k")).requester_pays
    assert route(config, "globex", parse("gs://public-sets/k")).user_project == "plat-billing"
    # Only where the config opted in: the reader's account is billed.
    assert not route(MULTI, "globex", parse("s3://globex-data/k")).requester_pays


@pytest.mark.parametrize("url, authority", [
    ("https://acct.blob.core.windows.net/cont/k", None),
    ("https://acct.blob.core.usgovcloudapi.net/cont/k", "https://login.microsoftonline.us"),
    ("https://acct.blob.core.chinacloudapi.cn/cont/k", "https://login.chinacloudapi.cn"),
])
def test_a_sovereign_blob_is_read_with_its_clouds_authority(url, authority):
    r = route(MULTI, "acme", parse(url))
    assert r.mode == "delegated" and r.grant.azure_authority == authority
    configured = load_config({**MULTI.as_mapping(), "platform": {
        **MULTI.as_mapping()["platform"],
        "azure": {**MULTI.as_mapping()["platform"]["azure"], "authority": "https://fake.test"}}})
    assert route(configured, "acme", parse(url)).grant.azure_authority == "https://fake.test"
