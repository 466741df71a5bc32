"""The one table from what a server, a connection or an SDK said to what attachfs raises.

In the manner of httpx's ``map_exceptions``, every reader hands its failures here:

* ``raise_for_status``: an HTTP answer that is not the object (status and error code) becomes
  ``NotFound``, ``IntegrityError`` (412), ``Unsatisfiable`` (416: an empty range, not an
  error), ``PermissionError`` (401/403, and 409 on Azure), ``Retry`` when asking again may help
  (5xx, 408, 429, ``SlowDown``...), or ``OSError``.
* ``check_body``: a 2xx body that is not the object (shorter than announced, or an XML error
  document with a retryable code) becomes ``Retry``.
* ``transient``: an exception another attempt may cure (a broken connection, a stall, an SDK's
  5xx) becomes ``Retry``; anything else is final. One classifier for every backend.
* ``translate``: what failed, in attachfs's terms, naming the URI (redacted) and the identity
  used, with the hint of what to grant (``AccessDenied``).
* ``foreign`` and ``reraise``: the boundary with the libraries underneath. aiohttp's errors
  that are no ``OSError`` (``ClientResponseError`` shows ``url='...'`` whole) and the
  ``ValueError``s of the HTTP stack (a redirect's bad Location) become ``OSError``s naming the
  redacted URI; and a chain that would show what redaction hides (fsspec's
  ``FileNotFoundError(url)``, aiohttp's ``request_info``) is cut: no cause, no context.

Never retried: 400, 401, 403, 404, 412 (and every other 4xx but 408 and 429): asking again gets
the same answer, and a 412 means the object changed, which no retry can undo. Nor a name that
does not resolve, nor a read past its deadline.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, NoReturn, TypeVar

from .._errors import (
    AccessDenied,
    AccessRefused,
    AttachError,
    IntegrityError,
    ReadOnlyError,
    ReadTimeout,
    not_found,
)
from .._redact import hidden_values, redact, redact_text
from .._rules import denied_hint
from .retry import Retry, retry_after

if TYPE_CHECKING:
    from .._rules import Route

__all__ = ["RETRYABLE_CODES", "Unsatisfiable", "changed", "check_body", "error_document_code",
           "foreign", "guarded", "raise_for_status", "reraise", "shows_hidden",
           "status_retryable", "transient", "translate", "xml_code"]

T = TypeVar("T")

#: 4xx answers that are retried: 408 Request Timeout and 429 Too Many Requests.
RETRYABLE_4XX = frozenset({408, 429})
#: 5xx answers that are not: the server says it will never do this.
FINAL_5XX = frozenset({501, 505})
#: Error-document codes (S3, GCS XML API, Azure) that mean "try again".
RETRYABLE_CODES = frozenset({
    "InternalError", "SlowDown", "ServiceUnavailable", "RequestTimeout", "ServerBusy",
    "OperationTimedOut", "InternalServerError", "BackendError", "RequestTimeTooSkewed",
})
_ERROR_DOCUMENT = re.compile(
    rb"^\s*(?:<\?xml[^>]*\?>\s*)?<Error>\s*<Code>([A-Za-z0-9.]+)</Code>", re.S)
_XML_CODE = re.compile(rb"<Code>([^<]+)</Code>")


class Unsatisfiable(Exception):
    """A 416: the range starts at or past the end of the object."""


def status_retryable(status: int) -> bool:
    return status in RETRYABLE_4XX or (500 <= status <= 599 and status not in FINAL_5XX)


def error_document_code(body: bytes, content_type: str | None) -> str | None:
    """The ``<Code>`` of an XML error document in a 2xx body, if it is one."""
    if not content_type or "xml" not in content_type.lower() or len(body) > 64 * 1024:
        return None
    m = _ERROR_DOCUMENT.match(body)
    return m.group(1).decode("ascii") if m else None


def xml_code(body: bytes) -> str | None:
    """The ``<Code>`` of an error answer's XML body (S3, GCS XML API)."""
    m = _XML_CODE.search(body[:4096])
    return m.group(1).decode() if m else None


def changed(uri: str, version: str | None) -> IntegrityError:
    shown = redact(uri)
    return IntegrityError(
        f"{shown} changed while it was being read (it is no longer version {version}); "
        "read it again from the start", uri=shown)


def raise_for_status(uri: str, backend: str, status: int, code: str | None,
                     version: str | None, headers: Mapping[str, str] | None = None) -> NoReturn:
    """Raise what a failed GET of ``uri`` means (see the module docstring)."""
    detail = f"HTTP {status}" + (f" {code}" if code else "")
    shown = redact(uri)
    if status == 404:
        raise not_found(shown, detail)
    if status == 412:
        if version is None:
            raise OSError(f"HTTP 412 Precondition Failed for {shown}")
        raise changed(uri, version)
    if status == 416:
        raise Unsatisfiable()
    if status in (401, 403) or (backend == "azure" and status == 409):
        raise PermissionError(f"{backend} refused to read {shown} ({detail})")
    if status_retryable(status) or code in RETRYABLE_CODES:
        after = retry_after((headers or {}).get("Retry-After"))
        raise Retry(detail, status=status, retry_after=after)
    raise OSError(f"{backend} failed to read {shown} ({detail}; not retried)")


