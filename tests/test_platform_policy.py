"""`attachfs policy platform`: what the platform itself needs on each cloud.

As tables of cases (pure), and end to end on moto with IAM enforcement: the printed identity
policy, attached to the platform's IAM user, lets it assume a tenant's role and read a claimed
bucket directly, and nothing else.
"""

from __future__ import annotations

import json
import shlex
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from attachfs import ConfigError, load_config
from attachfs._cli import commands as cli
from attachfs._cli import platform

PLATFORM_SA = "backend@platform-proj.iam.gserviceaccount.com"
APP = "11111111-2222-3333-4444-555555555555"
REDIRECT = "https://platform.example.com/integrations/azure/consented"


AZURE_ONLY = {"acme": {"azure": {"tenant_id": "2b0c6c1e-0000-0000-0000-000000000000"}}}


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "platform-sa.json"
    path.write_text(json.dumps({"type": "service_account", "client_email": PLATFORM_SA,
                                "project_id": "platform-prod", "private_key": "not-a-key"}))
    return path


def make(key_file=None, **overrides):
    platform_ = {"aws": {"role_name": "AttachmentReader", "account_id": "307185671274"},
                 "azure": {"client_id": APP, "client_secret_env": "APP_SECRET"}}
    if key_file is not None:
        platform_["gcp"] = {"credentials": str(key_file)}
    platform_.update(overrides.pop("platform", {}))
    tenants = overrides.pop("tenants", {
        "acme": {"aws": {"account_id": "111122223333", "external_id": "acme-5f0c"},
                 "azure": {"tenant_id": "2b0c6c1e-0000-0000-0000-000000000000"}},
        "globex": {"direct": ["s3://globex-bucket", "s3://globex-two/in/", "gs://globex-pub/"]},
    })
    return load_config({"platform": platform_, "tenants": tenants})


def test_aws_identity_policy_assumes_the_role_in_any_account_and_reads_claimed_buckets(key_file):
    doc = platform.platform(make(key_file), redirect_uri=REDIRECT)["aws"]
    assume, read = doc["identity_policy"]["Statement"]
    assert (assume["Action"], assume["Resource"]) == (
        "sts:AssumeRole", "arn:aws:iam::*:role/AttachmentReader")
    # GetObjectVersion: reads of a versioned URL (?versionId=) are authorised as that action.
    assert read["Action"] == ["s3:GetObject", "s3:GetObjectVersion"]
    assert read["Resource"] == ["arn:aws:s3:::globex-bucket/*", "arn:aws:s3:::globex-two/in/*"]
    assert doc["tenants_delegated"] == ["acme"]
    assert doc["commands"] == []  # the role the platform runs as is not in the config ...
    assert any("--platform-role" in n for n in doc["notes"])
    with_role = platform.platform(make(key_file), platform_role="fetcher",
                                  redirect_uri=REDIRECT)["aws"]
    (command,) = with_role["commands"]  # ... unless named
    assert command[:6] == ["aws", "iam", "put-role-policy", "--role-name", "fetcher",
                           "--policy-name"]
    assert json.loads(command[-1]) == with_role["identity_policy"]


def test_gcp_names_the_source_identity_and_enables_the_iam_credentials_api(key_file):
    doc = platform.platform(make(key_file, tenants={
        "acme": {"gcp": {"service_account": "attach-acme@acme-prod.iam.gserviceaccount.com"}}}),
        redirect_uri=REDIRECT)["gcp"]
    assert doc["service_account"] == PLATFORM_SA
    assert doc["commands"] == [["gcloud", "services", "enable", "iamcredentials.googleapis.com",
                                "--project=platform-prod"]]  # the key file's project
    assert str(key_file) in doc["source"] and doc["tenants_delegated"] == ["acme"]


def test_gcp_with_application_default_credentials_needs_the_service_account_named():
    config = make(tenants={"acme": {"gcp": {
        "service_account": "attach-acme@acme-prod.iam.gserviceaccount.com"}}})
    with pytest.raises(ValueError, match="--platform-service-account"):
        platform.platform(config, redirect_uri=REDIRECT)
    doc = platform.platform(config, platform_sa=PLATFORM_SA, redirect_uri=REDIRECT)["gcp"]
    assert doc["project"] == "platform-proj"  # from the email
    assert "application default credentials" in doc["source"]


@pytest.mark.parametrize("credential", ["secret", "certificate"])
def test_azure_registers_a_multi_tenant_app_with_a_redirect_uri_and_a_credential(credential):
    azure = {"client_id": APP}
    if credential == "secret":
        azure["client_secret_env"] = "APP_SECRET"
    else:
        azure["client_certificate_path"] = "/etc/attachfs/app.pem"
    doc = platform.platform(make(platform={"azure": azure}, tenants=AZURE_ONLY),
                            redirect_uri=REDIRECT)["azure"]
    register, upload = doc["commands"]
    assert register == ["az", "ad", "app", "update", "--id", APP, "--sign-in-audience",
                        "AzureADMultipleOrgs", "--web-redirect-uris", REDIRECT]
    assert upload[:7] == ["az", "ad", "app", "credential", "reset", "--id", APP]
    if credential == "secret":
        assert doc["credential"] == {"kind": "secret", "config_key": "platform.azure.client_secret_env",
                                     "environment_variable": "APP_SECRET"}
    else:
        assert "--cert" in upload and "@/etc/attachfs/app.pem" in upload
    assert doc["consent_url_template"].endswith(
        "&redirect_uri=https%3A%2F%2Fplatform.example.com%2Fintegrations%2Fazure%2Fconsented")


