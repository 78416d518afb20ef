"""Index advice for the workload: a planted workload on the platform's tables, recorded by
pg_stat_statements, gets multi-column indexes in the order a btree serves it, costed with hypopg where
the server has it and listed uncosted where it does not."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL, Connection

from models.index_review import Finding, FindingKind, IndexReviewReport
from models.settings import Settings, load_settings
from models.workload import IndexCandidate
from tasks.index_review.apply import apply_finding
from tasks.index_review.catalog import read_server_version_num
from tasks.index_review.runner import review_indexes
from tasks.index_review.workload.advice import advise_indexes
from tasks.index_review.workload.costing import candidate_sql, choose_candidates, cost_candidates
from tasks.postgres.embedded import EmbeddedServer, create_database
from tasks.postgres.engine import make_engine
from tasks.schema.migrate import migrate
from tests.helpers import environment_without_dbops
from tests.integration.conftest import (
    admin_connection,
    connect,
    flow_run_artifacts,
    flow_url,
    run_cli,
    url_string,
)
from tests.integration.index_review.conftest import plant_rows, require_hypopg

TEMPLATE = "workload_template"
ROWS = 100_000

AUDIT_FILTER = (
    "SELECT * FROM audit_logs WHERE entity_type = %s AND action = %s AND created_at >= %s",
    lambda i: ("type_1", f"action_{i % 40}", "2020-01-01"),
)
AUDIT_LATEST = (
    "SELECT id, action FROM audit_logs WHERE entity_id = %s ORDER BY created_at DESC LIMIT 20",
    lambda i: (str(i),),
)
EVENTS_LATEST = (
    "SELECT * FROM analytics_events WHERE event_type = %s AND university_id = %s "
    "ORDER BY occurred_at DESC LIMIT 50",
    lambda i: ("event_3", f"00000000-0000-0000-0000-{i % 300:012d}"),
)


@pytest.fixture(scope="module")
def workload_server(
    statements_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory
) -> EmbeddedServer:
    """The server that records the workload, with a template database migrated and filled with 100k
    audit logs and 100k analytics events (analysed), for each test to copy."""
    server = statements_server
    create_database(server, TEMPLATE)
    url = server.url(TEMPLATE)
    home = tmp_path_factory.mktemp("workload")
    migrate(url, load_settings(_env_file=None, database_url=SecretStr(url_string(url)), home=home))
    with connect(url) as connection:
        plant_rows(connection, ROWS, users=False)
        connection.execute("ANALYZE audit_logs")
        connection.execute("ANALYZE analytics_events")
    return server


@pytest.fixture
def workload_url(workload_server: EmbeddedServer) -> Iterator[URL]:
    """A copy of the template with pg_stat_statements installed and its counters starting now."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with admin_connection(workload_server) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
    url = workload_server.url(name)
    with connect(url) as connection:
        connection.execute("CREATE EXTENSION pg_stat_statements")
        connection.execute("SELECT pg_stat_statements_reset()")
    yield url
    with admin_connection(workload_server) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_hypopg(url: URL, server: EmbeddedServer, pg_bindir: Path) -> None:
    require_hypopg(server, pg_bindir)
    with connect(url) as connection:
        connection.execute("CREATE EXTENSION hypopg")


def advice_settings(url: URL, tmp_path: Path, **overrides: object) -> Settings:
    return load_settings(
        _env_file=None,
        database_url=SecretStr(url_string(url)),
        home=tmp_path / "home",
        review_workload_min_calls=5,
        **overrides,
    )


def run_workload(url: URL, *statements: tuple[str, object], times: int = 20) -> None:
    """Run each statement *times* with varying parameters; the session ends, so its counters land."""
    with connect(url) as connection:
        for index in range(times):
            for query, parameters in statements:
                connection.execute(query, parameters(index))  # type: ignore[operator]


def workload_findings(report: IndexReviewReport) -> dict[str, Finding]:
    return {f.table or "": f for f in report.findings if f.kind is FindingKind.WORKLOAD_INDEX}


