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
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import attachfs
from attachfs import _config as config_module

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "configuration.md"
UNKNOWN = "zz_unknown_option"  # matches no key and does not look like a secret


# --------------------------------------------------------------------------- the build


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "configuration" / "index.html").is_file()
    assert (site / "examples" / "quickstart.ipynb").is_file()  # linked from the recipes


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
