"""Password hashing for seeded accounts, with bcrypt 5's rules and without churning stored hashes.

bcrypt 5 raises on passwords over 72 bytes (older versions silently truncated them), so length is
checked first with a message an operator can act on. A salt is random per hash, so re-hashing an
unchanged password on every seed would rewrite the row every time: the stored hash is kept whenever
``checkpw`` says it already matches.
"""

from __future__ import annotations

import bcrypt

from models.errors import SeedRefusedError

BCRYPT_MAX_BYTES = 72
PRODUCTION_MIN_LENGTH = 12
#: Stored for accounts seeded without a password: never matches anything, so login stays disabled.
LOGIN_DISABLED = "!login-disabled"


def check_password_policy(password: str, *, setting: str, production: bool) -> None:
    if len(password.encode("utf-8")) > BCRYPT_MAX_BYTES:
        raise SeedRefusedError(
            f"{setting} is longer than {BCRYPT_MAX_BYTES} bytes, which bcrypt cannot hash",
            hint=f"choose a password of at most {BCRYPT_MAX_BYTES} bytes (UTF-8)",
        )
    if production and len(password) < PRODUCTION_MIN_LENGTH:
        raise SeedRefusedError(
            f"{setting} is shorter than {PRODUCTION_MIN_LENGTH} characters, too weak for production",
            hint=f"set {setting} to at least {PRODUCTION_MIN_LENGTH} characters",
        )


def password_matches(password: str, stored_hash: str | None) -> bool:
    if not stored_hash or not stored_hash.startswith("$2"):
        return False
    return bcrypt.checkpw(password.encode("utf-8"), stored_hash.encode("ascii"))


def resolve_hash(password: str | None, stored_hash: str | None, rounds: int) -> str:
    """The hash to store: the existing one when it still matches (or no password is configured)."""
    if password is None:
        return stored_hash or LOGIN_DISABLED
    if password_matches(password, stored_hash):
        assert stored_hash is not None
        return stored_hash
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")
