"""Differential tests: a multi-part backup restored by dbops against the oracle, a single ``pg_dump -Fc``
restored by ``pg_restore``, on a corpus of schemas (tests/integration/backup/corpus.py).

For each schema, backups of parallelism 2, 3 and 4 are each restored by dbops (its parts streamed into
pg_restore, the rows checked against the manifest as a rehearsal checks them), and each restore must
equal the oracle's: ``pg_dump -s``, every table's rows by an ordered hash, every sequence's value and
the large objects. Each backup is also restored with stock tools only, by the README's by-hand
script, and must equal the oracle too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import URL

from models.backup import PartKind
from models.settings import Settings
from tasks.backup.dump import backup
from tasks.backup.progress import Progress
from tasks.postgres.embedded import EmbeddedServer, ensure_running, stop
from tasks.storage import open_store
from tests.integration.backup import corpus
from tests.integration.conftest import connect, server_directory
from tests.integration.extensions import require_extension

PARALLELISMS = (2, 3, 4)
CRON_DATABASE = "cron_corpus"


@dataclass(frozen=True)
class Source:
    """A corpus database, where its restores go, and what happens to it while it is backed up."""

    url: URL
    targets: corpus.Targets
    during_backup: Callable[[URL], Callable[[Progress], None]] | None = None
    after_backup: Callable[[URL], None] | None = None


def loaded(url: URL, schema: str, *, analyse: bool = True) -> URL:
    with connect(url) as connection:
        connection.execute(schema)
        if analyse:  # sizes in pg_class, as a database in use has them
            connection.execute("ANALYZE")
    return url


@pytest.fixture
def partitioned(database_url: URL, pg_server: EmbeddedServer) -> Source:
    return Source(loaded(database_url, corpus.PARTITIONED), corpus.Targets(pg_server))


@pytest.fixture
def inheritance(database_url: URL, pg_server: EmbeddedServer) -> Source:
    return Source(loaded(database_url, corpus.INHERITANCE), corpus.Targets(pg_server))


@pytest.fixture
def large_objects(database_url: URL, pg_server: EmbeddedServer) -> Source:
    return Source(loaded(database_url, corpus.LARGE_OBJECTS), corpus.Targets(pg_server))


@pytest.fixture
def unlogged(database_url: URL, pg_server: EmbeddedServer) -> Source:
    return Source(loaded(database_url, corpus.UNLOGGED), corpus.Targets(pg_server))


@pytest.fixture
def generated_and_domains(database_url: URL, pg_server: EmbeddedServer) -> Source:
    return Source(loaded(database_url, corpus.GENERATED_AND_DOMAINS), corpus.Targets(pg_server))


@pytest.fixture
def odd_identifiers(database_url: URL, pg_server: EmbeddedServer) -> Source:
    return Source(loaded(database_url, corpus.ODD_IDENTIFIERS), corpus.Targets(pg_server))


@pytest.fixture
def empty_tables(database_url: URL, pg_server: EmbeddedServer) -> Source:
    return Source(loaded(database_url, corpus.EMPTY_TABLES), corpus.Targets(pg_server))


@pytest.fixture
def never_analysed(database_url: URL, pg_server: EmbeddedServer) -> Source:
    url = loaded(database_url, corpus.NEVER_ANALYSED, analyse=False)
    with connect(url) as connection:
        pages = connection.execute(
            "SELECT max(relpages) FROM pg_class WHERE relkind = 'r' AND relname LIKE 'fresh\\_%%'"
        )
        assert pages.fetchone() == (0,)
    return Source(url, corpus.Targets(pg_server))


def _create_table_once(url: URL) -> Callable[[Progress], None]:
    created = [False]

    def create(progress: Progress) -> None:
        if not created[0]:
            created[0] = True
            with connect(url) as connection:
                connection.execute("CREATE TABLE late_arrival (id int); INSERT INTO late_arrival VALUES (1)")

    return create


def _drop_late_table(url: URL) -> None:
    with connect(url) as connection:
        assert connection.execute("SELECT to_regclass('late_arrival')").fetchone() != (None,)
        connection.execute("DROP TABLE late_arrival")


@pytest.fixture
def created_during_dump(database_url: URL, pg_server: EmbeddedServer) -> Source:
    """A table created (with a row) while the backup runs: in neither the backup nor the oracle, which
    is taken before; it is dropped after each backup, so every backup starts from the same state."""
    return Source(
        loaded(database_url, corpus.CREATED_DURING_DUMP),
        corpus.Targets(pg_server),
        during_backup=_create_table_once,
        after_backup=_drop_late_table,
    )


def _try_to_drop_a_table(url: URL) -> Callable[[Progress], None]:
    """Once the backup is under way, a session tries to drop ``accounts``' child table with a short
    lock_timeout, as a careful migration would: the backup holds every table it dumps until it ends,
    so the drop must give up, and the table be in the backup, whole."""
    tried: list[threading.Thread] = []
    refused: list[bool] = []

    def drop() -> None:
        with connect(url) as connection:
            try:
                connection.execute("SET lock_timeout = '1s'")
                connection.execute("DROP TABLE ledger")
            except psycopg.errors.LockNotAvailable:
                refused.append(True)

    def attempt(progress: Progress) -> None:
        if not tried:
            tried.append(threading.Thread(target=drop))
            tried[0].start()
            tried[0].join(timeout=30)  # the backup's parts wait at most as long behind the DROP
            assert refused == [True], "the table could be dropped while it was being backed up"

    return attempt


@pytest.fixture
def dropped_during_dump(database_url: URL, pg_server: EmbeddedServer) -> Source:
    """A table someone tries to drop while the backup runs: the backup keeps it, like the oracle."""
    return Source(
        loaded(database_url, corpus.CREATED_DURING_DUMP),
        corpus.Targets(pg_server),
        during_backup=_try_to_drop_a_table,
    )


@pytest.fixture
def partman(database_url: URL, pg_server: EmbeddedServer, pg_bindir: Path) -> Source:
    require_extension(pg_server, pg_bindir, "pg_partman")
    return Source(loaded(database_url, corpus.PARTMAN), corpus.Targets(pg_server))


@pytest.fixture(scope="module")
def cron_server(pg_server: EmbeddedServer, pg_bindir: Path) -> Iterator[EmbeddedServer]:
    """A server of its own with pg_cron loaded at start, which it must be, and bound to one database:
    pg_cron can be created only in ``cron.database_name``, so every restore of this schema goes into
    a database of that name, dropped and created afresh each time."""
    require_extension(pg_server, pg_bindir, "pg_cron")
    with server_directory() as base_dir:
        server = ensure_running(
            base_dir,
            pg_bindir,
            database=CRON_DATABASE,
            durable=False,
            server_settings={"shared_preload_libraries": "pg_cron", "cron.database_name": CRON_DATABASE},
        )
        yield server
        stop(base_dir, pg_bindir)


@pytest.fixture
def cron(cron_server: EmbeddedServer) -> Source:
    targets = corpus.Targets(cron_server, fixed_name=CRON_DATABASE)
    url = targets.fresh()
    return Source(loaded(url, corpus.CRON), targets)


SCHEMAS = [
    "partitioned",
    "inheritance",
    "large_objects",
    "unlogged",
    "generated_and_domains",
    "odd_identifiers",
    "empty_tables",
    "never_analysed",
    "created_during_dump",
    "dropped_during_dump",
    "partman",
    "cron",
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_a_multi_part_backup_restores_what_a_single_pg_dump_restores(
    schema: str, request: pytest.FixtureRequest, settings: Settings, pg_bindir: Path, tmp_path: Path
) -> None:
    source: Source = request.getfixturevalue(schema)
    oracle_file = tmp_path / "oracle.pgcustom"
    corpus.pg_dump_to_file(source.url, pg_bindir, oracle_file)
    backups = []
    for parallelism in PARALLELISMS:
        configured = settings.model_copy(
            update={
                "backup_url": str(tmp_path / f"backups-{parallelism}"),
                "backup_parallelism": parallelism,
                "restore_parallelism": 2,
                "restore_jobs": 2,
            }
        )
        store = open_store(configured)
        during = source.during_backup(source.url) if source.during_backup else None
        manifest = backup(source.url, configured, store, on_progress=during)
        if source.after_backup is not None:
            source.after_backup(source.url)
        data = [part for part in manifest.parts if part.kind is PartKind.DATA]
        assert manifest.format_version == 2, f"parallelism {parallelism} wrote a single object"
        assert len(data) >= 2
        assert all(part.tables for part in data)
        backups.append((parallelism, configured, store, manifest))

    expected_at = source.targets.fresh()
    try:
        corpus.pg_restore_file(oracle_file, expected_at, pg_bindir)
        expected = corpus.measure(expected_at, pg_bindir)
    finally:
        source.targets.drop(expected_at)
    assert any(rows[0] for rows in expected.rows.values()), "the oracle restored no rows at all"

    for parallelism, configured, store, manifest in backups:
        restored_at = source.targets.fresh()
        try:
            work = tmp_path / f"work-{parallelism}"
            corpus.restore_with_dbops(store, manifest, configured, restored_at, work)
            restored = corpus.measure(restored_at, pg_bindir)
        finally:
            source.targets.drop(restored_at)
        assert restored.schema == expected.schema, f"parallelism {parallelism}: pg_dump -s differs"
        assert restored.rows == expected.rows, f"parallelism {parallelism}: table rows differ"
        assert restored.sequences == expected.sequences, f"parallelism {parallelism}: sequences differ"
        assert restored.large_objects == expected.large_objects, f"parallelism {parallelism}: large objects"

        by_hand_at = source.targets.fresh()  # and with stock tools only, by the README's script
        try:
            root = Path(str(configured.backup_url))
            corpus.restore_by_hand(root, manifest, by_hand_at, pg_bindir, tmp_path / f"hand-{parallelism}")
            by_hand = corpus.measure(by_hand_at, pg_bindir)
        finally:
            source.targets.drop(by_hand_at)
        assert by_hand == expected, f"parallelism {parallelism}: the by-hand restore differs"
