"""The database schema: locked Alembic migrations and what the live schema looks like.

Entry points: ``migrate.migrate`` (upgrade or downgrade under ``lock.migration_lock``, a session
advisory lock held on a connection of its own), ``drift.detect_drift`` (models against the live
database) and ``state.schema_state`` (revision, rows, indexes and size per table).
"""
