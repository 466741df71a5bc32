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

What is retried (``retry`` says how long): a connection refused, reset or broken mid-body; a
stall or a drip (``ReadTimeout``, except the read's own deadline); 500, 502, 503, 504 and every
other 5xx but 501 and 505; 408 and 429; and the error codes of ``RETRYABLE_CODES`` (S3's
``SlowDown`` and 400 ``RequestTimeout``, Azure's ``ServerBusy``...). Throttling answers (429 and
``THROTTLING_CODES``) also slow down every read to that host (``throttle``).

Never retried, because asking again gets the same answer: every other 4xx (400, 401, 403, 404,
412...; a 412 means the object changed, which no retry can undo); a certificate that does not
verify, or any other TLS handshake failure but the connection closing during it; a name that
does not resolve (``EAI_AGAIN``, the resolver itself failing, is retried); a refusal of the
network guard; a read past its deadline. An expired session token is not retried here: the
reader that signed with it fetches its credentials again.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Awaitable, Iterator, Mapping
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
from .retry import Retry, retry_after_in

if TYPE_CHECKING:
    from .._rules import Route

__all__ = ["RETRYABLE_CODES", "THROTTLING_CODES", "Unsatisfiable", "answer_retry", "changed",
           "check_body", "error_document_code", "guarded", "permanent_cause", "raise_for_status",
           "reraise", "status_retryable", "transient", "translate", "xml_code"]

T = TypeVar("T")

#: 4xx answers that are retried: 408 Request Timeout and 429 Too Many Requests.
RETRYABLE_4XX = frozenset({408, 429})
#: 5xx answers that are not: the server says it will never do this.
FINAL_5XX = frozenset({501, 505})
#: Error codes that ask the client to slow down: botocore's ``ThrottledRetryableChecker`` list
#: (``botocore/retries/standard.py``; S3's is ``SlowDown``), Azure's ``ServerBusy`` (503: the
#: account's ingress, egress or operations-per-second limit,
#: https://learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes) and the
#: reasons of GCS's 429 (``rateLimitExceeded``, ``userRateLimitExceeded``).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException", "ServerBusy", "rateLimitExceeded", "userRateLimitExceeded",
})
#: Error codes (S3, GCS, Azure) that mean "try again", whatever their status: the throttling
#: ones, the 5xx ones, and S3's 400 ``RequestTimeout`` (the connection idled; botocore's
#: ``TransientRetryableChecker``). Never ``RequestTimeTooSkewed``: the clock stays skewed.
RETRYABLE_CODES = THROTTLING_CODES | frozenset({
    "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException",
    "OperationTimedOut", "InternalServerError", "BackendError", "backendError",
    "internalError",
})
_ERROR_DOCUMENT = re.compile(
    rb"^\s*(?:<\?xml[^>]*\?>\s*)?<Error>\s*<Code>([A-Za-z0-9.]+)</Code>", re.S)
_XML_CODE = re.compile(rb"<Code>([^<]+)</Code>")


class Unsatisfiable(Exception):
    """A 416: the range starts at or past the end of the object."""


def status_retryable(status: int) -> bool:
    """Whether asking again may help an answer with this status (whatever its error code)."""
    return status in RETRYABLE_4XX or (500 <= status <= 599 and status not in FINAL_5XX)


def answer_retry(status: int, code: str | None, headers: Mapping[str, str] | None = None,
                 detail: str | None = None) -> Retry | None:
    """The ``Retry`` of an answer that another attempt may cure (its status, or its error
    code), with the wait it asked for and whether it was a throttle; None if it is final."""
    if not (status_retryable(status) or code in RETRYABLE_CODES):
        return None
    return Retry(detail or f"HTTP {status}" + (f" {code}" if code else ""), status=status,
                 retry_after=retry_after_in(headers),
                 throttled=status == 429 or code in THROTTLING_CODES)


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
    again = answer_retry(status, code, headers, detail)
    if again is not None:
        raise again
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
    if isinstance(err, ReadTimeout):  # a stall or a drip; never the read's own deadline
        return None if err.phase == "deadline" else Retry(err.detail)
    if permanent_cause(err) is not None:
        return None
    module = type(err).__module__
    if module.startswith("botocore"):
        return s3_transient(err)
    if module.startswith("azure"):
        return azure_transient(err)
    if module.startswith("gcsfs"):
        return gcs_transient(err)
    return _broken_connection(err)


