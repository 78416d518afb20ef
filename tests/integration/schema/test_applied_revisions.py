"""Checksums of applied revisions: an edited or vanished revision file is drift; revisions applied
before the checksums were kept are adopted without a false report."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import typer
from sqlalchemy.engine import URL

from deployments.cli.schema import check_command
from models.settings import Settings
from tasks.schema import migrate as migrate_module
from tasks.schema.migrate import MIGRATIONS_DIR, migrate
from tests.integration.conftest import connect, run_cli
from tests.integration.schema.test_lock_retries import THIRD_REVISION

SECOND_REVISION = MIGRATIONS_DIR / "versions" / "20261127_0002_check_constraints.py"


def recorded(url: URL) -> dict[str, tuple[str, bool]]:
    """Each recorded revision's sha256, and whether its time of application is known."""
    with connect(url) as connection:
        rows = connection.execute("SELECT revision, sha256, applied_at FROM dbops_applied_revisions")
        return {str(revision): (str(sha256), applied_at is not None) for revision, sha256, applied_at in rows}


@pytest.fixture
def migrations_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This code's migrations, copied where a test may edit them, and used by dbops in this process."""
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate_module, "MIGRATIONS_DIR", copy)
    return copy


def check_in_process(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """``dbops check`` in this process, so it reads the migrations copy: its exit code and output."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        check_command()
        exit_code = 0
    except typer.Exit as exit_:
        exit_code = exit_.exit_code
    return exit_code, capsys.readouterr().out


def test_migrate_records_each_revision_file_hash(settings: Settings, database_url: URL) -> None:
    migrate(database_url, settings)

    assert recorded(database_url) == {
        "0001": (
            hashlib.sha256(next(MIGRATIONS_DIR.glob("versions/*_0001_*.py")).read_bytes()).hexdigest(),
            True,
        ),
        "0002": (hashlib.sha256(SECOND_REVISION.read_bytes()).hexdigest(), True),
    }


def test_check_reports_a_revision_edited_after_it_was_applied(
    settings: Settings,
    database_url: URL,
    cli_env: dict[str, str],
    migrations_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    migrate(database_url, settings)
    assert check_in_process(cli_env, monkeypatch, capsys)[0] == 0

    edited = migrations_copy / "versions" / SECOND_REVISION.name
    edited.write_text(edited.read_text().replace("duration_months > 0", "duration_months >= 0"))
    exit_code, output = check_in_process(cli_env, monkeypatch, capsys)

    assert exit_code == 1, output
    assert "revision 0002 (20261127_0002_check_constraints.py) was edited after it was applied" in output
    assert "0001" not in output.split("difference(s)")[1]


def test_check_reports_an_applied_revision_missing_from_the_code(
    settings: Settings,
    database_url: URL,
    cli_env: dict[str, str],
    migrations_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    third = migrations_copy / "versions" / "20261203_0003_users_email_statistics.py"
    third.write_text(THIRD_REVISION)
    migrate(database_url, settings)
    third.unlink()

    exit_code, output = check_in_process(cli_env, monkeypatch, capsys)

    assert exit_code == 1, output
    assert "revision 0003 (20261203_0003_users_email_statistics.py) was applied but is missing" in output


def test_a_database_migrated_before_checksums_were_kept_checks_clean_and_is_adopted(
    settings: Settings, database_url: URL, cli_env: dict[str, str]
) -> None:
    migrate(database_url, settings)
    with connect(database_url) as connection:  # what a release without the table left behind
        connection.execute("DROP TABLE dbops_applied_revisions")

    before_adoption = run_cli("check", env=cli_env)
    assert before_adoption.returncode == 0, before_adoption.stdout + before_adoption.stderr

    adopted = run_cli("migrate", env=cli_env)
    assert adopted.returncode == 0, adopted.stderr
    assert "nothing to do" in adopted.stdout
    assert recorded(database_url) == {
        "0001": (
            hashlib.sha256(next(MIGRATIONS_DIR.glob("versions/*_0001_*.py")).read_bytes()).hexdigest(),
            False,
        ),
        "0002": (hashlib.sha256(SECOND_REVISION.read_bytes()).hexdigest(), False),
    }
    after_adoption = run_cli("check", env=cli_env)
    assert after_adoption.returncode == 0, after_adoption.stdout + after_adoption.stderr
    assert "schema matches the models" in after_adoption.stdout


def test_a_downgrade_forgets_the_revision_and_the_next_upgrade_records_it_again(
    settings: Settings, database_url: URL
) -> None:
    migrate(database_url, settings)
    migrate(database_url, settings, target="0001")
    assert set(recorded(database_url)) == {"0001"}
    migrate(database_url, settings)
    assert set(recorded(database_url)) == {"0001", "0002"}
