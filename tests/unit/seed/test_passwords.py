from __future__ import annotations

import bcrypt
import pytest

from models.errors import SeedRefusedError
from tasks.seed.passwords import LOGIN_DISABLED, check_password_policy, password_matches, resolve_hash


def test_over_72_bytes_is_refused_even_when_short_in_characters() -> None:
    with pytest.raises(SeedRefusedError, match="longer than 72 bytes"):
        check_password_policy("€" * 25, setting="DBOPS_ADMIN_PASSWORD", production=False)  # 75 bytes
    check_password_policy("€" * 24, setting="DBOPS_ADMIN_PASSWORD", production=False)  # 72 bytes: fine


def test_production_needs_twelve_characters() -> None:
    with pytest.raises(SeedRefusedError, match="shorter than 12 characters"):
        check_password_policy("elevenchars", setting="DBOPS_ADMIN_PASSWORD", production=True)
    check_password_policy("elevenchars", setting="DBOPS_ADMIN_PASSWORD", production=False)
    check_password_policy("twelve chars", setting="DBOPS_ADMIN_PASSWORD", production=True)


def test_a_matching_hash_is_kept_and_a_stale_one_replaced() -> None:
    stored = bcrypt.hashpw(b"s3cret-enough", bcrypt.gensalt(4)).decode()
    assert resolve_hash("s3cret-enough", stored, 4) == stored
    fresh = resolve_hash("another-secret", stored, 4)
    assert fresh != stored
    assert bcrypt.checkpw(b"another-secret", fresh.encode())


def test_without_a_password_login_stays_disabled_or_unchanged() -> None:
    assert resolve_hash(None, None, 4) == LOGIN_DISABLED
    assert resolve_hash(None, "$2b$04$existing", 4) == "$2b$04$existing"
    assert not password_matches("anything", LOGIN_DISABLED)
    assert not password_matches("anything", None)
