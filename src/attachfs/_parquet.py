"""Which parquet column chunks a scan will read next, so an open file can fetch them together.

pandas hands pyarrow a Python file object, and pyarrow then reads the column chunks one at a
time through it: one request after another, where pyarrow's own S3 client has several in
flight. Once the footer is read, its metadata says where every column chunk is; once the reads
show a scan, the chunks of every column read so far are fetched ahead, row group by row group,
concurrently (pyarrow has asked for all of them already; they reach the file one by one).

A scan is a column read in two row groups, by reads that began with the file's first row
group: pyarrow's scans (``read_table``, ``read_parquet``, ``iter_batches``) start there and
arrive a few row groups out of order, while ``read_row_group`` calls in a random order, the
other way to read a column in two row groups, almost never start there. (pyarrow's read of
the file's last 64 KiB for the footer, which may cover the end of the last row group, reads
no chunk and does not count.) What is fetched ahead
is bounded twice: at most ``window`` chunks not read yet (``FIRST_WINDOW`` when the scan is
seen, doubled by every read of one: a scan soon has all it needs in flight, and reads that
turn away at once leave ``FIRST_WINDOW`` chunks fetched for nothing), and at most
``max_ahead`` bytes. Reads that look like a scan for a while and then stop (the first few row
groups read in order, and no more) leave what was fetched ahead of them: pyarrow's own client
reads exactly, but it knows its caller's plan; a file only sees the reads. Row groups read
whole (``read_row_group``, every column), in any order, fetch nothing ahead: what is fetched
stays what is read.

The footer is parsed by pyarrow itself (``pyarrow.parquet.read_metadata``), and only when the
caller has already imported it: a file that merely ends in ``PAR1`` costs no import.
"""

from __future__ import annotations

import bisect
import struct
import sys
from typing import Any

__all__ = ["FIRST_WINDOW", "Layout", "Scan", "footer_span"]

Span = tuple[int, int]

_MAGIC = b"PAR1"
#: Chunks closer than this are fetched as one range (pyarrow's ``hole_size_limit``).
_HOLE = 8192
#: Chunks fetched ahead and not read yet, at most, when a scan is first seen; every read of
#: one doubles it. (Adding one instead, as TCP's slow start does per acknowledgement, made a
#: read_parquet over loopback a fifth slower: pyarrow's reads of the first row groups arrive
#: in any order, and most found their chunk not yet asked for.)
FIRST_WINDOW = 4


def footer_span(tail: bytes, size: int) -> Span | None:
    """Where the footer (metadata, length and magic) is, from the file's last 8 bytes; None if
    this is not a parquet file."""
    if len(tail) < 8 or tail[-4:] != _MAGIC:
        return None
    (length,) = struct.unpack("<I", tail[-8:-4])
    if length + 12 > size:
        return None
    return size - 8 - length, size


class Layout:
    """The column chunks of a parquet file: per row group, per column, its byte span."""

    def __init__(self, chunks: list[list[Span]]) -> None:
        self.chunks = chunks
        flat = sorted((s, e, rg, col) for rg, cols in enumerate(chunks)
                      for col, (s, e) in enumerate(cols) if e > s)
        self._starts = [s for s, _, _, _ in flat]
        self._flat = flat
        #: The first row group that has bytes: where a scan begins.
        self.first_group = min((rg for _, _, rg, _ in flat), default=0)
        #: Where the column chunks end (the footer follows).
        self.chunks_end = max((e for _, e, _, _ in flat), default=0)

    @classmethod
    def parse(cls, footer: bytes) -> Layout | None:
        """The layout from the footer's bytes (ending with the magic); None when pyarrow is
        not loaded, or cannot read it."""
        if "pyarrow.parquet" not in sys.modules:
            return None
        pa: Any = sys.modules.get("pyarrow")
        pq: Any = sys.modules["pyarrow.parquet"]
        try:
            meta = pq.read_metadata(pa.BufferReader(footer))
            chunks = []
            for i in range(meta.num_row_groups):
                group = meta.row_group(i)
                cols = []
                for j in range(group.num_columns):
                    col = group.column(j)
                    start = col.data_page_offset
                    if col.dictionary_page_offset is not None:
                        start = min(start, col.dictionary_page_offset)
                    cols.append((start, start + col.total_compressed_size))
                chunks.append(cols)
        except Exception:  # not ours to fail a read over: the scan just goes unaided
            return None
        return cls(chunks)

    def touched(self, start: int, end: int) -> list[tuple[int, int]]:
        """The (row group, column) of each chunk that ``[start, end)`` overlaps."""
        out = []
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        while i < len(self._flat) and self._flat[i][0] < end:
            s, e, rg, col = self._flat[i]
            if e > start:
                out.append((rg, col))
            i += 1
        return out


