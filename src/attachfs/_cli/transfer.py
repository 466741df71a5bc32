"""`attachfs cp`: plan local destinations, copy each object resumably, show progress.

A copy is written to ``DEST.part``; ``DEST.part.json`` records which object and version those
bytes are (a hash of the URI, never the URI: a signed URL is a credential). A later run resumes
with a ranged read from the end of the ``.part`` only if the object is still that version and
size; otherwise it starts over. Every range is pinned to the version (the file objects do that),
the size is verified before the rename, and an object that changes mid-copy fails with
``IntegrityError`` and leaves nothing to resume. Without a version (a plain http server that
sends no ETag) there is no telling whose bytes a ``.part`` holds, so such copies never resume.

Keys are not trusted as paths: a key with empty, ``.`` or ``..`` segments is refused before
anything is written (a bucket is customer input).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TextIO
from urllib.parse import unquote, urlsplit

from fsspec.callbacks import DEFAULT_CALLBACK, Callback

from .._errors import IntegrityError, not_found
from .._redact import redact
from .._uri import parse

if TYPE_CHECKING:
    from .._filesystem import AttachFileSystem

#: Sequential read size, and the block asked for at open (small: a resumed copy may not need
#: the object's start at all).
CHUNK = 2 * 2**20
OPEN_BLOCK = 256 * 2**10


class Readable(Protocol):
    """What ``copy_stream`` reads from: an open binary file."""

    def read(self, size: int, /) -> bytes: ...


def copy_stream(f: Readable, write: Callable[[bytes], Any], chunk: int = CHUNK,
                advance: Callable[[int], None] | None = None) -> None:
    """Read ``f`` to its end in ``chunk``-sized pieces."""
    while True:
        data = f.read(chunk)
        if not data:
            return
        write(data)
        if advance is not None:
            advance(len(data))


@dataclass
class Job:
    uri: str
    target: str
    size: int | None = None


def plan(fs: AttachFileSystem, uris: list[str], dest: str, recursive: bool) -> list[Job]:
    """Where each object goes: DEST itself (one URI, DEST not a directory), DEST/NAME, or with
    ``recursive`` DEST/PATH-UNDER-THE-PREFIX for every object below each URI."""
    into_dir = os.path.isdir(dest) or dest.endswith(("/", os.sep))
    jobs: list[Job] = []
    for uri in uris:
        if recursive:
            base = uri if uri.endswith("/") else uri + "/"
            found = fs.find(uri, detail=True)
            if not found:
                raise not_found(uri, "no object under it")
            for name, info in sorted(found.items()):
                if info.get("type") == "directory" or name.endswith("/"):
                    continue
                rel = name[len(base):] if name.startswith(base) else basename(name)
                jobs.append(Job(name, os.path.join(dest, _local_path(name, rel)),
                                info.get("size")))
            into_dir = True
        else:
            jobs.append(Job(uri, dest))
    if len(jobs) > 1 or recursive:
        into_dir = True
        if os.path.exists(dest) and not os.path.isdir(dest) or not os.path.exists(dest) and \
                not (recursive or dest.endswith(("/", os.sep))):
            raise ValueError(f"copying {len(jobs)} objects: DEST {dest!r} must be a directory "
                             "(an existing one, or end it with '/' to create it)")
    for job in jobs:
        if not recursive and into_dir:
            job.target = os.path.join(dest, _local_path(job.uri, basename(job.uri)))
    return jobs


def basename(uri: str) -> str:
    loc = parse(uri)
    key = unquote(urlsplit(loc.url).path) if loc.backend == "http" else loc.key
    name = key.rstrip("/").rsplit("/", 1)[-1]
    if not name or key.endswith("/"):
        raise ValueError(f"{redact(uri)} names no file to copy (empty or ends in '/'): use "
                         "-r for a prefix, or give DEST a file name")
    return name


def _local_path(uri: str, rel: str) -> str:
    """``rel`` as a path under the destination; never outside it (a key is not trusted)."""
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or os.sep in rel.replace("/", "") \
            or (os.altsep and os.altsep in rel):
        raise ValueError(f"{redact(uri)}: key {rel!r} is not a safe local path (empty, '.' "
                         "or '..' segments); copy it by name to a file DEST instead")
    return os.path.join(*parts)


def copy_one(fs: AttachFileSystem, job: Job, callback: Callback = DEFAULT_CALLBACK
             ) -> dict[str, Any]:
    """Copy one object to ``job.target`` through ``target.part``, resuming a partial copy of
    the same version; the size is verified before the rename.

    ``callback`` is an fsspec ``Callback`` for this file, used as fsspec's ``get_file`` uses
    one: ``set_size(object size)``, ``absolute_update(resumed offset)`` when resuming, then
    ``relative_update(n)`` per chunk written."""
    part, meta_path = job.target + ".part", job.target + ".part.json"
    parent = os.path.dirname(job.target)
    if parent:
        os.makedirs(parent, exist_ok=True)
    source = hashlib.sha256(job.uri.encode()).hexdigest()  # never the URI: it may be signed
    with fs.open(job.uri, "rb", block_size=OPEN_BLOCK) as f:
        offset = 0
        if os.path.exists(part) and os.path.exists(meta_path):
            # The object's size and version now (one small request), against the .part's.
            size_now = f.size
            offset = _resumable(part, meta_path, {"source_sha256": source,
                                                  "version": f.version, "size": size_now})
            f.seek(offset)
        first = f.read(CHUNK)  # a fresh copy learns size and version from this first read
        size, version = f.size, f.version
        if not offset:
            _write_meta(meta_path, {"source_sha256": source, "version": version, "size": size})
        callback.set_size(size)
        if offset:
            callback.absolute_update(offset)
        with open(part, "ab" if offset else "wb") as out:
            try:
                out.write(first)
                callback.relative_update(len(first))
                copy_stream(f, out.write, advance=callback.relative_update)
            except IntegrityError:
                out.close()
                _remove(part, meta_path)  # bytes of an older version: never resume them
                raise
            out.flush()
            os.fsync(out.fileno())
    got = os.path.getsize(part)
    if got != size:
        _remove(part, meta_path)
        raise IntegrityError(f"{redact(job.uri)}: copied {got} bytes but the object has "
                             f"{size}; the partial copy was removed, run cp again",
                             uri=redact(job.uri))
    os.replace(part, job.target)
    _remove(meta_path)
    return {"uri": redact(job.uri), "dest": job.target, "size": size, "version": version,
            "resumed_from": offset}


def _resumable(part: str, meta_path: str, meta: dict[str, Any]) -> int:
    """How many bytes of ``part`` are this very object's (0: start over)."""
    if meta["version"] is None or not os.path.exists(part):
        return 0   # without a version there is no telling whose bytes the .part holds
    try:
        with open(meta_path, encoding="utf-8") as fh:
            saved = json.load(fh)
    except (OSError, ValueError):
        return 0
    have = os.path.getsize(part)
    if saved != meta or have > meta["size"]:
        return 0
    return have


