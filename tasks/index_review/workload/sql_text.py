"""SQL as text: a ``--queries`` file split into statements, and which statements an index can serve.

The splitter knows just enough of PostgreSQL's lexical rules to find the semicolons that end
statements: quoted strings and identifiers, ``--`` and (nested) ``/* */`` comments, and dollar-quoted
bodies. A ``-- calls: N`` comment before a statement says how often it runs (default 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_CALLS = re.compile(r"--\s*calls:\s*(\d+)", re.IGNORECASE)
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
