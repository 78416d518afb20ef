"""Findings about single indexes: redundant (PgHero's definition), unused, and invalid.

An index is only ever recommended for dropping once: a redundant index is not reported as unused as
well, and an index that enforces something (unique, primary key, constraint) is never recommended for
dropping at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from models.index_review import Finding, FindingKind
from models.settings import Settings
from tasks.index_review import statements
from tasks.index_review.catalog import ForeignKeyInfo, IndexInfo
from tasks.index_review.leftovers import leftover_origin
from tasks.index_review.render import days_since, human_age


def covers(covering: IndexInfo, covered: IndexInfo) -> bool:
    """*covering* answers every query *covered* answers: same table, access method, expressions and
    predicate, both valid, and *covered*'s key columns (with operator class, collation and order) a
    prefix of *covering*'s. Only a btree answers queries on a prefix of its columns; other access
    methods must match exactly."""
    if covering.oid == covered.oid or not (covering.is_valid and covered.is_valid):
        return False
    if (covering.table, covering.method, covering.expressions, covering.predicate) != (
        covered.table,
        covered.method,
        covered.expressions,
        covered.predicate,
    ):
        return False
    length = len(covered.key_columns)
    if covering.method == "btree":
        if covering.key_columns[:length] != covered.key_columns:
            return False
    elif covering.key_columns != covered.key_columns:
        return False
    return covered.include_attnums <= set(covering.key_attnums) | covering.include_attnums


def is_redundant_to(covered: IndexInfo, covering: IndexInfo) -> bool:
    """*covered* can go because *covering* stays. Of an identical pair, the one that enforces
    something stays, else the one whose name sorts first."""
    if covered.enforces_something or not covers(covering, covered):
        return False
    identical = (covering.key_columns, covering.include_attnums) == (
        covered.key_columns,
        covered.include_attnums,
    )
    if identical and not covering.enforces_something:
        return covering.name < covered.name
    return True


def redundant_pairs(indexes: list[IndexInfo]) -> list[tuple[IndexInfo, IndexInfo]]:
    """Each redundant index with the index that makes it so, preferring one that is not redundant
    itself (of a chain a ⊂ b ⊂ c, both a and b are reported as covered by c)."""
    coverers = {index.oid: [other for other in indexes if is_redundant_to(index, other)] for index in indexes}
    redundant = {oid for oid, found in coverers.items() if found}
    pairs = []
    for index in indexes:
        if index.oid in redundant:
            best = min(
                coverers[index.oid],
                key=lambda other: (other.oid in redundant, len(other.key_columns), other.name),
            )
            pairs.append((index, best))
    return pairs


def redundant_findings(
    pairs: Iterable[tuple[IndexInfo, IndexInfo]], now: datetime, settings: Settings
) -> list[Finding]:
    """One drop recommendation per redundant index. How long ago it was last scanned (PostgreSQL 16
    and later) tells whether the planner still picks it over the index that stays."""
    findings = []
    for index, covering in pairs:
        findings.append(
            Finding.about(
                FindingKind.REDUNDANT,
                index.name,
                table=index.table,
                index=index.name,
                evidence={
                    "columns": list(index.column_names),
                    "covered_by": covering.name,
                    "covered_by_columns": list(covering.column_names),
                    "covered_by_unique": covering.enforces_something,
                    "size_bytes": index.size_bytes,
                    "scans": index.scans,
                    "last_scan_age_days": days_since(index.last_scan, now),
                },
                recommendation=f"drop {index.name}: {covering.name} on ({', '.join(covering.column_names)}) "
                "answers every query it answers, and each write maintains both",
                sql=statements.bounded(settings, statements.drop_index(index.schema, index.name)),
                undo_sql=_recreate(index, settings),
            )
        )
    return findings


def unused_findings(
    indexes: list[IndexInfo],
    foreign_keys: list[ForeignKeyInfo],
    already_reported: Collection[str],
    statistics_since: datetime | None,
    statistics_age_days: float | None,
    settings: Settings,
) -> list[Finding]:
    """Indexes never scanned since the counters started; tentative while the counters are young."""
    tentative = statistics_age_days is None or statistics_age_days < settings.review_unused_min_age_days
    findings = []
    for index in indexes:
        if index.scans or not index.is_valid or index.enforces_something or index.name in already_reported:
            continue
        if any(_sole_support(index, key, indexes) for key in foreign_keys):
            continue
        findings.append(
            Finding.about(
                FindingKind.UNUSED,
                index.name,
                table=index.table,
                index=index.name,
                evidence={
                    "scans": 0,
                    "size_bytes": index.size_bytes,
                    "statistics_since": statistics_since.isoformat() if statistics_since else None,
                    "statistics_age_days": None
                    if statistics_age_days is None
                    else round(statistics_age_days, 3),
                },
                recommendation=f"drop {index.name}: no query has used it in "
                f"{human_age(statistics_age_days)} of statistics"
                + (
                    f" (tentative: wait until the statistics are {settings.review_unused_min_age_days:g} "
                    "days old, and check on replicas, whose scans are not counted here)"
                    if tentative
                    else " (check replicas too: their scans are not counted here)"
                ),
                sql=statements.bounded(settings, statements.drop_index(index.schema, index.name)),
                undo_sql=_recreate(index, settings),
                tentative=tentative,
            )
        )
    return findings


def invalid_findings(
    indexes: list[IndexInfo],
    declared: Collection[str],
    settings: Settings,
    builds: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Invalid indexes, usually left by a failed ``CREATE INDEX CONCURRENTLY``: the planner ignores
    them while every write still maintains them. Builds still running are invalid by design.

    One a dbops build left (named in *builds*, or a REINDEX companion; see
    :mod:`tasks.index_review.leftovers`) says so in ``left_by``: the next ``--apply`` drops it.
    """
    findings = []
    for index in indexes:
        if index.is_valid or index.building:
            continue
        drop = statements.drop_index(index.schema, index.name)
        origin = leftover_origin(index.name, builds or {})
        left = f" ({origin} left it; the next review-indexes --apply drops it)" if origin else ""
        if index.name in declared:
            recommendation = (
                f"rebuild {index.name}: the models declare it, and as it is no query can use it{left}"
            )
            sql, undo = statements.bounded(settings, drop, statements.concurrently(index.definition)), []
        else:
            recommendation = f"drop {index.name}: no query can use it, yet every write maintains it{left}"
            # Rebuilding what an unfinished build left half-made undoes nothing worth having.
            sql, undo = statements.bounded(settings, drop), [] if origin else _recreate(index, settings)
        evidence = {
            "valid": False,
            "ready": index.is_ready,
            "definition": index.definition,
            "size_bytes": index.size_bytes,
            "declared_by_models": index.name in declared,
        }
        findings.append(
            Finding.about(
                FindingKind.INVALID,
                index.name,
                table=index.table,
                index=index.name,
                evidence=evidence | ({"left_by": origin} if origin else {}),
                recommendation=recommendation
                + (
                    " (a unique build fails again until the duplicate rows are gone)"
                    if index.is_unique
                    else ""
                ),
                sql=sql,
                undo_sql=undo,
            )
        )
    return findings


def supports(index: IndexInfo, key: ForeignKeyInfo) -> bool:
    """A lookup by *key*'s columns (what a parent's delete or key update runs) can use *index*."""
    leading = index.key_attnums[: len(key.attnums)]
    return (
        index.table == key.table
        and index.is_valid
        and not index.predicate
        and len(leading) == len(key.attnums)
        and set(leading) == set(key.attnums)
    )


def _sole_support(index: IndexInfo, key: ForeignKeyInfo, indexes: list[IndexInfo]) -> bool:
    return supports(index, key) and not any(
        other.oid != index.oid and supports(other, key) for other in indexes
    )


def _recreate(index: IndexInfo, settings: Settings) -> list[str]:
    return statements.bounded(settings, statements.concurrently(index.definition))
