"""The direct HTTP/1.1 client of the read path (``attachfs._net.wire``), against a scripted
server on 127.0.0.1 that answers each request with bytes written exactly as the test says: how
a body is framed (Content-Length, chunked, to the connection's end), how it is cut into writes,
when the server pauses or hangs up. Counted at the server: connections made, requests seen.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attachfs._net import wire

KiB = 1024
#: One answer: byte pieces written in order, a float is a pause (seconds), "close" hangs up.
Answer = Sequence[bytes | float | str]


class Scripted:
    """A server answering the n-th request with ``answers[n]``."""

    def __init__(self, answers: Sequence[Answer]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> yarl.URL:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return yarl.URL(f"http://127.0.0.1:{port}/bucket/key", encoded=True)

    async def __aenter__(self) -> Scripted:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(head)
                answer = self.answers[len(self.requests) - 1]
                for piece in answer:
                    if piece == "close":
                        return
                    if isinstance(piece, float):
                        await writer.drain()
                        await asyncio.sleep(piece)
                    else:
                        assert isinstance(piece, bytes)
                        writer.write(piece)
                await writer.drain()
        finally:
            writer.close()


def head(status: int = 206, **headers: Any) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def run(answers: Sequence[Answer], body: Callable[[wire.Pool, Scripted], Awaitable[Any]]
        ) -> tuple[Any, Scripted]:
    async def go() -> tuple[Any, Scripted]:
        async with Scripted(answers) as server:
            pool = wire.Pool(8)
            try:
                return await body(pool, server), server
            finally:
                pool.close()
                await asyncio.sleep(0)

    return asyncio.run(go())


async def get(pool: wire.Pool, server: Scripted, *, read_timeout: float = 5.0,
              min_rate: float = 0.0, in_place: bool = True, method: str = "GET",
              headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One request: the status and the whole body (in place if the client did so)."""
    resp = await pool.request(method, server.url, headers or {}, connect_timeout=5,
                              read_timeout=read_timeout, min_rate=min_rate,
                              in_place=(lambda status: 200 <= status < 300) if in_place else None)
    async with resp:
        if resp.in_place:
            return resp.status, await resp.read()
        parts = []
        while chunk := await resp.readany():
            parts.append(chunk)
        return resp.status, b"".join(parts)


# -- bodies --------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.sampled_from([0, 1, 100, 16 * KiB - 1, 16 * KiB + 7, 64 * KiB, 300 * KiB,
                             wire.LOWAT * 3 + 5]),
       cuts=st.lists(st.integers(min_value=1, max_value=200 * KiB), max_size=6),
       in_place=st.booleans())
def test_a_body_of_announced_length_arrives_whole_however_it_is_cut(
        size: int, cuts: list[int], in_place: bool) -> None:
    body = os.urandom(size)
    message = head(206, Content_Length=size) + body
    pieces: list[bytes | float | str] = []
    at = 0
    for cut in cuts:  # the head itself may be split anywhere too
        if at >= len(message):
            break
        pieces += [message[at:at + cut], 0.001]
        at += cut
    pieces.append(message[at:])

    async def twice(pool: wire.Pool, server: Scripted) -> list[tuple[int, bytes]]:
        return [await get(pool, server, in_place=in_place) for _ in range(2)]

    got, server = run([pieces, pieces], twice)
    assert got == [(206, body), (206, body)]
    assert type(got[0][1]) is bytes
    assert server.connections == 1  # read to its end: the connection was used again


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks=st.lists(st.binary(min_size=1, max_size=3000), max_size=8),
       extension=st.sampled_from(["", ";name=value", " ;x"]),
       trailers=st.sampled_from(["", "X-Trailer: 1\r\n"]),
       cut=st.integers(min_value=1, max_value=50))
def test_a_chunked_body_is_decoded_however_it_is_cut(
        chunks: list[bytes], extension: str, trailers: str, cut: int) -> None:
    encoded = b"".join(f"{len(c):x}{extension}\r\n".encode() + c + b"\r\n" for c in chunks)
    encoded += f"0\r\n{trailers}\r\n".encode()
    message = head(200, Transfer_Encoding="chunked") + encoded
    pieces: list[bytes | float | str] = [message[i:i + cut] for i in range(0, len(message), cut)]

    async def twice(pool: wire.Pool, server: Scripted) -> list[tuple[int, bytes]]:
        return [await get(pool, server) for _ in range(2)]

    got, server = run([pieces, pieces], twice)
    assert got == [(200, b"".join(chunks))] * 2
    assert server.connections == 1


