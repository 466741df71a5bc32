"""Retries: which failures are worth another attempt, how long to wait, and when to give up.

One attempt is a coroutine. It raises ``Retry`` for a transient failure (or a ``classify``
function turns a backend's exception into one); anything else ends the read at once. Between
attempts the wait is full-jitter exponential backoff (AWS's "exponential backoff and jitter"),
or exactly what the server asked for with ``Retry-After``; nothing is attempted after the
deadline, and a ``Retry-After`` that ends past it gives up at once instead of sleeping in vain.

Never retried: 400, 401, 403, 404, 412 (and every other 4xx but 408 and 429): asking again gets
the same answer, and a 412 means the object changed, which no retry can undo.

For the cloud readers (``fetch._s3``/``_gcs``/``_azure``, one GET each over the shared pool)
three pieces, each a line at the place it belongs::

    reader = retry.retrying({"s3": _s3, "gcs": _gcs, "azure": _azure}[route.backend])
    # in _raise_for, before the final OSError (needs the response headers):
    retry.raise_if_transient(status, headers, code)
    # after ``data = await resp.read()`` of a 200/206:
    retry.check_body(resp.status, resp.headers, data)

``retrying`` re-runs the whole reader (same range, same pinned version) when it raises
``Retry`` or an exception ``transient`` recognises (a broken connection, an SDK's 5xx).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .errors import _rebuild

__all__ = ["GaveUp", "Retry", "retry_after", "retrying", "run", "status_retryable"]

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


class Retry(Exception):
    """Raised by an attempt: this failure is transient. ``status`` is the HTTP status if
    there was one; ``retry_after`` the wait the server asked for (seconds)."""

    def __init__(self, reason: str, *, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class GaveUp(ConnectionError):
    """Every attempt failed with a transient error; ``last_status`` is the last HTTP status."""

    def __init__(self, message: str, *, attempts: int, last_status: int | None = None,
                 uri: str | None = None):
        super().__init__(message)
        self.attempts = attempts
        self.last_status = last_status
        self.uri = uri

    def __str__(self) -> str:
        return self.args[0]

    def __reduce__(self):
        return _rebuild, (type(self), self.args, self.__dict__)


#: How ``run`` waits between attempts (tests replace it to see the waits).
_sleep = asyncio.sleep


def status_retryable(status: int) -> bool:
    return status in RETRYABLE_4XX or (500 <= status <= 599 and status not in FINAL_5XX)


def retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now(), 0.0)


def error_document_code(body: bytes, content_type: str | None) -> str | None:
    """The ``<Code>`` of an XML error document in a 2xx body, if it is one."""
    if not content_type or "xml" not in content_type.lower() or len(body) > 64 * 1024:
        return None
    m = _ERROR_DOCUMENT.match(body)
    return m.group(1).decode("ascii") if m else None


def backoff(attempt: int, base: float, cap: float, rng: Callable[[], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt - 1)))."""
    return rng() * min(cap, base * 2 ** (attempt - 1))


async def run(attempt: Callable[[int], Awaitable[T]], *, what: str, max_attempts: int,
              base: float, cap: float, deadline: float,
              classify: Callable[[BaseException], Retry | None] | None = None,
              give_up: Callable[[str, int, Retry], BaseException] | None = None,
              sleep: Callable[[float], Awaitable[Any]] | None = None,
              rng: Callable[[], float] = random.random,
              clock: Callable[[], float] = time.monotonic) -> T:
    """``await attempt(n)`` for n = 1, 2, ... until it returns, fails for good, or the budget
    (``max_attempts``, ``deadline`` on ``clock``) runs out; then ``give_up`` builds the error
    (default ``GaveUp``), chained to the last failure."""
    n = 0
    while True:
        n += 1
        try:
            return await attempt(n)
        except Retry as err:
            failure = err
        except Exception as err:
            failure = classify(err) if classify is not None else None
            if failure is None:
                raise
            failure.__cause__ = err
        reason = failure.reason
        if n >= max_attempts:
            raise _give_up(give_up, what, n, failure, reason) from failure.__cause__
        delay = (failure.retry_after if failure.retry_after is not None
                 else backoff(n, base, cap, rng))
        remaining = deadline - clock()
        if delay >= remaining:
            asked = ("asked to retry after " if failure.retry_after is not None
                     else "the next attempt would be in ")
            raise _give_up(give_up, what, n, failure,
                           f"{reason}; {asked}{delay:.3g} s, past the deadline "
                           f"({max(remaining, 0):.3g} s left)") from failure.__cause__
        await (sleep or _sleep)(delay)


