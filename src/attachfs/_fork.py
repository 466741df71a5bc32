"""One fork hook for the whole library.

A forked child (a PyTorch DataLoader worker, a multiprocessing pool) inherits locks that may be
held by a thread that does not exist in the child, and open SQLite connections that must not be
shared. Modules that hold such state register here; one ``os.register_at_fork`` runs them in
registration order (``before`` in reverse, as a stack).
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["at_fork"]

_before: list[Callable[[], None]] = []
_after_in_parent: list[Callable[[], None]] = []
_after_in_child: list[Callable[[], None]] = []


def at_fork(*, before: Callable[[], None] | None = None,
            after_in_parent: Callable[[], None] | None = None,
            after_in_child: Callable[[], None] | None = None) -> None:
    """Run these callables around every ``os.fork()`` of this process."""
    if before is not None:
        _before.append(before)
    if after_in_parent is not None:
        _after_in_parent.append(after_in_parent)
    if after_in_child is not None:
        _after_in_child.append(after_in_child)


def _run(hooks: list[Callable[[], None]]) -> Callable[[], None]:
    def run() -> None:
        for hook in list(hooks):
            hook()

    return run


def _run_before() -> None:
    for hook in reversed(list(_before)):
        hook()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(before=_run_before, after_in_parent=_run(_after_in_parent),
                        after_in_child=_run(_after_in_child))
