"""How dbops reaches PostgreSQL: the plumbing every other capability shares.

- ``engine``: SQLAlchemy engines and connections (``make_engine``, ``open_connection``), and the
  configured database's URL (``database_url``, ``resolve_database_url``).
- ``driver``: plain psycopg connections (``connect``), for COPY and server administration.
- ``pgpass``: passwords for ``pg_*`` programs through a 0600 pgpass file, never argv.
- ``command``: ``run_pg_program``, the one wrapper every ``pg_*`` program runs through.
- ``binaries``: which ``pg_dump``/``pg_restore`` fits a server (``matching_program``, ``pg_restore_for``).
- ``embedded``: the embedded server of ``make demo`` and the tests (``ensure_running``, ``stop``).
- ``copy_binary``: reading ``COPY ... (FORMAT binary)`` streams.
"""
