"""The `cp` progress bar speaks fsspec's ``Callback`` interface, in both directions: fsspec's own
``get`` draws it, and `cp`'s copy reports to any ``Callback`` as fsspec's ``get_file`` does."""

from __future__ import annotations

import io
import re

import fsspec
import pytest
from fsspec.callbacks import Callback

from attachfs._cli import transfer
from attachfs._cli.transfer import FileProgress, ProgressBar
from stores import new_store


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.25  # every look at the clock is a quarter second later: every draw shows
        return self.now


def test_the_bar_is_an_fsspec_callback_that_fsspecs_get_draws(tmp_path):
    mem = fsspec.filesystem("memory")
    mem.pipe({"/src/a.bin": b"a" * 3000, "/src/b.bin": b"b" * 1000})
    screen = Terminal()
    bar = ProgressBar(screen, enabled=True, clock=Clock())
    assert isinstance(bar, Callback)

    mem.get(["/src/a.bin", "/src/b.bin"], str(tmp_path) + "/", callback=bar)
    bar.close()

    text = screen.getvalue()
    assert bar.size == 2 and bar.value == 2  # the outer callback counted files, as fsspec does
    assert re.search(r"\[1/2\] a\.bin\s+\[#+-*\]", text), text
    assert re.search(r"\[2/2\] b\.bin\s+\[#{20}\] 100%", text), text
    assert "copied 2 files, 3.9 KiB in" in text
    assert (tmp_path / "a.bin").read_bytes() == b"a" * 3000


def test_a_disabled_bar_draws_nothing_but_still_counts():
    screen = Terminal()
    bar = ProgressBar(screen, enabled=False)
    bar.set_size(1)
    with bar.branched("s3://b/k", "/tmp/k") as child:
        child.set_size(10)
        child.relative_update(10)
    bar.relative_update(1)
    bar.close()
    assert screen.getvalue() == "" and bar.done == 10 and bar.value == 1


def test_a_resumed_file_counts_as_done_but_not_as_moved():
    screen = Terminal()
    bar = ProgressBar(screen, enabled=True, clock=Clock())
    bar.set_size(1)
    child = bar.branched("s3://b/big.bin", "/tmp/big.bin")
    assert isinstance(child, FileProgress)
    child.set_size(1000)
    child.absolute_update(600)   # where the .part file ends
    child.relative_update(400)
    child.close()
    assert (bar.done, bar.moved) == (1000, 400)
    assert "resuming big.bin at 600 B of 1000 B" in screen.getvalue()


class Recording(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, int]] = []

    def set_size(self, size):
        self.events.append(("size", size))
        super().set_size(size)

    def relative_update(self, inc=1):
        self.events.append(("+", inc))
        super().relative_update(inc)


@pytest.mark.parametrize("size", [0, 5, 5 * 2**20 + 7])
def test_a_copy_reports_to_any_fsspec_callback(peers, tmp_path, size):
    import attachfs

    store = new_store("s3", peers)
    uri = store.put("obj.bin", b"x" * size)
    fs = attachfs.filesystem(config=peers.config(), skip_instance_cache=True)
    job = transfer.Job(uri, str(tmp_path / "obj.bin"))
    callback = Recording()

    transfer.copy_one(fs, job, callback)

    assert callback.events[0] == ("size", size)
    assert callback.value == size == sum(n for kind, n in callback.events if kind == "+")
    assert (tmp_path / "obj.bin").stat().st_size == size
