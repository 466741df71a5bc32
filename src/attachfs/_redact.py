"""The one way attachfs shows a URL or any text that may carry a secret.

* ``redact(url)``: a URL fit for a message, a ``repr`` or a log. User info is removed, and every
  query and fragment parameter keeps its *name* and loses its *value*, whatever the name: a
  signed URL's credential may sit in ``X-Amz-Signature``, ``sig``, ``Authorization``, ``code``,
  ``token`` or a name no list foresees. An item with no ``=`` (``?token``) is a value and is
  masked whole. Path parameters (``;name=value``) of http(s) URLs are treated the same way.
* ``redact_text(text)``: every URL inside free text (an error message of another library, a log
  line) redacted as above, and every scheme-less request target (``"GET /k?sig=... HTTP/1.1"``).
* ``scrub(text)``: ``redact_text`` plus every field whose *name* says it is a credential
  (``*secret*``, ``*token*``, ``*password*``, ``*signature*``, ``Authorization``, ``Cookie``,
  ``AccountKey``, ``private_key``, ``ExternalId`` ... in ``name=value``, ``'name': 'value'``,
  ``"name": "value"``, ``name: b'value'`` and ``<Name>value</Name>`` forms, whatever library wrote
  it), whole ``Authorization``/``Cookie`` header values, PEM blocks, JWTs and Google access
  tokens, plus every value a credential lease has fetched (``remember``), wherever it appears.
* ``install_log_scrubbing()``: every log record this process creates, whatever logger (child
  loggers included) and whatever handler, is scrubbed when it is created (the message, a
  traceback it carries and its stack), so no handler ever sees a secret. Known limit: fields a
  caller adds with ``extra=`` are set after the record is created and are not scrubbed.

Pure apart from the remembered values (process state, no I/O).
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

__all__ = ["Redacted", "hidden_values", "install_log_scrubbing", "redact", "redact_path", "redact_text",
           "remember", "scrub"]

MASK = "REDACTED"

_SCHEME_AUTHORITY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#\s]*)")
_AZURE_SCHEMES = ("az", "abfs", "abfss")
_ITEM = re.compile(r"[^&;]+")
# A URL inside free text: a scheme, "://", and everything up to whitespace or a quote/bracket
# that ends it in a message ('...', "...", <...>, (...)).
_URL_IN_TEXT = re.compile(
    r"""[A-Za-z][A-Za-z0-9+.-]*://(?:[^\s'"<>()\[\]{}\\/?#]*@)?(?:\[[^\s'"<>\]/]*\])?"""
    r"""[^\s'"<>()\[\]{}\\]*""")
# A request target with no scheme in free text: the path and query of an HTTP request line
# (urllib3's ``"GET /b/k?X-Amz-Signature=... HTTP/1.1" 200``), a path an SDK logs on its own.
_TARGET_IN_TEXT = re.compile(r"""(?<![\w/:.%\]-])/[^\s'"<>?#]*[?#][^\s'"<>]+""")


def _params(text: str) -> str:
    """``name=value`` items separated by ``&`` or ``;`` with every value masked; an item with
    no ``=`` is a value with no name (``?token`` or ``?a=1;secret``) and is masked whole."""
    return _ITEM.sub(_masked_item, text)


def _masked_item(m: re.Match[str]) -> str:
    item = m[0]
    if not item:
        return item
    name, equals, value = item.partition("=")
    if not equals:
        return MASK
    return f"{name}={MASK}" if value else item


