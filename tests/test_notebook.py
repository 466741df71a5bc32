"""The example notebooks in docs/examples run top to bottom, as a reader would run them.

Each notebook starts its own emulators (``attachfs.emulators.Emulators``) in a real Jupyter
kernel, reads through attachfs, and stops them. The test then looks at what a reader sees: the
reprs say for which tenant and in which mode a read is made, and no output holds a secret: after
the last cell, one more cell (run here, never saved) reports the credential values the kernel
leased, and none of them may appear in any output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

import render_notebook  # noqa: E402
from attachfs.testing import AZURE_DEV_KEY  # noqa: E402

pytestmark = pytest.mark.peers

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
MARK = "LEASED-SECRETS:"

# Run in the kernel after the notebook: every credential value attachfs leased there.
REPORT_SECRETS = f"""
import json as _json
from attachfs._credentials import refresh as _credentials
_values = []
for _lease in list(_credentials._leases.values()):
    if _lease.lease is not None:
        _values.extend(_lease._secrets(_lease.lease.value))
print({MARK!r} + _json.dumps([v for v in _values if v]))
"""


def run(path: Path):
    nb = render_notebook.execute(path, extra_cell=REPORT_SECRETS)
    *cells, report = nb.cells
    (out,) = [o for o in report.outputs if o.get("name") == "stdout"]
    secrets = json.loads(out.text.split(MARK, 1)[1])
    return cells, secrets


@pytest.fixture(scope="module")
def quickstart():
    """The quickstart notebook, executed once: (all its cells, the secrets the kernel leased)."""
    return run(EXAMPLES / "quickstart.ipynb")


def text_of(cell) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.extend(str(v) for v in out.data.values())
        elif out.output_type == "error":
            parts.append("\n".join(out.traceback))
    return "\n".join(parts)


def test_there_is_an_example_notebook():
    assert [p.name for p in NOTEBOOKS] == ["quickstart.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.timeout(300)
def test_quickstart_runs_top_to_bottom_and_shows_no_secret(quickstart):
    all_cells, secrets = quickstart
    cells = [c for c in all_cells if c.cell_type == "code"]
    texts = [text_of(c) for c in cells]
    everything = "\n".join(texts)

    assert "Traceback" not in everything
    # acme's reads were delegated: the kernel holds an assumed-role session (secret key and
    # session token) at least. ("testing", the emulators' own key, is too short to look for.)
    secrets = [s for s in secrets if len(s) >= 8]
    assert len(secrets) >= 2 and max(len(s) for s in secrets) > 100
    for secret in secrets:
        assert secret not in everything
    assert AZURE_DEV_KEY not in everything  # the emulator's shared key stays in the env
    assert "acme-5f0c" not in everything  # the ExternalId: attachfs's reprs leave it out

    # What a reader sees: for whom and how each read is made.
    (file_repr,) = [t for t in texts if "<AttachFile " in t]
    assert "tenant='acme' mode=delegated" in file_repr
    assert "<AttachFileSystem tenant='acme'" in everything
    assert "identity='arn:aws:iam::111122223333:role/AttachmentReader'" in everything
    (routes,) = [t for t in texts if "backend" in t and "identity" in t and "platform:aws" in t]
    for mode in ("delegated", "url", "direct", "anonymous"):
        assert mode in routes
    assert "AccessRefused: read of s3://acme-attachments/invoices.parquet refused" in everything
    assert everything.count("6 rows") == 5


@pytest.mark.timeout(300)
def test_the_site_shows_the_notebook_run_with_its_outputs(quickstart):
    all_cells, _ = quickstart
    page = render_notebook.PAGE.read_text(encoding="utf-8")
    shown = render_notebook.region(page)

    assert shown == render_notebook.to_markdown(all_cells), (
        "docs/recipes/notebook.md no longer shows what the notebook prints: run "
        "`python tests/render_notebook.py`")
    # Every code cell that prints is on the page with its output.
    code = [c for c in all_cells if c.cell_type == "code"]
    printing = [c for c in code if render_notebook.output_text(c).strip()]
    assert len(printing) >= 8
    assert shown.count("```python") == len(code)
    assert shown.count("```text") == len(printing)
    assert "<AttachFile s3://acme-attachments/invoices.parquet tenant='acme' mode=delegated>" in shown
