"""One exception tree for everything dbops can report to an operator.

Modelled on PostgreSQL's error style: a short *message* saying what went wrong, a *detail* with the
facts behind it, and a *hint* saying what to do next. A failed Prefect run or a CLI exit then tells the
on-call operator their next step instead of leaving them to read a traceback.

Each class also decides the CLI exit code (2: the input or environment is wrong, fix it and retry;
1: the operation ran and failed) and whether retrying the same call can help.
"""

from __future__ import annotations


class DbopsError(Exception):
    """Root of every error dbops raises on purpose."""

    exit_code: int = 1
    retryable: bool = False

    def __init__(self, message: str, *, detail: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.hint = hint

    def __str__(self) -> str:
        return self.one_line()

    def one_line(self) -> str:
        """The whole error on one line, as the CLI prints it and Prefect shows it."""
        parts = [self.message.rstrip(".") + "."]
        if self.detail:
            parts.append(self.detail.rstrip(".") + ".")
        if self.hint:
            parts.append("Hint: " + self.hint.rstrip(".") + ".")
        return " ".join(" ".join(part.split()) for part in parts)


class ConfigurationError(DbopsError):
    """A setting is missing or malformed; nothing was attempted."""

    exit_code = 2


class ObjectLockUnavailableError(ConfigurationError):
    """DBOPS_BACKUP_OBJECT_LOCK asks for immutable backups, and the store cannot lock objects (a local
    directory, a bucket created without object lock); nothing is listed as a backup."""


class DatabaseError(DbopsError):
    """Talking to PostgreSQL failed."""


class DatabaseUnavailableError(DatabaseError):
    """The server cannot be reached or refuses the login: an environment problem, not a data one."""

    exit_code = 2
    retryable = True


class EmbeddedServerError(DatabaseError):
    """The embedded PostgreSQL server used by the demo and the tests could not be set up."""

    exit_code = 2


class PrefectUnavailableError(DbopsError):
    """The Prefect API does not answer, so what it holds (deployments, runs) cannot be read."""

    exit_code = 2
    retryable = True


class MaintenanceBusyError(DbopsError):
    """Another dbops job on the same database held its guard for longer than we were willing to wait."""

    retryable = True


class GuardLostError(DbopsError):
    """The session holding a job's guard ended (an idle-session timeout, a connection reaper,
    pg_terminate_backend), so another job may have started: the job stopped before its next step
    that changes a live database."""

    retryable = True


class ScratchCopyUnavailableError(DbopsError):
    """No scratch copy to measure on: no backup of the database, or one that would not restore."""

    exit_code = 2


class PlanUnavailableError(ScratchCopyUnavailableError):
    """``dbops migrate --plan`` could not measure (no backup to restore, a copy that would not
    restore): a pipeline may fall back to the lint alone."""

    exit_code = 2


class MigrationError(DbopsError):
    """A schema migration could not be applied."""


class PlanFailedError(MigrationError):
    """A pending revision breaks the plan's limits on a restored copy, so production was not touched."""


class MigrationLockTimeoutError(MigrationError):
    """Another migration held the migration lock for longer than we were willing to wait."""

    retryable = True


class TableLockTimeoutError(MigrationError):
    """A revision's DDL kept timing out waiting for a table lock another session holds; nothing of
    that revision was applied."""

    retryable = True


class RevisionNotFoundError(MigrationError):
    """The requested revision does not exist in this code's migration history."""

    exit_code = 2


class DowngradeRefusedError(MigrationError):
    """A downgrade was requested where it needs explicit permission."""

    exit_code = 2


class SeedError(DbopsError):
    """Seeding, seed validation or synthetic data generation failed."""


class SeedFileError(SeedError):
    """The seed file is malformed; nothing was written."""

    exit_code = 2


class SeedRefusedError(SeedError):
    """The seed or synthetic load would be unsafe here (weak password, production database)."""

    exit_code = 2


class SynthAlreadyLoadedError(SeedRefusedError):
    """Synthetic data of this seed is there already: loading again would collide or duplicate."""


class SeedValidationError(SeedError):
    """The database does not hold what the seed file says it should."""


class IntegrityValidationError(DbopsError):
    """An error-severity integrity check failed."""


class IndexReviewError(DbopsError):
    """The index review could not read the statistics it rests on."""


class FindingNotApplicableError(IndexReviewError):
    """``--apply`` named a finding that does not exist now, or one that is not safe to run online."""

    exit_code = 2


class QueriesFileError(IndexReviewError):
    """The ``--queries`` file cannot be read or holds no statement."""

    exit_code = 2


class IndexApplyError(IndexReviewError):
    """Applying a finding's SQL failed, or the re-check found the finding still there."""


class StorageError(DbopsError):
    """The object store could not be reached, or refused an operation."""

    retryable = True


class ObjectExistsError(StorageError):
    """An object was to be created where one already is; the one there was left as it was."""

    retryable = False


class StorageFeatureMissingError(StorageError):
    """The store does not offer an optional operation (some S3-compatible stores answer NotImplemented,
    or the credentials do not allow it); what needed it is skipped, never the job itself."""


class BackupError(DbopsError):
    """A backup could not be taken, verified or listed."""


class RestoreError(DbopsError):
    """A restore or a restore rehearsal failed: the backup is not proven restorable."""


class RestoreRefusedError(RestoreError):
    """The restore was refused before anything was touched (wrong confirmation, a backup the code
    cannot migrate, a missing target)."""

    exit_code = 2


class RestoreRejectedError(RestoreError):
    """The operator (or no one, in time) did not approve the restored copy; the target was not touched."""


class TableMergeError(RestoreError):
    """Merging restored rows into the live tables failed and was rolled back entirely; the
    inspection schema is kept."""


class BackupCorruptError(RestoreError):
    """The stored backup does not match its manifest (size or sha256)."""


class ArchiveError(DbopsError):
    """Archiving logs to the object store, or reading them back, failed; no row was deleted."""


class ArchiveVerificationError(ArchiveError):
    """The store did not give back what was written to it, so nothing was deleted."""


class CommandError(DbopsError):
    """A PostgreSQL client program (pg_dump, pg_restore, psql, ...) failed."""

    def __init__(
        self,
        message: str,
        *,
        program: str,
        returncode: int,
        stderr_tail: str = "",
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, detail=detail or stderr_tail or None, hint=hint)
        self.program = program
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class BinaryNotFoundError(CommandError):
    """No suitable PostgreSQL client program was found on this machine."""

    exit_code = 2
