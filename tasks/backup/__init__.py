"""Backups: pg_dump in an exported snapshot, streamed through compression and encryption to the store.

A backup is a dump object plus a manifest, written last. Entry points: ``nightly.back_up`` (a backup,
then retention: what ``dbops backup`` and the ``backup`` flow run), ``dump.backup`` (the backup alone),
and ``catalog`` (``list_backups``, ``rehearsals``, ``prune``, ``remove_incomplete``). ``streams`` holds
the stream stages (compression, age encryption, hashing); ``heartbeat`` keeps a running backup
visible to every other job's sweep. A multi-part backup runs one way: ``plan`` (what the snapshot
holds, its locks and counts), ``pg_dump`` (one dump into one object), ``coverage`` (the parts against a
single pg_dump's table of contents), ``parts`` (every part at once), and ``dump`` writes the manifest.
"""
