"""Read a config file into a plain mapping, bounded before it is parsed.

tomllib recurses once per nesting level and handles dotted keys in quadratic time, so a file
is measured for size, nesting and key parts before tomllib sees it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from .._errors import ConfigError

#: Bounds checked before a config is parsed: tomllib recurses once per nesting level (100,000
#: ``[`` is a RecursionError) and its dotted-key handling is quadratic (one key of 20,000 parts,
#: a 40 KB file, takes seconds and 1.5 GiB), so size alone is no bound. A real config is tens of
#: KB, nests 3 deep and has keys of 2-4 parts; 2,000 tenants are ~250 KB. Within these bounds
#: the worst file parses in about 5 s (once: a loaded file is cached).
MAX_CONFIG_BYTES = 4 * 2**20
MAX_DEPTH = 32
MAX_KEY_PARTS = 16


def read_toml(path: str, size: int) -> dict[str, Any]:
    """The TOML file at ``path`` (``size`` bytes when it was stat'ed) as a mapping; a
    ``ConfigError`` naming the file for one that is too large, too deep or not TOML."""
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"the config file is {size} bytes, over the {MAX_CONFIG_BYTES}-"
                          "byte bound: a config names tenants and identities, never data",
                          source=path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"cannot read the config file ({err.strerror})", source=path) from err
    if len(raw) > MAX_CONFIG_BYTES:  # it grew since it was stat'ed
        raise ConfigError(f"the config file is over the {MAX_CONFIG_BYTES}-byte bound",
                          source=path)
    try:
        text = raw.decode("utf-8")
        _prescan(text, path)
        data: dict[str, Any] = tomllib.loads(text)
        return data
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"not valid TOML: {err}", source=path) from None
    except (RecursionError, MemoryError):  # a backstop: _prescan bounds both
        raise ConfigError("the config is too deeply nested or too large to parse",
                          source=path) from None


_TOML_TOKEN = re.compile(r'"""|' + r"'''" + r"""|["'#\[\]{}=.,\n]""")
_TOML_STRING_END = {
    '"': re.compile(r'(?:[^"\\\n]|\\.)*"'),
    "'": re.compile(r"[^'\n]*'"),
    '"""': re.compile(r'(?:[^\\]|\\.)*?"""(?!")', re.S),
    "'''": re.compile(r".*?'''(?!')", re.S),
}


def _prescan(text: str, path: str) -> None:
    """Refuse, before tomllib sees it, TOML nested deeper than ``MAX_DEPTH`` (arrays, inline
    tables) or with a key of more than ``MAX_KEY_PARTS`` dotted parts. Strings and comments are
    skipped; anything malformed is left for tomllib to report."""
    depth, parts, pos = 0, 1, 0
    while (m := _TOML_TOKEN.search(text, pos)) is not None:
        token, pos = m[0], m.end()
        if token in _TOML_STRING_END:
            end = _TOML_STRING_END[token].match(text, pos)
            if end is None:
                return  # an unterminated string: tomllib says where
            pos = end.end()
        elif token == "#":
            newline = text.find("\n", pos)
            pos = len(text) if newline < 0 else newline
        elif token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"nested more than {MAX_DEPTH} levels deep (arrays or inline "
                                  "tables): a config is a few tables of names", source=path)
            parts = 1
        elif token in "]}":
            depth = max(depth - 1, 0)
        elif token == ".":
            parts += 1
            if parts > MAX_KEY_PARTS:
                raise ConfigError(f"a key has more than {MAX_KEY_PARTS} dotted parts",
                                  source=path)
        else:  # "=", "," or a newline: a new key may start after each
            parts = 1


def check_depth(value: Any, path: str | None) -> None:
    """Refuse a mapping (or its lists) nested deeper than ``MAX_DEPTH``, or containing itself,
    without recursing."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise ConfigError(f"nested more than {MAX_DEPTH} levels deep: a config is a few "
                              "tables of names", source=path)
        if isinstance(item, Mapping):
            todo += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, (list, tuple)):
            todo += [(v, depth + 1) for v in item]