def check_body(status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``Retry`` for a 2xx body that is not the object: shorter than its
    ``Content-Range`` says, or an XML error document with a retryable code."""
    from .part import ContentRange

    announced = ContentRange.parse(headers.get("Content-Range")) if status == 206 else None
    if announced is not None and len(body) < announced.length:
        raise Retry(f"short body: {len(body)} of the {announced.length} bytes of "
                    f"{headers.get('Content-Range')}")
    code = error_document_code(body, headers.get("Content-Type"))
    if code in RETRYABLE_CODES:
        raise Retry(f"HTTP {status} carrying an error document ({code})", status=status)


def describe(err: BaseException) -> str:
    """``err`` in a message: its type and its text, every URL in it redacted."""
    text = redact_text(str(err))
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def is_gcs_forbidden(backend: str, err: BaseException) -> bool:
    """gcsfs reports a 403 as a plain ``OSError("Forbidden: ...")``, not a PermissionError."""
    return backend == "gcs" and type(err) is OSError and str(err).startswith("Forbidden")


def transient(err: BaseException) -> Retry | None:
    """Whether another attempt may cure ``err``, for every backend: ``Retry`` if so."""
    import aiohttp

    if isinstance(err, ReadTimeout):  # a stall or a drip; never the read's own deadline
        return None if err.phase == "deadline" else Retry(err.detail)
    if isinstance(err, aiohttp.ClientConnectorDNSError):
        return None  # a name that does not resolve will not resolve in 200 ms either
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        return None  # a certificate that does not verify will not verify next time
    module = type(err).__module__
    if module.startswith("botocore"):
        return s3_transient(err)
    if module.startswith("azure"):
        return azure_transient(err)
    if module.startswith("gcsfs"):
        return gcs_transient(err)
    return _broken_connection(err)


def _broken_connection(err: BaseException) -> Retry | None:
    import aiohttp

    if isinstance(err, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
                        ConnectionError, asyncio.IncompleteReadError)):
        return Retry(f"the connection broke ({describe(err)})")
    return None


def s3_transient(err: BaseException) -> Retry | None:
    """botocore/aiobotocore errors worth another attempt (SlowDown, 5xx, broken bodies)."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        IncompleteReadError,
        ReadTimeoutError,
        ResponseStreamingError,
    )

    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        meta = err.response.get("ResponseMetadata", {})
        code, status = error.get("Code"), meta.get("HTTPStatusCode")
        if code in RETRYABLE_CODES or (isinstance(status, int) and status_retryable(status)):
            after = retry_after((meta.get("HTTPHeaders") or {}).get("retry-after"))
            return Retry(f"S3 answered {code or status}", status=status, retry_after=after)
        return None
    if isinstance(err, (ConnectionClosedError, EndpointConnectionError, IncompleteReadError,
                        ReadTimeoutError, ResponseStreamingError)):
        return Retry(f"the connection broke ({type(err).__name__})")
    return _broken_connection(err)


def gcs_transient(err: BaseException) -> Retry | None:
    """gcsfs errors worth another attempt (5xx, 429, broken bodies)."""
    code = getattr(err, "code", None)
    if type(err).__name__ == "HttpError" and isinstance(code, int):
        return Retry(f"GCS answered {code}", status=code) if status_retryable(code) else None
    return _broken_connection(err)


