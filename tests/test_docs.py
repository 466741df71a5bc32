"""The documentation site builds strictly, and says only what the code does.

* ``mkdocs build --strict``: a broken link or anchor, or a page left out of the nav, fails.
* The configuration reference (docs/configuration.md) documents every key the config loader
  accepts and no other. The loader is the schema: each section is asked for its keys by feeding
  it an unknown one (its ConfigError lists the allowed keys), and the tree of sections is
  discovered the same way. The public config dataclasses must hold exactly those keys too, so a
  key that is validated but then dropped (read as nothing: the silent-fallback failure) fails.
* Every TOML example in the docs loads, so no example can show a key that does not exist.
* The command-line page has a section for each command the parser knows, and no other.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

import attachfs
from attachfs import _config as config_module

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "configuration.md"
UNKNOWN = "zz_unknown_option"  # matches no key and does not look like a secret


# --------------------------------------------------------------------------- the build


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once with ``mkdocs build --strict`` (any warning fails the build)."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    site = tmp_path_factory.mktemp("docs") / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return site


def test_mkdocs_build_strict(site):
    assert (site / "configuration" / "index.html").is_file()
    assert (site / "examples" / "quickstart.ipynb").is_file()  # linked from the recipes
    assert (site / "setup" / "platform" / "index.html").is_file()


# Pages and the diagrams (```mermaid blocks) each must draw, by kind.
DIAGRAMS = {"access-rules": ["flowchart TD", "flowchart LR"],
            "architecture": ["flowchart TB", "sequenceDiagram"]}
MERMAID_JS = "assets/javascripts/mermaid-11.12.2.min.js"


@pytest.mark.parametrize("page", sorted(DIAGRAMS))
def test_the_diagrams_are_on_the_site_for_mermaid_to_draw(site, page):
    html = (site / page / "index.html").read_text(encoding="utf-8")
    blocks = re.findall(r'<pre class="mermaid"><code>(.*?)</code></pre>', html, re.S)
    assert [b.split("\n", 1)[0].strip() for b in blocks] == DIAGRAMS[page]
    # mermaid.js is served with the site (it draws offline) and loaded by every page.
    assert f'src="../{MERMAID_JS}"' in html
    assert (site / MERMAID_JS).stat().st_size > 1_000_000


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


_RENDER_PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="{script}"></script></head><body><script>
const sources = {sources};
(async () => {{
  mermaid.initialize({{startOnLoad: false}});
  for (const [i, text] of sources.entries()) {{
    const out = document.createElement("div");
    try {{
      out.className = "drawn";
      out.innerHTML = (await mermaid.render("diagram" + i, text)).svg;
    }} catch (err) {{
      out.className = "failed";
      out.textContent = String(err && err.message || err);
    }}
    document.body.appendChild(out);
  }}
  document.body.appendChild(Object.assign(document.createElement("p"), {{id: "done"}}));
}})();
</script></body></html>"""


@pytest.mark.parametrize("page", sorted(DIAGRAMS))
def test_the_diagrams_render_in_a_browser(site, page, tmp_path):
    # A diagram with a mistake is drawn as an error box, not an error of the build: only
    # mermaid.js in a browser tells. The site's own copy draws each diagram of the page here
    # (the theme draws them inside a closed shadow root, out of a DOM dump's reach).
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (apt-get install chromium) to run mermaid.js")
    html = (site / page / "index.html").read_text(encoding="utf-8")
    sources = [unescape(b) for b in
               re.findall(r'<pre class="mermaid"><code>(.*?)</code></pre>', html, re.S)]
    test_page = tmp_path / "render.html"
    test_page.write_text(_RENDER_PAGE.format(script=(site / MERMAID_JS).as_uri(),
                                             sources=json.dumps(sources)), encoding="utf-8")
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--virtual-time-budget=30000", "--dump-dom", test_page.as_uri()],
        capture_output=True, text=True, timeout=120)
    dom = done.stdout
    assert 'id="done"' in dom, done.stderr[-2000:]
    failed = re.findall(r'<div class="failed">(.*?)</div>', dom, re.S)
    assert not failed, failed
    drawn = re.findall(r'<div class="drawn"><svg.*?</svg></div>', dom, re.S)
    assert len(drawn) == len(DIAGRAMS[page])
    for svg in drawn:
        assert "Syntax error" not in svg and svg.count("<text") + svg.count("<span") > 5


