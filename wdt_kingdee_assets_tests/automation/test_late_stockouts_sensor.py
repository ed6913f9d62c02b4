"""The late-stock-outs sensor: re-counts synced days at WDT and re-syncs exactly the day that grew."""

from __future__ import annotations

import json

import pytest

from wdt_kingdee_assets.automation import build_late_documents_sensor
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets_tests.automation.conftest import late_order, tick


@pytest.fixture
def synced(make_pipeline):
    """Three closed days at WDT (relative to the real Beijing today, as the sensor sees it); the
    two latest are synced, the oldest never was."""
    pipeline = make_pipeline(today=None, days=3, orders_per_day=4, missing_ratio=0)
    for day in pipeline.days[1:]:
        assert pipeline.run(day).success
    return pipeline


def test_requests_only_the_day_whose_count_grew_and_not_again_after_a_restart(synced):
    sensor = build_late_documents_sensor(PRODUCTION_STOCKOUT, lookback_days=7)
    quiet = tick(sensor, synced, None)
    assert not quiet.run_requests and "no late stock-outs" in quiet.skip_message

    never_synced, grown, unchanged = synced.days
    synced.sandbox.wdt.add_orders(
        [
            late_order(synced, grown, 990001, "LATE-1"),
            late_order(synced, never_synced, 990002, "LATE-0"),
        ]
    )
    asked = tick(sensor, synced, quiet.cursor)
    [request] = asked.run_requests
    assert request.partition_key == grown
    assert request.tags["wdt_kingdee/wdt_count"] == str(len(synced.completed_orders(grown)))
    assert request.run_key.startswith(f"late:{grown}:sync")
    assert json.loads(asked.cursor)["requested"][grown]["count"] == len(
        synced.completed_orders(grown)
    )

    # Restart: a new evaluation with the saved cursor while the run is still pending.
    again = tick(sensor, synced, asked.cursor)
    assert not again.run_requests

    # The requested run syncs the day: its count is now the synced one, nothing to ask.
    assert synced.run(grown).success
    settled = tick(sensor, synced, again.cursor)
    assert not settled.run_requests
    assert unchanged not in json.loads(settled.cursor)["requested"]

    # Yet another late stock-out for the same day: asked anew, under a new run key.
    synced.sandbox.wdt.add_orders([late_order(synced, grown, 990003, "LATE-2")])
    anew = tick(sensor, synced, settled.cursor)
    [second] = anew.run_requests
    assert second.partition_key == grown and second.run_key != request.run_key


def test_a_forgotten_cursor_asks_again_while_the_day_is_still_short(synced):
    """Losing the cursor must not lose the work: the day is still short at WDT, so it is asked
    again (Dagster then drops the duplicate run key if the first run was already launched)."""
    sensor = build_late_documents_sensor(PRODUCTION_STOCKOUT, lookback_days=7)
    day = synced.days[-1]
    synced.sandbox.wdt.add_orders([late_order(synced, day, 990004, "LATE-3")])
    first = tick(sensor, synced, None)
    fresh = tick(sensor, synced, None)
    assert [r.partition_key for r in first.run_requests] == [day]
    assert [r.run_key for r in fresh.run_requests] == [r.run_key for r in first.run_requests]


def test_days_outside_the_lookback_are_not_recounted(synced):
    """One one-row WDT call per synced day in the lookback, none for older days."""
    two_days_ago = synced.days[-2]
    synced.sandbox.wdt.add_orders([late_order(synced, two_days_ago, 990005, "LATE-4")])
    calls = synced.sandbox.wdt.state()["calls"]
    short = tick(build_late_documents_sensor(PRODUCTION_STOCKOUT, lookback_days=1), synced, None)
    assert not short.run_requests
    assert synced.sandbox.wdt.state()["calls"] == calls + 1
    wide = tick(build_late_documents_sensor(PRODUCTION_STOCKOUT, lookback_days=2), synced, None)
    assert [r.partition_key for r in wide.run_requests] == [two_days_ago]
    assert synced.sandbox.wdt.state()["calls"] == calls + 3
