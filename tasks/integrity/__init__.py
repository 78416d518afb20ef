"""Integrity validation: a catalogue of set-based checks run against any database URL.

The restore rehearsal runs the same checks on every restored copy, so nothing here assumes the
configured database. Checks run concurrently on separate read-only connections; the per-table scans
that both the relations check and the row counts need are shared, so each table is read once.
"""
