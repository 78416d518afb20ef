"""S3-compatible stores that lack an optional API: the backup and the pruning go on without it.

The faulty proxy stands in front of moto's server and answers ``NotImplemented`` (HTTP 501) to the
operations it is told the store lacks, as several S3-compatible stores do.
"""

from __future__ import annotations

from pathlib import Path

import boto3
from sqlalchemy.engine import URL

from models.settings import Settings
from tasks.backup.catalog import list_backups
from tasks.storage import open_store
from tests.integration.conftest import run_cli
from tests.integration.s3_proxy import faulty_s3_proxy


def s3_env(cli_env: dict[str, str], bucket: str, endpoint: str) -> dict[str, str]:
    return cli_env | {
        "DBOPS_BACKUP_URL": f"s3://{bucket}/nightly",
        "DBOPS_S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def test_a_store_without_list_multipart_uploads_still_takes_backups(
    seeded_url: URL, cli_env: dict[str, str], s3_endpoint: str, bucket: str, settings: Settings
) -> None:
    with faulty_s3_proxy(s3_endpoint, "lacking", frozenset({"ListMultipartUploads"})) as proxy:
        result = run_cli("backup", env=s3_env(cli_env, bucket, proxy.endpoint))

    assert result.returncode == 0, result.stderr
    assert "ListMultipartUploads" in proxy.refused, "the sweep must have asked, and been refused"
    warnings = [line for line in result.stderr.splitlines() if "ListMultipartUploads" in line]
    assert len(warnings) == 1, result.stderr
    assert "WARNING" in warnings[0]
    assert "interrupted uploads are not swept" in warnings[0]
    store = open_store(
        settings.model_copy(update={"backup_url": f"s3://{bucket}/nightly", "s3_endpoint_url": s3_endpoint})
    )
    assert len(list_backups(store)) == 1


def test_a_store_without_delete_objects_still_prunes(
    seeded_url: URL, cli_env: dict[str, str], s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    with faulty_s3_proxy(s3_endpoint, "lacking", frozenset({"DeleteObjects"})) as proxy:
        env = s3_env(cli_env, bucket, proxy.endpoint) | {"DBOPS_BACKUP_KEEP_LAST": "1"}
        for _ in range(2):
            result = run_cli("backup", env=env)
            assert result.returncode == 0, result.stderr

    assert "DeleteObjects" in proxy.refused, "pruning must have tried the batch delete first"
    assert "removed 1" in result.stdout
    listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=bucket, Prefix="nightly/")
    folders = {item["Key"].split("/")[2] for item in listed.get("Contents", [])}
    assert len(folders) == 1, folders
