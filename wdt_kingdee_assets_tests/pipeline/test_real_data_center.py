"""A day synced through Dagster against the sandbox as a demanding customer's data center: every
profile setting on (``REAL_DATA_CENTER``), with the mapping that fits it, and without it."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from decimal import Decimal

import dagster as dg

from wdt_kingdee_assets.automation import build_held_and_failed_bills_sensor
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.sandbox.runtime import (
    BIN_WAREHOUSES,
    BRANCH_ORG,
    BRANCH_WAREHOUSE,
    CARTON_PIECES,
    MATERIAL_CODE_FIELD,
    REAL_DATA_CENTER,
)
from wdt_kingdee_assets_tests.automation.conftest import tick
from wdt_kingdee_assets_tests.fixtures.pipeline import check_results
from wdt_kingdee_assets_tests.reliability.invariant import (
    assert_pipeline_invariant,
    orders_for_day,
)


def test_a_real_data_center_gets_each_bill_right_or_held_with_its_reason(make_pipeline):
    pipeline = make_pipeline(**REAL_DATA_CENTER, orders_per_day=40, missing_ratio=0.03)
    day = pipeline.days[-1]
    result = pipeline.run(day)
    assert result.success
    assert_pipeline_invariant(pipeline, day)

    checks = check_results(result)
    failing = {name for name, evaluation in checks.items() if not evaluation.passed}
    assert failing <= {"no_held_bills", "materials_exist_in_kingdee", "day_complete"}, failing
    assert checks["day_complete"].severity == dg.AssetCheckSeverity.WARN, "held only: waiting"
    matched = checks["bill_quantities_match_source"].metadata
    assert matched["entries_rounded"].value > 0 and matched["mismatches"].value == 0

    bills = pipeline.stored("kingdee_bills", day)
    ready = bills[bills["readiness"] == "ready"]
    held = bills[bills["readiness"] == "held"]
    assert len(ready) > len(held) > 0
    # Every hold is one the data center's rules explain, in words an ops engineer searches for.
    assert all(
        "批号" in reason or "金蝶中不存在" in reason or "仓位" in reason
        for reason in held["hold_reason"]
    ), held["hold_reason"].tolist()
    # Kingdee's own material numbers, found by the WDT code in F_PAEZ_WdtCode.
    assert all(numbers for numbers in ready["material_numbers"])

    in_kingdee = pipeline.sandbox.kingdee.bills()
    assert in_kingdee and {bill["FDocumentStatus"] for bill in in_kingdee} == {"C"}
    entries = [(bill, entry) for bill in in_kingdee for entry in bill["entries"]]
    assert all(bill["F_PAEZ_Workshop"] and entry["F_PAEZ_WdtLine"] for bill, entry in entries)
    stock_of = {bill["FBillNo"]: entry["stock"] for bill, entry in entries}
    binned = [entry for _, entry in entries if entry["stock"] in BIN_WAREHOUSES]
    assert binned and all(entry["bin"] for entry in binned)
    assert stock_of
    # Lines taken from two batches became two entries of one WDT line.
    lines_of = Counter(entry["F_PAEZ_WdtLine"] for _, entry in entries)
    assert max(lines_of.values()) >= 2
    # Both row shapes were written: the 2020 orders have no line ids (their place instead).
    assert any(entry["F_PAEZ_WdtLine"].endswith("/-1") for _, entry in entries)
    assert any(not entry["F_PAEZ_WdtLine"].endswith(("/-1", "/-2")) for _, entry in entries)

    # A re-run finds every bill by its reference (Kingdee renumbered none here, but the 2020
    # orders' ids are derived from their numbers): nothing is written twice.
    again = pipeline.run(day)
    assert again.success
    assert len(pipeline.sandbox.kingdee.bills()) == len(in_kingdee)
    assert_pipeline_invariant(pipeline, day)


def test_cartons_are_sent_in_pieces_and_quantities_at_the_units_precision(make_pipeline):
    pipeline = make_pipeline(**REAL_DATA_CENTER, missing_ratio=0)
    day = pipeline.days[-1]
    assert pipeline.run(day).success
    cartons = {m.number for m in pipeline.sandbox.catalog if m.base_unit == "箱"}
    orders = {
        order["stockout_no"]: order
        for order in orders_for_day(pipeline.sandbox, pipeline.sandbox.sync_days()[-1])
    }
    bills = pipeline.stored("kingdee_bills", day).set_index("bill_no")
    seen_carton = seen_rounding = False
    for bill_no, bill in bills[bills["readiness"] == "ready"].iterrows():
        order = orders[bill_no]
        wdt = {line["spec_no"]: Decimal(str(line["num"])) for line in order["detail_list"]}
        renumbered = bill["material_numbers"]
        for spec_no, num in wdt.items():
            if spec_no in cartons:
                sent = [
                    Decimal(str(entry["FQty"]))
                    for entry in bill["model"]["FEntity"]
                    if entry["FMaterialId"]["FNumber"] == renumbered[spec_no]
                ]
                assert sum(sent) == num * CARTON_PIECES
                assert all(
                    entry["FUnitID"] == {"FNumber": "Pcs"}
                    for entry in bill["model"]["FEntity"]
                    if entry["FMaterialId"]["FNumber"] == renumbered[spec_no]
                )
                seen_carton = True
        for rounding in bill["roundings"] or []:
            seen_rounding = True
            assert rounding["unit"] in ("kg", "m") and rounding["precision"] == 2
            entry = bill["model"]["FEntity"][rounding["entry"] - 1]
            assert Decimal(str(entry["FQty"])) == Decimal(rounding["sent"])
    assert seen_carton and seen_rounding


def test_the_default_mapping_in_a_real_data_center_writes_nothing_wrong(make_pipeline):
    """Kingdee numbers its materials its own way: without the code map no material is found,
    so every bill is held saying so, and Kingdee receives nothing."""
    pipeline = make_pipeline(**{**REAL_DATA_CENTER, "mapping_file": None}, missing_ratio=0)
    day = pipeline.days[-1]
    assert pipeline.run(day).success
    results = pipeline.stored("kingdee_write_results", day)
    assert set(results["outcome"]) == {"held"}
    assert all(messages for messages in results["messages"])
    assert pipeline.sandbox.kingdee.bills() == []


def test_the_branch_warehouse_writes_to_its_own_stock_org_and_waits_on_its_materials(
    make_pipeline,
):
    """CK004 belongs to the branch org (200): its bills go there, their materials are looked up
    there, and one disabled only there holds only the branch's bills until it is enabled."""
    # Recent days (the sensor watches those): today's date, not the suite's fixed one.
    # Enough orders that the branch has several on any date, some without the disabled one.
    pipeline = make_pipeline(
        **REAL_DATA_CENTER, missing_ratio=0, today=None, days=1, orders_per_day=80
    )
    day = pipeline.days[-1]
    kingdee = pipeline.sandbox.kingdee
    branch_orders = [
        order
        for order in orders_for_day(pipeline.sandbox, pipeline.sandbox.sync_days()[-1])
        if order["warehouse_no"] == BRANCH_WAREHOUSE
    ]
    code = branch_orders[0]["detail_list"][0]["spec_no"]
    others = [o for o in branch_orders if code not in {d["spec_no"] for d in o["detail_list"]}]
    assert len(others) >= 3, f"{day}: too few branch orders without {code} to test with"
    [in_branch] = [
        m
        for m in kingdee.materials()
        if m.use_org == BRANCH_ORG and m.fields.get(MATERIAL_CODE_FIELD) == code
    ]
    kingdee.add_material(replace(in_branch, forbidden=True))

    assert pipeline.run(day).success
    assert_pipeline_invariant(pipeline, day)  # judges each bill by its warehouse's org
    org_of = {
        entry["stock"]: bill["FStockOrgId"] for bill in kingdee.bills() for entry in bill["entries"]
    }
    assert org_of[BRANCH_WAREHOUSE] == BRANCH_ORG
    assert {org for stock, org in org_of.items() if stock != BRANCH_WAREHOUSE} == {"100"}
    bills = pipeline.stored("kingdee_bills", day)
    held = bills[bills["missing_states"].map(lambda states: bool(states))]
    waits_on = f"{in_branch.number}@{BRANCH_ORG}"
    assert any(states == {waits_on: "disabled"} for states in held["missing_states"])
    assert set(held.loc[held["stock_org"] == BRANCH_ORG, "hold_reason"].str.contains("200"))

    sensor = build_held_and_failed_bills_sensor(PRODUCTION_STOCKOUT)
    cursor = tick(sensor, pipeline, None).cursor
    assert not tick(sensor, pipeline, cursor).run_requests
    kingdee.add_material(in_branch)  # enabled in the branch org
    [request] = tick(sensor, pipeline, cursor).run_requests
    assert f"{waits_on}=usable" in request.tags["wdt_kingdee/released_by"]
    assert pipeline.run(day).success
    assert_pipeline_invariant(pipeline, day)
    # Enabled now: a bill may still wait on it for another reason (its lot), never as disabled.
    assert "disabled" not in {
        (states or {}).get(waits_on)
        for states in pipeline.stored("kingdee_bills", day)["missing_states"]
    }


