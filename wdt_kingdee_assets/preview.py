"""A day's preview: the bills a run would write now, against what Kingdee holds. Writes nothing.

It reads WDT and Kingdee exactly as a run does (``day.py``: the same pull, the same bills) and
then only reads: the day's bills of the flow's form, stock orgs and bill type, the bills numbered
as ours wherever they are dated, and — for a bill of ours whose document left the day — what WDT
says of that document now (cancelled, moved to another day …). The same comparison is the drift
report of a synced day (``drift.py``). No Save, Submit, Audit or Delete is ever sent from here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import pandas as pd

from wdt_kingdee_assets.bills import wire_model
from wdt_kingdee_assets.day import bill_scope, build_day_bills, pull_day
from wdt_kingdee_assets.drift import (
    DRIFT,
    Change,
    Comparison,
    Verdict,
    compare_day,
    kingdee_bills,
    why_gone,
)
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.kingdee.client import KingdeeClient
from wdt_kingdee_assets.mapping import MappingConfig
from wdt_kingdee_assets.normalize import normalize_orders
from wdt_kingdee_assets.storage import PartitionedJsonlIOManager
from wdt_kingdee_assets.wdt.client import DocumentQuery, WdtClient
from wdt_kingdee_assets.wdt.errors import WdtBusinessError

BATCH_SIZE = 20  # the write step's default: the payloads are cut as a run would send them


@dataclass
class DayPreview:
    flow: Flow
    day: str
    bills: pd.DataFrame  # the day's bills as a run would build them now
    comparisons: list[Comparison]
    payloads: list[dict[str, Any]]  # the BatchSave bodies a run would send, in order
    # The mapping's WDT warehouses this appkey may not see, with WDT's words (see hidden_warehouses)
    hidden: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counted = Counter(str(item.verdict) for item in self.comparisons)
        return {str(verdict): counted.get(str(verdict), 0) for verdict in Verdict}

    @property
    def drift(self) -> list[Comparison]:
        return [item for item in self.comparisons if item.verdict in DRIFT]

    def frame(self) -> pd.DataFrame:
        """The comparison, one row per bill (the flow's ``drift_schema``)."""
        return self.flow.drift_schema.frame(item.row() for item in self.comparisons)


def preview_day(
    flow: Flow,
    mapping: MappingConfig,
    wdt: WdtClient,
    kingdee: KingdeeClient,
    default_org: str,
    day: str,
    *,
    io_manager: PartitionedJsonlIOManager | None = None,
    batch_size: int = BATCH_SIZE,
) -> DayPreview:
    """The day's bills, each judged against Kingdee; ``io_manager`` holds the day's stored bills
    when merged bills must keep their batches (None: as if the day had never been built)."""
    form = flow.form
    pulled = pull_day(flow, wdt, day)
    lines = normalize_orders(pulled.orders(), flow)
    bills = build_day_bills(flow, mapping, kingdee, lines, default_org, day, io_manager).bills
    scope = bill_scope(flow, mapping, default_org, day)
    numbers = [number for number in bills["bill_no"] if isinstance(number, str)]
    records = kingdee.find_bills(
        form,
        numbers,
        orgs=scope.orgs,
        reference_field=scope.reference_field,
        day=scope.day,
        bill_type=scope.bill_type,
    )
    entries = (
        kingdee.bill_entries(
            form, [record.fid for record in records], reference_field=scope.reference_field
        )
        if records
        else []
    )
    comparisons = compare_day(bills, kingdee_bills(entries), form)
    on_day = date.fromisoformat(day)
    for item in comparisons:
        if item.verdict != Verdict.ONLY_IN_KINGDEE:
            continue
        if "/" in (item.source_ref or ""):
            # A merged bill (day/warehouse/part) stands for no single document to ask about.
            item.changes = [Change.LEFT_DAY]
            item.note = "合并单据的来源单据已不在当天 / its documents are no longer in the day"
            continue
        change, note = why_gone(
            wdt.by_number(flow.source.method, item.source_ref), on_day, flow.source
        )
        item.changes, item.note = [change], note
    models = [wire_model(item.model, form) for item in comparisons if item.verdict == Verdict.NEW]
    payloads = [
        KingdeeClient.batch_save_payload(form.form_id, models[start : start + batch_size])
        for start in range(0, len(models), batch_size)
    ]
    hidden = hidden_warehouses(wdt, pulled.query, mapping)
    return DayPreview(flow, day, bills, comparisons, payloads, hidden)


def hidden_warehouses(
    wdt: WdtClient, query: DocumentQuery, mapping: MappingConfig
) -> dict[str, str]:
    """The WDT warehouses the mapping names that this appkey may not see → WDT's refusal.

    WDT answers only the documents of the warehouses an appkey has been granted (权限校验), and
    its total_count leaves the others out too: a sync is complete for what it can see, and a
    warehouse it cannot see is never synced, with no error. Asked by ``warehouse_no``, WDT says
    so (无仓库访问权限). One one-row query per named warehouse; a warehouse the mapping does not
    name (mapped by identity) cannot be asked about."""
    named = sorted({*mapping.warehouses, *mapping.warehouse_names.values()})
    hidden: dict[str, str] = {}
    for warehouse in named:
        try:
            wdt.count(replace(query, warehouse_no=warehouse))
        except WdtBusinessError as exc:
            if "无仓库访问权限" not in (exc.server_message or str(exc)):
                raise
            hidden[warehouse] = exc.server_message or str(exc)
    return hidden


def preview_lines(preview: DayPreview) -> list[str]:
    """One line per bill, then the counts: what ``wdt-kingdee preview`` prints."""
    printed = []
    for item in preview.comparisons:
        held = item.kingdee
        name = item.bill_no or (held.number if held else "")
        where = f" → Kingdee {held.number} (FID {held.fid}, {held.document_status})" if held else ""
        line = f"{item.verdict:<16} {name}{where}"
        if item.changes:
            line += "  [" + ", ".join(item.changes) + "]"
        if item.differences:
            line += "  " + "; ".join(_difference_text(diff) for diff in item.differences)
        if item.note:
            line += f"  — {item.note}"
        printed.append(line)
    for warehouse, refusal in preview.hidden.items():
        printed.append(
            f"WARNING WDT warehouse {warehouse}: {refusal} — this appkey does not see its "
            "documents, so none of them is ever synced; grant the app the warehouse in WDT"
        )
    counts = preview.counts()
    printed.append(
        f"{preview.flow.name} {preview.day}: "
        + ", ".join(f"{verdict} {count}" for verdict, count in counts.items())
    )
    return printed


def _difference_text(diff: dict[str, Any]) -> str:
    if diff["field"] == "FQty":
        lot = f" lot {diff['lot']}" if diff.get("lot") else ""
        return (
            f"{diff['material']}{lot} @{diff['stock']}: WDT {diff['wdt'] or '—'}, "
            f"Kingdee {diff['kingdee'] or '—'}"
        )
    return f"{diff['field']}: WDT {diff['wdt']}, Kingdee {diff['kingdee']}"
