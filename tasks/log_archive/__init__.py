"""The log archive: old audit logs and analytics events moved to the object store, and brought back.

"Archive" in dbops means this and only this; a backup's file is a dump. Entry points:
``archiving.archive_table`` (verified-before-delete batches of gzip JSON Lines) and
``reimport.import_archive`` (rows back into their table or a staging table, for an audit).
"""