def test_stock_in_another_lot_does_not_let_a_bill_take_effect(make_pipeline):
    """Kingdee keeps stock per lot and bin. The day's bills are saved and submitted while nothing
    is on hand; then each place they take from is stocked exactly — but for one lot, whose stock
    sits in another lot of the same material and bin. The re-run audits every bill but those
    taking from that lot, which stay refused at audit with Kingdee's reason naming the lot."""
    pipeline = make_pipeline(**REAL_DATA_CENTER, missing_ratio=0, kingdee_track_stock=True)
    day = pipeline.days[-1]
    pipeline.run(day)
    kingdee = pipeline.sandbox.kingdee
    assert {bill["FDocumentStatus"] for bill in kingdee.bills()} == {"B"}, "all refused: no stock"
    need: Counter = Counter()
    takes: dict[tuple, set[str]] = {}
    for bill in kingdee.bills():
        for entry in bill["entries"]:
            place = (entry["material"], entry["stock"], entry["lot"], entry.get("bin"))
            need[place] += Decimal(entry["qty"])
            takes.setdefault(place, set()).add(bill["FBillNo"])
    short = next(place for place in sorted(need, key=str) if place[2] is not None)
    for (material, stock, lot, bin_number), qty in need.items():
        moved = f"{lot}-OTHER" if (material, stock, lot, bin_number) == short else lot
        kingdee.set_stock(material, stock, qty, lot=moved, bin_number=bin_number)

    pipeline.run(day)
    not_audited = {bill["FBillNo"] for bill in kingdee.bills() if bill["FDocumentStatus"] != "C"}
    assert not_audited == takes[short]
    results = pipeline.stored("kingdee_write_results", day)
    refused = results[results["kingdee_bill_no"].isin(not_audited)]
    assert set(refused["settled"]) == {"refused_at_audit"}
    assert all(
        f"批号“{short[2].casefold()}”的即时库存不足" in " ".join(messages)
        for messages in refused["messages"]
    )
