"""Idempotent writes of 其他出库单 to Kingdee: find first, send in batches, reconcile the unknown.

Kingdee's BatchSave is not idempotent (reference §7), so Kingdee itself is the record of what was
written: every run starts by asking which of its bills Kingdee already holds (``locator.py``: by
the source reference each bill carries, and by FBillNo), and any call that ends without a usable
answer (timeout, 5xx, reset, session lost) is followed by the same question before a bill is sent
again. A crash between batches therefore costs nothing: the next run finds what the previous one
committed, whatever number Kingdee's coding rule gave it.

Every bill that does not reach Kingdee says why and whether a retry can help: ``permanent``
(Kingdee refused its content, or it is held by the mapping; ``blockers`` names the materials it
hinges on, if any) or ``transient`` (no usable answer, a call-level failure that may pass).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from wdt_kingdee_assets.bills import wire_model
from wdt_kingdee_assets.blockers import blocker_key
from wdt_kingdee_assets.kingdee.client import MAX_THREADS, BatchSaveResult, KingdeeClient
from wdt_kingdee_assets.kingdee.errors import KingdeeError, KingdeeUnknownOutcome
from wdt_kingdee_assets.locator import BillLocator, BillScope, first_of
from wdt_kingdee_assets.outcomes import Failure, Outcome, Readiness

if TYPE_CHECKING:
    from wdt_kingdee_assets.flow import Flow

# Call-level refusals about the account itself (没有权限, 许可错误, 禁止管理员登录): every further
# batch would be refused the same way, so the write stops sending until someone fixes the user.
ACCOUNT_REFUSALS = frozenset({2, 7, 15})
# Call-level failures that may pass by themselves (异常, 数据库操作失败, 不可操作) [G: the MsgCode
# table names them, not their causes]; any other call-level code is taken as permanent.
TRANSIENT_CALL_CODES = frozenset({4, 6, 12})
# A per-bill refusal is about the bill's content, which a retry sends unchanged; these phrases
# mark the few that are about the moment instead (network control, lock, timeout) [G].
TRANSIENT_MARKERS = ("网络控制", "网控", "死锁", "deadlock", "超时", "timeout", "繁忙")
# An audit refused for want of stock clears once stock arrives: worth retrying, unlike most.
STOCK_MARKERS = ("库存不足", "即时库存", "负库存")


@dataclass(frozen=True)
class BillToWrite:
    bill_no: str | None  # None only for a held bill whose document has no number
    source_ref: str | None
    source_id: int | None  # the WDT document's id (stockout_id …); None for a merged bill
    ready: bool
    model: Mapping[str, Any] | None
    hold_reason: str | None = None
    # Each material (``blockers.py`` key: number, or number@org) holding it → its state.
    missing_states: Mapping[str, str] = field(default_factory=dict)
    materials: tuple[str, ...] = ()  # the material numbers on its entries, in order, once each
    stock_org: str | None = None  # its FStockOrgId: where the materials a refusal names live


@dataclass
class BillOutcome:
    bill_no: str | None
    source_ref: str | None
    source_id: int | None
    outcome: str
    fid: int | None = None
    kingdee_bill_no: str | None = None
    failure: str | None = None
    blockers: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    attempts: int = 0

    def settle(self, outcome: str, fid: int, kingdee_bill_no: str) -> None:
        """The bill is in Kingdee as ``fid`` / ``kingdee_bill_no``."""
        self.outcome, self.fid, self.kingdee_bill_no = outcome, fid, kingdee_bill_no
        self.failure, self.blockers = None, []

    def fail(self, failure: str, message: str, blockers: Iterable[str] = ()) -> None:
        self.outcome, self.failure = Outcome.FAILED, failure
        self.blockers = list(blockers)
        self.messages.append(message)


@dataclass
class WriteSummary:
    outcomes: list[BillOutcome]
    batch_calls: int = 0
    reconciliations: int = 0
    call_failures: int = 0

    def count(self, outcome: str) -> int:
        return sum(1 for item in self.outcomes if item.outcome == outcome)

    def failed(self, failure: str) -> int:
        """Failed bills of one kind (``permanent`` or ``transient``)."""
        return sum(
            1
            for item in self.outcomes
            if item.outcome == Outcome.FAILED and item.failure == failure
        )

    @property
    def blockers(self) -> list[str]:
        """Every material a held or permanently failed bill hinges on."""
        return sorted({material for item in self.outcomes for material in item.blockers})

    def blocker_states(self, bills: Iterable[BillToWrite]) -> dict[str, str | None]:
        """Each blocking material → what Kingdee said of it when the bills were built; None for
        one only a refusal named (the caller asks Kingdee)."""
        known = {number: state for bill in bills for number, state in bill.missing_states.items()}
        return {number: known.get(number) for number in self.blockers}


def _materials(model: Mapping[str, Any] | None, flow: Flow) -> tuple[str, ...]:
    form = flow.form
    entries = (model or {}).get(form.entry) or []
    return tuple(dict.fromkeys(entry[form.material]["FNumber"] for entry in entries))


def bills_to_write(bills: pd.DataFrame, flow: Flow) -> list[BillToWrite]:
    """The writer's view of a flow's ``kingdee_bills`` frame."""
    key = flow.source.key
    return [
        BillToWrite(
            bill_no=row.bill_no,
            source_ref=row.source_ref,
            source_id=None if pd.isna(getattr(row, key)) else int(getattr(row, key)),
            ready=row.readiness == Readiness.READY,
            model=row.model,
            hold_reason=row.hold_reason,
            missing_states=dict(row.missing_states or {}),
            materials=_materials(row.model, flow),
            stock_org=row.stock_org,
        )
        for row in bills.itertuples(index=False)
    ]


NOT_SELECTED = (
    "未选入本次重推 / not among the bills this retry was asked to send: the next sync of the day "
    "sends it"
)


def select_for_retry(bills: Sequence[BillToWrite], names: Iterable[str]) -> list[BillToWrite]:
    """The day's bills with only those ``names`` names (FBillNo or source reference, i.e. the
    WDT document's number) left ready to send. The others are still looked up and reported
    (already in Kingdee, or held as not selected); a name no bill of the day answers to is a
    ValueError that says which bills there are."""
    wanted = {name.strip() for name in names if name.strip()}
    known = {name for bill in bills for name in (bill.bill_no, bill.source_ref) if name}
    unknown = sorted(wanted - known)
    if unknown:
        there = ", ".join(sorted(bill.bill_no or bill.source_ref or "?" for bill in bills)[:20])
        raise ValueError(
            f"not a bill of this day: {', '.join(unknown)} (the day's bills: {there or 'none'})"
        )
    return [
        bill
        if not bill.ready or bill.bill_no in wanted or bill.source_ref in wanted
        else replace(bill, ready=False, hold_reason=NOT_SELECTED)
        for bill in bills
    ]


def results_frame(
    summary: WriteSummary,
    flow: Flow,
    settled_at: datetime,
    after_save: Mapping[int, Any] | None = None,
) -> pd.DataFrame:
    """The flow's ``kingdee_write_results`` frame: one row per bill, as the writer settled it and
    the lifecycle (``after_save``: FID → ``lifecycle.SettledBill``) left it."""
    rows = []
    for item in summary.outcomes:
        row = {
            "bill_no": item.bill_no,
            "source_ref": item.source_ref,
            flow.source.key: item.source_id,
            "outcome": item.outcome,
            "fid": item.fid,
            "kingdee_bill_no": item.kingdee_bill_no,
            "failure": item.failure,
            "blockers": item.blockers,
            "messages": item.messages,
            "attempts": item.attempts,
            "written_at": settled_at,
        }
        settled = (after_save or {}).get(item.fid) if item.fid is not None else None
        if settled is not None:
            row["document_status"], row["settled"] = settled.status, settled.settled
            if settled.failure:
                row["failure"], row["blockers"] = settled.failure, settled.blockers
                row["messages"] = [*item.messages, *settled.messages]
        rows.append(row)
    return flow.results_schema.frame(rows)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def classify_refusal(materials: Sequence[str], messages: Sequence[str]) -> tuple[str, list[str]]:
    """(failure, blockers) of a bill Kingdee refused with ``messages``: transient when the words
    are about the moment or about stock (it arrives), else permanent."""
    text = " ".join(messages)
    if any(marker in text for marker in (*TRANSIENT_MARKERS, *STOCK_MARKERS)):
        return Failure.TRANSIENT, []
    # Kingdee names the value it refused; a material mentioned is what the bill hinges on.
    return Failure.PERMANENT, [material for material in materials if material in text]


class BillWriter:
    """Writes one partition's bills; ``max_sends`` bounds how often one bill may be sent.

    ``max_in_flight`` BatchSave calls may run at once; by default as many as the data center
    lends the integration (the client's thread budget, ``KINGDEE_THREADS``), which every other
    Kingdee call on the machine draws from too, other runs' included. Batches never share a
    bill, so they settle independently. The first batch is sent alone, so that a refusal of the
    account as a whole stops the write before any other batch is on the wire.
    """

    def __init__(
        self,
        client: KingdeeClient,
        scope: BillScope,
        *,
        batch_size: int = 20,
        max_sends: int = 3,
        log: logging.Logger | None = None,
        on_batch: Callable[[int, int], None] | None = None,
        before_send: Callable[[], None] | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        if not 1 <= batch_size <= 200:
            raise ValueError(f"batch_size must be between 1 and 200, got {batch_size}")
        max_in_flight = max_in_flight or client.threads.size
        if not 1 <= max_in_flight <= MAX_THREADS:
            raise ValueError(
                f"max_in_flight must be between 1 and {MAX_THREADS}, got {max_in_flight}"
            )
        self.max_in_flight = max_in_flight
        self._counters = threading.Lock()
        self.client = client
        self.scope = scope
        self.locator = BillLocator(client, scope)
        self.batch_size = batch_size
        self.max_sends = max_sends
        self.log = log or logging.getLogger(__name__)
        self.on_batch = on_batch
        # Called before every BatchSave; raising stops the write (the day's lease was lost).
        self.before_send = before_send
        self._stopped: str | None = None  # why no further batch is sent

    def write(self, bills: Sequence[BillToWrite]) -> WriteSummary:
        summary = WriteSummary(outcomes=[])
        existing = self.locator.locate(bills)
        outcomes: dict[str, BillOutcome] = {}
        pending: list[BillToWrite] = []
        for bill in bills:
            outcome = BillOutcome(bill.bill_no, bill.source_ref, bill.source_id, Outcome.FAILED)
            found = first_of(existing, bill.bill_no)
            if found is not None:
                # A held bill that is already in Kingdee (written earlier, or by hand) is reported
                # as there: holding it again would hide what Kingdee holds.
                outcome.settle(Outcome.ALREADY_IN_KINGDEE, found.fid, found.number)
            elif not bill.ready:
                outcome.outcome, outcome.failure = Outcome.HELD, Failure.PERMANENT
                outcome.blockers = list(bill.missing_states)
                outcome.messages.append(bill.hold_reason or "held")
            elif bill.bill_no in outcomes:
                outcome.fail(
                    Failure.PERMANENT, f"FBillNo {bill.bill_no} is used by two bills of this day"
                )
            else:
                outcome.failure = Failure.TRANSIENT  # until Kingdee answers for it
                pending.append(bill)
            summary.outcomes.append(outcome)
            if bill.bill_no and bill.bill_no not in outcomes:
                outcomes[bill.bill_no] = outcome

        batches = list(_chunks(pending, self.batch_size))
        if not batches:
            return summary
        # The first batch goes alone: a refusal of the account itself (no permission, licence,
        # administrator login) answers the first call, and then no other batch is on the wire.
        self._write_batch(batches[0], outcomes, summary)
        self._batch_done(1, len(batches))
        with ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="batch-save") as pool:
            futures = [
                pool.submit(self._write_batch, batch, outcomes, summary) for batch in batches[1:]
            ]
            for number, future in enumerate(as_completed(futures), start=2):
                future.result()
                self._batch_done(number, len(batches))
        return summary

    def _batch_done(self, number: int, total: int) -> None:
        if self.on_batch:
            self.on_batch(number, total)

    def _write_batch(
        self, batch: Sequence[BillToWrite], outcomes: dict[str, BillOutcome], summary: WriteSummary
    ) -> None:
        to_send = list(batch)
        while to_send:
            if self._stopped:
                for bill in to_send:
                    outcomes[bill.bill_no].fail(Failure.PERMANENT, f"not sent: {self._stopped}")
                return
            if self.before_send:
                self.before_send()
            for bill in to_send:
                outcomes[bill.bill_no].attempts += 1
            with self._counters:
                summary.batch_calls += 1
            try:
                result = self.client.batch_save(
                    self.scope.form.form_id,
                    [wire_model(bill.model, self.scope.form) for bill in to_send],
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
                outcomes[to_send[saved.dindex].bill_no].settle(
                    Outcome.CREATED, saved.fid, saved.number
                )
            if result.call_failed:
                self._call_failed(to_send, result, outcomes, summary)
                return
            rejected = []
            for dindex, messages in sorted(result.errors.items()):
                outcomes[to_send[dindex].bill_no].messages.extend(messages)
                rejected.append(to_send[dindex])
            unanswered = [to_send[index] for index in result.unanswered(len(to_send))]
            for bill in unanswered:
                outcomes[bill.bill_no].messages.append("BatchSave answer did not mention this bill")
            to_send = self._settle(unanswered, rejected, outcomes, summary)

    def _call_failed(
        self,
        sent: Sequence[BillToWrite],
        result: BatchSaveResult,
        outcomes: dict[str, BillOutcome],
        summary: WriteSummary,
    ) -> None:
        """Kingdee refused the call itself: no bill is blamed, none is sent again in this run.

        Bills it saved anyway are kept; the others are asked after once (a refusal after a
        partial commit would otherwise leave them unknown) and fail with Kingdee's own message.
        """
        with self._counters:
            summary.call_failures += 1
        message = f"BatchSave refused the call (MsgCode {result.msg_code}): " + (
            "; ".join(result.call_errors) or "(no message)"
        )
        self.log.error("%s; %d bill(s) not written", message, len(sent) - len(result.saved))
        failure = (
            Failure.TRANSIENT if result.msg_code in TRANSIENT_CALL_CODES else Failure.PERMANENT
        )
        if result.msg_code in ACCOUNT_REFUSALS:
            self._stopped = message
        unsaved = [bill for bill in sent if outcomes[bill.bill_no].outcome != Outcome.CREATED]
        for bill in unsaved:
            outcomes[bill.bill_no].messages.append(message)
        found = self._locate(unsaved, outcomes, summary)
        if found is None:
            return  # failed as unconfirmed (transient): the next run asks again
        for bill in unsaved:
            outcome = outcomes[bill.bill_no]
            record = first_of(found, bill.bill_no)
            if record is not None:
                outcome.settle(Outcome.CREATED, record.fid, record.number)
            else:
                outcome.outcome, outcome.failure = Outcome.FAILED, failure

    def _locate(
        self,
        bills: Sequence[BillToWrite],
        outcomes: dict[str, BillOutcome],
        summary: WriteSummary,
    ) -> Mapping[str, list[Any]] | None:
        """What Kingdee holds for ``bills`` now; None (with a message on each) if it cannot say."""
        with self._counters:
            summary.reconciliations += 1
        try:
            return self.locator.locate(bills)
        except KingdeeError as exc:
            for bill in bills:
                outcomes[bill.bill_no].fail(
                    Failure.TRANSIENT, f"could not confirm in Kingdee: {exc}"
                )
            return None

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
        written by another run or by hand) is reported as already there, never sent again; one it
        lacks fails, permanently unless Kingdee's words say the refusal was about the moment.
        """
        if not unknown and not rejected:
            return []
        found = self._locate([*unknown, *rejected], outcomes, summary)
        if found is None:
            return []
        for bill in rejected:
            outcome = outcomes[bill.bill_no]
            record = first_of(found, bill.bill_no)
            if record is not None:
                outcome.settle(Outcome.ALREADY_IN_KINGDEE, record.fid, record.number)
            else:
                failure, blockers = classify_refusal(bill.materials, outcome.messages)
                main = self.scope.orgs[0]
                outcome.outcome, outcome.failure, outcome.blockers = (
                    Outcome.FAILED,
                    failure,
                    [blocker_key(number, bill.stock_org or main, main) for number in blockers],
                )
        resend = []
        for bill in unknown:
            outcome = outcomes[bill.bill_no]
            record = first_of(found, bill.bill_no)
            if record is not None:
                outcome.settle(Outcome.CREATED, record.fid, record.number)
            elif outcome.attempts < self.max_sends:
                resend.append(bill)
            else:
                outcome.fail(
                    Failure.TRANSIENT,
                    f"not in Kingdee after {outcome.attempts} BatchSave attempt(s) without answer",
                )
        return resend
