"""Index advice from the workload: the statements the application runs, planned, turned into
multi-column index candidates, costed with hypothetical indexes (hypopg) and chosen as a set.

Entry points: ``advice.advise_indexes`` (all of it, what the review calls); for costing on another
database (a restored copy with indexes built for real): ``source.read_workload``,
``plans.generic_plan``, ``needs.scan_needs`` / ``needs.parameter_uses``, ``candidates.build_candidates``
and ``costing.cost_candidates`` / ``costing.choose_candidates`` with an ``IndexFactory`` of one's own.
"""
