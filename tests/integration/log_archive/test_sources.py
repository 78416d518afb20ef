"""One store, several databases: production and a staging copy of it on another server, with the same
name and the same ids on the same days, archive into one store. Nothing of one is overwritten by the
other, each gets back exactly its own rows, a run never resumes the other's crashed run, an object
rewritten together with its metadata fails the check against its run manifest, and what an earlier
release wrote (no source in its keys or runs) still lists and imports."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from models.errors import ArchiveVerificationError
from models.settings import Settings
from tasks.log_archive.archiving import archive_source, archive_table
from tasks.log_archive.gzip_thread import BackgroundGzip
from tasks.log_archive.reimport import import_archive
from tasks.postgres.embedded import EmbeddedServer, create_database, ensure_running, stop
from tasks.schema.migrate import migrate
from tasks.storage import ObjectStore, open_store
from tests.integration.conftest import connect, run_cli, server_directory
from tests.integration.log_archive.conftest import archive_runs, batch_keys, row_hashes
from tests.integration.s3_proxy import faulty_s3_proxy

OLD_ROWS = "created_at < DATE '2025-01-01'"
MAY_FIRST, MAY_LAST = date(2024, 5, 1), date(2024, 5, 31)


@pytest.fixture(scope="module")
def staging_server(pg_bindir: Path) -> Iterator[EmbeddedServer]:
    """A second server: staging's, with a system identifier of its own."""
    with server_directory() as base_dir:
        yield ensure_running(base_dir, pg_bindir, durable=False)
        stop(base_dir, pg_bindir)


def load_logs(url: URL, label: str) -> None:
    """Ids 1-2,000 every 20 minutes from 1 May 2024, their payload naming *label*: two databases
    loaded so have the same ids on the same days, and other rows."""
    with connect(url) as connection:
        connection.execute(
            "INSERT INTO audit_logs (id, action, entity_type, payload, created_at) "
            "SELECT g, 'login', 'user', jsonb_build_object('database', %s::text, 'n', g), "
            "timestamptz '2024-05-01 00:00+00' + g * interval '20 minutes' "
            "FROM generate_series(1, 2000) AS g",
            (label,),
        )
        connection.execute("SELECT setval(pg_get_serial_sequence('audit_logs', 'id'), 10000)")


@pytest.fixture
def production(migrated_url: URL) -> URL:
    load_logs(migrated_url, "production")
    return migrated_url


@pytest.fixture
def staging(staging_server: EmbeddedServer, migrated_url: URL, settings: Settings) -> Iterator[URL]:
    """A database of production's name on the staging server, migrated and loaded."""
    name = str(migrated_url.database)
    create_database(staging_server, name)
    url = staging_server.url(name)
    migrate(url, settings)
    load_logs(url, "staging")
    yield url
    with connect(staging_server.url("postgres")) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def digests(store: ObjectStore) -> dict[str, str]:
    return {key: hashlib.sha256(store.read_bytes(key)).hexdigest() for key in batch_keys(store)}


def test_two_databases_with_the_same_ids_on_the_same_days_overwrite_nothing_and_get_back_their_own(
    production: URL, staging: URL, archive_settings: Settings, cli_env: dict[str, str]
) -> None:
    store = open_store(archive_settings)
    production_rows = row_hashes(production, "audit_logs", OLD_ROWS)
    staging_rows = row_hashes(staging, "audit_logs", OLD_ROWS)
    assert production_rows.keys() == staging_rows.keys()
    assert production_rows != staging_rows
    assert archive_source(production, archive_settings) != archive_source(staging, archive_settings)

    assert archive_table(production, archive_settings, store, "audit_logs").rows_archived == 2_000
    production_objects = digests(store)
    assert archive_table(staging, archive_settings, store, "audit_logs").rows_archived == 2_000

    stored = digests(store)
    assert production_objects.items() <= stored.items(), "production's objects were overwritten"
    assert len(stored) == 2 * len(production_objects) == 6
    for url, expected in ((production, production_rows), (staging, staging_rows)):
        outcome = import_archive(
            url, archive_settings, store, "audit_logs", MAY_FIRST, MAY_LAST, into="review"
        )
        assert row_hashes(url, "review") == expected
        assert (outcome.objects, outcome.rows_read, outcome.earlier_release_objects) == (3, 2_000, 0)

    staging_source = archive_source(staging, archive_settings)
    asked = f"{staging_source.system_identifier}/{staging_source.database}"
    environment = cli_env | {"DBOPS_BACKUP_URL": archive_settings.backup_url or ""}
    from_staging = run_cli(
        "restore-archive", "--table", "audit_logs", "--from", "2024-05-01", "--to", "2024-05-31",
        "--into", "review_staging", "--from-database", asked, env=environment,
    )  # fmt: skip
    assert from_staging.returncode == 0, from_staging.stderr
    assert f"archive of {staging_source.describe()}: 3 object(s), 2,000 rows read" in from_staging.stdout
    assert row_hashes(production, "review_staging") == staging_rows

    unknown = run_cli(
        "restore-archive", "--table", "audit_logs", "--from", "2024-05-01", "--to", "2024-05-31",
        "--from-database", "elsewhere", env=environment,
    )  # fmt: skip
    assert unknown.returncode == 2
    assert (
        unknown.stderr.strip()
        .splitlines()[-1]
        .startswith("dbops: error: the store holds no archive of elsewhere")
    )


