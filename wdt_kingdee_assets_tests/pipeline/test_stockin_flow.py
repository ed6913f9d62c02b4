"""The second flow, production stock-in (生产入库) → 其他入库单 (STK_MISCELLANEOUS), through Dagster
against the sandbox: the same guarantees as the stock-out flow, from the same definition."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal

import pytest

from wdt_kingdee_assets.automation import build_late_documents_sensor
from wdt_kingdee_assets.flows import PRODUCTION_STOCKIN
from wdt_kingdee_assets.reference import parse_reference
from wdt_kingdee_assets.sandbox.wdt_server import STOCKIN, parse_stored_time
from wdt_kingdee_assets_tests.automation.conftest import tick
from wdt_kingdee_assets_tests.fixtures.pipeline import Pipeline, check_results, materializations

FORM = "STK_MISCELLANEOUS"


def completed_stockins(pipeline: Pipeline, day: str) -> list[dict]:
    """What WDT holds for the day: the checked (审核), completed stock-ins that must be in Kingdee."""
    return [
        order
        for order in pipeline.sandbox.wdt.orders_on(date.fromisoformat(day), STOCKIN.name)
        if order["status"] == 80 and parse_stored_time(order["check_time"])
    ]


def quantities(lines: list[dict], material: str, quantity: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        totals[line[material]] += Decimal(str(line[quantity]))
    return dict(totals)


def receipts_by_source(pipeline: Pipeline) -> dict[str, list[dict]]:
    """Kingdee's 其他入库单, grouped by the stock-in their FNOTE says they stand for."""
    found: dict[str, list[dict]] = defaultdict(list)
    for bill in pipeline.sandbox.kingdee.bills(FORM):
        found[parse_reference(bill["FNote"])].append(bill)
    return dict(found)


@pytest.mark.parametrize("numbering", ["keep", "auto"])
def test_a_day_of_stockins_becomes_one_receipt_each_and_a_rerun_sends_nothing(
    make_pipeline, numbering
):
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=12, kingdee_numbering=numbering)
    day = pipeline.days[-1]
    expected = completed_stockins(pipeline, day)
    assert expected, "the sandbox seeds stock-ins"

    first = pipeline.run(day, flow=PRODUCTION_STOCKIN)
    assert first.success
    assert all(evaluation.passed for evaluation in check_results(first).values()), {
        name: e.metadata for name, e in check_results(first).items() if not e.passed
    }
    receipts = receipts_by_source(pipeline)
    assert sorted(receipts) == sorted(order["stockin_no"] for order in expected)
    for order in expected:
        [bill] = receipts[order["stockin_no"]]
        assert bill["FDate"].startswith(day) and bill["FBillTypeID"] == "QTRKD01_SYS"
        assert quantities(bill["entries"], "material", "qty") == quantities(
            order["detail_list"], "spec_no", "num"
        )
        if numbering == "auto":
            assert bill["FBillNo"].startswith("QTRK")
    # The stock-out flow's form is untouched by the stock-in flow.
    assert pipeline.sandbox.kingdee.bills() == []

    again = pipeline.run(day, flow=PRODUCTION_STOCKIN)
    assert again.success
    written = materializations(again, "production_stockin__kingdee_write_results")
    figures = {key: value.value for key, value in written[0].metadata.items()}
    assert (figures["created"], figures["already_in_kingdee"]) == (0, len(expected))
    assert {
        ref: len(bills) for ref, bills in receipts_by_source(pipeline).items()
    } == dict.fromkeys((order["stockin_no"] for order in expected), 1)


def test_stockins_survive_a_batch_committed_without_an_answer(make_pipeline):
    pipeline = make_pipeline(
        missing_ratio=0,
        orders_per_day=16,
        kingdee_numbering="auto",
        kingdee_faults=["5xx_after_commit@BatchSave,times=1"],
    )
    day = pipeline.days[-1]
    result = pipeline.run(day, flow=PRODUCTION_STOCKIN, run_config=_batches_of(2))
    assert result.success
    expected = sorted(order["stockin_no"] for order in completed_stockins(pipeline, day))
    assert sorted(receipts_by_source(pipeline)) == expected
    assert all(len(bills) == 1 for bills in receipts_by_source(pipeline).values())


def test_a_receipt_missing_its_material_is_held_and_the_rest_are_written(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0.3, orders_per_day=24)
    day = pipeline.days[-1]
    result = pipeline.run(day, flow=PRODUCTION_STOCKIN)
    bills = pipeline.stored("production_stockin/kingdee_bills", day)
    held = bills[bills["readiness"] == "held"]
    assert len(held), "a third of the materials are missing: some stock-ins must be held"
    assert all("物料在金蝶中不存在或已禁用" in reason for reason in held["hold_reason"])
    checks = check_results(result)
    assert not checks["materials_exist_in_kingdee"].passed
    assert checks["bill_quantities_match_source"].passed
    written = set(receipts_by_source(pipeline))
    assert written == set(bills.loc[bills["readiness"] == "ready", "stockin_no"])


def _batches_of(size: int) -> dict:
    return {"ops": {"production_stockin__kingdee_write_results": {"config": {"batch_size": size}}}}


def test_a_stockin_day_is_proven_complete_while_rows_move_under_the_pages(
    make_pipeline, monkeypatch
):
    monkeypatch.setenv("WDT_PAGE_SIZE", "2")
    pipeline = make_pipeline(
        missing_ratio=0, orders_per_day=28, wdt_faults=["insert_rows,rows=1,times=2,skip=1"]
    )
    day = pipeline.days[-1]
    result = pipeline.run(day, flow=PRODUCTION_STOCKIN)
    assert result.success
    assert check_results(result)["raw_stockins_complete"].passed
    [pulled] = materializations(result, "production_stockin__raw_stockins")
    figures = {key: value.value for key, value in pulled.metadata.items()}
    assert figures["passes"] > 1, "the rows that moved forced a re-read"
    assert figures["distinct_orders_pulled"] == figures["total_count"]
    assert sorted(receipts_by_source(pipeline)) == sorted(
        order["stockin_no"] for order in completed_stockins(pipeline, day)
    )


def test_the_late_stockins_sensor_resyncs_the_day_that_grew(make_pipeline):
    pipeline = make_pipeline(today=None, days=2, orders_per_day=8, missing_ratio=0)
    for day in pipeline.days:
        assert pipeline.run(day, flow=PRODUCTION_STOCKIN).success
    sensor = build_late_documents_sensor(PRODUCTION_STOCKIN, lookback_days=7)
    quiet = tick(sensor, pipeline, None)
    assert not quiet.run_requests and "no late stock-ins" in quiet.skip_message
    grown = pipeline.days[-1]
    late = dict(completed_stockins(pipeline, grown)[0], stockin_id=990001, stockin_no="RK-LATE")
    pipeline.sandbox.wdt.add_orders([late], STOCKIN.name)
    [request] = tick(sensor, pipeline, quiet.cursor).run_requests
    assert request.partition_key == grown
    assert sensor.job_name == "sync_stockins"
    assert pipeline.run(grown, flow=PRODUCTION_STOCKIN).success
    assert "RK-LATE" in receipts_by_source(pipeline)
