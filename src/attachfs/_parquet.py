"""Which parquet column chunks a scan will read next, so an open file can fetch them together.

pandas hands pyarrow a Python file object, and pyarrow then reads the column chunks one at a
time through it: one request after another, where pyarrow's own S3 client has several in
flight. Once the footer is read, its metadata says where every column chunk is; once the reads
show a scan (row group 0, then row group 1 with the same columns, as ``read_table`` and
``iter_batches`` do), the chunks of those columns in the row groups ahead are fetched
concurrently, a window that doubles as the scan keeps up. Reads of row groups by index, in any
other order, fetch nothing ahead: what is fetched stays what is read.

The footer is parsed by pyarrow itself (``pyarrow.parquet.read_metadata``), and only when the
caller has already imported it: a file that merely ends in ``PAR1`` costs no import.
"""

from __future__ import annotations

import bisect
import struct
import sys
from typing import Any

__all__ = ["Layout", "Scan", "footer_span"]

Span = tuple[int, int]

_MAGIC = b"PAR1"
#: Chunks closer than this are fetched as one range (pyarrow's ``hole_size_limit``).
_HOLE = 8192


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
    """Follows an open file's reads over a parquet file's row groups, and names the column
    chunks to fetch ahead once they show a scan."""

    def __init__(self, layout: Layout, *, max_ahead: int) -> None:
        self.layout = layout
        self.max_ahead = max_ahead   # bytes fetched ahead of the scan, at most
        self.columns: set[int] = set()  # the columns the scan reads
        self.position = -1           # the furthest row group it read (-1: not a scan yet)
        self.window = 1              # row groups fetched ahead
        self.issued: set[tuple[int, int]] = set()
        self.ahead: dict[tuple[int, int], int] = {}  # fetched ahead, not read yet: bytes
        self.broken = False

    def observe(self, start: int, end: int) -> list[Span]:
        """A read of ``[start, end)``; returns the spans to fetch ahead now (none unless the
        reads are a scan)."""
        if self.broken:
            return []
        touched = self.layout.touched(start, end)
        if not touched:
            return []
        groups = {rg for rg, _ in touched}
        cols = {col for _, col in touched}
        if self.position < 0:
            if groups == {0}:
                self.columns |= cols
                return []
            if not self.columns or not groups <= {0, 1} or not cols <= self.columns:
                self.broken = True  # row groups by index: fetch what is read, nothing more
                return []
            self.position = 1
        else:
            # pyarrow issues a scan's reads together and they arrive a little out of order:
            # the scan is where its furthest read is.
            self.columns |= cols
            furthest = max(groups)
            if furthest > self.position:
                self.window = min(self.window * 2, len(self.layout.chunks))
                self.position = furthest
        self.issued.update(touched)
        for chunk in touched:
            self.ahead.pop(chunk, None)
        return self._ahead()

    def _ahead(self) -> list[Span]:
        spans: list[Span] = []
        total = sum(self.ahead.values())
        last = min(len(self.layout.chunks), self.position + 1 + self.window)
        for rg in range(last):
            wanted = [(self.layout.chunks[rg][col], (rg, col)) for col in sorted(self.columns)
                      if (rg, col) not in self.issued and col < len(self.layout.chunks[rg])]
            for (s, e), chunk in sorted(wanted):
                if total + (e - s) > self.max_ahead:
                    return spans
                self.issued.add(chunk)
                self.ahead[chunk] = e - s
                total += e - s
                if spans and s - spans[-1][1] <= _HOLE and spans[-1][1] <= s:
                    spans[-1] = (spans[-1][0], e)
                else:
                    spans.append((s, e))
        return spans
