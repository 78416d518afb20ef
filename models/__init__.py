"""The shared vocabulary of dbops: schema, settings, errors and the typed results flows return.

Nothing here performs I/O, so every layer (tasks, flows, deployments, migrations) can import it freely.
"""
