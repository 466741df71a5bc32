"""`attachfs policy`: the documents and commands, as tables of cases (pure: no peers).

The end-to-end proofs (moto accepts the AWS documents and they let the tenant read; the gcloud
and az grants, applied to the fakes, make `check` pass) are in test_cli.py.
"""

from __future__ import annotations

import json
import shlex

import pytest

from attachfs import ConfigError, load_config
from attachfs._cli import commands as cli
from attachfs._cli import policy

PLATFORM_ACCOUNT = "307185671274"
PLATFORM_SA = "backend@platform-proj.iam.gserviceaccount.com"
APP = "11111111-2222-3333-4444-555555555555"
DIRECTORY = "2b0c6c1e-0000-0000-0000-000000000000"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "platform-sa.json"
    # Only client_email is read; the rest stands in for a real key file's fields.
    path.write_text(json.dumps({"type": "service_account", "client_email": PLATFORM_SA,
                                "private_key": "not-a-real-key"}))
    return path


@pytest.fixture
def config(key_file):
    return load_config({
        "platform": {
            "aws": {"role_name": "AttachmentReader", "account_id": PLATFORM_ACCOUNT},
            "gcp": {"credentials": str(key_file)},
            "azure": {"client_id": APP, "client_secret_env": "APP_SECRET"},
        },
        "tenants": {
            "acme": {"aws": {"account_id": "111122223333", "external_id": "acme-5f0c"},
                     "gcp": {"service_account": "attach-acme@acme-prod.iam.gserviceaccount.com"},
                     "azure": {"tenant_id": DIRECTORY}},
            "globex": {"direct": [{"uri": "s3://globex-bucket", "owner": "444455556666"},
                                  "s3://globex-two/in/", "gs://globex-pub/data/"]},
            "legacy": {"gcp": {"service_account": "123-compute@developer.gserviceaccount.com"}},
        },
    })


def json_blocks(text: str) -> list:
    """Every JSON document in ``text`` that starts at the beginning of a line."""
    decoder, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i] == "{" and (i == 0 or text[i - 1] == "\n"):
            doc, end = decoder.raw_decode(text, i)
            out.append(doc)
            i = end
        else:
            i += 1
    return out


def commands(text: str) -> list[list[str]]:
    return [shlex.split(line) for line in text.splitlines()
            if line.startswith(("aws ", "gcloud ", "az "))]


# ------------------------------------------------------------------------------------- AWS


