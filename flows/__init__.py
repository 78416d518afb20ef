"""Prefect flows: they orchestrate the work in ``tasks/`` and return the typed results in ``models/``."""
