"""The open-bills view in Dagster: one unpartitioned asset, refreshed by every write.

Each flow's write step records its day's open bills (``open_bills.py``) and reports a new
materialization of ``open_bills`` in the same run, so the table in the UI is current the moment
a write ends — also when the day's own checks then fail the run (a blocking check stops the
assets downstream of it, so a downstream asset would go stale exactly when it matters).
Materializing the asset by hand rebuilds it from the stored days. Each refresh also writes the
view as CSV and XLSX beside the stored days, for Excel and WPS.

A refresh reads every day's open bills and exports all of them, so its cost grows with the
history: for a year of 100 open bills a day, 5.5 s. The runs of a backfill therefore record their
day's open bills and leave the view alone; once no backfill run is left queued or running, the
sensor ``open_bills_after_backfills`` refreshes it once (job ``refresh_open_bills``). A year's
backfill would otherwise spend hours of CPU re-exporting the same bills, a little more each day.
"""

from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from wdt_kingdee_assets.beijing import BEIJING
from wdt_kingdee_assets.evidence import BILL_NUMBERS, bill_numbers, record_table
from wdt_kingdee_assets.export import write_csv, write_xlsx
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.flows import FLOWS
from wdt_kingdee_assets.open_bills import (
    FOLDER,
    DayStatus,
    by_cause,
    day_open_bills,
    open_bills_view,
    record_day,
    status_of,
)
from wdt_kingdee_assets.storage import PartitionedJsonlIOManager

OPEN_BILLS_KEY = dg.AssetKey("open_bills")
BACKFILL_TAG = "dagster/backfill"
REFRESH_JOB = "refresh_open_bills"
AFTER_BACKFILLS_SENSOR = "open_bills_after_backfills"
DAY_STATUS_TAG = "wdt_kingdee/day_status"
OPEN_BILLS_TAG = "wdt_kingdee/open_bills"
SHOWN_BILLS = 200


def export_paths(data_dir: Path) -> tuple[Path, Path, Path]:
    """The view's exports: every open bill (CSV), the causes (CSV), both as one workbook."""
    folder = data_dir / FOLDER
    return folder / "open_bills.csv", folder / "open_bills_by_cause.csv", folder / "open_bills.xlsx"