def test_a_body_that_runs_to_the_connections_end_is_read_and_the_connection_not_kept() -> None:
    async def twice(pool: wire.Pool, server: Scripted) -> list[tuple[int, bytes]]:
        return [await get(pool, server) for _ in range(2)]

    got, server = run([[head(200), b"abc", b"def", "close"]] * 2, twice)
    assert got == [(200, b"abcdef")] * 2
    assert server.connections == 2


@pytest.mark.parametrize("header", [{"Connection": "close"}, {}], ids=["close", "http/1.0"])
def test_a_server_that_asks_to_close_gets_a_new_connection(header: dict[str, str]) -> None:
    status_line = head(200, Content_Length=2, **header)
    if not header:
        status_line = status_line.replace(b"HTTP/1.1", b"HTTP/1.0")

    async def twice(pool: wire.Pool, server: Scripted) -> list[tuple[int, bytes]]:
        return [await get(pool, server) for _ in range(2)]

    got, server = run([[status_line + b"ok"]] * 2, twice)
    assert got == [(200, b"ok")] * 2
    assert server.connections == 2


def test_interim_answers_and_bodiless_answers() -> None:
    async def three(pool: wire.Pool, server: Scripted) -> list[tuple[int, bytes]]:
        return [await get(pool, server), await get(pool, server, method="HEAD"),
                await get(pool, server)]

    got, server = run([[b"HTTP/1.1 100 Continue\r\n\r\n" + head(200, Content_Length=3) + b"xyz"],
                       [head(200, Content_Length=1000)],  # HEAD: the length, no body
                       [head(304, Content_Length=10)]], three)
    assert got == [(200, b"xyz"), (200, b""), (304, b"")]
    assert server.connections == 1


# -- answers that cannot be trusted --------------------------------------------------------

@pytest.mark.parametrize("answer", [
    [head(200, Content_Length="5, 6") + b"hello"],
    [b"HTTP/1.1 2x0 OK\r\n\r\n"],
    [b"SPDY/9 200 OK\r\n\r\n"],
    [head(200, Content_Length=2) + b"ok" + b"surprise"],
    [head(200, Transfer_Encoding="chunked") + b"zz\r\nhello\r\n0\r\n\r\n"],
    [head(200, Content_Length=10) + b"short", "close"],
    [b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * wire.MAX_HEAD + b"\r\n\r\n"],
], ids=["two-lengths", "bad-status", "not-http", "extra-bytes", "bad-chunk", "short-body",
        "huge-head"])
def test_an_answer_that_breaks_http_is_an_error_and_its_connection_is_not_kept(
        answer: Answer) -> None:
    async def once_then_ok(pool: wire.Pool, server: Scripted) -> tuple[str, tuple[int, bytes]]:
        try:
            await get(pool, server)
        except aiohttp.ClientPayloadError as err:  # a broken answer: the read path may retry
            error = type(err).__name__
        else:
            error = "none"
        await asyncio.sleep(0.05)
        return error, await get(pool, server)

    (error, after), server = run([answer, [head(200, Content_Length=2) + b"ok"]], once_then_ok)
    assert error == "ClientPayloadError"
    assert after == (200, b"ok")
    assert server.connections == 2


def test_both_lengths_and_chunked_is_read_as_chunked_and_never_kept() -> None:
    """RFC 9112 section 6.3: Transfer-Encoding overrides Content-Length, and the connection
    must close after (a request smuggling shape)."""
    message = head(200, Content_Length=3, Transfer_Encoding="chunked") + b"5\r\nhello\r\n0\r\n\r\n"

    async def twice(pool: wire.Pool, server: Scripted) -> list[tuple[int, bytes]]:
        return [await get(pool, server) for _ in range(2)]

    got, server = run([[message]] * 2, twice)
    assert got == [(200, b"hello")] * 2
    assert server.connections == 2


@pytest.mark.parametrize("headers", [{"If-Match": '"a"\r\nX-Injected: 1'},
                                     {"X-Evil\r\nHost": "x"}, {"If-Match": "a\nb"},
                                     {"Range": "bytes=0-1\x00"}])
def test_a_header_with_cr_lf_or_nul_is_refused_before_anything_is_sent(
        headers: dict[str, str]) -> None:
    async def once(pool: wire.Pool, server: Scripted) -> None:
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            await get(pool, server, headers=headers)

    _, server = run([], once)
    assert server.connections == 0


# -- the pool --------------------------------------------------------------------------------

