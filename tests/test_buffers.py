"""The buffers bodies are received into (``attachfs._net.buffers``): filled in place, their pages
mapped at once, and reused only once nobody holds them. A buffer someone holds must never be
written again, whoever holds it and however; these tests hold buffers every way a caller does
(a reference, a ``memoryview``, NumPy, pyarrow, ``io.BytesIO``) and check their bytes after
every later buffer is handed out."""

from __future__ import annotations

import asyncio
import ctypes
import io
import multiprocessing
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attachfs._net import buffers, wire

KiB = 1024
MiB = 2**20

needs_cpython = pytest.mark.skipif(buffers._cpython is None,
                                   reason="bytes filled in place is CPython's")
needs_reuse = pytest.mark.skipif(not buffers._reuse, reason="reuse needs CPython with a GIL")


@pytest.fixture
def pool() -> Iterator[None]:
    """An empty pool for the test; the process's own is put back after it."""
    entries, by_id = list(buffers._entries), dict(buffers._by_id)
    tracked = buffers._tracked_bytes
    empty()
    try:
        yield
    finally:
        buffers._entries[:] = entries
        buffers._by_id.clear()
        buffers._by_id.update(by_id)
        buffers._tracked_bytes = tracked


def empty() -> None:
    buffers._entries.clear()
    buffers._by_id.clear()
    buffers._tracked_bytes = 0


def fill(n: int, byte: int) -> bytes:
    data, view = buffers.new_buffer(n)
    view[:] = bytes([byte]) * n
    del view
    buffers.seal(data)
    assert type(data) is bytes
    return data  # type: ignore[return-value]


def terminated(data: bytes) -> bool:
    """The NUL every bytes object keeps after its contents."""
    return ctypes.string_at(id(data) + sys.getsizeof(b"") - 1 + len(data), 1) == b"\0"


# -- pages mapped at once --------------------------------------------------------------------

@needs_cpython
@pytest.mark.parametrize("n", [buffers._IN_PLACE, buffers._POPULATE - 1, buffers._POPULATE,
                               1000615, buffers._POPULATE_MAX, buffers._POPULATE_MAX + 1,
                               8 * MiB])
def test_a_new_buffers_pages_are_mapped_at_once_only_for_the_lengths_that_gain(
        n: int, monkeypatch: pytest.MonkeyPatch, pool: None) -> None:
    """One madvise call over whole pages covering exactly the buffer's contents, for new
    buffers of _POPULATE to _POPULATE_MAX bytes; the buffer is a bytes object filled in place."""
    calls: list[tuple[int, int, int]] = []

    def madvise(start: int, length: int, advice: int) -> int:
        calls.append((start, length, advice))
        return 0

    monkeypatch.setattr(buffers, "_madvise_call", madvise)
    data, view = buffers.new_buffer(n)
    view[:] = b"\x07" * n
    assert type(data) is bytes and data == b"\x07" * n
    if buffers._POPULATE <= n <= buffers._POPULATE_MAX:
        ((start, length, advice),) = calls
        contents = id(data) + sys.getsizeof(b"") - 1
        assert advice == buffers._MADV_POPULATE_WRITE
        assert start % buffers._PAGE == 0 and start <= contents < start + buffers._PAGE
        assert start + length == contents + n
    else:
        assert calls == []


