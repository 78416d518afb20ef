"""Object stores for backups and the log archive: one small interface, an S3-compatible and a
local-directory implementation. Entry point: ``open_store`` (the configured store).
"""

from __future__ import annotations

from models.backup import LocalLocation, S3Location, parse_backup_url
from models.errors import ConfigurationError
from models.settings import Settings
from tasks.storage.base import ObjectStore, StoredObject
from tasks.storage.local import LocalStore
from tasks.storage.s3 import S3Store

__all__ = ["LocalStore", "ObjectStore", "S3Store", "StoredObject", "open_store"]


def open_store(settings: Settings) -> ObjectStore:
    try:
        location = parse_backup_url(settings.effective_backup_url)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    if isinstance(location, S3Location):
        return S3Store(location, endpoint_url=settings.s3_endpoint_url)
    assert isinstance(location, LocalLocation)
    return LocalStore(location.directory)