def test_a_pooled_connection_the_server_closed_is_replaced_once_without_an_error() -> None:
    """The server hangs up right after an answer that did not say so (a keep-alive timeout
    racing the next request): the next request is sent again on a new connection."""
    async def twice(pool: wire.Pool, server: Scripted) -> list[tuple[int, bytes]]:
        first = await get(pool, server)
        return [first, await get(pool, server)]

    got, server = run([[head(200, Content_Length=1) + b"a", "close"],
                       [head(200, Content_Length=1) + b"b"]], twice)
    assert got == [(200, b"a"), (200, b"b")]
    assert server.connections == 2
    assert len(server.requests) == 2


def test_a_new_connection_that_breaks_before_an_answer_is_an_error_not_a_second_request(
        ) -> None:
    async def once(pool: wire.Pool, server: Scripted) -> None:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get(pool, server)

    _, server = run([["close"], [head(200, Content_Length=1) + b"b"]], once)
    assert len(server.requests) == 1


def test_connections_to_a_host_are_bounded() -> None:
    async def many(pool: wire.Pool, server: Scripted) -> list[tuple[int, bytes]]:
        small = wire.Pool(2)
        try:
            return list(await asyncio.gather(*(get(small, server) for _ in range(6))))
        finally:
            small.close()

    got, server = run([[0.05, head(200, Content_Length=1) + b"z"]] * 6, many)
    assert got == [(200, b"z")] * 6
    assert server.connections == 2


def test_an_idle_connection_is_closed_after_the_keep_alive_and_one_in_use_is_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One timer per pool closes what has been idle ``KEEPALIVE_SECONDS``; a connection taken
    again within that time is kept, and its idle time starts anew."""
    monkeypatch.setattr(wire, "KEEPALIVE_SECONDS", 1.0)

    async def spaced(pool: wire.Pool, server: Scripted) -> list[int]:
        idle = []
        for pause in (0.0, 0.3, 0.3, 2.0):  # never idle 1 s before the third: still kept
            await asyncio.sleep(pause)
            idle.append(sum(len(conns) for conns in pool._idle.values()))
            await get(pool, server)
        return idle

    idle, server = run([[head(200, Content_Length=1) + b"a"]] * 4, spaced)
    assert idle == [0, 1, 1, 0]
    assert server.connections == 2


def test_a_refused_connection_is_aiohttps_connector_error() -> None:
    async def once() -> None:
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        pool = wire.Pool(2)
        with pytest.raises(aiohttp.ClientConnectorError):
            await pool.request("GET", yarl.URL(f"http://127.0.0.1:{port}/b/k"), {},
                               connect_timeout=5, read_timeout=5)
        pool.close()

    asyncio.run(once())


# -- timeouts --------------------------------------------------------------------------------

@pytest.mark.parametrize("in_place", [True, False])
def test_a_body_that_stops_arriving_is_a_stall(in_place: bool) -> None:
    async def once(pool: wire.Pool, server: Scripted) -> str:
        with pytest.raises(wire.Stalled) as caught:
            await get(pool, server, read_timeout=0.3, in_place=in_place)
        return caught.value.phase

    phase, _ = run([[head(200, Content_Length=wire.LOWAT * 2) + b"x" * 1000, 3.0]], once)
    assert phase == "body"


def test_an_answer_that_never_comes_is_a_stall_of_the_response() -> None:
    async def once(pool: wire.Pool, server: Scripted) -> str:
        with pytest.raises(wire.Stalled) as caught:
            await get(pool, server, read_timeout=0.3)
        return caught.value.phase

    phase, _ = run([[3.0]], once)
    assert phase == "response"


def test_a_shorter_read_timeout_after_a_longer_one_times_out_on_its_own_deadline() -> None:
    """The stall timer is armed once per connection and moved lazily: a wait whose deadline
    comes before the armed timer's must still end at its own deadline."""
    async def twice(pool: wire.Pool, server: Scripted) -> str:
        await get(pool, server, read_timeout=120.0)
        with pytest.raises(wire.Stalled) as caught:
            await asyncio.wait_for(get(pool, server, read_timeout=0.3), 10)
        return caught.value.phase

    phase, server = run([[head(200, Content_Length=1) + b"a"], [30.0]], twice)
    assert phase == "response"
    assert server.connections == 1


