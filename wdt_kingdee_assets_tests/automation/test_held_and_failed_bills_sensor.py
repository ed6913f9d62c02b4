"""The held-and-failed-bills sensor: transient failures retried with growing delays, bounded;
bills waiting on a material re-synced when the material changes; the rest left to people."""

from __future__ import annotations

import copy
import json
import time

from wdt_kingdee_assets.automation import build_held_and_failed_bills_sensor
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.sandbox.kingdee_server import KingdeeMaterial
from wdt_kingdee_assets.sandbox.runtime import kingdee_material
from wdt_kingdee_assets_tests.automation.conftest import late_order, tick
from wdt_kingdee_assets_tests.fixtures.pipeline import needs_attention

MINUTE = 60.0


class Clock:
    """The sensor's time source, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * MINUTE


def add_missing_materials(pipeline) -> None:
    for material in pipeline.sandbox.catalog:
        if not material.in_kingdee:
            pipeline.sandbox.kingdee.add_material(kingdee_material(material, "100"))


def outcomes(pipeline, day) -> set[str]:
    return set(pipeline.stored("kingdee_write_results", day)["outcome"])


def test_held_bills_wait_for_their_materials_and_are_resynced_once_they_exist(make_pipeline):
    pipeline = make_pipeline(today=None, days=1, orders_per_day=20, missing_ratio=0.3)
    day = pipeline.days[-1]
    assert pipeline.run(day).success
    results = pipeline.stored("kingdee_write_results", day)
    held = results[results["outcome"] == "held"]
    assert len(held) > 0 and set(held["failure"]) == {"permanent"}
    absent = {m.number for m in pipeline.sandbox.catalog if not m.in_kingdee}
    assert {material for blockers in held["blockers"] for material in blockers} <= absent

    clock = Clock()
    sensor = build_held_and_failed_bills_sensor(
        PRODUCTION_STOCKOUT, base_delay_minutes=10, max_attempts=4, clock=clock
    )
    seen = tick(sensor, pipeline, None)
    entry = json.loads(seen.cursor)["days"][day]
    assert entry["held"] == len(held) and set(entry["blockers"].values()) == {"absent"}

    # No timer: hours pass and nothing is re-synced while the materials are still missing.
    cursor = seen.cursor
    for _ in range(3):
        clock.advance(120)
        result = tick(sensor, pipeline, cursor)
        assert not result.run_requests
        cursor = result.cursor

    # Someone creates the materials in Kingdee: the next tick re-syncs the day, once.
    add_missing_materials(pipeline)
    released = tick(sensor, pipeline, cursor)
    [request] = released.run_requests
    assert request.partition_key == day
    assert "=usable:" in request.tags["wdt_kingdee/released_by"]
    assert not tick(sensor, pipeline, released.cursor).run_requests  # not asked twice

    assert pipeline.run(day).success
    assert outcomes(pipeline, day) <= {"created", "already_in_kingdee"}
    cleared = tick(sensor, pipeline, released.cursor)
    assert not cleared.run_requests
    assert json.loads(cleared.cursor)["days"] == {}


def test_transient_failures_are_retried_with_growing_delays_and_at_most_max_attempts(
    make_pipeline,
):
    # Every BatchSave answers HTTP 500 for a while: the bills end failed, transient.
    pipeline = make_pipeline(
        today=None,
        days=1,
        orders_per_day=4,
        missing_ratio=0,
        kingdee_faults=["5xx@BatchSave,times=9"],
    )
    day = pipeline.days[-1]
    assert needs_attention(pipeline.run(day))
    results = pipeline.stored("kingdee_write_results", day)
    assert set(results["outcome"]) == {"failed"} and set(results["failure"]) == {"transient"}

    clock = Clock()
    sensor = build_held_and_failed_bills_sensor(
        PRODUCTION_STOCKOUT, base_delay_minutes=10, max_attempts=2, clock=clock
    )
    seen = tick(sensor, pipeline, None)
    assert not seen.run_requests  # the first delay has not passed

    clock.advance(10.5)
    first = tick(sensor, pipeline, seen.cursor)
    [request] = first.run_requests
    assert request.tags["wdt_kingdee/retry_attempt"] == "1"
    # A restart with the saved cursor does not repeat it; the next delay is twice as long.
    clock.advance(15)
    assert not tick(sensor, pipeline, first.cursor).run_requests

    assert needs_attention(pipeline.run(day))  # still refused (faults left): attempt 2 after 20 min
    clock.advance(4)
    waiting = tick(sensor, pipeline, first.cursor)
    assert not waiting.run_requests
    clock.advance(1.5)
    second = tick(sensor, pipeline, waiting.cursor)
    [retry] = second.run_requests
    assert retry.tags["wdt_kingdee/retry_attempt"] == "2" and retry.run_key != request.run_key

    assert needs_attention(pipeline.run(day))
    clock.advance(600)
    done = tick(sensor, pipeline, second.cursor)
    assert not done.run_requests, "max_attempts reached"
    assert json.loads(done.cursor)["days"][day]["gave_up"]


def test_a_hold_no_retry_can_fix_is_not_retried_until_its_material_changes(make_pipeline):
    pipeline = make_pipeline(today=None, days=1, orders_per_day=4, missing_ratio=0)
    day = pipeline.days[-1]
    # A lot-managed material shipped without its lot: held before sending, every time.
    material = next(m for m in pipeline.sandbox.catalog if m.in_kingdee and m.batch_managed)
    order = copy.deepcopy(late_order(pipeline, day, 990202, "NOLOT-1"))
    order["detail_list"] = [
        {key: value for key, value in line.items() if key != "batch_no"}
        | {
            "spec_no": material.number,
            "goods_no": material.number,
            "base_unit_name": material.base_unit,
            # nor in its positions, whatever the copied order carried there
            "position_details_list": [
                {**position, "batch_no": ""} for position in line["position_details_list"]
            ],
        }
        for line in order["detail_list"][:1]
    ]
    pipeline.sandbox.wdt.add_orders([order])
    assert pipeline.run(day).success
    results = pipeline.stored("kingdee_write_results", day).set_index("bill_no")
    assert results.loc["NOLOT-1", "outcome"] == "held"
    assert "批号管理" in " ".join(results.loc["NOLOT-1", "messages"])
    assert results.loc["NOLOT-1", "failure"] == "permanent"
    assert list(results.loc["NOLOT-1", "blockers"]) == [material.number]

    clock = Clock()
    sensor = build_held_and_failed_bills_sensor(
        PRODUCTION_STOCKOUT, base_delay_minutes=1, max_attempts=5, clock=clock
    )
    cursor = tick(sensor, pipeline, None).cursor
    for _ in range(4):
        clock.advance(60)
        result = tick(sensor, pipeline, cursor)
        assert not result.run_requests, "a permanent refusal is not retried on a timer"
        cursor = result.cursor

    # The data center stops managing the material by lot: its state changed, so the day is
    # reconsidered, and the bill is written.
    pipeline.sandbox.kingdee.add_material(
        KingdeeMaterial(material.number, material.name, material.base_unit, batch_managed=False)
    )
    [request] = tick(sensor, pipeline, cursor).run_requests
    assert request.partition_key == day
    assert pipeline.run(day).success
    after = pipeline.stored("kingdee_write_results", day).set_index("bill_no")
    assert after.loc["NOLOT-1", "outcome"] == "created"


def test_a_refusal_that_hinges_on_no_material_is_left_to_people(make_pipeline):
    pipeline = make_pipeline(today=None, days=1, orders_per_day=4, missing_ratio=0)
    day = pipeline.days[-1]
    order = late_order(pipeline, day, 990101, "NOWHERE-1")
    for line in order["detail_list"]:
        line.pop("position_no", None)
    order["warehouse_no"] = "CK404"  # a warehouse Kingdee does not know
    pipeline.sandbox.wdt.add_orders([order])
    assert needs_attention(pipeline.run(day))
    results = pipeline.stored("kingdee_write_results", day).set_index("bill_no")
    assert results.loc["NOWHERE-1", "failure"] == "permanent"
    assert list(results.loc["NOWHERE-1", "blockers"]) == []

    clock = Clock()
    sensor = build_held_and_failed_bills_sensor(
        PRODUCTION_STOCKOUT, base_delay_minutes=1, clock=clock
    )
    cursor = tick(sensor, pipeline, None).cursor
    for _ in range(3):
        clock.advance(600)
        result = tick(sensor, pipeline, cursor)
        assert not result.run_requests
        cursor = result.cursor
    assert json.loads(cursor)["days"][day]["failed"] == 1


def test_days_without_held_or_failed_bills_are_never_retried(make_pipeline):
    pipeline = make_pipeline(today=None, days=1, orders_per_day=4, missing_ratio=0)
    assert pipeline.run(pipeline.days[-1]).success
    clock = Clock()
    sensor = build_held_and_failed_bills_sensor(
        PRODUCTION_STOCKOUT, base_delay_minutes=1, clock=clock
    )
    first = tick(sensor, pipeline, None)
    clock.advance(600)
    later = tick(sensor, pipeline, first.cursor)
    assert not first.run_requests and not later.run_requests
    assert json.loads(later.cursor)["days"] == {}
    assert json.loads(later.cursor)["after"] is not None


def test_bills_refused_at_audit_for_stock_are_retried_until_they_take_effect(make_pipeline):
    pipeline = make_pipeline(
        today=None, days=1, orders_per_day=4, missing_ratio=0, kingdee_track_stock=True
    )
    day = pipeline.days[-1]
    assert needs_attention(pipeline.run(day))  # no stock at all: every audit is refused
    results = pipeline.stored("kingdee_write_results", day)
    assert set(results["settled"]) == {"refused_at_audit"}
    assert set(results["failure"]) == {"transient"}

    clock = Clock()
    sensor = build_held_and_failed_bills_sensor(
        PRODUCTION_STOCKOUT, base_delay_minutes=10, max_attempts=3, clock=clock
    )
    seen = tick(sensor, pipeline, None)
    clock.advance(10.5)
    [request] = tick(sensor, pipeline, seen.cursor).run_requests
    assert request.partition_key == day
    # Stock arrives; the requested run audits the bills, and the sensor lets the day go.
    for material, stock, lot in pipeline.stock_needed(day):
        pipeline.sandbox.kingdee.set_stock(material, stock, 10**6, lot=lot)
    assert pipeline.run(day).success
    assert {b["FDocumentStatus"] for b in pipeline.sandbox.kingdee.bills()} == {"C"}
    clock.advance(60)
    settled = tick(sensor, pipeline, seen.cursor)
    assert not settled.run_requests and day not in json.loads(settled.cursor)["days"]
