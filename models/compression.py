"""How a dump is compressed: a setting and a field of every manifest.

A module of its own so that loading the settings does not build the backup format's models, which
commands that only read the configuration (``dbops db-url``) would pay for at every start.
"""

from __future__ import annotations

from enum import StrEnum


class Compression(StrEnum):
    ZSTD = "zstd"
    GZIP = "gzip"
    NONE = "none"

    @property
    def suffix(self) -> str:
        return {"zstd": ".zst", "gzip": ".gz", "none": ""}[self.value]
