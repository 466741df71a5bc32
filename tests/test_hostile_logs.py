"""Hostile logs: no DEBUG record of any logger carries a credential, whoever emitted it.

A filter on a named logger never sees the records of its children (``azure.identity`` does not
filter ``azure.identity._credentials.client_secret``), nor of loggers nobody listed (``foo.bar``,
``botocore.credentials``, ``s3fs.core``). Scrubbing has to act on every record, before any
handler formats it: a handler the application adds later, on the root or on the logger itself,
must see the clean text. The shapes below are the ones SDKs really log (botocore's request
params and STS response body, its canonical request, OAuth token responses, MSAL form bodies,
service-account JSON, signed URLs); the values are made up for each test.

And end to end: ``attachfs cat -vv`` for a tenant with an AWS integration, against moto, prints
botocore's DEBUG output on stderr; it must hold neither the ExternalId (docs/configuration.md:
"attachfs keeps it out of reprs and logs") nor any credential.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import attachfs  # noqa: F401 -- imported first, as an application would, before adding handlers
from test_tenancy_aws import ACCOUNT, EXTERNAL_ID, PAYLOAD, ROLE, aws  # noqa: F401 -- fixture

#: Loggers that see credentials: children of listed ones, and ones nobody listed.
LOGGERS = [
    "azure.identity._credentials.client_secret",
    "azure.identity.aio._credentials.client_secret",
    "azure.identity._internal.msal_client",
    "azure.core.pipeline.policies.http_logging_policy",
    "msal.application",
    "msal.token_cache",
    "msal.oauth2cli.oauth2",
    "fsspec.http",
    "fsspec.asyn",
    "gcsfs.core",
    "gcsfs.credentials",
    "google.auth.transport.requests",
    "google.auth._default",
    "botocore.endpoint",
    "botocore.credentials",
    "botocore.auth",
    "botocore.hooks",
    "botocore.parsers",
    "aiobotocore.endpoint",
    "s3fs.core",
    "adlfs.spec",
    "urllib3.connectionpool",
    "aiohttp.client",
    "foo.bar",
    "root",
]

#: How SDKs put a credential into a log line; {v} is the credential value.
SHAPES = [
    ("sts-xml-secret", "Response body:\nb'<Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId>"
                       "<SecretAccessKey>{v}</SecretAccessKey></Credentials>'"),
    ("sts-xml-token", "Response body:\nb'<SessionToken>{v}</SessionToken>'"),
    ("botocore-params-external-id", "Making request for OperationModel(name=AssumeRole) with "
                                    "params: {{'body': {{'Action': 'AssumeRole', 'RoleArn': "
                                    "'arn:aws:iam::111122223333:role/R', 'ExternalId': '{v}'}}}}"),
    ("botocore-parsed-secret", "Response: {{'Credentials': {{'AccessKeyId': 'ASIAEXAMPLE', "
                               "'SecretAccessKey': '{v}', 'SessionToken': 'tok'}}}}"),
    ("canonical-request-token", "CanonicalRequest:\nGET\n/b/k\n\nhost:s3.amazonaws.com\n"
                                "x-amz-security-token:{v}\n\nhost;x-amz-security-token\nUNSIGNED"),
    ("header-security-token", "Sending http request: <AWSPreparedRequest headers={{"
                              "'X-Amz-Security-Token': b'{v}'}}>"),
    ("sigv4-authorization", "headers={{'Authorization': b'AWS4-HMAC-SHA256 Credential=AKID/"
                            "20260101/us-east-1/s3/aws4_request, SignedHeaders=host, "
                            "Signature={v}'}}"),
    ("bearer-header", "Request headers: {{'Authorization': 'Bearer {v}'}}"),
    ("oauth-json", 'Response: {{"token_type": "Bearer", "expires_in": 3599, '
                   '"access_token": "{v}"}}'),
    ("oauth-json-spaced", '{{ "access_token" : "{v}" }}'),
    ("msal-form", "POST /tenant/oauth2/v2.0/token client_id=abc&client_secret={v}"
                  "&grant_type=client_credentials&scope=https%3A%2F%2Fstorage.azure.com%2F.default"),
    ("msal-assertion", "client_assertion_type=jwt-bearer&client_assertion={v}"),
    ("sa-json-private-key", '{{"type": "service_account", "private_key": "-----BEGIN PRIVATE '
                            'KEY-----\\n{v}\\n-----END PRIVATE KEY-----\\n"}}'),
    ("env-style", "AZURE_CLIENT_SECRET={v} AWS_SECRET_ACCESS_KEY={v}"),
    ("connection-string", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey={v};"),
    ("shared-key", "Authorization: SharedKey devstoreaccount1:{v}"),
    ("signed-s3-url", "GET https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
                      "X-Amz-Credential=AKID%2F20260101&X-Amz-Signature={v}"),
    ("signed-gcs-url", "https://storage.googleapis.com/b/k?X-Goog-Signature={v}&X-Goog-Date=1"),
    ("sas-url", "https://a.blob.core.windows.net/c/k?sv=2023-11-03&sp=r&sig={v}"),
    ("token-query", "http://files.example/x?download=1&token={v}"),
    ("code-query", "https://files.example/cb?state=s&code={v}"),
]


def value() -> str:
    """A fresh credential-looking value (base64-ish, long, unique to one test)."""
    return "Zk" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")


class Capture(logging.Handler):
    """Formats every record it gets, tracebacks included, as an application's handler would."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s:%(levelname)s:%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def root_capture() -> Iterator[Capture]:
    """A handler added to the root logger after attachfs was imported (the usual set-up)."""
    root = logging.getLogger()
    handler, level = Capture(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@contextlib.contextmanager
def _logger(name: str) -> Iterator[logging.Logger]:
    """The logger ``name`` at DEBUG, it and its ancestors enabled and propagating, for the
    duration (restored after: a library another test used may have configured logging, e.g.
    ``disable_existing_loggers`` or a non-propagating ``google`` logger)."""
    logger = logging.getLogger() if name == "root" else logging.getLogger(name)
    chain = [logger]
    parts = name.split(".") if name != "root" else []
    chain += [logging.getLogger(".".join(parts[:i])) for i in range(len(parts) - 1, 0, -1)]
    saved = [(each, each.disabled, each.propagate) for each in chain]
    level = logger.level
    logger.setLevel(logging.DEBUG)
    for each in chain:
        each.disabled, each.propagate = False, True
    try:
        yield logger
    finally:
        logger.setLevel(level)
        for each, disabled, propagate in saved:
            each.disabled, each.propagate = disabled, propagate


@pytest.mark.parametrize("shape", [t for _, t in SHAPES], ids=[n for n, _ in SHAPES])
@pytest.mark.parametrize("name", LOGGERS)
def test_no_logger_carries_a_credential_at_debug(root_capture: Capture, name: str,
                                                 shape: str) -> None:
    """Each shape, logged by each logger through %-style args, reaches the root's handler
    without the value."""
    secret = value()
    with _logger(name) as logger:
        logger.debug("%s", shape.format(v=secret))
    assert root_capture.texts, "nothing was logged: nothing checked"
    assert not [t for t in root_capture.texts if secret in t]


@pytest.mark.parametrize("name", ["azure.identity._credentials.client_secret", "fsspec.http",
                                  "gcsfs.core", "msal.application", "foo.bar"])
def test_a_handler_on_the_logger_itself_sees_clean_records(name: str) -> None:
    """Scrubbing is on the record, not on one handler: a handler attached to the child logger
    (propagation off) sees no credential either."""
    handler, secret = Capture(), value()
    with _logger(name) as logger:
        propagate = logger.propagate
        logger.addHandler(handler)
        logger.propagate = False
        try:
            logger.debug("Response body: <SessionToken>%s</SessionToken> client_secret=%s",
                         secret, secret)
        finally:
            logger.removeHandler(handler)
            logger.propagate = propagate
    assert handler.texts and not [t for t in handler.texts if secret in t]


@pytest.mark.parametrize("name", ["fsspec.http", "aiohttp.client", "foo.bar"])
def test_tracebacks_in_records_carry_no_credential(root_capture: Capture, name: str) -> None:
    """``logger.debug("", exc_info=err)`` (fsspec's http does this): the formatted traceback
    holds the exception's message, which may hold a signed URL."""
    secret = value()
    try:
        raise OSError(f"400, message='Bad status line', url='http://h/x?X-Amz-Signature={secret}'")
    except OSError as err:
        with _logger(name) as logger:
            logger.debug("", exc_info=err)
    assert root_capture.texts and not [t for t in root_capture.texts if secret in t]


logger_names = st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True), min_size=1,
                        max_size=4).map(".".join)