def test_the_notebook_page_shows_the_notebook_with_its_outputs(site):
    html = (site / "recipes" / "notebook" / "index.html").read_text(encoding="utf-8")
    text = unescape(re.sub(r"<[^>]+>", "", html))  # what a reader sees (code is highlighted)
    assert "peers.stop()" in text  # the last cell
    assert "6 rows" in text and "<AttachFile s3://acme-attachments/invoices.parquet" in text
    assert "AccessRefused: read of s3://acme-attachments/invoices.parquet refused" in text


# --------------------------------------------------------------------------- the loader


def allowed_keys(section: str) -> list[str] | None:
    """The keys the loader allows in ``section`` ("platform.aws", "tenants.NAME.direct[]", ""
    for the top level), or None if ``section`` is not a table of fixed keys."""
    node: object = {UNKNOWN: 1}
    for part in reversed(section.split(".") if section else []):
        part = "probe" if part == "NAME" else part
        node = {part[:-2]: [node]} if part.endswith("[]") else {part: node}
    try:
        attachfs.load_config(node)
    except attachfs.ConfigError as err:
        found = re.search(r"allowed keys here: ([a-z_, ]+)$", str(err))
        return found.group(1).split(", ") if found else None
    raise AssertionError(f"the loader accepted an unknown key in [{section}]")


# A table of tenants is keyed by name, and claims are an array of tables: the two places where
# a key does not name one fixed table.
_CHILD = {"tenants": "tenants.NAME", "tenants.NAME.direct": "tenants.NAME.direct[]"}


def schema() -> dict[str, list[str]]:
    """{section: its keys}, for every section the loader knows, found by asking it."""
    found: dict[str, list[str]] = {}

    def walk(section: str) -> None:
        keys = allowed_keys(section)
        assert keys is not None, section
        found[section] = keys
        for key in keys:
            path = f"{section}.{key}" if section else key
            path = _CHILD.get(path, path)
            if allowed_keys(path) is not None:
                walk(path)

    walk("")
    return found


def test_the_loader_schema_is_what_the_config_dataclasses_hold():
    sections = schema()
    stored = {
        "platform": config_module.Platform,
        "platform.aws": config_module.AwsPlatform,
        "platform.gcp": config_module.GcpPlatform,
        "platform.azure": config_module.AzurePlatform,
        "platform.http": config_module.HttpPlatform,
        "cache": config_module.CacheConfig,
        "limits": attachfs.Limits,
        "tenants.NAME": config_module.Tenant,
        "tenants.NAME.aws": config_module.AwsIntegration,
        "tenants.NAME.gcp": config_module.GcpIntegration,
        "tenants.NAME.azure": config_module.AzureIntegration,
    }
    # Claims store what they derive from the URI, besides the keys that are written.
    written = {"uri", "owner", "requester_pays", "user_project"}
    assert set(sections) == {"", "tenants.NAME.direct[]", *stored}
    for section, cls in stored.items():
        fields = {f.name for f in dataclasses.fields(cls)} - {"name"}  # a tenant's name: its key
        assert set(sections[section]) == fields, section
    assert set(sections["tenants.NAME.direct[]"]) == written
    assert {f.name for f in dataclasses.fields(config_module.Claim)} >= written


# --------------------------------------------------------------------------- the reference


