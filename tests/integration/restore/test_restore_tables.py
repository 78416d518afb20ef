"""Table-level restores on a real server, from a real backup taken by ``dbops backup``: into a schema,
filtered to one university, merged back after the common accident (parents first), with and without
--replace, refused with nothing touched, stopped by a corrupt dump before any schema exists, and held
off by another job's guard; and the ``restore-tables`` flow, with and without an operator's approval."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import State, StateType
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_API_URL
from sqlalchemy.engine import URL

from flows.events import TABLES_AWAITING_APPROVAL, TABLES_MERGED, TABLES_REJECTED
from flows.maintenance_slot import MAINTENANCE_LIMIT
from flows.restore_tables import restore_tables_flow
from models.backup import BackupManifest
from models.table_restore import TableRestoreResult
from tasks.postgres.embedded import EmbeddedServer
from tasks.postgres.guard import guard_key
from tests.helpers import wait_for
from tests.integration.conftest import (
    ManagedDatabase,
    cli_command,
    connect,
    flow_run_artifacts,
    on_a_terminal,
    run_cli,
)

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@pytest.fixture
def backed_up(managed: ManagedDatabase) -> BackupManifest:
    """The managed database, backed up by the project's own entry point; its manifest."""
    taken = run_cli("backup", env=managed.env)
    assert taken.returncode == 0, taken.stderr
    store = Path(managed.env["DBOPS_BACKUP_URL"]) / "backups"
    (folder,) = store.iterdir()
    return BackupManifest.model_validate_json((folder / "manifest.json").read_text())


