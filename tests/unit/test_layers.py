"""The layers hold: imports run models <- tasks <- flows <- deployments, and tasks/ is one package
per capability."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# What each layer may import of ours; anything else is an import running the wrong way.
ALLOWED = {
    "models": {"models"},
    # env.py reaches the database through tasks when plain `alembic` runs it, under the same lock.
    "migrations": {"models", "migrations", "tasks"},
    "tasks": {"models", "tasks"},
    "flows": {"models", "tasks", "flows"},
    "deployments": {"models", "tasks", "flows", "deployments"},
}
OURS = set(ALLOWED)


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name.split(".")[0] for name in names} & OURS


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_no_import_runs_upward(layer: str) -> None:
    wrong = {
        str(path.relative_to(REPO_ROOT)): sorted(imported_packages(path) - ALLOWED[layer])
        for path in (REPO_ROOT / layer).rglob("*.py")
    }
    assert {path: found for path, found in wrong.items() if found} == {}


def test_tasks_holds_one_package_per_capability() -> None:
    loose = [
        path.name
        for path in (REPO_ROOT / "tasks").iterdir()
        if path.suffix == ".py" and path.name != "__init__.py"
    ]
    assert loose == []
    for package in (REPO_ROOT / "tasks").iterdir():
        if package.is_dir() and package.name != "__pycache__":
            docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
            assert docstring, f"tasks/{package.name}/__init__.py must say what the capability does"