def azure_transient(err: BaseException) -> Retry | None:
    """azure-core errors worth another attempt (5xx, 429, broken bodies)."""
    from azure.core.exceptions import (
        HttpResponseError,
        IncompleteReadError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(err, (IncompleteReadError, ServiceResponseError, ServiceRequestError)):
        return Retry(f"the connection broke ({type(err).__name__})")
    if isinstance(err, HttpResponseError):
        status = err.status_code
        if isinstance(status, int) and status_retryable(status):
            headers = getattr(err.response, "headers", None) or {}
            return Retry(f"Azure answered {status}", status=status,
                         retry_after=retry_after(headers.get("Retry-After")))
        return None
    return _broken_connection(err)


# -- errors in attachfs's terms, for every operation (reads, listings, credentials) ----------

async def guarded(route: Route, awaitable: Awaitable[T]) -> T:
    """``await awaitable``, its failure said in attachfs's terms (``translate``)."""
    try:
        return await awaitable
    except Exception as err:
        reraise(route, err)


def reraise(route: Route, err: Exception) -> NoReturn:
    """Raise ``err`` translated (``foreign``, then ``translate``), chained to the original
    unless that chain would show what redaction hides of the URI (``shows_hidden``): then the
    chain is cut (no cause, no context) and the message alone says what failed, redacted."""
    new = translate(route, foreign(route, err))
    hidden = hidden_values(route.uri)
    cut = shows_hidden(err, hidden, chain=True) if new is err else (
        shows_hidden(err, hidden, chain=True) or shows_hidden(new, hidden, chain=True))
    if cut:
        new.__cause__, new.__context__, new.__suppress_context__ = None, None, True
    try:
        if new is err:
            raise err
        raise new from (None if cut else err)
    finally:
        if cut:  # raised inside the caller's ``except``: Python chained it as the context
            new.__context__ = None


# -- the boundary: what aiohttp, yarl or fsspec raised, in attachfs's terms -----------------

#: Modules whose ValueError/UnicodeError while a read runs means the server's answer (a
#: redirect's Location, a header) could not be parsed: an I/O failure, not a bad argument.
_HTTP_STACK = ("aiohttp", "yarl", "multidict", "urllib", "idna", "encodings", "http")


def foreign(route: Route, err: BaseException) -> BaseException:
    """``err`` as an ``OSError`` naming the redacted URI if it is an aiohttp error that is no
    ``OSError`` (``ClientResponseError`` shows ``url='...'`` whole, and a caller catching
    ``OSError`` would miss it), a ``ValueError``/``UnicodeError`` raised inside the HTTP stack,
    or any foreign error whose own text shows what redaction hides; else ``err`` unchanged.
    A 404/401/403 keeps its meaning (``translate`` then names the identity)."""
    import aiohttp

    if isinstance(err, AttachError):
        return err
    shown = redact(route.uri)
    if isinstance(err, aiohttp.ClientResponseError):
        detail = f"HTTP {err.status}" + (f" {redact_text(err.message)}" if err.message else "")
        if err.status == 404:
            return not_found(shown, detail)
        if err.status in (401, 403):
            return PermissionError(f"{route.backend} refused to read {shown} ({detail})")
        return OSError(f"{route.backend} failed to read {shown} ({detail})")
    if (isinstance(err, aiohttp.ClientError) and not isinstance(err, OSError)) or (
            isinstance(err, (ValueError, UnicodeError)) and _raised_in(err, _HTTP_STACK)):
        return OSError(f"{route.backend} failed to read {shown} (the answer could not be read: "
                       f"{describe(err)})")
    if not isinstance(err, (FileNotFoundError, PermissionError)) and shows_hidden(
            err, hidden_values(route.uri)):  # those two, translate() names without the URL
        return OSError(f"{route.backend} failed to read {shown} ({describe(err)})")
    return err


def shows_hidden(err: BaseException, hidden: list[str], *, chain: bool = False) -> bool:
    """Whether ``err`` (and with ``chain``, any exception behind it) shows one of ``hidden``
    in its text, its arguments or its attributes (what a traceback, a ``repr`` or a pickle
    shows)."""
    if not hidden:
        return False
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        try:
            text = f"{e}\n{e.args!r}\n{vars(e)!r}"
        except Exception:  # a repr that fails shows nothing we can check: count it as shown
            return True
        if any(value in text for value in hidden):
            return True
        if chain:
            todo += [e.__cause__, e.__context__]
    return False


def _raised_in(err: BaseException, modules: tuple[str, ...]) -> bool:
    """Whether the innermost frame of ``err``'s traceback is in one of ``modules``."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    name = "" if tb is None else str(tb.tb_frame.f_globals.get("__name__", ""))
    return name.split(".", 1)[0] in modules


def translate(route: Route, err: BaseException) -> BaseException:
    """Say what failed in attachfs's terms, naming the URI and the identity used. The URI is
    shown redacted: a signed URL's query is its credential."""
    shown = redact(route.uri)
    if isinstance(err, AccessDenied):
        if err.uri is not None:
            return err
        # Raised by the credential layer, which does not know the URI being read.
        return AccessDenied(f"{err} (reading {shown}); to fix: {err.hint}",
                            uri=shown, identity=err.identity, hint=err.hint)
    if isinstance(err, (AccessRefused, ReadOnlyError)):
        return err
    if isinstance(err, FileNotFoundError):  # ours already names the URI (and the status)
        return err if isinstance(err, AttachError) and err.uri else not_found(shown)
    if is_gcs_forbidden(route.backend, err) or isinstance(err, PermissionError):
        who = route.identity or f"the {route.mode} identity"
        hint = denied_hint(route)
        return AccessDenied(f"{route.backend} refused to read {shown} as {who}; "
                            f"to fix: {hint}", uri=shown, identity=route.identity, hint=hint)
    return err
