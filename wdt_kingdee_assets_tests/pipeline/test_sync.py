"""End to end: Dagster materializes a day against both simulators over HTTP."""

from __future__ import annotations

from collections import Counter

import dagster as dg

from wdt_kingdee_assets.sandbox.runtime import kingdee_material
from wdt_kingdee_assets_tests.fixtures.pipeline import (
    check_results,
    materializations,
    source_quantities,
)


def assert_exactly_once_with_equal_quantities(pipeline, day, expected_orders):
    holdings = pipeline.kingdee_quantities()
    numbers = Counter(pipeline.kingdee_bill_numbers())
    assert [number for number, count in numbers.items() if count > 1] == []
    for order in expected_orders:
        assert holdings[order["stockout_no"]] == source_quantities(order), order["stockout_no"]


def test_a_day_syncs_each_stockout_exactly_once_and_a_rerun_creates_nothing(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0)
    day = pipeline.days[-1]
    result = pipeline.run(day)
    assert result.success
    orders = pipeline.completed_orders(day)
    assert orders, "the sandbox day must have completed stock-outs"
    assert_exactly_once_with_equal_quantities(pipeline, day, orders)
    assert len(pipeline.kingdee_bill_numbers()) == len(orders)
    # The raw step's preview: the first 20 orders pulled, and how many more the day has.
    preview = materializations(result, "raw_stockouts")[0].metadata["preview"].value
    assert preview.count("\n| CK") == min(20, len(orders))
    assert len(orders) <= 20 or f"_…and {len(orders) - 20} more_" in preview
    checks = check_results(result)
    assert set(checks) == {
        "raw_stockouts_complete",
        "no_rejected_lines",
        "materials_exist_in_kingdee",
        "bill_quantities_match_source",
        "no_held_bills",
        "ready_bills_written",
        "ready_bills_in_effect",
        "day_complete",
        "kingdee_quantities_match_bills",
        "no_duplicate_bills_in_kingdee",
    }
    assert all(evaluation.passed for evaluation in checks.values()), {
        name: e.metadata for name, e in checks.items() if not e.passed
    }

    again = pipeline.run(day)
    assert again.success
    results = pipeline.stored("kingdee_write_results", day)
    assert set(results["outcome"]) == {"already_in_kingdee"}
    assert len(pipeline.kingdee_bill_numbers()) == len(orders)


