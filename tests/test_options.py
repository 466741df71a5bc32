"""Options are never silently ignored: every way an option reaches the filesystem is checked.

An ignored option reads as an identity, or from an endpoint, that nobody asked for. Options
reach ``AttachFileSystem`` through ``attachfs.filesystem``/``attachfs.open``,
``fsspec.filesystem``, ``fsspec.open``/``open_files`` keyword arguments, pandas' and Dask's
``storage_options={...}``, the inner protocol's options of a chain (``attach::s3://``,
``s3={...}``), fsspec's own configuration (``fsspec.config.conf["attach"]``,
``FSSPEC_ATTACH_*``), and ``open()``/``get_file()`` arguments. The rules:

* an unknown name is refused, with the closest known name;
* a secret is refused naming where it belongs (never echoing its value);
* the options that make sense without a config (``endpoint_url``, ``anon``, ``profile``, and
  the clouds' endpoint variables) are honoured the way s3fs, gcsfs and adlfs honour them;
* with a config they are refused, naming the config key, unless the config says the same:
  an option never changes the identity or endpoint a configured setup reads with.
"""

from __future__ import annotations

import string
from typing import Any

import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import attachfs
from attachfs import AccessRefused, ConfigError

OPTIONS = ("tenant", "config", "cache", "endpoint_url", "anon", "profile", "asynchronous",
           "batch_size", "skip_instance_cache")
TENANTS = {"tenants": {"acme": {"direct": ["s3://acme-bucket"]}}}


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ATTACHFS_TENANT", "ATTACHFS_CONFIG", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(fsspec.config.conf, "attach", raising=False)
    attachfs.AttachFileSystem.clear_instance_cache()


def multi_tenant(**platform: Any) -> dict[str, Any]:
    return {"platform": {"aws": {"role_name": "AttachmentReader", **platform}}, **TENANTS}


# --------------------------------------------------------------------------- unknown names

ENTRY_POINTS = {
    "attachfs.filesystem": lambda **kw: attachfs.filesystem(**kw),
    "fsspec.filesystem": lambda **kw: fsspec.filesystem("attach", **kw),
    "fsspec.open kwargs": lambda **kw: fsspec.open("attach::s3://b/k", **kw).fs,
    "url_to_fs attach={}": lambda **kw: fsspec.core.url_to_fs("attach::s3://b/k",
                                                               attach=kw)[0],
    "open_files storage_options={}": lambda **kw: fsspec.open_files(
        "attach::s3://b/k", storage_options=kw)[0].fs,
    "attachfs.open": lambda **kw: attachfs.open("s3://b/k", **kw),
}


@st.composite
def typo(draw: st.DrawFn) -> tuple[str, str]:
    """(a known option, a one-letter mistake of it that is no option)."""
    name = draw(st.sampled_from(OPTIONS))
    i = draw(st.integers(0, len(name) - 1))
    how = draw(st.sampled_from(["drop", "swap", "replace", "double"]))
    letter = draw(st.sampled_from(string.ascii_lowercase))
    if how == "drop":
        wrong = name[:i] + name[i + 1:]
    elif how == "swap" and i + 1 < len(name):
        wrong = name[:i] + name[i + 1] + name[i] + name[i + 2:]
    elif how == "double":
        wrong = name[:i] + name[i] + name[i:]
    else:
        wrong = name[:i] + letter + name[i + 1:]
    return name, wrong


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mistake=typo(), where=st.sampled_from(sorted(ENTRY_POINTS)))
def test_property_a_mistyped_option_is_refused_naming_it(mistake: tuple[str, str],
                                                          where: str) -> None:
    name, wrong = mistake
    if wrong in OPTIONS or wrong in ("fo", "loop", "target_options", "target_protocol"):
        return  # a mistake that lands on another option is that option
    with pytest.raises(ConfigError) as info:
        ENTRY_POINTS[where](**{wrong: "x"})
    message = str(info.value)
    assert repr(wrong) in message and "\n" not in message