@settings(max_examples=150, deadline=None)
@given(name=logger_names, shape=st.sampled_from([t for _, t in SHAPES]),
       secret=st.text("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz0123456789+/", min_size=16,
                      max_size=48).map(lambda s: "Zk" + s),
       level=st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING]))
def test_property_any_logger_any_shape_any_level(name: str, shape: str, secret: str,
                                                 level: int) -> None:
    """Property: for any logger name (at any depth), any of the shapes and any level, the
    formatted record holds no credential."""
    root = logging.getLogger()
    handler, old_level = Capture(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with _logger(name) as logger:
            logger.log(level, shape.format(v=secret))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert handler.texts and not [t for t in handler.texts if secret in t]


# --------------------------------------------------------------------------- attachfs cat -vv

def _toml(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    """A minimal TOML writer for nested tables of strings."""
    lines: list[str] = []
    scalars = {k: v for k, v in mapping.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in mapping.items() if isinstance(v, dict)}
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    lines += [f'{k} = "{v}"' for k, v in scalars.items()]
    for k, v in tables.items():
        lines += _toml(v, f"{prefix}.{k}" if prefix else k)
    return lines


def test_cat_vv_prints_no_external_id_and_no_credential(aws: dict, tmp_path: Path,  # noqa: F811
                                                        peers: Any) -> None:
    """``attachfs cat -vv`` as tenant acme (an AssumeRole with its ExternalId, against moto):
    the bytes arrive, and stderr (every library's DEBUG output) holds no ExternalId, no
    platform secret key, and no STS secret key or session token."""
    config = tmp_path / "attachfs.toml"
    config.write_text("\n".join(_toml({
        "platform": {"aws": {"role_name": ROLE, "account_id": ACCOUNT,
                             "endpoint_url": peers.s3_endpoint,
                             "sts_endpoint_url": aws["sts"].url, "region": "us-east-1"}},
        "tenants": {"acme": {"aws": {"account_id": ACCOUNT, "external_id": EXTERNAL_ID}}},
    })) + "\n")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": aws["keys"]["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": aws["keys"]["SecretAccessKey"]}
    env.pop("ATTACHFS_TENANT", None)
    env.pop("ATTACHFS_CONFIG", None)
    uri = f"s3://{aws['buckets']['acme']}/doc.bin"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from attachfs._cli.commands import main; "
                               "sys.exit(main(sys.argv[1:]))",
         "cat", "-vv", "--tenant", "acme", "--config", str(config), uri],
        capture_output=True, env=env, stdin=subprocess.DEVNULL, timeout=120)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0 and done.stdout == PAYLOAD, err[-2000:]
    assert "AssumeRole" in err, "no botocore DEBUG output: nothing checked"
    assert EXTERNAL_ID not in err, _around(err, EXTERNAL_ID)
    assert aws["keys"]["SecretAccessKey"] not in err
    unmasked = re.findall(r"<(SecretAccessKey|SessionToken)>(?!\*)[^<]{8,}", err)
    unmasked += re.findall(r"(?i)x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?(?!\*)[A-Za-z0-9/+=]{8,}",
                           err)
    unmasked += re.findall(r"'(SecretAccessKey|SessionToken)': '(?!\*)[^']{8,}'", err)
    assert unmasked == []


