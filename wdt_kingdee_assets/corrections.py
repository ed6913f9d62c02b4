"""Bills corrected after WDT changed their documents (``on_drift: correct``), as a Kingdee
accountant would have it done by hand.

What is done to a bill that no longer says what its document says (``drift.py``):

- **Created or re-audit (A, D)**: changed in place — ``Save`` with its FID (entries replaced,
  ``IsDeleteEntry``), its number kept — then submitted and audited again as ``after_save`` says
  (``lifecycle.py``, gated by Kingdee's read-back). A document cancelled in WDT (or no longer
  completed): the bill is deleted.
- **Audited (C), its period open**: unaudited first (反审核: the stock movement reversed), then as
  above. One bill per document, dated its day: the books say what happened, when it happened.
- **In approval (B)**, **its period closed** (库存关账), a bill Kingdee holds **twice**, a document
  **gone from WDT** or a merged bill whose documents left the day: not touched, reported as
  ``needs_a_person`` with Kingdee's or WDT's words. A closed period is corrected by an adjustment
  in the current period, and which one (a red reversing bill, 红字冲销, or an adjustment of the
  difference) is the accountant's decision, not an integration's.
- **Moved to another day**: its old day leaves it alone; the comparison of its new day finds it
  (dated the old day) and changes its date there.

Every step is chosen from the status Kingdee reports right before it, so a run that stops halfway
(after an UnAudit, say) is finished by the next one; a call without a usable answer is never
repeated in the run — the next comparison judges by what Kingdee holds then. Nothing here runs
unless the mapping says ``on_drift: correct`` or the person running the job confirms the day.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from wdt_kingdee_assets.bills import wire_model
from wdt_kingdee_assets.drift import Change, Verdict, field_label
from wdt_kingdee_assets.kingdee.client import BatchSaveResult, KingdeeClient
from wdt_kingdee_assets.kingdee.errors import KingdeeError, KingdeeUnknownOutcome
from wdt_kingdee_assets.lifecycle import AfterSave, BillInKingdee, Lifecycle
from wdt_kingdee_assets.locator import BillScope


class Action(StrEnum):
    CHANGE = "change"  # Save with its FID
    DELETE = "delete"
    FROM_NEW_DAY = "corrected_from_its_new_day"
    PERSON = "needs_a_person"


class Result(StrEnum):
    DONE = "done"
    FAILED = "failed"  # Kingdee refused a step: its words in the messages
    UNCONFIRMED = "unconfirmed"  # a call without an answer: the next comparison judges
    LEFT = "left_alone"


OFF = "未更正: 映射为 on_drift: report / not corrected: on_drift is report (or confirm the day)"
# A document that no longer stands for goods that left: its bill goes.
GONE_FOR_GOOD = frozenset({Change.CANCELLED, Change.NOT_COMPLETED})


def plan(row: Mapping[str, Any]) -> tuple[Action, str | None]:
    """What to do with one drifted bill (a ``kingdee_vs_wdt`` row), and why not when nothing."""
    changes = set(row["changes"] or [])
    if row["verdict"] == Verdict.ONLY_IN_KINGDEE:
        if Change.MOVED in changes:
            return Action.FROM_NEW_DAY, "its new day's comparison changes its date"
        if changes & GONE_FOR_GOOD:
            return Action.DELETE, None
        return Action.PERSON, row["note"] or "its document is not in WDT's day"
    if any(diff["field"] == "FID" for diff in row["differences"] or []):
        return Action.PERSON, "Kingdee holds this bill more than once: keep one by hand"
    return Action.CHANGE, None


@dataclass
class Correction:
    source_ref: str | None
    kingdee_bill_no: str | None
    fid: int | None
    action: Action
    changes: list[str]
    before: dict[str, Any]  # the differing fields as Kingdee held them
    after: dict[str, Any]  # … as WDT says them now
    result: Result = Result.LEFT
    document_status: str | None = None  # as Kingdee reports it after the correction
    messages: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "source_ref": self.source_ref,
            "kingdee_bill_no": self.kingdee_bill_no,
            "fid": self.fid,
            "action": str(self.action),
            "changes": self.changes,
            "before": self.before,
            "after": self.after,
            "result": str(self.result),
            "document_status": self.document_status,
            "messages": self.messages,
        }


def _sides(row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after): each differing field as Kingdee held it and as WDT says it now."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for diff in row["differences"] or []:
        name = field_label(diff) + (f" @{diff['stock']}" if diff["field"] == "FQty" else "")
        before[name], after[name] = diff["kingdee"], diff["wdt"]
    if row["verdict"] == Verdict.ONLY_IN_KINGDEE:
        before["bill"], after["bill"] = row["kingdee_bill_no"], None
    return before, after


class Corrector:
    """Corrects one day's drifted bills of one form (``scope``)."""

    def __init__(
        self,
        client: KingdeeClient,
        scope: BillScope,
        after_save: AfterSave,
        *,
        log: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> None:
        self.client = client
        self.scope = scope
        self.after_save = after_save
        self.log = log or logging.getLogger(__name__)

    def correct(self, rows: Sequence[Mapping[str, Any]], *, act: bool = True) -> list[Correction]:
        """Each drifted row's correction; with ``act`` False only what would be done (the
        corrections are off), nothing sent."""
        done = []
        for row in rows:
            action, why = plan(row)
            before, after = _sides(row)
            correction = Correction(
                row["source_ref"],
                row["kingdee_bill_no"],
                None if row["fid"] is None else int(row["fid"]),
                action,
                list(row["changes"] or []),
                before,
                after,
            )
            if why:
                correction.messages.append(why)
            if action in (Action.CHANGE, Action.DELETE):
                if act:
                    self._act(correction, row.get("model"))
                else:
                    correction.messages.append(OFF)
            done.append(correction)
        return done

    def _status(self, fid: int) -> str | None:
        found = self.client.bill_statuses(
            self.scope.form, [fid], reference_field=self.scope.reference_field
        )
        return found[0].document_status if found else None

    def _act(self, correction: Correction, model: Mapping[str, Any] | None) -> None:
        fid, form_id = correction.fid, self.scope.form.form_id
        assert fid is not None  # a drifted bill is one Kingdee holds
        try:
            status = self._status(fid)
            if status is None:
                correction.result = Result.DONE
                correction.messages.append("Kingdee no longer holds it")
                return
            if status == "B":
                correction.action = Action.PERSON
                correction.messages.append(
                    "审核中: 请先在金蝶撤销审批 / in approval: withdraw it in Kingdee first"
                )
                return
            if status == "C" and not self._step(
                correction, self.client.unaudit(form_id, fids=[fid])
            ):
                return
            if correction.action == Action.DELETE:
                if self._step(correction, self.client.delete(form_id, fids=[fid])):
                    correction.result, correction.document_status = Result.DONE, None
                return
            assert model is not None  # a different bill comes with the one WDT makes now
            changed = {**model, "FID": fid, "FBillNo": correction.kingdee_bill_no}
            if not self._step(
                correction,
                self.client.batch_save(form_id, [wire_model(changed, self.scope.form)]),
            ):
                return
            [settled] = Lifecycle(self.client, self.scope, self.after_save, log=self.log).settle(
                [BillInKingdee(str(correction.kingdee_bill_no), fid, changed)]
            )
            correction.document_status = settled.status
            correction.messages += settled.messages
            correction.result = Result.FAILED if settled.failure else Result.DONE
        except KingdeeUnknownOutcome as exc:
            correction.result = Result.UNCONFIRMED
            correction.messages.append(
                f"no usable answer ({exc}); the next comparison judges by what Kingdee holds"
            )
        except KingdeeError as exc:
            correction.result = Result.FAILED
            correction.messages.append(str(exc))

    def _step(self, correction: Correction, result: BatchSaveResult) -> bool:
        """Whether Kingdee did the step; when not, the correction fails with Kingdee's words —
        or needs a person when the period is closed (关账)."""
        if result.saved:
            return True
        words = [message for messages in result.errors.values() for message in messages]
        words += result.call_errors
        correction.messages += words or ["Kingdee did not do it, and said nothing"]
        closed = any("关账" in word or "结账" in word for word in words)
        correction.action = Action.PERSON if closed else correction.action
        correction.result = Result.LEFT if closed else Result.FAILED
        return False
