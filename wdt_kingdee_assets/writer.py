"""Idempotent writes of 其他出库单 to Kingdee: ask first, send in batches, reconcile the unknown.

Kingdee's BatchSave is not idempotent (reference §7), so Kingdee itself is the record of what was
written: every run starts by asking which FBillNo already exist, and any call that ends without a
usable answer (timeout, 5xx, reset, session lost) is followed by the same question before a bill
is sent again. A crash between batches therefore costs nothing: the next run finds what the
previous one committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from wdt_kingdee_assets.frames import WRITE_RESULTS
from wdt_kingdee_assets.kingdee.client import KingdeeClient
from wdt_kingdee_assets.kingdee.errors import KingdeeError, KingdeeUnknownOutcome
from wdt_kingdee_assets.mapping import wire_model

CREATED = "created"
ALREADY = "already_in_kingdee"
FAILED = "failed"
HELD = "held"
MAX_IN_FLIGHT = 5


@dataclass(frozen=True)
class BillToWrite:
    bill_no: str | None  # None only for a held bill whose stock-out has no number
    stockout_id: int
    ready: bool
    model: Mapping[str, Any] | None
    hold_reason: str | None = None


@dataclass
class BillOutcome:
    bill_no: str | None
    stockout_id: int
    outcome: str
    fid: int | None = None
    messages: list[str] = field(default_factory=list)
    attempts: int = 0


@dataclass
class WriteSummary:
    outcomes: list[BillOutcome]
    batch_calls: int = 0
    reconciliations: int = 0

    def count(self, outcome: str) -> int:
        return sum(1 for item in self.outcomes if item.outcome == outcome)


def bills_to_write(bills: pd.DataFrame) -> list[BillToWrite]:
    """The writer's view of a ``kingdee_bills`` frame."""
    return [
        BillToWrite(
            bill_no=row.bill_no,
            stockout_id=int(row.stockout_id),
            ready=row.readiness == "ready",
            model=row.model,
            hold_reason=row.hold_reason,
        )
        for row in bills.itertuples(index=False)
    ]