def _around(text: str, needle: str) -> str:
    at = text.find(needle)
    return text[max(at - 300, 0):at + 100] if at >= 0 else ""


# --------------------------------------------------------------------------- beyond the review

#: More shapes, from libraries and protocols the review did not list.
MORE_SHAPES = [
    ("urllib3-request-line", 'https://h:443 "GET /b/k?code={v}&X-Foo={v} HTTP/1.1" 200 12'),
    ("scheme-less-target", "Starting new request /cb?state=s&token={v}"),
    ("cookie-header", "Request headers: {{'Cookie': 'session={v}; theme=dark'}}"),
    ("set-cookie-line", "Set-Cookie: sid={v}; Path=/; HttpOnly"),
    ("sse-c-key", "headers={{'x-amz-server-side-encryption-customer-key': '{v}'}}"),
    ("azure-cpk", "'x-ms-encryption-key': '{v}'"),
    ("botocore-signature", "Signature:\n{v}"),
    ("bare-jwt", "got eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eXoifQ.{v}"),
    ("google-access-token", "token ya29.{v} expires in 3599"),
    ("ipv6-url-in-repr", "<ClientResponse(http://[::1]:8080/k?sig={v}) [400 Bad]>"),
    ("url-with-userinfo", "proxy http://user:{v}@[fd00::1]:3128/ refused"),
    ("proxy-authorization", "Proxy-Authorization: Basic {v}"),
    ("pem-cut-off", '{{"private_key": "-----BEGIN RSA PRIVATE KEY-----\\n{v}'),
]