@pytest.mark.parametrize("where", sorted(ENTRY_POINTS))
def test_the_suggestion_is_the_option_meant(where: str) -> None:
    with pytest.raises(ConfigError, match=r"'confg'.*did you mean 'config'"):
        ENTRY_POINTS[where](confg={"platform": {}})


def test_a_mistake_in_fsspec_configuration_is_refused_naming_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fsspec.config.conf, "attach", {"tenat": "acme"})
    with pytest.raises(ConfigError, match=r"tenat.*fsspec.config.conf.*did you mean 'tenant'"):
        attachfs.filesystem()


def test_a_mistake_in_the_inner_protocols_options_is_refused() -> None:
    """``attach::s3://`` hands ``s3={...}`` to attach as target_options: checked too."""
    with pytest.raises(ConfigError, match=r"endpont_url.*did you mean 'endpoint_url'"):
        fsspec.core.url_to_fs("attach::s3://b/k", s3={"endpont_url": "http://127.0.0.1:9"})


@pytest.mark.parametrize("argument", ["cach_type", "tenant", "version_id"])
def test_open_refuses_an_argument_it_does_not_take(argument: str) -> None:
    fs = attachfs.filesystem(skip_instance_cache=True)
    with pytest.raises(ConfigError, match=repr(argument)):
        fs.open("s3://b/k", **{argument: "x"})


def test_listing_cache_options_are_refused_saying_what_to_do() -> None:
    with pytest.raises(ConfigError, match="invalidate_cache"):
        attachfs.filesystem(use_listings_cache=False)


# --------------------------------------------------------------------------- secrets

SECRETS = {
    "key": "AWS_ACCESS_KEY_ID", "secret": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN", "token": "GOOGLE_APPLICATION_CREDENTIALS",
    "account_key": "account_key_env", "connection_string": "account_key_env",
    "client_secret": "client_secret_env",
}


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(SECRETS)),
       value=st.text(string.ascii_letters + string.digits + "+/=", min_size=12, max_size=40),
       where=st.sampled_from(["attachfs.filesystem", "fsspec.open kwargs",
                              "open_files storage_options={}"]))
def test_property_a_secret_option_is_refused_naming_where_it_belongs(
        name: str, value: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        ENTRY_POINTS[where](**{name: value})
    message = str(info.value)
    assert SECRETS[name] in message
    assert value not in message and value not in repr(info.value.args)


# --------------------------------------------------------------------------- ambient options

def test_endpoint_url_of_a_chain_is_that_clouds_endpoint() -> None:
    s3 = fsspec.core.url_to_fs("attach::s3://b/k", endpoint_url="http://127.0.0.1:9000")[0]
    assert s3.config.platform.aws.endpoint_url == "http://127.0.0.1:9000"
    gcs = fsspec.core.url_to_fs("attach::gs://b/k", endpoint_url="http://127.0.0.1:4443")[0]
    assert gcs.config.platform.gcp.endpoint_url == "http://127.0.0.1:4443"
    assert gcs.config.platform.aws.endpoint_url is None


def test_endpoint_url_given_as_the_inner_protocols_option() -> None:
    fs = fsspec.open("attach::s3://b/k", s3={"endpoint_url": "http://127.0.0.1:9000"}).fs
    assert fs.config.platform.aws.endpoint_url == "http://127.0.0.1:9000"


def test_endpoint_url_without_a_chain_names_no_cloud_and_is_refused() -> None:
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL_S3.*platform.aws.endpoint_url"):
        attachfs.filesystem(endpoint_url="http://127.0.0.1:9000")


def test_anon_reads_every_cloud_without_credentials() -> None:
    platform = attachfs.filesystem(anon=True, skip_instance_cache=True).config.platform
    assert platform.aws.anonymous and platform.azure.anonymous
    assert platform.gcp.credentials == "anonymous"
    only_s3 = fsspec.core.url_to_fs("attach::s3://b/k", anon=True)[0].config.platform
    assert only_s3.aws.anonymous and not only_s3.azure.anonymous
    assert attachfs.filesystem(anon=False, skip_instance_cache=True).config is None


def test_profile_is_the_platforms_aws_profile() -> None:
    fs = attachfs.filesystem(profile="reader", skip_instance_cache=True)
    assert fs.config.platform.aws.profile == "reader"


@pytest.mark.parametrize(("env", "cloud", "expected"), [
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, "aws", "http://127.0.0.1:1"),
    ({"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:2"},
     "aws", "http://127.0.0.1:2"),   # botocore: the service's own variable first
    ({"STORAGE_EMULATOR_HOST": "127.0.0.1:3"}, "gcp", "http://127.0.0.1:3"),  # as gcsfs
    ({"STORAGE_EMULATOR_HOST": "https://127.0.0.1:4"}, "gcp", "https://127.0.0.1:4"),
])
def test_the_clouds_endpoint_variables_are_honoured_in_ambient_mode(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], cloud: str, expected: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    fs = attachfs.filesystem(skip_instance_cache=True)
    assert getattr(fs.config.platform, cloud).endpoint_url == expected


