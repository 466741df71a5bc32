"""The ``attachfs`` command line (``main``): cat, cp, ls, stat, explain, check, policy, demo."""

from .commands import main

__all__ = ["main"]