def test_aws_role_trust_and_permission_policy(config):
    doc = policy.aws(config, "acme", ["acme-data", "s3://acme-two/in/"])

    assert doc["role_name"] == "AttachmentReader"
    assert doc["role_arn"] == "arn:aws:iam::111122223333:role/AttachmentReader"
    [trust] = doc["trust_policy"]["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{PLATFORM_ACCOUNT}:root"}
    assert trust["Action"] == "sts:AssumeRole" and trust["Effect"] == "Allow"
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": "acme-5f0c"}}
    [read] = doc["permission_policy"]["Statement"]
    # A versionId read is s3:GetObjectVersion (GetObject docs, "Permissions").
    assert read["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert read["Resource"] == ["arn:aws:s3:::acme-data/*", "arn:aws:s3:::acme-two/in/*"]


def test_aws_text_is_the_json_documents_and_runnable_commands(config):
    doc = policy.aws(config, "acme", ["acme-data"])
    text = policy.render(doc)

    assert json_blocks(text) == [doc["trust_policy"], doc["permission_policy"]]
    create, put = commands(text)
    assert create[:5] == ["aws", "iam", "create-role", "--role-name", "AttachmentReader"]
    assert json.loads(create[create.index("--assume-role-policy-document") + 1]) == \
        doc["trust_policy"]
    assert json.loads(put[put.index("--policy-document") + 1]) == doc["permission_policy"]
    assert "YOUR_BUCKET_NAME" not in text and "<" not in text


def test_aws_list_permission_is_scoped_to_the_prefix(config):
    doc = policy.aws(config, "acme", ["acme-data", "s3://acme-two/in/"], allow_list=True)
    listing = [s for s in doc["permission_policy"]["Statement"]
               if s["Action"] == ["s3:ListBucket"]]
    assert [(s["Resource"], s.get("Condition")) for s in listing] == [
        ("arn:aws:s3:::acme-data", None),
        ("arn:aws:s3:::acme-two", {"StringLike": {"s3:prefix": ["in/*"]}}),
    ]


@pytest.mark.parametrize("tenant, buckets, error, words", [
    ("globex", ["b-one"], ConfigError, ["no AWS integration", "tenants.globex.aws",
                                        "policy bucket"]),
    ("acme", None, ValueError, ["needs --bucket"]),
    ("acme", ["gs://not-s3"], ValueError, ["is not s3"]),
    ("acme", ["s3://bucket/prefix-without-slash"], ValueError, ["must end in \"/\""]),
    ("nobody", ["b-one"], ConfigError, ["no tenant 'nobody'"]),
    (None, ["b-one"], ValueError, ["--tenant"]),
])
def test_aws_refuses_what_it_cannot_make_exact(config, tenant, buckets, error, words):
    with pytest.raises(error) as raised:
        policy.aws(config, tenant, buckets)
    for word in words:
        assert word in str(raised.value)


def test_aws_needs_the_platform_account(key_file):
    cfg = load_config({"platform": {"aws": {"role_name": "R"}},
                       "tenants": {"acme": {"aws": {"account_id": "111122223333",
                                                    "external_id": "x-1"}}}})
    with pytest.raises(ConfigError, match="platform.aws.account_id"):
        policy.aws(cfg, "acme", ["b-one"])


def test_policy_needs_a_multi_tenant_config():
    with pytest.raises(ConfigError, match="--config"):
        policy.aws(None, "acme", ["b-one"])


# ---------------------------------------------------------------------------------- bucket


def test_bucket_policies_default_to_the_claims(config):
    doc = policy.bucket(config, "globex")

    assert [s["bucket"] for s in doc["s3"]] == ["globex-bucket", "globex-two"]
    one, two = doc["s3"]
    [stmt] = one["policy"]["Statement"]
    assert stmt["Principal"] == {"AWS": [f"arn:aws:iam::{PLATFORM_ACCOUNT}:root"]}
    assert stmt["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert stmt["Resource"] == ["arn:aws:s3:::globex-bucket/*"]
    assert two["policy"]["Statement"][0]["Resource"] == ["arn:aws:s3:::globex-two/in/*"]
    assert one["command"][:5] == ["aws", "s3api", "put-bucket-policy", "--bucket",
                                  "globex-bucket"]
    assert json.loads(one["command"][-1]) == one["policy"]
    # globex-bucket is pinned to its owner; globex-two is not, and the notes say so.
    assert any("s3://globex-two" in n and "owner" in n for n in doc["notes"])
    assert not any("s3://globex-bucket" in n for n in doc["notes"])
    [gcs] = doc["gcs"]
    assert gcs["command"] == ["gcloud", "storage", "buckets", "add-iam-policy-binding",
                              "gs://globex-pub", f"--member=serviceAccount:{PLATFORM_SA}",
                              "--role=roles/storage.objectViewer"]
    text = policy.render(doc)
    assert json_blocks(text) == [one["policy"], two["policy"]]


def test_bucket_warns_when_the_bucket_is_not_claimed(config):
    doc = policy.bucket(config, "globex", ["s3://someone-else"])
    assert any("not claimed" in n and "tenants.globex.direct" in n for n in doc["notes"])


def test_bucket_refuses_a_tenant_whose_reads_are_delegated(config):
    with pytest.raises(ValueError, match="policy aws"):
        policy.bucket(config, "acme", ["s3://acme-data"])
    with pytest.raises(ValueError, match="policy gcp"):
        policy.bucket(config, "acme", ["gs://acme-data"])


# ------------------------------------------------------------------------------------- GCP


def test_gcp_commands(config):
    doc = policy.gcp(config, "acme", ["gs://acme-data"])
    sa = "attach-acme@acme-prod.iam.gserviceaccount.com"

    assert doc["platform_service_account"] == PLATFORM_SA  # from the key file
    assert doc["commands"] == [
        ["gcloud", "iam", "service-accounts", "create", "attach-acme", "--project=acme-prod",
         "--display-name=attachfs reader"],
        ["gcloud", "iam", "service-accounts", "add-iam-policy-binding", sa,
         "--project=acme-prod", f"--member=serviceAccount:{PLATFORM_SA}",
         "--role=roles/iam.serviceAccountTokenCreator"],
        ["gcloud", "storage", "buckets", "add-iam-policy-binding", "gs://acme-data",
         f"--member=serviceAccount:{sa}", "--role=roles/storage.objectViewer"],
    ]
    assert commands(policy.render(doc)) == doc["commands"]


def test_gcp_platform_identity_from_the_flag_when_there_is_no_key_file():
    cfg = load_config({"platform": {"gcp": {"credentials": "anonymous"}},
                       "tenants": {"acme": {"gcp": {
                           "service_account": "a-1@p-1.iam.gserviceaccount.com"}}}})
    with pytest.raises(ValueError, match="--platform-service-account"):
        policy.gcp(cfg, "acme", ["b-one"])
    doc = policy.gcp(cfg, "acme", ["b-one"], platform_sa="me@plat.iam.gserviceaccount.com")
    assert doc["token_creator"]["member"] == "serviceAccount:me@plat.iam.gserviceaccount.com"


def test_gcp_does_not_create_a_service_account_it_cannot_name(config):
    doc = policy.gcp(config, "legacy", ["b-one"])
    assert doc["project"] is None
    assert [c[:4] for c in doc["commands"]] == [
        ["gcloud", "iam", "service-accounts", "add-iam-policy-binding"],
        ["gcloud", "storage", "buckets", "add-iam-policy-binding"]]
    assert commands(policy.render(doc)) == doc["commands"]


# ----------------------------------------------------------------------------------- Azure


def test_azure_consent_and_role_assignment(config):
    doc = policy.azure(config, "acme", ["https://acct1.blob.core.windows.net/cont1", "acct2"])

    assert doc["consent_url"] == (f"https://login.microsoftonline.com/{DIRECTORY}/adminconsent"
                                  f"?client_id={APP}")
    assert [(a["account"], a["container"], a["role"], a["assignee"])
            for a in doc["role_assignments"]] == [
        ("acct1", "cont1", "Storage Blob Data Reader", APP),
        ("acct2", None, "Storage Blob Data Reader", APP)]
    text = policy.render(doc)
    assert doc["consent_url"] in text
    parsed = commands(text)
    assert parsed[0] == ["az", "login", "--tenant", DIRECTORY]
    assert parsed[1] == ["az", "ad", "sp", "create", "--id", APP]
    first = parsed[2]
    assert first[:4] == ["az", "role", "assignment", "create"]
    assert first[first.index("--role") + 1] == "Storage Blob Data Reader"
    # The scope stays a shell substitution (double-quoted), resolved by the customer's az.
    assert ('--scope "$(az storage account show --name acct1 --query id --output tsv)'
            '/blobServices/default/containers/cont1"') in text


def test_azure_needs_an_integration(config):
    with pytest.raises(ConfigError, match="no Azure integration"):
        policy.azure(config, "globex", ["acct1/cont1"])


# ------------------------------------------------------------------------- through the CLI


def test_cli_policy_exit_codes_and_json(config, tmp_path, capsys, key_file):
    path = tmp_path / "attachfs.toml"
    path.write_text(f"""
[platform.aws]
role_name = "AttachmentReader"
account_id = "{PLATFORM_ACCOUNT}"
[platform.gcp]
credentials = "{key_file}"
[tenants.acme]
aws = {{ account_id = "111122223333", external_id = "acme-5f0c" }}
""")
    assert cli.main(["policy", "aws", "--config", str(path), "--tenant", "acme",
                     "--bucket", "acme-data", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == policy.aws(load_config(str(path)), "acme", ["acme-data"])

    assert cli.main(["policy", "aws", "--config", str(path), "--tenant", "acme",
                     "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert json.loads(err)["error"]["exit_code"] == 2

    assert cli.main(["policy", "gcp", "--config", str(path), "--tenant", "acme",
                     "--bucket", "b-one"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "no GCP integration" in err


def test_a_bucket_named_with_flag_takes_the_owner_of_the_tenants_claim(capsys):
    example = "docs/examples/policy-example.toml"
    cfg = load_config(example)
    (claim,) = [c for c in cfg.tenants["globex"].direct if c.backend == "s3"]
    assert claim.owner
    code = cli.main(["policy", "bucket", "--tenant", "globex", "--bucket", f"s3://{claim.bucket}",
                     "--json", "--config", example,
                     "--platform-service-account",
                     "backend-bucket-access@attachment-storage-243718.iam.gserviceaccount.com"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["s3"][0]["expected_owner"] == claim.owner
    assert not any("pin the claim" in note for note in out["notes"])
