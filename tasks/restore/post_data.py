"""A multi-part backup's post-data, divided by table: what can be built as soon as a table's rows are in.

``pg_restore --jobs`` of one dump builds a table's indexes as soon as that table's rows are loaded,
while larger tables still load. A multi-part restore streams each data part into a pg_restore of its
own, so the post-data part's one ``pg_restore --jobs`` would wait for the last data part. To overlap
them the same way, the post-data's table of contents is read once (``pg_restore --verbose`` prints
each entry's id above its SQL), and a data part that ends while another still streams builds its own
tables' indexes and primary or unique keys at once (``pg_restore --use-list`` with just those
entries). Everything else (foreign keys, which need both tables and the key they reference; triggers;
partitioned tables' indexes, attachments, statistics) stays for the one ``--jobs`` run after the last
data part, as does any entry not recognised here.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from tasks.postgres.binaries import Program
from tasks.postgres.command import run_pg_program

# pg_restore --verbose lists every entry on stderr too; that is no news to an operator.
_quiet = logging.getLogger(f"{__name__}.listing")
_quiet.setLevel(logging.WARNING)
_IDENTIFIER = r'(?:"(?:[^"]|"")+"|[^\s."(]+)'
_TABLE = rf"({_IDENTIFIER})\.({_IDENTIFIER})"
#: ``-- TOC entry 2496 (class 1259 OID 16608)``, maybe ``-- Dependencies: ...``, then ``-- Name: ...``.
_ENTRY = re.compile(r"^-- TOC entry (\d+) .*\n(?:-- (?!Name: ).*\n)*-- Name: .*?; Type: ([A-Z ]+); ", re.M)
#: An index on a table's own rows (``ON ONLY``, a partitioned table's, does not match), and a key.
_INDEX = re.compile(rf"^CREATE (?:UNIQUE )?INDEX {_IDENTIFIER} ON {_TABLE} USING ", re.M)
_KEY = re.compile(rf"^ALTER TABLE ONLY {_TABLE}\s+ADD CONSTRAINT {_IDENTIFIER} (?:PRIMARY KEY|UNIQUE) ", re.M)
_BUILT = {"INDEX": _INDEX, "CONSTRAINT": _KEY}
_LISTED = re.compile(r"^(\d+);", re.M)


@dataclass(frozen=True)
class PostDataEntry:
    dump_id: int
    #: (schema, table) an index or a primary or unique key is built on; None for everything else.
    table: tuple[str, str] | None


def _unquoted(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def post_data_entries(listing: str, script: str) -> list[PostDataEntry]:
    """Every entry ``pg_restore --list`` printed, in its order, each with the table it is built on
    when the script ``pg_restore --verbose --file -`` wrote shows an index or key; an entry the
    script does not show that way is kept, with no table, for the run after the last data part."""
    found = list(_ENTRY.finditer(script))
    tables: dict[int, tuple[str, str] | None] = {}
    for index, entry in enumerate(found):
        body = script[entry.end() : found[index + 1].start() if index + 1 < len(found) else len(script)]
        kind = entry.group(2).strip()
        pattern = _BUILT.get(kind)
        built = pattern.search(body) if pattern is not None else None
        tables[int(entry.group(1))] = (
            (_unquoted(built.group(1)), _unquoted(built.group(2))) if built else None
        )
    return [PostDataEntry(int(dump_id), tables.get(int(dump_id))) for dump_id in _LISTED.findall(listing)]


def use_list(entries: list[PostDataEntry], path: Path) -> Path:
    """A ``pg_restore --use-list`` file naming *entries* (pg_restore reads only each line's id)."""
    path.write_text("".join(f"{entry.dump_id};\n" for entry in entries))
    return path


class PostData:
    """The post-data entries not yet restored, handed out by table as the data parts end."""

    def __init__(self, entries: list[PostDataEntry], *, publishes: bool = False) -> None:
        self._left = list(entries)
        self._guard = threading.Lock()
        #: Whether it adds tables to a publication (which refuses unlogged ones).
        self.publishes = publishes

    def take(self, tables: list[str]) -> list[PostDataEntry]:
        """The indexes and keys of *tables* (qualified ``schema.name``), no longer left for later."""
        wanted = {tuple(name.split(".", 1)) for name in tables}
        with self._guard:
            taken = [entry for entry in self._left if entry.table in wanted]
            self._left = [entry for entry in self._left if entry not in taken]
        return taken

    def rest(self) -> list[PostDataEntry]:
        with self._guard:
            return list(self._left)


def read_post_data(pg_restore: Program, dump: Path, timeout_seconds: float) -> PostData:
    """The post-data part's entries, read from the file *dump* without touching any database."""
    listing, script = io.BytesIO(), io.BytesIO()
    run_pg_program(pg_restore.path, ["--list", str(dump)], stdout=listing, timeout_seconds=timeout_seconds)
    run_pg_program(
        pg_restore.path,
        ["--verbose", "--file", "-", str(dump)],
        stdout=script,
        timeout_seconds=timeout_seconds,
        logger=_quiet,
    )
    listed = listing.getvalue().decode("utf-8", "replace")
    return PostData(
        post_data_entries(listed, script.getvalue().decode("utf-8", "replace")),
        publishes=" PUBLICATION " in listed,
    )
