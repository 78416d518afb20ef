"""SQL as text: a ``--queries`` file split into statements, and which statements an index can serve.

The splitter knows just enough of PostgreSQL's lexical rules to find the semicolons that end
statements: quoted strings and identifiers, ``--`` and (nested) ``/* */`` comments, and dollar-quoted
bodies. A ``-- calls: N`` comment before a statement says how often it runs (default 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.index_review.workload.expressions import split_top_level, top_level

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_CALLS = re.compile(r"--[^\n]*?\bcalls:\s*(\d+)", re.IGNORECASE)
_FIRST_WORD = re.compile(r"^([A-Za-z]+)")
#: Catalogue and bookkeeping names: statements touching them are dbops's (or a monitor's) own reads.
_OWN = re.compile(r"\b(?:pg_\w+|information_schema|alembic_version|dbops_\w+)\b", re.IGNORECASE)
_SERVES = re.compile(r"\b(?:WHERE|ORDER\s+BY|JOIN)\b", re.IGNORECASE)
_INSERT_SELECT = re.compile(r"\bSELECT\b", re.IGNORECASE)
_ADVISABLE = frozenset({"SELECT", "WITH", "UPDATE", "DELETE", "INSERT"})


@dataclass(frozen=True)
class FileStatement:
    query: str
    calls: int
    line: int


def split_statements(text: str) -> list[FileStatement]:
    """The statements of *text*, without their terminating semicolons and surrounding comments."""
    found: list[FileStatement] = []
    start, index, length = 0, 0, len(text)

    def close(end: int) -> None:
        chunk = text[start:end]
        body = without_leading_comments(chunk).strip()
        if body:
            comments = len(chunk.rstrip()) - len(body)  # what precedes the statement in its chunk
            calls = _CALLS.findall(chunk[:comments])
            line = text.count("\n", 0, start + comments) + 1
            found.append(FileStatement(query=body, calls=int(calls[-1]) if calls else 1, line=line))

    while index < length:
        char = text[index]
        if char in "'\"":
            index = _after_quoted(text, index, char)
        elif text.startswith("--", index):
            newline = text.find("\n", index)
            index = length if newline < 0 else newline + 1
        elif text.startswith("/*", index):
            index = _after_block_comment(text, index)
        elif char == "$" and (tag := _DOLLAR_TAG.match(text, index)) and not _is_parameter(text, index):
            end = text.find(tag.group(), tag.end())
            index = length if end < 0 else end + len(tag.group())
        elif char == ";":
            close(index)
            index += 1
            start = index
        else:
            index += 1
    close(length)
    return found


def without_leading_comments(text: str) -> str:
    """*text* from its first token on: leading blanks, ``--`` and (nested) ``/* */`` comments dropped."""
    index = 0
    while index < len(text):
        if text[index].isspace():
            index += 1
        elif text.startswith("--", index):
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline + 1
        elif text.startswith("/*", index):
            index = _after_block_comment(text, index)
        else:
            break
    return text[index:]


def _is_parameter(text: str, index: int) -> bool:
    """``$1`` is a parameter, not the start of a dollar quote (whose tag cannot start with a digit)."""
    return index + 1 < len(text) and text[index + 1].isdigit()


def _after_quoted(text: str, index: int, quote: str) -> int:
    index += 1
    while index < len(text):
        if text[index] == quote:
            if text.startswith(quote * 2, index):
                index += 2
                continue
            return index + 1
        index += 1
    return len(text)


def _after_block_comment(text: str, index: int) -> int:
    depth = 0
    while index < len(text):
        if text.startswith("/*", index):
            depth += 1
            index += 2
        elif text.startswith("*/", index):
            depth -= 1
            index += 2
            if depth == 0:
                return index
        else:
            index += 1
    return len(text)


def statement_kind(query: str) -> str:
    match = _FIRST_WORD.match(without_leading_comments(query))
    return match.group(1).upper() if match else ""


def advisable(query: str) -> bool:
    """Whether an index could serve *query*: a SELECT, UPDATE, DELETE or INSERT ... SELECT of the
    application's tables that filters, joins or sorts. Utility statements (EXPLAIN, SET, BEGIN, DDL,
    COPY), plain inserts and reads of the catalogue or of dbops's bookkeeping are not."""
    kind = statement_kind(query)
    if kind not in _ADVISABLE or _OWN.search(query) or not _SERVES.search(query):
        return False
    return kind != "INSERT" or bool(_INSERT_SELECT.search(query))


_UPDATE = re.compile(
    r"^UPDATE\s+(?:ONLY\s+)?(?:(?P<schema>[A-Za-z_][\w$]*|\"[^\"]+\")\.)?(?P<table>[A-Za-z_][\w$]*|\"[^\"]+\")"
    r"(?:\s+(?:AS\s+)?(?!SET\b)[A-Za-z_][\w$]*)?\s+SET\s+(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_SET_END = re.compile(r"\s(?:WHERE|FROM|RETURNING)\s", re.IGNORECASE)


_UPSERT = re.compile(
    r"^INSERT\s+INTO\s+(?:[\w$]+\.)?(?P<table>[A-Za-z_][\w$]*).*\bON\s+CONFLICT\b.*\bDO\s+UPDATE\b",
    re.IGNORECASE | re.DOTALL,
)


def updated_columns(query: str) -> tuple[str, frozenset[str] | None] | None:
    """(table, the columns its SET assigns) of an ``UPDATE``; (table, None) for an update whose columns
    it cannot read (an upsert, an odd SET), which must count as touching any of them; None for a
    statement that updates nothing."""
    query = without_leading_comments(query).strip()
    upsert = _UPSERT.match(query)
    if upsert is not None:
        return upsert["table"].lower(), None
    match = _UPDATE.match(query)
    if match is None:
        return None
    table = match["table"]
    table = table.strip('"') if table.startswith('"') else table.lower()
    rest = match["rest"]
    outside = {index for index, _ in top_level(rest)}
    end = next((m.start() for m in _SET_END.finditer(rest) if m.start() in outside), len(rest))
    columns: set[str] = set()
    for assignment in split_top_level(rest[:end], ","):
        target = assignment.split("=", 1)[0].strip()
        names = target.strip("()").split(",") if target.startswith("(") else [target]
        for name in names:
            name = name.strip().split("[")[0].split(".")[0]  # an array element or a field: its column
            if not re.fullmatch(r'[A-Za-z_][\w$]*|"[^"]+"', name):
                return table, None
            columns.add(name.strip('"') if name.startswith('"') else name.lower())
    return table, frozenset(columns)
