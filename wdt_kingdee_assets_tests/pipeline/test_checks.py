"""Each asset check, shown failing for the reason it exists (and the day's other bills unharmed)."""

from __future__ import annotations

from decimal import Decimal

import dagster as dg

from wdt_kingdee_assets import day as day_module
from wdt_kingdee_assets.bills import build_bills, wire_model
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY
from wdt_kingdee_assets.normalize import normalize_orders
from wdt_kingdee_assets_tests.fixtures.bills import material as kingdee_material
from wdt_kingdee_assets_tests.fixtures.bills import stockout_bills
from wdt_kingdee_assets_tests.fixtures.pipeline import (
    check_named,
    check_results,
    materializations,
    needs_attention,
)


def simple_order(pipeline, stockout_id, number, moment, *, warehouse="CK001", quantity=2):
    material = next(m for m in pipeline.sandbox.catalog if m.in_kingdee and not m.batch_managed)
    return {
        "stockout_id": stockout_id,
        "stockout_no": number,
        "process_no": "PS-T",
        "status": 110,
        "src_order_type": 5,
        "warehouse_no": warehouse,
        "consign_time": moment,
        "detail_list": [
            {
                "rec_id": 1,
                "spec_no": material.number,
                "num": quantity,
                "base_unit_name": material.base_unit,
            }
        ],
    }


def test_late_stockout_fails_the_completeness_check(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=5)
    day = pipeline.days[-1]
    assert check_results(pipeline.run(day))["raw_stockouts_complete"].passed

    pipeline.sandbox.wdt.add_orders([simple_order(pipeline, 77, "LATE-1", f"{day} 12:00:00")])
    recheck = pipeline.run_checks(day, check_named("raw_stockouts_complete"))
    evaluation = check_results(recheck)["raw_stockouts_complete"]
    assert not evaluation.passed
    assert evaluation.metadata["late_stockouts"].value == 1
    assert (
        evaluation.metadata["total_count_now"].value
        == evaluation.metadata["total_count_at_pull"].value + 1
    )


def test_malformed_records_are_reported_as_rejected_lines_and_held_bills(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=10, malformed=4)
    day = pipeline.days[-1]
    result = pipeline.run(day)
    assert result.success
    checks = check_results(result)
    rejected, held = checks["no_rejected_lines"], checks["no_held_bills"]
    assert not rejected.passed and rejected.severity == dg.AssetCheckSeverity.WARN
    assert not held.passed and held.severity == dg.AssetCheckSeverity.WARN
    lines = pipeline.stored("normalized_stockouts", day)
    assert (
        rejected.metadata["rejected_lines"].value == int(lines["reject_reason"].notna().sum()) > 0
    )
    table = rejected.metadata["lines"].value
    assert "spec_no is missing" in table and "num must be greater than 0" in table
    results = pipeline.stored("kingdee_write_results", day)
    assert held.metadata["held_bills"].value == int((results["outcome"] == "held").sum())


def test_wrong_mapping_fails_the_blocking_check_and_writes_nothing(make_pipeline, monkeypatch):
    def doubling_mapping(*args, **kwargs):
        bills = build_bills(*args, **kwargs)
        first = bills.index[bills["readiness"] == "ready"][0]
        model = bills.at[first, "model"]
        model["FEntity"][0]["FQty"] = model["FEntity"][0]["FQty"] * 2
        return bills

    monkeypatch.setattr(day_module, "build_bills", doubling_mapping)
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=5)
    result = pipeline.run(pipeline.days[-1])
    assert not result.success
    evaluation = check_results(result)["bill_quantities_match_source"]
    assert not evaluation.passed and evaluation.metadata["mismatches"].value == 1
    assert not materializations(result, "kingdee_write_results")
    assert pipeline.kingdee_bill_numbers() == []


def test_bill_kingdee_rejects_fails_ready_bills_written_with_kingdees_message(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=5)
    day = pipeline.days[-1]
    pipeline.sandbox.wdt.add_orders(
        [simple_order(pipeline, 88, "NOWHERE-1", f"{day} 08:00:00", warehouse="CK404")]
    )
    result = pipeline.run(day)
    assert needs_attention(result)
    evaluation = check_results(result)["ready_bills_written"]
    assert not evaluation.passed and evaluation.metadata["not_written"].value == 1
    assert (
        "NOWHERE-1" in evaluation.metadata["bills"].value
        and "CK404" in evaluation.metadata["bills"].value
    )
    assert "NOWHERE-1" not in pipeline.kingdee_bill_numbers()
    assert len(pipeline.kingdee_bill_numbers()) == len(pipeline.completed_orders(day)) - 1


def test_bill_already_in_kingdee_with_other_quantities_fails_the_read_back_check(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=5)
    day = pipeline.days[-1]
    order = simple_order(pipeline, 99, "HAND-1", f"{day} 09:00:00", quantity=5)
    pipeline.sandbox.wdt.add_orders([order])
    # Someone keyed the bill into Kingdee by hand, with 4 instead of 5.
    hand_made = simple_order(pipeline, 99, "HAND-1", f"{day} 09:00:00", quantity=4)
    material = next(
        m for m in pipeline.sandbox.catalog if m.number == order["detail_list"][0]["spec_no"]
    )
    known = {material.number: kingdee_material(material.number, material.base_unit)}
    model = stockout_bills(normalize_orders([hand_made], PRODUCTION_STOCKOUT), known).iloc[0][
        "model"
    ]
    saved = pipeline.kingdee_client().batch_save(
        "STK_MisDelivery", [wire_model(model, MIS_DELIVERY)]
    )
    assert saved.saved and not saved.errors

    result = pipeline.run(day)
    assert needs_attention(result)
    results = pipeline.stored("kingdee_write_results", day).set_index("bill_no")
    assert results.loc["HAND-1", "outcome"] == "already_in_kingdee"
    evaluation = check_results(result)["kingdee_quantities_match_bills"]
    assert not evaluation.passed and evaluation.metadata["mismatches"].value == 1
    assert "HAND-1" in evaluation.metadata["differences"].value
    assert pipeline.kingdee_quantities()["HAND-1"] == {material.number: Decimal("4")}


def test_a_bill_keyed_twice_into_kingdee_fails_the_duplicate_check(make_pipeline):
    # A data center whose coding rule lets a number repeat: the writer never sends twice, but
    # someone else did, and the check must say so with both FIDs.
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=5, kingdee_unique_bill_no=False)
    day = pipeline.days[-1]
    order = simple_order(pipeline, 66, "TWICE-1", f"{day} 10:00:00")
    pipeline.sandbox.wdt.add_orders([order])
    material = next(
        m for m in pipeline.sandbox.catalog if m.number == order["detail_list"][0]["spec_no"]
    )
    model = stockout_bills(
        normalize_orders([order], PRODUCTION_STOCKOUT),
        {material.number: kingdee_material(material.number, material.base_unit)},
    ).iloc[0]["model"]
    client = pipeline.kingdee_client()
    for _ in range(2):
        assert client.batch_save("STK_MisDelivery", [wire_model(model, MIS_DELIVERY)]).saved

    result = pipeline.run(day)
    assert result.success
    evaluation = check_results(result)["no_duplicate_bills_in_kingdee"]
    assert not evaluation.passed and evaluation.metadata["duplicated"].value == 1
    assert "TWICE-1" in evaluation.metadata["bills"].value
    assert pipeline.kingdee_bill_numbers().count("TWICE-1") == 2  # the sync added no third