def test_the_workload_gets_multi_column_indexes_equality_then_range_or_sort_costed_with_hypopg(
    workload_server: EmbeddedServer, workload_url: URL, pg_bindir: Path, tmp_path: Path
) -> None:
    with_hypopg(workload_url, workload_server, pg_bindir)
    run_workload(workload_url, AUDIT_FILTER, AUDIT_LATEST, EVENTS_LATEST)

    report = review_indexes(workload_url, advice_settings(workload_url, tmp_path))

    advised = {tuple(f.columns or ()): f for f in report.findings if f.kind is FindingKind.WORKLOAD_INDEX}
    # Equality columns most selective first (40 actions, 6 entity types), then the range column.
    assert set(advised) == {
        ("action", "entity_type", "created_at"),
        ("entity_id", "created_at"),
        ("university_id", "event_type", "occurred_at"),  # 300 universities, 12 event types, the sort
    }
    for finding in advised.values():
        assert finding.estimated_cost_before is not None
        assert finding.estimated_cost_after is not None
        assert finding.estimated_cost_after < finding.estimated_cost_before
        assert finding.statements
        assert all(row["cost_after"] < row["cost_before"] for row in finding.statements)
        assert finding.sql[1].startswith(f"CREATE INDEX CONCURRENTLY {finding.index} ON public.")
        assert finding.model is not None
        assert finding.model.startswith(f"Index('{finding.index}', ")
        assert finding.alembic is not None
        assert "autocommit_block()" in finding.alembic
    events = advised[("university_id", "event_type", "occurred_at")]
    assert events.id == "workload-index:ix_analytics_events_university_id_event_type_occurred_at"
    assert events.sql[1] == (
        "CREATE INDEX CONCURRENTLY ix_analytics_events_university_id_event_type_occurred_at "
        "ON public.analytics_events (university_id, event_type, occurred_at)"
    )
    assert [row["calls"] for row in events.statements or ()] == [20]
    assert not [warning for warning in report.warnings if "hypopg" in warning]


def test_candidates_are_costed_with_indexes_built_for_real_through_a_factory(
    workload_url: URL, tmp_path: Path
) -> None:
    """What the measurement on a restored copy does without hypopg: build each candidate, plan, drop."""
    run_workload(workload_url, AUDIT_FILTER)
    settings = advice_settings(workload_url, tmp_path)
    advice = advise_indexes(workload_url, settings)
    [statement] = advice.workload
    uses = {use.position: use.column for use in advice.parameter_uses[statement.key]}
    assert uses == {1: "entity_type", 2: "action", 3: "created_at"}
    assert [c.columns for c in advice.candidates] == [("action", "entity_type", "created_at")]
    built: list[str] = []

    def build(connection: Connection, candidate: IndexCandidate) -> Callable[[], None]:
        connection.exec_driver_sql(candidate_sql(candidate, concurrently=False))
        built.append(candidate.name)

        def drop() -> None:
            connection.exec_driver_sql(f"DROP INDEX {candidate.name}")

        return drop

    engine = make_engine(workload_url, settings, purpose="test")
    try:
        with engine.connect() as connection:
            version_num = read_server_version_num(connection)
            [costed] = cost_candidates(connection, version_num, advice.workload, advice.candidates, build)
            left = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'audit_logs'"
            ).scalar_one()
    finally:
        engine.dispose()

    assert built == [costed.name]
    [cost] = costed.costs
    assert (cost.statement, cost.calls) == (statement.key, 20)
    assert cost.after < cost.before
    assert costed.score > 0
    assert left == 2  # the primary key and ix_audit_logs_created_at: the built one was dropped


