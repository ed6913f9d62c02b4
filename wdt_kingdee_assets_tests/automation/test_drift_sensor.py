"""The changed-in-WDT sensor: WDT's modified documents (time_type=3) ask for the comparison of
each synced day they touch, once, and nothing for what a sync already read."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from wdt_kingdee_assets.beijing import BEIJING
from wdt_kingdee_assets.definitions import FLOW_DEFS
from wdt_kingdee_assets.drift_sensor import build_drift_sensor
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets_tests.automation.conftest import tick

FLOW = PRODUCTION_STOCKOUT


def sensor_at(moment: list[datetime]):
    jobs = [
        job
        for job in FLOW_DEFS[FLOW.name].jobs
        if job.name in (FLOW.preview_job_name, FLOW.correct_job_name)
    ]
    return build_drift_sensor(FLOW, jobs, clock=lambda: moment[0])


def test_a_document_changed_after_its_sync_asks_for_its_days_comparison(make_pipeline):
    pipeline = make_pipeline(today=None, days=2, orders_per_day=6, missing_ratio=0)
    first, second = pipeline.days
    for day in pipeline.days:
        assert pipeline.run(day).success
    now = [datetime.now(BEIJING)]
    sensor = sensor_at(now)
    quiet = tick(sensor, pipeline, None)
    assert not quiet.run_requests  # every modification so far was read by the syncs

    # One stock-out of the first day moves to the second; one of the second is cancelled.
    moved = pipeline.completed_orders(first)[0]["stockout_no"]
    cancelled = pipeline.completed_orders(second)[0]["stockout_no"]
    pipeline.sandbox.wdt.change_order(moved, consign_time=f"{second} 10:00:00")
    pipeline.sandbox.wdt.change_order(cancelled, cancel=True)
    now[0] += timedelta(minutes=5)  # past the settling lag
    asked = tick(sensor, pipeline, quiet.cursor)
    assert sorted(r.partition_key for r in asked.run_requests) == [first, second]
    assert {r.job_name for r in asked.run_requests} == {FLOW.preview_job_name}

    # Asked once: the next tick with the saved cursor asks for nothing more.
    now[0] += timedelta(minutes=15)
    assert not tick(sensor, pipeline, asked.cursor).run_requests

    # A day re-synced after the change (a second later: WDT's times have whole seconds) read
    # it, so a forgotten cursor asks only for the day not re-synced.
    time.sleep(1.1)
    assert pipeline.run(second).success
    assert [r.partition_key for r in tick(sensor, pipeline, None).run_requests] == [first]