#: TLS failures that are the connection closing during the handshake (a server restarting),
#: not the handshake being refused.
_TLS_CUT = (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)
#: getaddrinfo's "try again": the resolver failed, not the name.
_DNS_AGAIN = frozenset({getattr(socket, "EAI_AGAIN", -3)})


def permanent_cause(err: BaseException) -> str | None:
    """Why no attempt can cure ``err``, if something behind it says so: a certificate that
    does not verify, a refused TLS handshake, a name that does not resolve, or the network
    guard's refusal. Follows what each client wraps its causes in (``__cause__``, aiohttp's
    ``os_error``, azure-core's ``inner_exception``, botocore's ``error``)."""
    import aiohttp

    for seen in _causes(err):
        if isinstance(seen, AccessRefused):
            return "refused by the network guard"
        if isinstance(seen, (ssl.CertificateError, aiohttp.ClientConnectorCertificateError)):
            return "the server's certificate does not verify"
        if isinstance(seen, aiohttp.ClientConnectorSSLError) and not any(
                isinstance(c, _TLS_CUT) for c in _causes(seen.os_error)):
            return "the TLS handshake was refused"
        if isinstance(seen, socket.gaierror) and seen.errno not in _DNS_AGAIN:
            return "the name does not resolve"
        if isinstance(seen, aiohttp.ClientConnectorDNSError) and (
                seen.os_error.errno not in _DNS_AGAIN):
            return "the name does not resolve"
    return None


def _causes(err: BaseException | None) -> Iterator[BaseException]:
    """``err`` and what it wraps, each once, at most 16 deep."""
    todo: list[BaseException | None] = [err]
    seen: set[int] = set()
    while todo and len(seen) < 16:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        kwargs = getattr(current, "kwargs", None)
        wrapped = kwargs.get("error") if isinstance(kwargs, dict) else None
        context = None if current.__suppress_context__ else current.__context__
        for inner in (current.__cause__, context, getattr(current, "os_error", None),
                      getattr(current, "inner_exception", None), wrapped):
            if isinstance(inner, BaseException):
                todo.append(inner)


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
        return answer_retry(status if isinstance(status, int) else 0, code,
                            meta.get("HTTPHeaders"), f"S3 answered {code or status}")
    if isinstance(err, (ConnectionClosedError, EndpointConnectionError, IncompleteReadError,
                        ReadTimeoutError, ResponseStreamingError)):
        return Retry(f"the connection broke ({type(err).__name__})")
    return _broken_connection(err)


def gcs_transient(err: BaseException) -> Retry | None:
    """gcsfs errors worth another attempt (5xx, 429, broken bodies)."""
    code = getattr(err, "code", None)
    if type(err).__name__ == "HttpError" and isinstance(code, int):
        return answer_retry(code, None, None, f"GCS answered {code}")
    return _broken_connection(err)


def azure_transient(err: BaseException) -> Retry | None:
    """azure-core errors worth another attempt (5xx, 429, ``ServerBusy``, broken bodies)."""
    from azure.core.exceptions import (
        HttpResponseError,
        IncompleteReadError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(err, (IncompleteReadError, ServiceResponseError, ServiceRequestError)):
        return Retry(f"the connection broke ({type(err).__name__})")
    if isinstance(err, HttpResponseError):
        status = err.status_code if isinstance(err.status_code, int) else 0
        return answer_retry(status, getattr(err, "error_code", None),
                            getattr(err.response, "headers", None),
                            f"Azure answered {status}")
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