def test_an_explicit_endpoint_beats_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    fs = fsspec.core.url_to_fs("attach::s3://b/k", endpoint_url="http://127.0.0.1:2")[0]
    assert fs.config.platform.aws.endpoint_url == "http://127.0.0.1:2"


# --------------------------------------------------------------------------- with a config

@pytest.mark.parametrize(("opener", "key"), [
    (lambda cfg: fsspec.core.url_to_fs("attach::s3://b/k", config=cfg,
                                        endpoint_url="http://127.0.0.1:9")[0],
     "platform.aws.endpoint_url"),
    (lambda cfg: attachfs.filesystem(config=cfg, anon=True), "platform.aws.anonymous"),
    (lambda cfg: attachfs.filesystem(config=cfg, profile="other"), "platform.aws.profile"),
    (lambda cfg: fsspec.open("attach::s3://b/k", config=cfg,
                             s3={"endpoint_url": "http://127.0.0.1:9"}).fs,
     "platform.aws.endpoint_url"),
])
def test_an_ambient_option_with_a_config_is_refused_naming_the_key(opener: Any, key: str) -> None:
    # anon=True is refused as AccessRefused, a PermissionError: pandas answers a refused read
    # by opening again with anon=True, and its caller must still see a PermissionError.
    refused = AccessRefused if key.endswith("anonymous") else ConfigError
    with pytest.raises(refused, match=key.replace(".", r"\.")):
        opener(multi_tenant())


def test_an_option_that_says_what_the_config_says_is_accepted() -> None:
    config = multi_tenant(endpoint_url="http://127.0.0.1:9")
    fs = fsspec.core.url_to_fs("attach::s3://b/k", config=config,
                               endpoint_url="http://127.0.0.1:9", anon=False)[0]
    assert fs.config.platform.aws.endpoint_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(("variable", "key"), [
    ("AWS_ENDPOINT_URL", "platform.aws.endpoint_url"),
    ("AWS_ENDPOINT_URL_S3", "platform.aws.endpoint_url"),
    ("STORAGE_EMULATOR_HOST", "platform.gcp.endpoint_url"),
])
def test_an_endpoint_variable_the_config_does_not_match_is_refused(
        monkeypatch: pytest.MonkeyPatch, variable: str, key: str) -> None:
    """The cloud's library would list from the variable's endpoint while attachfs reads from
    the config's: refused, naming both."""
    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    with pytest.raises(ConfigError, match=rf"{variable}.*{key.replace('.', '[.]')}"):
        attachfs.filesystem(config=multi_tenant(), tenant="acme")


