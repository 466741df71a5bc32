"""The docs show what the code prints, and the latest benchmark run.

* Every ``attachfs policy`` output pasted in the docs is marked with the arguments it was made
  with (``<!-- policy: ARGS -->`` right before its fenced block) and is printed again here from
  the example config, docs/examples/policy-example.toml: a change to the command's output that
  is not pasted into the docs fails, and so does a pasted block whose lead-in names another
  command.
* The example config shown on the command-line page is that file, verbatim.
* docs/benchmarks.md carries the summary and targets tables, the run line and the chart of
  benchmarks/results/ (the committed full run): a full re-run that is not copied over fails.
  (``--quick`` writes elsewhere, so a quick run never does.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from attachfs._cli.commands import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLE = DOCS / "examples" / "policy-example.toml"
RESULTS = ROOT / "benchmarks" / "results"

# The marker, then the fenced block; the output is the block's text plus its final newline.
_BLOCK = re.compile(r"^<!-- policy: (?P<args>.+?) -->\n```[a-z]*\n(?P<body>.*?)^```$", re.S | re.M)


def policy_blocks() -> list[tuple[str, str, str, str]]:
    """(where, args, pasted output, the paragraph before the marker) for every marked block."""
    out = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for m in _BLOCK.finditer(text):
            line = text[:m.start()].count("\n") + 1
            lead = text[:m.start()].rstrip("\n").rsplit("\n\n", 1)[-1]
            out.append((f"{page.relative_to(DOCS)}:{line}", m["args"], m["body"], lead))
    return out


BLOCKS = policy_blocks()


def test_every_cloud_has_a_pasted_output():
    # Guards the parametrized test below against finding nothing (a changed marker format).
    assert {shlex.split(args)[0] for _, args, _, _ in BLOCKS} == {"aws", "gcp", "azure", "bucket",
                                                                 "platform"}
    markers = sum(p.read_text(encoding="utf-8").count("<!-- policy:") for p in DOCS.rglob("*.md"))
    assert markers == len(BLOCKS), "a <!-- policy: --> marker not right before a fenced block"


@pytest.mark.parametrize(("where", "args", "body", "lead"), BLOCKS, ids=[w for w, *_ in BLOCKS])
def test_pasted_policy_output_is_what_the_command_prints(where, args, body, lead, capsys):
    assert "--config" not in args, "the example config is the one the docs describe"
    code = main(["policy", *shlex.split(args), "--config", str(EXAMPLE)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert body == printed.out, f"{where}: paste the output of `attachfs policy {args}` again"
    # The command the reader is told about is the one that made the block.
    assert f"`attachfs policy {args}`" in " ".join(lead.split()), where


def test_the_example_config_on_the_command_line_page_is_the_file():
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    m = re.search(r"^<!-- example config: examples/policy-example.toml -->\n```toml\n(.*?)^```$",
                  page, re.S | re.M)
    assert m, "cli.md: the example config block is missing"
    assert m.group(1) == EXAMPLE.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- benchmarks


def table_after(text: str, heading: str) -> str:
    """The first markdown table after the "## ..." heading that starts with ``heading``."""
    m = re.search(rf"^## {re.escape(heading)}.*\n(?:(?!\|).*\n)*?((?:\|.*\n)+)", text, re.M)
    assert m, f"no table under a heading starting {heading!r}"
    return m.group(1)


def run_line(text: str) -> str:
    """The line that says when and where the run was made (date, cores, server, commit)."""
    (line,) = [ln for ln in text.splitlines() if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d · ", ln)]
    return line


@pytest.fixture(scope="module")
def pages() -> tuple[str, str]:
    return ((RESULTS / "results.md").read_text(encoding="utf-8"),
            (DOCS / "benchmarks.md").read_text(encoding="utf-8"))


@pytest.mark.parametrize("heading", ["Summary", "attachfs against the targets"])
def test_the_benchmarks_page_has_the_latest_tables(pages, heading):
    results, page = pages
    assert table_after(page, heading) == table_after(results, heading), (
        "benchmarks/results/results.md changed: copy its tables into docs/benchmarks.md")


def test_the_benchmarks_page_names_the_run_and_shows_its_chart(pages):
    results, page = pages
    assert run_line(page) == run_line(results)
    assert "](assets/benchmarks.png)" in page
    assert (DOCS / "assets" / "benchmarks.png").read_bytes() == \
        (RESULTS / "results.png").read_bytes(), "copy benchmarks/results/results.png over"