def results_frame(summary: WriteSummary, settled_at: datetime) -> pd.DataFrame:
    """The ``kingdee_write_results`` frame: one row per bill, as the writer settled it."""
    return WRITE_RESULTS.frame(
        {
            "bill_no": item.bill_no,
            "stockout_id": item.stockout_id,
            "outcome": item.outcome,
            "fid": item.fid,
            "messages": item.messages,
            "attempts": item.attempts,
            "written_at": settled_at,
        }
        for item in summary.outcomes
    )


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class BillWriter:
    """Writes one partition's bills; ``max_sends`` bounds how often one bill may be sent.

    ``max_in_flight`` BatchSave calls may run at once (default 1). Kingdee queues WebAPI calls
    and advises at most 5 server threads (BatchCount ≤ 5), so the bound is 5; the
    ``kingdee_api`` pool still keeps other runs' Kingdee steps out while these are in flight.
    Batches never share a bill, so they settle independently.
    """

    def __init__(
        self,
        client: KingdeeClient,
        form_id: str,
        *,
        batch_size: int = 20,
        max_sends: int = 3,
        log: logging.Logger | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        max_in_flight: int = 1,
    ) -> None:
        if not 1 <= batch_size <= 200:
            raise ValueError(f"batch_size must be between 1 and 200, got {batch_size}")
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            raise ValueError(
                f"max_in_flight must be between 1 and {MAX_IN_FLIGHT}, got {max_in_flight}"
            )
        self.max_in_flight = max_in_flight
        self._counters = threading.Lock()
        self.client = client
        self.form_id = form_id
        self.batch_size = batch_size
        self.max_sends = max_sends
        self.log = log or logging.getLogger(__name__)
        self.on_batch = on_batch

    def write(self, bills: Sequence[BillToWrite]) -> WriteSummary:
        summary = WriteSummary(outcomes=[])
        existing = self.client.find_bills(
            self.form_id, [bill.bill_no for bill in bills if bill.bill_no]
        )
        outcomes: dict[str, BillOutcome] = {}
        pending: list[BillToWrite] = []
        for bill in bills:
            outcome = BillOutcome(bill.bill_no, bill.stockout_id, FAILED)
            fids = existing.get(bill.bill_no) if bill.bill_no else None
            if fids:
                # A held bill that is already in Kingdee (written earlier, or by hand) is reported
                # as there: holding it again would hide what Kingdee holds.
                outcome.outcome, outcome.fid = ALREADY, min(fids)
            elif not bill.ready:
                outcome.outcome = HELD
                outcome.messages.append(bill.hold_reason or "held")
            elif bill.bill_no in outcomes:
                outcome.messages.append(f"FBillNo {bill.bill_no} is used by two bills of this day")
            else:
                pending.append(bill)
            summary.outcomes.append(outcome)
            if bill.bill_no and bill.bill_no not in outcomes:
                outcomes[bill.bill_no] = outcome

        batches = list(_chunks(pending, self.batch_size))
        with ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="batch-save") as pool:
            futures = [
                pool.submit(self._write_batch, batch, outcomes, summary) for batch in batches
            ]
            for number, future in enumerate(as_completed(futures), start=1):
                future.result()
                if self.on_batch:
                    self.on_batch(number, len(batches))
        return summary

    def _write_batch(
        self, batch: Sequence[BillToWrite], outcomes: dict[str, BillOutcome], summary: WriteSummary
    ) -> None:
        to_send = list(batch)
        while to_send:
            for bill in to_send:
                outcomes[bill.bill_no].attempts += 1
            with self._counters:
                summary.batch_calls += 1
            try:
                result = self.client.batch_save(
                    self.form_id, [wire_model(bill.model) for bill in to_send]
                )
            except KingdeeUnknownOutcome as exc:
                self.log.warning(
                    "BatchSave of %d bill(s) got no usable answer (%s); asking Kingdee which were saved",
                    len(to_send),
                    exc,
                )
                for bill in to_send:
                    outcomes[bill.bill_no].messages.append(f"BatchSave without answer: {exc}")
                to_send = self._settle(to_send, [], outcomes, summary)
                continue
            for saved in result.saved:
                outcome = outcomes[to_send[saved.dindex].bill_no]
                outcome.outcome, outcome.fid = CREATED, saved.fid
            rejected = []
            for dindex, messages in sorted(result.errors.items()):
                outcomes[to_send[dindex].bill_no].messages.extend(messages)
                rejected.append(to_send[dindex])
            answered = {saved.dindex for saved in result.saved} | set(result.errors)
            unanswered = [bill for index, bill in enumerate(to_send) if index not in answered]
            for bill in unanswered:
                outcomes[bill.bill_no].messages.append("BatchSave answer did not mention this bill")
            to_send = self._settle(unanswered, rejected, outcomes, summary)

    def _settle(
        self,
        unknown: Sequence[BillToWrite],
        rejected: Sequence[BillToWrite],
        outcomes: dict[str, BillOutcome],
        summary: WriteSummary,
    ) -> list[BillToWrite]:
        """Ask Kingdee about bills whose fate is unclear; return those to send again.

        An unanswered bill that Kingdee holds was created by us; one it lacks is sent again while
        sends remain. A rejected bill that Kingdee nevertheless holds (a duplicate FBillNo: it was
        written by another run or by hand) is reported as already there, never sent again.
        """
        if not unknown and not rejected:
            return []
        with self._counters:
            summary.reconciliations += 1
        bills = [*unknown, *rejected]
        try:
            found = self.client.find_bills(self.form_id, [bill.bill_no for bill in bills])
        except KingdeeError as exc:
            for bill in bills:
                outcomes[bill.bill_no].messages.append(f"could not confirm in Kingdee: {exc}")
            return []
        for bill in rejected:
            if found.get(bill.bill_no):
                outcome = outcomes[bill.bill_no]
                outcome.outcome, outcome.fid = ALREADY, min(found[bill.bill_no])
        resend = []
        for bill in unknown:
            outcome = outcomes[bill.bill_no]
            if found.get(bill.bill_no):
                outcome.outcome, outcome.fid = CREATED, min(found[bill.bill_no])
            elif outcome.attempts < self.max_sends:
                resend.append(bill)
            else:
                outcome.messages.append(
                    f"not in Kingdee after {outcome.attempts} BatchSave attempt(s) without answer"
                )
        return resend
