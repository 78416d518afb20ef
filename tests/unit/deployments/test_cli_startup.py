"""``dbops --help`` and ``dbops db-url`` start without the machinery of the other commands.

Scripts and operators run these often, and importing every command's stack (Alembic, psycopg, boto3,
once Prefect) cost about a second before anything was printed. The modules are read from a child
process's ``sys.modules`` after the run, so they are the imports a user's run makes, whatever this
test process has already imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import environment_without_dbops

# Needed by none of the commands measured here; each is a large import of its own.
HEAVY = ("prefect", "alembic", "boto3", "botocore", "psycopg")
DUMMY_URL = "postgresql://u:p@127.0.0.1:5/db"
CLI_DIR = Path(__file__).resolve().parents[3] / "deployments" / "cli"
# The modules that define commands, found by their register(app) function rather than by the CLI's
# own list of them, so that a command module the list forgets is still caught here.
COMMAND_MODULES = {
    f"deployments.cli.{path.stem}" for path in CLI_DIR.glob("*.py") if "\ndef register(" in path.read_text()
}


# Runs the command line as ``python -m deployments.cli`` does, then writes every module loaded to the
# file named by the first argument. ``-X importtime`` would miss the command modules: it does not see
# imports made through importlib.
PROBE = """
import atexit, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
runpy.run_module("deployments.cli", run_name="__main__", alter_sys=True)
"""


def imported_by(tmp_path: Path, *arguments: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run the command line with *arguments* and return the run and every module it imported.

    The working directory is empty and DBOPS_HOME points into it, so neither a developer's ``.env``
    nor an embedded server can take part; the dummy URL's port has no server and nothing connects.
    """
    modules_file = tmp_path / "modules.txt"
    run = subprocess.run(
        [sys.executable, "-c", PROBE, str(modules_file), *arguments],
        env=environment_without_dbops(
            DBOPS_DATABASE_URL=DUMMY_URL, DBOPS_HOME=str(tmp_path / "home"), COLUMNS="100"
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run, set(modules_file.read_text().splitlines())


def heavy(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if name.split(".")[0] in HEAVY)


# With no arguments the help is printed as a usage error would be: exit 2.
@pytest.mark.parametrize(("arguments", "exit_code"), [(("--help",), 0), ((), 2)], ids=["--help", "none"])
def test_help_imports_no_command_module_and_nothing_heavy(
    tmp_path: Path, arguments: tuple[str, ...], exit_code: int
) -> None:
    run, modules = imported_by(tmp_path, *arguments)
    assert run.returncode == exit_code, run.stderr[-2000:]
    assert "db-url" in run.stdout
    assert "restore-archive" in run.stdout
    assert heavy(modules) == []
    assert sorted(modules & COMMAND_MODULES) == []
    # The database layer is not needed to print help either.
    assert sorted(name for name in modules if name.split(".")[0] in {"sqlalchemy", "pydantic_settings"}) == []


def test_db_url_imports_its_own_module_and_nothing_heavy(tmp_path: Path) -> None:
    run, modules = imported_by(tmp_path, "db-url")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout == "postgresql+psycopg://u:***@127.0.0.1:5/db\n"
    assert heavy(modules) == []
    assert sorted(modules & COMMAND_MODULES) == ["deployments.cli.database"]
    # A configured URL is taken apart and masked without SQLAlchemy, a third of the budget on its own.
    assert sorted(name for name in modules if name.split(".")[0] == "sqlalchemy") == []


def test_a_local_store_opens_without_boto3(tmp_path: Path) -> None:
    """boto3 is a third of a second of every command's start-up; only an S3 store needs it."""
    probe = (
        "import sys; from models.settings import load_settings; from tasks.storage import open_store; "
        "open_store(load_settings(_env_file=None, backup_url=sys.argv[1])); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] in {'boto3', 'botocore'}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "backups")],
        env=environment_without_dbops(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]"
