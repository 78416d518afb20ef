"""What makes replacing a live database fail half-way, found before anything is touched.

- **What the server will not let go of.** ``DROP DATABASE ... WITH (FORCE)`` still refuses a database
  with a logical-replication subscription, an active logical slot or a prepared transaction, and
  a rename waits on their sessions, then fails; a dropped slot would also lose its subscribers'
  position. Either way the target would be left closed.
- **What this role cannot put back.** A replacement is given the target's owner, ACL and
  settings (:mod:`tasks.restore.properties`). A managed role may own the database and still be
  refused some of them: an ``ALTER ROLE ... IN DATABASE ... SET`` made by a superuser, a
  superuser-only setting, an owner it is not a member of. Each statement is tried on the target
  itself, in a transaction that is rolled back, so the server's own privilege rules answer, on
  every major; the owner change, which the server skips when nothing changes, is checked by role
  membership.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from models.errors import RestoreRefusedError
from tasks.postgres.engine import quote_identifier
from tasks.restore.properties import DatabaseProperties, granting_statements

_BLOCKERS = text("""
    SELECT (SELECT count(*) FROM pg_subscription AS s WHERE s.subdbid = d.oid),
           (SELECT count(*) FROM pg_replication_slots AS r
            WHERE r.database = d.datname AND r.slot_type = 'logical'),
           (SELECT count(*) FROM pg_prepared_xacts AS p WHERE p.database = d.datname)
    FROM pg_database AS d WHERE d.datname = :name
""")
_MEMBER = text("""
    SELECT current_user, pg_has_role(current_user, r.oid, 'MEMBER')
    FROM pg_roles AS r WHERE r.rolname = :owner
""")


def check_replaceable(connection: Connection, target: str, properties: DatabaseProperties) -> None:
    """Refuse, with nothing touched, a *target* that could not be closed, renamed or dropped and then
    given back its *properties* by this role."""
    check_blockers(connection, target)
    _check_owner(connection, target, properties.owner)
    _check_statements(connection, target, properties)


def check_blockers(connection: Connection, target: str) -> None:
    """Refuse a *target* with a subscription, a logical slot or a prepared transaction."""
    row = connection.execute(_BLOCKERS, {"name": target}).first()
    if row is None:
        return
    subscriptions, slots, prepared = (int(value) for value in row)
    found = [
        f"{count} {what}"
        for count, what in (
            (subscriptions, "logical-replication subscription(s)"),
            (slots, "logical replication slot(s)"),
            (prepared, "prepared transaction(s)"),
        )
        if count
    ]
    if found:
        raise RestoreRefusedError(
            f"database {target} has {', '.join(found)}, which keep it from being replaced; nothing was "
            "done and it stays open",
            hint="drop the subscription (DROP SUBSCRIPTION), the slot (pg_drop_replication_slot) or "
            "finish the prepared transaction (COMMIT PREPARED / ROLLBACK PREPARED) first, then restore again",
        )


def _check_owner(connection: Connection, target: str, owner: str) -> None:
    row = connection.execute(_MEMBER, {"owner": owner}).first()
    if row is None or row[1]:
        return
    role = str(row[0])
    raise RestoreRefusedError(
        f"role {role} could not make {owner} the owner of the restored {target}, as it is now; nothing "
        "was done",
        hint=f"GRANT {quote_identifier(owner)} TO {quote_identifier(role)}, as a superuser or the "
        "provider's admin role, then restore again",
    )


def _check_statements(connection: Connection, target: str, properties: DatabaseProperties) -> None:
    """Try every statement that gives a replacement *properties* on *target* itself, and roll back."""
    statements = granting_statements(target, properties)[1:]  # the owner change: _check_owner
    role = str(connection.execute(text("SELECT current_user")).scalar_one())
    refused: list[tuple[str, str]] = []
    connection.rollback()  # whatever was read so far: the trial needs a transaction of its own
    with connection.begin() as transaction:
        for statement in statements:
            try:
                with connection.begin_nested():
                    connection.exec_driver_sql(statement)
            except DBAPIError as error:
                refused.append((statement, str(error.orig).splitlines()[0] if error.orig else str(error)))
        transaction.rollback()
    if refused:
        statement, reason = refused[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise RestoreRefusedError(
            f"this role could not give the restored {target} its current properties: {statement}{more}; "
            "nothing was done",
            detail=reason,
            hint=_hint(statement, quote_identifier(role)),
        )


def _hint(statement: str, role: str) -> str:
    if statement.startswith("ALTER ROLE"):
        grantee = statement.split()[2]
        return (
            f"as a superuser, let this role manage {grantee}: ALTER ROLE {role} CREATEROLE; GRANT "
            f"{grantee} TO {role} WITH ADMIN OPTION; or reset that setting now and set it again after "
            "the restore"
        )
    if statement.startswith("ALTER DATABASE") and " SET " in statement:
        parameter = statement.split(" SET ", 1)[1].split()[0]
        return f"as a superuser: GRANT SET ON PARAMETER {parameter} TO {role}, then restore again"
    return "run the restore as the database's owner or a superuser"