@pytest.mark.parametrize("in_place", [True, False])
def test_a_body_that_keeps_arriving_within_each_window_is_never_a_stall(in_place: bool) -> None:
    """Each wait is its own ``read_timeout`` window: pieces that come within it are progress
    however long the whole body takes (here five pauses, each a quarter of the window)."""
    pieces: list[bytes | float | str] = [head(200, Content_Length=5)]
    for byte in b"abcde":
        pieces += [0.15, bytes([byte])]

    async def once(pool: wire.Pool, server: Scripted) -> tuple[int, bytes]:
        return await get(pool, server, read_timeout=0.6, in_place=in_place)

    got, _ = run([pieces], once)
    assert got == (200, b"abcde")


def test_a_slow_body_below_the_wake_up_mark_is_progress_not_a_stall() -> None:
    """After a fast body, a connection's next body wakes the client only every ``LOWAT``
    bytes; a link slower than that per ``read_timeout`` still delivers, and must not be
    called stalled."""
    fast = os.urandom(16 * wire.LOWAT)
    size = wire.LOWAT + 64 * KiB
    body = os.urandom(size)
    pieces: list[bytes | float | str] = [head(206, Content_Length=size)]
    for at in range(0, size, 16 * KiB):  # ~16 KiB per 0.1 s: ~40 KiB per read_timeout
        pieces += [body[at:at + 16 * KiB], 0.1]

    async def twice(pool: wire.Pool, server: Scripted) -> list[Any]:
        first = await get(pool, server, read_timeout=0.4, min_rate=1024)
        (conn,) = [c for idle in pool._idle.values() for c in idle]
        return [first, conn.fast, await get(pool, server, read_timeout=0.4, min_rate=1024)]

    got, server = run([[head(206, Content_Length=len(fast)) + fast], pieces], twice)
    assert got == [(206, fast), True, (206, body)]
    assert server.connections == 1


def test_a_connection_whose_large_body_came_slowly_is_not_fast() -> None:
    """A rate-capped connection (a cloud's) is never made to hold bytes back in its socket."""
    size = 2**20 + 64 * KiB
    body = os.urandom(size)
    pieces: list[bytes | float | str] = [head(206, Content_Length=size)]
    for at in range(0, size, 128 * KiB):  # ~2.5 MB/s
        pieces += [body[at:at + 128 * KiB], 0.05]

    async def once(pool: wire.Pool, server: Scripted) -> list[Any]:
        got = await get(pool, server)
        (conn,) = [c for idle in pool._idle.values() for c in idle]
        return [got, conn.fast, conn._lowat]

    got, _ = run([pieces], once)
    assert got == [(206, body), False, 1]


def test_a_body_slower_than_the_minimum_rate_is_too_slow() -> None:
    size = wire.LOWAT * 2
    pieces: list[bytes | float | str] = [head(206, Content_Length=size)]
    pieces += [b"y" * 100, 0.1] * 30

    async def once(pool: wire.Pool, server: Scripted) -> float | None:
        with pytest.raises(wire.Stalled) as caught:
            await get(pool, server, read_timeout=0.5, min_rate=10 * KiB)
        return caught.value.rate

    rate, _ = run([pieces], once)
    assert rate is not None and 0 < rate < 10 * KiB


def test_bodies_over_tls_arrive_whole_in_place_and_with_the_wake_up_mark(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cloud is https: TLS decrypts ahead of what it hands over, so a body received in
    place under the low-water mark must still end (the mark stays below what is left)."""
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    monkeypatch.setattr(wire, "_ssl_context", client_ctx)
    bodies = [os.urandom(n) for n in (16 * wire.LOWAT, 8 * wire.LOWAT + 12_345, 3 * wire.LOWAT,
                                      100)]

    async def go() -> tuple[list[bytes], list[bool], int]:
        served = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal served
            served += 1
            for body in bodies:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(head(206, Content_Length=len(body)) + body)
                await writer.drain()
            await reader.read()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        url = yarl.URL(f"https://127.0.0.1:{port}/b/k")
        pool = wire.Pool(4)
        got, fast = [], []
        try:
            for _ in bodies:
                resp = await pool.request("GET", url, {}, connect_timeout=5, read_timeout=5,
                                          in_place=lambda status: status == 206)
                async with resp:
                    assert resp.in_place
                    got.append(await resp.read())
                (conn,) = [c for idle in pool._idle.values() for c in idle]
                fast.append(conn.fast)
        finally:
            pool.close()
            server.close()
            await server.wait_closed()
        return got, fast, served

    got, fast, served = asyncio.run(go())
    assert got == bodies
    assert fast[0] and fast[1]  # loopback: the later bodies were received under the mark
    assert served == 1
