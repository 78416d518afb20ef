"""The conditions PostgreSQL prints in a plan (``Filter``, ``Index Cond``, ``Hash Cond``, ``Sort Key``),
read back into comparisons of a column with a parameter, a constant or another column.

PostgreSQL prints a condition as a fully parenthesised expression with casts made explicit
(``(((t.status)::text = 'open'::text) AND (t.created_at >= $2))``). Only the shapes an index can serve
are read: conjuncts of one column against one value. Anything else (an ``OR``, a function call, an
expression on both sides) yields nothing rather than a guess, so an unreadable condition never makes
a wrong candidate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Operators a btree serves, as PostgreSQL prints them, and what they mean for an index.
EQUALITY = "="
RANGE_OPERATORS = frozenset({"<", ">", "<=", ">="})
LIKE = "~~"
IS_NULL = "IS NULL"
IS_NOT_NULL = "IS NOT NULL"
_OPERATORS = ("<=", ">=", "<>", "!=", "=", "<", ">", "~~")
_FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<=", "=": "=", "~~": "~~"}

_IDENTIFIER = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")'
_COLUMN = re.compile(rf"^(?:(?P<qualifier>{_IDENTIFIER})\.)?(?P<column>{_IDENTIFIER})$")
_PARAMETER = re.compile(r"^\$(?P<position>\d+)$")
_STRING = re.compile(r"^'(?:[^']|'')*'$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?(?:e[+-]?\d+)?$", re.IGNORECASE)
_CAST = re.compile(r"^(?P<operand>.+?)::[A-Za-z_][A-Za-z0-9_ ]*(?:\(\d+(?:,\d+)?\))?(?:\[\])*$", re.DOTALL)
_ANY = re.compile(r"^ANY\s*\((?P<operand>.+)\)$", re.DOTALL)
_NULL_TEST = re.compile(r"^(?P<operand>.+?)\s+(?P<test>IS NOT NULL|IS NULL)$", re.DOTALL)
_SORT_KEY = re.compile(
    r"^(?P<operand>.+?)(?:\s+(?P<direction>DESC|ASC))?(?:\s+NULLS\s+(?P<nulls>FIRST|LAST))?$"
)


@dataclass(frozen=True)
class ColumnRef:
    qualifier: str | None
    name: str


@dataclass(frozen=True)
class Comparison:
    """One conjunct: *column* *operator* a parameter, a constant, or (a join) another column."""

    column: ColumnRef
    operator: str
    parameter: int | None = None
    constant: str | None = None  # the literal as printed, cast included: 'open'::text
    other: ColumnRef | None = None
    many: bool = False  # = ANY (...): an IN list, equality on each element

    @property
    def is_constant_test(self) -> bool:
        """A comparison with a fixed value: what a partial index's predicate can be made of."""
        return self.operator in {IS_NULL, IS_NOT_NULL} or (
            self.operator == EQUALITY and self.constant is not None and not self.many
        )


@dataclass(frozen=True)
class SortKey:
    column: ColumnRef
    descending: bool
    nulls_first: bool

    @property
    def default_nulls(self) -> bool:
        """NULLS placed where a plain ascending btree scanned either way puts them."""
        return self.nulls_first == self.descending


def unquote(identifier: str) -> str:
    if identifier.startswith('"') and identifier.endswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier


def strip_parentheses(expression: str) -> str:
    """*expression* without the parentheses that enclose all of it (any number of pairs)."""
    expression = expression.strip()
    while expression.startswith("(") and _closing(expression, 0) == len(expression) - 1:
        expression = expression[1:-1].strip()
    return expression


