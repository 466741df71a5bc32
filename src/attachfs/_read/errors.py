"""The one table from what a server, a connection or an SDK said to what attachfs raises.

In the manner of httpx's ``map_exceptions``, every reader hands its failures here:

* ``raise_for_status``: an HTTP answer that is not the object (status and error code, parsed
  from the answer by ``said``) becomes ``Missing`` (a ``FileNotFoundError``),
  ``IntegrityError`` (412), ``Unsatisfiable`` (416: an empty range, not an error), ``Refused``
  (a ``PermissionError``: 401/403, Azure's 409, and the 400s that are refusals: S3's
  ``ExpiredToken``, GCS's requester-pays answer), ``Retry`` when asking again may help (5xx,
  408, 429, ``SlowDown``...), or ``OSError``.
* ``check_body``: a 206 body shorter than its ``Content-Range`` becomes ``Retry``. A 2xx body
  is never parsed as an error document: GetObject's body *is* the object
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html), so an object whose
  content is an XML error document is data; error documents come with non-2xx statuses only.
* ``transient``: an exception another attempt may cure (a broken connection, a stall, an SDK's
  5xx) becomes ``Retry``; anything else is final. One classifier for every backend.
* ``translate``: what failed, in attachfs's terms, naming the URI (redacted), the identity
  used, the status and error code the cloud answered, and the fix (``AccessDenied.hint``) for
  that code and for the operation that failed (``refusal_hint``; the grant an operation needs
  is ``_rules.denied_hint``). docs/troubleshooting.md shows this table.

* ``foreign`` and ``reraise``: the boundary with the libraries underneath. aiohttp's errors
  that are no ``OSError`` (``ClientResponseError`` shows ``url='...'`` whole) and the
  ``ValueError``s of the HTTP stack (a redirect's bad Location) become ``OSError``s naming the
  redacted URI; and a chain that would show what redaction hides (fsspec's
  ``FileNotFoundError(url)``, aiohttp's ``request_info``) is cut: no cause, no context.

What each error code means, with its source:

* S3 (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html):
  ``SignatureDoesNotMatch``, ``InvalidAccessKeyId``, ``InvalidToken``: the signing
  credentials; ``RequestTimeTooSkewed``: the host's clock; ``ExpiredToken`` (400): the session
  credentials expired (the S3 reader refreshes its lease once and retries before it says so);
  ``InvalidObjectState``: an archived object, restore it first (GetObject docs);
  ``AccessDenied`` naming ``kms:`` (https://docs.aws.amazon.com/AmazonS3/latest/userguide/
  troubleshoot-403-errors.html): ``kms:Decrypt`` on the key, in the identity's policy and in
  the key policy; any other ``AccessDenied``: the grant (both sides of it for a direct read),
  and, for a read, that a missing key is a 403 too without ``s3:ListBucket`` (GetObject docs).
* GCS (https://cloud.google.com/storage/docs/json_api/v1/status-codes): a 400 saying the bucket
  is requester pays (https://cloud.google.com/storage/docs/requester-pays) is the
  ``user_project`` opt-in (code ``UserProjectMissing``, as the XML API names it); a 403 is the
  grant (``storage.objects.get``, ``storage.objects.list`` to list; with uniform bucket-level
  access only bucket IAM grants it).
* Azure (https://learn.microsoft.com/rest/api/storageservices/blob-service-error-codes,
  .../common-rest-api-error-codes): ``AuthorizationPermissionMismatch``: the data role;
  ``AuthorizationFailure``: the account's network rules (firewall); ``AuthenticationFailed``:
  the credential itself; ``BlobArchived`` (409): rehydrate first; ``ResourceNotFound`` (404) to
  an anonymous read: the container may be private (Azure does not say it exists).

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
import html
import json
import re
import socket
import ssl
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

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
from .._rules import Operation, denied_hint
from .part import ContentRange
from .retry import Retry, retry_after_in

if TYPE_CHECKING:
    from .._rules import Route

__all__ = ["RETRYABLE_CODES", "THROTTLING_CODES", "Missing", "Refused", "Said", "Unsatisfiable",
           "answer_retry", "changed", "check_body", "foreign", "guarded", "permanent_cause",
           "raise_for_status", "refusal_hint", "reraise", "said", "shows_hidden",
           "status_retryable", "transient", "translate"]

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
#: 400 answers that are refusals of the credentials or of the request's billing, not
#: malformed requests: S3's expired session token, GCS's requester-pays bucket.
REFUSED_400 = frozenset({"ExpiredToken", "TokenRefreshRequired", "InvalidToken",
                         "UserProjectMissing"})
#: Fields of an S3 error document worth keeping (never StringToSign or CanonicalRequest: they
#: carry the session token).
_KEPT_FIELDS = ("Region", "StorageClass")
_XML_FIELD = re.compile(r"<(\w+)>([^<]{0,1024})</\1>")
_KMS_KEY = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(?:key|alias)/[A-Za-z0-9/_-]+")


class Unsatisfiable(Exception):
    """A 416: the range starts at or past the end of the object."""


@dataclass(frozen=True)
class Said:
    """What a cloud answered instead of the object: the status, its error code, its message
    (redacted, cut short; kept for the hints, never shown) and the few fields that matter."""

    status: int
    code: str | None = None
    message: str = field(default="", repr=False)
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def detail(self) -> str:
        return f"HTTP {self.status}" + (f" {self.code}" if self.code else "")

    def field(self, name: str) -> str | None:
        return dict(self.fields).get(name)


def said(backend: str, status: int, headers: Mapping[str, str], body: bytes) -> Said:
    """Parse an error answer: Azure's ``x-ms-error-code`` header, the XML error document of S3,
    Azure and the GCS XML API (``<Code>``, ``<Message>``), or GCS's JSON error (the first
    error's ``reason``, and ``message``)."""
    text = body[:16384].decode("utf-8", "replace")
    code, message, fields = headers.get("x-ms-error-code"), "", {}
    if text.lstrip().startswith("{"):
        try:
            error = json.loads(text).get("error", {})
            message = str(error.get("message", ""))
            reasons = error.get("errors") or [{}]
            code = code or reasons[0].get("reason")
        except (ValueError, AttributeError, TypeError, IndexError):
            pass
    else:
        found = {name: html.unescape(value) for name, value in _XML_FIELD.findall(text)}
        code = code or found.get("Code")
        message = found.get("Message", "")
        fields = {k: found[k] for k in _KEPT_FIELDS if k in found}
    if backend == "gcs" and status == 400 and "requester pays" in message.lower():
        code = "UserProjectMissing"  # the XML API's name for the same answer
    return Said(status, code, redact_text(message)[:600], tuple(sorted(fields.items())))


