"""Open bills, day status, step causes and re-push selection: the pure rules the cockpit shows."""

from __future__ import annotations

from datetime import date

import pytest
from dagster._utils.error import SerializableErrorInfo

from wdt_kingdee_assets.alerts import failure_cause
from wdt_kingdee_assets.causes import cause_of, failure_text
from wdt_kingdee_assets.flows import PRODUCTION_STOCKIN, PRODUCTION_STOCKOUT
from wdt_kingdee_assets.kingdee.errors import KingdeeAuthError, KingdeeTransientError
from wdt_kingdee_assets.open_bills import (
    DayStatus,
    by_cause,
    day_open_bills,
    open_bills_view,
    record_day,
    status_of,
)
from wdt_kingdee_assets.operations import exit_code, plan_retry
from wdt_kingdee_assets.wdt.errors import WdtRejectedError, WdtTransientError
from wdt_kingdee_assets.writer import NOT_SELECTED, BillToWrite, select_for_retry

FLOW = PRODUCTION_STOCKOUT


def results(*rows: dict) -> object:
    base = {"source_ref": None, "stockout_id": 1, "fid": None, "kingdee_bill_no": None,
            "failure": None, "blockers": [], "document_status": None, "settled": None,
            "messages": [], "attempts": 0, "written_at": None}  # fmt: skip
    return FLOW.results_schema.frame({**base, **row} for row in rows)


HELD = {"bill_no": "CK1", "outcome": "held", "failure": "permanent", "blockers": ["6901"],
        "messages": ["物料在金蝶中不存在或已禁用 / material missing or disabled in Kingdee (use-org 100): 6901"]}  # fmt: skip
HELD_TWO = {**HELD, "bill_no": "CK2", "blockers": ["6901", "6902@200"]}
UNMAPPED = {"bill_no": "CK3", "outcome": "held", "failure": "permanent",
            "messages": ["warehouse CK404 is not mapped to a Kingdee FStockId; 2 rejected line(s): bad num"]}  # fmt: skip
CALLS = {"bill_no": "CK4", "outcome": "failed", "failure": "transient",
         "messages": ["not in Kingdee after 3 BatchSave attempt(s) without answer"]}  # fmt: skip
REFUSED_AUDIT = {"bill_no": "CK5", "outcome": "created", "fid": 9, "settled": "refused_at_audit",
                 "failure": "transient", "messages": ["即时库存不足"]}  # fmt: skip
AUDITED = {"bill_no": "CK6", "outcome": "created", "fid": 10, "settled": "audited"}


def test_each_open_bill_gets_its_status_and_its_causes():
    open_bills = day_open_bills(
        FLOW, results(HELD, HELD_TWO, UNMAPPED, CALLS, REFUSED_AUDIT, AUDITED)
    ).set_index("bill_no")
    assert "CK6" not in open_bills.index, "an audited bill is not open"
    assert open_bills.loc["CK1", "status"] == DayStatus.WAITING
    assert list(open_bills.loc["CK2", "causes"]) == ["6901", "6902@200"]
    assert open_bills.loc["CK3", "cause_kind"] == "held"
    assert list(open_bills.loc["CK3", "causes"]) == [
        "2 rejected line(s)",
        "warehouse CK404 is not mapped to a Kingdee FStockId",
    ]
    assert open_bills.loc["CK4", "status"] == DayStatus.ATTENTION
    assert open_bills.loc["CK4", "cause_kind"] == "calls_failed"
    assert open_bills.loc["CK5", "cause_kind"] == "not_in_effect"
    assert open_bills.loc["CK5", "causes"] == ["refused_at_audit: 即时库存不足"]
    assert "即时库存不足" in open_bills.loc["CK5", "detail"], "Kingdee's words kept verbatim"


def test_a_day_is_done_waiting_or_needs_attention_and_attention_wins():
    assert status_of(day_open_bills(FLOW, results(AUDITED))) == DayStatus.DONE
    assert status_of(day_open_bills(FLOW, results(HELD, AUDITED))) == DayStatus.WAITING
    assert status_of(day_open_bills(FLOW, results(HELD, CALLS))) == DayStatus.ATTENTION
    assert exit_code([DayStatus.DONE, DayStatus.DONE]) == 0
    assert exit_code([DayStatus.DONE, DayStatus.WAITING]) == 3
    assert exit_code([DayStatus.WAITING, DayStatus.ATTENTION]) == 1
    assert exit_code([DayStatus.DONE, DayStatus.NOT_SYNCED]) == 1, "a day not synced is not done"


