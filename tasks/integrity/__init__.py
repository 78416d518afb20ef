"""Integrity validation: a catalogue of set-based checks run against any database URL.

The restore rehearsal runs the same checks on every restored copy, so nothing here assumes the
configured database. Checks run concurrently on separate read-only connections; the per-table scans
that both the relations check and the row counts need are shared, so each table is read once.

Entry point: ``runner.validate_integrity`` (a report), with ``runner.integrity_error`` and
``runner.raise_for_errors`` to turn a failing report into an error.
"""