class CloudError(OSError):
    """An answer of the cloud that is not the object, with what it said (``said``);
    ``translate`` says it in attachfs's terms."""

    def __init__(self, message: str, said: Said):
        super().__init__(message)
        self.said = said

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.args[0], self.said)

    def __str__(self) -> str:
        return str(self.args[0])


class Refused(CloudError, PermissionError):
    """The cloud refused the request (see ``raise_for_status``)."""


class Missing(CloudError, FileNotFoundError):
    """The cloud answered 404."""


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


def changed(uri: str, version: str | None) -> IntegrityError:
    shown = redact(uri)
    return IntegrityError(
        f"{shown} changed while it was being read (it is no longer version {version}); "
        "read it again from the start", uri=shown)


def raise_for_status(uri: str, backend: str, status: int, code: str | Said | None,
                     version: str | None, headers: Mapping[str, str] | None = None) -> NoReturn:
    """Raise what a failed GET of ``uri`` means (see the module docstring). ``code`` is the
    error code, or everything the answer said (``said``)."""
    answer = code if isinstance(code, Said) else Said(status, code)
    detail = answer.detail
    shown = redact(uri)
    if status == 404:
        raise Missing(f"No such attachment: {shown} ({detail})", answer)
    if status == 412:
        if version is None:
            raise OSError(f"HTTP 412 Precondition Failed for {shown}")
        raise changed(uri, version)
    if status == 416:
        raise Unsatisfiable()
    if status in (401, 403) or (backend == "azure" and status == 409) or (
            status == 400 and answer.code in REFUSED_400):
        raise Refused(f"{backend} refused to read {shown} ({detail})", answer)
    again = answer_retry(status, answer.code, headers, detail)
    if again is not None:
        raise again
    raise OSError(f"{backend} failed to read {shown} ({detail}; not retried)")