def documented() -> dict[str, list[str]]:
    """{section: keys in its table} from docs/configuration.md's "### ..." sections."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = None
        elif line.startswith("### "):
            title = line[4:].strip()
            if title == "Top level":
                current = ""
            elif m := re.fullmatch(r"`\[([A-Za-z.]+)\]`", title):
                current = m.group(1)
            elif m := re.fullmatch(r"`([A-Za-z.]+)` entries", title):
                current = m.group(1) + "[]"
            else:
                raise AssertionError(f"configuration.md: a section heading names no config "
                                     f"section: {line!r}")
            assert current not in sections, f"configuration.md documents [{current}] twice"
            sections[current] = []
        elif current is not None and (m := re.match(r"\|\s*`([A-Za-z_]+)`\s*\|", line)):
            sections[current].append(m.group(1))
    return sections


def test_every_config_key_is_documented_and_every_documented_key_exists():
    actual, docs = schema(), documented()
    assert sorted(docs) == sorted(actual), "sections documented vs sections the loader knows"
    for section, keys in actual.items():
        where = f"[{section}]" if section else "the top level"
        missing = sorted(set(keys) - set(docs[section]))
        unknown = sorted(set(docs[section]) - set(keys))
        assert not missing, f"configuration.md: {where} does not document {missing}"
        assert not unknown, f"configuration.md: {where} documents keys that do not exist: {unknown}"
        assert len(docs[section]) == len(set(docs[section])), f"{where}: a key listed twice"


def test_a_made_up_key_in_the_reference_would_fail():
    # The check above can fail: a documented key the loader does not know is refused by it.
    with pytest.raises(attachfs.ConfigError, match="unknown key"):
        attachfs.load_config({"platform": {"aws": {"role_arn": "x"}}})
    assert "role_arn" not in schema()["platform.aws"]


# --------------------------------------------------------------------------- examples


def toml_examples() -> list[tuple[str, str]]:
    out = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        # Fenced blocks, also inside admonitions (indented): ```toml ... ```
        for m in re.finditer(r"^( *)```toml\n(.*?)^\1```", text, re.S | re.M):
            body = "\n".join(line[len(m.group(1)):] for line in m.group(2).splitlines())
            out.append((f"{page.relative_to(DOCS)}:{text[:m.start()].count(chr(10)) + 1}", body))
    return out


EXAMPLES = toml_examples()


def test_the_docs_have_toml_examples():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize(("where", "body"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_every_toml_example_in_the_docs_loads(where, body, tmp_path):
    path = tmp_path / "attachfs.toml"
    path.write_text(body, encoding="utf-8")
    loaded = attachfs.load_config(str(path))
    assert loaded.source == str(path)


# --------------------------------------------------------------------------- the CLI page


def test_the_command_line_page_has_a_section_per_command():
    from attachfs._cli.commands import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## `([a-z-]+)`$", page, re.M)
    assert sorted(sections) == sorted(sub.choices)


def _sections(page: str) -> dict[str, str]:
    """{"": the text before the first "## ", "cat": the "## `cat`" section, ...}"""
    parts = re.split(r"^## (.+)$", page, flags=re.M)
    out = {"": parts[0]}
    for title, body in zip(parts[1::2], parts[2::2], strict=True):
        out[title.strip().strip("`")] = body
    return out


def test_every_flag_the_parser_has_is_on_the_command_line_page():
    from attachfs._cli.commands import build_parser

    parser = build_parser()
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = _sections(page)
    for flag in ("--version", "-h", "--help"):
        assert re.search(rf"`[^`]*{re.escape(flag)}\b", sections[""]), flag
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    common = sections["Common options"]
    missing = []
    for name, command in sub.choices.items():
        text = sections[name]
        for action in command._actions:
            for flag in action.option_strings:
                # A flag is documented in its command's section, or (shared) under Common.
                if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text + common):
                    missing.append(f"{name} {flag}")
            for choice in action.choices or ():
                if f"`{choice}`" not in text:
                    missing.append(f"{name} {choice}")
    assert not missing, f"docs/cli.md does not document: {missing}"


def test_a_flag_missing_from_the_page_would_be_found():
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    sections = _sections(page.replace("--no-progress", "--no-bar"))
    assert "--no-progress" not in sections["cp"] + sections["Common options"]


def _table_keys(section: str) -> list[str]:
    return re.findall(r"^\| `([a-z_]+)` \|", section, re.M)


def test_the_json_schemas_on_the_page_are_what_the_commands_print():
    from attachfs._cli.diagnose import Report
    from attachfs._cli.info import KEYS

    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    schemas = re.split(r"^### (.+)$", _sections(page)["JSON output"], flags=re.M)
    tables = {title: body for title, body in zip(schemas[1::2], schemas[2::2], strict=True)}
    assert _table_keys(tables["`stat --json` and `ls --json`"]) == list(KEYS)
    assert _table_keys(tables["`check --json`"]) == [
        *Report(uri="s3://b/k", tenant=None, config=None).as_dict(), "exit_code"]
