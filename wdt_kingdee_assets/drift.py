"""Pure: a day's bills as a run would build them now, against the bills Kingdee holds for them.

Each bill is ``new`` (Kingdee has none: a sync would write it), ``identical``, ``different``
(the differing fields named, WDT's value beside Kingdee's), ``held`` (a sync would not write it)
or ``only_in_kingdee`` (a bill of ours whose source is not in the day any more). What differs is
told as the change in WDT that explains it (``Change``): a quantity or material edited, lines
added or removed, the document moved to another day, cancelled. A bill Kingdee holds that carries
no reference of ours and matches no bill of the day is somebody else's: never reported.

Kingdee keeps a lot only for lot-managed materials (the field is locked for the others), so lots
are compared where Kingdee's bill has them; quantities are compared as Kingdee stores them (the
bills carry the quantities a run sends, already at the unit's precision).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pandas as pd

from wdt_kingdee_assets.kingdee.client import SavedEntry
from wdt_kingdee_assets.kingdee.forms import KingdeeForm
from wdt_kingdee_assets.locator import match_records
from wdt_kingdee_assets.normalize import parse_wdt_datetime
from wdt_kingdee_assets.outcomes import Readiness
from wdt_kingdee_assets.reference import parse_reference
from wdt_kingdee_assets.source import Source


class Verdict(StrEnum):
    NEW = "new"
    IDENTICAL = "identical"
    DIFFERENT = "different"
    HELD = "held"
    ONLY_IN_KINGDEE = "only_in_kingdee"


# What is drift: Kingdee holds a bill that WDT no longer says.
DRIFT = frozenset({Verdict.DIFFERENT, Verdict.ONLY_IN_KINGDEE})


class Change(StrEnum):
    """What changed in WDT after the bill was written."""

    QUANTITY = "quantity_changed"
    MATERIAL = "material_changed"
    LINES_ADDED = "lines_added"
    LINES_REMOVED = "lines_removed"
    LOT = "lot_or_warehouse_changed"
    MOVED = "moved_to_another_day"
    ORG = "stock_org_changed"
    CANCELLED = "cancelled"
    NOT_COMPLETED = "no_longer_completed"
    GONE = "not_in_wdt"
    LEFT_DAY = "left_the_day"  # a merged bill's part: its documents are not in the day


Key = tuple[str, str | None, str]  # (material, lot, warehouse)


@dataclass(frozen=True)
class KingdeeBill:
    """One bill as Kingdee holds it: header and quantities per (material, lot, warehouse)."""

    fid: int
    number: str
    reference: str
    date: str
    document_status: str
    stock_org: str
    quantities: Mapping[Key, Decimal]


def kingdee_bills(entries: Iterable[SavedEntry]) -> list[KingdeeBill]:
    """The bills of a read-back, one per FID, in FID order."""
    heads: dict[int, SavedEntry] = {}
    totals: dict[int, dict[Key, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for entry in entries:
        heads.setdefault(entry.fid, entry)
        totals[entry.fid][(entry.material_number, entry.lot, entry.stock)] += entry.qty
    return [
        KingdeeBill(
            fid,
            head.bill_no,
            head.reference,
            head.date,
            head.document_status,
            head.stock_org,
            dict(totals[fid]),
        )
        for fid, head in sorted(heads.items())
    ]


@dataclass
class Comparison:
    """One bill of the day, or one bill of ours only Kingdee still holds."""

    verdict: Verdict
    source_ref: str | None
    bill_no: str | None  # the number a run sends; None for one only in Kingdee
    kingdee: KingdeeBill | None = None
    differences: list[dict[str, str | None]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    note: str | None = None  # a held bill's reason; what WDT says of a vanished document
    model: Mapping[str, Any] | None = None  # the bill a run would send now (new, different)

    def row(self) -> dict[str, Any]:
        held = self.kingdee
        return {
            "verdict": str(self.verdict),
            "source_ref": self.source_ref,
            "bill_no": self.bill_no,
            "kingdee_bill_no": held.number if held else None,
            "fid": held.fid if held else None,
            "document_status": held.document_status if held else None,
            "changes": [str(change) for change in self.changes],
            "differences": self.differences,
            "note": self.note,
            "model": self.model,
        }


def expected_bill(model: Mapping[str, Any], form: KingdeeForm) -> KingdeeBill:
    """What Kingdee would hold of a bill built from ``model``."""
    totals: dict[Key, Decimal] = defaultdict(Decimal)
    for entry in model[form.entry]:
        lot = (entry.get(form.lot) or {}).get("FNumber")
        key = (entry[form.material]["FNumber"], lot, entry[form.stock]["FNumber"])
        totals[key] += Decimal(str(entry[form.quantity]))
    return KingdeeBill(
        fid=0,
        number=str(model.get("FBillNo") or ""),
        reference="",
        date=str(model.get(form.date) or "")[:10],
        document_status="",
        stock_org=model[form.stock_org]["FNumber"],
        quantities=dict(totals),
    )


def field_label(diff: Mapping[str, Any]) -> str:
    """How a differing field is named to people: ``FDate``, or ``FQty <material> [lot <lot>]``."""
    if diff["field"] != "FQty":
        return str(diff["field"])
    return f"FQty {diff['material']}" + (f" lot {diff['lot']}" if diff.get("lot") else "")


def differences(wdt: KingdeeBill, kingdee: KingdeeBill) -> tuple[list[dict], list[Change]]:
    """The fields in which Kingdee's bill differs from the one WDT now makes, and the changes
    in WDT they tell of."""
    found: list[dict[str, str | None]] = []
    changes: list[Change] = []
    for name, now, held, change in (
        ("FDate", wdt.date, kingdee.date, Change.MOVED),
        ("FStockOrgId", wdt.stock_org, kingdee.stock_org, Change.ORG),
    ):
        if now != held:
            found.append({"field": name, "wdt": now, "kingdee": held})
            changes.append(change)
    lots_kept = {material for material, lot, _ in kingdee.quantities if lot is not None}
    expected: dict[Key, Decimal] = defaultdict(Decimal)
    for (material, lot, stock), qty in wdt.quantities.items():
        expected[(material, lot if material in lots_kept else None, stock)] += qty
    keys = sorted(set(expected) | set(kingdee.quantities), key=lambda key: tuple(map(str, key)))
    for material, lot, stock in keys:
        now = expected.get((material, lot, stock))
        held = kingdee.quantities.get((material, lot, stock))
        if now != held:
            found.append(
                {
                    "field": "FQty",
                    "material": material,
                    "lot": lot,
                    "stock": stock,
                    "wdt": None if now is None else str(now),
                    "kingdee": None if held is None else str(held),
                }
            )
    changes += _line_changes(expected, kingdee.quantities)
    return found, changes


def _line_changes(now: Mapping[Key, Decimal], held: Mapping[Key, Decimal]) -> list[Change]:
    def per_material(quantities: Mapping[Key, Decimal]) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(Decimal)
        for (material, _, _), qty in quantities.items():
            totals[material] += qty
        return totals

    wdt, kingdee = per_material(now), per_material(held)
    added, removed = set(wdt) - set(kingdee), set(kingdee) - set(wdt)
    changes: list[Change] = []
    if added and removed:
        changes.append(Change.MATERIAL)
    elif added:
        changes.append(Change.LINES_ADDED)
    elif removed:
        changes.append(Change.LINES_REMOVED)
    if any(wdt[m] != kingdee[m] for m in set(wdt) & set(kingdee)):
        changes.append(Change.QUANTITY)
    elif not (added or removed) and set(now) != set(held):
        changes.append(Change.LOT)
    return changes


def compare_day(
    bills: pd.DataFrame, held: Sequence[KingdeeBill], form: KingdeeForm
) -> list[Comparison]:
    """Each bill of ``bills`` (the flow's bills schema) against ``held`` (what Kingdee holds of
    the day's bills and of the bills numbered as ours), then each bill of ours in ``held`` that
    no bill of the day stands for."""
    rows = [row for row in bills.to_dict("records") if row.get("bill_no")]
    found = match_records(_Locatable.of(rows), held)
    compared: list[Comparison] = []
    explained: set[int] = set()
    for row in rows:
        records = found.get(row["bill_no"], [])
        explained.update(record.fid for record in records)
        first = records[0] if records else None
        if row["readiness"] != Readiness.READY:
            compared.append(
                Comparison(
                    Verdict.HELD, row["source_ref"], row["bill_no"], first, note=row["hold_reason"]
                )
            )
        elif first is None:
            compared.append(
                Comparison(Verdict.NEW, row["source_ref"], row["bill_no"], model=row["model"])
            )
        else:
            diffs, changes = differences(expected_bill(row["model"], form), first)
            if len(records) > 1:
                diffs.append(
                    {"field": "FID", "wdt": None, "kingdee": ", ".join(str(r.fid) for r in records)}
                )
            verdict = Verdict.DIFFERENT if diffs else Verdict.IDENTICAL
            compared.append(
                Comparison(
                    verdict,
                    row["source_ref"],
                    row["bill_no"],
                    first,
                    diffs,
                    changes,
                    model=row["model"] if diffs else None,
                )
            )
    for bill in held:
        ref = parse_reference(bill.reference)
        if bill.fid not in explained and ref is not None:
            compared.append(Comparison(Verdict.ONLY_IN_KINGDEE, ref, None, bill))
    return compared


@dataclass(frozen=True)
class _Locatable:
    bill_no: str | None
    source_ref: str | None

    @classmethod
    def of(cls, rows: Iterable[Mapping[str, Any]]) -> list[_Locatable]:
        return [cls(row["bill_no"], row["source_ref"]) for row in rows]


def why_gone(order: Mapping[str, Any] | None, day: date, source: Source) -> tuple[Change, str]:
    """Why a document whose bill Kingdee holds is not in the day's pull, from what WDT says of
    it now (``order``; None = WDT has no such document): the change, and WDT's words for it."""
    if order is None:
        return Change.GONE, "旺店通查无此单 / WDT has no document with this number"
    status = order.get("status")
    names = source.method.statuses
    try:
        code = int(status)
    except (TypeError, ValueError):
        code = None
    if names.get(code) == "已取消":
        return Change.CANCELLED, f"旺店通已取消 / cancelled in WDT (status {status})"
    if code not in source.statuses:
        named = names.get(code, "?")
        return Change.NOT_COMPLETED, f"旺店通状态 {status} {named} / no longer completed in WDT"
    moment = parse_wdt_datetime(order.get(source.time_field))
    if moment is not None and moment.date() != day:
        return Change.MOVED, (
            f"{source.time_field} 现为 {moment:%Y-%m-%d %H:%M:%S} / now on {moment.date()}"
        )
    return Change.GONE, "旺店通仍在当天但未拉取到 / still on the day in WDT, yet not pulled"
