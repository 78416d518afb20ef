"""Integrity validation: a catalogue of set-based checks run against any database URL.

The restore rehearsal runs the same checks on every restored copy, so nothing here assumes the
configured database. Each check's slow reads (one table or index each) are memoised in the run's
``context.CheckContext`` and spread largest first over a pool of read-only connections, one per
thread (``schedule``); the checks then assemble their outcomes from them.

Entry point: ``runner.validate_integrity`` (a report), with ``runner.integrity_error`` and
``runner.raise_for_errors`` to turn a failing report into an error. One check runs alone with
``runner.run_check(check, CheckContext(engine, settings, seed_document))``, and a single read of one
table with ``context.orphan_count(key)``, ``context.row_count(table)``,
``data_checks.duplicates(context, table, key)`` or ``physical.index_error(context, index)``.
"""
