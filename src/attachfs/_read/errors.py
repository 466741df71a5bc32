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
    IntegrityError,
    ReadOnlyError,
    ReadTimeout,
    not_found,
)
from .._redact import redact, redact_text
from .._rules import denied_hint
from .retry import Retry, retry_after

if TYPE_CHECKING:
    from .._rules import Route

__all__ = ["RETRYABLE_CODES", "Unsatisfiable", "changed", "check_body", "error_document_code",
           "guarded", "raise_for_status", "reraise", "status_retryable", "transient",
           "translate", "xml_code"]

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
    """Raise ``err`` translated, chained to the original."""
    new = translate(route, err)
    if new is err:
        raise err
    raise new from err


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
    if isinstance(err, FileNotFoundError):
        return not_found(shown)
    if is_gcs_forbidden(route.backend, err) or isinstance(err, PermissionError):
        who = route.identity or f"the {route.mode} identity"
        hint = denied_hint(route)
        return AccessDenied(f"{route.backend} refused to read {shown} as {who}; "
                            f"to fix: {hint}", uri=shown, identity=route.identity, hint=hint)
    return err