def test_a_workload_the_existing_indexes_serve_gets_no_advice(
    workload_server: EmbeddedServer, workload_url: URL, tmp_path: Path
) -> None:
    run_workload(
        workload_url,
        ("SELECT * FROM audit_logs WHERE id = %s", lambda i: (i,)),
        ("SELECT * FROM audit_logs WHERE created_at >= %s", lambda i: ("2020-01-01",)),
        ("SELECT count(*) FROM analytics_events WHERE occurred_at < %s", lambda i: ("2020-01-01",)),
    )

    report = review_indexes(workload_url, advice_settings(workload_url, tmp_path))

    assert workload_findings(report) == {}
    assert not [warning for warning in report.warnings if "hypopg" in warning]


def test_a_write_heavy_tables_marginal_candidate_is_not_recommended(
    workload_server: EmbeddedServer, workload_url: URL, pg_bindir: Path, tmp_path: Path
) -> None:
    with_hypopg(workload_url, workload_server, pg_bindir)
    with connect(workload_url) as connection:
        connection.execute("SELECT pg_stat_reset()")
        connection.execute("UPDATE analytics_events SET properties = '{\"seen\": true}'")
        connection.execute("UPDATE analytics_events SET properties = '{\"seen\": false}'")
    run_workload(workload_url, EVENTS_LATEST, AUDIT_FILTER, times=5)

    advice = advise_indexes(workload_url, advice_settings(workload_url, tmp_path))

    assert [c.table for c in advice.candidates] == ["audit_logs"]
    [(rejected, reason)] = advice.rejected
    assert rejected.table == "analytics_events"
    assert "costs the writes" in reason
    assert rejected.write_overhead > sum(cost.saved for cost in rejected.costs) > 0


def test_without_hypopg_the_candidates_are_listed_uncosted_with_how_to_cost_them(
    workload_url: URL, tmp_path: Path
) -> None:
    run_workload(workload_url, AUDIT_FILTER)

    report = review_indexes(workload_url, advice_settings(workload_url, tmp_path))

    [finding] = workload_findings(report).values()
    assert finding.columns == ["action", "entity_type", "created_at"]
    assert finding.estimated_cost_before is None
    assert finding.estimated_cost_after is None
    assert "not costed" in finding.recommendation
    [warning] = [warning for warning in report.warnings if "hypopg" in warning]
    assert "CREATE EXTENSION hypopg" in warning
    assert "--verify" in warning


def test_a_queries_file_is_advised_from_the_command_line(workload_url: URL, tmp_path: Path) -> None:
    queries = tmp_path / "queries.sql"
    queries.write_text(
        "-- the audit screen; calls: 500\n"
        "SELECT * FROM audit_logs WHERE entity_type = 'type_2' AND action = 'action_7'\n"
        "  ORDER BY created_at DESC LIMIT 10;\n"
        "SET work_mem = '64MB';\n"
    )
    env = environment_without_dbops(
        DBOPS_DATABASE_URL=url_string(workload_url),
        DBOPS_HOME=str(tmp_path / "home"),
        PYTHONWARNINGS="ignore",
    )

    run_workload(workload_url, EVENTS_LATEST)  # 20 calls: under --min-calls

    result = run_cli("review-indexes", "--queries", str(queries), "--min-calls", "1000", "--json", env=env)

    assert result.returncode == 0, result.stderr
    report = IndexReviewReport.model_validate(json.loads(result.stdout))
    advised = [f for f in report.findings if f.kind is FindingKind.WORKLOAD_INDEX]
    assert {tuple(f.columns or ()) for f in advised} >= {("action", "entity_type", "created_at")}
    [row] = advised[0].statements or []
    assert (row["key"], row["calls"]) == ("f:2", 500)
    assert {f.table for f in advised} == {"audit_logs"}

    text = run_cli("review-indexes", "--queries", str(queries), env=env)
    assert "models/schema.py, the table's __table_args__: Index('ix_audit_logs_" in text.stdout
    assert "with op.get_context().autocommit_block():" in text.stdout

    missing = run_cli("review-indexes", "--queries", str(tmp_path / "nope.sql"), env=env)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"dbops: error: cannot read the queries file {tmp_path / 'nope.sql'}. No such file or directory. "
        "Hint: pass a readable UTF-8 file of SQL statements separated by semicolons."
    ]


