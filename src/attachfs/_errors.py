"""The exceptions attachfs raises.

Every error is an ``AttachError`` (catch that to catch them all) and subclasses the built-in a
caller already catches, so code written for plain files keeps working::

    AttachError (mix-in)
    PermissionError
     +-- AccessRefused     attachfs's own rules refused: no/unknown tenant, unclaimed bucket,
     |                     a non-public address (SSRF). Raised before any request is sent.
     +-- AccessDenied      the cloud said no. Carries the identity used and a hint.
    ValueError
     +-- ConfigError       the config is wrong: names the file, the key, and what to change.
    FileNotFoundError
     +-- NotFound          the object does not exist; the message names the URI.
    OSError
     +-- IntegrityError    the object changed while it was being read.
     +-- ReadOnlyError     a write was attempted (attachfs is read-only).
     +-- ReadTimeout       a read took too long in one phase (connect, response, body, deadline).
     +-- TooLarge          the object is larger than the configured size cap.
     +-- ConnectionError
          +-- GaveUp       every attempt failed with a transient error within the retry budget.

A malformed URI raises plain ``ValueError`` naming the URI and what is wrong with it.

Messages never contain a secret: callers pass identities (role ARNs, service-account emails,
app ids), never keys or tokens, and URLs are shown through ``attachfs._redact.redact``. Every
class pickles with all its fields (Dask ships errors between processes), in the manner of
botocore's ``__reduce__``.
"""

from __future__ import annotations

import errno
from typing import Any

__all__ = [
    "AccessDenied",
    "AccessRefused",
    "AttachError",
    "ConfigError",
    "GaveUp",
    "IntegrityError",
    "NotFound",
    "ReadOnlyError",
    "ReadTimeout",
    "TooLarge",
    "not_found",
]


class AttachError(Exception):
    """The mix-in every attachfs error carries. ``uri`` is the attachment read (redacted), when
    the error concerns one."""

    uri: str | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls: type[BaseException], args: tuple[Any, ...],
             state: dict[str, Any]) -> BaseException:
    err = cls.__new__(cls)
    BaseException.__init__(err, *args)
    if isinstance(err, OSError) and len(args) >= 2:
        OSError.__init__(err, *args)  # errno, strerror, filename are set from args
    err.__dict__.update(state)
    return err


class _Message(AttachError):
    """An error whose ``str`` is exactly its message (OSError would prefix an errno)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AccessRefused(_Message, PermissionError):
    """attachfs's own rules refused the read; nothing was sent. ``rule`` names the rule."""

    def __init__(self, message: str, *, uri: str | None = None, tenant: str | None = None,
                 rule: str | None = None):
        super().__init__(message)
        self.uri = uri
        self.tenant = tenant
        self.rule = rule


class AccessDenied(_Message, PermissionError):
    """The cloud refused the request made as ``identity``; ``hint`` says what to grant."""

    def __init__(self, message: str, *, uri: str | None = None, identity: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.uri = uri
        self.identity = identity
        self.hint = hint


class ConfigError(AttachError, ValueError):
    """The configuration is invalid. ``key`` is the dotted path of the offending key."""

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        prefix = ""
        if source:
            prefix += f"{source}: "
        if key:
            prefix += f"{key}: "
        super().__init__(prefix + message)
        self.source = source
        self.key = key


class NotFound(AttachError, FileNotFoundError):
    """The object does not exist. ``filename`` and ``uri`` carry the (redacted) URI."""


def not_found(uri: str, detail: str | None = None) -> NotFound:
    """A ``NotFound`` (a ``FileNotFoundError``) whose message names the URI."""
    msg = f"No such attachment: {uri}"
    if detail:
        msg += f" ({detail})"
    err = NotFound(errno.ENOENT, msg, uri)
    err.uri = uri
    return err


class IntegrityError(_Message, OSError):
    """The object changed (new version) while it was being read; no mixed bytes are returned."""

    def __init__(self, message: str, *, uri: str | None = None):
        super().__init__(message)
        self.uri = uri


class ReadOnlyError(_Message, OSError):
    """attachfs only reads; a write mode or a mutating call was requested."""

    def __init__(self, message: str):
        super().__init__(message)


class ReadTimeout(AttachError, OSError):
    """A read took too long in one ``phase``: ``connect``, ``response`` (waiting for the
    headers), ``body`` (no byte for ``seconds``, or slower than the minimum rate) or
    ``deadline`` (the whole read, retries included).

    An ``OSError`` with ``errno.ETIMEDOUT``, deliberately not a ``TimeoutError``: fsspec's
    synchronous wrapper replaces every ``TimeoutError`` with a message-less ``FSTimeoutError``,
    and this message is the one that says what timed out."""

    def __init__(self, url: str | None, detail: str, *, phase: str,
                 seconds: float | None = None):
        super().__init__(errno.ETIMEDOUT, f"timed out reading {url}: {detail}")
        self.url = url
        self.uri = url
        self.detail = detail
        self.phase = phase
        self.seconds = seconds

    def __str__(self) -> str:
        return f"timed out reading {self.url}: {self.detail}"

    # The messages of each phase, so every reader says the same thing the same way.

    @classmethod
    def connecting(cls, url: str | None, seconds: float) -> ReadTimeout:
        return cls(url, f"no connection within {seconds:g} s (connect timeout)",
                   phase="connect", seconds=seconds)

    @classmethod
    def stalled(cls, url: str | None, seconds: float, phase: str) -> ReadTimeout:
        what = "the response headers" if phase == "response" else "more of the body"
        return cls(url, f"waited {seconds:g} s for {what} (read timeout)", phase=phase,
                   seconds=seconds)

    @classmethod
    def too_slow(cls, url: str | None, rate: float, min_rate: float,
                 seconds: float) -> ReadTimeout:
        return cls(url, f"the body arrived at {rate:.0f} B/s, under the minimum of "
                        f"{min_rate:g} B/s (slow body)", phase="body", seconds=seconds)

    @classmethod
    def past_deadline(cls, url: str | None, seconds: float, phase: str,
                      detail: str = "") -> ReadTimeout:
        doing = {"connect": "connecting", "body": "reading the body"}.get(phase, phase)
        return cls(url, f"the read took longer than its {seconds:g} s deadline (while "
                        f"{doing}{detail})", phase="deadline", seconds=seconds)


class TooLarge(_Message, OSError):
    """The object is larger than the per-object size cap; its body was not read."""

    def __init__(self, message: str, *, url: str | None = None, size: int | None = None,
                 limit: int | None = None):
        super().__init__(message)
        self.url = url
        self.uri = url
        self.size = size
        self.limit = limit


class GaveUp(_Message, ConnectionError):
    """Every attempt failed with a transient error; ``last_status`` is the last HTTP status."""

    def __init__(self, message: str, *, attempts: int, last_status: int | None = None,
                 uri: str | None = None):
        super().__init__(message)
        self.attempts = attempts
        self.last_status = last_status
        self.uri = uri