def test_missing_materials_hold_only_their_bills_until_the_material_exists(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0.3, orders_per_day=30)
    day = pipeline.days[-1]
    result = pipeline.run(day)
    assert result.success  # a missing material holds bills; it does not fail the run

    absent = {m.number for m in pipeline.sandbox.catalog if not m.in_kingdee}
    orders = pipeline.completed_orders(day)
    blocked = {
        o["stockout_no"] for o in orders if {line["spec_no"] for line in o["detail_list"]} & absent
    }
    assert blocked and len(blocked) < len(orders)
    assert set(pipeline.kingdee_bill_numbers()) == {o["stockout_no"] for o in orders} - blocked

    check = check_results(result)["materials_exist_in_kingdee"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    reported = check.metadata["missing_json"].value
    expected = {}
    for order in orders:
        for spec_no in sorted({line["spec_no"] for line in order["detail_list"]} & absent):
            expected.setdefault(spec_no, []).append(order["stockout_no"])
    assert {k: sorted(v) for k, v in reported.items()} == {
        k: sorted(v) for k, v in expected.items()
    }
    results = pipeline.stored("kingdee_write_results", day).set_index("bill_no")
    assert set(results.loc[sorted(blocked), "outcome"]) == {"held"}

    for material in pipeline.sandbox.catalog:
        if material.number in reported:
            pipeline.sandbox.kingdee.add_material(kingdee_material(material, "100"))
    rerun = pipeline.run(day)
    assert rerun.success
    after = pipeline.stored("kingdee_write_results", day).set_index("bill_no")
    assert set(after.loc[sorted(blocked), "outcome"]) == {"created"}
    assert set(after.drop(index=sorted(blocked))["outcome"]) == {"already_in_kingdee"}
    assert check_results(rerun)["materials_exist_in_kingdee"].passed
    assert_exactly_once_with_equal_quantities(pipeline, day, orders)


def test_batchsave_answered_5xx_after_commit_leaves_no_duplicate(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0, kingdee_faults=["5xx_after_commit@BatchSave,times=1"])
    day = pipeline.days[-1]
    result = pipeline.run(day)
    assert result.success
    orders = pipeline.completed_orders(day)
    assert len(pipeline.kingdee_bill_numbers()) == len(orders)
    assert_exactly_once_with_equal_quantities(pipeline, day, orders)
    written = materializations(result, "kingdee_write_results")[0].metadata
    assert written["reconciliations"].value >= 1
    assert written["created"].value == len(orders)


def test_rows_inserted_while_paging_still_give_a_complete_day(make_pipeline, monkeypatch):
    monkeypatch.setenv("WDT_PAGE_SIZE", "5")
    pipeline = make_pipeline(missing_ratio=0, wdt_faults=["insert_rows,rows=2,skip=1,times=2"])
    day = pipeline.days[-1]
    result = pipeline.run(day)
    assert result.success
    orders_now = pipeline.sandbox.wdt.orders_on(pipeline.sandbox.sync_days()[-1])
    raw = pipeline.stored("raw_stockouts", day)
    assert sorted(raw["stockout_id"]) == sorted(
        o["stockout_id"] for o in orders_now if o["status"] == 110
    )
    raw_meta = materializations(result, "raw_stockouts")[0].metadata
    assert raw_meta["passes"].value >= 2
    assert_exactly_once_with_equal_quantities(pipeline, day, pipeline.completed_orders(day))


def test_stockouts_at_midnight_and_one_second_before_land_in_their_own_days(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=3)
    first, second = pipeline.days
    material = next(m for m in pipeline.sandbox.catalog if m.in_kingdee and not m.batch_managed)

    def edge_order(stockout_id, number, moment):
        return {
            "stockout_id": stockout_id,
            "stockout_no": number,
            "process_no": "PS-EDGE",
            "status": 110,
            "src_order_type": 5,
            "warehouse_no": "CK001",
            "consign_time": moment,
            "detail_list": [
                {
                    "rec_id": 1,
                    "spec_no": material.number,
                    "num": 1,
                    "base_unit_name": material.base_unit,
                }
            ],
        }

    pipeline.sandbox.wdt.add_orders(
        [
            edge_order(1, "EDGE-FIRST-START", f"{first} 00:00:00"),
            edge_order(2, "EDGE-FIRST-END", f"{first} 23:59:59"),
            edge_order(3, "EDGE-SECOND-START", f"{second} 00:00:00"),
        ]
    )
    assert pipeline.run(first).success and pipeline.run(second).success
    first_bills = set(pipeline.stored("kingdee_bills", first)["bill_no"])
    second_bills = set(pipeline.stored("kingdee_bills", second)["bill_no"])
    assert {"EDGE-FIRST-START", "EDGE-FIRST-END"} <= first_bills
    assert "EDGE-SECOND-START" in second_bills and "EDGE-SECOND-START" not in first_bills
    assert not {"EDGE-FIRST-START", "EDGE-FIRST-END"} & second_bills
    assert Counter(pipeline.kingdee_bill_numbers())["EDGE-SECOND-START"] == 1


def test_batches_in_flight_together_still_write_each_bill_once(make_pipeline):
    pipeline = make_pipeline(
        missing_ratio=0,
        orders_per_day=60,
        kingdee_per_bill_latency=0.005,
        kingdee_faults=[
            "5xx_after_commit@BatchSave,times=1,skip=1",
            "timeout@BatchSave,times=1,skip=3,seconds=0.2",
        ],
    )
    day = pipeline.days[-1]
    config = {"ops": {"kingdee_write_results": {"config": {"batch_size": 5, "max_in_flight": 4}}}}
    result = pipeline.run(day, run_config=config)
    assert result.success
    assert pipeline.sandbox.kingdee.state()["peak_concurrency"] > 1
    orders = pipeline.completed_orders(day)
    assert len(pipeline.kingdee_bill_numbers()) == len(orders)
    assert_exactly_once_with_equal_quantities(pipeline, day, orders)


def test_every_kingdee_call_draws_from_the_threads_the_data_center_lends(
    make_pipeline, monkeypatch
):
    """KINGDEE_THREADS is one budget: BatchSave, Submit, Audit and the look-ups together never
    have more calls in flight than it, and the write uses all of it without being told."""
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=60, kingdee_per_bill_latency=0.01)
    monkeypatch.setenv("KINGDEE_THREADS", "3")
    day = pipeline.days[-1]
    config = {"ops": {"kingdee_write_results": {"config": {"batch_size": 5}}}}
    result = pipeline.run(day, run_config=config)
    assert result.success
    kingdee = pipeline.sandbox.kingdee.state()
    assert kingdee["peak_concurrency"] == 3
    batches = -(-len(pipeline.kingdee_bill_numbers()) // 5)
    assert kingdee["calls"]["Submit"] == kingdee["calls"]["Audit"] == batches > 3
    orders = pipeline.completed_orders(day)
    assert_exactly_once_with_equal_quantities(pipeline, day, orders)
