"""WDT changes after a sync, and the preview that writes nothing: ``kingdee_vs_wdt`` and its check
through Dagster against the sandbox, whose WDT changes orders after the fact."""

from __future__ import annotations

from datetime import date, timedelta

from wdt_kingdee_assets_tests.fixtures.pipeline import check_results

WRITES = ("BatchSave", "Save", "Submit", "Audit", "UnAudit", "Delete")


def writes(pipeline) -> int:
    calls = pipeline.sandbox.kingdee.state()["calls"]
    return sum(count for name, count in calls.items() if name in WRITES)


def verdicts(pipeline, day) -> dict[str, dict]:
    frame = pipeline.stored("kingdee_vs_wdt", day)
    return {row["source_ref"]: row for row in frame.to_dict("records")}


def test_the_preview_before_any_sync_lists_what_a_sync_would_write_and_writes_nothing(
    make_pipeline,
):
    pipeline = make_pipeline(orders_per_day=12, missing_ratio=0.1)
    day = pipeline.days[-1]
    result = pipeline.compare(day)
    assert result.success and writes(pipeline) == 0
    assert pipeline.sandbox.kingdee.bills() == []
    [materialized] = result.asset_materializations_for_node("kingdee_vs_wdt")
    counts = {name: value.value for name, value in materialized.metadata.items()}
    orders = pipeline.completed_orders(day)
    assert counts["new"] + counts["held"] == len(orders) and counts["new"] > 0
    assert counts["identical"] == counts["different"] == counts["only_in_kingdee"] == 0
    assert check_results(result)["kingdee_agrees_with_wdt"].passed

    # What the preview called new is exactly what the sync then writes.
    new = {ref for ref, row in verdicts(pipeline, day).items() if row["verdict"] == "new"}
    assert pipeline.run(day).success
    assert set(pipeline.kingdee_bill_numbers()) == new


def test_changes_in_wdt_after_the_sync_are_reported_naming_bill_and_values(make_pipeline):
    pipeline = make_pipeline(orders_per_day=16, missing_ratio=0)
    day, wdt = pipeline.days[-1], pipeline.sandbox.wdt
    assert pipeline.run(day).success
    before, written = pipeline.sandbox.kingdee.bills(), writes(pipeline)
    synced = pipeline.compare(day)
    assert check_results(synced)["kingdee_agrees_with_wdt"].passed
    assert {row["verdict"] for row in verdicts(pipeline, day).values()} == {"identical"}

    orders = sorted(pipeline.completed_orders(day), key=lambda order: order["stockout_no"])
    several = [order for order in orders if len(order["detail_list"]) >= 2]
    cancelled, edited, swapped, moved = (o["stockout_no"] for o in orders[:4])
    grown, shrunk = several[-1], several[-2]
    assert {grown["stockout_no"], shrunk["stockout_no"]}.isdisjoint(
        {cancelled, edited, swapped, moved}
    )
    line = orders[1]["detail_list"][0]
    wdt.change_order(cancelled, cancel=True)
    wdt.change_order(edited, quantities={line["spec_no"]: line["num"] + 1})
    # A material of the same unit and without lots, on none of the orders it goes to.
    on_swapped = {x["spec_no"] for x in orders[2]["detail_list"]}
    unit = orders[2]["detail_list"][0]["base_unit_name"]
    new_material = next(
        m.number
        for m in pipeline.sandbox.catalog
        if m.in_kingdee
        and not m.batch_managed
        and m.base_unit == unit
        and m.number not in on_swapped | {x["spec_no"] for x in grown["detail_list"]}
    )
    wdt.change_order(swapped, materials={orders[2]["detail_list"][0]["spec_no"]: new_material})
    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    wdt.change_order(moved, consign_time=f"{next_day} 09:30:00")
    wdt.change_order(
        grown["stockout_no"],
        add_line={
            **grown["detail_list"][0],
            "rec_id": 999999,
            "spec_no": new_material,
            "base_unit_name": unit,
        },
    )
    wdt.change_order(shrunk["stockout_no"], drop_line=shrunk["detail_list"][-1]["spec_no"])

    result = pipeline.compare(day)
    assert result.success and writes(pipeline) == written
    check = check_results(result)["kingdee_agrees_with_wdt"]
    assert not check.passed
    rows = verdicts(pipeline, day)
    assert rows[cancelled]["verdict"] == "only_in_kingdee"
    assert rows[cancelled]["changes"] == ["cancelled"] and "已取消" in rows[cancelled]["note"]
    assert rows[moved]["verdict"] == "only_in_kingdee"
    assert rows[moved]["changes"] == ["moved_to_another_day"] and next_day in rows[moved]["note"]
    assert rows[edited]["changes"] == ["quantity_changed"]
    [diff] = rows[edited]["differences"]
    assert (diff["material"], diff["wdt"], diff["kingdee"]) == (
        line["spec_no"],
        str(line["num"] + 1),
        str(line["num"]),
    )
    assert "material_changed" in rows[swapped]["changes"]
    assert "lines_added" in rows[grown["stockout_no"]]["changes"]
    assert "lines_removed" in rows[shrunk["stockout_no"]]["changes"]
    drifted = {cancelled, edited, swapped, moved, grown["stockout_no"], shrunk["stockout_no"]}
    assert {ref for ref, row in rows.items() if row["verdict"] != "identical"} == drifted
    # The check names every bill, for the alert and the person on duty.
    assert set(check.metadata["bill_numbers"].value) == drifted
    assert cancelled in check.description

    # The next day sees the moved stock-out with its bill dated the day before.
    pipeline.compare(next_day)
    moved_row = verdicts(pipeline, next_day)[moved]
    assert moved_row["verdict"] == "different"
    assert moved_row["differences"] == [{"field": "FDate", "wdt": next_day, "kingdee": day}]

    # Nothing in Kingdee changed.
    assert pipeline.sandbox.kingdee.bills() == before
