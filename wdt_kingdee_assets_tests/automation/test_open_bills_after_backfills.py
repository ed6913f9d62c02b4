"""A backfill's runs leave the open bills' view across days to one refresh after them."""

from __future__ import annotations

import uuid

import dagster as dg

from wdt_kingdee_assets.definitions import build_resources
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.open_bills import entry_path, read_day_open_bills
from wdt_kingdee_assets.open_bills_asset import (
    OPEN_BILLS_KEY,
    REFRESH_JOB,
    export_paths,
    open_bills,
    open_bills_after_backfills,
)
from wdt_kingdee_assets_tests.automation.conftest import tick


def refreshes(result: dg.ExecuteInProcessResult) -> list[dg.AssetMaterialization]:
    return [
        event.event_specific_data.materialization
        for event in result.get_asset_materialization_events()
        if event.asset_key == OPEN_BILLS_KEY
    ]


def test_a_backfill_run_records_its_day_and_the_view_is_refreshed_once_none_is_left(
    make_pipeline,
):
    pipeline = make_pipeline(today=None, days=2, orders_per_day=20, missing_ratio=0.3)
    first, second = pipeline.days
    workbook = export_paths(pipeline.data_dir)[2]

    # Outside a backfill, the write refreshes the view and its exports in the same run.
    assert refreshes(pipeline.run(first))
    exported = workbook.stat().st_mtime_ns
    assert tick(open_bills_after_backfills, pipeline, None).skip_message

    # A backfill's run records its day's open bills and leaves the view and the exports alone.
    backfilled = pipeline.run(second, tags={"dagster/backfill": "bf1"})
    assert backfilled.success and not refreshes(backfilled)
    recorded = read_day_open_bills(pipeline.data_dir, PRODUCTION_STOCKOUT, second)
    assert recorded is not None and len(recorded) > 0  # the sandbox lacks some materials
    assert entry_path(pipeline.data_dir, PRODUCTION_STOCKOUT, second).exists()
    assert workbook.stat().st_mtime_ns == exported

    # While another run of the backfill is still running, the sensor waits for it.
    running = dg.DagsterRun(
        job_name="sync_stockouts",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/backfill": "bf1", "dagster/partition": second},
    )
    pipeline.instance.add_run(running)
    waiting = tick(open_bills_after_backfills, pipeline, None)
    assert not waiting.run_requests and "still queued or running" in waiting.skip_message

    # None left: one refresh is asked for, the same one on every tick until it has run.
    pipeline.instance.delete_run(running.run_id)
    [request] = tick(open_bills_after_backfills, pipeline, None).run_requests
    [again] = tick(open_bills_after_backfills, pipeline, None).run_requests
    assert request.run_key == again.run_key

    # A refresh that failed is asked for again, under a new key, at most three times in all.
    keys = [request.run_key]
    for _ in range(3):
        pipeline.instance.add_run(
            dg.DagsterRun(
                job_name=REFRESH_JOB,
                run_id=str(uuid.uuid4()),
                status=dg.DagsterRunStatus.FAILURE,
                tags=request.tags,
            )
        )
        asked = tick(open_bills_after_backfills, pipeline, None)
        keys += [retry.run_key for retry in asked.run_requests]
    assert len(set(keys)) == 3 and "failed 3 times" in asked.skip_message

    refreshed = dg.materialize(
        [open_bills], resources=build_resources(str(pipeline.data_dir)), instance=pipeline.instance
    )
    [view] = refreshes(refreshed)
    assert view.metadata["days"].value == 2  # both days' open bills, the backfilled one too
    assert workbook.stat().st_mtime_ns > exported
    assert not tick(open_bills_after_backfills, pipeline, None).run_requests
