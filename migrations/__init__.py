"""Alembic migration scripts for the platform schema (see env.py for how they are run)."""
