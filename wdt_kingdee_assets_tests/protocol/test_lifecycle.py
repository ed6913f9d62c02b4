"""The lifecycle (submit and audit after the save) against the Kingdee simulator over real HTTP:
asks first, gates on the read-back, refuses per bill, reconciles a call without an answer."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from wdt_kingdee_assets.bills import wire_model
from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY
from wdt_kingdee_assets.lifecycle import BillInKingdee, Lifecycle, Settled
from wdt_kingdee_assets.locator import BillScope
from wdt_kingdee_assets.outcomes import Failure
from wdt_kingdee_assets.sandbox.faults import FaultRule
from wdt_kingdee_assets_tests.fixtures.kingdee import mis_delivery_bill

FORM = MIS_DELIVERY.form_id
SCOPE = BillScope(MIS_DELIVERY, date(2025, 3, 1), ("100",), "QTCKD01_SYS", "FNote")


def saved(client, *numbers: str) -> list[BillInKingdee]:
    models = [mis_delivery_bill(number) for number in numbers]
    result = client.batch_save(FORM, [wire_model(model, MIS_DELIVERY) for model in models])
    assert result.is_success
    return [
        BillInKingdee(number, bill.fid, model)
        for number, bill, model in zip(numbers, result.saved, models, strict=True)
    ]


def by_number(settled) -> dict[str, str]:
    return {bill.bill_no: bill.settled for bill in settled}


def test_every_saved_bill_ends_audited_and_a_rerun_calls_neither_submit_nor_audit(kingdee_client):
    bills = saved(kingdee_client, "L-1", "L-2", "L-3")
    first = Lifecycle(kingdee_client, SCOPE, "audit", batch_size=2)
    assert by_number(first.settle(bills)) == dict.fromkeys(["L-1", "L-2", "L-3"], "audited")
    assert dict(first.calls) == {"Submit": 2, "Audit": 2}
    again = Lifecycle(kingdee_client, SCOPE, "audit")
    assert by_number(again.settle(bills)) == dict.fromkeys(["L-1", "L-2", "L-3"], "audited")
    assert dict(again.calls) == {}


def test_submit_only_and_none_stop_where_they_say(kingdee_client):
    [one] = saved(kingdee_client, "S-1")
    [two] = saved(kingdee_client, "S-2")
    assert by_number(Lifecycle(kingdee_client, SCOPE, "submit").settle([one])) == {
        "S-1": "submitted"
    }
    none = Lifecycle(kingdee_client, SCOPE, "none")
    assert by_number(none.settle([two])) == {"S-2": "saved"} and dict(none.calls) == {}


def test_a_bill_whose_read_back_differs_is_left_alone(kingdee_client):
    [bill] = saved(kingdee_client, "G-1")
    claimed = mis_delivery_bill("G-1", [("MAT-001", "Pcs", 6)])  # Kingdee holds 5
    [result] = Lifecycle(kingdee_client, SCOPE, "audit").settle(
        [BillInKingdee("G-1", bill.fid, claimed)]
    )
    assert result.settled == Settled.NOT_GATED and result.status == "A"
    assert "MAT-001: sent 6, Kingdee 5" in result.messages[0]


def test_a_stock_shortage_refuses_exactly_its_bill_and_clears_when_stock_arrives(
    kingdee_sim, kingdee_client
):
    kingdee_sim.app.set_stock("MAT-001", "CK001", Decimal(7))  # each bill takes 5
    bills = saved(kingdee_client, "K-1", "K-2")
    settled = {
        bill.bill_no: bill for bill in Lifecycle(kingdee_client, SCOPE, "audit").settle(bills)
    }
    assert settled["K-1"].settled == Settled.AUDITED
    short = settled["K-2"]
    assert (short.settled, short.status, short.failure) == (
        Settled.REFUSED_AT_AUDIT,
        "B",
        Failure.TRANSIENT,
    )
    assert "即时库存不足" in short.messages[0]
    kingdee_sim.app.set_stock("MAT-001", "CK001", Decimal(5))
    later = Lifecycle(kingdee_client, SCOPE, "audit")
    assert by_number(later.settle(bills)) == {"K-1": "audited", "K-2": "audited"}
    assert dict(later.calls) == {"Audit": 1}, "only the refused bill is audited again"


@pytest.mark.parametrize(
    "fault",
    [
        "5xx_after_commit@Audit,times=1",
        "timeout_after_commit@Audit,times=1,seconds=1",
        "5xx@Submit,times=1",
    ],
)
def test_a_call_without_an_answer_is_reconciled_by_status_and_never_doubled(
    kingdee_sim, kingdee_client, fault
):
    bills = saved(kingdee_client, "U-1", "U-2")
    kingdee_sim.app.faults.add(FaultRule.parse(fault))
    first = {b.bill_no: b for b in Lifecycle(kingdee_client, SCOPE, "audit").settle(bills)}
    if fault.startswith("5xx@Submit"):
        # Refused before any work: nothing moved, judged unconfirmed, read again next time.
        assert {b.settled for b in first.values()} == {Settled.UNCONFIRMED}
        assert {b.status for b in first.values()} == {"A"}
    else:
        # The Audit committed: its status says so, and nothing is audited twice.
        assert {b.settled for b in first.values()} == {Settled.AUDITED}
    second = Lifecycle(kingdee_client, SCOPE, "audit")
    assert by_number(second.settle(bills)) == {"U-1": "audited", "U-2": "audited"}
    if not fault.startswith("5xx@Submit"):
        assert dict(second.calls) == {}
