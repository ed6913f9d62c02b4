"""The held-and-failed-bills sensor: re-syncs a day with growing delays, bounded, until it clears."""

from __future__ import annotations

import json
import time

from wdt_kingdee_assets.automation import build_held_and_failed_bills_sensor
from wdt_kingdee_assets.sandbox.runtime import kingdee_material
from wdt_kingdee_assets_tests.automation.conftest import late_order, tick

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


def test_held_bills_are_retried_with_growing_delays_and_dropped_once_they_clear(make_pipeline):
    pipeline = make_pipeline(today=None, days=1, orders_per_day=20, missing_ratio=0.3)
    day = pipeline.days[-1]
    assert pipeline.run(day).success
    held = int((pipeline.stored("kingdee_write_results", day)["outcome"] == "held").sum())
    assert held > 0

    clock = Clock()
    sensor = build_held_and_failed_bills_sensor(base_delay_minutes=10, max_attempts=4, clock=clock)
    seen = tick(sensor, pipeline, None)
    assert not seen.run_requests  # the first delay has not passed
    assert json.loads(seen.cursor)["days"][day]["held"] == held

    clock.advance(10.5)
    first = tick(sensor, pipeline, seen.cursor)
    [request] = first.run_requests
    assert request.partition_key == day
    assert request.tags["wdt_kingdee/retry_attempt"] == "1"

    # Restart with the saved cursor: the request is not repeated, not even when the first
    # delay has passed again — the next one is twice as long.
    clock.advance(15)
    assert not tick(sensor, pipeline, first.cursor).run_requests

    # The re-sync ran and the material is still missing: attempt 2 is due 20 min after
    # attempt 1 (the later of the previous request and the latest result).
    assert pipeline.run(day).success
    clock.advance(4)  # 19.5 min after attempt 1
    waiting = tick(sensor, pipeline, first.cursor)
    assert not waiting.run_requests
    clock.advance(1)
    second = tick(sensor, pipeline, waiting.cursor)
    [retry] = second.run_requests
    assert retry.tags["wdt_kingdee/retry_attempt"] == "2" and retry.run_key != request.run_key

    # Someone creates the materials in Kingdee; the re-sync sends exactly the held bills.
    add_missing_materials(pipeline)
    assert pipeline.run(day).success
    assert set(pipeline.stored("kingdee_write_results", day)["outcome"]) <= {
        "created",
        "already_in_kingdee",
    }
    clock.advance(120)
    cleared = tick(sensor, pipeline, second.cursor)
    assert not cleared.run_requests
    assert json.loads(cleared.cursor)["days"] == {}


def test_failed_bills_are_retried_at_most_max_attempts_times(make_pipeline):
    pipeline = make_pipeline(today=None, days=1, orders_per_day=4, missing_ratio=0)
    day = pipeline.days[-1]
    # A stock-out from a warehouse Kingdee does not know: Kingdee rejects its bill every time.
    order = late_order(pipeline, day, 990101, "NOWHERE-1")
    for line in order["detail_list"]:
        line.pop("position_no", None)
    order["warehouse_no"] = "CK404"
    pipeline.sandbox.wdt.add_orders([order])
    assert pipeline.run(day).success
    assert "failed" in set(pipeline.stored("kingdee_write_results", day)["outcome"])

    clock = Clock()
    sensor = build_held_and_failed_bills_sensor(base_delay_minutes=1, max_attempts=2, clock=clock)
    cursor = tick(sensor, pipeline, None).cursor
    attempts = []
    for _ in range(4):
        clock.advance(60)
        result = tick(sensor, pipeline, cursor)
        cursor = result.cursor
        attempts += [r.tags["wdt_kingdee/retry_attempt"] for r in result.run_requests]
        if result.run_requests:
            assert pipeline.run(day).success
    assert attempts == ["1", "2"]
    entry = json.loads(cursor)["days"][day]
    assert entry["gave_up"] and entry["failed"] == 1


def test_days_without_held_or_failed_bills_are_never_retried(make_pipeline):
    pipeline = make_pipeline(today=None, days=1, orders_per_day=4, missing_ratio=0)
    assert pipeline.run(pipeline.days[-1]).success
    clock = Clock()
    sensor = build_held_and_failed_bills_sensor(base_delay_minutes=1, clock=clock)
    first = tick(sensor, pipeline, None)
    clock.advance(600)
    later = tick(sensor, pipeline, first.cursor)
    assert not first.run_requests and not later.run_requests
    assert json.loads(later.cursor)["days"] == {}
    assert json.loads(later.cursor)["after"] is not None
