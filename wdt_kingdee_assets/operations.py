"""The ops engineer's commands: where the days stand, the open bills, and re-pushing bills.

``status`` and ``open-bills`` read the stored days only (``open_bills.py``): they answer with
no server reachable, as cron and monitoring need. ``retry`` runs a flow's retry job
(``retry_<docs>``, the day's sync sending only the named bills) in the instance of
``DAGSTER_HOME``, against the servers the environment names.

Exit codes, the same for ``status``, ``retry`` and ``sync``: 0 every day done; 3 some bills wait on
someone (held: a material to create …) and nothing needs attention; 1 something needs attention
(a bill failed or is not in effect, a run failed, a day not synced); 2 the command could not
answer (a variable missing, a bad argument).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from wdt_kingdee_assets.beijing import BEIJING, START_DATE_ENV
from wdt_kingdee_assets.export import write_csv, write_xlsx
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.open_bills import (
    DayStatus,
    by_cause,
    day_statuses,
    open_bills_view,
    read_day_open_bills,
    status_of,
)
from wdt_kingdee_assets.reading import read_day

EXIT_CODES = {DayStatus.DONE: 0, DayStatus.WAITING: 3, DayStatus.ATTENTION: 1}
CANNOT_ANSWER = 2
# The code location of workspace.yaml and deploy/: runs the CLI makes carry it, so that the UI
# lists them under their job (its Runs tab filters on this tag).
CODE_LOCATION = "wdt_kingdee_assets"
RUN_TAGS = {".dagster/repository": f"__repository__@{CODE_LOCATION}"}
# The per-step event log stays in the instance (and the UI); the terminal gets the summary.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def worst(statuses: Iterable[DayStatus]) -> DayStatus:
    """Needs attention beats waiting on someone beats done; a day not synced needs attention."""
    found = {DayStatus.ATTENTION if s == DayStatus.NOT_SYNCED else s for s in statuses}
    for status in (DayStatus.ATTENTION, DayStatus.WAITING):
        if status in found:
            return status
    return DayStatus.DONE


def exit_code(statuses: Iterable[DayStatus]) -> int:
    return EXIT_CODES[worst(statuses)]


def recent_days(count: int, today: date | None = None) -> list[str]:
    """The last ``count`` complete Beijing days, oldest first, none before the start date."""
    today = today or datetime.now(BEIJING).date()
    start = os.environ.get(START_DATE_ENV)
    days = [(today - timedelta(days=back)).isoformat() for back in range(count, 0, -1)]
    return [day for day in days if not start or day >= start]


def _top_cause(open_bills: pd.DataFrame) -> str:
    if open_bills.empty:
        return ""
    causes = by_cause(open_bills.assign(day="-", age_days=0))
    first = causes.iloc[0]
    more = f" (+{len(causes) - 1} more)" if len(causes) > 1 else ""
    return f"{first['cause']} → {first['bills']} bill(s){more}"


def print_status(data_dir: Path, flows: Sequence[Flow], days: Sequence[str]) -> int:
    """One line per flow and day: its status, open bills and first cause."""
    answers = day_statuses(data_dir, flows, days)
    print(f"{'flow':<11}{'day':<12}{'status':<20}{'waiting':>8}{'attention':>10}  first cause")
    for flow, day, status, open_bills in answers:
        counts = open_bills["status"].value_counts()
        print(
            f"{flow.documents:<11}{day:<12}{status.value:<20}"
            f"{int(counts.get(DayStatus.WAITING, 0)):>8}"
            f"{int(counts.get(DayStatus.ATTENTION, 0)):>10}  {_top_cause(open_bills)}"
        )
    return exit_code(status for _, _, status, _ in answers)


def print_open_bills(
    data_dir: Path,
    flows: Sequence[Flow],
    *,
    csv: str | None = None,
    xlsx: str | None = None,
    limit: int = 50,
) -> int:
    """The open bills grouped by cause, then each bill; optionally exported."""
    view = open_bills_view(data_dir, flows, datetime.now(BEIJING).date())
    causes = by_cause(view)
    if view.empty:
        print("没有未完成的单据 / no open bills: every stored day is done")
    else:
        print(
            f"{len(view)} open bill(s) over {view[['flow', 'day']].drop_duplicates().shape[0]} day(s)\n"
        )
        print("by cause:")
        for row in causes.itertuples(index=False):
            print(
                f"  [{row.status}] {row.cause} → {row.bills} bill(s) over {row.days} day(s), "
                f"oldest {row.oldest_age_days} day(s)"
            )
        print("\nnext steps:")
        for step in dict.fromkeys(causes["next_step"]):
            print(f"  - {step}")
        print("\nbills:")
        for row in view.head(limit).itertuples(index=False):
            print(f"  {row.flow:<20} {row.day} {row.bill_no!s:<24} {row.status:<19} {row.cause}")
        if len(view) > limit:
            print(f"  … and {len(view) - limit} more (export with --csv or --xlsx)")
    file_mode = "0640"
    if csv:
        write_csv(view, Path(csv), file_mode)
        print(f"\n{len(view)} bill(s) written to {csv}")
    if xlsx:
        write_xlsx({"按原因 by cause": causes, "单据 bills": view}, Path(xlsx), file_mode)
        print(f"{len(causes)} cause(s) and {len(view)} bill(s) written to {xlsx}")
    return 0


@dataclass(frozen=True)
class RetryPlan:
    flow: Flow
    day: str
    bills: tuple[str, ...]  # empty: the whole day


def plan_retry(
    data_dir: Path, flows: Sequence[Flow], bills: Sequence[str], day: str | None
) -> list[RetryPlan]:
    """Which flow and day each bill belongs to (among the open bills, or of ``day``); a bill that
    is neither raises ValueError naming it."""
    if not bills:
        if day is None:
            raise ValueError("name the bills (--bill) or the day (--day)")
        return [RetryPlan(flow, day, ()) for flow in flows]
    view = open_bills_view(data_dir, flows, datetime.now(BEIJING).date())
    if day is not None:
        view = view[view["day"] == day]
    wanted: dict[tuple[str, str], list[str]] = {}
    unknown = []
    for bill in bills:
        match = view[(view["bill_no"] == bill) | (view["source_ref"] == bill)]
        if not match.empty:
            row = match.iloc[0]
            wanted.setdefault((row["flow"], row["day"]), []).append(bill)
            continue
        # Not open: with its day given, the day's write answers for it (already in Kingdee …).
        owner = next((f for f in flows if day and bill in _bills_of_day(data_dir, f, day)), None)
        if owner is None:
            unknown.append(bill)
        else:
            wanted.setdefault((owner.name, day), []).append(bill)
    if unknown:
        where = f"a bill of {day}" if day else "an open bill (give --day for one that is not open)"
        raise ValueError(f"not {where}: {', '.join(unknown)}")
    by_name = {flow.name: flow for flow in flows}
    return [
        RetryPlan(by_name[name], d, tuple(names)) for (name, d), names in sorted(wanted.items())
    ]


def _bills_of_day(data_dir: Path, flow: Flow, day: str) -> set[str]:
    """The names the day's stored bills answer to: FBillNo and source reference."""
    try:
        bills = read_day(flow.bills_schema.name, day, data_dir)
    except FileNotFoundError:
        return set()
    return set(bills["bill_no"].dropna()) | set(bills["source_ref"].dropna())


