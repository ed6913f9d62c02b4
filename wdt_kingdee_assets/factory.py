"""One flow → its Dagster definitions: four assets, their checks, the job, schedules and sensors.

The way ``dagster-dlt`` builds assets from a source: the flow (``flows.py``) says what is synced,
this says where it shows up in Dagster. ``definitions.py`` merges every flow's definitions with
the shared resources; the API pools (``wdt_api``, ``kingdee_api``) and budgets are per API,
shared by all flows, so that a backfill of several flows still stays inside one budget per API.
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
    # The group but its drift report and corrections, which have their own jobs.
    sync_selection = dg.AssetSelection.groups(flow.group) - dg.AssetSelection.assets(
        drift, corrections
    )
    job = dg.define_asset_job(
        flow.job_name,
        selection=sync_selection,
        description=(f"同步{flow.title}: pull, normalize, map and write one day, with all checks."),
    )
    retry_job = dg.define_asset_job(
        flow.retry_job_name,
        selection=sync_selection,
        config={"ops": {assets.results.op.name: {"config": {"only_bills": []}}}},
        description=(
            f"重新推送 / re-push {flow.form.chinese}: the day's sync, sending only the bills named "
            f"in the config (ops → {assets.results.op.name} → config → only_bills: FBillNo or "
            "the WDT document number); the day's other bills are looked up, never sent. "
            "`wdt-kingdee retry --bill …` does the same from a shell."
        ),
    )
    schedules, sensors = build_automation(flow)
    drift_jobs = build_drift_jobs(flow, drift, corrections)
    lookback = int_setting("WDT_KINGDEE_DRIFT_LOOKBACK_DAYS", 7)
    sensors = [*sensors, build_drift_sensor(flow, drift_jobs, lookback_days=lookback)]
    return dg.Definitions(
        assets=[*assets.all(), corrections, drift],
        asset_checks=[*build_checks(flow, assets), build_drift_check(flow, drift)],
        jobs=[job, retry_job, *drift_jobs],
        schedules=schedules,
        sensors=sensors,
    )


def flow_parts(
    flow: Flow, flow_defs: dg.Definitions, names: set[str] | None = None, *, checks: bool = True
) -> list:
    """The flow's assets named (None: those its sync job runs — all but its comparison with
    Kingdee and the corrections), with their checks unless not wanted: what to materialize
    in-process."""
    apart = {flow.drift_name, flow.corrections_name}

    def wanted(key: dg.AssetKey) -> bool:
        name = key.path[-1]
        return name in names if names is not None else name not in apart

    assets = [a for a in flow_defs.assets if all(wanted(key) for key in a.keys)]
    checks = [
        c for c in flow_defs.asset_checks if all(wanted(spec.asset_key) for spec in c.check_specs)
    ]
    return [*assets, *checks]
