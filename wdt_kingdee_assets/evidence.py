"""What the checks hand on as data: the one place the shared metadata keys are spelled.

A check's markdown tables are for people; what another room reads (the alerts name the bills a
failed check is about) travels as JSON under a key defined here.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral
from typing import Any

import dagster as dg
import pandas as pd

EVIDENCE_ROWS = 50  # rows of a check's markdown table; the count says how many there are

# Every check names the bills its result is about under this key, as a JSON list.
BILL_NUMBERS = "bill_numbers"


def bill_numbers(numbers: Iterable[Any]) -> dg.MetadataValue:
    """The bills a check's result is about, sorted, each once."""
    return dg.MetadataValue.json(sorted({str(number) for number in numbers if number}))


def bills_named(metadata: dict[str, dg.MetadataValue]) -> list[str]:
    """The bills a check's metadata names (none when it names none)."""
    named = metadata.get(BILL_NUMBERS)
    return [str(bill) for bill in named.value] if isinstance(named, dg.JsonMetadataValue) else []


def evidence_table(rows: list[dict[str, Any]], limit: int = EVIDENCE_ROWS) -> dg.MetadataValue:
    """A check's evidence for people: the first ``limit`` rows as a markdown table."""
    if not rows:
        return dg.MetadataValue.md("_(none)_")
    frame = pd.DataFrame(rows[:limit]).astype(str)
    more = f"\n\n_…and {len(rows) - limit} more_" if len(rows) > limit else ""
    return dg.MetadataValue.md(frame.to_markdown(index=False) + more)


def record_table(frame: pd.DataFrame, limit: int = 200) -> dg.MetadataValue:
    """A table the UI shows as one (sortable columns), of the first ``limit`` rows: every cell
    as text or a whole number, lists joined."""
    shown = frame.head(limit)

    def cell(value: Any) -> str | int:
        if isinstance(value, Integral) and not isinstance(value, bool):
            return int(value)
        if value is None or value is pd.NA or value is pd.NaT:
            return ""
        if isinstance(value, list | tuple):
            return ", ".join(str(item) for item in value)
        return str(value)

    columns = list(shown.columns)
    records = [
        dg.TableRecord({name: cell(value) for name, value in zip(columns, row, strict=True)})
        for row in shown.itertuples(index=False)
    ]
    kinds = {
        name: "int" if records and isinstance(records[0].data[name], int) else "string"
        for name in columns
    }
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kinds[name]) for name in columns])
    return dg.MetadataValue.table(records=records, schema=schema)


def verdict(passed: bool, ok: str, problem: str, next_step: str) -> str:
    """A check's description: what it found, and on failure what to do next (中文 / English)."""
    return f"通过 / passed: {ok}" if passed else f"{problem} — 下一步 / next: {next_step}"


def listed(items: Iterable[Any], limit: int = 5) -> str:
    """The first few of ``items`` for a sentence, with how many more."""
    items = [str(item) for item in items]
    more = f" … (+{len(items) - limit})" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
