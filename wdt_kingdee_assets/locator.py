"""Which Kingdee bills stand for a day's bills: found by the reference they carry, and by FBillNo.

The writer asks this before it sends anything and after every call without a usable answer; the
duplicate check asks it too, so "written once" is judged per source, not per number. Kingdee's
coding rule may have replaced our FBillNo (real-servers-vs-ours #1), so the day's bills of the form
(date, stock orgs, bill type) are read with their reference field and matched by the source ref
each carries (``reference.py``), together with the bills numbered as ours (which also finds a
bill keyed by hand with our number but no reference, or dated another day).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from wdt_kingdee_assets.kingdee.client import BillRecord, KingdeeClient
from wdt_kingdee_assets.kingdee.forms import KingdeeForm
from wdt_kingdee_assets.reference import parse_reference


class Locatable(Protocol):
    """What a bill needs to be found: the number we send and what it stands for."""

    @property
    def bill_no(self) -> str | None: ...

    @property
    def source_ref(self) -> str | None: ...


@dataclass(frozen=True)
class BillScope:
    """Where one day's bills of a form live in Kingdee: what every look-up is narrowed to."""

    form: KingdeeForm
    day: date
    orgs: tuple[str, ...]  # the flow's stock orgs (FStockOrgId): a bill of another is not ours
    bill_type: str  # FBillTypeID
    reference_field: str  # the header field carrying the source reference (FNote, F_…)


def match_records(
    bills: Iterable[Locatable], records: Iterable[BillRecord]
) -> dict[str, list[BillRecord]]:
    """Our FBillNo → the Kingdee bills that stand for it, in FID order.

    A record carrying a reference belongs to the bill with that source ref, whatever its number;
    one without a reference (keyed by hand) belongs to the bill whose number it has, compared
    case-insensitively as Kingdee's collation does.
    """
    bills = [bill for bill in bills if bill.bill_no]
    by_ref = {bill.source_ref: bill.bill_no for bill in bills if bill.source_ref}
    by_number = {bill.bill_no.casefold(): bill.bill_no for bill in bills}
    found: dict[str, dict[int, BillRecord]] = {}
    for record in records:
        ref = parse_reference(record.reference)
        owner = by_ref.get(ref) if ref is not None else by_number.get(record.number.casefold())
        if owner is not None:
            found.setdefault(owner, {})[record.fid] = record
    return {bill_no: [held[fid] for fid in sorted(held)] for bill_no, held in found.items()}


class BillLocator:
    """Finds the Kingdee bills of a scope that stand for given bills."""

    def __init__(self, client: KingdeeClient, scope: BillScope) -> None:
        self.client = client
        self.scope = scope

    def locate(self, bills: Sequence[Locatable]) -> dict[str, list[BillRecord]]:
        """Our FBillNo → its bills in Kingdee (several = a duplicate); absent when none."""
        scope = self.scope
        numbers = [bill.bill_no for bill in bills if bill.bill_no]
        if not numbers:
            return {}
        records = self.client.find_bills(
            scope.form,
            numbers,
            orgs=scope.orgs,
            reference_field=scope.reference_field,
            day=scope.day,
            bill_type=scope.bill_type,
        )
        return match_records(bills, records)


def first_of(found: Mapping[str, list[BillRecord]], bill_no: str | None) -> BillRecord | None:
    """The earliest Kingdee bill (lowest FID) standing for ``bill_no``, if any."""
    records = found.get(bill_no) if bill_no else None
    return records[0] if records else None
