"""The exceptions attachfs raises.

Every error subclasses the built-in a caller already catches, so code written for plain files
keeps working::

    PermissionError
     +-- AccessRefused     attachfs's own rules refused: no/unknown tenant, unclaimed bucket,
     |                     a non-public address (SSRF). Raised before any request is sent.
     +-- AccessDenied      the cloud said no. Carries the identity used and a hint.
    ValueError
     +-- ConfigError       the config is wrong: names the file, the key, and what to change.
    OSError
     +-- IntegrityError    the object changed while it was being read.
     +-- ReadOnlyError     a write was attempted (attachfs is read-only).
    FileNotFoundError      the object does not exist (the built-in, with the URI).

A malformed URI raises plain ``ValueError`` naming the URI and what is wrong with it.

Messages never contain a secret: callers pass identities (role ARNs, service-account emails,
app ids), never keys or tokens. Every class pickles with all its fields (Dask ships errors
between processes), in the manner of botocore's ``__reduce__``.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "AccessRefused",
    "ConfigError",
    "IntegrityError",
    "ReadOnlyError",
]


class AccessRefused(PermissionError):
    """attachfs's own rules refused the read; nothing was sent."""

    def __init__(self, message: str, *, uri: str | None = None, tenant: str | None = None,
                 rule: str | None = None):
        super().__init__(message)
        self.uri = uri
        self.tenant = tenant
        self.rule = rule

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return _rebuild, (type(self), self.args, self.__dict__)


class AccessDenied(PermissionError):
    """The cloud refused the request made as ``identity``."""

    def __init__(self, message: str, *, uri: str | None = None, identity: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.uri = uri
        self.identity = identity
        self.hint = hint

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return _rebuild, (type(self), self.args, self.__dict__)


class ConfigError(ValueError):
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

    def __reduce__(self):
        return _rebuild, (type(self), self.args, self.__dict__)


class IntegrityError(OSError):
    """The object changed (new version) while it was being read; no mixed bytes are returned."""

    def __init__(self, message: str, *, uri: str | None = None):
        super().__init__(message)
        self.uri = uri

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return _rebuild, (type(self), self.args, self.__dict__)


class ReadOnlyError(OSError):
    """attachfs only reads; a write mode or a mutating call was requested."""

    def __init__(self, message: str):
        super().__init__(message)

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls, args, state):
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    err.__dict__.update(state)
    return err


def not_found(uri: str, detail: str | None = None) -> FileNotFoundError:
    """A ``FileNotFoundError`` whose message names the URI (and ``filename`` carries it)."""
    import errno

    msg = f"No such attachment: {uri}"
    if detail:
        msg += f" ({detail})"
    err = FileNotFoundError(errno.ENOENT, msg, uri)
    return err
