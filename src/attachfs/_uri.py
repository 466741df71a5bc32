"""Parse any attachment URI into a :class:`Location` (pure: no I/O, stdlib only).

Two families of input, with different key rules:

* Native schemes (``s3://``, ``s3a://``, ``gs://``, ``gcs://``, ``az://``, ``abfs[s]://``):
  everything after the bucket is the literal key, as the AWS CLI and s3fs treat it. Nothing is
  percent-decoded and ``?``, ``#``, ``%``, ``+``, spaces, ``//`` and a trailing ``/`` are key text.
* ``http(s)://`` URLs: the path is percent-decoded exactly once. Object URLs of S3, GCS and
  Azure are routed to the native backend so the cloud's API and the tenant's credentials are
  used; everything else, and every URL whose query carries a credential (presigned S3/GCS,
  Azure SAS), is backend ``"http"`` and is fetched exactly as given.
* ``+`` in the path of an **S3** https URL is a space, ``%2B`` a plus: S3 decodes request paths
  that way, and the S3 console writes spaces in its object URLs as ``+`` (botocore sends every
  ``+`` of a key as ``%2B``: ``botocore/serialize.py``). Everywhere else ``+`` stays ``+``.

Decisions where the cloud's own rules leave a choice:

* ``s3.amazonaws.com`` gives ``region=None``: the global endpoint serves buckets of every region,
  so it says nothing about where the bucket lives. ``s3-external-1`` is ``"us-east-1"``.
* ``az://container@account/key`` is accepted: Azure account names have no dots, so a bare name
  after ``@`` can only be the account, as in ``@account.blob.core.windows.net``. A sovereign
  cloud's host after ``@`` keeps that cloud; any other host is refused.
* An S3 URL keeps the kind of endpoint it names (``S3Endpoint``: partition, FIPS, dualstack,
  Transfer Acceleration), so it is read from that same kind of host: a FIPS URL never over a
  non-FIPS host, a China URL never through ``.amazonaws.com``. Host names are botocore's
  endpoint rules (``botocore/data/s3/2006-03-01/endpoint-rule-set-1.json``). A region that is
  not in the host's partition is refused.
* Azure's sovereign clouds (``blob.core.usgovcloudapi.net``, ``blob.core.chinacloudapi.cn``,
  the retired ``blob.core.cloudapi.de``; https://learn.microsoft.com/azure/storage/common/
  storage-account-overview#storage-account-endpoints) are Azure blobs; the Location keeps the
  cloud's ``endpoint_suffix`` and the canonical URI names the same cloud.
* On a routed https URL, ``versionId`` (S3) and ``generation`` (GCS) become ``version``;
  ``response-*`` and ``x-id`` are dropped (they change headers, not bytes); any other parameter
  (``?acl``, ``?userProject=``, ``?snapshot=``...) is refused, because reading the object
  without it would return something other than what the URL names.
* A ``#fragment`` is never sent by HTTP, so it is not part of a routed object's key.
* GCS JSON-API URLs route to GCS only with ``alt=media`` (without it they name metadata) and
  ``https://{account}.blob.core.windows.net/x`` names container ``x`` (the implicit ``$root``
  container is not supported). S3 website and access-point hosts and cloud hosts on a
  non-default port are plain http.
* Control characters and lone surrogates are refused, in the URI and in a decoded key.
* ``require_key`` does not apply to backend ``"http"``: the URL itself names the resource.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit

from ._redact import redact, redact_path
from ._types import Backend

__all__ = ["AZURE_PUBLIC_SUFFIX", "Location", "S3Endpoint", "host_problem", "idna_host",
           "ipv4_number", "netloc_problem", "parse", "s3_partition"]

_NATIVE: dict[str, Backend] = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs",
           "az": "azure", "abfs": "azure", "abfss": "azure"}
_AZURE_SCHEMES = ("az", "abfs", "abfss")
_WRITE = "write s3://bucket/key, gs://bucket/key, az://container/key or https://host/path"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(//)?")
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # C0, DEL, C1, lone surrogates
_IPV4_LIKE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")

# S3 endpoints: https://docs.aws.amazon.com/general/latest/gr/s3.html and
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html. The bucket, if any,
# is the host prefix; the greedy prefix leaves the shortest endpoint, so dotted buckets work.
_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}"
_S3_HOST = re.compile(rf"""(?:(?P<bucket>.+)\.)?(?P<endpoint>
      s3(?P<fips>-fips)?(?P<dualstack>\.dualstack)?\.(?P<region>{_REGION})
    | s3-(?P<legacy_region>{_REGION})
    | s3-external-1 | s3-(?P<accelerate>accelerate)(?P<accelerate_dualstack>\.dualstack)? | s3
    )\.amazonaws\.com(?P<china>\.cn)?""", re.X)
_GCS_PATH_HOSTS = ("storage.googleapis.com", "storage.cloud.google.com")
_GCS_JSON_HOSTS = ("storage.googleapis.com", "www.googleapis.com")
_GCS_JSON_PATH = re.compile(r"/(?:download/)?storage/v1/b/(?P<bucket>[^/]*)/o/(?P<object>.*)", re.S)
#: The public cloud's blob endpoint suffix, and the sovereign clouds' (the Azure SDK's
#: ``endpoint_suffix``: https://learn.microsoft.com/azure/storage/common/
#: storage-account-overview#storage-account-endpoints).
AZURE_PUBLIC_SUFFIX = "core.windows.net"
_AZURE_SUFFIXES = (AZURE_PUBLIC_SUFFIX, "core.usgovcloudapi.net", "core.chinacloudapi.cn",
                   "core.cloudapi.de")
_AZURE_HOST = re.compile(r"(?P<account>[^.]+)\.(?:blob|dfs)\.(?P<suffix>"
                         + "|".join(re.escape(s) for s in _AZURE_SUFFIXES) + ")")

_SECRET_NAMES = {"x-amz-signature", "x-amz-credential", "x-amz-security-token",
                 "x-goog-signature", "x-goog-credential", "signature", "sig"}
_SECRET_WORDS = ("token", "signature", "secret", "key", "credential", "password")


def s3_partition(region: str | None) -> str:
    """The AWS partition a region belongs to: ``aws-cn`` (China), ``aws-us-gov`` (GovCloud) or
    ``aws`` (botocore's ``partitions.json`` region patterns)."""
    if region and region.startswith("cn-"):
        return "aws-cn"
    if region and region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class S3Endpoint:
    """The kind of S3 endpoint an https URL named, when it is not the standard one.

    ``partition`` is the AWS partition (``aws``, ``aws-cn``, ``aws-us-gov``); ``fips``,
    ``dualstack`` and ``accelerate`` are the endpoint variants of botocore's endpoint rules
    (``botocore/data/s3/2006-03-01/endpoint-rule-set-1.json``)."""

    partition: str = "aws"
    fips: bool = False
    dualstack: bool = False
    accelerate: bool = False

    @property
    def dns_suffix(self) -> str:
        return "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"

    def service_host(self, region: str) -> str:
        """The host of the S3 endpoint in ``region`` (no bucket label)."""
        dualstack = ".dualstack" if self.dualstack else ""
        if self.accelerate:
            return f"s3-accelerate{dualstack}.{self.dns_suffix}"
        return f"s3{'-fips' if self.fips else ''}{dualstack}.{region}.{self.dns_suffix}"


@dataclass(frozen=True)
class Location:
    """Where an attachment lives. ``key == ""`` is the bucket/container root (listing)."""

    backend: Backend
    bucket: str | None  # S3/GCS bucket, Azure container; None for http
    key: str  # fully decoded object key
    account: str | None = None  # Azure storage account, if the URI named one
    region: str | None = None  # S3 region hint from the host
    url: str | None = None  # http only: the URL exactly as it must be fetched
    version: str | None = None  # S3 versionId / GCS generation from an https form
    endpoint: S3Endpoint | None = None  # S3: a non-standard endpoint kind the URL named
    endpoint_suffix: str | None = None  # Azure: a sovereign cloud's suffix (None: public)

    @property
    def uri(self) -> str:
        """The canonical URI; ``parse(loc.uri)`` gives back this Location less the S3 hints
        (region, endpoint) and the version."""
        if self.backend == "http":
            return self.url or ""
        if self.backend == "azure":
            if self.account:
                suffix = self.endpoint_suffix or AZURE_PUBLIC_SUFFIX
                return (f"https://{self.account}.blob.{suffix}/{self.bucket}/"
                        f"{quote(self.key, safe='/')}")
            return f"az://{self.bucket}/{self.key}"
        return f"{'gs' if self.backend == 'gcs' else 's3'}://{self.bucket}/{self.key}"

    def with_key(self, key: str) -> Location:
        """The same bucket/account/region with another key (a version names one object only)."""
        if self.backend == "http":
            raise ValueError(f"{self}: an http location has no key space to map a key into")
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        return replace(self, key=key, version=None)

    def __repr__(self) -> str:
        # The url of a presigned/SAS URL is a bearer credential: never show its values.
        url = None if self.url is None else redact(self.url)
        extra = "".join(f", {name}={getattr(self, name)!r}"
                        for name in ("endpoint", "endpoint_suffix") if getattr(self, name))
        key = redact_path(self.key) if self.backend == "http" else self.key
        return (f"Location(backend={self.backend!r}, bucket={self.bucket!r}, key={key!r}, "
                f"account={self.account!r}, region={self.region!r}, url={url!r}, "
                f"version={self.version!r}{extra})")

    def __str__(self) -> str:
        return redact(self.uri)


def _is_secret(name: str) -> bool:
    name = unquote(name).lower()
    return name in _SECRET_NAMES or any(word in name for word in _SECRET_WORDS)


def parse(uri: str, *, require_key: bool = True) -> Location:
    """Parse ``uri`` into a Location; raise ValueError naming the (redacted) URI if malformed.

    ``require_key=False`` accepts a bucket/container root (``s3://b``, ``s3://b/``) as key "".
    """
    if not isinstance(uri, str):
        raise TypeError(f"uri must be a str, not {type(uri).__name__}")
    if not uri:
        raise ValueError(f"empty URI; {_WRITE}")
    bad = _FORBIDDEN.search(uri)
    if bad:
        raise _error(uri, f"contains control character U+{ord(bad[0]):04X} at position "
                          f"{bad.start()}", "remove it (percent-encode it in an https URL)")
    if uri[0].isspace():
        raise _error(uri, "starts with whitespace", "remove it")
    m = _SCHEME.match(uri)
    if not m:
        raise _error(uri, "has no scheme", f"{_WRITE} (local paths are not attachments)")
    scheme = m[1].lower()
    if scheme not in _NATIVE and scheme not in ("http", "https"):
        hint = " (attach:// is stripped by the filesystem; pass the URI inside it)" \
            if scheme == "attach" else ""
        raise _error(uri, f"unsupported scheme {scheme!r}{hint}", _WRITE)
    if not m[2]:
        raise _error(uri, f"missing '//' after '{m[1]}:'",
                     f"write {scheme}://{uri[m.end():].lstrip('/')}")
    if scheme in _NATIVE:
        return _parse_native(uri, _NATIVE[scheme], uri[m.end():], require_key)
    return _parse_http(uri, require_key)


def _parse_native(uri: str, backend: Backend, rest: str, require_key: bool) -> Location:
    authority, _, key = rest.partition("/")  # the key is literal: no decoding at all
    account = suffix = None
    if backend == "azure":
        authority, at, host = authority.partition("@")
        if ":" in authority and at:
            raise _error(uri, "credentials in URLs are refused", "configure the tenant instead")
        if at:
            account, suffix = _azure_account_from_host(uri, host.lower())
    elif "@" in authority:
        raise _error(uri, "credentials in URLs are refused",
                     "remove the user:password@ part and configure the tenant instead")
    return _location(uri, backend, authority, key, require_key, account=account,
                     endpoint_suffix=suffix)


def _azure_suffix(suffix: str) -> str | None:
    """The Location's ``endpoint_suffix``: None for the public cloud."""
    return None if suffix == AZURE_PUBLIC_SUFFIX else suffix


def _azure_account_from_host(uri: str, host: str) -> tuple[str, str | None]:
    m = _AZURE_HOST.fullmatch(host)
    account = m["account"] if m else host
    if "." in account or not account:
        raise _error(uri, f"{host!r} after '@' is not an Azure storage account",
                     "write az://container@account/key or "
                     "abfss://container@account.dfs.core.windows.net/key")
    return account, (_azure_suffix(m["suffix"]) if m else None)


def _parse_http(uri: str, require_key: bool) -> Location:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:  # urlsplit's message may echo the netloc, so it is not repeated
        raise _error(uri, "is not a valid URL (bad host or port)", "check them") from None
    if "@" in parts.netloc:
        raise _error(uri, "credentials in URLs are refused",
                     "remove the user:password@ part; use a presigned URL or a tenant")
    _check_host(uri, parts.netloc)
    host = (parts.hostname or "").removesuffix(".")
    if not host:
        raise _error(uri, "has no host", "write https://host/path")
    query = _query(parts.query)
    default_port = port is None or port == (443 if parts.scheme.lower() == "https" else 80)
    # A URL carrying its own credential is fetched as given: the signature is the authority.
    if default_port and not any(_is_secret(name) for name, _ in query):
        for route in (_route_s3, _route_gcs, _route_azure):
            loc = route(uri, host, parts.path, query, require_key)
            if loc is not None:
                return loc
    key = _check_key(uri, unquote(parts.path, errors="replace").removeprefix("/"))
    return Location("http", None, key, url=uri)


def _route_s3(uri: str, host: str, path: str, query: list[tuple[str, str]],
              require_key: bool) -> Location | None:
    m = _S3_HOST.fullmatch(host)
    if not m:
        return None
    region = m["region"] or m["legacy_region"] or (
        "us-east-1" if m["endpoint"] == "s3-external-1" else None)
    partition = s3_partition(region)
    if (partition == "aws-cn") != bool(m["china"]):
        # China's hosts (.amazonaws.com.cn) name a China region; no other host serves one.
        raise _error(uri, f"{host} is not an S3 endpoint of region {region or '(none)'}",
                     "write the bucket's own regional S3 host name")
    if partition == "aws-cn" and (m["fips"] or m["accelerate"]):
        raise _error(uri, f"{host} is not an S3 endpoint (China has no FIPS or Transfer "
                          "Acceleration endpoints)", "write the bucket's regional host name")
    endpoint = S3Endpoint(partition, fips=bool(m["fips"]),
                          dualstack=bool(m["dualstack"] or m["accelerate_dualstack"]),
                          accelerate=bool(m["accelerate"]))
    bucket, key = (m["bucket"], path[1:]) if m["bucket"] else _split_path(path)
    version = _version(uri, query, "versionId")
    # S3 decodes "+" in a request path as a space (the console's object URLs rely on it).
    bucket, key = bucket.replace("+", " "), key.replace("+", " ")
    return _location(uri, "s3", _decode(uri, bucket), _decode(uri, key), require_key,
                     region=region, version=version,
                     endpoint=None if endpoint == _STANDARD_S3 else endpoint)


_STANDARD_S3 = S3Endpoint()


def _route_gcs(uri: str, host: str, path: str, query: list[tuple[str, str]],
               require_key: bool) -> Location | None:
    # JSON API: the object name is one percent-encoded segment ("/" is %2F).
    # https://cloud.google.com/storage/docs/request-endpoints#encoding
    if host in _GCS_JSON_HOSTS and path.startswith(("/storage/v1/", "/download/storage/v1/")):
        json_api = _GCS_JSON_PATH.fullmatch(path)
        if not json_api or ("alt", "media") not in query:
            return None  # the JSON API without alt=media answers metadata, not object bytes
        bucket, key = json_api["bucket"], json_api["object"]
        version = _version(uri, [q for q in query if q[0] != "alt"], "generation")
    elif host in _GCS_PATH_HOSTS:
        bucket, key = _split_path(path)
        version = _version(uri, query, "generation")
    elif host.endswith(".storage.googleapis.com"):
        bucket, key = host.removesuffix(".storage.googleapis.com"), path[1:]
        version = _version(uri, query, "generation")
    else:
        return None
    if version is not None and not version.isdigit():
        raise _error(uri, f"GCS generation {version!r} is not a number", "fix ?generation=")
    return _location(uri, "gcs", _decode(uri, bucket), _decode(uri, key), require_key,
                     version=version)


def _route_azure(uri: str, host: str, path: str, query: list[tuple[str, str]],
                 require_key: bool) -> Location | None:
    m = _AZURE_HOST.fullmatch(host)
    if not m:
        return None
    _version(uri, query, None)
    container, key = _split_path(path)
    return _location(uri, "azure", _decode(uri, container), _decode(uri, key), require_key,
                     account=m["account"], endpoint_suffix=_azure_suffix(m["suffix"]))


def _split_path(path: str) -> tuple[str, str]:
    """Path-style ``/bucket/key``: split before decoding, so %2F in the key stays in the key."""
    bucket, _, key = path[1:].partition("/")
    return bucket, key


def _query(query: str) -> list[tuple[str, str]]:
    # unquote, not unquote_plus: S3 version ids contain "+", which a raw URL may carry as is.
    pairs = (part.partition("=") for part in query.split("&") if part)
    return [(unquote(name), unquote(value)) for name, _, value in pairs]


def _version(uri: str, query: list[tuple[str, str]], carried: str | None) -> str | None:
    version = None
    for name, value in query:
        if name == carried:
            if version is not None or not value:
                raise _error(uri, f"needs exactly one non-empty {carried}", f"fix ?{carried}=")
            version = value
        elif not (name.startswith("response-") or name == "x-id"):
            raise _error(uri, f"query parameter {name!r} is not supported on an object URL "
                              "(reading the object without it would not be what the URL names)",
                         "remove it, or use a presigned URL")
    return version


def _decode(uri: str, text: str) -> str:
    # Bucket and object names are UTF-8 on all three clouds; a non-UTF-8 byte is a typo.
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise _error(uri, "percent-encoded bytes are not UTF-8",
                     "percent-encode the UTF-8 bytes of the name") from None


def _check_key(uri: str, key: str) -> str:
    bad = _FORBIDDEN.search(key)
    if bad:
        raise _error(uri, f"decoded key contains control character U+{ord(bad[0]):04X}",
                     "remove it from the URL")
    return key


def _location(uri: str, backend: Backend, bucket: str, key: str, require_key: bool,
              *, account: str | None = None, region: str | None = None,
              version: str | None = None, endpoint: S3Endpoint | None = None,
              endpoint_suffix: str | None = None) -> Location:
    native = {"s3": "s3", "gcs": "gs", "azure": "az"}[backend]
    what = "container" if backend == "azure" else "bucket"
    if not bucket:
        raise _error(uri, f"no {what}", f"write {native}://{what}/key")
    problem = _BUCKET_RULES[backend](bucket)
    if problem is None and account is not None:
        problem = _azure_account_problem(account)
    if problem:
        raise _error(uri, problem, "check the name")
    if require_key and not key:
        raise _error(uri, f"empty key (this names a {what}, not an object)",
                     f"write {native}://{bucket}/path/to/object, or pass require_key=False "
                     f"to address the {what} root")
    return Location(backend, bucket, _check_key(uri, key), account=account, region=region,
                    version=version, endpoint=endpoint, endpoint_suffix=endpoint_suffix)


def _s3_bucket_problem(name: str) -> str | None:
    # https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
    rule = f"invalid S3 bucket name {name!r}: "
    if not 3 <= len(name) <= 63:
        return rule + "must be 3-63 characters"
    if not re.fullmatch(r"[a-z0-9.-]+", name):
        return rule + "only lowercase letters, digits, dots and hyphens are allowed"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return rule + "must start and end with a letter or digit"
    if ".." in name:
        return rule + "must not contain two adjacent dots"
    if _IPV4_LIKE.fullmatch(name):
        return rule + "must not be formatted as an IP address"
    if name.startswith(("xn--", "sthree-")):
        return rule + "the prefixes xn-- and sthree- are reserved"
    return None


def _gcs_bucket_problem(name: str) -> str | None:
    # https://cloud.google.com/storage/docs/buckets#naming
    rule = f"invalid GCS bucket name {name!r}: "
    if not re.fullmatch(r"[a-z0-9._-]+", name):
        return rule + "only lowercase letters, digits, '-', '_' and '.' are allowed"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return rule + "must start and end with a letter or digit"
    if "." in name:  # dotted names are domain names: up to 222 chars, each part up to 63
        if not 3 <= len(name) <= 222 or not all(1 <= len(p) <= 63 for p in name.split(".")):
            return rule + "dotted names are 3-222 characters, each dot-separated part 1-63"
    elif not 3 <= len(name) <= 63:
        return rule + "must be 3-63 characters (up to 222 with dots)"
    if _IPV4_LIKE.fullmatch(name):
        return rule + "must not be an IP address"
    if name.startswith("goog") or "google" in name or "g00gle" in name:
        return rule + "must not start with 'goog' or contain 'google'"
    return None


def _azure_container_problem(name: str) -> str | None:
    # https://learn.microsoft.com/rest/api/storageservices/naming-and-referencing-containers--blobs--and-metadata
    if name in ("$root", "$web", "$logs"):
        return None
    if (re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{1,61})[a-z0-9]", name) and "--" not in name):
        return None
    return (f"invalid Azure container name {name!r}: 3-63 lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit")


def _azure_account_problem(name: str) -> str | None:
    # https://learn.microsoft.com/azure/storage/common/storage-account-overview#storage-account-name
    if re.fullmatch(r"[a-z0-9]{3,24}", name):
        return None
    return f"invalid Azure storage account name {name!r}: 3-24 lowercase letters and digits"


_BUCKET_RULES = {"s3": _s3_bucket_problem, "gcs": _gcs_bucket_problem,
                 "azure": _azure_container_problem}


def _error(uri: str, problem: str, fix: str) -> ValueError:
    return ValueError(f"{redact(uri)!r}: {problem}; {fix}")


# -- host syntax: a malformed host is refused here, never handed to a resolver ---------------

_HOST_FIX = "write a host name, an IPv4 address or an IPv6 address in [brackets]"
_ZONE_ID = re.compile(r"[A-Za-z0-9_.~-]+")  # RFC 6874: unreserved characters
_LABEL = re.compile(r"[a-z0-9_-]+")  # LDH, and "_" (seen in real names; resolvers accept it)
_NOT_IN_A_NAME = re.compile(r"[\x00-\x20\x7f/\\%@?#:<>\"'^`{|}\[\]]")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_NUMBER = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")


def _check_host(uri: str, netloc: str) -> None:
    """Raise ``ValueError`` naming ``uri`` if the host of ``netloc`` is malformed."""
    problem = netloc_problem(netloc)
    if problem is not None:
        raise _error(uri, f"the host {problem}", _HOST_FIX)


def netloc_problem(netloc: str) -> str | None:
    """``host_problem`` of the host in a URL's ``netloc`` (user info removed); None if it has
    no host at all, which the caller says in its own words."""
    host = _raw_host(netloc.rpartition("@")[2])
    return host_problem(host) if host else None


def _raw_host(netloc: str) -> str:
    """The host of ``netloc`` (no user info) as written: brackets kept, port removed. Anything
    after a closing bracket other than ``:port`` stays with it, to be refused."""
    if netloc.startswith("["):
        end = netloc.find("]")
        rest = netloc[end + 1:] if end >= 0 else ""
        return netloc[:end + 1] if end >= 0 and re.fullmatch(r"(:[0-9]*)?", rest) else netloc
    return netloc.rpartition(":")[0] if ":" in netloc else netloc


def host_problem(host: str) -> str | None:
    """What is wrong with ``host`` as written in a URL, or None if it is a valid host: an IPv6
    address in brackets (with an optional RFC 6874 zone id), an IPv4 address in any spelling
    the WHATWG URL standard and ``inet_aton`` read (``0x7f000001``, ``127.1``), or a name whose
    labels are 1-63 characters and whose whole is at most 253 (after IDNA, as yarl encodes it),
    each ``xn--`` label a valid A-label. A name whose last label is a number must be an IPv4
    address (WHATWG's "ends in a number")."""
    if host.startswith("["):
        if host.count("[") != 1 or host.count("]") != 1 or not host.endswith("]"):
            return f"{host[:80]!r} has a bracket out of place"
        address, sep, zone = host[1:-1].partition("%25" if "%25" in host else "%")
        if sep and not _ZONE_ID.fullmatch(zone):
            return f"{host[:80]!r} has an invalid IPv6 zone id"
        if not _is_ipv6(address):
            return f"{host[:80]!r} has brackets around something that is not an IPv6 address"
        return None
    if _PERCENT.search(host):
        return f"{host[:80]!r} has a malformed percent-escape"
    try:
        name = unicodedata.normalize("NFKC", unquote(host, errors="strict")).lower()
    except UnicodeDecodeError:
        return f"{host[:80]!r} percent-encodes bytes that are not UTF-8"
    if _NOT_IN_A_NAME.search(name) or _FORBIDDEN.search(name):
        return f"{host[:80]!r} contains a character no host name has"
    labels = name.removesuffix(".").split(".")
    if "" in labels:
        return f"{host[:80]!r} has an empty label (two dots, a leading dot or two trailing dots)"
    if _NUMBER.fullmatch(labels[-1]):
        if ipv4_number(name.removesuffix(".")) is None:
            return f"{host[:80]!r} ends in a number but is not an IPv4 address"
        return None
    if not name.isascii():
        try:
            name = idna_host(name)
        except UnicodeError:
            return f"{host[:80]!r} is not a valid internationalised domain name"
        labels = name.removesuffix(".").split(".")
    for label in labels:
        if len(label) > 63:
            return f"{host[:80]!r} has a label of {len(label)} characters (at most 63)"
        if not _LABEL.fullmatch(label):
            return f"{host[:80]!r} contains a character no host name has"
        if label.startswith("xn--") and not _is_a_label(label):
            return f"{host[:80]!r} has {label[:70]!r}, which is not a valid IDNA A-label"
    if len(".".join(labels)) > 253:
        return f"{host[:80]!r}... is {len('.'.join(labels))} characters long (at most 253)"
    return None


def ipv4_number(text: str) -> int | None:
    """The IPv4 address ``text`` spells as ``inet_aton`` and the WHATWG URL standard read it
    (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``), as a number, else None."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if not part.isascii() or not _NUMBER.fullmatch(part):
            return None
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                return None
            values.append(int(part, 8))
        else:
            values.append(int(part, 10))
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    n = 0
    for v in head:
        n = n << 8 | v
    return n << (8 * (4 - len(head))) | last


def _is_ipv6(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def idna_host(name: str) -> str:
    """``name`` in A-labels, as yarl encodes a host (UTS 46, then Python's IDNA 2003)."""
    import idna

    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except UnicodeError:
        return name.encode("idna").decode("ascii")


def _is_a_label(label: str) -> bool:
    import idna

    try:
        idna.decode(label)
    except (UnicodeError, ValueError):
        return False
    return True
