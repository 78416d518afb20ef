"""Each batch commits on its own: rows leave the table batch by batch, and a run killed in the middle
keeps the batches it committed, deleted from the table and present in the store."""

from __future__ import annotations

import os
import signal
from collections import Counter

from sqlalchemy.engine import URL

from models.settings import Settings
from tasks.log_archive.archiving import archive_table
from tasks.storage import open_store
from tests.integration.log_archive.conftest import archived_ids, row_hashes, spawn_archiver
from tests.integration.s3_proxy import faulty_s3_proxy

OLD_ROWS = "created_at < now() - interval '365 days'"


def test_batches_commit_one_by_one_and_a_killed_run_keeps_what_it_committed(
    logs_url: URL, archive_settings: Settings, s3_endpoint: str, bucket: str, cli_env: dict[str, str]
) -> None:
    original = row_hashes(logs_url, "audit_logs", OLD_ROWS)  # 2,000 rows: batches of 700, 700, 600
    direct = archive_settings.model_copy(
        update={"backup_url": f"s3://{bucket}/logs", "s3_endpoint_url": s3_endpoint}
    )
    store = open_store(direct)
    left_while_verifying = []
    with faulty_s3_proxy(s3_endpoint, "step") as proxy:
        archiver = spawn_archiver(cli_env, bucket, proxy.endpoint)
        for _ in range(3):  # each batch's read-back: its own rows are still there, the earlier ones gone
            proxy.held.get(timeout=60)
            left_while_verifying.append(len(row_hashes(logs_url, "audit_logs", OLD_ROWS)))
            if len(left_while_verifying) < 3:
                proxy.proceed.release()
        os.kill(archiver.pid, signal.SIGKILL)  # the third batch uploaded, not yet committed
        proxy.proceed.release()
        archiver.wait(30)

    assert left_while_verifying == [2_000, 1_300, 600]
    remaining = row_hashes(logs_url, "audit_logs", OLD_ROWS)
    assert len(remaining) == 600
    stored = Counter(archived_ids(store))
    committed = set(original) - set(remaining)
    assert committed <= set(stored), "every committed batch is in the store"

    outcome = archive_table(logs_url, direct, store, "audit_logs")

    assert outcome.rows_archived == 600
    assert row_hashes(logs_url, "audit_logs", OLD_ROWS) == {}
    assert Counter(archived_ids(store)) == Counter(original.keys()), "every row in exactly one stored object"