def test_azure_without_a_redirect_uri_is_a_usage_error():
    with pytest.raises(ValueError, match="--redirect-uri.*AADSTS500113"):
        platform.platform(make(tenants=AZURE_ONLY))
    with pytest.raises(ValueError, match="https://"):
        platform.platform(make(tenants=AZURE_ONLY), redirect_uri="http://platform.example.com/x")


def test_a_cloud_the_config_does_not_use_is_left_out():
    doc = platform.platform(load_config({"platform": {"aws": {"role_name": "AttachmentReader"}},
                                         "tenants": {"acme": {"aws": {
                                             "account_id": "111122223333",
                                             "external_id": "x-1"}}}}))
    assert doc["gcp"] is None and doc["azure"] is None and doc["aws"] is not None
    with pytest.raises(ConfigError, match="platform.aws.role_name"):
        platform.platform(load_config({"tenants": {"acme": {"aws": {
            "account_id": "111122223333", "external_id": "x-1"}}}}))


def test_the_command_prints_text_and_json(capsys, tmp_path, key_file):
    path = tmp_path / "attachfs.toml"
    path.write_text(f"""
[platform.aws]
role_name = "AttachmentReader"
account_id = "307185671274"
[platform.gcp]
credentials = "{key_file}"
[platform.azure]
client_id = "{APP}"
client_secret_env = "APP_SECRET"
[tenants.globex]
direct = ["s3://globex-bucket"]
""")
    argv = ["policy", "platform", "--config", str(path), "--redirect-uri", REDIRECT]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert cli.main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"] == "platform" and doc["aws"] and doc["gcp"] and doc["azure"]
    assert "sts:AssumeRole" in text and "iamcredentials.googleapis.com" in text
    assert "AzureADMultipleOrgs" in text and "$APP_SECRET" in text
    # No --tenant needed; --redirect-uri is refused elsewhere.
    assert cli.main(["policy", "aws", "--config", str(path), "--tenant", "globex",
                     "--redirect-uri", REDIRECT]) == 2


# --------------------------------------------------------------------------- on moto


def test_the_aws_policy_lets_the_platform_assume_and_read_claimed_buckets_only(peers, tmp_path):
    admin = {"endpoint_url": peers.s3_endpoint, "region_name": "us-east-1",
             "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    suffix = uuid.uuid4().hex[:8]
    claimed, unclaimed, role = f"claimed-{suffix}", f"unclaimed-{suffix}", f"Reader{suffix}"
    s3, iam = boto3.client("s3", **admin), boto3.client("iam", **admin)
    for bucket in (claimed, unclaimed):
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k.txt", Body=b"data")
    user = f"platform-{suffix}"
    iam.create_user(UserName=user)
    keys = iam.create_access_key(UserName=user)["AccessKey"]
    user_arn = f"arn:aws:iam::123456789012:user/{user}"
    for name in (role, f"Other{suffix}"):  # both trust the platform; only one is the name
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"AWS": user_arn}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": "x-1"}}}]}))

    config = load_config({"platform": {"aws": {"role_name": role, "account_id": "123456789012"}},
                          "tenants": {"acme": {"aws": {"account_id": "123456789012",
                                                       "external_id": "x-1"}},
                                      "globex": {"direct": [f"s3://{claimed}"]}}})
    doc = platform.platform(config, platform_role="unused")["aws"]
    # Apply it as printed (the role command, but to the user the platform is here).
    command = doc["commands"][0]
    iam.put_user_policy(UserName=user, PolicyName=command[command.index("--policy-name") + 1],
                        PolicyDocument=command[-1])
    me = {**admin, "aws_access_key_id": keys["AccessKeyId"],
          "aws_secret_access_key": keys["SecretAccessKey"]}
    peers.enable_iam()
    try:
        platform_s3 = boto3.client("s3", **me)
        assert platform_s3.get_object(Bucket=claimed, Key="k.txt")["Body"].read() == b"data"
        with pytest.raises(ClientError):
            platform_s3.get_object(Bucket=unclaimed, Key="k.txt")
        assumed = boto3.client("sts", **me).assume_role(
            RoleArn=f"arn:aws:iam::123456789012:role/{role}", RoleSessionName="test",
            ExternalId="x-1")
        assert assumed["Credentials"]["AccessKeyId"]
        with pytest.raises(ClientError):  # another role name: not in the policy
            boto3.client("sts", **me).assume_role(
                RoleArn=f"arn:aws:iam::123456789012:role/Other{suffix}", RoleSessionName="test",
                ExternalId="x-1")
    finally:
        peers.disable_iam()
    assert shlex.join(command)  # the printed command is one valid shell line
