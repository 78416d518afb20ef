"""The index review: statistics and catalogue reads, turned into findings with the SQL to act on them.

Entry points: ``runner.review_indexes`` (the findings) and ``apply.apply_finding`` (one finding's SQL,
then a fresh review to prove it took); ``render`` turns a report into text, tables and markdown.
``leftovers`` tells which invalid indexes an unfinished build left, and ``cleanup`` drops them.
``workload`` advises multi-column indexes for the statements the application runs.
"""