def _give_up(give_up, what: str, n: int, failure: Retry, reason: str) -> BaseException:
    if give_up is not None:
        return give_up(what, n, failure, reason)
    plural = "attempt" if n == 1 else "attempts"
    status = f" (last status {failure.status})" if failure.status is not None else ""
    return GaveUp(f"gave up {what} after {n} {plural}{status}: {reason}", attempts=n,
                  last_status=failure.status)


# --------------------------------------------------------------------------- cloud readers

def retrying(reader, classify: Callable[[BaseException], Retry | None] | None = None, *,
             max_attempts: int = 4, base: float = 0.25, cap: float = 10.0,
             deadline: float = 300.0):
    """``reader`` (``async (fs, route, start, end, version, ...) -> Part``) retried on
    ``Retry`` and on what ``classify`` (default ``transient``) calls transient. Every attempt
    re-reads the same range pinned to the same version: a replaced object still fails with
    ``IntegrityError``, which is never retried."""

    async def read(fs, route, *args, **kwargs):
        async def attempt(n: int):
            return await reader(fs, route, *args, **kwargs)

        return await run(attempt, what=f"reading {route.uri}", max_attempts=max_attempts,
                         base=base, cap=cap, deadline=time.monotonic() + deadline,
                         classify=classify or transient)

    read.__name__ = getattr(reader, "__name__", "read")
    read.__wrapped__ = reader
    return read


def raise_if_transient(status: int, headers=None, code: str | None = None) -> None:
    """Raise ``Retry`` if an error answer is worth another attempt (5xx, 408, 429, an S3
    ``SlowDown``/``InternalError`` code), honouring its ``Retry-After``."""
    if status_retryable(status) or code in RETRYABLE_CODES:
        after = retry_after((headers or {}).get("Retry-After"))
        raise Retry(f"HTTP {status}" + (f" {code}" if code else ""), status=status,
                    retry_after=after)


def check_body(status: int, headers, body: bytes) -> None:
    """Raise ``Retry`` for a 2xx body that is not the object: shorter than its
    ``Content-Range`` says, or an XML error document."""
    content_range = headers.get("Content-Range")
    if status == 206 and content_range:
        m = re.match(r"bytes (\d+)-(\d+)/", content_range)
        if m and len(body) < int(m.group(2)) - int(m.group(1)) + 1:
            raise Retry(f"short body: {len(body)} of the "
                        f"{int(m.group(2)) - int(m.group(1)) + 1} bytes of {content_range}")
    code = error_document_code(body, headers.get("Content-Type"))
    if code in RETRYABLE_CODES:
        raise Retry(f"HTTP {status} carrying an error document ({code})", status=status)


def transient(err: BaseException) -> Retry | None:
    """Every backend's transient failures: broken connections and the SDKs' retryable errors."""
    for classify in (_broken_connection, _sdk_transient):
        found = classify(err)
        if found is not None:
            return found
    return None


def _sdk_transient(err: BaseException) -> Retry | None:
    module = type(err).__module__
    if module.startswith("botocore"):
        return s3_transient(err)
    if module.startswith("azure"):
        return azure_transient(err)
    if module.startswith("gcsfs"):
        return gcs_transient(err)
    return None


def _broken_connection(err: BaseException) -> Retry | None:
    import aiohttp

    if isinstance(err, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                        aiohttp.ClientOSError, ConnectionResetError,
                        asyncio.IncompleteReadError)):
        return Retry(f"the connection broke ({type(err).__name__}: {err})")
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
