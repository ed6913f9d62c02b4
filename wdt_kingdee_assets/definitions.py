"""The one Definitions object: every flow's definitions (``factory.py``), merged with the shared
resources, the failure alerts and the executor."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from wdt_kingdee_assets.alerts import alert_notifier_from_env, failure_alerts_sensor
from wdt_kingdee_assets.factory import build_flow_defs
from wdt_kingdee_assets.flows import FLOWS
from wdt_kingdee_assets.resources import KingdeeResource, WdtResource
from wdt_kingdee_assets.storage import PartitionedJsonlIOManager


def _optional(name: str, default: str) -> str:
    """Non-secret tunables (SPEC §5 optional variables) with their documented defaults."""
    return os.environ.get(name) or default


# The first delay before a failed API call is tried again, both clients (then doubling).
CALL_RETRY_DELAY = "WDT_KINGDEE_CALL_RETRY_DELAY_SECONDS"


def build_resources(data_dir: str | None = None) -> dict[str, Any]:
    """The resources, credentials from the environment (resolved by Dagster at run time)."""
    return {
        "wdt": WdtResource(
            base_url=dg.EnvVar("WDT_BASE_URL"),
            sid=dg.EnvVar("WDT_SID"),
            appkey=dg.EnvVar("WDT_APPKEY"),
            appsecret=dg.EnvVar("WDT_APPSECRET"),
            page_size=int(_optional("WDT_PAGE_SIZE", "100")),
            calls_per_minute=float(_optional("WDT_CALLS_PER_MINUTE", "60")),
            throttle_first_wait_seconds=float(_optional("WDT_THROTTLE_FIRST_WAIT_SECONDS", "60")),
            throttle_max_wait_seconds=float(_optional("WDT_THROTTLE_MAX_WAIT_SECONDS", "900")),
            retry_first_delay_seconds=float(_optional(CALL_RETRY_DELAY, "1")),
        ),
        "kingdee": KingdeeResource(
            base_url=dg.EnvVar("KINGDEE_BASE_URL"),
            acct_id=dg.EnvVar("KINGDEE_ACCT_ID"),
            username=dg.EnvVar("KINGDEE_USERNAME"),
            app_id=dg.EnvVar("KINGDEE_APP_ID"),
            app_secret=dg.EnvVar("KINGDEE_APP_SECRET"),
            lcid=int(_optional("KINGDEE_LCID", "2052")),
            org_number=_optional("KINGDEE_ORG_NUMBER", "100"),
            auth_mode=_optional("KINGDEE_AUTH_MODE", "signature"),
            retry_first_delay_seconds=float(_optional(CALL_RETRY_DELAY, "1")),
        ),
        "io_manager": PartitionedJsonlIOManager(base_dir=data_dir),
    }


def _shared_defs() -> dg.Definitions:
    """What all flows share: resources, the failure alerts, the executor."""
    return dg.Definitions(
        sensors=[failure_alerts_sensor],
        resources={**build_resources(), "alert_notifier": alert_notifier_from_env()},
        # A day's steps form one chain, so a process per step (the multiprocess default) buys
        # no parallelism and costs a Python start per step, eight per day of a backfill. In
        # process, the steps of a run also share one WDT rate limiter; the pools still apply
        # per step.
        executor=dg.in_process_executor,
    )


# Each flow's own definitions, by flow name (tests and tools that work on one flow use them).
FLOW_DEFS = {flow.name: build_flow_defs(flow) for flow in FLOWS}

defs = dg.Definitions.merge(_shared_defs(), *FLOW_DEFS.values())
