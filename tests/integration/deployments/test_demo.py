"""``dbops demo`` on a fresh directory: the main job with nothing configured, then again."""

from __future__ import annotations

from tests.helpers import environment_without_dbops
from tests.integration.conftest import run_cli, server_directory


def test_the_demo_runs_on_nothing_and_a_second_run_reuses_everything() -> None:
    with server_directory() as home:
        environment = environment_without_dbops()
        environment |= {"DBOPS_HOME": str(home), "DBOPS_BCRYPT_ROUNDS": "4", "PYTHONWARNINGS": "ignore"}
        # A psql user's shell: none of it may redirect dbops or its pg_dump.
        shell = {"PGPASSWORD": "wrong", "PGUSER": "nobody", "PGDATABASE": "nowhere"}
        try:
            first = run_cli("demo", env=environment | shell)
            second = run_cli("demo", env=environment)
        finally:
            run_cli("embedded-stop", env=environment)

        assert first.returncode == 0, first.stderr[-2000:]
        for step in (
            "migrate and seed",
            "synthetic data",
            "application workload",
            "integrity validation",
            "backup",
            "restore rehearsal",
            "log archiving",
            "index review",
            "index advice verified",
        ):
            assert f"\n{step:<22} ok " in first.stdout, step
        assert "107,000 rows at" in first.stdout
        assert "analytics_events archived" in first.stdout
        # The workload's statements get indexes, each measured faster on a copy of the demo's backup.
        assert "(4 for the workload)" in first.stdout
        assert "4 index(es) recommended (best " in first.stdout
        assert second.returncode == 0, second.stderr[-2000:]
        assert "synthetic data         ok" in second.stdout
        assert "already loaded (seed 1)" in second.stdout
        assert " 0 analytics_events archived" in second.stdout
        assert len(list((home / "backups" / "backups").iterdir())) == 2