def test_the_view_spans_days_and_flows_and_groups_by_material(tmp_path):
    record_day(tmp_path, FLOW, "2026-12-01", day_open_bills(FLOW, results(HELD)), "0640")
    record_day(tmp_path, FLOW, "2026-12-02", day_open_bills(FLOW, results(AUDITED)), "0640")
    in_progress = day_open_bills(FLOW, results(HELD_TWO, CALLS))
    view = open_bills_view(
        tmp_path,
        [FLOW, PRODUCTION_STOCKIN],
        date(2026, 12, 4),
        {(FLOW.name, "2026-12-03"): in_progress},
    )
    assert list(zip(view["day"], view["bill_no"], strict=True)) == [
        ("2026-12-01", "CK1"), ("2026-12-03", "CK2"), ("2026-12-03", "CK4")
    ]  # fmt: skip
    assert list(view["age_days"]) == [3, 1, 1]
    causes = by_cause(view).set_index("key")
    assert causes.loc["6901", "bills"] == 2 and causes.loc["6901", "days"] == 2
    assert causes.loc["6901", "bill_numbers"] == "CK1, CK2"
    assert causes.loc["6901", "oldest_age_days"] == 3
    assert by_cause(view).iloc[0]["key"] == "6901", "the cause holding most bills comes first"


def test_a_day_stored_before_the_entries_existed_is_judged_from_its_results(tmp_path):
    path = tmp_path / FLOW.results_schema.name / "2026-11-30.jsonl"
    path.parent.mkdir(parents=True)
    with path.open("w", encoding="utf-8") as stream:
        FLOW.results_schema.write_jsonl(results(CALLS), stream)
    view = open_bills_view(tmp_path, [FLOW], date(2026, 12, 1))
    assert list(view["bill_no"]) == ["CK4"] and list(view["status"]) == ["needs_attention"]


def test_a_retry_sends_only_the_named_bills_and_refuses_names_the_day_lacks():
    def bill(no: str, ready: bool = True) -> BillToWrite:
        return BillToWrite(no, f"WDT-{no}", 1, ready, {"x": 1})

    day = [bill("CK1"), bill("CK2"), bill("CK3", ready=False)]
    chosen = {b.bill_no: b for b in select_for_retry(day, ["CK1 ", "WDT-CK3"])}
    assert chosen["CK1"].ready and not chosen["CK2"].ready
    assert chosen["CK2"].hold_reason == NOT_SELECTED
    assert not chosen["CK3"].ready and chosen["CK3"].hold_reason is None, "held stays held"
    with pytest.raises(ValueError, match="not a bill of this day: CK9"):
        select_for_retry(day, ["CK9"])


def test_plan_retry_finds_the_day_of_an_open_bill_and_names_an_unknown_one(tmp_path):
    record_day(tmp_path, FLOW, "2026-12-01", day_open_bills(FLOW, results(HELD)), "0640")
    [plan] = plan_retry(tmp_path, [FLOW], ["CK1"], None)
    assert (plan.flow, plan.day, plan.bills) == (FLOW, "2026-12-01", ("CK1",))
    with pytest.raises(ValueError, match=r"not an open bill .*: CK9"):
        plan_retry(tmp_path, [FLOW], ["CK9"], None)
    assert [p.flow for p in plan_retry(tmp_path, [FLOW], [], "2026-12-02")] == [FLOW]


@pytest.mark.parametrize(
    ("error", "retryable", "words"),
    [
        (
            WdtRejectedError("sign error 签名错误", method="wms.stockout.Process.queryWithDetail"),
            False,
            "WDT_APPSECRET",
        ),
        (
            WdtTransientError("HTTP 500", method="wms.stockout.Process.queryWithDetail"),
            True,
            "旺店通暂时无法应答",
        ),
        (KingdeeAuthError(None, ["用户名或密码错误"], "Login"), False, "KINGDEE_"),
        (KingdeeTransientError(None, ["HTTP 502"], "ExecuteBillQuery"), True, "金蝶暂时无法应答"),
    ],
)
def test_a_step_failure_says_the_cause_quotes_the_api_and_says_what_next(error, retryable, words):
    cause = cause_of(error)
    assert cause is not None and cause.retryable is retryable
    text = failure_text(cause, error, "2026-12-01")
    assert words in text and f"«{error}»" in text and "下一步 / next" in text
    assert cause_of(KeyError("x")) is None, "a defect of ours is not dressed up as a cause"


def test_an_alert_reads_the_innermost_cause_not_the_framework_wrapper():
    inner = SerializableErrorInfo("HTTP 500 from WDT\n", [], "WdtTransientError")
    outer = SerializableErrorInfo(
        'Error occurred while executing op "raw_stockouts":', [], "DagsterExecutionStepExecutionError",
        cause=inner,
    )  # fmt: skip

    class Data:
        error, user_failure_data = outer, None

    assert failure_cause(Data()) == "WdtTransientError: HTTP 500 from WDT"