def restore_tables(managed: ManagedDatabase, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``dbops restore-tables``, as a script runs it: a merge says --yes, since nobody is asked."""
    unasked = ["--yes"] if "--merge" in arguments else []
    return run_cli("restore-tables", *arguments, *unasked, env=managed.env)


def restored(managed: ManagedDatabase, *arguments: str) -> TableRestoreResult:
    """Run ``dbops restore-tables ... --json``, which must succeed; its result."""
    result = restore_tables(managed, *arguments, "--json")
    assert result.returncode == 0, result.stderr
    return TableRestoreResult.model_validate_json(result.stdout)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert lines, "no error was printed"
    assert lines[-1].startswith("dbops: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[-1]


def scalar(url: URL, query: str, *parameters: Any) -> Any:
    with connect(url) as connection:
        row = connection.execute(query, parameters).fetchone()
    assert row is not None
    return row[0]


def schemas(url: URL) -> set[str]:
    with connect(url) as connection:
        rows = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname <> ALL(%s) AND nspname NOT LIKE 'pg_%%'",
            (list(SYSTEM_SCHEMAS),),
        ).fetchall()
    return {str(row[0]) for row in rows}


def live_state(url: URL) -> dict[str, object]:
    """Every table's rows, and a digest of all their content: equal states are equal databases."""
    with connect(url) as connection:
        tables = [
            str(row[0])
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        ]
        state: dict[str, object] = {}
        for table in tables:
            row = connection.execute(
                "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                f"FROM {table} AS t"
            ).fetchone()
            assert row is not None
            state[table] = (row[0], row[1])
    return state


def a_university(url: URL) -> tuple[str, int, int]:
    """A university with courses that have applications: its id, courses and applications."""
    with connect(url) as connection:
        row = connection.execute(
            "SELECT c.university_id::text, count(a.id) FROM courses AS c "
            "JOIN applications AS a ON a.course_id = c.id GROUP BY c.university_id "
            "ORDER BY count(a.id) DESC, 1 LIMIT 1"
        ).fetchone()
    assert row is not None
    university, applications = str(row[0]), int(str(row[1]))
    courses = scalar(url, "SELECT count(*) FROM courses WHERE university_id = %s", university)
    return university, courses, applications


def by_table(result: TableRestoreResult) -> dict[str, Any]:
    return {table.table: table for table in result.tables}


def test_tables_are_restored_into_a_new_schema_and_the_live_ones_left_alone(
    managed: ManagedDatabase, backed_up: BackupManifest
) -> None:
    with connect(managed.url) as connection:
        connection.execute("DELETE FROM applications WHERE status = 'DRAFT'")
    before = live_state(managed.url)

    result = restored(managed, "--table", "applications", "--table", "users", "--into-schema", "inspect")

    assert result.backup_id == backed_up.backup_id
    assert not result.merged
    assert [table.table for table in result.tables] == ["users", "applications"]  # parents first
    for table in ("users", "applications"):
        assert by_table(result)[table].rows == backed_up.row_counts[table]
        assert scalar(managed.url, f"SELECT count(*) FROM inspect.{table}") == backed_up.row_counts[table]
    deleted = backed_up.row_counts["applications"] - scalar(managed.url, "SELECT count(*) FROM applications")
    applications = by_table(result)["applications"]
    assert (applications.missing, applications.present, applications.differing) == (
        deleted,
        backed_up.row_counts["applications"] - deleted,
        0,
    )
    # The live table's primary key, so the schema can be queried and merged by it.
    assert scalar(
        managed.url,
        "SELECT array_agg(a.attname::text) FROM pg_index AS i JOIN pg_attribute AS a "
        "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
        "WHERE i.indrelid = 'inspect.applications'::regclass AND i.indisprimary",
    ) == ["id"]
    assert backed_up.backup_id in scalar(managed.url, "SELECT obj_description('inspect'::regnamespace)")
    assert live_state(managed.url) == before

    printed = restore_tables(managed, "--table", "courses", "--into-schema", "inspect_courses")

    assert printed.returncode == 0, printed.stderr
    assert f"backup {backed_up.backup_id}" in printed.stdout
    assert "would insert" in printed.stdout
    assert "nothing merged: the rows are in schema inspect_courses" in printed.stdout


def test_where_keeps_one_universitys_rows_where_a_table_has_its_columns(
    managed: ManagedDatabase, backed_up: BackupManifest
) -> None:
    university, courses, _ = a_university(managed.url)

    result = restored(
        managed,
        "--table",
        "courses",
        "--table",
        "users",
        "--table",
        "applications",
        "--where",
        f"university_id = '{university}'",
        "--into-schema",
        "one_university",
    )

    tables = by_table(result)
    assert tables["courses"].filtered
    assert tables["courses"].rows == courses
    assert (
        scalar(
            managed.url, "SELECT count(*) FROM one_university.courses WHERE university_id <> %s", university
        )
        == 0
    )
    users = scalar(managed.url, "SELECT count(*) FROM users WHERE university_id = %s", university)
    assert (tables["users"].filtered, tables["users"].rows) == (True, users)
    # applications has no university_id: restored whole, and the report says why.
    assert not tables["applications"].filtered
    assert tables["applications"].rows == backed_up.row_counts["applications"]
    assert 'column "university_id" does not exist' in str(tables["applications"].unfiltered_because)

    printed = restore_tables(
        managed,
        "--table",
        "applications",
        "--table",
        "courses",
        "--where",
        f"university_id = '{university}'",
        "--into-schema",
        "printed",
    )

    assert printed.returncode == 0, printed.stderr
    assert 'none: column "university_id" does not exist' in printed.stdout


def test_merge_brings_back_one_universitys_deleted_courses_and_applications_parents_first(
    managed: ManagedDatabase, backed_up: BackupManifest
) -> None:
    university, courses, applications = a_university(managed.url)
    with connect(managed.url) as connection:  # the accident: its applications go with its courses
        connection.execute("DELETE FROM courses WHERE university_id = %s", (university,))
    assert (
        scalar(managed.url, "SELECT count(*) FROM applications")
        == backed_up.row_counts["applications"] - applications
    )

    # applications alone cannot come back: their courses are in neither the live table nor the selection.
    alone = restore_tables(managed, "--table", "applications", "--into-schema", "alone", "--merge")

    assert alone.returncode == 1, alone.stderr
    error = one_line_error(alone)
    assert "would break foreign key fk_applications_course_id_courses" in error
    assert "nothing was merged; the restored rows stay in schema alone" in error
    assert "Hint: add the parent table with --table courses" in error
    assert (
        scalar(managed.url, "SELECT count(*) FROM applications")
        == backed_up.row_counts["applications"] - applications
    )

    result = restored(
        managed,
        "--table",
        "applications",  # named first: the merge still inserts courses before applications
        "--table",
        "courses",
        "--where",
        f"university_id = '{university}'",
        "--into-schema",
        "recovered",
        "--merge",
    )

    assert result.merged
    assert [table.table for table in result.tables] == ["courses", "applications"]
    merged = {table.table: table.merged.model_dump() for table in result.tables if table.merged}
    assert merged == {
        "courses": {"inserted": courses, "already_present": 0, "replaced": 0},
        "applications": {
            "inserted": applications,
            "already_present": backed_up.row_counts["applications"] - applications,
            "replaced": 0,
        },
    }
    for table in ("courses", "applications"):
        assert scalar(managed.url, f"SELECT count(*) FROM {table}") == backed_up.row_counts[table]
    assert (
        scalar(
            managed.url,
            "SELECT count(*) FROM recovered.applications AS r LEFT JOIN applications AS l USING (id) "
            "WHERE l.id IS NULL OR l::text <> r::text",
        )
        == 0
    )


def test_merge_leaves_a_changed_row_alone_unless_replace_puts_it_back(
    managed: ManagedDatabase, backed_up: BackupManifest
) -> None:
    course = scalar(managed.url, "SELECT id::text FROM courses ORDER BY code LIMIT 1")
    original = scalar(managed.url, "SELECT name FROM courses WHERE id = %s", course)
    with connect(managed.url) as connection:
        connection.execute("UPDATE courses SET name = 'Overwritten by mistake' WHERE id = %s", (course,))

    kept = restored(managed, "--table", "courses", "--into-schema", "keep", "--merge")

    assert kept.tables[0].differing == 1
    assert kept.tables[0].merged is not None
    assert kept.tables[0].merged.model_dump() == {
        "inserted": 0,
        "already_present": backed_up.row_counts["courses"],
        "replaced": 0,
    }
    assert scalar(managed.url, "SELECT name FROM courses WHERE id = %s", course) == "Overwritten by mistake"

    replaced = restored(managed, "--table", "courses", "--into-schema", "put_back", "--merge", "--replace")

    assert replaced.tables[0].merged is not None
    assert replaced.tables[0].merged.replaced == 1
    assert scalar(managed.url, "SELECT name FROM courses WHERE id = %s", course) == original
    assert (
        scalar(
            managed.url,
            "SELECT count(*) FROM put_back.courses AS r JOIN courses AS l USING (id) "
            "WHERE l::text <> r::text",
        )
        == 0
    )


#: Each refused request, and what its one line must say.
REFUSALS = [
    (["--table", "notes"], "table notes is not in backup"),
    (
        ["--table", "applications", "--where", "university_id = "],
        "--where is not a filter PostgreSQL accepts",
    ),
    (["--table", "applications", "--where", "1=1; DROP TABLE x"], 'syntax error at or near ";"'),
    (
        ["--table", "applications", "--where", "1=1); DROP TABLE x; SELECT (1"],
        "cannot insert multiple commands into a prepared statement",
    ),
    (["--table", "courses", "--where", "unversity_id = 1"], "--where applies to none of the tables"),
    (["--table", "courses", "--into-schema", "taken"], "schema taken already exists"),
    (["--table", "courses", "--into-schema", "fresh", "--replace"], "there is no --merge"),
    (
        [
            "--table",
            "courses",
            "--table",
            "applications",
            "--where",
            "university_id IS NOT NULL",
            "--into-schema",
            "fresh",
            "--merge",
            "--replace",
        ],
        "--where does not apply to table applications",
    ),
]


def test_refusals_exit_2_with_one_line_and_touch_nothing(
    managed: ManagedDatabase, backed_up: BackupManifest
) -> None:
    with connect(managed.url) as connection:
        connection.execute("CREATE TABLE notes (id integer PRIMARY KEY)")  # newer than the backup
        connection.execute("CREATE TABLE x (id integer)")
        connection.execute("CREATE SCHEMA taken")
        connection.execute("DELETE FROM applications WHERE status = 'SUBMITTED'")
    before, schemas_before = live_state(managed.url), schemas(managed.url)

    for arguments, message in REFUSALS:
        if "--into-schema" not in arguments:
            arguments = [*arguments, "--into-schema", "fresh", "--merge"]

        result = restore_tables(managed, *arguments)

        assert result.returncode == 2, (arguments, result.stderr)
        error = one_line_error(result)
        assert message in error, arguments
        assert "nothing was done" in error, arguments
        assert "Hint: " in error, arguments
        assert schemas(managed.url) == schemas_before, arguments
        assert live_state(managed.url) == before, arguments  # x is still there, no application is back


def test_a_corrupt_dump_fails_before_the_merge_and_leaves_no_schema(
    managed: ManagedDatabase, backed_up: BackupManifest
) -> None:
    stored = Path(managed.env["DBOPS_BACKUP_URL"]) / backed_up.object_key
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF  # the end of the object: past the tables pg_restore reads, so only the checksum knows
    stored.write_bytes(bytes(data))
    with connect(managed.url) as connection:
        connection.execute("DELETE FROM applications")
    before, schemas_before = live_state(managed.url), schemas(managed.url)

    result = restore_tables(managed, "--table", "applications", "--into-schema", "corrupt", "--merge")

    assert result.returncode == 1, result.stderr
    error = one_line_error(result)
    assert f"backup {backed_up.backup_id} in " in error
    assert "does not match its manifest" in error
    assert schemas(managed.url) == schemas_before
    assert live_state(managed.url) == before
    assert "merged" not in result.stdout


def test_json_and_text_reports_of_a_merge_agree(managed: ManagedDatabase, backed_up: BackupManifest) -> None:
    with connect(managed.url) as connection:
        connection.execute("DELETE FROM audit_logs WHERE id % 2 = 0")
    missing = backed_up.row_counts["audit_logs"] - scalar(managed.url, "SELECT count(*) FROM audit_logs")

    printed = restore_tables(managed, "--table", "audit_logs", "--into-schema", "logs", "--merge")

    assert printed.returncode == 0, printed.stderr
    header, row = printed.stdout.splitlines()[1:3]
    assert header.split() == [
        "table",
        "in",
        "backup",
        "in",
        "schema",
        "filter",
        "inserted",
        "already",
        "present",
        "replaced",
    ]
    assert row.split() == [
        "audit_logs",
        f"{backed_up.row_counts['audit_logs']:,}",
        f"{backed_up.row_counts['audit_logs']:,}",
        "none",
        f"{missing:,}",
        f"{backed_up.row_counts['audit_logs'] - missing:,}",
        "0",
    ]
    assert "merged in one transaction" in printed.stdout
    assert (
        json.loads(
            restore_tables(managed, "--table", "audit_logs", "--into-schema", "logs2", "--json").stdout
        )["tables"][0]["missing"]
        == 0
    )


def test_a_merge_waits_for_another_job_on_the_database_and_gives_up_touching_nothing(
    managed: ManagedDatabase, backed_up: BackupManifest, pg_server: EmbeddedServer
) -> None:
    database = str(managed.url.database)
    with connect(managed.url) as connection:
        connection.execute("DELETE FROM audit_logs")
    before = live_state(managed.url)

    with connect(pg_server.url("postgres")) as holder:  # another dbops job (a backup, say) holds the guard
        holder.execute("SELECT pg_advisory_lock(%s)", (guard_key(database),))
        result = run_cli(
            "restore-tables",
            "--table",
            "audit_logs",
            "--into-schema",
            "waited",
            "--merge",
            "--yes",
            env=managed.env | {"DBOPS_MAINTENANCE_WAIT_TIMEOUT_SECONDS": "1"},
        )

    assert result.returncode == 1, result.stderr
    assert f"restore-tables of {database} waited 1 s for another dbops job" in one_line_error(result)
    assert live_state(managed.url) == before
    assert "waited" in schemas(managed.url)  # restored for inspection; only the merge waits


def flows_use(managed: ManagedDatabase, monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    """Flows read their settings from the environment: the managed database and its backups."""
    for name in ("DBOPS_DATABASE_URL", "DBOPS_BACKUP_URL", "DBOPS_HOME"):
        monkeypatch.setenv(name, managed.env[name])
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def table_events(database: str, name: str) -> list[dict[str, Any]]:
    """The payloads of the *name* events about *database*, oldest first."""
    with get_client(sync_client=True) as client:
        page = client.read_events(
            EventFilter(
                event=EventNameFilter(name=[name]),
                resource=EventResourceFilter(id=[f"dbops.database.{database}"]),
            ),
            limit=10,
        )
    return [dict(event.payload) for event in sorted(page.events, key=lambda event: event.occurred)]


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_merges_without_approval_publishes_the_counts_and_emits_the_event(
    managed: ManagedDatabase, backed_up: BackupManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    flows_use(managed, monkeypatch)
    university, courses, applications = a_university(managed.url)
    with connect(managed.url) as connection:
        connection.execute("DELETE FROM courses WHERE university_id = %s", (university,))

    state = restore_tables_flow(
        tables=["applications", "courses"],
        into_schema="flow_merged",
        where=f"university_id = '{university}'",
        merge=True,
        approval=False,
        return_state=True,
    )

    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, TableRestoreResult)
    expected = {
        "courses": {"inserted": courses, "already_present": 0, "replaced": 0},
        "applications": {
            "inserted": applications,
            "already_present": backed_up.row_counts["applications"] - applications,
            "replaced": 0,
        },
    }
    assert result.merge_counts() == expected
    assert scalar(managed.url, "SELECT count(*) FROM applications") == backed_up.row_counts["applications"]
    artifact = flow_run_artifacts(state.state_details.flow_run_id)["restore-tables"]
    assert "inserted" in str(artifact)
    database = str(managed.url.database)
    wait_for(lambda: bool(table_events(database, TABLES_MERGED)), "no dbops.tables.merged event")
    assert table_events(database, TABLES_MERGED)[0]["tables"] == expected


def paused_run(schema: str) -> UUID:
    """The restore-tables run restoring into *schema*, once it waits for an operator."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["restore-tables"])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                ),
            )
        for run in runs:
            if run.parameters.get("into_schema") == schema:
                return run.id
        time.sleep(0.2)
    pytest.fail(f"the run restoring into {schema} never paused for approval")


def active_maintenance_slots() -> int:
    with get_client(sync_client=True) as client:
        return int(client.read_global_concurrency_limit_by_name(MAINTENANCE_LIMIT).active_slots)


def run_answered(schema: str, answer: dict[str, object] | None) -> State[Any]:
    """Run the flow with approval, answer its pause with *answer* (None: let it time out)."""
    states: list[State[Any]] = []
    running = threading.Thread(
        target=lambda: states.append(
            restore_tables_flow(
                tables=["users"], into_schema=schema, merge=True, replace=True, return_state=True
            )
        )
    )
    running.start()
    run_id = paused_run(schema)
    assert active_maintenance_slots() == 0, "the slot is held while the run waits for a person"
    if answer is not None:
        resume_flow_run(run_id, run_input=answer)
    running.join(timeout=300)
    assert states, "the flow run did not end"
    return states[0]


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_merges_only_what_an_operator_approves(
    managed: ManagedDatabase, backed_up: BackupManifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    flows_use(managed, monkeypatch, DBOPS_RESTORE_APPROVAL_TIMEOUT_SECONDS="4")
    with connect(managed.url) as connection:
        connection.execute("UPDATE users SET first_name = 'Changed' WHERE role = 'STUDENT'")
    before = live_state(managed.url)

    rejected = run_answered("rejected", {"approve": False, "note": "wrong backup"})

    assert rejected.is_cancelled(), rejected.message
    assert "not merged" in str(rejected.message)
    assert "rejected by the operator (wrong backup)" in str(rejected.message)
    assert "stay in schema rejected" in str(rejected.message)
    assert live_state(managed.url) == before
    assert "rejected" in schemas(managed.url)

    unanswered = run_answered("unanswered", None)

    assert unanswered.is_failed(), unanswered.message
    assert "no operator answered within 4 s" in str(unanswered.message)
    assert "stay in schema unanswered" in str(unanswered.message)
    assert live_state(managed.url) == before
    assert "unanswered" in schemas(managed.url)

    approved = run_answered("approved", {"approve": True})

    assert approved.is_completed(), approved.message
    database = str(managed.url.database)
    wait_for(
        lambda: (
            len(table_events(database, TABLES_REJECTED)) == 2
            and len(table_events(database, TABLES_AWAITING_APPROVAL)) == 3
        ),
        "the waits and rejections never all reached the feed",
    )
    rejections = table_events(database, TABLES_REJECTED)
    assert [event["schema"] for event in rejections] == ["rejected", "unanswered"]
    assert "wrong backup" in rejections[0]["reason"]
    assert "no operator answered" in rejections[1]["reason"]
    waits = table_events(database, TABLES_AWAITING_APPROVAL)
    assert [event["schema"] for event in waits] == ["rejected", "unanswered", "approved"]
    result = approved.result()
    assert isinstance(result, TableRestoreResult)
    students = scalar(managed.url, "SELECT count(*) FROM users WHERE role = 'STUDENT'")
    assert result.tables[0].merged is not None
    assert result.tables[0].merged.replaced == students
    assert scalar(managed.url, "SELECT count(*) FROM users WHERE first_name = 'Changed'") == 0


@pytest.mark.usefixtures("backed_up")
def test_a_merge_without_a_terminal_needs_yes_and_touches_nothing(managed: ManagedDatabase) -> None:
    before, schemas_before = live_state(managed.url), schemas(managed.url)

    result = run_cli(
        "restore-tables", "--table", "courses", "--into-schema", "unasked", "--merge", env=managed.env
    )

    assert result.returncode == 2
    assert one_line_error(result).startswith(
        "dbops: error: dbops restore-tables --merge without a terminal needs --yes; nothing was done"
    )
    assert live_state(managed.url) == before
    assert schemas(managed.url) == schemas_before


@pytest.mark.usefixtures("backed_up", "prefect_api")
def test_a_merge_on_a_terminal_waits_for_the_database_name(managed: ManagedDatabase) -> None:
    with connect(managed.url) as connection:
        connection.execute("DELETE FROM applications WHERE status = 'SUBMITTED'")
    before = live_state(managed.url)
    database = str(managed.url.database)
    merge = [*cli_command("restore-tables", "--table", "applications", "--merge"), "--into-schema"]
    env = managed.env | {"PREFECT_API_URL": str(PREFECT_API_URL.value())}  # the operator's feed

    declined = on_a_terminal([*merge, "declined"], env, typed="no\n", asks="to merge these rows")

    assert declined.returncode == 1, declined.output
    assert f"nothing was merged into {database}" in declined.output
    assert live_state(managed.url) == before

    accepted = on_a_terminal([*merge, "accepted"], env, typed=f"{database}\n", asks="to merge these rows")

    assert accepted.returncode == 0, accepted.output
    assert "merged in one transaction" in accepted.output
    assert live_state(managed.url) != before
    wait_for(
        lambda: bool(table_events(database, TABLES_REJECTED) and table_events(database, TABLES_MERGED)),
        "the terminal's rejection and merge never reached the feed",
    )
    rejection = table_events(database, TABLES_REJECTED)[0]
    assert (rejection["schema"], rejection["reason"]) == ("declined", "rejected on the terminal")
    assert "dbops command line" in rejection["operator"]


def test_a_multi_part_backup_gives_back_the_same_rows_reading_only_its_parts(
    managed: ManagedDatabase,
) -> None:
    in_parts = managed.env | {"DBOPS_BACKUP_PARALLELISM": "2"}
    taken = run_cli("backup", env=in_parts)
    assert taken.returncode == 0, taken.stderr
    (folder,) = (Path(managed.env["DBOPS_BACKUP_URL"]) / "backups").iterdir()
    manifest = BackupManifest.model_validate_json((folder / "manifest.json").read_text())
    assert len(manifest.parts) == 4  # pre-data, two data parts, post-data
    university, courses, applications = a_university(managed.url)
    with connect(managed.url) as connection:
        connection.execute("DELETE FROM courses WHERE university_id = %s", (university,))

    result = restored(
        managed,
        "--table",
        "courses",
        "--table",
        "applications",
        "--where",
        f"university_id = '{university}'",
        "--into-schema",
        "from_parts",
        "--merge",
    )

    merged = {table.table: table.merged.inserted for table in result.tables if table.merged}
    assert merged == {"courses": courses, "applications": applications}
    for table in ("courses", "applications"):
        assert scalar(managed.url, f"SELECT count(*) FROM {table}") == manifest.row_counts[table]
