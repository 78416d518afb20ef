"""What a deploy runs: migrate under the lock, seed the reference data, and prove it is there.

``dbops migrate-and-seed`` and the ``migrate-and-seed`` flow both call :func:`migrate_and_seed`; each
then reports the result its own way and fails when the validation failed.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import URL

from models.results import MigrateAndSeedReport
from models.seed import SeedDocument
from models.settings import Settings
from tasks.schema.migrate import migrate
from tasks.seed.upsert import check_seed_passwords, seed
from tasks.seed.validation import validate_seed


def migrate_and_seed(
    url: URL,
    settings: Settings,
    document: SeedDocument,
    *,
    reset_accounts: bool = False,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> MigrateAndSeedReport:
    """Migrate *url* to head, seed it from *document*, and validate the seed (read-only).

    The caller loads *document* first, and the password policy is checked here before anything else,
    so bad input stops the deploy (exit 2) before the schema moves: a deploy pipeline reads exit 2 as
    "nothing was done". *reset_accounts* brings existing accounts back to the seed outside development too.
    """
    check_seed_passwords(settings)
    migration = migrate(url, settings, logger=logger)
    seeded = seed(url, settings, document, reset_accounts=reset_accounts, logger=logger)
    validation = validate_seed(url, settings, document)
    return MigrateAndSeedReport(migration=migration, seed=seeded, validation=validation)
