"""The one FilterString builder for ExecuteBillQuery.

Kingdee pastes FilterString into SQL (reference §5), so every value goes through :func:`quote`:
strings are single-quoted with ``'`` doubled, the SQL way, so a bill number such as
``X' or FBillNo<>'`` stays one literal and can never widen a query. Field names are checked
against a strict pattern instead of being quoted, because Kingdee has no identifier quoting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _checked_field(field: str) -> str:
    if not isinstance(field, str) or not _FIELD.fullmatch(field):
        raise ValueError(f"not a Kingdee field key: {field!r}")
    return field


def quote(value: str | int | Decimal) -> str:
    """A FilterString literal for ``value``.

    Floats are refused (their text is not the number the caller meant); so are booleans, NaN and
    infinities, and strings with NUL or line breaks, which have no place in a Kingdee number.
    """
    if isinstance(value, bool):
        raise ValueError("booleans have no FilterString literal; compare with '1'/'0' explicitly")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite decimal: {value!r}")
        return format(value, "f")
    if isinstance(value, str):
        if any(char in value for char in "\x00\r\n"):
            raise ValueError(f"control character in filter value {value!r}")
        return "'" + value.replace("'", "''") + "'"
    raise ValueError(f"cannot put a {type(value).__name__} into a FilterString")


_OPERATORS = frozenset({"=", "<>", "<", "<=", ">", ">="})


def field_cmp(field: str, operator: str, value: str | int | Decimal) -> str:
    """``field <operator> value`` for one of ``= <> < <= > >=``."""
    if operator not in _OPERATORS:
        raise ValueError(f"not a FilterString comparison: {operator!r}")
    return f"{_checked_field(field)} {operator} {quote(value)}"


def field_eq(field: str, value: str | int | Decimal) -> str:
    """``field = value``."""
    return field_cmp(field, "=", value)


def field_in(field: str, values: Iterable[str | int | Decimal]) -> str:
    """``field in (v1,v2,…)`` with duplicates dropped; an empty list is an error, not "nothing"."""
    literals = list(dict.fromkeys(quote(value) for value in values))
    if not literals:
        raise ValueError(f"empty value list for {field!r}: an IN () clause would be invalid SQL")
    return f"{_checked_field(field)} in ({','.join(literals)})"


def all_of(*clauses: str) -> str:
    """Every clause must hold; each is parenthesised so an ``or`` inside cannot leak out."""
    parts = [clause for clause in clauses if clause.strip()]
    if not parts:
        raise ValueError("all_of() needs at least one clause: an empty filter matches every row")
    return " and ".join(f"({clause})" for clause in parts)