def test_an_endpoint_variable_is_fine_when_the_config_names_the_endpoint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    fs = attachfs.filesystem(config=multi_tenant(endpoint_url="http://127.0.0.1:2"),
                             tenant="acme")
    assert fs.config.platform.aws.endpoint_url == "http://127.0.0.1:2"


@settings(max_examples=50, deadline=None)
@given(options=st.fixed_dictionaries({}, optional={
    "endpoint_url": st.sampled_from(["http://127.0.0.1:1", "http://127.0.0.1:2"]),
    "anon": st.booleans(),
    "profile": st.sampled_from(["a", "b"]),
}), via=st.sampled_from(["kwargs", "s3={}", "storage_options"]))
def test_property_no_option_changes_what_a_configured_setup_reads_as(
        options: dict[str, Any], via: str) -> None:
    """Whatever ambient options are given with a multi-tenant config: refused, or the Route
    (identity, grant) and the endpoint are those of the config alone."""
    config = multi_tenant(endpoint_url="http://127.0.0.1:1")
    alone = fsspec.core.url_to_fs("attach::s3://acme-bucket/k", config=config, tenant="acme",
                                  skip_instance_cache=True)[0]
    kwargs: dict[str, Any] = {"config": config, "tenant": "acme", "skip_instance_cache": True}
    if via == "kwargs":
        kwargs.update(options)
    elif via == "s3={}":
        kwargs["s3"] = options
    else:
        kwargs = {"storage_options": {**kwargs, **options}}
    try:
        fs = fsspec.core.url_to_fs("attach::s3://acme-bucket/k", **kwargs)[0]
    except (ConfigError, AccessRefused):
        return
    assert fs.route("acme-bucket/k") == alone.route("acme-bucket/k")
    assert fs.config == alone.config


# --------------------------------------------------------------------------- reads

@pytest.mark.peers
def test_an_ambient_read_follows_aws_endpoint_url_s3(peers: Any, names: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """s3fs honours AWS_ENDPOINT_URL_S3 in the same shell; so do attachfs's own reads (before,
    they went to AWS itself, which the loopback guard refuses)."""
    bucket = names("env")
    peers.make_s3_bucket(bucket)
    peers.put_s3(bucket, "k.txt", b"from the emulator")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", peers.s3_endpoint)
    assert attachfs.open(f"s3://{bucket}/k.txt").read() == b"from the emulator"
    with fsspec.open(f"attach::s3://{bucket}/k.txt") as f:
        assert f.read() == b"from the emulator"


@pytest.mark.peers
def test_anon_sends_no_credentials(peers: Any, names: Any) -> None:
    """``anon=True`` through pandas-style storage_options: the listing (s3fs) and the read
    (attachfs) reach the endpoint unsigned."""
    from fakes.authz_proxy import AuthorizingProxy

    bucket = names("anon")
    peers.make_s3_bucket(bucket)
    s3 = peers._s3()  # the emulator's own client: a public bucket, as anon reads expect
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="k.txt", Body=b"public", ACL="public-read")
    with AuthorizingProxy(peers.s3_endpoint, preserve_host=True) as proxy:
        files = fsspec.open_files(f"attach::s3://{bucket}/*.txt",
                                  storage_options={"endpoint_url": proxy.url, "anon": True})
        with files[0] as f:
            assert f.read() == b"public"
        seen = list(proxy.requests)
    assert seen and all("Authorization" not in r.headers for r in seen), [
        (r.method, r.path) for r in seen if "Authorization" in r.headers]


# --------------------------------------------------------------------------- the docs

def test_the_configuration_page_documents_every_option_and_no_other() -> None:
    import re
    from pathlib import Path

    from attachfs._options import OPTIONS as KNOWN

    page = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = page.split("## Filesystem options", 1)[1].split("\n## ", 1)[0]
    listed = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            listed |= set(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    assert listed == set(KNOWN)
