"""What an open file fetches for each read, from the reads it has seen (pure).

A format reader's reads say how it walks a file, and each kind of walk wants its own fetch:

* **The head.** The first read of a new file from offset 0 fetches a little more than it asked
  for (``head``): file formats keep their headers there, read in many small pieces (HDF5's
  superblock and object headers, a zip's first member). A whole read (``read()``) fetches
  ``first_block``, so an attachment that fits is one request. No speculation goes past
  ``first_block`` (the file's ``block_size``): a caller who sets small blocks gets small
  requests.
* **Random reads** (a seek, then a read) fetch what was asked for, extended only by what the
  reads seen so far show follows such a read: each *run* (a read after a seek, and the reads
  that continue it) is remembered, and a new run fetches its first read plus the extension that
  a quarter of the recent runs went past their first read (zip members: a 30-byte header, then
  the name and the data; tar members and parquet row groups by index: nothing). A read near the
  object's end reaches to the end (footers are read in pieces).
* **Streams.** A read that continues the previous one of a similar size (at least half as
  large), when the run began at offset 0 or has already continued once before, is a stream:
  the rest of the read is fetched and the next ``readahead`` bytes start in the background, the
  first read-ahead sized from the reads seen (a read's size), doubling as the caller keeps
  up, to ``max_readahead``.

Speculation (bytes fetched beyond what a read needed) is kept within a budget of
``waste`` times the bytes asked for plus ``allowance``, unless it is a stream's read-ahead: a
random walk over a file costs about the bytes it needs, never a fixed minimum per seek.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ._limits import FIRST_BLOCK, HEAD_FETCH, MAX_READAHEAD, SPECULATION_ALLOWANCE

__all__ = ["Pattern", "Plan", "Span"]

Span = tuple[int, int]

#: Runs remembered for the extension estimate.
_RUNS = 16
#: Speculative intervals tracked for the budget (older unread ones count as wasted).
_TRACKED = 64
#: Which of the recent runs' extensions a new run fetches ahead: the lower quartile, so a run
#: shorter than most costs little and a longer one makes one more request.
_QUANTILE = 0.25
#: How much each read-ahead window grows over the last while the caller keeps up.
_GROWTH = 4


@dataclass
class Plan:
    """What to fetch for one read: ``fetch`` now (covering every missing byte of the read),
    ``prefetch`` in the background."""

    fetch: list[Span] = field(default_factory=list)
    prefetch: Span | None = None


class Pattern:
    """The reads of one open file, and what each should fetch (see the module docstring)."""

    def __init__(self, *, first_block: int = FIRST_BLOCK, max_readahead: int = MAX_READAHEAD,
                 min_fetch: int = 0, head: int = HEAD_FETCH, waste: float = 0.1,
                 allowance: int = SPECULATION_ALLOWANCE) -> None:
        self.first_block = max(1, first_block)
        self.max_readahead = max(1, max_readahead)
        self.min_fetch = max(0, min_fetch)
        self.head = max(0, head)
        self.waste = max(0.0, waste)
        self.allowance = max(0, allowance)
        self.last_end: int | None = None   # where the previous read ended
        self.prev_n = 0                    # its length
        self.run_start = 0                 # the current run: where it began,
        self.run_first = 0                 # its first read's length,
        self.run_misses = 0                # how often a continuing read of it missed
        self.extensions: deque[int] = deque(maxlen=_RUNS)
        self.streaming = False
        self.readahead = 0                 # the last read-ahead's size
        self.front = 0                     # a stream's data ends here (fetched or in flight)
        self.asked = 0                     # bytes reads needed that were not there
        self.wasted = 0                    # speculative bytes never read (forgotten ones)
        self._spec: deque[Span] = deque()  # speculative bytes not read yet

    # -- the budget ---------------------------------------------------------------------------

    def budget(self) -> int:
        """Speculative bytes that may be fetched now."""
        outstanding = sum(e - s for s, e in self._spec)
        return max(0, int(self.waste * self.asked) + self.allowance - outstanding
                   - self.wasted)

    def speculated(self, start: int, end: int) -> None:
        """Bytes ``[start, end)`` were fetched ahead of any read (counted until read)."""
        if end > start:
            self._spec.append((start, end))
            while len(self._spec) > _TRACKED:
                s, e = self._spec.popleft()
                self.wasted += e - s

    def _credit(self, start: int, end: int) -> None:
        kept: deque[Span] = deque()
        for s, e in self._spec:
            if e <= start or s >= end:
                kept.append((s, e))
                continue
            if s < start:
                kept.append((s, start))
            if end < e:
                kept.append((end, e))
        self._spec = kept

    # -- one read -----------------------------------------------------------------------------

    def plan(self, start: int, end: int | None, size: int | None, gaps: list[Span]) -> Plan:
        """The fetches for a read of ``[start, end)`` (``end`` None: to the end of an object
        of unknown size) whose missing parts are ``gaps``; ``size`` None before the first
        answer."""
        n = (end - start) if end is not None else self.first_block
        continuing = self.last_end is not None and start == self.last_end
        if not continuing:
            self._end_run()
            self.run_start, self.run_first, self.run_misses = start, n, 0
        self._credit(start, start + n)
        plan = Plan()
        if gaps:
            self.asked += sum(e - s for s, e in gaps)
            if size is None:
                plan.fetch = [self._first(start, end, n)]
            elif continuing and self._streams(n):
                plan = self._stream(gaps, start + n, size)
            else:
                plan.fetch = self._random(gaps, start, n, size, continuing)
            if continuing:
                self.run_misses += 1
        elif self.streaming and size is not None:
            plan.prefetch = self._next_window(start + n, size)
        self.last_end, self.prev_n = start + n, n
        return plan

    def _end_run(self) -> None:
        if self.last_end is not None:
            self.extensions.append(max(0, self.last_end - self.run_start - self.run_first))
        self.streaming, self.readahead = False, 0

    def _first(self, start: int, end: int | None, n: int) -> Span:
        """The first request of a file: its size is not known yet."""
        if end is None:  # a whole read: the first block (an attachment that fits is one GET)
            want = self.first_block
        elif start == 0:
            want = max(n, min(self.head, self.budget(), self.first_block), self.min_fetch)
        else:
            want = max(n, self.min_fetch)
        self.speculated(start + n, start + want)
        return start, start + want

    def _streams(self, n: int) -> bool:
        if self.streaming:
            return True
        similar = 2 * self.prev_n >= n
        return similar and (self.run_start == 0 or self.run_misses >= 1)

    def _stream(self, gaps: list[Span], end: int, size: int) -> Plan:
        self.streaming = True
        # The first read-ahead is sized from the reads seen: as much as this one missed.
        self.readahead = max(self.readahead, (end - gaps[0][0]) // _GROWTH)
        fetch = [(s, e) for s, e in gaps]
        self.front = max(self.front, end)
        return Plan(fetch, self._next_window(end, size))

    def _next_window(self, end: int, size: int) -> Span | None:
        """The stream's next read-ahead, once what is ahead of the caller runs short."""
        if self.front >= size or self.front - end >= self.readahead:
            return None
        ahead = min(max(_GROWTH * self.readahead, 1), self.max_readahead)
        self.readahead = ahead
        start, stop = max(self.front, end), min(size, max(self.front, end) + ahead)
        self.front = stop
        return (start, stop) if stop > start else None

    def _random(self, gaps: list[Span], start: int, n: int, size: int,
                continuing: bool) -> list[Span]:
        """A seek's read (or a continuing one that is not a stream): the gaps, the last one
        extended by what runs like this one have needed next, and to the end of the object
        when that is near."""
        fetch = list(gaps[:-1])
        g_start, g_end = gaps[-1]
        want = g_end
        budget = self.budget()
        if not continuing and g_end == start + n:  # ahead of the read, never behind held bytes
            extension = min(self._extension(), budget, self.first_block)
            want = min(size, max(want, start + max(n, self.min_fetch) + extension))
        if size - want <= min(budget, self.head):  # a footer read in pieces: to the end
            want = size
        self.speculated(g_end, want)
        fetch.append((g_start, want))
        return fetch

    def _extension(self) -> int:
        if len(self.extensions) < 2:
            return 0
        ordered = sorted(self.extensions)
        return ordered[int(_QUANTILE * (len(ordered) - 1))]
