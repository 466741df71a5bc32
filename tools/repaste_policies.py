"""Re-paste every ``<!-- policy: ARGS -->`` block of docs/ with what the command prints now.

tests/test_docs_policy.py fails when a pasted output is stale; this rewrites them all from the
example config (docs/examples/policy-example.toml). Run: ``.venv/bin/python tools/repaste_policies.py``.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

from attachfs._cli.commands import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "policy-example.toml"
BLOCK = re.compile(r"^(<!-- policy: (?P<args>.+?) -->\n```[a-z]*\n)(?P<body>.*?)^```$", re.S | re.M)


def printed(args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["policy", *shlex.split(args), "--config", str(EXAMPLE)])
    return out.getvalue()


def main_() -> None:
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        new = BLOCK.sub(lambda m: m[1] + printed(m["args"]) + "```", text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            print(f"re-pasted {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main_()