def refresh(
    io_manager: PartitionedJsonlIOManager,
    replaced: dict[tuple[str, str], pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Rebuild the view and its exports; the asset's metadata."""
    view = open_bills_view(io_manager.data_dir, FLOWS, datetime.now(BEIJING).date(), replaced)
    causes = by_cause(view)
    bills_csv, causes_csv, workbook = export_paths(io_manager.data_dir)
    write_csv(view, bills_csv, io_manager.file_mode)
    write_csv(causes, causes_csv, io_manager.file_mode)
    write_xlsx({"按原因 by cause": causes, "单据 bills": view}, workbook, io_manager.file_mode)
    statuses = view["status"].value_counts()
    return {
        "open_bills": len(view),
        DayStatus.WAITING.value: int(statuses.get(DayStatus.WAITING, 0)),
        DayStatus.ATTENTION.value: int(statuses.get(DayStatus.ATTENTION, 0)),
        "days": int(view[["flow", "day"]].drop_duplicates().shape[0]),
        "oldest_age_days": int(view["age_days"].max()) if len(view) else 0,
        "by_cause": record_table(
            causes[
                [
                    "status",
                    "cause",
                    "bills",
                    "days",
                    "oldest_age_days",
                    "first_day",
                    "last_day",
                    "next_step",
                ]
            ]
        ),
        "bills": record_table(
            view[["flow", "day", "age_days", "bill_no", "status", "cause", "detail"]], SHOWN_BILLS
        ),
        BILL_NUMBERS: bill_numbers(view["bill_no"]),
        "csv": dg.MetadataValue.path(str(bills_csv)),
        "csv_by_cause": dg.MetadataValue.path(str(causes_csv)),
        "xlsx": dg.MetadataValue.path(str(workbook)),
    }


def report_write(
    context: dg.AssetExecutionContext, flow: Flow, results: pd.DataFrame
) -> tuple[DayStatus, pd.DataFrame]:
    """After a write of a day: record its open bills, refresh the view (unless the run is one of
    a backfill's), tag the run with the day's status (the runs list shows it). The day's status
    and its open bills."""
    io_manager: PartitionedJsonlIOManager = context.resources.io_manager
    day = context.partition_key
    open_bills = day_open_bills(flow, results)
    record_day(io_manager.data_dir, flow, day, open_bills, io_manager.file_mode)
    status = status_of(open_bills)
    if BACKFILL_TAG in context.run.tags:
        context.log.info(
            "open bills of %s %s recorded; the view across days is refreshed once the "
            "backfill's runs are done (sensor %s)",
            flow.name,
            day,
            AFTER_BACKFILLS_SENSOR,
        )
    else:
        context.log_event(
            dg.AssetMaterialization(
                OPEN_BILLS_KEY,
                description=f"refreshed by the write of {flow.name} {day}",
                metadata=refresh(io_manager, {(flow.name, day): open_bills}),
            )
        )
    context.instance.add_run_tags(
        context.run.run_id, {DAY_STATUS_TAG: status.value, OPEN_BILLS_TAG: str(len(open_bills))}
    )
    return status, open_bills


@dg.asset(
    key=OPEN_BILLS_KEY,
    group_name="operations",
    required_resource_keys={"io_manager"},
    kinds={"pandas", "csv", "xlsx"},
    description=(
        "未完成单据 / open bills across days: every held (待人处理 waiting on someone: a material "
        "to create, a warehouse to map) and every failed or not-in-effect bill (需要处理 needs "
        "attention: Kingdee refused it, its calls failed, or it is saved but not audited) of "
        "every flow and stored day, with its cause, age and next step, grouped by cause "
        "(material X → N bills over D days). Refreshed by every write; also exported as CSV "
        "(UTF-8 with BOM) and XLSX beside the stored days. `wdt-kingdee open-bills` prints it."
    ),
)
def open_bills(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=refresh(context.resources.io_manager))


refresh_open_bills = dg.define_asset_job(
    REFRESH_JOB,
    selection=[OPEN_BILLS_KEY],
    description="重建未完成单据 / rebuild the open bills across days and their CSV and XLSX",
)

# The records' state a refresh run was asked for (the newest record's mtime), and how many
# times a refresh of one state is asked for when it fails.
RECORDS_STATE_TAG = "wdt_kingdee/open_bills_state"
REFRESH_ATTEMPTS = 3

# A run that may still write a day of a backfill: it holds the view's refresh back.
_UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _newest_entry_ns(data_dir: Path) -> int:
    """When a day's open bills were last recorded, of any flow (0: none yet)."""
    folder = data_dir / FOLDER
    entries = folder.glob("*/*.jsonl") if folder.is_dir() else []
    return max((entry.stat().st_mtime_ns for entry in entries), default=0)


@dg.sensor(
    name=AFTER_BACKFILLS_SENSOR,
    job=refresh_open_bills,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "回填结束后刷新未完成单据 / refresh the open bills after backfills: a backfill's runs "
        "record their days' open bills without rebuilding the view across days; once none of "
        "them is queued or running and a day was recorded after the last export, this "
        "materializes open_bills once (asked again if that run fails, at most 3 times)."
    ),
)
def open_bills_after_backfills(
    context: dg.SensorEvaluationContext,
    io_manager: dg.ResourceParam[PartitionedJsonlIOManager],
) -> dg.SensorResult:
    recorded = _newest_entry_ns(io_manager.data_dir)
    workbook = export_paths(io_manager.data_dir)[2]
    exported = workbook.stat().st_mtime_ns if workbook.exists() else 0
    if recorded <= exported:
        return dg.SensorResult(skip_reason="the open bills' view is as new as every day's record")
    unfinished = context.instance.get_runs(dg.RunsFilter(statuses=_UNFINISHED))
    writing = [run.run_id for run in unfinished if BACKFILL_TAG in run.tags]
    if writing:
        return dg.SensorResult(
            skip_reason=f"{len(writing)} backfill run(s) still queued or running"
        )
    # One refresh per state of the records (a tick that finds nothing newer asks no more); one
    # that failed is asked for again, up to REFRESH_ATTEMPTS times, then left to a person.
    state = str(recorded)
    attempts = context.instance.get_runs(
        dg.RunsFilter(job_name=REFRESH_JOB, tags={RECORDS_STATE_TAG: state})
    )
    failed = [run for run in attempts if run.status == dg.DagsterRunStatus.FAILURE]
    if len(failed) >= REFRESH_ATTEMPTS:
        return dg.SensorResult(
            skip_reason=(
                f"the open bills' refresh failed {len(failed)} times (last: run "
                f"{failed[0].run_id}); see that run, then materialize open_bills"
            )
        )
    key = f"open-bills-{state}" + (f"-attempt-{len(failed) + 1}" if failed else "")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=key, tags={RECORDS_STATE_TAG: state})]
    )
