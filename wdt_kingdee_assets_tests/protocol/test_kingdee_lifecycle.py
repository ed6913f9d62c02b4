"""Bills that take effect: Submit, Audit, UnAudit and Delete against the Kingdee simulator, through
the project's client and the official SDK, with document states and on-hand stock."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from k3cloud_webapi_sdk.main import K3CloudApiSdk

from wdt_kingdee_assets.kingdee.errors import KingdeeUnknownOutcome
from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY
from wdt_kingdee_assets.sandbox.credentials import KingdeeCredentials
from wdt_kingdee_assets.sandbox.faults import FaultRule
from wdt_kingdee_assets.sandbox.httpserver import SimServer
from wdt_kingdee_assets.sandbox.kingdee_server import BIN_FLEX, KingdeeMaterial, KingdeeSimulator
from wdt_kingdee_assets_tests.fixtures.kingdee import (
    SANDBOX_MATERIALS,
    SANDBOX_WAREHOUSES,
    KingdeeSandbox,
    client_for,
    mis_delivery_bill,
)

FORM = MIS_DELIVERY.form_id


def states(client, *numbers: str) -> dict[str, str]:
    records = client.find_bills(MIS_DELIVERY, list(numbers), orgs=("100",))
    return {record.number: record.document_status for record in records}


def test_a_bill_goes_created_submitted_audited_and_back(kingdee_client):
    assert kingdee_client.batch_save(FORM, [mis_delivery_bill("LC-1")]).is_success
    assert states(kingdee_client, "LC-1") == {"LC-1": "A"}
    submitted = kingdee_client.submit(FORM, ["LC-1"])
    assert submitted.is_success and submitted.saved[0].number == "LC-1"
    assert states(kingdee_client, "LC-1") == {"LC-1": "B"}
    assert kingdee_client.audit(FORM, ["LC-1"]).is_success
    assert states(kingdee_client, "LC-1") == {"LC-1": "C"}
    assert kingdee_client.unaudit(FORM, ["LC-1"]).is_success
    assert states(kingdee_client, "LC-1") == {"LC-1": "D"}
    assert kingdee_client.delete(FORM, ["LC-1"]).is_success
    assert states(kingdee_client, "LC-1") == {}


def test_each_bill_of_a_call_is_refused_or_moved_on_its_own(kingdee_client):
    saved = kingdee_client.batch_save(FORM, [mis_delivery_bill("LC-2"), mis_delivery_bill("LC-3")])
    assert saved.is_success
    assert kingdee_client.submit(FORM, ["LC-2"]).is_success
    # Audit asks for LC-2 (submitted), LC-3 (only created) and a number Kingdee lacks.
    result = kingdee_client.audit(FORM, ["LC-2", "LC-3", "NOPE"])
    assert not result.is_success
    assert [bill.number for bill in result.saved] == ["LC-2"]
    assert set(result.errors) == {1, 2}
    assert "只有审核中的单据才能审核" in result.errors[1][0]
    assert "不存在" in result.errors[2][0]
    assert states(kingdee_client, "LC-2", "LC-3") == {"LC-2": "C", "LC-3": "A"}
    # What is audited cannot be submitted again nor deleted.
    assert "不能提交" in kingdee_client.submit(FORM, ["LC-2"]).errors[0][0]
    assert "不能删除" in kingdee_client.delete(FORM, ["LC-2"]).errors[0][0]


def test_an_audit_that_would_take_stock_negative_is_refused(kingdee_sim, kingdee_client):
    kingdee_sim.app.set_stock("MAT-001", "CK001", Decimal(7))
    bills = [mis_delivery_bill("ST-1"), mis_delivery_bill("ST-2")]  # 5 Pcs of MAT-001 each
    assert kingdee_client.batch_save(FORM, bills).is_success
    assert kingdee_client.submit(FORM, ["ST-1", "ST-2"]).is_success
    result = kingdee_client.audit(FORM, ["ST-1", "ST-2"])
    assert [bill.number for bill in result.saved] == ["ST-1"]
    assert "即时库存不足" in result.errors[1][0]
    assert kingdee_sim.app.stock_on_hand("MAT-001", "CK001") == Decimal(2)
    # Stock arrives: the refused bill audits now.
    kingdee_sim.app.set_stock("MAT-001", "CK001", Decimal(12))
    assert kingdee_client.audit(FORM, ["ST-2"]).is_success
    assert kingdee_sim.app.stock_on_hand("MAT-001", "CK001") == Decimal(7)


def in_bin(bill: dict, bin_number: str) -> dict:
    for entry in bill["FEntity"]:
        entry["FStockLocId"] = {f"FSTOCKLOCID__{BIN_FLEX}": {"FNumber": bin_number}}
    return bill


def test_stock_is_on_hand_per_lot_and_bin_and_a_bill_takes_only_its_own():
    """A lot-managed material in a bin-managed warehouse: 10 on hand in lot L1 at bin A-1 covers
    a bill of 5 from there, not one from lot L2 nor one from bin A-2 — though the material's
    stock in the warehouse would."""
    credentials = KingdeeCredentials()
    app = KingdeeSimulator(
        credentials,
        materials=(
            *SANDBOX_MATERIALS,
            KingdeeMaterial("LOT-1", "批号物料", "Pcs", batch_managed=True),
        ),
        warehouses=SANDBOX_WAREHOUSES,
        orgs=("100",),
        departments=("BM000032",),
        bin_warehouses={"CK001": ["A-1", "A-2"]},
        track_stock=True,
    )
    app.set_stock("LOT-1", "CK001", Decimal(10), lot="L1", bin_number="A-1")
    with SimServer(app) as server:
        client = client_for(KingdeeSandbox(app, server, server.root_url + "/k3cloud/", credentials))
        line = [("LOT-1", "Pcs", 5)]
        bills = [
            in_bin(mis_delivery_bill("PL-1", line, lot="L1"), "A-1"),
            in_bin(mis_delivery_bill("PL-2", line, lot="L2"), "A-1"),
            in_bin(mis_delivery_bill("PL-3", line, lot="L1"), "A-2"),
        ]
        assert client.batch_save(FORM, bills).is_success
        assert client.submit(FORM, ["PL-1", "PL-2", "PL-3"]).is_success
        result = client.audit(FORM, ["PL-1", "PL-2", "PL-3"])
    assert [bill.number for bill in result.saved] == ["PL-1"]
    assert "批号“l2”的即时库存不足（可用 0，需要 5）" in result.errors[1][0]
    assert "仓位“a-2”批号“l1”的即时库存不足" in result.errors[2][0]
    assert app.stock_on_hand("LOT-1", "CK001", lot="L1", bin_number="A-1") == Decimal(5)


def test_a_bound_approval_workflow_refuses_the_webapi_audit(kingdee_sim, kingdee_client):
    kingdee_sim.app.approval_workflow = True
    assert kingdee_client.batch_save(FORM, [mis_delivery_bill("WF-1")]).is_success
    assert kingdee_client.submit(FORM, ["WF-1"]).is_success
    result = kingdee_client.audit(FORM, ["WF-1"])
    assert not result.is_success and "WorkflowAudit" in result.errors[0][0]
    assert states(kingdee_client, "WF-1") == {"WF-1": "B"}


@pytest.mark.parametrize(
    "fault", ["5xx_after_commit@Audit", "timeout_after_commit@Audit,seconds=1"]
)
def test_an_audit_that_commits_without_an_answer_is_an_unknown_outcome(
    kingdee_sim, kingdee_client, fault
):
    assert kingdee_client.batch_save(FORM, [mis_delivery_bill("UO-1")]).is_success
    assert kingdee_client.submit(FORM, ["UO-1"]).is_success
    kingdee_sim.app.faults.add(FaultRule.parse(fault))
    with pytest.raises(KingdeeUnknownOutcome):
        kingdee_client.audit(FORM, ["UO-1"])
    # It did commit: the status says so, which is how a caller reconciles before resending.
    assert states(kingdee_client, "UO-1") == {"UO-1": "C"}


def test_the_official_sdk_submits_and_audits_unchanged(kingdee_sim):
    creds = kingdee_sim.credentials
    sdk = K3CloudApiSdk(kingdee_sim.base_url)
    sdk.InitConfig(
        creds.acct_id, creds.username, creds.app_id, creds.app_secret, kingdee_sim.base_url
    )
    saved = json.loads(sdk.BatchSave(FORM, {"Model": [mis_delivery_bill("SDK-LC")]}))
    fid = saved["Result"]["ResponseStatus"]["SuccessEntitys"][0]["Id"]
    for operation in (sdk.Submit, sdk.Audit):
        answer = json.loads(operation(FORM, {"Numbers": ["SDK-LC"]}))
        assert answer["Result"]["ResponseStatus"]["IsSuccess"], answer
    unaudited = json.loads(sdk.UnAudit(FORM, {"Ids": str(fid)}))
    assert unaudited["Result"]["ResponseStatus"]["SuccessEntitys"][0]["Number"] == "SDK-LC"
    [bill] = kingdee_sim.app.bills()
    assert bill["FDocumentStatus"] == "D"


def test_bills_of_two_orgs_numbered_alike_are_moved_by_fid(kingdee_sim, kingdee_client):
    """A coding rule that counts per stock org gives both orgs' first bill one number: by number
    Kingdee cannot tell which is meant, by FID (as the lifecycle sends) it can."""
    kingdee_sim.app.numbering = "auto"
    kingdee_sim.app.add_material(KingdeeMaterial("MAT-001", "螺丝", "Pcs", use_org="200"))
    saved = [
        kingdee_client.batch_save(FORM, [mis_delivery_bill("X", org=org)]).saved[0]
        for org in ("100", "200")
    ]
    assert saved[0].number == saved[1].number
    refused = kingdee_client.submit(FORM, [saved[0].number])
    assert "不唯一" in refused.errors[0][0]
    assert kingdee_client.submit(FORM, fids=[saved[1].fid]).is_success
    by_org = {
        org: {
            r.fid: r.document_status
            for r in kingdee_client.find_bills(MIS_DELIVERY, [saved[0].number], orgs=(org,))
        }
        for org in ("100", "200")
    }
    assert by_org == {"100": {saved[0].fid: "A"}, "200": {saved[1].fid: "B"}}
    with pytest.raises(ValueError, match="by number or by FID"):
        kingdee_client.audit(FORM, ["X"], fids=[saved[0].fid])


def test_a_bill_is_changed_by_its_fid_only_while_created_or_reaudit(kingdee_sim, kingdee_client):
    [saved] = kingdee_client.batch_save(FORM, [mis_delivery_bill("MOD-1")]).saved
    changed = {**mis_delivery_bill("MOD-1", [("MAT-001", "Pcs", 9)]), "FID": saved.fid}
    assert kingdee_client.batch_save(FORM, [changed]).is_success
    [bill] = kingdee_sim.app.bills()
    assert (bill["FID"], [e["qty"] for e in bill["entries"]]) == (saved.fid, ["9"])
    kingdee_client.submit(FORM, fids=[saved.fid])
    refused = kingdee_client.batch_save(FORM, [changed])
    assert not refused.saved and "不能修改" in refused.errors[0][0]
    missing = kingdee_client.batch_save(FORM, [{**changed, "FID": 999}])
    assert "不存在" in missing.errors[0][0]


def test_a_closed_period_refuses_saving_changing_and_unauditing_its_bills(
    kingdee_sim, kingdee_client
):
    [saved] = kingdee_client.batch_save(FORM, [mis_delivery_bill("CL-1")]).saved
    kingdee_client.submit(FORM, fids=[saved.fid])
    kingdee_client.audit(FORM, fids=[saved.fid])
    bill_day = kingdee_sim.app.bills()[0]["FDate"][:10]
    kingdee_sim.app.closed_until = date.fromisoformat(bill_day)
    assert "关账" in kingdee_client.unaudit(FORM, fids=[saved.fid]).errors[0][0]
    assert "关账" in kingdee_client.batch_save(FORM, [mis_delivery_bill("CL-2")]).errors[0][0]