def redact(url: Any) -> str:
    """``url`` with user info removed and the value of every query, fragment and path
    parameter masked; names are kept so the shape of the URL stays readable."""
    text: str = str(url)
    m = _SCHEME_AUTHORITY.match(text)
    if m and "@" in m[2]:
        userinfo, _, host = m[2].rpartition("@")
        # In az://container@account/... the part before "@" is a container, not a credential.
        if m[1][:-3].lower() not in _AZURE_SCHEMES or ":" in userinfo:
            text = m[1] + host + text[m.end():]
    cut = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=len(text))
    head, tail = text[:cut], text[cut:]
    m = _SCHEME_AUTHORITY.match(head)
    if m and m[1][:-3].lower() in ("http", "https") and ";" in head[m.end():]:
        head = head[:m.end()] + redact_path(head[m.end():])
    if not tail:
        return head
    parts = re.split(r"([?#])", tail)
    return head + "".join(p if p in ("?", "#") else _params(p) for p in parts)


class Redacted:
    """A URI as a message shows it (after ``prefix``), redacted only when a message is made:
    redacting costs per request, and most requests never fail. Calling it, ``str``, ``repr``
    and its pickle all give the redacted text (a log record may carry it as an argument, and a
    handler may keep, repr or pickle that): the raw URI never leaves it. Slotted, not a
    closure: thousands of reads in flight each hold one."""

    __slots__ = ("prefix", "uri")

    def __init__(self, uri: str, prefix: str = "") -> None:
        self.uri, self.prefix = uri, prefix

    def __call__(self) -> str:
        return f"{self.prefix}{redact(self.uri)}"

    __str__ = __repr__ = __call__

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        return str, (self(),)


def redact_path(path: str) -> str:
    """An http(s) path with the value of every path parameter (``;name=value``) masked."""
    if ";" not in path:
        return path
    return re.sub(r";[^/]*", lambda p: ";" + _params(p[0][1:]), path)


