"""The one way attachfs shows a URL or any text that may carry a secret.

* ``redact(url)``: a URL fit for a message, a ``repr`` or a log. User info is removed, and every
  query and fragment parameter keeps its *name* and loses its *value*, whatever the name: a
  signed URL's credential may sit in ``X-Amz-Signature``, ``sig``, ``Authorization``, ``code``,
  ``token`` or a name no list foresees. Path parameters (``;name=value``) of http(s) URLs are
  treated the same way.
* ``redact_text(text)``: every URL inside free text (an error message of another library, a log
  line) redacted as above.
* ``scrub(text)``: ``redact_text`` plus credential-shaped fields (STS XML elements, OAuth JSON
  and form fields, ``Bearer``/``SharedKey`` headers, botocore's ``'ExternalId': ...``), plus every
  value a credential lease has fetched (``remember``), wherever it appears.
* ``install_log_scrubbing()``: every log record this process creates, whatever logger (child
  loggers included) and whatever handler, is scrubbed when it is created (the message and a
  traceback it carries), so no handler ever sees a secret.

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

__all__ = ["install_log_scrubbing", "redact", "redact_text", "remember", "scrub"]

MASK = "REDACTED"

_SCHEME_AUTHORITY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^/?#\s]*)")
_AZURE_SCHEMES = ("az", "abfs", "abfss")
_PAIR = re.compile(r"([^=&#;]*)(=)([^&#;]*)")
# A URL inside free text: a scheme, "://", and everything up to whitespace or a quote/bracket
# that ends it in a message ('...', "...", <...>, (...)).
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"<>()\[\]{}\\]+""")


def _params(text: str) -> str:
    """``name=value`` pairs separated by ``&`` or ``;`` with every value masked."""
    return _PAIR.sub(lambda m: f"{m[1]}={MASK}" if m[3] else m[0], text)


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
        path = re.sub(r";[^/]*", lambda p: ";" + _params(p[0][1:]), head[m.end():])
        head = head[:m.end()] + path
    if not tail:
        return head
    parts = re.split(r"([?#])", tail)
    return head + "".join(p if p in ("?", "#") else _params(p) for p in parts)


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact(m[0]), text)


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


_FIELDS = ("access_token|accessToken|id_token|refresh_token|client_secret|private_key|"
           "SecretAccessKey|SessionToken|SecurityToken|AccountKey|sig|ExternalId|external_id|"
           "client_assertion|assertion|password|AccessKeyId")
_PATTERNS = [
    (re.compile(r"(<(SecretAccessKey|SessionToken|SecurityToken|ExternalId|AccessKeyId)>)"
                r"[^<]*(</\2>)"), r"\1***\3"),
    (re.compile(rf"""(["']?(?:{_FIELDS})["']?\s*[:=]\s*["']?)[^"'&;,\s}}]+"""), r"\1***"),
    (re.compile(r"((?:Bearer|SharedKey|Basic)\s+)[A-Za-z0-9._~+/=:-]+"), r"\1***"),
    (re.compile(r"((?:x-amz-security-token|x-goog-iam-authorization-token|authorization)"
                r"['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+", re.I), r"\1***"),
]


def scrub(text: str) -> str:
    """``text`` with URLs redacted, credential-shaped fields masked, and every remembered
    credential value masked."""
    text = redact_text(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
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
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = scrub(
                "".join(traceback.format_exception(*record.exc_info)).rstrip())
    except Exception:  # e.g. at interpreter shutdown: withhold what could not be checked
        record.msg, record.args = "(message withheld: it could not be checked for secrets)", None
        record.exc_info, record.exc_text = None, None