def check_body(status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``Retry`` for a 206 body shorter than its ``Content-Range`` says. The body itself
    is never inspected: whatever a 2xx carries is the object."""
    announced = ContentRange.parse(headers.get("Content-Range")) if status == 206 else None
    if announced is not None and len(body) < announced.length:
        raise Retry(f"short body: {len(body)} of the {announced.length} bytes of "
                    f"{headers.get('Content-Range')}")


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

async def guarded(route: Route, awaitable: Awaitable[T], operation: Operation = "read") -> T:
    """``await awaitable``, its failure said in attachfs's terms (``translate``)."""
    try:
        return await awaitable
    except Exception as err:
        reraise(route, err, operation)


def reraise(route: Route, err: Exception, operation: Operation = "read") -> NoReturn:
    """Raise ``err`` translated (``foreign``, then ``translate``), chained to the original
    unless that chain would show what redaction hides of the URI (``shows_hidden``): then the
    chain is cut (no cause, no context) and the message alone says what failed, redacted."""
    new = translate(route, foreign(route, err), operation)
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


def translate(route: Route, err: BaseException, operation: Operation = "read") -> BaseException:
    """Say what failed in attachfs's terms: the URI (redacted: a signed URL's query is its
    credential), the identity used, what the cloud answered (status and error code), and what
    to change for ``operation`` to succeed."""
    shown = redact(route.uri)
    if isinstance(err, AccessDenied):
        if err.uri is not None:
            return err
        # Raised by the credential layer, which does not know the URI being read.
        return AccessDenied(f"{err} (reading {shown}); to fix: {err.hint}",
                            uri=shown, identity=err.identity, hint=err.hint)
    if isinstance(err, (AccessRefused, ReadOnlyError)):
        return err
    answer = said_in(err)
    if isinstance(err, FileNotFoundError):
        if isinstance(err, AttachError) and err.uri and answer is None:
            return err  # ours already names the URI and the status
        detail = answer.detail if answer is not None else None
        hint = _missing_hint(route, answer)
        return not_found(shown, f"{detail}; {hint}" if detail and hint else detail or hint)
    if is_gcs_forbidden(route.backend, err) or isinstance(err, PermissionError):
        who = route.identity or f"the {route.mode} identity"
        hint = refusal_hint(route, answer, operation)
        answered = f" ({answer.detail})" if answer is not None else ""
        return AccessDenied(f"{route.backend} refused to {operation} {shown} as {who}"
                            f"{answered}; to fix: {hint}", uri=shown, identity=route.identity,
                            hint=hint)
    return err


def said_in(err: BaseException) -> Said | None:
    """What the cloud answered, from ``err`` or the errors it was raised from: attachfs's own
    readers (``CloudError``), botocore (s3fs), azure-core (adlfs) or gcsfs."""
    seen: BaseException | None = err
    for _ in range(8):  # a short chain: raised from, or while handling, the SDK's error
        if seen is None:
            return None
        if isinstance(seen, CloudError):
            return seen.said
        response = getattr(seen, "response", None)
        if type(seen).__module__.startswith("botocore") and isinstance(response, dict):
            error = response.get("Error", {})
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return Said(int(status), error.get("Code"), redact_text(str(error.get("Message",
                                                                                  "")))[:600])
        if type(seen).__module__.startswith("azure") and isinstance(
                getattr(seen, "status_code", None), int):
            return Said(getattr(seen, "status_code", 0), getattr(seen, "error_code", None))
        if type(seen).__name__ == "HttpError" and isinstance(getattr(seen, "code", None), int):
            message = redact_text(str(getattr(seen, "message", "") or seen))[:600]
            code = "UserProjectMissing" if "requester pays" in message.lower() else None
            return Said(getattr(seen, "code", 0), code, message)
        seen = seen.__cause__ or seen.__context__
    return None


def _credential_source(route: Route) -> str:
    """Where the signing credentials of an S3 request come from, to be fixed there."""
    source = ("the platform's AWS credentials (the default chain: AWS_* environment variables, "
              "a profile, an instance role; or platform.aws.profile)")
    if route.grant.kind == "aws-assume-role":
        return f"{source}, from which {route.grant.role_arn} is assumed"
    return source


def refusal_hint(route: Route, answer: Said | None, operation: Operation = "read") -> str:
    """The fix for a refusal, by what the cloud said (the table in the module docstring); the
    grant ``operation`` needs (``_rules.denied_hint``) when the code is a plain denial."""
    code = answer.code if answer is not None else None
    loc = route.location
    if route.backend == "s3":
        source = _credential_source(route)
        if code == "SignatureDoesNotMatch":
            return (f"the secret access key that signed the request does not belong to its "
                    f"access key id: fix {source} (a proxy that rewrites requests also breaks "
                    "signatures)")
        if code == "InvalidAccessKeyId":
            return (f"AWS does not know the access key id (deleted, deactivated, or of another "
                    f"partition): fix {source}")
        if code == "InvalidToken":
            return f"the session token is malformed or belongs to another access key: fix {source}"
        if code in ("ExpiredToken", "TokenRefreshRequired"):
            return (f"the credentials had expired, and so had the ones fetched again once: "
                    f"renew {source} (a session token set in the environment or a profile is "
                    "not renewed by attachfs)")
        if code == "RequestTimeTooSkewed":
            return ("this host's clock is more than 15 minutes off AWS's, and every signature "
                    "carries the time: synchronise the clock (NTP)")
        if code == "InvalidObjectState":
            storage = answer.field("StorageClass") if answer is not None else None
            return (f"the object is archived ({storage or 'an archive storage class'}): restore "
                    f"it first (`aws s3api restore-object --bucket {loc.bucket} --key "
                    f"{loc.key!r} --restore-request Days=1`), then read it once the restore is "
                    "done")
        if code == "AccessDenied" and answer is not None and "kms:" in answer.message:
            return _kms_hint(route, answer)
    elif route.backend == "gcs":
        if code == "UserProjectMissing":
            return (f"gs://{loc.bucket} is a requester pays bucket, so the read must name the "
                    f"project billed: opt in with user_project = \"PROJECT\" on the claim "
                    f"(or on tenants.{route.tenant}.gcp); the identity reading needs "
                    "serviceusage.services.use on that project")
    elif route.backend == "azure":
        if code == "AuthorizationFailure":
            # https://learn.microsoft.com/azure/storage/common/storage-network-security
            return (f"the network rules (firewall) of the storage account {loc.account} refuse "
                    "the address the request came from: allow the platform's egress address "
                    "(its proxy's, platform.http.proxy) in the account's networking settings, "
                    "or reach it through a private endpoint")
        if code in ("AuthenticationFailed", "InvalidAuthenticationInfo"):
            return ("Azure did not accept the request's credential: a token of another cloud "
                    "or directory, or a clock more than 15 minutes off")
        if code == "BlobArchived":
            # https://learn.microsoft.com/azure/storage/blobs/archive-rehydrate-overview
            return ("the blob is in the Archive tier: rehydrate it to the Hot or Cool tier "
                    "first (Set Blob Tier, or copy it to an online tier; it takes hours), then "
                    "read it")
    return denied_hint(route, operation)


def _kms_hint(route: Route, answer: Said) -> str:
    """SSE-KMS: reading needs kms:Decrypt on the key, allowed by the reader's own policy and by
    the key policy (https://docs.aws.amazon.com/kms/latest/developerguide/
    key-policy-overview.html)."""
    found = _KMS_KEY.search(answer.message)
    key = found.group(0) if found else "the object's KMS key"
    if route.grant.kind == "aws-assume-role":
        who, policy = route.grant.role_arn, f"the permission policy of {route.grant.role_arn}"
    else:
        who, policy = "the platform's AWS identity", "the platform identity's own IAM policy"
    return (f"the object is encrypted with {key}: allow kms:Decrypt on {key} for {who} in "
            f"{policy} and in the key policy of {key} (its owner's; see `attachfs policy aws "
            "--kms-key`)")


def _missing_hint(route: Route, answer: Said | None) -> str | None:
    """Azure answers an anonymous read of a private container 404 ``ResourceNotFound``, as if
    it did not exist: say that it may be private, and how to read it as the tenant."""
    if route.backend == "azure" and route.grant.kind == "anonymous" and answer is not None \
            and answer.code == "ResourceNotFound":
        tenant = route.tenant or "NAME"
        return (f"or the container is private (Azure answers an anonymous read of a private "
                f"container so): connect the tenant's Azure directory, tenants.{tenant}.azure = "
                "{ tenant_id = \"...\" }")
    return None
