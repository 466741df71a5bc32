"""One shape for ``info()`` and listing entries, whatever the backend answered. Pure.

s3fs, gcsfs, adlfs and fsspec's HTTP filesystem each describe an object in their own words
(``ETag``/``etag``, ``LastModified``/``updated``/``last_modified``/``Last-Modified``, a datetime
or an RFC 1123 or RFC 3339 string, an ETag with or without quotes, Azure's content type inside a
``ContentSettings`` object). ``normalise`` adds the same keys for every backend and keeps the
backend's own keys beside them:

=================  ==========================================================================
``name``           the name, as the caller asked (a full URI, or the stripped form of a chain)
``size``           bytes (int); 0 for a directory
``type``           ``"file"`` or ``"directory"``
``version``        the storage's version of the object: S3 ``VersionId`` (versioned buckets),
                   GCS generation, Azure version id; None where there is none (plain http)
``etag``           the ETag without quotes (None where the backend gives none)
``last_modified``  ISO 8601 in UTC (``2026-12-01T07:55:51Z``), None if unknown
``content_type``   the object's Content-Type, None if unknown
=================  ==========================================================================

Backend values that are objects (Azure's ``content_settings``) become mappings and bytes become
base64 text, so no Python ``repr`` ends up inside a string when an entry is written as JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

__all__ = ["COMMON", "jsonable", "modified", "normalise"]

#: The keys every normalised entry has.
COMMON = ("name", "size", "type", "version", "etag", "last_modified", "content_type")

_TIMES = ("LastModified", "last_modified", "mtime", "updated", "Last-Modified")
_ETAGS = ("ETag", "etag")
_TYPES = ("ContentType", "contentType", "content_type", "mimetype", "Content-Type")
_SETTINGS = ("content_type", "content_encoding", "content_language", "content_disposition",
             "cache_control", "content_md5")


def normalise(raw: Mapping[str, Any], backend: str) -> dict[str, Any]:
    """``raw`` (one backend's entry) with the common keys added; its own keys are kept."""
    out = {k: _plain(v) for k, v in raw.items()}
    kind = "directory" if raw.get("type") == "directory" else "file"
    when = modified(raw)
    out.update(
        name=raw.get("name"),
        size=int(raw.get("size") or 0),
        type=kind,
        version=_version(raw, backend) if kind == "file" else None,
        etag=_etag(raw) if kind == "file" else None,
        last_modified=None if when is None else _iso(when),
        content_type=_content_type(raw) if kind == "file" else None,
    )
    return out


def modified(raw: Mapping[str, Any]) -> dt.datetime | None:
    """The object's last-modified time, timezone-aware in UTC, from whichever key the backend
    uses; None if it gives none."""
    for key in _TIMES:
        value = raw.get(key)
        if value is None or value == "":
            continue
        when = _datetime(value)
        if when is not None:
            return when
    return None


def jsonable(value: Any) -> Any:
    """``value`` as JSON types: datetimes as ISO 8601, bytes as base64, mappings and sequences
    walked, anything else as its ``str`` (never its ``repr``)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dt.datetime):
        return _iso(value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    plain = _plain(value)
    return str(plain) if plain is value else jsonable(plain)


def _plain(value: Any) -> Any:
    """Objects with fields (Azure's ``ContentSettings``) as a mapping, bytes as base64."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if any(hasattr(value, f) for f in ("content_type", "content_md5")) and not isinstance(
            value, (Mapping, str)):
        return {f: _plain(getattr(value, f, None)) for f in _SETTINGS}
    return value


def _version(raw: Mapping[str, Any], backend: str) -> str | None:
    if backend == "s3":
        value = raw.get("VersionId")
        return None if value in (None, "", "null") else str(value)
    if backend == "gcs":
        value = raw.get("generation")
        return None if value in (None, "") else str(value)
    if backend == "azure":
        value = raw.get("version_id")
        return None if value in (None, "") else str(value)
    return None


def _etag(raw: Mapping[str, Any]) -> str | None:
    for key in _ETAGS:
        value = raw.get(key)
        if isinstance(value, str) and value:
            weak = value.startswith("W/")
            text = value[2:] if weak else value
            if len(text) >= 2 and text[0] == text[-1] == '"':
                text = text[1:-1]
            return ("W/" if weak else "") + text
    return None


def _content_type(raw: Mapping[str, Any]) -> str | None:
    for key in _TYPES:
        value = raw.get(key)
        if isinstance(value, str) and value:
            return value
    settings = raw.get("content_settings")
    value = getattr(settings, "content_type", None)
    if value is None and isinstance(settings, Mapping):
        value = settings.get("content_type")
    return value if isinstance(value, str) and value else None


def _datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        when = dt.datetime.fromtimestamp(value, dt.timezone.utc)
    else:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
