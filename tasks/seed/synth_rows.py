"""Deterministic synthetic rows for volume: users, applications, audit logs and analytics events.

Pure generation, no I/O: each generator yields PostgreSQL COPY text-format chunks, so rows stream
into COPY in bounded memory whatever the count. The same seed and the same ``until`` give the same
rows byte for byte. Timestamps spread uniformly over the ``days`` before ``until``, so archiving and
index review have both old and recent data to work on.

Speed matters (the target is 200,000 rows/s end to end): per row, generation is a handful of
``random()`` calls and lookups into pools of preformatted strings; no datetime or json work happens
in the per-row path.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CHUNK_ROWS = 5_000
SYNTH_EMAIL_DOMAIN = "synth.invalid"  # .invalid never resolves: these addresses can receive nothing
SYNTH_PASSWORD_HASH = "!synthetic"  # noqa: S105  (a marker that matches no password: no login)
NULL = "\\N"

FIRST_NAMES = (
    "Ada",
    "Bram",
    "Chloé",
    "Dara",
    "Emil",
    "Fatima",
    "Goran",
    "Hana",
    "Ivo",
    "Jana",
    "Kofi",
    "Lena",
    "Mateo",
    "Nora",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sami",
    "Tess",
    "Umar",
    "Vera",
)
LAST_NAMES = (
    "Andersen",
    "Bakker",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Horvat",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Oliveira",
    "Peeters",
    "Rossi",
    "Schmidt",
)
USER_STATUSES = ("ACTIVE",) * 8 + ("PENDING",) * 3 + ("SUSPENDED",)
APPLICATION_STATUSES = ("DRAFT", "SUBMITTED", "SUBMITTED", "ACCEPTED", "REJECTED", "WITHDRAWN")
AUDIT_ACTIONS = (
    ("user.login", "user"),
    ("user.logout", "user"),
    ("user.profile_update", "user"),
    ("application.create", "application"),
    ("application.submit", "application"),
    ("application.withdraw", "application"),
    ("application.decide", "application"),
    ("course.update", "course"),
    ("university.settings_update", "university"),
)
EVENT_TYPES = (
    "page_view",
    "course_view",
    "search",
    "application_start",
    "application_submit",
    "login",
    "filter_change",
    "bookmark",
)
PAYLOAD_POOL_SIZE = 256


@dataclass(frozen=True)
class SynthPlan:
    users: int
    applications: int
    audit_logs: int
    events: int
    days: int
    seed: int
    until: datetime

    def email(self, index: int) -> str:
        return f"student{index:07d}.s{self.seed}@{SYNTH_EMAIL_DOMAIN}"


class _Clock:
    """Uniform timestamps in [until - days, until) as preformatted text, without per-row datetime work."""

    def __init__(self, rng: random.Random, until: datetime, days: int) -> None:
        start = until.astimezone(UTC) - timedelta(days=days)
        self._rng = rng
        self._span = days * 86_400
        self._start = start
        day_count = days + 2
        self._days = [(start + timedelta(days=offset)).strftime("%Y-%m-%d") for offset in range(day_count)]
        self._first_second = start.hour * 3600 + start.minute * 60 + start.second
        self._seconds = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)]

    def pair(self) -> tuple[str, str]:
        """Two timestamps, the second no earlier than the first (created/updated, submitted/decided)."""
        first = int(self._rng.random() * self._span)
        second = first + int(self._rng.random() * (self._span - first))
        return self._format(first), self._format(second)

    def one(self) -> str:
        return self._format(int(self._rng.random() * self._span))

    def _format(self, offset: int) -> str:
        absolute = self._first_second + offset
        return f"{self._days[absolute // 86_400]} {self._seconds[absolute % 86_400]}+00"


def copy_escape(value: str) -> str:
    """Escape a value for COPY's text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _chunks(rows: Iterator[str]) -> Iterator[bytes]:
    batch: list[str] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK_ROWS:
            yield ("\n".join(batch) + "\n").encode("utf-8")
            batch.clear()
    if batch:
        yield ("\n".join(batch) + "\n").encode("utf-8")


def user_ids(plan: SynthPlan) -> list[str]:
    """The ids the synthetic users get; drawn from their own stream so other tables can refer to them."""
    rng = random.Random(f"users:{plan.seed}")  # noqa: S311
    return [_uuid(rng) for _ in range(plan.users)]


USER_COLUMNS = (
    "id",
    "email",
    "password_hash",
    "first_name",
    "last_name",
    "role",
    "status",
    "university_id",
    "created_at",
    "updated_at",
)


