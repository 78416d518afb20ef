"""``dbops review-indexes --verify``: the index advice proven by measurement on a restored copy.

Entry point: ``run.verify_review`` (the review, then every advised index built for real on a scratch
copy of the newest backup, and every advised drop tried there). ``sampling`` picks real parameter
values for the workload's statements, ``explain`` times one statement, ``writes`` measures the WAL an
index adds to inserts, ``measure`` and ``drops`` do the measuring, ``verdicts`` turns the numbers into
the report's findings.
"""
