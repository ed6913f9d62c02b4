"""Merged bills (合并生单) through Dagster against the sandbox: one 其他出库单 per warehouse and day,
split at the line cap, a re-run sends nothing, a released stock-out gets a supplementary bill and
the bills already written stay as they are."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import yaml

from wdt_kingdee_assets.reference import parse_reference
from wdt_kingdee_assets.sandbox.runtime import kingdee_material
from wdt_kingdee_assets_tests.fixtures.pipeline import Pipeline, check_results, materializations

MAX_LINES = 6


def merged_mapping(tmp_path, monkeypatch, **extra) -> None:
    path = tmp_path / "merged.yaml"
    path.write_text(
        yaml.safe_dump({"strategy": "per_day_warehouse", "max_lines": MAX_LINES, **extra}),
        encoding="utf-8",
    )
    monkeypatch.setenv("WDT_KINGDEE_MAPPING", str(path))


def per_warehouse(orders: list[dict]) -> dict[tuple[str, str], Decimal]:
    """Σ num per (warehouse, material) of WDT stock-outs."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for order in orders:
        for line in order["detail_list"]:
            totals[(order["warehouse_no"], line["spec_no"])] += Decimal(str(line["num"]))
    return dict(totals)


def in_kingdee(pipeline: Pipeline) -> dict[tuple[str, str], Decimal]:
    """Σ FQty per (warehouse, material) of Kingdee's 其他出库单."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for bill in pipeline.sandbox.kingdee.bills():
        for entry in bill["entries"]:
            totals[(entry["stock"], entry["material"])] += Decimal(entry["qty"])
    return dict(totals)


def write_figures(result, node: str = "kingdee_write_results") -> dict:
    [written] = materializations(result, node)
    return {key: value.value for key, value in written.metadata.items()}


def test_merged_bills_end_to_end(make_pipeline, tmp_path, monkeypatch):
    merged_mapping(tmp_path, monkeypatch)
    pipeline = make_pipeline(missing_ratio=0.15, orders_per_day=30, kingdee_numbering="auto")
    day = pipeline.days[-1]
    orders = pipeline.completed_orders(day)
    absent = {m.number for m in pipeline.sandbox.catalog if not m.in_kingdee}
    blocked = [o for o in orders if {line["spec_no"] for line in o["detail_list"]} & absent]
    ready = [o for o in orders if o not in blocked]
    assert blocked and ready

    first = pipeline.run(day)
    assert first.success
    checks = check_results(first)
    for name in ("bill_quantities_match_source", "kingdee_quantities_match_bills"):
        assert checks[name].passed, (name, checks[name].metadata)
    assert checks["no_duplicate_bills_in_kingdee"].passed
    # One bill per warehouse and day, split at the line cap; quantities = the ready stock-outs'.
    bills = pipeline.sandbox.kingdee.bills()
    refs = [parse_reference(bill["FNote"]) for bill in bills]
    assert all(ref.startswith(f"{day}/") for ref in refs)
    assert {ref.split("/")[1] for ref in refs} == {o["warehouse_no"] for o in ready}
    assert all(len(bill["entries"]) <= MAX_LINES for bill in bills)
    assert any(ref.endswith("/2") for ref in refs), "some warehouse's day needs two parts"
    assert in_kingdee(pipeline) == per_warehouse(ready)
    # Held stock-outs stay out of the merged bills, visibly held with their reason.
    stored = pipeline.stored("kingdee_bills", day)
    held = stored[stored["readiness"] == "held"]
    assert sorted(held["stockout_no"]) == sorted(o["stockout_no"] for o in blocked)
    assert all("物料在金蝶中不存在或已禁用" in reason for reason in held["hold_reason"])
    # The lineage leads from every entry back to its WDT lines.
    merged = stored[stored["readiness"] == "ready"]
    lineage_lines = {
        (document, rec_id) for entries in merged["lineage"] for entry in entries
        for document, rec_id, _ in entry
    }  # fmt: skip
    assert lineage_lines == {
        (o["stockout_no"], line["rec_id"]) for o in ready for line in o["detail_list"]
    }

    # A re-run sends nothing.
    again = pipeline.run(day)
    figures = write_figures(again)
    assert (figures["created"], figures["already_in_kingdee"]) == (0, len(bills))
    assert len(pipeline.sandbox.kingdee.bills()) == len(bills)

    # The materials are created: the held stock-outs go into supplementary bills, and the bills
    # already written are exactly as they were.
    for material in pipeline.sandbox.catalog:
        if material.number in absent:
            pipeline.sandbox.kingdee.add_material(kingdee_material(material, "100"))
    released = pipeline.run(day)
    assert released.success
    after = pipeline.sandbox.kingdee.bills()
    assert after[: len(bills)] == bills, "no written bill was changed"
    supplements = [parse_reference(bill["FNote"]) for bill in after[len(bills) :]]
    assert supplements and all("/S1-" in ref for ref in supplements)
    assert in_kingdee(pipeline) == per_warehouse(orders)
    checks = check_results(released)
    for name in ("bill_quantities_match_source", "kingdee_quantities_match_bills"):
        assert checks[name].passed, (name, checks[name].metadata)
    assert pipeline.run(day).success
    assert len(pipeline.sandbox.kingdee.bills()) == len(after)


def test_kept_lines_give_one_entry_per_source_line(make_pipeline, tmp_path, monkeypatch):
    merged_mapping(tmp_path, monkeypatch, merge_lines=False, max_lines=200)
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=12)
    day = pipeline.days[-1]
    assert pipeline.run(day).success
    orders = pipeline.completed_orders(day)
    bills = pipeline.sandbox.kingdee.bills()
    assert len(bills) == len({o["warehouse_no"] for o in orders})
    assert sum(len(bill["entries"]) for bill in bills) == sum(len(o["detail_list"]) for o in orders)
    assert in_kingdee(pipeline) == per_warehouse(orders)


def test_switching_to_merged_bills_mid_day_writes_no_stockout_twice(
    make_pipeline, tmp_path, monkeypatch
):
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=10)
    day = pipeline.days[-1]
    assert pipeline.run(day).success  # one bill per stock-out
    written = len(pipeline.sandbox.kingdee.bills())
    late = dict(pipeline.completed_orders(day)[0], stockout_id=990001, stockout_no="CK-LATE")
    pipeline.sandbox.wdt.add_orders([late])
    merged_mapping(tmp_path, monkeypatch)
    result = pipeline.run(day)
    assert result.success
    figures = write_figures(result)
    assert (figures["already_in_kingdee"], figures["created"]) == (written, 1)
    [new] = pipeline.sandbox.kingdee.bills()[written:]
    assert parse_reference(new["FNote"]).startswith(f"{day}/")
    assert in_kingdee(pipeline) == per_warehouse(pipeline.completed_orders(day))
    assert check_results(result)["no_duplicate_bills_in_kingdee"].passed