def user_rows(plan: SynthPlan, ids: Sequence[str], university_ids: Sequence[str]) -> Iterator[bytes]:
    rng = random.Random(f"user-rows:{plan.seed}")  # noqa: S311
    clock = _Clock(rng, plan.until, plan.days)
    universities = [*university_ids, NULL]

    def rows() -> Iterator[str]:
        for index, user_id in enumerate(ids):
            created, updated = clock.pair()
            yield "\t".join(
                (
                    user_id,
                    plan.email(index),
                    SYNTH_PASSWORD_HASH,
                    rng.choice(FIRST_NAMES),
                    rng.choice(LAST_NAMES),
                    "STUDENT",
                    rng.choice(USER_STATUSES),
                    rng.choice(universities),
                    created,
                    updated,
                )
            )

    return _chunks(rows())


APPLICATION_COLUMNS = (
    "id",
    "user_id",
    "course_id",
    "status",
    "submitted_at",
    "decided_at",
    "notes",
    "created_at",
    "updated_at",
)


def application_rows(plan: SynthPlan, ids: Sequence[str], course_ids: Sequence[str]) -> Iterator[bytes]:
    """Applications over distinct (user, course) pairs, as the unique constraint requires."""
    capacity = len(ids) * len(course_ids)
    if plan.applications > capacity:
        raise ValueError(
            f"{plan.applications} applications need {plan.applications} distinct (user, course) pairs, but "
            f"{len(ids)} users and {len(course_ids)} courses give only {capacity}"
        )
    rng = random.Random(f"applications:{plan.seed}")  # noqa: S311
    clock = _Clock(rng, plan.until, plan.days)
    pairs = rng.sample(range(capacity), plan.applications)

    def rows() -> Iterator[str]:
        for pair in pairs:
            user_id, course_id = ids[pair // len(course_ids)], course_ids[pair % len(course_ids)]
            status = rng.choice(APPLICATION_STATUSES)
            created, submitted = clock.pair()
            decided = submitted if status in ("ACCEPTED", "REJECTED") else NULL
            yield "\t".join(
                (
                    _uuid(rng),
                    user_id,
                    course_id,
                    status,
                    NULL if status == "DRAFT" else submitted,
                    decided,
                    NULL,
                    created,
                    submitted,
                )
            )

    return _chunks(rows())


AUDIT_LOG_COLUMNS = ("actor_id", "action", "entity_type", "entity_id", "payload", "created_at")


def audit_log_rows(plan: SynthPlan, actor_ids: Sequence[str]) -> Iterator[bytes]:
    rng = random.Random(f"audit-logs:{plan.seed}")  # noqa: S311
    clock = _Clock(rng, plan.until, plan.days)
    actors = [*actor_ids, NULL] if actor_ids else [NULL]
    payloads = [
        copy_escape(
            json.dumps(
                {
                    "ip": f"10.{i % 250}.{i * 7 % 250}.{i * 13 % 250}",
                    "user_agent": f"synth/{i % 9}",
                    "request_id": f"{rng.getrandbits(64):016x}",
                },
                separators=(",", ":"),
            )
        )
        for i in range(PAYLOAD_POOL_SIZE)
    ]
    random_number, choose_actor = rng.random, len(actors)

    def rows() -> Iterator[str]:
        for _ in range(plan.audit_logs):
            action, entity_type = AUDIT_ACTIONS[int(random_number() * len(AUDIT_ACTIONS))]
            yield (
                f"{actors[int(random_number() * choose_actor)]}\t{action}\t{entity_type}\t"
                f"{int(random_number() * 1_000_000)}\t{payloads[int(random_number() * PAYLOAD_POOL_SIZE)]}\t"
                f"{clock.one()}"
            )

    return _chunks(rows())


EVENT_COLUMNS = ("user_id", "university_id", "event_type", "properties", "occurred_at")


def event_rows(plan: SynthPlan, actor_ids: Sequence[str], university_ids: Sequence[str]) -> Iterator[bytes]:
    rng = random.Random(f"events:{plan.seed}")  # noqa: S311
    clock = _Clock(rng, plan.until, plan.days)
    users = [*actor_ids, NULL] if actor_ids else [NULL]
    universities = [*university_ids, NULL]
    properties = [
        copy_escape(
            json.dumps(
                {
                    "path": f"/courses/{i}",
                    "duration_ms": i * 37 % 5000,
                    "referrer": ("search", "direct", "email")[i % 3],
                },
                separators=(",", ":"),
            )
        )
        for i in range(PAYLOAD_POOL_SIZE)
    ]
    random_number = rng.random

    def rows() -> Iterator[str]:
        for _ in range(plan.events):
            yield (
                f"{users[int(random_number() * len(users))]}\t"
                f"{universities[int(random_number() * len(universities))]}\t"
                f"{EVENT_TYPES[int(random_number() * len(EVENT_TYPES))]}\t"
                f"{properties[int(random_number() * PAYLOAD_POOL_SIZE)]}\t{clock.one()}"
            )

    return _chunks(rows())
