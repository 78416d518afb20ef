"""Units of work that touch the outside world: PostgreSQL, the pg_* programs, the object store.

One package per capability; each ``__init__`` names its entry points. Every entry point is a plain
function usable without a Prefect server: the ``dbops`` command line and the flows both call it, and
flows wrap it as a task.

- ``postgres``: how dbops reaches PostgreSQL (connections, the ``pg_*`` wrapper, binaries by version).
- ``schema``: locked migrations, drift, schema state.
- ``seed``: reference data, its validation, synthetic volume.
- ``backup``: pg_dump into the store, the catalogue of backups, retention.
- ``restore``: rehearsal, operator restore and rollback.
- ``log_archive``: old audit logs and analytics events moved to the store, and brought back.
- ``integrity``, ``index_review``, ``storage``: validation, index advice, object stores.
"""
