"""The layers of docs/architecture.md hold: `lint-imports` (import-linter, on grimp's graph
of every import, function-level and TYPE_CHECKING ones included) checks the contracts of
pyproject.toml, and an AST check forbids importing another module's private names. Each
check is also shown to fail, on a temporary copy of the package with one bad import."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SRC = REPO / "src" / "vestige"


def lint_imports(root: Path, src: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts, on the package found under `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command;"
         " sys.exit(lint_imports_command())", "--no-cache", "--no-logo"],
        cwd=root, env=env, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def copy_of_the_package(tmp_path: Path) -> tuple[Path, Path]:
    """(root, src) of a copy of the project's package and contracts."""
    root = tmp_path / "copy"
    shutil.copytree(SRC, root / "src" / "vestige", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root, root / "src"


def add_function(path: Path, body: str) -> None:
    """Append a function holding `body` (an import) to a module of the copy."""
    path.write_text(path.read_text() + f"\n\ndef _added() -> None:\n    {body}\n")


def test_the_contracts_hold() -> None:
    done = lint_imports(REPO, REPO / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "body", "contract", "names"),
    [
        # an upward import, deferred into a function: the store reaching up to a verb
        ("store/tree.py", "from vestige.history.lineage import stale  # noqa",
         "Imports point downward only", ["vestige.store.tree -> vestige.history.lineage"]),
        # under TYPE_CHECKING: a dependency all the same
        ("index/where.py", "if TYPE_CHECKING:\n        from vestige.repo import Repo  # noqa",
         "Imports point downward only", ["vestige.index.where -> vestige.repo"]),
        # a circle inside one package (tree -> objects -> hashing -> tree): the package
        # is named, and the import to remove among the circle's
        ("store/hashing.py", "from vestige.store.tree import read_tree  # noqa",
         "No package or module imports one that imports it back",
         ["No cycles are allowed in vestige.store."]),
        # a private module of another package
        ("history/diff.py", "from vestige.cli._common import open_repo  # noqa",
         "A private module is imported from its own package only",
         ["vestige.history.diff", "vestige.cli._common"]),
    ],
)  # fmt: skip
def test_a_bad_import_breaks_a_contract_naming_both_modules(
    tmp_path: Path, module: str, body: str, contract: str, names: list[str]
) -> None:
    root, src = copy_of_the_package(tmp_path)
    add_function(src / "vestige" / module, body)
    done = lint_imports(root, src)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{contract} BROKEN" in done.stdout
    broken = done.stdout.split("Broken contracts", 1)[1]
    for name in names:
        assert name in broken, broken


def private_imports(package: Path) -> list[str]:
    """`module -> other.module._name` for every private name imported from another module
    (a private module of one's own package is the private_modules contract's business)."""
    found = []
    for path in sorted(package.rglob("*.py")):
        if "shim" in path.relative_to(package).parts:
            continue
        parts = path.relative_to(package.parent).with_suffix("").parts
        here = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
                continue
            if node.module == here or not node.module.startswith("vestige"):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{here} -> {node.module}.{alias.name}")
    return found


def test_no_module_imports_another_modules_private_names(tmp_path: Path) -> None:
    assert private_imports(SRC) == []
    _root, src = copy_of_the_package(tmp_path)
    add_function(src / "vestige" / "sweep" / "run.py",
                 "from vestige.recording.process import _SIGNAL_NAMES  # noqa")  # fmt: skip
    assert private_imports(src / "vestige") == [
        "vestige.sweep.run -> vestige.recording.process._SIGNAL_NAMES"
    ]


def test_the_shim_imports_nothing_of_vestige() -> None:
    """The shim runs inside every Python process of a run (it is not in the package graph:
    sitecustomize.py is found through PYTHONPATH)."""
    for path in (SRC / "shim").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("vestige") for a in node.names), path
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("vestige"), path


def test_every_package_says_what_lives_there_and_what_it_may_import() -> None:
    for init in sorted(SRC.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.relative_to(REPO)} has no docstring"
        if init.parent.name != "cli":  # (cli is the top: it may import anything)
            assert "import" in doc.lower(), f"{init.relative_to(REPO)}: what may it import?"


def test_the_architecture_doc_names_every_module_and_layer() -> None:
    """docs/architecture.md is the map: a module missing from its layout, or a package
    missing from the layers contract, fails here rather than rotting silently."""
    import tomllib

    doc = (REPO / "docs" / "architecture.md").read_text()
    layout = doc[doc.index("## Layout") : doc.index("## Where a change goes")]
    missing = [
        str(path.relative_to(SRC))
        for path in sorted(SRC.rglob("*.py"))
        if not (path.name == "__init__.py" and path.parent != SRC)
        and not path.name.startswith("cmd_")  # (cmd_*.py: one line for all)
        and path.name not in layout
    ]
    assert missing == [], f"docs/architecture.md's layout does not name {missing}"
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["id"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.replace(":", "|").split("|")}
    tops = {
        f"vestige.{p.stem if p.is_file() else p.name}"
        for p in SRC.iterdir()
        if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert tops - named == set(), f"not placed in a layer: {sorted(tops - named)}"


def defined_names(module: Path) -> set[str]:
    """What a module defines at its top level (def, class, assignment) or exports in
    `__all__`; not what it merely imports."""
    tree = ast.parse(module.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                names |= {e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant)}
    return names


def borrowed_imports(root: Path) -> list[str]:
    """`importer: module.name` for each name imported from a vestige module that does not
    define it (it only imports it too): after a move, import from where the thing lives."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # (benchmarks/.peers: the peer tools' own venvs)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            if not node.module.startswith("vestige"):
                continue
            target = SRC.parent.joinpath(*node.module.split("."))
            module = target / "__init__.py" if target.is_dir() else target.with_suffix(".py")
            if not module.exists():
                found.append(f"{path.relative_to(root.parent)}: no module {node.module}")
                continue
            names = defined_names(module)
            for alias in node.names:
                sub = target / alias.name
                submodule = sub.is_dir() or sub.with_suffix(".py").exists()
                if alias.name not in names and not submodule:
                    found.append(f"{path.relative_to(root.parent)}: {node.module}.{alias.name}")
    return found


def test_names_are_imported_from_the_module_that_defines_them(tmp_path: Path) -> None:
    for folder in ("src", "tests", "benchmarks"):
        assert borrowed_imports(REPO / folder) == []
    bad = tmp_path / "bad.py"
    bad.write_text("from vestige.recording.runner import resolve_command\n")
    assert borrowed_imports(tmp_path) == [
        f"{tmp_path.name}/bad.py: vestige.recording.runner.resolve_command"
    ]
