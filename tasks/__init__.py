"""Units of work that touch the outside world: PostgreSQL, the pg_* programs, the object store.

Each is a plain function usable without a Prefect server; flows wrap them as tasks.
"""
