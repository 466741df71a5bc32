"""One shape for an object's metadata, whatever backend it came from: what ``ls --json`` and
``stat --json`` print.

s3fs, gcsfs, adlfs and fsspec's HTTP filesystem each describe an object in their own words
(``ETag`` with quotes, ``generation``, ``LastModified`` as a datetime, Azure's
``content_settings`` as an SDK object). A script reading ``attachfs stat --json`` must not care
which one answered, so every entry is reduced to these keys, all JSON scalars:

==================  ===========================================================================
``name``            the full URI, as ``open()`` takes it (a signed URL's signature redacted)
``size``            bytes (int); ``null`` for a directory
``type``            ``"file"`` or ``"directory"``
``version``         the object version a read can be pinned to: S3 ``VersionId`` (null unless
                    the bucket is versioned), GCS ``generation``, Azure ``version_id``; else null
``etag``            the entity tag without quotes (a weak one keeps its ``W/``); else null
``last_modified``   ISO 8601 in UTC (``2024-05-01T12:00:00Z``); else null
``content_type``    the stored media type; else null
==================  ===========================================================================

``normalise`` is idempotent (a normalised entry normalises to itself), so it can be pointed at
the library's own normalised ``info()`` once that keeps these keys beside the raw ones.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Mapping
from typing import Any

from .._redact import redact

__all__ = ["KEYS", "normalise"]

KEYS = ("name", "size", "type", "version", "etag", "last_modified", "content_type")

# The raw keys each backend uses, first match wins (s3fs, gcsfs, adlfs, fsspec http, ours).
_VERSION = ("VersionId", "generation", "version_id", "version")
_ETAG = ("ETag", "etag", "e_tag")
_MODIFIED = ("LastModified", "last_modified", "updated", "Last-Modified", "mtime")
_FRACTION = re.compile(r"\.(\d+)")
_CONTENT_TYPE = ("ContentType", "contentType", "content_type", "mimetype", "Content-Type")


def normalise(info: Mapping[str, Any]) -> dict[str, Any]:
    """``info`` (as any inner filesystem or attachfs returns it) in the one shape above."""
    kind = "directory" if info.get("type") == "directory" else "file"
    size = info.get("size")
    return {
        "name": redact(str(info.get("name", ""))),
        "size": None if kind == "directory" or size is None else int(size),
        "type": kind,
        "version": _scalar(_first(info, _VERSION)),
        "etag": _etag(_first(info, _ETAG)),
        "last_modified": _timestamp(_first(info, _MODIFIED)),
        "content_type": _content_type(info),
    }


def _first(info: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = info.get(key)
        if value not in (None, ""):
            return value
    return None


def _scalar(value: Any) -> str | None:
    return None if value is None else str(value)


def _etag(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    weak = text.startswith(("W/", "w/"))
    if weak:
        text = text[2:]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return f"W/{text}" if weak else text


def _timestamp(value: Any) -> str | None:
    """A datetime, an ISO 8601 string, an HTTP date or epoch seconds, as UTC ISO 8601."""
    if value is None:
        return None
    when: dt.datetime | None = None
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        when = dt.datetime.fromtimestamp(value, dt.timezone.utc)
    elif isinstance(value, str):
        # Python 3.10's fromisoformat wants "+00:00" and 0, 3 or 6 fraction digits (GCS may
        # send 5).
        text = _FRACTION.sub(lambda m: "." + m[1].ljust(6, "0")[:6],
                             value.strip().replace("Z", "+00:00"))
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
    if when is None:
        return None
    if when.tzinfo is None:  # the clouds answer in UTC; a naive time is UTC
        when = when.replace(tzinfo=dt.timezone.utc)
    when = when.astimezone(dt.timezone.utc)
    spec = "seconds" if when.microsecond == 0 else "microseconds"
    return when.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _content_type(info: Mapping[str, Any]) -> str | None:
    value = _first(info, _CONTENT_TYPE)
    if value is None:
        # adlfs: an azure.storage.blob.ContentSettings, or the dict it was turned into.
        settings = info.get("content_settings")
        if isinstance(settings, Mapping):
            value = settings.get("content_type")
        elif settings is not None:
            value = getattr(settings, "content_type", None)
    return None if value in (None, "") else str(value)
