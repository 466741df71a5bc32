"""The buffers bodies are received into: ``bytes`` objects filled in place, and reused.

A body of ``_IN_PLACE`` bytes or more is received straight into the ``bytes`` object that is
handed on (``new_buffer``), so no byte is copied after the socket or the TLS layer.

Memory the allocator has just taken from the system costs a page fault per 4 KiB when it is
first written, and the system's allocator gives it back as soon as a large free region forms
(glibc trims the top of a heap past twice its last large block's size). A parquet read of 40
column chunks of 1 MiB then faulted in every page of every chunk, each time it was read: the
loop that receives the bodies spent half of its time mapping pages, about as long as it spent
receiving. pyarrow's own S3 client keeps its buffers in its memory pool and faults none of
them again. Two measures, both here:

- **Reuse.** A buffer of ``RECYCLE_MIN`` to ``RECYCLE_MAX`` bytes is remembered when it is made.
  Once it is *sealed* (its every byte written, and no writer left holding a view of it: the
  receiving code says so, ``seal``) and nothing else refers to it any more (its reference
  count is the pool's alone), a later body of the same size or up to a third smaller is
  received into it: its length is set to the new body's, its cached hash cleared, and its
  pages are already mapped. The buffers remembered are at most ``RECYCLE_BYTES`` in all and
  ``_TRACKED`` in number (the oldest are forgotten first): the memory kept alive for reuse
  alone, past what callers hold, is never more than ``RECYCLE_BYTES`` (64 MiB;
  ``ATTACHFS_RECYCLE_BYTES`` sets it, 0 turns reuse off). A buffer that
  someone still holds (a ``read`` result, a cache entry, a ``memoryview``, a NumPy or pyarrow
  array over it) is never written again; one never sealed (a body that failed halfway, a
  window whose parts were not all received in place) is never reused. Only CPython with a
  global interpreter lock, where a reference count says who holds an object, reuses buffers;
  the layout is checked on a probe first.
- **Pages mapped at once.** A new buffer of ``_POPULATE`` to ``_POPULATE_MAX`` bytes has its
  pages mapped in one ``madvise(MADV_POPULATE_WRITE)`` call (Linux 5.14 and later) before the
  body arrives (``_populate``), not one fault per page as it is written.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from .. import _fork
from .._limits import bytes_setting

__all__ = ["ENV", "RECYCLE_BYTES", "RECYCLE_MAX", "RECYCLE_MIN", "new_buffer", "seal", "stats"]

#: Bodies this long or longer are received into a ``bytes`` in place.
_IN_PLACE = 64 * 1024
#: Buffers of these lengths are reused once free: a column chunk, a random read's block, a
#: stream's window. A 64 KiB body (one small object) is not: a batch's bodies are all held by
#: its caller, and checking for a free one would cost more than it saves.
RECYCLE_MIN = 256 * 1024
RECYCLE_MAX = 32 * 2**20
#: The buffers remembered for reuse, in bytes at most (held or free; the oldest are forgotten
#: first): the most memory kept alive for reuse alone. ``ATTACHFS_RECYCLE_BYTES`` sets it
#: (0: no buffer is reused).
RECYCLE_BYTES = 64 * 2**20
ENV = "ATTACHFS_RECYCLE_BYTES"
#: Buffers remembered at once (held by someone or free), at most.
_TRACKED = 256
#: Linux's MADV_POPULATE_WRITE (5.14 and later): map a range's pages writable in one call.
_MADV_POPULATE_WRITE = 23
#: New buffers of these lengths have their pages mapped before the body is received (a column
#: chunk, a block of a random read). For a 64 KiB body the call cost more than the faults it
#: saved; for one of 8 MiB (a stream's window) it held the loop before the first byte, while
#: the faults it saved overlapped with the body's arrival: a sequential read of 1 GiB took a
#: tenth longer.
_POPULATE = 512 * 1024
_POPULATE_MAX = 2 * 2**20
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _madvise() -> Callable[[int, int, int], int] | None:
    """libc's ``madvise``, where there is one to call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.madvise
    except (OSError, AttributeError):
        return None
    call.restype = ctypes.c_int
    call.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return call


