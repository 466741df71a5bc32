"""Where a library's time goes: py-spy over a whole worker, summarised from its raw stacks.

py-spy samples every thread (attachfs, s3fs and obstore.fsspec do their I/O on fsspec's event
loop thread, which cProfile in the main thread never sees); ``--format raw --nolineno`` writes
one line per distinct stack, ``frame;frame;...;leaf count``. The summary shows where samples
end (self time) and which functions of interest they pass through (inclusive time). Idle
threads are not sampled, so the numbers are CPU time, including the worker's warm-up but not
its imports (stacks through ``_find_and_load`` are left out) or waiting (``WAITING``).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from pathlib import Path

#: Frames worth an inclusive line: the libraries under test and what they run on.
INTERESTING = ("attachfs", "fsspec", "s3fs", "aiobotocore", "botocore", "aiohttp", "pyarrow",
               "obstore", "boto3", "smart_open", "asyncio", "ssl", "http")
#: Leaves where a thread waits (py-spy cannot always tell an idle thread): an event loop in
#: select, a pool thread in its queue's C get(), a condition wait, the harness's log settling.
WAITING = ("EpollSelector.select ", "_worker (concurrent/futures/thread.py", "Condition.wait ",
           "Event.wait ", "settle (benchmarks/nginx.py", "Thread.join ")
_LINE = re.compile(r":\d+\)$")


def pyspy_command(output: Path, rate: int = 200) -> list[str]:
    """The prefix that runs a command under py-spy, writing raw stacks to ``output``."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    return [pyspy, "record", "--rate", str(rate), "--format", "raw", "--output", str(output),
            "--"]


def summarize(raw: Path, top: int = 25) -> str:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = imports = waiting = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any(f.startswith("_find_and_load ") for f in frames):
            imports += n  # one-time import cost, not the read path
            continue
        if frames[-1].startswith(WAITING):
            waiting += n
            continue
        total += n
        self_time[frames[-1]] += n  # with its line number: where exactly
        for frame in {_LINE.sub(")", f) for f in frames}:
            if any(f"({name}" in frame or f"/{name}" in frame for name in INTERESTING):
                inclusive[frame] += n
    if not total:
        return f"{raw}: no samples"
    lines = [f"{raw.name}: {total} samples busy ({imports} more in imports and {waiting} "
             "waiting, left out)", "", "self (where the samples end):"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in self_time.most_common(top)]
    lines += ["", "inclusive (samples passing through):"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)
