"""The one daily partitioning: Beijing calendar days from the go-live day on."""

from __future__ import annotations

import dagster as dg

from wdt_kingdee_assets.beijing import start_date

# end_offset=1 adds the current, still open Beijing day so that it can be synced intraday.
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=start_date(), timezone="Asia/Shanghai", end_offset=1
)
