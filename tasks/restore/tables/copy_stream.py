"""Read the COPY blocks out of ``pg_restore --data-only -f -``, whatever the chunking.

pg_restore turns a custom-format dump's table data into SQL text: a few ``SET`` lines, then per
table ``COPY schema.table (columns) FROM stdin;``, the rows in COPY's text format, and a line ``\\.``.
That text is the one representation of a dump's rows pg_restore writes without a database to load
into, and its rows are exactly what ``COPY ... FROM STDIN`` reads back. A row never spans a line
(COPY's text format escapes newlines and backslashes), so a line holding only ``\\.`` can only be
the terminator.

Pure: :class:`CopyStreamParser` is fed chunks and returns events; the caller does the I/O. Data is
handed on in the chunks it came in (cut at a line end), so a large table costs a search per chunk,
not a Python call per row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TERMINATOR = b"\\.\n"
_SETTING = re.compile(rb"^SET (client_encoding) = '([^']*)';$")
_BARE_IDENTIFIER = re.compile(r"[^\s.,()\"]+")


@dataclass(frozen=True)
class CopyStart:
    schema: str
    table: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class CopyData:
    data: bytes


@dataclass(frozen=True)
class CopyEnd:
    schema: str
    table: str


@dataclass(frozen=True)
class Setting:
    """A session setting the rows depend on: ``client_encoding`` says how the text is encoded."""

    name: str
    value: str


Event = CopyStart | CopyData | CopyEnd | Setting


class CopyStreamError(ValueError):
    """The text is not what pg_restore writes: a block never ended, or a header did not parse."""


class CopyStreamParser:
    """Feed it pg_restore's output in chunks of any size; each call returns the events completed."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._block: CopyStart | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while True:
            if self._block is None:
                end = self._buffer.find(b"\n")
                if end < 0:
                    return events
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                event = _statement(line)
                if isinstance(event, CopyStart):
                    self._block = event
                if event is not None:
                    events.append(event)
            else:
                if not self._copy_data(events):
                    return events

    def finish(self) -> None:
        """At the end of the output: refuse a block that never ended (a truncated stream)."""
        if self._block is not None:
            raise CopyStreamError(
                f"the rows of {self._block.schema}.{self._block.table} end without their terminator"
            )

    def _copy_data(self, events: list[Event]) -> bool:
        """Hand on the complete lines of the current block; True when the block ended."""
        assert self._block is not None
        if self._buffer.startswith(_TERMINATOR):
            end = 0
        else:
            found = self._buffer.find(b"\n" + _TERMINATOR)
            end = found + 1 if found >= 0 else -1
        if end < 0:
            complete = self._buffer.rfind(b"\n") + 1
            if complete:
                events.append(CopyData(bytes(self._buffer[:complete])))
                del self._buffer[:complete]
            return False
        if end:
            events.append(CopyData(bytes(self._buffer[:end])))
        del self._buffer[: end + len(_TERMINATOR)]
        events.append(CopyEnd(self._block.schema, self._block.table))
        self._block = None
        return True


def _statement(line: bytes) -> Event | None:
    if line.startswith(b"COPY ") and line.endswith(b" FROM stdin;"):
        return parse_copy_header(line.decode("utf-8"))
    setting = _SETTING.match(line)
    if setting:
        return Setting(setting.group(1).decode("ascii"), setting.group(2).decode("ascii"))
    return None


def parse_copy_header(line: str) -> CopyStart:
    """``COPY public."Odd name" (id, "Col") FROM stdin;`` as pg_dump writes it (identifiers quoted
    only where needed, ``""`` inside quotes)."""
    text = line.removeprefix("COPY ").removesuffix(" FROM stdin;")
    names, rest = _identifiers(text, ".")
    if len(names) != 2:
        raise CopyStreamError(f"cannot read the table of COPY header {line!r}")
    rest = rest.strip()
    columns: list[str] = []
    if rest:
        if not (rest.startswith("(") and rest.endswith(")")):
            raise CopyStreamError(f"cannot read the columns of COPY header {line!r}")
        columns, left = _identifiers(rest[1:-1].strip(), ", ")
        if left.strip():
            raise CopyStreamError(f"cannot read the columns of COPY header {line!r}")
    return CopyStart(schema=names[0], table=names[1], columns=tuple(columns))


def _identifiers(text: str, separator: str) -> tuple[list[str], str]:
    """Leading identifiers of *text* joined by *separator*, and what follows them."""
    names: list[str] = []
    position = 0
    while True:
        if text.startswith('"', position):
            end = position + 1
            name = []
            while True:
                quote = text.find('"', end)
                if quote < 0:
                    raise CopyStreamError(f"unterminated quoted identifier in {text!r}")
                name.append(text[end:quote])
                if text.startswith('"', quote + 1):
                    name.append('"')
                    end = quote + 2
                    continue
                position = quote + 1
                break
            names.append("".join(name))
        else:
            match = _BARE_IDENTIFIER.match(text, position)
            if match is None:
                return names, text[position:]
            names.append(match.group(0))
            position = match.end()
        if not text.startswith(separator, position):
            return names, text[position:]
        position += len(separator)
