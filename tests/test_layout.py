"""The shape of the package: its public surface, private internals, one-way imports, no cycles.

As httpx's ``test_exported_members``: every name a user can rely on is in ``attachfs.__all__``,
and every module but the package itself and ``attachfs.testing`` is private (``_name``).
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import attachfs

pytestmark = pytest.mark.unit

PUBLIC = {
    # functions
    "open", "filesystem", "explain", "load_config",
    # the filesystem, its files, and what explain() returns
    "AttachFileSystem", "AttachFile", "Config", "Route", "Location", "Grant", "Limits",
    # the closed sets, as Literal types
    "Backend", "Mode", "GrantKind",
    # every exception
    "AttachError", "AccessRefused", "AccessDenied", "ConfigError", "NotFound", "IntegrityError",
    "ReadOnlyError", "ReadTimeout", "TooLarge", "GaveUp",
    "__version__",
}


def test_exported_members():
    assert set(attachfs.__all__) == PUBLIC
    for name in attachfs.__all__:
        assert hasattr(attachfs, name), name
        member = getattr(attachfs, name)
        if name in ("Backend", "Mode", "GrantKind"):
            assert typing.get_origin(member) is typing.Literal, name
        elif isinstance(member, type) or callable(member):
            assert getattr(member, "__doc__", None), f"{name} has no docstring"


def test_every_error_is_an_attach_error_and_keeps_its_builtin():
    builtins = {
        "AccessRefused": PermissionError, "AccessDenied": PermissionError,
        "ConfigError": ValueError, "NotFound": FileNotFoundError, "IntegrityError": OSError,
        "ReadOnlyError": OSError, "ReadTimeout": OSError, "TooLarge": OSError,
        "GaveUp": ConnectionError,
    }
    for name, builtin in builtins.items():
        cls = getattr(attachfs, name)
        assert issubclass(cls, attachfs.AttachError) and issubclass(cls, builtin), name


def test_the_function_filesystem_is_not_shadowed_by_a_module():
    assert callable(attachfs.filesystem) and not isinstance(attachfs.filesystem, type(sys))
    importlib.import_module("attachfs._filesystem")  # importing a submodule must not replace it
    assert callable(attachfs.filesystem) and not isinstance(attachfs.filesystem, type(sys))


def test_internal_modules_are_private():
    root = Path(attachfs.__file__).parent
    for info in pkgutil.iter_modules([str(root)]):
        assert info.name.startswith("_") or info.name == "testing", info.name


def test_the_package_is_typed():
    assert (Path(attachfs.__file__).parent / "py.typed").is_file()


def test_no_import_cycles():
    import grimp

    graph = grimp.build_graph("attachfs", cache_dir=None)
    modules = {m for m in graph.modules if m.startswith("attachfs.")}
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported in modules and imported != module:
                back = graph.find_shortest_chain(importer=imported, imported=module)
                assert back is None, f"import cycle: {module} -> {' -> '.join(back or ())}"


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_importing_attachfs_imports_no_emulator_and_no_command_line():
    code = ("import sys, attachfs; "
            "bad = [m for m in sys.modules if m.startswith(('attachfs.testing', 'attachfs._cli',"
            " 'moto', 'trustme'))]; assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr


def test_the_readme_layout_lists_the_tree():
    """README's layout block names every module and package of src/attachfs, and nothing else."""
    root = Path(attachfs.__file__).parent
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("```text\nsrc/attachfs/\n", 1)[1].split("```", 1)[0]
    listed = {line.split()[0].rstrip("/") for line in block.splitlines()
              if line.startswith("  ") and not line.startswith("   ")}
    actual = {p.name.removesuffix(".py") if p.is_file() else p.name for p in root.iterdir()
              if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))
              and p.name != "__main__.py"}
    actual = {a + ".py" if (root / (a + ".py")).is_file() else a for a in actual}
    assert listed == actual


def test_the_architecture_page_names_every_package():
    page = (Path(__file__).parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    root = Path(attachfs.__file__).parent
    for p in root.iterdir():
        if p.name.startswith("_") and p.name not in ("__init__.py", "__main__.py", "__pycache__"):
            assert p.name.removesuffix(".py") in page, p.name
