"""What the checks hand on as data: the one place the shared metadata keys are spelled.

A check's markdown tables are for people; what another room reads (the alerts name the bills a
failed check is about) travels as JSON under a key defined here.
"""

from __future__ import annotations

from collections.abc import Iterable
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
