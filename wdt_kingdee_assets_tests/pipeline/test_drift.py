"""WDT changes after a sync, and the preview that writes nothing: ``kingdee_vs_wdt`` and its check
through Dagster against the sandbox, whose WDT changes orders after the fact."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from wdt_kingdee_assets.sandbox.runtime import REAL_DATA_CENTER
from wdt_kingdee_assets_tests.fixtures.pipeline import check_results, materializations

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
    [materialized] = materializations(result, "kingdee_vs_wdt")
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


def change_two(pipeline, day):
    """A quantity edited and a stock-out cancelled in WDT after the sync: (edited, cancelled,
    the edited line's material and new quantity)."""
    orders = sorted(pipeline.completed_orders(day), key=lambda order: order["stockout_no"])
    edited, cancelled = orders[0], orders[1]
    line = edited["detail_list"][0]
    pipeline.sandbox.wdt.change_order(
        edited["stockout_no"], quantities={line["spec_no"]: line["num"] + 2}
    )
    pipeline.sandbox.wdt.change_order(cancelled["stockout_no"], cancel=True)
    return edited["stockout_no"], cancelled["stockout_no"], line["spec_no"], line["num"] + 2


def bill_of(pipeline, number):
    [bill] = [b for b in pipeline.sandbox.kingdee.bills() if b["FBillNo"] == number]
    return bill


def test_an_audited_bill_is_unaudited_changed_and_audited_again_only_when_asked(make_pipeline):
    pipeline = make_pipeline(orders_per_day=8, missing_ratio=0)
    day = pipeline.days[-1]
    assert pipeline.run(day).success
    edited, cancelled, material, quantity = change_two(pipeline, day)
    before = bill_of(pipeline, edited)
    written = writes(pipeline)

    # on_drift: report (the default): the correct job lists what it would do, sends nothing.
    listed = pipeline.correct(day)
    assert listed.success and writes(pipeline) == written
    planned = pipeline.stored("kingdee_corrections", day).set_index("source_ref")
    assert (planned.at[edited, "action"], planned.at[cancelled, "action"]) == ("change", "delete")
    assert set(planned["result"]) == {"left_alone"}
    assert all("on_drift" in " ".join(m) for m in planned["messages"])
    assert not check_results(listed)["kingdee_agrees_with_wdt"].passed

    result = pipeline.correct(day, confirm=True)
    assert result.success
    after = bill_of(pipeline, edited)
    assert after["FID"] == before["FID"] and after["FDocumentStatus"] == "C"
    # One line per material in the sandbox's orders: the material's quantity is the line's.
    assert sum(
        Decimal(str(e["qty"])) for e in after["entries"] if e["material"] == material
    ) == Decimal(str(quantity))
    assert cancelled not in pipeline.kingdee_bill_numbers()
    done = {
        row["source_ref"]: row
        for row in pipeline.stored("kingdee_corrections", day).to_dict("records")
    }
    assert (done[edited]["action"], done[edited]["result"]) == ("change", "done")
    assert done[edited]["after"] != done[edited]["before"]
    assert (done[cancelled]["action"], done[cancelled]["result"]) == ("delete", "done")
    # Compared again after the corrections: Kingdee agrees with WDT.
    assert check_results(result)["kingdee_agrees_with_wdt"].passed

    # A stock-out moved to the next day: its bill is re-dated from the next day's correction,
    # and then belongs to that day alone.
    moved = sorted(pipeline.completed_orders(day), key=lambda o: o["stockout_no"])[-1]
    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    pipeline.sandbox.wdt.change_order(moved["stockout_no"], consign_time=f"{next_day} 08:00:00")
    assert pipeline.correct(next_day, confirm=True).success
    redated = bill_of(pipeline, moved["stockout_no"])
    assert (redated["FDate"][:10], redated["FDocumentStatus"]) == (next_day, "C")
    assert pipeline.correct(day, confirm=True).success
    assert moved["stockout_no"] not in set(
        pipeline.stored("kingdee_corrections", day)["source_ref"]
    )

    # Idempotent: a second correction finds nothing to do and writes nothing.
    written = writes(pipeline)
    again = pipeline.correct(day, confirm=True)
    assert again.success and writes(pipeline) == written
    assert pipeline.stored("kingdee_corrections", day).empty


def test_a_saved_bill_is_changed_in_place_and_a_closed_period_is_left_to_a_person(
    make_pipeline, tmp_path
):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("after_save: none\non_drift: correct\n", encoding="utf-8")
    pipeline = make_pipeline(orders_per_day=8, missing_ratio=0, mapping_file=str(mapping))
    day = pipeline.days[-1]
    assert pipeline.run(day).success
    edited, cancelled, _, _ = change_two(pipeline, day)
    assert bill_of(pipeline, edited)["FDocumentStatus"] == "A"

    pipeline.sandbox.kingdee.closed_until = date.fromisoformat(day)  # 库存关账
    closed = pipeline.correct(day)
    assert closed.success
    left = pipeline.stored("kingdee_corrections", day)
    assert set(left["action"]) == {"needs_a_person"} and set(left["result"]) == {"left_alone"}
    assert all(any("关账" in m for m in messages) for messages in left["messages"])
    assert not check_results(closed)["kingdee_agrees_with_wdt"].passed

    pipeline.sandbox.kingdee.closed_until = None
    result = pipeline.correct(day)  # on_drift: correct in the mapping: no confirm needed
    assert result.success and check_results(result)["kingdee_agrees_with_wdt"].passed
    assert bill_of(pipeline, edited)["FDocumentStatus"] == "A"  # after_save: none
    assert cancelled not in pipeline.kingdee_bill_numbers()


def test_a_warehouse_the_appkey_may_not_see_is_named_by_the_comparison(make_pipeline):
    """WDT answers an appkey only its granted warehouses (权限校验), total_count included, so a
    sync is complete for what it sees and never learns of the rest. The comparison asks WDT for
    each warehouse the mapping names and says which one it may not see, in WDT's words."""
    pipeline = make_pipeline(**REAL_DATA_CENTER, missing_ratio=0)
    day = pipeline.days[-1]
    hidden_orders = [o for o in pipeline.completed_orders(day) if o["warehouse_no"] == "CK004"]
    assert hidden_orders, "the sandbox day must have stock-outs of CK004"
    pipeline.sandbox.wdt.visible_warehouses = {"CK001", "CK002", "CK003"}

    synced = pipeline.run(day)
    assert check_results(synced)["raw_stockouts_complete"].passed  # complete for what it sees
    raw = pipeline.stored("raw_stockouts", day)
    assert not set(raw["stockout_no"]) & {o["stockout_no"] for o in hidden_orders}

    [compared] = materializations(pipeline.compare(day), "kingdee_vs_wdt")
    assert compared.metadata["hidden_warehouses"].value == {"CK004": "无仓库访问权限"}