class Scan:
    """Follows an open file's reads over a parquet file's column chunks, and names the chunks
    to fetch ahead once they show a scan of some of the columns."""

    def __init__(self, layout: Layout, *, max_ahead: int) -> None:
        self.layout = layout
        self.max_ahead = max_ahead   # bytes fetched ahead and not read yet, at most
        self.rows: dict[int, set[int]] = {}  # column -> the row groups it was read in
        self.issued: set[tuple[int, int]] = set()
        self.ahead: dict[tuple[int, int], int] = {}  # fetched ahead, not read yet: bytes
        self.whole = False           # row groups are read whole: nothing is fetched ahead
        self.first: int | None = None  # the row group of the first chunk read
        self.window = FIRST_WINDOW   # chunks fetched ahead and not read yet, at most

    def observe(self, start: int, end: int) -> list[Span]:
        """A read of ``[start, end)``; returns the spans to fetch ahead now.

        A scan is a column read in two row groups, by reads that began with the first row
        group, while no read took a whole row group: pyarrow reads a column projection chunk
        by chunk (its reads, issued together, arrive here one at a time and not quite in
        order), and ``read_row_group``/``read_table`` of every column read each row group as
        one range, which says nothing of the next one."""
        touched = self.layout.touched(start, end)
        if not touched or self.whole or end > self.layout.chunks_end:
            return []  # a read into the footer (pyarrow's tail read for it) reads no chunk
        if self.first is None:
            self.first = min(rg for rg, _ in touched)
        for rg, col in touched:
            self.rows.setdefault(col, set()).add(rg)
            self.issued.add((rg, col))
            if self.ahead.pop((rg, col), None) is not None:
                self.window *= 2  # a chunk fetched ahead was read: the scan goes on
        groups = {rg for rg, _ in touched}
        if any(len([c for r, c in touched if r == rg]) == len(self.layout.chunks[rg])
               for rg in groups):
            self.whole = True
            return []
        if self.first != self.layout.first_group:
            return []  # row groups read by index, from the middle: not a scan
        if not any(len(rows) >= 2 for rows in self.rows.values()):
            return []
        # A scan has begun: pyarrow reads a projection row group by row group, so every column
        # read so far (in the first row group, some only there yet) is one of its columns.
        return self._ahead(set(self.rows))

    def _ahead(self, columns: set[int]) -> list[Span]:
        spans: list[Span] = []
        total = sum(self.ahead.values())
        for rg in range(len(self.layout.chunks)):
            wanted = [(self.layout.chunks[rg][col], (rg, col)) for col in sorted(columns)
                      if (rg, col) not in self.issued and col < len(self.layout.chunks[rg])]
            for (s, e), chunk in sorted(wanted):
                if total + (e - s) > self.max_ahead or len(self.ahead) >= self.window:
                    return spans
                self.issued.add(chunk)
                self.ahead[chunk] = e - s
                total += e - s
                if spans and s - spans[-1][1] <= _HOLE and spans[-1][1] <= s:
                    spans[-1] = (spans[-1][0], e)
                else:
                    spans.append((s, e))
        return spans
