"""One flow → its Dagster definitions: four assets, their checks, the job, schedules and sensors.

The way ``dagster-dlt`` builds assets from a source: the flow (``flows.py``) says what is synced,
this says where it shows up in Dagster. ``definitions.py`` merges every flow's definitions with
the shared resources; the API pools (``wdt_api``, ``kingdee_api``) are per API, shared by all
flows, so that a backfill of several flows still has one caller per API at a time.
"""

from __future__ import annotations

import dagster as dg

from wdt_kingdee_assets.assets import build_assets
from wdt_kingdee_assets.automation import build_automation, int_setting
from wdt_kingdee_assets.checks import build_checks
from wdt_kingdee_assets.drift_assets import (
    build_corrections_asset,
    build_drift_asset,
    build_drift_check,
    build_drift_jobs,
)
from wdt_kingdee_assets.drift_sensor import build_drift_sensor
from wdt_kingdee_assets.flow import Flow


def build_flow_defs(flow: Flow) -> dg.Definitions:
    assets = build_assets(flow)
    corrections = build_corrections_asset(flow, assets)
    drift = build_drift_asset(flow, corrections)
    job = dg.define_asset_job(
        flow.job_name,
        # The group but its drift report and corrections, which have their own jobs.
        selection=dg.AssetSelection.groups(flow.group)
        - dg.AssetSelection.assets(drift, corrections),
        description=(f"同步{flow.title}: pull, normalize, map and write one day, with all checks."),
    )
    schedules, sensors = build_automation(flow)
    drift_jobs = build_drift_jobs(flow, drift, corrections)
    lookback = int_setting("WDT_KINGDEE_DRIFT_LOOKBACK_DAYS", 7)
    sensors = [*sensors, build_drift_sensor(flow, drift_jobs, lookback_days=lookback)]
    return dg.Definitions(
        assets=[*assets.all(), corrections, drift],
        asset_checks=[*build_checks(flow, assets), build_drift_check(flow, drift)],
        jobs=[job, *drift_jobs],
        schedules=schedules,
        sensors=sensors,
    )
