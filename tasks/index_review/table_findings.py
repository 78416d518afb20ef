"""Findings about whole tables from their usage counters: large tables read mostly by sequential
scans, and tables whose dead rows or planner statistics autovacuum has not kept up with."""

from __future__ import annotations

from datetime import datetime

from models.index_review import Finding, FindingKind
from models.settings import Settings
from tasks.index_review import statements
from tasks.index_review.catalog import TableInfo
from tasks.index_review.render import days_since


def sequential_scan_findings(tables: list[TableInfo], now: datetime, settings: Settings) -> list[Finding]:
    """Large tables mostly read by sequential scans. How long ago the last one ran (PostgreSQL 16 and
    later) tells whether the queries behind the counts still run."""
    findings = []
    for table in tables:
        scans = table.sequential_scans + table.index_scans
        if table.live_rows < settings.review_seq_scan_min_rows or not scans:
            continue
        index_percent = 100.0 * table.index_scans / scans
        if index_percent >= settings.review_seq_scan_min_index_percent:
            continue
        findings.append(
            Finding.about(
                FindingKind.SEQUENTIAL_SCANS,
                table.name,
                table=table.name,
                evidence={
                    "rows": table.live_rows,
                    "sequential_scans": table.sequential_scans,
                    "index_scans": table.index_scans,
                    "index_use_percent": round(index_percent, 1),
                    "rows_read_sequentially": table.sequential_rows_read,
                    "last_sequential_scan_age_days": days_since(table.last_sequential_scan, now),
                },
                recommendation=f"{table.name} ({table.live_rows:,} rows) is read by index only "
                f"{index_percent:.1f}% of the time: find the queries that scan it (the slow queries below, "
                "or log_min_duration_statement) and index the columns they filter on",
            )
        )
    return findings


def maintenance_findings(tables: list[TableInfo], now: datetime, settings: Settings) -> list[Finding]:
    """VACUUM where dead rows pile up, else ANALYZE where planner statistics are stale (a VACUUM
    finding's statement analyses too, so a table gets one finding at most)."""
    findings = []
    for table in tables:
        qualified = f"{statements.quote(table.schema)}.{statements.quote(table.name)}"
        dead_percent = 100.0 * table.dead_rows / max(table.live_rows, 1)
        analyze_age_days = days_since(table.last_analyze, now)
        evidence = {
            "live_rows": table.live_rows,
            "dead_rows": table.dead_rows,
            "dead_percent": round(dead_percent, 1),
            "rows_changed_since_analyze": table.modified_since_analyze,
            "last_vacuum": table.last_vacuum.isoformat() if table.last_vacuum else None,
            "last_analyze": table.last_analyze.isoformat() if table.last_analyze else None,
            "last_autoanalyze": table.last_autoanalyze.isoformat() if table.last_autoanalyze else None,
        }
        if (
            table.dead_rows >= settings.review_maintenance_min_rows
            and dead_percent >= settings.review_dead_tuple_percent
        ):
            findings.append(
                Finding.about(
                    FindingKind.VACUUM,
                    table.name,
                    table=table.name,
                    evidence=evidence,
                    recommendation=f"vacuum {table.name}: {table.dead_rows:,} dead rows ({dead_percent:.0f}% "
                    "of live ones) slow every scan; if this recurs, lower its "
                    "autovacuum_vacuum_scale_factor",
                    sql=statements.bounded(settings, f"VACUUM (ANALYZE) {qualified}"),
                )
            )
            continue
        stale = analyze_age_days is None or analyze_age_days >= settings.review_analyze_max_age_days
        if table.modified_since_analyze >= settings.review_maintenance_min_rows and stale:
            when = "never" if analyze_age_days is None else f"{analyze_age_days:.1f} days ago"
            findings.append(
                Finding.about(
                    FindingKind.ANALYZE,
                    table.name,
                    table=table.name,
                    evidence=evidence | {"last_analyze_age_days": analyze_age_days},
                    recommendation=f"analyze {table.name}: {table.modified_since_analyze:,} rows changed "
                    f"since its statistics were last gathered ({when}), so the planner is guessing",
                    sql=statements.bounded(settings, f"ANALYZE {qualified}"),
                )
            )
    return findings