def hidden_values(url: Any, *, shortest: int = 4) -> list[str]:
    """What ``redact(url)`` hides: user info and every parameter value, as written and
    percent-decoded (values under ``shortest`` characters are left out: too short to be a
    credential, too common to search text for). For checking that a text shows none of them."""
    text = str(url)
    found: list[str] = []
    m = _SCHEME_AUTHORITY.match(text)
    if m and "@" in m[2]:
        found += re.split(r"[:@]", m[2].rpartition("@")[0])
    head, _, tail = text.partition("?") if "?" in text else text.partition("#")
    items = [i.split("/", 1)[0] for i in head.split(";")[1:]]  # path parameters
    items += [i for part in re.split(r"[?#]", tail) for i in re.split(r"[&;]", part)]
    for item in items:
        name, equals, value = item.partition("=")
        found.append(value if equals else name)
    out = {v for raw in found for v in (raw, unquote(raw)) if len(v) >= shortest}
    return sorted(out, key=len, reverse=True)


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted, and every request target (``/path?query``)."""
    if "://" in text:
        text = _URL_IN_TEXT.sub(lambda m: redact(m[0]), text)
    if "?" in text or "#" in text:
        text = _TARGET_IN_TEXT.sub(lambda m: redact(m[0]), text)
    return text


# --------------------------------------------------------------------------- secrets

_MAX = 512
_secrets: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()


def remember(values: Iterable[str | None]) -> None:
    """Mask these values wherever they appear from now on (values under 8 characters are too
    short to mask without mangling ordinary text, and are never credentials)."""
    with _lock:
        for value in values:
            if value and len(value) >= 8:
                _secrets[value] = None
                _secrets.move_to_end(value)
        while len(_secrets) > _MAX:
            _secrets.popitem(last=False)


#: Words that make a field a credential, matched in its name with case, "_", "-" and "."
#: ignored (``AWS_SECRET_ACCESS_KEY``, ``'X-Amz-Security-Token'``, ``"access_token"``,
#: ``client_assertion``, ``AccountKey``, ``<SessionToken>``, ``'ExternalId'``). A name, not a
#: list of SDKs: a field any library logs under such a name loses its value.
_SECRET_WORDS = ("secret", "password", "passwd", "token", "privatekey", "accountkey", "apikey",
                 "accesskey", "sharedkey", "sessionkey", "signingkey", "masterkey",
                 "encryptionkey", "customerkey", "signature", "assertion", "externalid",
                 "authorization", "cookie", "credentialsjson", "connectionstring")
_SECRET_NAMES = frozenset({"sig", "sas", "pwd"})
_MASKED = frozenset({MASK, "***"})
_XML_FIELD = re.compile(r"<([A-Za-z][\w.-]*)>([^<]*)</\1>")
_FIELD = re.compile(r"""(?P<name>["']?[A-Za-z_][\w.-]*["']?)(?P<sep>\s*[:=]\s*)"""
                    r"""(?P<value>b?"[^"\n]*"|b?'[^'\n]*'|[^\s"'&;,}<>)\]]+)""")
# A header whose whole value is the credential ("AWS4-HMAC-SHA256 Credential=..., Signature=...",
# "SharedKey account:signature"): quoted, up to its quote; unquoted, up to the end of the line.
_AUTH_HEADER = re.compile(
    r"""((?:proxy-)?(?:authorization|cookie|set-cookie)["']?\s*:\s*)(?:b?(["']).*?\2|[^\r\n]+)""",
    re.I)
# Bearer tokens that need no field name to be recognised: a JWT (three base64url parts, the
# first two JSON objects) and a Google OAuth access token.
_BARE_TOKEN = re.compile(r"\beyJ[\w-]{6,}\.eyJ[\w-]{6,}\.[\w-]*|\bya29\.[\w.-]{10,}")
_AUTH_SCHEME = re.compile(r"((?:Bearer|SharedKey|SharedKeyLite|Basic)\s+)[A-Za-z0-9._~+/=:-]+")
_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(?:.*?-----END [A-Z0-9 ]+-----|[^\"']*)", re.S)


def _is_secret_name(name: str) -> bool:
    key = re.sub(r"[\W_]", "", name).lower()
    return key in _SECRET_NAMES or any(word in key for word in _SECRET_WORDS)


def _field(m: re.Match[str]) -> str:
    value = m["value"]
    if not _is_secret_name(m["name"]) or value.strip("b'\"") in _MASKED:
        return m[0]
    quote = value[-1] if value[-1:] in ("'", '"') and len(value) > 1 else ""
    return f"{m['name']}{m['sep']}{quote}***{quote}"


def _xml_field(m: re.Match[str]) -> str:
    return f"<{m[1]}>***</{m[1]}>" if _is_secret_name(m[1]) and m[2] else m[0]


def _auth_header(m: re.Match[str]) -> str:
    quote = m[2] or ""
    return f"{m[1]}{quote}***{quote}"


def scrub(text: str) -> str:
    """``text`` with URLs redacted, credential-shaped fields masked (by the name of the field,
    whatever library wrote it), PEM blocks masked whole, and every remembered credential value
    masked."""
    text = redact_text(text)
    text = _PEM.sub(lambda m: f"-----BEGIN {m[1]}-----***-----END {m[1]}-----", text)
    text = _AUTH_HEADER.sub(_auth_header, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m[1]}***", text)  # a template imports: not at exit
    text = _BARE_TOKEN.sub("***", text)
    text = _XML_FIELD.sub(_xml_field, text)
    text = _FIELD.sub(_field, text)
    with _lock:
        secrets = list(_secrets)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


# --------------------------------------------------------------------------- log records

_installed = False
_install_lock = threading.Lock()


def install_log_scrubbing() -> None:
    """Scrub every log record created in this process from now on (idempotent).

    A filter on a named logger never sees its children's records, and a handler-level filter
    misses handlers added later; the record factory sees every record of every logger before any
    handler does. Only records that a logger lets through are created, so disabled DEBUG logging
    costs nothing.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _scrub_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def _scrub_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record is the handler's problem, not ours
        return
    try:
        # Formatted once, here: a handler never formats the arguments (or the exception)
        # again from the raw objects.
        record.msg, record.args = scrub(message), None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
    except Exception:  # e.g. at interpreter shutdown: withhold what could not be checked
        record.msg, record.args = "(message withheld: it could not be checked for secrets)", None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
