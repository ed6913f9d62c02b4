"""The one Definitions object: every flow's definitions (``factory.py``), merged with the shared
resources, the failure alerts and the executor."""

from __future__ import annotations

import dagster as dg

from wdt_kingdee_assets.alerts import alert_notifier_from_env, failure_alerts_sensor
from wdt_kingdee_assets.factory import build_flow_defs
from wdt_kingdee_assets.flows import FLOWS
from wdt_kingdee_assets.open_bills_asset import (
    open_bills,
    open_bills_after_backfills,
    refresh_open_bills,
)
from wdt_kingdee_assets.resources import build_resources


def _shared_defs() -> dg.Definitions:
    """What all flows share: resources, the open-bills view and its refresh after backfills, the
    failure alerts, the executor."""
    return dg.Definitions(
        assets=[open_bills],
        jobs=[refresh_open_bills],
        sensors=[failure_alerts_sensor, open_bills_after_backfills],
        resources={**build_resources(), "alert_notifier": alert_notifier_from_env()},
        # A day's steps form one chain, so a process per step (the multiprocess default) buys
        # no parallelism and costs a Python start per step, eight per day of a backfill.
        executor=dg.in_process_executor,
    )


# Each flow's own definitions, by flow name (tests and tools that work on one flow use them).
FLOW_DEFS = {flow.name: build_flow_defs(flow) for flow in FLOWS}

defs = dg.Definitions.merge(_shared_defs(), *FLOW_DEFS.values())