_madvise_call = _madvise()


def _populate(address: int, n: int) -> None:
    """Map the pages of a new buffer in one system call, before a body is received into it.

    Memory the allocator just took from the system is mapped page by page as it is first
    written: one fault per 4 KiB, ~2 us each on a virtual machine, which was a third of the
    time to receive a 1 MiB body on loopback. Asking for all of a buffer's pages at once costs
    one call (which lengths gain from it: ``_POPULATE``). Pages already mapped are left as they
    are; where the call is not known (an older kernel), it is not asked again."""
    global _madvise_call
    call = _madvise_call
    if call is None:
        return
    start = address - address % _PAGE
    if call(start, address + n - start, _MADV_POPULATE_WRITE) != 0:
        if ctypes.get_errno() in (22, 38):  # EINVAL, ENOSYS: not this kernel's
            _madvise_call = None


class _Entry:
    """A buffer made here, while it is remembered for reuse."""

    __slots__ = ("capacity", "data", "sealed")

    def __init__(self, data: bytes, capacity: int) -> None:
        self.data = data
        self.capacity = capacity   # the length it was made with: the most it can hold
        self.sealed = False


class _Layout:
    """Where CPython keeps a ``bytes`` object's length, cached hash and contents, and the two
    C calls that make one to be filled and a writable view onto it."""

    def __init__(self) -> None:
        new = ctypes.pythonapi.PyBytes_FromStringAndSize
        new.restype = ctypes.py_object
        new.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)
        # A writable view straight onto memory (a ctypes array over it would make a new
        # ctypes type for every length, each a reference cycle for the garbage collector).
        view_of = ctypes.pythonapi.PyMemoryView_FromMemory
        view_of.restype = ctypes.py_object
        view_of.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
        self.new: Callable[[Any, int], bytes] = new
        self.view_of: Callable[[int, int, int], memoryview] = view_of
        self.contents = sys.getsizeof(b"") - 1           # ob_sval, after the header
        self.hash = self.contents - ctypes.sizeof(ctypes.c_ssize_t)  # ob_shash, just before
        self.length = object.__basicsize__                # ob_size, after PyObject's header

    def view(self, data: bytes, n: int) -> memoryview:
        return self.view_of(id(data) + self.contents, n, 0x200)  # PyBUF_WRITE

    def resize(self, data: bytes, n: int) -> None:
        """Make ``data`` (made with ``n`` bytes or more, held by no one else) ``n`` long, its
        hash not yet computed, with the terminating NUL every ``bytes`` has."""
        base = id(data)
        ctypes.c_ssize_t.from_address(base + self.length).value = n
        ctypes.c_ssize_t.from_address(base + self.hash).value = -1
        ctypes.c_char.from_address(base + self.contents + n).value = b"\0"


def _layout() -> _Layout | None:
    """CPython's layout, checked on a probe; None elsewhere."""
    if sys.implementation.name != "cpython":
        return None
    try:
        layout = _Layout()
        probe = layout.new(None, 64)
        layout.view(probe, 64)[:] = bytes(range(64))
        if probe != bytes(range(64)) or hash(probe) != hash(bytes(range(64))):
            return None
        layout.resize(probe, 10)
        if len(probe) != 10 or probe != bytes(range(10)) or hash(probe) != hash(bytes(range(10))):
            return None
        layout.resize(probe, 64)  # back to what it was made with, for its deallocation
        return layout
    except (AttributeError, OSError, ValueError):
        return None


def _reuse_allowed() -> bool:
    """A reference count says who holds an object only with a global interpreter lock."""
    is_gil_enabled: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return is_gil_enabled is None or is_gil_enabled()


_cpython = _layout()
_reuse = _cpython is not None and _reuse_allowed()
_lock = threading.Lock()
_entries: list[_Entry] = []       # oldest first
_by_id: dict[int, _Entry] = {}
_tracked_bytes = 0                # their lengths, in all
_counts = {"made": 0, "reused": 0}


