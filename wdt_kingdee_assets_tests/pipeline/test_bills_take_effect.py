"""Bills that take effect, through Dagster: after the save every ready bill is submitted and
audited (the default after_save), gated and idempotent; a stock shortage holds exactly its bills
until stock arrives; after_save none leaves them saved."""

from __future__ import annotations

from decimal import Decimal

import yaml

from wdt_kingdee_assets_tests.fixtures.pipeline import (
    Pipeline,
    check_results,
    materializations,
    needs_attention,
)


def statuses(pipeline: Pipeline) -> dict[str, str]:
    return {bill["FBillNo"]: bill["FDocumentStatus"] for bill in pipeline.sandbox.kingdee.bills()}


def figures(result) -> dict:
    [written] = materializations(result, "kingdee_write_results")
    return {key: value.value for key, value in written.metadata.items()}


def test_by_default_every_ready_bill_ends_audited_and_a_rerun_touches_none(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=12)
    day = pipeline.days[-1]
    result = pipeline.run(day)
    assert result.success and check_results(result)["ready_bills_in_effect"].passed
    assert set(statuses(pipeline).values()) == {"C"}
    first = figures(result)
    assert first["audited"] == len(statuses(pipeline)) and first["after_save"] == "audit"
    again = figures(pipeline.run(day))
    assert (again["submit_calls"], again["audit_calls"]) == (0, 0)
    assert again["audited"] == first["audited"]


def test_a_stock_shortage_holds_exactly_its_bills_until_stock_arrives(make_pipeline):
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=10, kingdee_track_stock=True)
    day = pipeline.days[-1]
    need = pipeline.stock_needed(day)
    # Everything in stock but one material in one warehouse (and lot), which lacks a little.
    short_place = sorted(need, key=str)[0]
    for (material, stock, lot), qty in need.items():
        held_back = Decimal("0.0001") if (material, stock, lot) == short_place else 0
        pipeline.sandbox.kingdee.set_stock(material, stock, qty - held_back, lot=lot)
    result = pipeline.run(day)
    assert needs_attention(result), (
        "a refusal at audit needs attention: the day fails, the write stands"
    )
    check = check_results(result)["ready_bills_in_effect"]
    assert not check.passed and "即时库存不足" in check.metadata["bills"].value
    results = pipeline.stored("kingdee_write_results", day)
    refused = set(results.loc[results["settled"] == "refused_at_audit", "bill_no"])
    assert refused and set(results.loc[results["settled"] == "refused_at_audit", "failure"]) == {
        "transient"
    }
    assert {no for no, status in statuses(pipeline).items() if status != "C"} == refused
    # Stock arrives: the re-run audits exactly the refused bills.
    material, stock, lot = short_place
    pipeline.sandbox.kingdee.set_stock(material, stock, need[short_place], lot=lot)
    rerun = pipeline.run(day)
    assert check_results(rerun)["ready_bills_in_effect"].passed
    assert set(statuses(pipeline).values()) == {"C"}


def test_after_save_none_leaves_the_bills_saved(make_pipeline, tmp_path, monkeypatch):
    path = tmp_path / "none.yaml"
    path.write_text(yaml.safe_dump({"after_save": "none"}), encoding="utf-8")
    monkeypatch.setenv("WDT_KINGDEE_MAPPING", str(path))
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=6)
    result = pipeline.run(pipeline.days[-1])
    assert result.success and set(statuses(pipeline).values()) == {"A"}
    written = figures(result)
    assert (written["submit_calls"], written["audit_calls"], written["saved"]) == (
        0,
        0,
        len(statuses(pipeline)),
    )
