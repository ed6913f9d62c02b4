"""One Beijing day of a flow as a run reads and builds it: the day's pull from WDT, and the day's
bills from its lines and Kingdee's master data.

The flow's assets and the preview (``preview.py``) both go through these functions, so a preview
builds exactly the bills a run would write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from wdt_kingdee_assets.beijing import DayWindow, day_window
from wdt_kingdee_assets.bills import build_bills, spec_nos_by_org
from wdt_kingdee_assets.catalog import look_up
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.grouping import batch_of
from wdt_kingdee_assets.kingdee.client import KingdeeClient
from wdt_kingdee_assets.locator import BillScope
from wdt_kingdee_assets.mapping import MappingConfig
from wdt_kingdee_assets.normalize import document_id, parse_wdt_datetime
from wdt_kingdee_assets.reference import parse_reference
from wdt_kingdee_assets.source import Source
from wdt_kingdee_assets.storage import PartitionedJsonlIOManager
from wdt_kingdee_assets.wdt.client import DocumentQuery, WdtClient
from wdt_kingdee_assets.wdt.pull import PullResult, pull_documents
from wdt_kingdee_assets.wdt.spool import OrderSpool, SpooledOrder


@dataclass(frozen=True)
class PulledDay:
    """The documents whose time falls on the day (``kept``, in the pull's order), as WDT sent
    them, and how they were pulled."""

    window: DayWindow
    query: DocumentQuery
    pulled: PullResult
    kept: list[SpooledOrder]

    def orders(self) -> Iterator[dict[str, Any]]:
        """The kept documents, read back one at a time."""
        return (self.pulled.spool.get(entry) for entry in self.kept)


def pull_day(
    flow: Flow,
    client: WdtClient,
    day: str,
    *,
    status: str | None = None,
    warehouse_no: str | None = None,
    max_passes: int = 3,
    on_step_down: Callable[[str], None] | None = None,
) -> PulledDay:
    """The day's documents, complete (``IncompletePullError`` otherwise). An order whose time
    cannot be read stays: WDT put it in this window, and the normalizer rejects its lines with
    the reason, so it is reported, not lost."""
    source = flow.source
    window = day_window(day)
    query = DocumentQuery(
        method=source.method,
        start_time=window.query_start,
        end_time=window.query_end,
        time_type=source.time_type,
        status=source.status if status is None else status or None,
        warehouse_no=warehouse_no or None,
    )
    pulled = pull_documents(client, query, max_passes=max_passes, on_step_down=on_step_down)
    kept = [
        entry
        for entry in pulled.entries
        if (moment := parse_wdt_datetime(entry.time)) is None or window.contains(moment)
    ]
    return PulledDay(window, query, pulled, kept)


def raw_rows(
    source: Source, entries: Iterable[SpooledOrder], spool: OrderSpool
) -> Iterator[dict[str, Any]]:
    """The raw day's rows, each order's text copied from the pull's spool, one at a time."""
    for entry in entries:
        yield {
            # kept even when WDT's id is not an integer: the normalizer rejects it with the
            # reason; an answer without ids gets the one derived from the number
            source.key: document_id(
                {source.key: entry.ident, source.number: entry.number}, source.key, source.number
            ),
            source.number: entry.number,
            source.time_field: entry.time,
            "order": spool.text(entry),
        }


def bill_scope(flow: Flow, mapping: MappingConfig, default_org: str, day: str) -> BillScope:
    """Where a flow's bills of a day live in Kingdee: form, date, stock orgs, bill type, and the
    field that carries the source reference."""
    return BillScope(
        form=flow.form,
        day=date.fromisoformat(day),
        orgs=mapping.stock_orgs(default_org),
        bill_type=mapping.bill_type,
        reference_field=mapping.reference_field,
    )


@dataclass(frozen=True)
class BuiltDay:
    bills: pd.DataFrame  # the flow's bills schema
    looked_up: dict[str, list[str]]  # stock org → the spec_nos asked for there


def build_day_bills(
    flow: Flow,
    mapping: MappingConfig,
    client: KingdeeClient,
    lines: pd.DataFrame,
    default_org: str,
    day: str,
    io_manager: PartitionedJsonlIOManager | None,
) -> BuiltDay:
    """The day's bills from its normalized lines: materials looked up in each bill's stock org,
    then built by the mapping. Merged bills keep the batches of the day's stored bills
    (``io_manager``; None = none stored) and leave alone the documents Kingdee holds a bill of
    their own for."""
    wanted = spec_nos_by_org(lines, mapping, default_org)
    master = look_up(client, wanted, mapping.materials)
    earlier, own = None, frozenset()
    if mapping.strategy == "per_day_warehouse":
        earlier = earlier_batches(flow, io_manager, day) if io_manager is not None else {}
        own = documents_with_own_bills(client, bill_scope(flow, mapping, default_org, day))
    built = build_bills(
        lines,
        master.materials,
        mapping,
        default_org,
        flow.source,
        flow.bills_schema,
        earlier,
        own,
        units=master.units,
    )
    return BuiltDay(built, wanted)


def earlier_batches(
    flow: Flow, io_manager: PartitionedJsonlIOManager, partition_key: str
) -> dict[str, int]:
    """Merged bills: the batch each document was built into by the day's previous build.

    The day's stored bills are the ledger: a document keeps its batch, so a bill Kingdee may
    already hold is rebuilt exactly, and a document ready only now goes to a supplement. (Lose
    the data dir and the ledger with it: the rebuilt bills then differ from Kingdee's and the
    read-back check fails naming them, rather than anything being written twice.)
    """
    path = io_manager.path_for("/".join(flow.asset_path(flow.bills_name)), partition_key)
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as stream:
        previous = flow.bills_schema.read_jsonl(stream)
    merged = previous[previous["lineage"].notna() & previous["source_ref"].notna()]
    return {
        document: batch_of(source_ref.rsplit("/", 1)[-1])
        for source_ref, sources in zip(merged["source_ref"], merged["sources"], strict=True)
        for document in sources or []
    }


def documents_with_own_bills(client: KingdeeClient, scope: BillScope) -> frozenset[str]:
    """Merged bills: the documents Kingdee already holds a bill of their own for on this day
    (written one per document before the mapping switched to merged bills). They keep that bill
    instead of being merged again, so a switch of strategy never writes a document twice."""
    records = client.find_bills(
        scope.form,
        [],
        orgs=scope.orgs,
        reference_field=scope.reference_field,
        day=scope.day,
        bill_type=scope.bill_type,
    )
    references = (parse_reference(record.reference) for record in records)
    return frozenset(ref for ref in references if ref and "/" not in ref)