def test_a_role_without_pg_read_all_stats_is_told_how_to_see_the_workload(
    workload_server: EmbeddedServer, workload_url: URL, tmp_path: Path
) -> None:
    role, password = f"managed_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with connect(workload_url) as connection:
        connection.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        connection.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
        # What the rest of the review needs (pg_monitor has both, and pg_read_all_stats besides).
        connection.execute(f"GRANT pg_read_all_settings TO {role}")
    run_workload(workload_url, AUDIT_FILTER)
    role_url = workload_url.set(username=role, password=password)
    try:
        hidden = review_indexes(role_url, advice_settings(role_url, tmp_path))
        with connect(workload_url) as connection:
            connection.execute(f"GRANT pg_read_all_stats TO {role}")
        seen = review_indexes(role_url, advice_settings(role_url, tmp_path))
    finally:
        with connect(workload_url) as connection:
            connection.execute(f"DROP OWNED BY {role}")
            connection.execute(f"DROP ROLE {role}")

    assert workload_findings(hidden) == {}
    assert [w for w in hidden.warnings if "GRANT pg_read_all_stats" in w]
    assert [f.columns for f in workload_findings(seen).values()] == [["action", "entity_type", "created_at"]]
    assert not [w for w in seen.warnings if "GRANT pg_read_all_stats" in w]


