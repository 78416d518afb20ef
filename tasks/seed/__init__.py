"""Seeding: the reference data every environment needs, and synthetic volume for the others.

Entry points: ``upsert.seed`` (idempotent upserts from the seed file), ``validation.validate_seed``
(read-only proof the data is there), ``deploy.migrate_and_seed`` (what every deploy runs) and
``synth.synth`` (deterministic COPY loads from ``synth_rows``). ``passwords`` keeps stored hashes
stable under bcrypt's random salts.
"""
