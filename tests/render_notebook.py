"""Run the example notebook and render it, with its outputs, as markdown for the docs site.

``python tests/render_notebook.py`` executes docs/examples/quickstart.ipynb in a real Jupyter
kernel (it starts and stops its own emulators) and writes the result into
docs/recipes/notebook.md, between the ``<!-- notebook: ... -->`` and ``<!-- end notebook -->``
markers. tests/test_notebook.py runs the notebook the same way and fails when the page no
longer shows what it prints.

The notebook itself is committed without outputs (a reader runs it); the site shows it run.
What changes from run to run (ports, temporary directories) is written as a fixed placeholder,
so the page only changes when the notebook's code or output does.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "examples" / "quickstart.ipynb"
PAGE = ROOT / "docs" / "recipes" / "notebook.md"
BEGIN = "<!-- notebook: examples/quickstart.ipynb, run by tests/render_notebook.py -->"
END = "<!-- end notebook -->"

# Run-to-run noise, and what stands in for it on the page.
_VOLATILE = [
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"/tmp/[\w.-]*attachfs[\w.-]*"), "/tmp/attachfs-notebook-XXXX"),
    (re.compile(r"at 0x[0-9a-f]+"), "at 0x..."),
    (re.compile(r"digest='[0-9a-f]+'"), "digest='...'"),  # a hash of the config: ports in it
]


def stable(text: str) -> str:
    for pattern, placeholder in _VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


def execute(path: Path = NOTEBOOK, extra_cell: str | None = None, timeout: int = 120):
    """The executed notebook (nbformat node); ``extra_cell`` runs last (never saved)."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if extra_cell is not None:
        nb.cells.append(nbformat.v4.new_code_cell(extra_cell))
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def output_text(cell) -> str:
    """What a reader sees under a code cell, as text."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.data.get("text/plain", ""))
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts if p)


def to_markdown(cells) -> str:
    """Markdown cells as they are (headings one level down: the page has its own title), code
    cells as python blocks, each followed by its output as a text block."""
    blocks = []
    for cell in cells:
        source = cell.source.rstrip("\n")
        if cell.cell_type == "markdown":
            blocks.append(re.sub(r"^(#+) ", r"#\1 ", source, flags=re.M))
        elif cell.cell_type == "code":
            blocks.append(f"```python\n{source}\n```")
            out = output_text(cell)
            if out.strip():
                blocks.append(f"```text\n{stable(out).rstrip()}\n```")
    return "\n\n".join(blocks) + "\n"


def region(page: str) -> str:
    """The generated part of the page."""
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    return page[start:end].strip("\n") + "\n"


def write(rendered: str, page: Path = PAGE) -> None:
    text = page.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    page.write_text(text[:start] + "\n\n" + rendered + "\n" + text[end:], encoding="utf-8")


def main() -> int:
    nb = execute()
    write(to_markdown(nb.cells))
    print(f"wrote the run of {NOTEBOOK.relative_to(ROOT)} into {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
