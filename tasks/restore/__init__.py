"""Restores: bring a backup's dump out of the store and into a database, and prove it works there.

Entry points: ``rehearsal.rehearse`` (restore into a scratch database, check, record, drop) and
``operator.restore`` / ``operator.rollback`` (over a live database, by swap or in place). They share
``copy`` (choose and vet the backup, restore, migrate, count, check), ``fetch`` (the sha256-checked
dump, decrypted and decompressed into a work file), ``pg_restore``, ``target`` (databases a restore
creates) and ``swap`` (the rename that replaces a live database).

The ``tables`` package brings chosen tables' rows back instead, into a new schema of the live
database and, on request, merged into the live tables (see its docstring).
"""