@pytest.mark.parametrize("errno,kept", [(22, False), (38, False), (12, True), (4, True)])
def test_a_kernel_without_the_call_is_not_asked_again(errno: int, kept: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """EINVAL or ENOSYS: this kernel does not know MADV_POPULATE_WRITE (before Linux 5.14),
    so it is not asked again; another failure (ENOMEM, EINTR) is this call's alone."""
    calls = []

    def madvise(start: int, length: int, advice: int) -> int:
        calls.append(start)
        ctypes.set_errno(errno)
        return -1

    monkeypatch.setattr(buffers, "_madvise_call", madvise)
    buffers._populate(1 << 20, 1 << 20)
    assert calls == [1 << 20]
    assert (buffers._madvise_call is madvise) is kept


# -- reuse -----------------------------------------------------------------------------------

@needs_reuse
def test_a_sealed_buffer_nobody_holds_is_received_into_again_resized_and_rehashed(
        pool: None) -> None:
    n = MiB
    first = fill(n, 1)
    hash(first)  # a cached hash, which must not survive the reuse
    address = id(first)
    del first
    again, view = buffers.new_buffer(n - n // 4)   # up to a third smaller fits
    assert id(again) == address and len(again) == n - n // 4 and terminated(again)
    view[:] = b"\x02" * len(again)
    assert again == b"\x02" * len(again) and hash(again) == hash(b"\x02" * len(again))


@needs_reuse
@pytest.mark.parametrize("n", [MiB // 2, MiB + 1])
def test_a_free_buffer_is_not_used_for_a_body_much_shorter_or_longer(pool: None,
                                                                     n: int) -> None:
    """Reuse never grows a buffer, nor hands on one that would hold more than a third again
    of the body's length."""
    address = id(fill(MiB, 1))
    data, _ = buffers.new_buffer(n)
    assert id(data) != address and len(data) == n


@needs_reuse
def test_a_buffer_never_sealed_is_never_reused(pool: None) -> None:
    """A body that failed halfway leaves its buffer unsealed: a connection may still hold a
    view of it, so it is never written again."""
    data, view = buffers.new_buffer(MiB)
    address = id(data)
    del data
    for _ in range(3):
        other, _ = buffers.new_buffer(MiB)
        assert id(other) != address
    del view


@needs_reuse
@pytest.mark.parametrize("hold", ["ref", "memoryview", "numpy", "pyarrow", "bytesio", "slice"])
def test_a_buffer_held_any_way_is_never_written_again(pool: None, hold: str) -> None:
    data = fill(MiB, 9)
    if hold == "ref":
        holder: Any = [data]
    elif hold == "memoryview":
        holder = memoryview(data)[10:20]
    elif hold == "numpy":
        np = pytest.importorskip("numpy")
        holder = np.frombuffer(data, dtype=np.uint8)
    elif hold == "pyarrow":
        pa = pytest.importorskip("pyarrow")
        holder = pa.py_buffer(data)
    elif hold == "bytesio":
        holder = io.BytesIO(data)
    else:
        holder = data[:]  # the same object
    address = id(data)
    del data
    for byte in range(3):
        other = fill(MiB, byte)
        assert id(other) != address
    if hold == "bytesio":
        seen = holder.getvalue()
    elif hold == "pyarrow":
        seen = holder.to_pybytes()
    elif hold == "numpy":
        seen = holder.tobytes()
    elif hold == "ref":
        seen = holder[0]
    else:
        seen = bytes(holder)
    assert seen == b"\x09" * (10 if hold == "memoryview" else MiB)


@needs_reuse
@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.sampled_from(["take", "take", "drop", "hold"]),
                              st.integers(0, 7), st.booleans()), max_size=60))
def test_no_held_buffer_is_ever_handed_out_again_and_the_free_ones_stay_bounded(
        ops: list[tuple[str, int, bool]], monkeypatch: pytest.MonkeyPatch, pool: None) -> None:
    """Any sequence of buffers made, sealed or not, dropped or held: a buffer handed out is
    never one someone holds; what every holder sees never changes; the free buffers kept stay
    under RECYCLE_BYTES and the buffers remembered under _TRACKED."""
    empty()
    monkeypatch.setattr(buffers, "RECYCLE_MIN", 64 * KiB)
    monkeypatch.setattr(buffers, "RECYCLE_BYTES", 400 * KiB)
    monkeypatch.setattr(buffers, "_TRACKED", 6)
    sizes = [64 * KiB, 70 * KiB, 80 * KiB, 96 * KiB, 100 * KiB, 128 * KiB, 150 * KiB, 200 * KiB]
    held: list[tuple[Any, bytes, int]] = []   # (holder, the bytes it must see, id of buffer)
    serial = 0
    for op, pick, flag in ops:
        if op == "take":
            serial += 1
            n = sizes[pick]
            data, view = buffers.new_buffer(n)
            assert len(data) == n and terminated(data)
            assert all(id(data) != address for _, _, address in held)
            view[:] = bytes([serial % 256]) * n
            del view
            if flag:
                buffers.seal(data)
            expect = bytes([serial % 256]) * n
            assert data == expect and hash(data) == hash(expect)
            held.append((data, expect, id(data)))
            del data
        elif op == "drop" and held:
            held.pop(pick % len(held))
        elif op == "hold" and any(type(h) is bytes for h, _, _ in held):
            own = [entry for entry in held if type(entry[0]) is bytes]
            data, expect, address = own[pick % len(own)]
            holder = memoryview(data) if flag else io.BytesIO(data)
            held.append((holder, expect, address))
            del data
        for holder, expect, _ in held:
            seen = holder.getvalue() if isinstance(holder, io.BytesIO) else bytes(holder)
            assert seen == expect
        stats = buffers.stats()
        assert stats["free_bytes"] <= stats["tracked_bytes"] <= 400 * KiB
        assert stats["tracked"] <= 6


@needs_reuse
def test_the_free_buffers_kept_are_bounded(pool: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """However many buffers callers drop at once, the pool keeps at most RECYCLE_BYTES of them
    alive: it remembers no more than that."""
    monkeypatch.setattr(buffers, "RECYCLE_BYTES", 3 * MiB)
    kept = [fill(MiB, i) for i in range(8)]
    assert buffers.stats()["tracked_bytes"] == 3 * MiB   # the newest three
    del kept
    assert buffers.stats()["free_bytes"] == 3 * MiB
    fill(2 * MiB, 1)  # too large for any of them: a new one, and the oldest ones go
    stats = buffers.stats()
    assert stats["tracked_bytes"] <= 3 * MiB and stats["free_bytes"] <= 3 * MiB


def _child_stats(queue: Any) -> None:
    data = fill(MiB, 5)
    queue.put((buffers.stats(), data == b"\x05" * MiB))


@needs_reuse
def test_a_forked_child_starts_with_no_buffer_remembered(pool: None) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork here")
    kept = fill(MiB, 1)
    assert buffers.stats()["tracked"] == 1
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_stats, args=(queue,))
    child.start()
    stats, right = queue.get(timeout=30)
    child.join(30)
    assert right and stats["tracked"] == 1 and stats["made"] >= 1
    assert kept == b"\x01" * MiB


# -- bodies received into them ----------------------------------------------------------------

def _serve_bodies(bodies: list[bytes], cut_after: int | None = None) -> Any:
    """A server answering the n-th GET with ``bodies[n]`` (the one at ``cut_after`` stops
    halfway and hangs up)."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                n = serve.count  # type: ignore[attr-defined]
                serve.count += 1  # type: ignore[attr-defined]
                body = bodies[n]
                writer.write(f"HTTP/1.1 206 X\r\nContent-Length: {len(body)}\r\n\r\n".encode())
                if n == cut_after:
                    writer.write(body[:len(body) // 2])
                    await writer.drain()
                    return
                writer.write(body)
                await writer.drain()
        finally:
            writer.close()

    serve.count = 0  # type: ignore[attr-defined]
    return serve


@needs_reuse
def test_bodies_received_into_reused_buffers_leave_every_held_body_as_it_was(
        pool: None) -> None:
    """GETs of 1 MiB over a real connection: bodies kept by the caller never change as later
    bodies arrive; bodies dropped give their buffers to the next ones; a body cut off halfway
    gives none."""
    bodies = [os.urandom(MiB) for _ in range(8)]

    async def go() -> None:
        server = await asyncio.start_server(_serve_bodies(bodies, cut_after=5), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = yarl.URL(f"http://127.0.0.1:{port}/b/k")
        pool_ = wire.Pool(2)

        async def get() -> bytes | memoryview:
            resp = await pool_.request("GET", url, {}, connect_timeout=5, read_timeout=5,
                                       in_place=lambda status: status == 206)
            async with resp:
                return await resp.read()

        try:
            before = buffers.stats()["reused"]
            kept = [await get(), await get()]            # 0 and 1: held
            assert buffers.stats()["reused"] == before
            dropped = await get()                        # 2: dropped at once
            address = id(dropped)
            assert dropped == bodies[2]
            del dropped
            third = await get()                          # 3: into 2's buffer
            assert id(third) == address and third == bodies[3]
            assert kept == bodies[:2]
            reused = buffers.stats()["reused"]
            fourth = await get()                         # 4: a new buffer (3 is held)
            assert fourth == bodies[4] and buffers.stats()["reused"] == reused
            with pytest.raises(aiohttp_payload_error()):
                await get()                              # 5: cut off halfway, never sealed
            made = buffers.stats()["made"]
            sixth = await get()                          # 6: not into 5's buffer
            assert sixth == bodies[6]
            assert buffers.stats()["made"] == made + 1
            assert kept == bodies[:2] and third == bodies[3] and fourth == bodies[4]
        finally:
            pool_.close()
            server.close()
            await server.wait_closed()

    asyncio.run(go())


def aiohttp_payload_error() -> type[BaseException]:
    import aiohttp

    return aiohttp.ClientPayloadError


@needs_reuse
def test_zero_recycle_bytes_turns_reuse_off(pool: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(buffers.ENV, "0")
    reused = buffers.stats()["reused"]
    for byte in range(3):
        assert fill(MiB, byte) == bytes([byte]) * MiB
    assert buffers.stats()["tracked"] == 0 and buffers.stats()["reused"] == reused


@needs_reuse
@pytest.mark.parametrize("value", ["64MB", "-1", "1.5"])
def test_a_bad_recycle_bytes_is_an_error_that_names_the_variable(
        pool: None, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(buffers.ENV, value)
    with pytest.raises(ValueError, match="ATTACHFS_RECYCLE_BYTES must be"):
        buffers.new_buffer(MiB)
