"""The checks as the least-privileged role ``dbops validate`` documents (read access, nothing else):
every breakage still fails its check, whatever that role cannot see of other sessions."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL

from models.settings import Settings
from tasks.schema.migrate import migrate
from tests.helpers import wait_for
from tests.integration.conftest import connect
from tests.integration.integrity.test_integrity import BREAKAGES, _invalid_index, _run, failing, validate


@pytest.fixture
def reader_url(seeded_url: URL) -> Iterator[URL]:
    """The seeded database reached as a role with SELECT on its tables and no other grant: in
    particular not pg_read_all_stats, so other roles' sessions and builds show it no relation."""
    role, password = f"reader_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    _run(
        seeded_url,
        f"CREATE ROLE {role} LOGIN PASSWORD '{password}'",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
    )
    yield seeded_url.set(username=role, password=password)
    _run(seeded_url, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_breakage_fails_its_check_for_a_read_only_role(
    breakage: str, seeded_url: URL, reader_url: URL, settings: Settings
) -> None:
    break_it, check, detail = BREAKAGES[breakage]
    if breakage == "one revision behind":
        migrate(seeded_url, settings, target="0001")
    break_it(seeded_url)

    report = validate(reader_url, settings)

    assert set(failing(report)) == {check, "amcheck"}, failing(report)  # amcheck: a warning, no extension
    assert detail in failing(report)[check]
    assert not report.passed


def test_amcheck_fails_for_a_read_only_role_allowed_to_run_it(
    seeded_url: URL, reader_url: URL, settings: Settings
) -> None:
    _run(
        seeded_url,
        "CREATE EXTENSION amcheck",
        f"GRANT EXECUTE ON FUNCTION bt_index_check(regclass) TO {reader_url.username}",
        "CREATE FUNCTION demo_cmp(bigint, bigint) RETURNS int LANGUAGE sql IMMUTABLE AS "
        "$$ SELECT CASE WHEN $1 < $2 THEN -1 WHEN $1 > $2 THEN 1 ELSE 0 END $$",
        "CREATE OPERATOR CLASS demo_ops FOR TYPE bigint USING btree AS OPERATOR 1 <, OPERATOR 2 <=, "
        "OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 demo_cmp(bigint, bigint)",
        "CREATE INDEX ix_audit_logs_demo ON audit_logs (id demo_ops)",
        "CREATE OR REPLACE FUNCTION demo_cmp(bigint, bigint) RETURNS int LANGUAGE sql IMMUTABLE AS "
        "$$ SELECT CASE WHEN $1 < $2 THEN 1 WHEN $1 > $2 THEN -1 ELSE 0 END $$",
    )

    report = validate(reader_url, settings)

    assert set(failing(report)) == {"amcheck"}
    assert "index ix_audit_logs_demo: item order invariant violated" in failing(report)["amcheck"]


def test_amcheck_installed_but_not_granted_is_a_warning_not_a_failure(
    seeded_url: URL, reader_url: URL, settings: Settings
) -> None:
    _run(seeded_url, "CREATE EXTENSION amcheck")  # by the owner: its functions are revoked from PUBLIC

    report = validate(reader_url, settings)

    assert set(failing(report)) == {"amcheck"}
    assert "this role may not run bt_index_check" in failing(report)["amcheck"]
    assert report.passed
    assert [check.name for check in report.warnings] == ["amcheck"]


def test_an_invalid_index_fails_while_another_roles_build_runs_unseen(
    seeded_url: URL, reader_url: URL, settings: Settings
) -> None:
    _invalid_index(seeded_url)
    build_error: list[BaseException] = []
    with connect(seeded_url) as writer, connect(seeded_url) as builder:

        def build() -> None:
            try:
                builder.execute("CREATE INDEX CONCURRENTLY ix_audit_logs_unseen ON audit_logs (created_at)")
            except BaseException as error:
                build_error.append(error)

        building = threading.Thread(target=build)
        with writer.transaction():
            # An open writer on the table: the concurrent build waits for it, listed in the progress view.
            writer.execute("LOCK TABLE audit_logs IN ROW EXCLUSIVE MODE")
            building.start()
            try:
                wait_for(
                    lambda: (
                        connect_count(
                            seeded_url,
                            "SELECT count(*) FROM pg_stat_progress_create_index AS p "
                            "JOIN pg_class AS c ON c.oid = p.index_relid "
                            "WHERE c.relname = 'ix_audit_logs_unseen'",
                        )
                        == 1
                    ),
                    "the concurrent build to show in pg_stat_progress_create_index",
                )
                # What the reader sees of it: a build in this database, of an index it is not told.
                assert (
                    connect_count(
                        reader_url,
                        "SELECT count(*) FROM pg_stat_progress_create_index WHERE index_relid IS NULL "
                        "AND datid = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    )
                    == 1
                )

                report = validate(reader_url, settings)
            except BaseException:
                builder.cancel()
                raise
        building.join(timeout=60)
    assert not build_error, build_error

    assert "indexes" in failing(report), failing(report)
    detail = failing(report)["indexes"]
    assert "index ix_users_status_unique on users is invalid" in detail
    assert "index build(s) running in this database that this role cannot see" in detail
    assert not report.passed


def connect_count(url: URL, query: str) -> int:
    with connect(url) as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return int(str(row[0]))
