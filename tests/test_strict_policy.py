"""`attachfs policy` output that works on the real clouds, through the command line.

* Reading a version (``?versionId=``) is ``s3:GetObjectVersion``, not ``s3:GetObject``
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, "Permissions"; moto
  enforces it the same way).
* Without ``s3:ListBucket`` a missing key is a 403, not a 404 (same page); the policy offers
  the permission, scoped to the prefix with the ``s3:prefix`` condition key.
* An SSE-KMS object needs ``kms:Decrypt`` on its key, allowed by the role's policy and by the
  key's own key policy (https://docs.aws.amazon.com/kms/latest/developerguide/
  key-policy-overview.html).
* Microsoft's admin-consent URL takes the ``redirect_uri`` the app registered
  (https://learn.microsoft.com/entra/identity-platform/v2-admin-consent); role assignments
  can take several minutes to apply (https://learn.microsoft.com/azure/role-based-access-control/
  troubleshooting#symptom---role-assignment-changes-are-not-being-detected), and
  ``az role assignment create --assignee-object-id ... --assignee-principal-type
  ServicePrincipal`` avoids a Graph lookup the customer's CLI may not be allowed to make
  (https://learn.microsoft.com/cli/azure/role/assignment#az-role-assignment-create).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from attachfs._cli.commands import main

APP = "11111111-2222-3333-4444-555555555555"
DIRECTORY = "2b0c6c1e-0000-0000-0000-000000000000"
KMS_KEY = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
REDIRECT = "https://platform.example.com/integrations/azure/consented"


def write_config(tmp_path: Path, azure_extra: str = "") -> Path:
    path = tmp_path / "attachfs.toml"
    path.write_text(f"""
[platform.aws]
role_name = "AttachmentReader"
account_id = "307185671274"

[platform.azure]
client_id = "{APP}"
client_secret_env = "APP_SECRET"
{azure_extra}

[tenants.acme]
aws = {{ account_id = "111122223333", external_id = "acme-5f0c" }}
azure = {{ tenant_id = "{DIRECTORY}" }}

[tenants.globex]
direct = ["s3://globex-data/in/"]
""")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def policy_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, "policy", *argv, "--json")
    assert code == 0, err
    return dict(json.loads(out))


def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if "permission_policy" in doc:
        return list(doc["permission_policy"]["Statement"])
    return [s for b in doc["s3"] for s in b["policy"]["Statement"]]


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


@pytest.mark.parametrize("argv", [
    ("aws", "--tenant", "acme", "--bucket", "s3://acme-data/in/"),
    ("bucket", "--tenant", "globex"),
])
def test_object_reads_allow_get_object_version(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, argv: tuple[str, ...]) -> None:
    doc = policy_json(capsys, *argv, "--config", str(write_config(tmp_path)))
    reads = [s for s in statements(doc) if "s3:GetObject" in actions(s)]
    assert reads and all("s3:GetObjectVersion" in actions(s) for s in reads)
    assert reads[0]["Resource"] in (["arn:aws:s3:::acme-data/in/*"],
                                    ["arn:aws:s3:::globex-data/in/*"])


def test_list_bucket_is_offered_so_a_missing_key_is_a_404(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    code, text, _ = run(capsys, "policy", "aws", "--tenant", "acme", "--bucket",
                        "s3://acme-data/in/", "--config", config)
    assert code == 0
    assert "s3:ListBucket" in text and "--list" in text
    assert "403" in text and "404" in text
    doc = policy_json(capsys, "aws", "--tenant", "acme", "--bucket", "s3://acme-data/in/",
                      "--list", "--config", config)
    [listing] = [s for s in statements(doc) if "s3:ListBucket" in actions(s)]
    assert listing["Resource"] == "arn:aws:s3:::acme-data"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["in/*"]}}


def test_kms_key_adds_kms_decrypt_to_the_role_and_names_the_key_policy(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    doc = policy_json(capsys, "aws", "--tenant", "acme", "--bucket", "acme-data", "--kms-key",
                      KMS_KEY, "--config", config)
    [kms] = [s for s in statements(doc) if "kms:Decrypt" in actions(s)]
    assert kms["Effect"] == "Allow"
    assert kms["Resource"] in (KMS_KEY, [KMS_KEY])
    code, text, _ = run(capsys, "policy", "aws", "--tenant", "acme", "--bucket", "acme-data",
                        "--kms-key", KMS_KEY, "--config", config)
    assert code == 0
    assert "key policy" in text.lower()
    assert "arn:aws:iam::111122223333:role/AttachmentReader" in text


def test_azure_consent_url_carries_the_registered_redirect_uri(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = str(write_config(tmp_path, f'redirect_uri = "{REDIRECT}"'))
    doc = policy_json(capsys, "azure", "--tenant", "acme", "--bucket",
                      "https://acct1.blob.core.windows.net/cont1", "--config", config)
    url = urlsplit(doc["consent_url"])
    assert url.path == f"/{DIRECTORY}/adminconsent"
    assert parse_qs(url.query) == {"client_id": [APP], "redirect_uri": [REDIRECT]}


def test_azure_role_assignment_names_the_principal_and_says_it_takes_minutes(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    code, text, _ = run(capsys, "policy", "azure", "--tenant", "acme", "--bucket",
                        "https://acct1.blob.core.windows.net/cont1", "--config", config)
    assert code == 0
    assigns = [shlex.split(line) for line in text.splitlines()
               if line.startswith("az role assignment create")]
    assert assigns
    for argv in assigns:
        assert "--assignee" not in argv
        assert "--assignee-object-id" in argv
        assert argv[argv.index("--assignee-principal-type") + 1] == "ServicePrincipal"
    assert "minutes" in text