@pytest.mark.parametrize("shape", [t for _, t in MORE_SHAPES], ids=[n for n, _ in MORE_SHAPES])
@pytest.mark.parametrize("name", ["urllib3.connectionpool", "botocore.auth",
                                  "azure.core.pipeline.policies.http_logging_policy", "foo.bar"])
def test_more_shapes_carry_no_credential(root_capture: Capture, name: str, shape: str) -> None:
    secret = value()
    with _logger(name) as logger:
        logger.debug("%s", shape.format(v=secret))
    assert root_capture.texts and not [t for t in root_capture.texts if secret in t]


def test_a_record_factory_installed_later_still_gets_clean_records(root_capture: Capture
                                                                    ) -> None:
    """A library that installs its own record factory after attachfs (chaining, as the
    logging docs show) sees records that are already scrubbed."""
    seen: list[str] = []
    previous = logging.getLogRecordFactory()

    def theirs(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        seen.append(record.getMessage())
        return record

    logging.setLogRecordFactory(theirs)
    secret = value()
    try:
        with _logger("foo.bar") as logger:
            logger.debug("client_secret=%s", secret)
    finally:
        logging.setLogRecordFactory(previous)
    assert seen and not [t for t in seen + root_capture.texts if secret in t]


def test_a_handler_never_gets_the_raw_exception(root_capture: Capture) -> None:
    """The traceback is formatted once, scrubbed, and the exception object withheld: a handler
    that formats ``record.exc_info`` itself (a JSON formatter) has nothing raw to format."""
    secret = value()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.DEBUG)
    with _logger("fsspec.http") as logger:
        logger.addHandler(handler)
        try:
            raise ValueError(f"url='http://h/x?token={secret}'")
        except ValueError:
            logger.debug("failed", exc_info=True, stack_info=True)
        finally:
            logger.removeHandler(handler)
    (record,) = records
    assert record.exc_info is None and record.exc_text and secret not in record.exc_text


def test_a_record_logged_while_the_interpreter_exits_is_scrubbed_not_withheld() -> None:
    # A connection closed by a finaliser logs while the interpreter shuts down, when nothing
    # can be imported any more: the scrubbing must still run (and mask), not give up.
    secret = value()
    program = f"""
import logging, sys
import attachfs._redact as redact
redact.install_log_scrubbing()
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(message)s")
class Closer:
    def __del__(self):
        logging.getLogger("urllib3.connectionpool").debug(
            "GET https://h/k?sig={secret} Authorization: Bearer {secret} token={secret}")
sys.modules["closer"] = Closer()
"""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    err = done.stderr.decode("utf-8", "replace")
    assert "GET https://h/k?sig=" in err, err
    assert "withheld" not in err and secret not in err, err
