"""Restores: bring a backup's dump out of the store and into a database, and prove it works there.

Entry points: ``rehearsal.rehearse`` (restore into a scratch database, check, record, drop) and
``operator.restore`` / ``operator.rollback`` (over a live database, by swap or in place). They share
``copy`` (choose and vet the backup, restore, migrate, count, check), ``fetch`` (the sha256-checked
dump, decrypted and decompressed into a work file), ``pg_restore``, ``target`` (databases a restore
creates) and ``swap`` (the rename that replaces a live database).

``tables.restore_tables`` brings chosen tables' rows back instead, into a new schema of the live
database (``restore_into_schema``) and, on request, merged into the live tables (``merge_into_live``):
``table_plan`` (refusals, merge order; pure), ``copy_stream`` (pg_restore's COPY blocks; pure),
``table_catalog`` (the live tables, the ``--where`` check), ``table_stream`` (the verified stream into
temporary tables), ``table_schema`` (filter, schema, preview) and ``table_merge``.
"""