def _closing(expression: str, opening: int) -> int:
    """The index of the parenthesis closing the one at *opening*; -1 when unbalanced."""
    depth, quote = 0, ""
    for index in range(opening, len(expression)):
        char = expression[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
    return -1


def top_level(expression: str) -> list[tuple[int, str]]:
    """(position, character) of every character outside quotes and parentheses."""
    top, depth, quote = [], 0, ""
    for index, char in enumerate(expression):
        if quote:
            if char == quote:
                quote = ""
            continue
        if char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0:
            top.append((index, char))
    return top


def split_top_level(expression: str, separator: str) -> list[str]:
    """*expression* split on *separator* (`` AND ``, ``,``) where it stands outside quotes and
    parentheses."""
    top = {index for index, _ in top_level(expression)}
    parts, start, index = [], 0, 0
    while index <= len(expression) - len(separator):
        if index in top and expression.startswith(separator, index):
            parts.append(expression[start:index])
            index += len(separator)
            start = index
        else:
            index += 1
    parts.append(expression[start:])
    return [part.strip() for part in parts if part.strip()]


def conjuncts(condition: str) -> list[str]:
    return split_top_level(strip_parentheses(condition), " AND ")


def column_ref(operand: str) -> ColumnRef | None:
    """A column, possibly cast (``(t.status)::text``); None for anything else."""
    operand = strip_parentheses(operand)
    cast = _CAST.match(operand)
    if cast and not _STRING.match(cast["operand"]):
        operand = strip_parentheses(cast["operand"])
    match = _COLUMN.match(operand)
    if match is None or operand.upper() in {"NULL", "TRUE", "FALSE"}:
        return None
    qualifier = match["qualifier"]
    return ColumnRef(unquote(qualifier) if qualifier else None, unquote(match["column"]))


def _value(operand: str) -> tuple[int | None, str | None, bool] | None:
    """(parameter, constant, many) of a value side; None when it is neither."""
    operand = strip_parentheses(operand)
    many = _ANY.match(operand)
    if many is not None:
        inner = _value(many["operand"])
        return None if inner is None else (inner[0], inner[1], True)
    cast = _CAST.match(operand)
    bare = strip_parentheses(cast["operand"]) if cast else operand
    parameter = _PARAMETER.match(bare)
    if parameter is not None:
        return int(parameter["position"]), None, False
    if _STRING.match(bare) or _NUMBER.match(bare) or bare.upper() in {"TRUE", "FALSE"}:
        return None, operand, False
    return None


def comparison(conjunct: str) -> Comparison | None:
    """One conjunct read as a comparison; None when it is not a shape an index serves."""
    conjunct = strip_parentheses(conjunct)
    null_test = _NULL_TEST.match(conjunct)
    if null_test is not None:
        column = column_ref(null_test["operand"])
        return None if column is None else Comparison(column, null_test["test"])
    top = {index for index, _ in top_level(conjunct)}
    for index in sorted(top):
        operator = next((op for op in _OPERATORS if conjunct.startswith(f" {op} ", index)), None)
        if operator is None:
            continue
        if operator in {"<>", "!="}:
            return None
        left, right = conjunct[:index], conjunct[index + len(operator) + 2 :]
        return _oriented(left, operator, right) or _oriented(right, _FLIPPED[operator], left, flipped=True)
    return None


def _oriented(left: str, operator: str, right: str, *, flipped: bool = False) -> Comparison | None:
    column = column_ref(left)
    if column is None:
        return None
    other = column_ref(right)
    if other is not None:
        return None if flipped or operator != EQUALITY else Comparison(column, operator, other=other)
    value = _value(right)
    if value is None:
        return None
    parameter, constant, many = value
    if operator == LIKE and (constant is None or not _is_prefix_pattern(constant)):
        return None
    return Comparison(column, operator, parameter=parameter, constant=constant, many=many)


def _is_prefix_pattern(constant: str) -> bool:
    """``'abc%'``: a LIKE a btree can serve as a range (no wildcard before the end)."""
    body = constant.split("::")[0].strip("'")
    return bool(body) and body.endswith("%") and not any(ch in body[:-1] for ch in "%_")


def comparisons(condition: str | None) -> list[Comparison]:
    """Every readable conjunct of *condition*; an ``OR`` anywhere at the top makes it unreadable."""
    if not condition:
        return []
    parts = conjuncts(condition)
    if any(split_top_level(strip_parentheses(part), " OR ")[1:] for part in parts):
        return []
    return [found for part in parts if (found := comparison(part)) is not None]


def sort_key(text: str) -> SortKey | None:
    match = _SORT_KEY.match(text.strip())
    if match is None:
        return None
    column = column_ref(match["operand"])
    if column is None:
        return None
    descending = match["direction"] == "DESC"
    nulls_first = match["nulls"] == "FIRST" if match["nulls"] else descending
    return SortKey(column, descending, nulls_first)