def run_retry(plans: Sequence[RetryPlan], data_dir: Path) -> int:
    """Run each plan's retry job in the instance of DAGSTER_HOME; print what became of it."""
    from dagster import AssetKey, DagsterInstance

    from wdt_kingdee_assets.definitions import defs

    statuses = []
    with DagsterInstance.get() as instance:
        for plan in plans:
            flow = plan.flow
            op = defs.resolve_assets_def(AssetKey(flow.asset_path(flow.results_name))).op.name
            job = defs.resolve_job_def(flow.job_name if not plan.bills else flow.retry_job_name)
            config = (
                {"ops": {op: {"config": {"only_bills": list(plan.bills)}}}} if plan.bills else {}
            )
            result = job.execute_in_process(
                partition_key=plan.day,
                instance=instance,
                run_config={**QUIET, **config},
                tags=RUN_TAGS,
                raise_on_error=False,
            )
            open_bills = read_day_open_bills(data_dir, flow, plan.day)
            status = status_of(open_bills) if open_bills is not None else DayStatus.NOT_SYNCED
            if not result.success and status != DayStatus.ATTENTION:
                failed = [event.step_key for event in result.get_step_failure_events()]
                print(f"{flow.name} {plan.day}: run {result.run_id} failed at {', '.join(failed)}")
                status = DayStatus.ATTENTION
            statuses.append(status)
            print(f"{flow.name} {plan.day}: {status.label} (run {result.run_id})")
            _print_bills_now(data_dir, flow, plan, open_bills)
    return exit_code(statuses)


def _print_bills_now(
    data_dir: Path, flow: Flow, plan: RetryPlan, open_bills: pd.DataFrame | None
) -> None:
    try:
        results = read_day(flow.results_schema.name, plan.day, data_dir)
    except FileNotFoundError:
        return
    named = (
        results
        if not plan.bills
        else results[results["bill_no"].isin(plan.bills) | results["source_ref"].isin(plan.bills)]
    )
    still_open = set(open_bills["bill_no"]) if open_bills is not None else set()
    for row in named.itertuples(index=False):
        state = "open" if row.bill_no in still_open else "in effect"
        words = " | ".join(row.messages or [])[:200]
        print(
            f"  {row.bill_no}: {row.outcome}"
            + (f", {row.settled}" if isinstance(row.settled, str) else "")
            + (f" as {row.kingdee_bill_no}" if isinstance(row.kingdee_bill_no, str) else "")
            + f" — {state}"
            + (f" ({words})" if state == "open" and words else "")
        )


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return CANNOT_ANSWER
