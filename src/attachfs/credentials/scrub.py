"""Keep credential values out of other libraries' DEBUG logs.

botocore logs every response body at DEBUG ("Response body: ..."), which for AssumeRole holds
the session's secret key and token; other SDKs log request details too. A filter on those
libraries' loggers rewrites each record before any handler sees it: credential-shaped fields
(STS XML elements, OAuth JSON fields and form values, bearer headers) are masked by pattern,
because the first log of a secret comes before anyone knows its value; and every value a lease
has fetched (remembered here, in this process, the most recent few hundred) is masked wherever
it appears later.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable

#: Loggers of the libraries that see credentials on the wire.
LOGGERS = (
    "botocore.parsers", "botocore.endpoint", "botocore.auth", "aiobotocore.parsers",
    "aiobotocore.endpoint", "urllib3.connectionpool", "google.auth.transport.requests",
    "google.auth.impersonated_credentials", "google.auth._default", "msal",
    "msal.application", "azure.identity", "azure.core.pipeline.policies.http_logging_policy",
    "gcsfs", "s3fs", "adlfs", "fsspec",
)
_MAX = 512
_secrets: OrderedDict[str, None] = OrderedDict()
_lock = threading.Lock()


def remember(values: Iterable[str | None]) -> None:
    """Scrub these values from the watched loggers from now on (short values are ignored)."""
    with _lock:
        for value in values:
            if value and len(value) >= 8:
                _secrets[value] = None
                _secrets.move_to_end(value)
        while len(_secrets) > _MAX:
            _secrets.popitem(last=False)


_PATTERNS = [
    (re.compile(r"(<(SecretAccessKey|SessionToken|SecurityToken)>)[^<]*(</\2>)"), r"\1***\3"),
    (re.compile(r"""(["']?(?:access_token|accessToken|id_token|refresh_token|client_secret|"""
                r"""private_key|SecretAccessKey|SessionToken|AccountKey|sig)["']?\s*[:=]\s*["']?)"""
                r"""[^"'&;,\s}]+"""), r"\1***"),
    (re.compile(r"((?:Bearer|SharedKey)\s+)[A-Za-z0-9._~+/=:-]+"), r"\1***"),
    (re.compile(r"((?:client_)?assertion=)[^&\s'\"]+"), r"\1***"),
]


def scrub(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in list(_secrets):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class ScrubSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's problem, not ours
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_filter = ScrubSecrets()
for _name in LOGGERS:
    logging.getLogger(_name).addFilter(_filter)
