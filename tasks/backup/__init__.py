"""Backups: pg_dump in an exported snapshot, streamed through compression and encryption to the store.

A backup is a dump object plus a manifest, written last. Entry points: ``nightly.back_up`` (a backup,
then retention: what ``dbops backup`` and the ``backup`` flow run), ``dump.backup`` (the backup alone),
and ``catalog`` (``list_backups``, ``rehearsals``, ``prune``, ``remove_incomplete``). ``streams`` holds
the stream stages (compression, age encryption, hashing); ``heartbeat`` keeps a running backup
visible to every other job's sweep.
"""