def test_an_import_reads_none_of_another_databases_rows(
    production: URL, staging: URL, archive_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(archive_settings)
    archive_table(staging, archive_settings, store, "audit_logs")
    staging_source = archive_source(staging, archive_settings)

    outcome = import_archive(
        production, archive_settings, store, "audit_logs", MAY_FIRST, MAY_LAST, into="review"
    )

    assert (outcome.objects, outcome.rows_read) == (0, 0)
    assert row_hashes(production, "review") == {}
    assert f"also holds the archives of {staging_source.system_identifier}/" in caplog.text


def test_a_run_never_resumes_another_databases_crashed_run(
    production: URL, staging: URL, archive_settings: Settings, s3_endpoint: str, bucket: str
) -> None:
    shared = archive_settings.model_copy(
        update={"backup_url": f"s3://{bucket}/logs", "s3_endpoint_url": s3_endpoint}
    )
    store = open_store(shared)
    with connect(production) as connection:  # under production's 365 days, over staging's 30
        connection.execute(
            "INSERT INTO audit_logs (action, entity_type, created_at) "
            "SELECT 'kept', 'user', now() - interval '100 days' FROM generate_series(1, 50)"
        )
    recent = row_hashes(production, "audit_logs", "action = 'kept'")
    with faulty_s3_proxy(s3_endpoint, "corrupt") as proxy:
        faulty = shared.model_copy(update={"s3_endpoint_url": proxy.endpoint})
        with pytest.raises(ArchiveVerificationError):
            archive_table(staging, faulty, open_store(faulty), "audit_logs", older_than_days=30)
    (crashed,) = archive_runs(store)
    assert not crashed.complete
    assert crashed.older_than_days == 30

    outcome = archive_table(production, shared, store, "audit_logs")

    assert outcome.resumed_run is None
    assert outcome.rows_archived == 2_000
    assert row_hashes(production, "audit_logs", "action = 'kept'") == recent
    assert row_hashes(production, "audit_logs", OLD_ROWS) == {}
    assert len(row_hashes(staging, "audit_logs", OLD_ROWS)) == 2_000  # staging's crash kept its rows

    again = archive_table(staging, shared, store, "audit_logs")
    assert again.resumed_run == crashed.run_id
    assert row_hashes(staging, "audit_logs", OLD_ROWS) == {}


def test_an_object_rewritten_with_its_metadata_fails_the_check_against_its_run_manifest(
    production: URL, archive_settings: Settings, cli_env: dict[str, str]
) -> None:
    store = open_store(archive_settings)
    archive_table(production, archive_settings, store, "audit_logs")
    key = sorted(batch_keys(store))[0]
    lines = gzip.decompress(store.read_bytes(key)).replace(b'"login"', b'"forged"')
    with BackgroundGzip(6) as compressor:
        compressor.write(lines)
        forged = compressor.finish()
    # What another database's run did to it: the object and the sha256 beside it, rewritten together.
    store.put_bytes(key, forged, store.read_metadata(key) | {"sha256": hashlib.sha256(forged).hexdigest()})

    result = run_cli(
        "restore-archive", "--table", "audit_logs", "--from", "2024-05-01", "--to", "2024-05-31",
        "--into", "review", env=cli_env | {"DBOPS_BACKUP_URL": archive_settings.backup_url or ""},
    )  # fmt: skip

    assert result.returncode == 1, result.stdout
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"dbops: error: archived object {key} does not match the sha256 its run manifest recorded"
        )
    )
    with connect(production) as connection:
        forged_rows = connection.execute("SELECT count(*) FROM review WHERE action = 'forged'").fetchone()
    assert forged_rows == (0,)