def new_buffer(n: int) -> tuple[bytes | bytearray, memoryview]:
    """A buffer of ``n`` bytes to receive a body into, and a writable view of it: a ``bytes``
    object filled in place (no second copy to hand it on as ``bytes``; a large bytearray is
    zero-filled and copied once more, which costs as much as receiving it), or elsewhere
    than CPython a ``bytearray``. Until every byte is written the contents are whatever was
    there before: it must not be handed on before then. Once it is, and its writers have let
    go of the view, ``seal`` lets it be reused after its last holder drops it."""
    layout = _cpython
    if layout is None or n < _IN_PLACE:
        buffer = bytearray(n)
        return buffer, memoryview(buffer)
    if _reuse and RECYCLE_MIN <= n <= RECYCLE_MAX and _bound():
        return _recycled(layout, n)
    data = layout.new(None, n)
    if _POPULATE <= n <= _POPULATE_MAX:
        _populate(id(data) + layout.contents, n)
    return data, layout.view(data, n)


def _refs(entry: _Entry) -> int:
    return sys.getrefcount(entry.data)


def _free(entry: _Entry) -> bool:
    """Sealed, and held by its entry alone."""
    return entry.sealed and _refs(entry) == _ALONE


def _recycled(layout: _Layout, n: int) -> tuple[bytes, memoryview]:
    """A free buffer that fits ``n`` (the smallest that does), else a new one remembered."""
    most = n + n // 3
    with _lock:
        best: _Entry | None = None
        for entry in _entries:
            if _free(entry):
                if n <= entry.capacity <= most and (best is None
                                                    or entry.capacity < best.capacity):
                    best = entry
        if best is not None:
            best.sealed = False
            layout.resize(best.data, n)
            _counts["reused"] += 1
            return best.data, layout.view(best.data, n)
        made = layout.new(None, n)
        if _POPULATE <= n <= _POPULATE_MAX:
            _populate(id(made) + layout.contents, n)
        _remember(_Entry(made, n))
        _counts["made"] += 1
        return made, layout.view(made, n)


def _bound() -> int:
    """``RECYCLE_BYTES``, or what ``ATTACHFS_RECYCLE_BYTES`` says."""
    return bytes_setting(ENV, os.environ.get(ENV), RECYCLE_BYTES, "no buffer is reused")


def _remember(entry: _Entry) -> None:
    """Remember ``entry``, forgetting the oldest buffers past ``_TRACKED`` of them or past
    ``RECYCLE_BYTES`` in all (a free one forgotten is released; a held one stays its
    holder's)."""
    global _tracked_bytes
    bound = _bound()
    _entries.append(entry)
    _by_id[id(entry.data)] = entry
    _tracked_bytes += entry.capacity
    while _entries and (len(_entries) > _TRACKED or _tracked_bytes > bound):
        old = _entries.pop(0)
        del _by_id[id(old.data)]
        _tracked_bytes -= old.capacity


def seal(data: Any) -> None:
    """``data`` (made by ``new_buffer``) has every byte written, and no writer holds a view
    of it any more: once nobody else refers to it, it may be received into again. Anything
    else is left alone."""
    if not _reuse:
        return
    entry = _by_id.get(id(data))
    if entry is not None and entry.data is data:
        entry.sealed = True


def stats() -> dict[str, int]:
    """Buffers ``made`` and ``reused`` since start; buffers remembered now (``tracked``), their
    bytes (``tracked_bytes``) and the bytes of those free (``free_bytes``)."""
    with _lock:
        free = sum(e.capacity for e in _entries if _free(e))
        return {**_counts, "tracked": len(_entries), "tracked_bytes": _tracked_bytes,
                "free_bytes": free}


def _alone() -> int:
    """The reference count ``_refs`` gives for a buffer its entry alone holds."""
    entry = _Entry(bytes(bytearray(RECYCLE_MIN)), RECYCLE_MIN)
    return _refs(entry)


_ALONE = _alone()


def _forget_all() -> None:
    """In a forked child: start with no buffer remembered (the lock may have been held by a
    thread that is not here)."""
    global _lock, _tracked_bytes
    _lock = threading.Lock()
    _entries.clear()
    _by_id.clear()
    _tracked_bytes = 0


_fork.at_fork(after_in_child=_forget_all)
