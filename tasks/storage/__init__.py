"""Object stores for backups and the log archive: one small interface, an S3-compatible and a
local-directory implementation (``tasks.storage.s3.S3Store``, ``LocalStore``). Entry point:
``open_store`` (the configured store).
"""

from __future__ import annotations

from models.backup import LocalLocation, S3Location, parse_backup_url
from models.errors import ConfigurationError
from models.settings import Settings
from tasks.storage.base import ObjectStore, StoredObject
from tasks.storage.local import LocalStore

__all__ = ["LocalStore", "ObjectStore", "StoredObject", "open_store"]


def open_store(settings: Settings) -> ObjectStore:
    try:
        location = parse_backup_url(settings.effective_backup_url)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None
    if isinstance(location, S3Location):
        # Imported only here: boto3 costs a command about 0.3 s of start-up, for nothing with a local store.
        from tasks.storage.s3 import S3Store

        return S3Store(location, endpoint_url=settings.s3_endpoint_url)
    assert isinstance(location, LocalLocation)
    return LocalStore(location.directory)
