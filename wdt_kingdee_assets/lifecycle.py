"""Bills that take effect: submit and audit the day's saved bills in Kingdee, gated and reconciled.

A saved bill is in status A (创建); stock moves only when it is audited (C). After the write,
for ``after_save: audit`` (the default) or ``submit``:

1. **Ask first.** Each bill's ``FDocumentStatus`` is read by FID. Only A or D (重新审核) is
   submitted, only B (审核中) audited; a bill already C is left alone — so the re-run of a settled
   day calls neither Submit nor Audit.
2. **Gate.** A bill is acted on only when Kingdee's read-back of it equals what was sent, per
   material; one that differs stays as it is and is reported (``not_gated``).
3. **Per bill, in batches.** FIDs go ``batch_size`` to a call (a number may be ambiguous across
   stock orgs); Kingdee answers per bill (by DIndex), so one refusal (库存不足, 关账, an
   unaudited material …) touches only its bill, with Kingdee's words, classified permanent or
   transient as the save's refusals are.
4. **Reconciled.** A call that ends without a usable answer (timeout, 5xx after commit) is never
   sent again in the run: the statuses are read again and each bill is judged by what Kingdee
   holds now.

No Dagster here: the flow's write step drives it (see ``assets.py``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from wdt_kingdee_assets.kingdee.client import BatchSaveResult, KingdeeClient
from wdt_kingdee_assets.kingdee.errors import KingdeeError, KingdeeUnknownOutcome
from wdt_kingdee_assets.locator import BillScope
from wdt_kingdee_assets.outcomes import Failure
from wdt_kingdee_assets.writer import classify_refusal

AfterSave = Literal["audit", "submit", "none"]


class Settled(StrEnum):
    """Where the lifecycle left a bill Kingdee holds."""

    AUDITED = "audited"  # C: stock has moved
    SUBMITTED = "submitted"  # B: with after_save submit, or waiting for an approval workflow
    SAVED = "saved"  # A or D, as after_save none leaves it
    NOT_GATED = "not_gated"  # Kingdee's read-back differs from what was sent: left alone
    REFUSED_AT_SUBMIT = "refused_at_submit"
    REFUSED_AT_AUDIT = "refused_at_audit"  # "saved, not audited"
    UNCONFIRMED = "unconfirmed"  # no usable answer, and the status read after it says not yet


# Bills in Kingdee that did not take effect as after_save asked: open, like held and failed ones.
NOT_IN_EFFECT = (
    Settled.NOT_GATED,
    Settled.REFUSED_AT_SUBMIT,
    Settled.REFUSED_AT_AUDIT,
    Settled.UNCONFIRMED,
)


@dataclass(frozen=True)
class BillInKingdee:
    """A bill the write left in Kingdee, and what was sent for it."""

    bill_no: str  # the number we sent (the write results' key)
    fid: int
    model: Mapping[str, Any] | None  # what was sent; None when it was there before this run


@dataclass
class SettledBill:
    bill_no: str
    fid: int
    kingdee_bill_no: str | None = None
    status: str = ""  # FDocumentStatus as last read
    settled: str = Settled.SAVED
    failure: str | None = None
    blockers: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


class Lifecycle:
    """Submits and audits one day's bills of one form (``scope``) as ``after_save`` says."""

    def __init__(
        self,
        client: KingdeeClient,
        scope: BillScope,
        after_save: AfterSave,
        *,
        batch_size: int = 20,
        log: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> None:
        self.client = client
        self.scope = scope
        self.after_save = after_save
        self.batch_size = batch_size
        self.log = log or logging.getLogger(__name__)
        self.calls: dict[str, int] = defaultdict(int)  # Submit / Audit calls made

    def settle(self, bills: Sequence[BillInKingdee]) -> list[SettledBill]:
        settled = {bill.fid: SettledBill(bill.bill_no, bill.fid) for bill in bills}
        self._read_statuses(settled)
        if self.after_save == "none":
            return self._finish(settled)
        self._gate(bills, settled)
        self._step("Submit", {"A", "D"}, settled)
        if self.after_save == "audit":
            self._step("Audit", {"B"}, settled)
        return self._finish(settled)

    # -- the steps ------------------------------------------------------------------------

    def _read_statuses(self, settled: Mapping[int, SettledBill]) -> None:
        for record in self.client.bill_statuses(self.scope.form, list(settled)):
            bill = settled[record.fid]
            bill.kingdee_bill_no, bill.status = record.number, record.document_status

    def _gate(self, bills: Sequence[BillInKingdee], settled: Mapping[int, SettledBill]) -> None:
        """Leave alone every bill whose entries in Kingdee differ from what was sent."""
        form = self.scope.form
        lines = {
            bill.fid: bill.model[form.entry]
            for bill in bills
            if bill.model is not None and settled[bill.fid].status in ("A", "D", "B")
        }
        if not lines:
            return
        sent = {
            fid: _totals(
                (entry[form.material]["FNumber"], entry[form.quantity]) for entry in entries
            )
            for fid, entries in lines.items()
        }
        read: dict[int, list[tuple[str, Any]]] = defaultdict(list)
        # Packed by the entries sent, so that each IN-list's lines fit one page.
        counts = {fid: len(entries) for fid, entries in lines.items()}
        for entry in self.client.bill_entries(form, list(sent), counts):
            read[entry.fid].append((entry.material_number, entry.qty))
        for fid, expected in sent.items():
            actual = _totals(read[fid])
            if actual != expected:
                bill = settled[fid]
                bill.settled, bill.failure = Settled.NOT_GATED, Failure.PERMANENT
                bill.messages.append(
                    f"Kingdee's read-back differs from the bill sent: {_diff(expected, actual)}"
                )

    def _step(
        self, operation: str, from_states: set[str], settled: Mapping[int, SettledBill]
    ) -> None:
        due = [
            bill
            for bill in settled.values()
            if bill.status in from_states and bill.settled != Settled.NOT_GATED
        ]
        verb = self.client.submit if operation == "Submit" else self.client.audit
        refused = Settled.REFUSED_AT_SUBMIT if operation == "Submit" else Settled.REFUSED_AT_AUDIT
        batches = [
            due[start : start + self.batch_size] for start in range(0, len(due), self.batch_size)
        ]
        if not batches:
            return
        self.calls[operation] += len(batches)

        def settle(batch: list[SettledBill]) -> None:
            try:
                result = verb(self.scope.form.form_id, fids=[bill.fid for bill in batch])
            except KingdeeUnknownOutcome as exc:
                self.log.warning(
                    "%s of %d bill(s) got no usable answer (%s); reading their status",
                    operation,
                    len(batch),
                    exc,
                )
                self._reconcile(batch)
                return
            self._apply(result, batch, refused)

        # As many calls in flight as the data center lends (the client's thread budget); the
        # batches share no bill, so each settles on its own.
        with ThreadPoolExecutor(self.client.threads.size, thread_name_prefix=operation) as pool:
            for done in [pool.submit(settle, batch) for batch in batches]:
                done.result()

    def _apply(self, result: BatchSaveResult, batch: Sequence[SettledBill], refused: str) -> None:
        moved = {saved.dindex for saved in result.saved}
        for dindex, bill in enumerate(batch):
            if dindex in moved:
                bill.status = "B" if refused == Settled.REFUSED_AT_SUBMIT else "C"
                continue
            messages = (
                result.errors.get(dindex) or result.call_errors or ["no answer for this bill"]
            )
            bill.settled = refused
            bill.failure, bill.blockers = classify_refusal([], messages)
            bill.messages.extend(messages)

    def _reconcile(self, batch: Sequence[SettledBill]) -> None:
        """After a call without a usable answer: what Kingdee holds now decides, nothing resent."""
        try:
            self._read_statuses({bill.fid: bill for bill in batch})
        except KingdeeError as exc:
            for bill in batch:
                bill.settled, bill.failure = Settled.UNCONFIRMED, Failure.TRANSIENT
                bill.messages.append(f"could not read its status: {exc}")

    def _finish(self, settled: Mapping[int, SettledBill]) -> list[SettledBill]:
        """Each bill not refused nor left alone is judged by the status Kingdee reports last."""
        target = {"none": None, "submit": "B", "audit": "C"}[self.after_save]
        for bill in settled.values():
            if bill.settled != Settled.SAVED:
                continue  # not gated, or refused: judged with Kingdee's words already
            if bill.status == "C":
                bill.settled = Settled.AUDITED
            elif bill.status == "B" and target != "C":
                bill.settled = Settled.SUBMITTED
            elif target is not None:
                # Only a call without an answer leaves a bill short of its target unrefused.
                bill.settled, bill.failure = Settled.UNCONFIRMED, Failure.TRANSIENT
                bill.messages.append(
                    f"still in status {bill.status or '(not found)'} after a call without an "
                    "answer; the next run reads it again before acting"
                )
        return list(settled.values())


def _totals(pairs: Iterable[tuple[str, Any]]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for material, quantity in pairs:
        totals[material] += Decimal(str(quantity))
    return dict(totals)


def _diff(expected: Mapping[str, Decimal], actual: Mapping[str, Decimal]) -> str:
    return ", ".join(
        f"{material}: sent {expected.get(material, 0)}, Kingdee {actual.get(material, 0)}"
        for material in sorted(set(expected) | set(actual))
        if expected.get(material, Decimal(0)) != actual.get(material, Decimal(0))
    )
