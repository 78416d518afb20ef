"""Table-level restore: chosen tables' rows from a backup, into a new schema of the live database for
inspection and, on request, merged back into the live tables, matched by primary key.

Entry points (in ``restore``): ``restore_into_schema`` (refusals, the verified stream, the filter, the
schema and a preview of the merge), ``merge_into_live`` (one transaction, parents first) and
``restore_tables`` (both, for the command line). They share ``plan`` (refusals, merge order; pure),
``copy_stream`` (pg_restore's COPY blocks; pure), ``catalog`` (the live tables, the ``--where``
check), ``stream`` (the verified stream into temporary tables), ``schema`` (filter, schema, preview)
and ``merge``.
"""
