"""attachfs's test helpers, imported here and nowhere else in the benchmark.

They live in ``attachfs.testing`` (older trees: ``attachfs.emulators``); only this module knows.
"""

from __future__ import annotations

try:
    from attachfs.testing import Emulators, apply_environment, peer_environment
except ImportError:  # before the package layout moved them
    from attachfs.emulators import Emulators, apply_environment, peer_environment

__all__ = ["Emulators", "apply_environment", "peer_environment"]