@pytest.mark.usefixtures("prefect_api")
def test_the_flow_takes_a_queries_file_and_lists_the_workload_findings_in_its_artifacts(
    workload_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.index_review import index_review_flow

    queries = tmp_path / "queries.sql"
    queries.write_text("SELECT * FROM analytics_events WHERE event_type = $1 AND university_id = $2;\n")
    monkeypatch.setenv("DBOPS_HOME", str(tmp_path / "home"))

    state = index_review_flow(
        database_url=flow_url(workload_url, monkeypatch),
        queries_file=str(queries),
        min_calls=1_000,
        return_state=True,
    )

    assert state.is_completed(), state.message
    artifacts = flow_run_artifacts(state.state_details.flow_run_id)
    rows = json.loads(str(artifacts["index-review-findings"]))
    [row] = [row for row in rows if row["kind"] == "workload-index"]
    assert row["id"] == "workload-index:ix_analytics_events_university_id_event_type"
    assert row["evidence"].startswith("columns=university_id,event_type ")
    markdown = str(artifacts["index-review"])
    assert "## workload-index:ix_analytics_events_university_id_event_type" in markdown
    assert "Index('ix_analytics_events_university_id_event_type', 'university_id', 'event_type')," in markdown


def table_fingerprint(url: URL) -> tuple[object, ...] | None:
    with connect(url) as connection:
        return connection.execute(
            "SELECT (SELECT count(*) FROM audit_logs), "
            "(SELECT sum(length(properties::text)) FROM analytics_events)"
        ).fetchone()


def test_a_statement_that_cannot_be_planned_is_skipped_and_nothing_is_run(
    workload_url: URL, tmp_path: Path
) -> None:
    queries = tmp_path / "queries.sql"
    queries.write_text(
        "SELECT * FROM no_such_table WHERE a = 1;\n"
        "DELETE FROM audit_logs WHERE entity_type = $1 AND action = $2;\n"
        "UPDATE analytics_events SET properties = '{}' WHERE event_type = $1 AND university_id = $2;\n"
    )
    before = table_fingerprint(workload_url)

    report = review_indexes(workload_url, advice_settings(workload_url, tmp_path), queries_file=queries)

    after = table_fingerprint(workload_url)
    assert after == before  # planned, never executed
    assert "1 workload statement(s) could not be planned and were skipped" in report.warnings
    advised = {tuple(f.columns or ()) for f in workload_findings(report).values()}
    assert advised == {("action", "entity_type"), ("university_id", "event_type")}


def test_the_greedy_choice_drops_a_candidate_the_chosen_one_makes_useless(
    workload_url: URL, tmp_path: Path
) -> None:
    """With indexes built for real (what a restored copy does without hypopg): the three-column index
    serves the statement, so the one on its first column, costed beside it, saves nothing; one whose
    index cannot be made is set aside and the rest are costed."""
    run_workload(workload_url, AUDIT_FILTER)
    settings = advice_settings(workload_url, tmp_path)
    advice = advise_indexes(workload_url, settings)
    [full] = advice.candidates
    first_column = full.model_copy(update={"columns": ("action",)})
    impossible = full.model_copy(update={"columns": ("no_such_column",)})

    def build(connection: Connection, candidate: IndexCandidate) -> Callable[[], None]:
        connection.exec_driver_sql(candidate_sql(candidate, concurrently=False))

        def drop() -> None:
            connection.exec_driver_sql(f"DROP INDEX {candidate.name}")

        return drop

    engine = make_engine(workload_url, settings, purpose="test")
    try:
        with engine.connect() as connection:
            version_num = read_server_version_num(connection)
            chosen, rejected = choose_candidates(
                connection,
                version_num,
                advice.workload,
                [impossible, first_column, full],
                build,
                lambda _: 0.0,
            )
    finally:
        engine.dispose()

    assert [c.columns for c in chosen] == [("action", "entity_type", "created_at")]
    assert [(c.columns, reason) for c, reason in rejected] == [
        (("no_such_column",), "it could not be costed (see the log)"),
        (("action",), f"the planner would not use it beside {full.name}"),
    ]


def test_applying_a_workload_finding_builds_the_index_and_the_advice_goes(
    workload_url: URL, tmp_path: Path
) -> None:
    run_workload(workload_url, AUDIT_FILTER)
    settings = advice_settings(workload_url, tmp_path)

    applied = apply_finding(
        workload_url, settings, "workload-index:ix_audit_logs_action_entity_type_created_at"
    )

    assert applied.finding.columns == ["action", "entity_type", "created_at"]
    with connect(workload_url) as connection:
        [definition] = connection.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_audit_logs_action_entity_type_created_at'"
        ).fetchone() or [None]
    assert definition == (
        "CREATE INDEX ix_audit_logs_action_entity_type_created_at ON public.audit_logs "
        "USING btree (action, entity_type, created_at)"
    )
    after = review_indexes(workload_url, settings)
    assert workload_findings(after) == {}
    # Built but not yet declared: the model line the finding gave is what declares it.
    undeclared = after.finding("undeclared-index:ix_audit_logs_action_entity_type_created_at")
    assert undeclared is not None


def test_planning_a_statement_is_bounded_by_the_plan_timeout(workload_url: URL, tmp_path: Path) -> None:
    """An immutable function is evaluated while planning: a slow one must not hold the review."""
    with connect(workload_url) as connection:
        connection.execute(
            "CREATE FUNCTION slow_action() RETURNS text IMMUTABLE LANGUAGE plpgsql "
            "AS $$ BEGIN PERFORM pg_sleep(5); RETURN 'action_1'; END $$"
        )
    queries = tmp_path / "queries.sql"
    queries.write_text(
        "SELECT * FROM audit_logs WHERE action = slow_action();\n"
        "SELECT * FROM audit_logs WHERE entity_type = $1 AND action = $2;\n"
    )
    settings = advice_settings(workload_url, tmp_path, review_plan_timeout_seconds=0.5)

    started = time.monotonic()
    advice = advise_indexes(workload_url, settings, queries_file=queries)

    assert time.monotonic() - started < 4
    assert "1 workload statement(s) could not be planned and were skipped" in advice.warnings
    assert list(advice.plans) == ["f:2"]
    assert [c.columns for c in advice.candidates] == [("action", "entity_type")]
