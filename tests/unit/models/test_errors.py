from __future__ import annotations

from models.errors import (
    CommandError,
    ConfigurationError,
    DatabaseUnavailableError,
    DbopsError,
    MigrationLockTimeoutError,
)


def test_one_line_joins_message_detail_and_hint() -> None:
    error = DbopsError("backup failed", detail="pg_dump exited 1\n  disk full", hint="free space and retry")
    assert error.one_line() == "backup failed. pg_dump exited 1 disk full. Hint: free space and retry."
    assert "\n" not in str(error)


def test_exit_codes_separate_bad_input_from_failed_operations() -> None:
    assert ConfigurationError("x").exit_code == 2
    assert DatabaseUnavailableError("x").exit_code == 2
    assert MigrationLockTimeoutError("x").exit_code == 1
    assert MigrationLockTimeoutError("x").retryable is True
    assert ConfigurationError("x").retryable is False


def test_command_error_carries_exit_code_and_stderr_tail() -> None:
    error = CommandError("pg_dump failed", program="pg_dump", returncode=1, stderr_tail="a\nb")
    assert (error.program, error.returncode, error.stderr_tail) == ("pg_dump", 1, "a\nb")
    assert isinstance(error, DbopsError)
