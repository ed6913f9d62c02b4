"""Pure: merged bills (合并生单) — a day's ready documents of one warehouse in one bill.

``strategy: per_day_warehouse`` in a flow's mapping groups the ready documents of a Beijing day
by warehouse. Each group becomes one bill, split into numbered parts when it has more entry lines
than ``max_lines``; quantities are merged per (material, lot, bin, dates) or kept one entry per source line
(``merge_lines``); every entry keeps its lineage, the WDT lines it stands for.

A bill is never rewritten behind the user's back: a document keeps the batch it was first built
into (``earlier``, read from the day's previous build), and documents that become ready later (a
held stock-out released once its material exists) go into a supplementary batch of their own —
parts ``S1-1``, ``S1-2`` … — instead of changing a bill Kingdee may already hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

_LABEL = re.compile(r"(?:S(?P<batch>\d+)-)?(?P<part>\d+)")


@dataclass(frozen=True)
class SourceLine:
    """One usable WDT line of a ready document."""

    document: str  # the document's number (stockout_no …)
    rec_id: int | None
    material: str
    unit: str
    quantity: Decimal
    lot: str | None
    # What else tells entries apart (the bin, the shelf-life dates): lines merge only when equal.
    detail: tuple[str | None, ...] = ()
    origin: int = -1  # the caller's index of the line (its row), opaque here


@dataclass(frozen=True)
class MergedEntry:
    material: str
    unit: str
    lot: str | None
    quantity: Decimal
    lineage: tuple[SourceLine, ...]  # the source lines this entry adds up
    detail: tuple[str | None, ...] = ()


@dataclass(frozen=True)
class MergedBill:
    label: str  # "1", "2" … for the first build's parts, "S1-1" … for supplements
    entries: tuple[MergedEntry, ...]

    @property
    def sources(self) -> list[str]:
        """The documents this part carries lines of, sorted."""
        return sorted({line.document for entry in self.entries for line in entry.lineage})


def batch_of(label: str) -> int:
    """The batch a part label belongs to: 0 for the first build, k for the k-th supplement."""
    match = _LABEL.fullmatch(label)
    if match is None:
        raise ValueError(f"not a merged bill part label: {label!r}")
    return int(match.group("batch") or 0)


def _entries(lines: Iterable[SourceLine], merge_lines: bool) -> list[MergedEntry]:
    if not merge_lines:
        return [
            MergedEntry(line.material, line.unit, line.lot, line.quantity, (line,), line.detail)
            for line in lines
        ]
    merged: dict[tuple[str, str | None, tuple[str | None, ...]], list[SourceLine]] = {}
    for line in lines:
        merged.setdefault((line.material, line.lot, line.detail), []).append(line)
    return [
        MergedEntry(
            material,
            group[0].unit,
            lot,
            sum((line.quantity for line in group), Decimal(0)),
            tuple(group),
            detail,
        )
        for (material, lot, detail), group in merged.items()
    ]


def merge_documents(
    documents: Mapping[str, Sequence[SourceLine]],
    earlier: Mapping[str, int],
    *,
    max_lines: int,
    merge_lines: bool,
) -> list[MergedBill]:
    """The parts of one warehouse's day: documents (number → lines, WDT's line order) grouped by
    batch, documents in number order, entries split ``max_lines`` to a part."""
    if max_lines < 1:
        raise ValueError(f"max_lines must be at least 1, got {max_lines}")
    batches: dict[int, list[str]] = {}
    for number in sorted(documents):
        if number in earlier:
            batches.setdefault(earlier[number], []).append(number)
    new = [number for number in sorted(documents) if number not in earlier]
    if new:
        following = max([*batches, *earlier.values()], default=-1) + 1
        batches[following] = new
    bills = []
    for batch, numbers in sorted(batches.items()):
        entries = _entries((line for number in numbers for line in documents[number]), merge_lines)
        for start in range(0, len(entries), max_lines):
            part = start // max_lines + 1
            label = str(part) if batch == 0 else f"S{batch}-{part}"
            bills.append(MergedBill(label, tuple(entries[start : start + max_lines])))
    return bills
