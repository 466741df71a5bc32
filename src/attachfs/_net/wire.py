"""HTTP/1.1 for the read path's direct cloud requests, each body received into its final buffer.

aiohttp hands a body over as the chunks its socket reads returned, each copied once more by its
parser; joining them into one ``bytes`` copies every byte a third time, and handing each chunk
over through its stream reader costs more than the copies. An answer that announces its length
(every 206 of S3, GCS and Azure) needs none of that: its body is received straight into the
``bytes`` object handed on (``asyncio.BufferedProtocol`` and ``new_buffer``), one copy from the
socket or the TLS layer in all, and on a fast connection the socket wakes the loop once per
``LOWAT`` bytes. A 1 GiB read of 8 MiB ranges from a loopback server, on one loop: ~0.78 s
through aiohttp, ~0.45 s received in place, ~0.17 s with the wake-up mark. The buffers come
from ``buffers``: pages mapped at once, and reused once nobody holds them (``seal`` when a
body is complete).

This is deliberately a small client, for requests whose shape attachfs controls: a ``GET`` or
``HEAD`` without a body, sent straight to the service (never through a proxy: those go through
aiohttp), answered by an HTTP/1.1 server. What it sends and how it reads an answer follow RFC
9112:

- the request line carries the URL's path and query as given (already encoded); ``Host`` is the
  URL's host, with its port only when it is not the scheme's default, as aiohttp sends it (and
  as SigV4 signs it); ``Accept: */*`` and ``Accept-Encoding: gzip, deflate`` as aiohttp sends
  them, so a stored-gzip object is answered as stored. A header name or value with CR, LF or
  NUL is refused before anything is sent: an ``ETag`` a server sent must not become a second
  request line;
- an answer's body is framed by ``Transfer-Encoding: chunked`` (which overrides any
  ``Content-Length``), else ``Content-Length`` (several different ones are refused), else it
  runs to the connection's end; a ``HEAD`` answer, a 204 and a 304 have none; interim 1xx
  answers are skipped;
- a connection goes back to the pool only when its answer was read to its end, the server did
  not ask to close it (``Connection: close``, or HTTP/1.0 without ``keep-alive``) and nothing
  arrived after it; an idle one is closed after ``KEEPALIVE_SECONDS`` or when the server closes
  it. A pooled connection that the server closed just as it was reused (the request got no
  byte of answer) is replaced by a new one once, as urllib3 and botocore do for a GET.

Failures are aiohttp's own exception types, so that what classifies and translates aiohttp's
errors (retry or not, the hint a message carries) sees no difference: ``ClientConnectorError``
and its DNS, certificate and TLS kinds when connecting, ``ServerDisconnectedError`` when the
connection ends before an answer's head, ``ClientPayloadError`` when it ends inside a body or
the answer cannot be parsed. No timeout is kept here but the caller's: ``connect_timeout``
around connecting, ``read_timeout`` as the longest wait for any byte (``Stalled``), and
``min_rate`` over each ``read_timeout`` window of a body (``Stalled`` with the rate seen).
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import yarl
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy

from .buffers import new_buffer, seal

try:
    import fcntl
    import termios
except ImportError:  # not POSIX: bytes waiting in a socket are not known
    pass

__all__ = ["KEEPALIVE_SECONDS", "Pool", "Response", "Stalled"]

#: Seconds an idle pooled connection is kept (aiohttp's default keep-alive).
KEEPALIVE_SECONDS = 15.0
#: Longest answer head accepted (status line and headers), in bytes.
MAX_HEAD = 64 * 1024
#: The receive buffer for heads and for bodies handed over as they arrive.
_SCRATCH = 256 * 1024
#: What is received at most while waiting for an answer's head: a head and the start of its
#: body, parsed and copied from where they were received. Large enough for a whole head and a
#: 64 KiB body in one receive (one wake-up of the loop, not two); small enough that a large
#: body received in place is copied once more only for its first few bytes.
_HEAD_READ = 80 * 1024
#: A streamed body pauses its socket past this many unread bytes.
_HIGH_WATER = 4 * 2**20
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY = frozenset({204, 304})
_BAD = ("\r", "\n", "\0")
_FRAMING = frozenset({"connection", "transfer-encoding", "content-length"})
#: While a body is received in place over a fast connection, the socket wakes the loop only
#: once this many of its bytes are waiting (``SO_RCVLOWAT``), or the rest of the body is, or
#: the connection ends: one wake-up per ~120 KiB instead (what loopback delivers between two
#: wake-ups) cost more in the loop than the copies. Bodies shorter than it are not affected.
LOWAT = 256 * 1024
#: A connection is fast when its last body of ``_RATE_SAMPLE`` bytes or more arrived at this
#: rate or more (from its head to its last byte). Only a fast connection waits for ``LOWAT``
#: bytes: on a slower one (a cloud's 50-100 MB/s per connection) the loop is not what limits
#: it, and holding bytes back in the socket slowed a rate-capped link by a fifth.
FAST_BODY = 200 * 2**20
_RATE_SAMPLE = 2**20
#: TLS reads ahead of what it decrypts: at most a record (16 KiB and its overhead) may sit
#: undecrypted in its buffer, so a TLS body asks for that much less than its remaining bytes.
_TLS_SLACK = 32 * 1024

_ssl_context: ssl.SSLContext | None = None


class Stalled(asyncio.TimeoutError):
    """No byte for ``read_timeout`` seconds (``rate`` None), or fewer than ``min_rate`` bytes
    per second over a window of it (``rate``: what was seen); ``phase`` says where."""

    def __init__(self, phase: str, rate: float | None = None) -> None:
        super().__init__(phase)
        self.phase = phase
        self.rate = rate


def _context() -> ssl.SSLContext:
    """The TLS context of every connection: the system's trust store, as aiohttp's default."""
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class _Conn(asyncio.BufferedProtocol):
    """One connection and the answer it is receiving."""

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0  # when it went back to the pool
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The stall timer: armed once and moved on lazily (``_check_stall``), so a wait costs
        #: no timer of its own.
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0  # when the pending wait times out
        self._scratch = bytearray(_SCRATCH)
        self._view = memoryview(self._scratch)
        self._waiter: asyncio.Future[None] | None = None
        self.gate: asyncio.Semaphore | None = None
        self._sock: Any = None  # the transport's socket (asyncio's TransportSocket)
        self._tls = False
        self._lowat = 1  # the socket's SO_RCVLOWAT
        self.fast = False  # its last large body arrived at FAST_BODY or more
        self._began = 0.0  # when the body being received in place began
        self._reset(head_only=False)

    def _reset(self, *, head_only: bool) -> None:
        self.state = "idle"  # idle, head, body, done
        self.head_only = head_only
        self._head = bytearray()
        self.got_any = False
        self.status = 0
        self.headers: CIMultiDictProxy[str] | None = None
        self.keep_alive = True
        self.length: int | None = None  # body bytes still to come (None: to the end)
        self.chunked: _Dechunk | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._fill: memoryview | None = None
        self._filled = 0
        self.received = 0  # body bytes received so far (progress for the timeouts)
        self.ended = False
        self._error: BaseException | None = None
        #: Whether an answer of this status is received in place (``Response.read``).
        self.in_place: Callable[[int], bool] | None = None
        #: Where the caller wants a body of exactly its length received (else a new buffer).
        self.into: memoryview | None = None
        self.target: bytes | bytearray | memoryview | None = None

    # -- asyncio's side ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._loop = asyncio.get_running_loop()
        self._sock = transport.get_extra_info("socket")
        self._tls = transport.get_extra_info("sslcontext") is not None
        self._lowat = 1

    def _set_lowat(self, n: int) -> None:
        """Wake the loop only once ``n`` bytes wait in the socket (1: on any byte)."""
        if n == self._lowat or self._sock is None:
            return
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, n)
        except (OSError, AttributeError):  # not supported here: wake on every byte
            self._sock = None
            return
        self._lowat = n

    def _aim(self) -> None:
        """The low-water mark for the rest of the body being received in place."""
        assert self._fill is not None
        left = len(self._fill) - self._filled - (_TLS_SLACK if self._tls else 0)
        self._set_lowat(min(LOWAT, left) if left > 1 else 1)

    def pending(self) -> int:
        """Bytes waiting in the socket, not yet received (0 where that is not known)."""
        try:
            fd = self._sock.fileno() if self._sock is not None else -1  # -1 once closed
            if fd < 0:
                return 0
            return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])
        except (OSError, NameError):
            return 0

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._fill is not None:
            return self._fill[self._filled:]
        if self.state == "head":  # a head and the start of its body: the rest goes in place
            return self._view[:_HEAD_READ]
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.got_any = True
        if self._fill is not None:
            self._filled += nbytes
            self.received += nbytes
            if self.length is not None:
                self.length -= nbytes
            if self._filled == len(self._fill):
                if self.received >= _RATE_SAMPLE:
                    took = time.monotonic() - self._began
                    self.fast = took <= 0 or self._filled / took >= FAST_BODY
                self._fill = None
                self._set_lowat(1)
                self._end_body()
            elif len(self._fill) - self._filled < self._lowat:
                self._aim()
            return
        if self.state == "head":
            # The common answer: its whole head in this one receive. It is parsed where it
            # was received, and the body's first bytes copied from there once.
            end = -1 if self._head else self._scratch.find(b"\r\n\r\n", 0, nbytes)
            if 0 <= end <= MAX_HEAD:
                self._answer(bytes(self._view[:end]), self._view[end + 4:nbytes])
                if self.state == "head":  # an interim answer: the real one follows
                    self._on_head(b"")
            else:
                self._on_head(self._view[:nbytes])
        elif self.state == "body":
            self._on_body(bytes(self._view[:nbytes]))
        else:  # bytes nobody asked for: the connection cannot be trusted with another request
            self._broken(aiohttp.ClientPayloadError("the server sent bytes after its answer"))

    def eof_received(self) -> bool:
        if self.state == "body" and self.length is None and self.chunked is None:
            self._end_body()  # a body that runs to the connection's end has ended
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        if self.state == "body" and self.length is None and self.chunked is None:
            self._end_body()
            return
        if self.state == "head":
            err: BaseException = aiohttp.ServerDisconnectedError()
        elif self.state == "body":
            err = aiohttp.ClientPayloadError(
                "the connection ended inside the answer's body"
                + (f" ({self.length} byte(s) short)" if self.length is not None else ""))
        else:
            return
        if exc is not None:
            err.__cause__ = exc
        self._broken(err)

    # -- parsing ----------------------------------------------------------------------------

    def _on_head(self, data: bytes | memoryview) -> None:
        """A head cut across receives (or following an interim answer): gathered, then
        parsed."""
        self._head += data
        while self.state == "head":
            end = self._head.find(b"\r\n\r\n")
            if end < 0 or end > MAX_HEAD:
                if len(self._head) > MAX_HEAD:
                    self._broken(aiohttp.ClientPayloadError(
                        f"the answer's head is longer than {MAX_HEAD} bytes"))
                return
            head, rest = bytes(self._head[:end]), bytes(self._head[end + 4:])
            self._head = bytearray()
            self._answer(head, rest)

    def _answer(self, head: bytes, rest: bytes | memoryview) -> None:
        """A whole head, and what followed it in the same receive (valid only during this
        call: it may be a view of the receive buffer)."""
        try:
            self._parse_head(head)
        except ValueError as err:
            self._broken(aiohttp.ClientPayloadError(f"the answer cannot be parsed: {err}"))
            return
        if 100 <= self.status < 200:  # an interim answer: the real one follows
            self._head = bytearray(rest)
            return
        self.state = "body"
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.head_only or self.status in _NO_BODY or self.length == 0:
            self._end_body()
            if rest:
                self._broken(aiohttp.ClientPayloadError(
                    "the server sent bytes after its answer"))
        elif (self.length is not None and self.chunked is None
                and self.in_place is not None and self.in_place(self.status)):
            self._start_in_place(rest)
        elif rest:
            self._on_body(bytes(rest))

    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("utf-8", "surrogateescape").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or not (code.isdigit() and len(code) == 3):
            raise ValueError(f"bad status line {lines[0][:80]!r}")
        self.status = int(code)
        pairs = []
        framing: dict[str, list[str]] = {}  # the headers that frame the body, by lower name
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or line[0] in " \t":
                raise ValueError(f"bad header line {line[:80]!r}")
            value = value.strip(" \t")
            pairs.append((name, value))
            lower = name.lower()
            if lower in _FRAMING:
                framing.setdefault(lower, []).append(value)
        headers = CIMultiDict(pairs)
        self.headers = CIMultiDictProxy(headers)
        connection = ",".join(framing.get("connection", ())).lower()
        self.keep_alive = ("close" not in connection
                           and (version == "HTTP/1.1" or "keep-alive" in connection))
        codings = ",".join(framing.get("transfer-encoding", ()))
        lengths = {v.strip() for v in ",".join(framing.get("content-length", ())).split(",")
                   if v.strip()}
        if codings:
            if codings.rsplit(",", 1)[-1].strip().lower() != "chunked":
                self.length, self.keep_alive = None, False  # runs to the connection's end
            else:
                self.chunked = _Dechunk()
                self.keep_alive = self.keep_alive and not lengths  # both: a smuggling shape
        elif lengths:
            if len(lengths) > 1 or not next(iter(lengths)).isdigit():
                raise ValueError(f"bad Content-Length {sorted(lengths)!r}")
            self.length = int(next(iter(lengths)))
        else:
            self.length, self.keep_alive = None, False

    def _on_body(self, data: bytes) -> None:
        if self.chunked is not None:
            try:
                pieces, done = self.chunked.feed(data)
            except ValueError as err:
                self._broken(aiohttp.ClientPayloadError(f"bad chunked body: {err}"))
                return
            for piece in pieces:
                self._push(piece)
            if done:
                self._end_body(extra=self.chunked.extra)
            return
        if self.length is not None:
            if len(data) > self.length:
                self._broken(aiohttp.ClientPayloadError(
                    "the server sent more than the Content-Length it announced"))
                return
            self.length -= len(data)
        self._push(data)
        if self.length == 0:
            self._end_body()

    def _push(self, data: bytes) -> None:
        if not data:
            return
        self.received += len(data)
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def _end_body(self, extra: bytes = b"") -> None:
        self.ended = True
        self.state = "done"
        if extra:
            self._broken(aiohttp.ClientPayloadError("the server sent bytes after its answer"))
            return
        self._wake()

    def _broken(self, err: BaseException) -> None:
        self.keep_alive = False
        if self._error is None:
            self._error = err
        self.state = "broken"
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the consumer's side ----------------------------------------------------------------

    async def _wait(self, phase: str, read_timeout: float, min_rate: float = 0.0) -> None:
        """Until something arrives (or the answer ends or breaks), at most ``read_timeout``."""
        loop = self._loop
        assert loop is not None
        self._waiter = waiter = loop.create_future()
        before = self.received
        start = loop.time()
        self._deadline = deadline = start + read_timeout
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline, self._check_stall)
        try:
            await waiter
        except asyncio.TimeoutError:
            seen = self.received - before
            if self._lowat > 1:  # bytes below the low-water mark have arrived all the same
                seen += self.pending()
                self._set_lowat(1)
            rate = seen / max(loop.time() - start, 1e-9)
            if not seen:
                raise Stalled(phase) from None
            if rate < min_rate:
                raise Stalled(phase, rate) from None
        finally:
            self._waiter = None
        self._raise()

    def _check_stall(self) -> None:
        """The stall timer: time out the pending wait if its deadline passed, else move on to
        that deadline (a wait begun since the timer was armed); with no wait pending, stop."""
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self._loop is None:
            return
        if self._loop.time() >= self._deadline:
            waiter.set_exception(asyncio.TimeoutError())
        else:
            self._timer = self._loop.call_at(self._deadline, self._check_stall)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    async def head(self, read_timeout: float) -> None:
        while self.state == "head":
            await self._wait("response", read_timeout)
        self._raise()

    async def readany(self, read_timeout: float) -> bytes:
        """The next piece of the body as it arrived; ``b""`` at its end."""
        while not self._chunks:
            self._raise()
            if self.ended:
                return b""
            await self._wait("body", read_timeout)
        data = self._chunks.popleft()
        self._buffered -= len(data)
        if self._paused and self._buffered <= _HIGH_WATER // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def _start_in_place(self, rest: bytes | memoryview) -> None:
        """Receive the rest of this body (its ``length`` bytes) straight into its buffer."""
        assert self.length is not None
        length = self.length
        if len(rest) > length:
            self._broken(aiohttp.ClientPayloadError(
                "the server sent more than the Content-Length it announced"))
            return
        into = self.into if self.into is not None and len(self.into) == length else None
        self.into = None  # the caller's: not kept past this answer
        if len(rest) == length:  # all of it came with the head
            if into is not None:
                into[:] = rest
                self.target = into
            else:
                self.target = bytes(rest)
            self.received += length
            self.length = 0
            self._end_body()
            return
        if into is not None:
            self.target = view = into
        else:
            self.target, view = new_buffer(length)
        view[:len(rest)] = rest
        self.received += len(rest)
        self.length -= len(rest)
        if not self.length:
            self._end_body()
            return
        self._fill, self._filled = view[len(rest):], 0
        self._began = time.monotonic()
        if self.fast and self.length > LOWAT:
            self._aim()

    async def receive(self, read_timeout: float, min_rate: float
                      ) -> bytes | bytearray | memoryview:
        """The body being received in place, once all of it is. Each wait is one
        ``read_timeout`` window (nothing wakes this before the body's end): fewer than
        ``min_rate`` bytes per second in one is too slow, none at all a stall."""
        try:
            while not self.ended:
                self._raise()
                await self._wait("body", read_timeout, min_rate)
            self._raise()
        except BaseException:
            self._fill = self.target = None  # never handed on unless every byte arrived
            self._set_lowat(1)
            raise
        target, self.target = self.target, None
        assert target is not None
        seal(target)  # every byte is in, and this connection writes no more into it
        return target


class _Dechunk:
    """A chunked body (RFC 9112 section 7.1), fed as it arrives."""

    def __init__(self) -> None:
        self._raw = bytearray()
        self._left = -1  # data bytes left in the current chunk; -1: a size line is next
        self._trailers = False
        self.extra = b""

    def feed(self, data: bytes) -> tuple[list[bytes], bool]:
        out: list[bytes] = []
        if self._left > 0 and not self._raw:  # the common case: inside a chunk's data
            take = data[:self._left]
            out.append(take)
            self._left -= len(take)
            data = data[len(take):]
        self._raw += data
        while True:
            if self._trailers:  # trailer lines, up to an empty one
                end = self._raw.find(b"\r\n")
                if end < 0:
                    if len(self._raw) > MAX_HEAD:
                        raise ValueError(f"trailers longer than {MAX_HEAD} bytes")
                    return out, False
                line = bytes(self._raw[:end])
                del self._raw[:end + 2]
                if not line:
                    self.extra = bytes(self._raw)
                    return out, True
                continue
            if self._left > 0:
                take = bytes(self._raw[:self._left])
                del self._raw[:len(take)]
                self._left -= len(take)
                out.append(take)
                if self._left:
                    return out, False
            if self._left == 0:  # the CRLF that ends a chunk's data
                if len(self._raw) < 2:
                    return out, False
                if self._raw[:2] != b"\r\n":
                    raise ValueError("a chunk is longer than its size")
                del self._raw[:2]
                self._left = -1
            end = self._raw.find(b"\r\n")
            if end < 0:
                if len(self._raw) > 4096:
                    raise ValueError("a chunk size line is too long")
                return out, False
            size_text = bytes(self._raw[:end]).split(b";", 1)[0].strip()
            del self._raw[:end + 2]
            if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                raise ValueError(f"bad chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if size == 0:
                self._trailers = True
            else:
                self._left = size


class Response:
    """An answer's status and headers; its body is read with ``read`` when it is received in
    place (``in_place``), else with ``readany`` (as the ``content`` of an aiohttp answer is);
    ``release`` hands the connection back, or closes it if the body was not read to its end."""

    def __init__(self, pool: Pool, conn: _Conn, read_timeout: float, min_rate: float) -> None:
        self._pool = pool
        self._conn = conn
        self._read_timeout = read_timeout
        self._min_rate = min_rate
        self.status = conn.status
        assert conn.headers is not None
        self.headers: CIMultiDictProxy[str] = conn.headers

    @property
    def content(self) -> Response:
        """Itself: ``read_body`` reads ``resp.content.readany()``, as of an aiohttp answer. A
        property, not an attribute: ``self.content = self`` would make every answer a
        reference cycle, freed only by the garbage collector, with its headers."""
        return self

    async def readany(self) -> bytes:
        return await self._conn.readany(self._read_timeout)

    @property
    def in_place(self) -> bool:
        """Whether the body is being received in place (``read`` returns it)."""
        return self._conn.target is not None

    async def read(self) -> bytes | memoryview:
        """The whole body, received in place (``in_place``): the ``into`` view it was asked
        to fill, else a new ``bytes``."""
        if self._conn.target is None:
            raise ValueError("this answer's body is not received in place; use readany()")
        data = await self._conn.receive(self._read_timeout, self._min_rate)
        return data if isinstance(data, (bytes, memoryview)) else bytes(data)

    def release(self) -> None:
        self._pool.release(self._conn)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Pool:
    """The connections of one event loop, by (scheme, host, port); each request takes one
    (at most ``per_host`` at once to a host) and gives it back when its answer is read."""

    def __init__(self, per_host: int) -> None:
        self.pid = os.getpid()
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._busy: set[_Conn] = set()
        self._gates: dict[tuple[str, str, int], asyncio.Semaphore] = {}
        self._per_host = per_host
        self._sweeper: asyncio.TimerHandle | None = None
        self.closed = False

    async def request(self, method: str, url: yarl.URL, headers: Mapping[str, str], *,
                      connect_timeout: float, read_timeout: float, min_rate: float = 0.0,
                      in_place: Callable[[int], bool] | None = None,
                      into: memoryview | None = None) -> Response:
        """Send ``method url`` with ``headers`` and wait for the answer's head. An answer whose
        status ``in_place`` accepts and whose length is announced is received into its final
        buffer from its first byte on (``Response.read``): ``into`` when the body is exactly as
        long as it (a part of a larger buffer), else a new ``bytes``; any other is read with
        ``readany``."""
        if self.closed:
            raise RuntimeError("the connection pool is closed")
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS or not url.raw_host:
            raise ValueError(f"cannot send a request to a {scheme!r} URL")
        port = url.port or _DEFAULT_PORTS[scheme]
        key = (scheme, url.raw_host, port)
        data = _request(method, url, headers)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = asyncio.Semaphore(self._per_host)
        await gate.acquire()
        done = False
        try:
            for attempt in (0, 1):
                conn = self._idle_conn(key) if attempt == 0 else None
                if conn is None:
                    conn = await self._connect(key, connect_timeout)
                self._busy.add(conn)
                conn._reset(head_only=method == "HEAD")
                conn.in_place = in_place
                conn.into = into
                conn.state = "head"
                assert conn.transport is not None
                conn.transport.write(data)
                try:
                    await conn.head(read_timeout)
                except (aiohttp.ServerDisconnectedError, ConnectionError):
                    self._discard(conn)
                    if conn.reused and not conn.got_any and attempt == 0:
                        continue  # the server closed it as it was reused: once more, anew
                    raise
                except BaseException:
                    self._discard(conn)
                    raise
                conn.gate, done = gate, True  # released with the connection
                return Response(self, conn, read_timeout, min_rate)
            raise AssertionError("unreachable")
        finally:
            if not done:
                gate.release()

    def _idle_conn(self, key: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                return conn
        return None

    async def _connect(self, key: tuple[str, str, int], timeout: float) -> _Conn:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls = _context() if scheme == "https" else None
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                lambda: _Conn(key), host, port, ssl=tls,
                server_hostname=host.strip("[]") if tls else None), timeout)
        except (asyncio.TimeoutError, TimeoutError) as err:
            raise aiohttp.ConnectionTimeoutError(
                f"Connection timeout to host {scheme}://{host}:{port}") from err
        except OSError as err:
            raise _connect_error(key, err) from err
        return conn

    def release(self, conn: _Conn) -> None:
        if conn.gate is not None:
            conn.gate.release()
            conn.gate = None
        self._busy.discard(conn)
        if (self.closed or not conn.ended or not conn.keep_alive or conn.closed
                or conn._chunks or conn._error is not None or conn.transport is None):
            self._discard(conn)
            return
        conn.state = "idle"
        conn.reused = True
        loop = conn._loop or asyncio.get_running_loop()
        conn.idle_since = loop.time()
        self._idle.setdefault(conn.key, []).append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_at(conn.idle_since + KEEPALIVE_SECONDS, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections idle for ``KEEPALIVE_SECONDS``; come back when the next one
        will have been (one timer per pool, not one per answer)."""
        self._sweeper = None
        now = loop.time()
        oldest = None
        for idle in self._idle.values():
            for conn in [c for c in idle if now - c.idle_since >= KEEPALIVE_SECONDS]:
                idle.remove(conn)
                self._discard(conn)
            for conn in idle:
                oldest = conn.idle_since if oldest is None else min(oldest, conn.idle_since)
        if oldest is not None and not self.closed:
            self._sweeper = loop.call_at(oldest + KEEPALIVE_SECONDS, self._sweep, loop)

    def _discard(self, conn: _Conn) -> None:
        self._busy.discard(conn)
        conn.keep_alive = False
        conn._stop_timer()
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()

    def close(self) -> None:
        """Close every connection (their sockets close as the loop runs next). In a forked
        child, whose copies of them are the parent's sockets, nothing is touched."""
        if self.pid != os.getpid():
            return
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                self._discard(conn)
        self._idle.clear()
        for conn in list(self._busy):
            self._discard(conn)


def _request(method: str, url: yarl.URL, headers: Mapping[str, str]) -> bytes:
    """The request's bytes; a name or value with CR, LF or NUL is refused."""
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    if url.explicit_port is not None and url.explicit_port != _DEFAULT_PORTS.get(url.scheme):
        host += f":{url.explicit_port}"
    target = url.raw_path_qs or "/"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Accept: */*",
             "Accept-Encoding: gzip, deflate"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    text = "\r\n".join(lines)
    # One scan of the whole request for CR, LF and NUL: the only line breaks are the ones
    # put in above (one per line), else some name or value carries one.
    if (text.count("\r") != len(lines) - 1 or text.count("\n") != len(lines) - 1
            or "\0" in text):
        for name, value in headers.items():
            if any(c in name or c in value for c in _BAD):
                raise ValueError(f"refusing to send header {name!r}: a header name or value "
                                 "must not contain CR, LF or NUL")
        raise ValueError("refusing to send a request whose target has a space, CR, LF or NUL")
    if " " in target:
        raise ValueError("refusing to send a request whose target has a space, CR, LF or NUL")
    for name in headers:
        if not name or ":" in name:
            raise ValueError(f"refusing to send header {name!r}: a header name must not be "
                             "empty or contain a colon")
    return (text + "\r\n\r\n").encode("utf-8")


def _connect_error(key: tuple[str, str, int], err: OSError) -> aiohttp.ClientError:
    """``err`` (from connecting) as aiohttp reports it."""
    scheme, host, port = key
    ckey = ConnectionKey(host, port, scheme == "https", True, None, None, None, None)
    if isinstance(err, ssl.SSLCertVerificationError) or isinstance(err, ssl.CertificateError):
        return aiohttp.ClientConnectorCertificateError(ckey, err)
    if isinstance(err, ssl.SSLError):
        return aiohttp.ClientConnectorSSLError(ckey, err)
    if isinstance(err, socket.gaierror):
        return aiohttp.ClientConnectorDNSError(ckey, err)
    return aiohttp.ClientConnectorError(ckey, err)

