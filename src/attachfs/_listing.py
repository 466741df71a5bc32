"""Listings: how deep a name lies below a root, and the root and depth a glob lists, as
fsspec's ``AsyncFileSystem._glob`` computes them. Pure.

attachfs applies ``maxdepth`` itself after the inner filesystem answered, because adlfs does not
apply it (s3fs and gcsfs do): a ``get(dir, recursive=True, maxdepth=1)`` on Azure would
otherwise copy every level.
"""

from __future__ import annotations

__all__ = ["GLOB_CHARS", "below", "glob_limit", "is_glob"]

GLOB_CHARS = ("*", "?", "[")


def is_glob(key: str) -> bool:
    """Whether ``key`` has a glob character (checked per path of a batch: kept cheap)."""
    return "*" in key or "?" in key or "[" in key


def below(root: str, name: str) -> int:
    """How many levels below the inner path ``root`` the inner name ``name`` is (0: itself)."""
    root, name = root.strip("/"), name.strip("/")
    if name == root:
        return 0
    if root:
        if not name.startswith(root + "/"):
            return 0
        name = name[len(root) + 1:]
    return name.count("/") + 1


def glob_limit(pattern: str, maxdepth: int | None) -> tuple[str, int | None]:
    """The root a glob of ``pattern`` lists and how deep below it a match may be, as fsspec's
    ``AsyncFileSystem._glob`` computes them (None: no limit)."""
    magic = min((i for i in (pattern.find(c) for c in GLOB_CHARS) if i >= 0),
                default=len(pattern))
    cut = pattern.rfind("/", 0, magic)
    root = pattern[:cut + 1] if cut >= 0 else ""
    depth: int | None = pattern[cut + 1:].count("/") + 1
    if "**" in pattern:
        if maxdepth is None:
            return root, None
        assert depth is not None
        depth = depth - (pattern[pattern.find("**"):].count("/") + 1) + maxdepth
    return root, depth