def _write_meta(path: str, meta: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(meta, fh)
    os.replace(tmp, path)


def _remove(*paths: str) -> None:
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBar(Callback):
    """A transfer's progress as one self-rewriting line on a terminal (``\\r``), built on
    fsspec's ``Callback`` interface, so anything that reports through it (``fs.get(...,
    callback=)``, ``cp``) draws the same bar.

    As fsspec's ``get`` uses a callback: this one counts files (``set_size(n_files)``,
    ``relative_update(1)`` per file done) and ``branched(source, dest)`` hands each file a
    child ``FileProgress`` that counts its bytes.

    ``[2/5] name  [#####-----]  48%  12.0 MiB/25.0 MiB  6.1 MiB/s``: the bar follows all bytes
    when ``total_bytes`` is known up front (``cp -r``), else the current file. Throughput counts
    only bytes moved in this run (not a resumed part). Redraws at most every 0.1 s; draws
    nothing when ``enabled`` is false.
    """

    def __init__(self, stream: TextIO, *, enabled: bool, total_bytes: int | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(size=None, value=0)
        self.stream, self.enabled, self.total_bytes = stream, enabled, total_bytes
        self.clock = clock
        self.started = clock()
        self.index = 0          # files started
        self.name, self.file_size, self.file_done = "", 0, 0
        self.done = 0           # bytes of finished files + the current one (incl. resumed)
        self.moved = 0          # bytes read in this run
        self._drawn = 0.0
        self._width = 0

    # -- fsspec's Callback: the files

    def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
        super().call(hook_name, **kwargs)
        self._draw()

    def branched(self, path_1: str, path_2: str, **kwargs: Any) -> FileProgress:
        return FileProgress(self, os.path.basename(str(path_2).rstrip("/\\")) or str(path_2))

    def close(self) -> None:
        if not self.enabled:
            return
        elapsed = max(self.clock() - self.started, 1e-6)
        files = f"{self.index} file{'s' if self.index != 1 else ''}"
        self._line(f"copied {files}, {human(self.done)} in {elapsed:.1f} s "
                   f"({human(self.moved / elapsed)}/s)", end="\n")

    def interrupted(self) -> None:
        if self.enabled:
            self._line("interrupted: run the same command again to resume", end="\n")

    def abandon(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()

    # -- what a FileProgress reports

    def _file_started(self, name: str) -> None:
        self.index += 1
        self.name, self.file_size, self.file_done = name, 0, 0

    def _file_sized(self, size: int) -> None:
        self.file_size = max(size, 0)
        self._draw(force=True)

    def _file_resumed(self, offset: int) -> None:
        self.file_done += offset
        self.done += offset
        if self.enabled:
            self._line(f"resuming {self.name} at {human(offset)} of {human(self.file_size)}",
                       end="\n")
        self._draw(force=True)

    def _file_advanced(self, n: int) -> None:
        self.file_done += n
        self.done += n
        self.moved += n
        self._draw()

    # -- drawing

    def _draw(self, force: bool = False) -> None:
        if not self.enabled or not self.index:
            return
        now = self.clock()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        if self.total_bytes:
            done, whole = self.done, self.total_bytes
        else:
            done, whole = self.file_done, self.file_size
        fraction = 1.0 if whole == 0 else min(done / whole, 1.0)
        rate = self.moved / max(now - self.started, 1e-6)
        bar = "#" * int(fraction * 20) + "-" * (20 - int(fraction * 20))
        files = self.size or 0
        count = f"[{self.index}/{files}] " if files > 1 else ""
        self._line(f"{count}{self.name}  [{bar}] {fraction * 100:3.0f}%  "
                   f"{human(done)}/{human(whole)}  {human(rate)}/s")

    def _line(self, text: str, end: str = "") -> None:
        width = _columns(self.stream) - 1
        if len(text) > width:
            text = "..." + text[-(width - 3):]
        pad = " " * max(self._width - len(text), 0)
        self.stream.write("\r" + text + pad + end)
        self.stream.flush()
        self._width = 0 if end else len(text)


class FileProgress(Callback):
    """One file's bytes, as fsspec's child callbacks count them: ``set_size(bytes)``, then
    ``relative_update(n)`` per chunk. An ``absolute_update(offset)`` before any chunk is a
    resumed copy's starting point (counted as done, not as moved in this run)."""

    size: int | None
    value: int

    def __init__(self, bar: ProgressBar, name: str):
        super().__init__(size=None, value=0)
        self.bar = bar
        bar._file_started(name)

    def set_size(self, size: int | None) -> None:
        self.size = size
        self.bar._file_sized(size or 0)

    def relative_update(self, inc: int = 1) -> None:
        self.value += inc
        self.bar._file_advanced(inc)

    def absolute_update(self, value: int) -> None:
        step = value - self.value
        self.value = value
        if step > 0 and self.value == step:  # nothing moved yet: where a resume starts
            self.bar._file_resumed(step)
        elif step:
            self.bar._file_advanced(step)

    def close(self) -> None:
        self.bar._draw(force=True)


def _columns(stream: TextIO) -> int:
    try:
        return max(os.get_terminal_size(stream.fileno()).columns, 40)
    except (AttributeError, ValueError, OSError):
        return 80


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


