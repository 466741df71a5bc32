"""Run one case: a worker process per library, repetitions interleaved round by round.

Every worker is started and warmed up first; then each round asks every library for one
repetition, starting one library later each round, so slow drifts and bursts of load (other
jobs on this machine) spread over all libraries instead of landing on one. Only one worker
runs a repetition at a time, so nginx's access log between two of its lines is that
repetition's traffic.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def slug(case: str, lib: str) -> str:
    return f"{case}-{lib.replace(' ', '_').replace('+', '')}"


class WorkerProcess:
    """``python -m benchmarks.worker`` speaking one JSON line per command."""

    def __init__(self, spec: dict, env: dict, tmp: Path, prefix: list[str] | None = None):
        name = slug(spec["case"], spec["lib"])
        spec_path = tmp / f"{name}.spec.json"
        spec_path.write_text(json.dumps(spec))
        self.log_path = tmp / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*(prefix or []), sys.executable, "-m", "benchmarks.worker", str(spec_path)],
                cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                text=True, bufsize=1, start_new_session=True)

    def recv(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [],
                                        max(0.0, deadline - time.monotonic()))
            if not ready:
                self.kill()
                return {"error": f"no answer in {timeout:.0f} s"}
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                tail = self.log_path.read_text(errors="replace")[-1500:]
                return {"error": f"worker exited with code {self.proc.returncode}: {tail}"}
            if line.startswith("{"):
                return json.loads(line)
            # Not the worker's: py-spy, when profiling, prints its own lines on stdout.

    def command(self, command: str, timeout: float) -> dict:
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self.recv(0)
        return self.recv(timeout)

    def finish(self, timeout: float) -> dict:
        answer = self.command("done", timeout)
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)  # py-spy writes its profile after the worker exits
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        return answer

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def run_case(case: str, libs: list[str], spec: dict, env: dict, tmp: Path, *, reps: int,
             timeout: float, prefixes: dict[str, list[str]], progress=print) -> dict[str, dict]:
    """Raw results per library: repetitions' times/latencies and traffic, or an error."""
    workers = {lib: WorkerProcess(dict(spec, case=case, lib=lib), env, tmp, prefixes.get(lib))
               for lib in libs}
    results: dict[str, dict] = {lib: {"reps": [], "load": []} for lib in libs}
    try:
        for lib, worker in list(workers.items()):
            answer = worker.recv(timeout)
            if "error" in answer:
                results[lib] = answer
                worker.kill()
                del workers[lib]
        for r in range(reps):
            order = [lib for lib in libs if lib in workers]
            order = order[r % len(order):] + order[:r % len(order)] if order else []
            for lib in order:
                load = os.getloadavg()[0]
                answer = workers[lib].command("rep", timeout)
                if "error" in answer:
                    results[lib] = answer
                    workers.pop(lib).kill()
                    progress(f"({case}) {lib}: ERROR {answer['error'][:300]}")
                    continue
                results[lib]["reps"].append(answer)
                results[lib]["load"].append(load)
            progress(f"({case}) round {r + 1}/{reps} done")
        for lib, worker in workers.items():
            answer = worker.finish(timeout)
            if "error" in answer:
                results[lib] = answer
            else:
                results[lib].update(answer)
    finally:
        for worker in workers.values():
            worker.kill()
    return results