def test_a_batch_meeting_other_contents_at_its_key_deletes_nothing(
    production: URL, archive_settings: Settings
) -> None:
    store = open_store(archive_settings)
    original = row_hashes(production, "audit_logs", OLD_ROWS)
    archive_table(production, archive_settings, store, "audit_logs")
    import_archive(production, archive_settings, store, "audit_logs", MAY_FIRST, MAY_LAST)
    assert row_hashes(production, "audit_logs", OLD_ROWS) == original  # the same rows, to archive again
    key = sorted(batch_keys(store))[0]
    store.put_bytes(key, b"not these rows")

    with pytest.raises(ArchiveVerificationError, match="is already in the store with other contents"):
        archive_table(production, archive_settings, store, "audit_logs")

    assert store.read_bytes(key) == b"not these rows"
    assert row_hashes(production, "audit_logs", OLD_ROWS) == original


def write_as_an_earlier_release(url: URL, store: ObjectStore) -> dict[int, str]:
    """Archive the old rows in the layout earlier releases wrote, and delete them, as they did: batches
    of 700 at ``archive/<table>/<day>/<first>-<last>.jsonl.gz`` with their sha256 in the metadata,
    and a run at ``archive/runs/`` that names no source, killed after recording two of its three."""
    archived = row_hashes(url, "audit_logs", OLD_ROWS)
    with connect(url) as connection:
        connection.execute("SET TimeZone = 'UTC'")
        rows = connection.execute(
            f"SELECT id, created_at, row_to_json(t)::text FROM audit_logs AS t WHERE {OLD_ROWS} ORDER BY id"
        ).fetchall()
        connection.execute(f"DELETE FROM audit_logs WHERE {OLD_ROWS}")
    recorded = []
    for start in range(0, len(rows), 700):
        batch = rows[start : start + 700]
        with BackgroundGzip(6) as compressor:
            compressor.write(b"".join(f"{row[2]}\n".encode() for row in batch))
            data = compressor.finish()
        first, last = int(str(batch[0][0])), int(str(batch[-1][0]))
        oldest = min(row[1] for row in batch if isinstance(row[1], datetime)).astimezone(UTC)
        newest = max(row[1] for row in batch if isinstance(row[1], datetime)).astimezone(UTC)
        key = f"archive/audit_logs/{oldest:%Y/%m/%d}/{first}-{last}.jsonl.gz"
        digest = hashlib.sha256(data).hexdigest()
        store.put_bytes(
            key,
            data,
            {
                "sha256": digest,
                "rows": str(len(batch)),
                "first-id": str(first),
                "last-id": str(last),
                "oldest": oldest.isoformat(),
                "newest": newest.isoformat(),
            },
        )
        recorded.append(
            {
                "key": key,
                "first_id": first,
                "last_id": last,
                "rows": len(batch),
                "bytes": len(data),
                "sha256": digest,
                "oldest": oldest.isoformat(),
                "newest": newest.isoformat(),
            }
        )
    run = {
        "run_id": "audit_logs-20261201T221605Z-993a53",
        "table": "audit_logs",
        "timezone": "UTC",
        "older_than_days": 30,
        "cutoff": "2026-11-01T00:00:00Z",
        "started_at": "2026-12-01T22:16:05.823972Z",
        "finished_at": None,
        "complete": False,
        "batches": recorded[:2],
    }
    store.put_bytes("archive/runs/audit_logs-20261201T221605Z-993a53.json", json.dumps(run).encode())
    return archived


def test_what_an_earlier_release_archived_still_lists_and_imports(
    production: URL, archive_settings: Settings
) -> None:
    store = open_store(archive_settings)
    archived = write_as_an_earlier_release(production, store)
    assert len(archived) == 2_000
    assert len(batch_keys(store)) == 3

    upgraded = archive_table(production, archive_settings, store, "audit_logs")
    assert upgraded.resumed_run is None  # its run names no source, so no database resumes it

    outcome = import_archive(
        production, archive_settings, store, "audit_logs", MAY_FIRST, MAY_LAST, into="review"
    )

    assert row_hashes(production, "review") == archived
    assert (outcome.objects, outcome.earlier_release_objects, outcome.unlisted_objects) == (3, 3, 1)
