"""A flow's four daily assets: WDT documents in, Kingdee bills out, each step with its evidence.

``build_assets(flow)`` makes them for one flow (``factory.py`` adds the checks, job and
automation); their keys, names and descriptions come from the flow, so that every flow's assets
read the same and the first flow's are the ones it had before flows existed.
"""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from wdt_kingdee_assets.beijing import BEIJING
from wdt_kingdee_assets.catalog import blocker_states
from wdt_kingdee_assets.causes import cause_of, failure_text
from wdt_kingdee_assets.day import bill_scope, build_day_bills, pull_day, raw_rows
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.kingdee.client import MAX_THREADS
from wdt_kingdee_assets.lease import LeaseBusy, LeaseHolder, WriteLease, holding
from wdt_kingdee_assets.lifecycle import NOT_IN_EFFECT, BillInKingdee, Lifecycle, Settled
from wdt_kingdee_assets.normalize import normalize_orders
from wdt_kingdee_assets.open_bills import summary_text
from wdt_kingdee_assets.open_bills_asset import report_write
from wdt_kingdee_assets.outcomes import IN_KINGDEE, OPEN, Failure, Outcome, Readiness
from wdt_kingdee_assets.partitions import daily_partitions
from wdt_kingdee_assets.resources import KingdeeResource, WdtResource
from wdt_kingdee_assets.storage import StoredDay, StreamedDay, column_schema
from wdt_kingdee_assets.wdt.errors import IncompletePullError
from wdt_kingdee_assets.writer import (
    BillWriter,
    bills_to_write,
    results_frame,
    select_for_retry,
)

WDT_POOL = "wdt_api"
KINGDEE_POOL = "kingdee_api"
PREVIEW_ROWS = 20


def _step_retry_policy() -> dg.RetryPolicy:
    """The API-bound steps are retried by Dagster when they fail for a reason that may pass (an
    outage of minutes, a quota outlasting the client's own rests, a day's lease still held): 3
    retries, 60 s apart and doubling. A failure no retry can fix is raised as a Failure that
    forbids retries (see api_step). ``WDT_KINGDEE_STEP_RETRIES`` and
    ``WDT_KINGDEE_STEP_RETRY_DELAY_SECONDS`` change them."""
    retries = os.environ.get("WDT_KINGDEE_STEP_RETRIES") or "3"
    delay = os.environ.get("WDT_KINGDEE_STEP_RETRY_DELAY_SECONDS") or "60"
    try:
        return dg.RetryPolicy(
            max_retries=int(retries),
            delay=float(delay),
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        )
    except ValueError as exc:
        raise ValueError(
            "WDT_KINGDEE_STEP_RETRIES must be a whole number and WDT_KINGDEE_STEP_RETRY_DELAY_SECONDS"
            f" a number of seconds, got {retries!r} and {delay!r}"
        ) from exc


API_RETRY = _step_retry_policy()


@contextmanager
def api_step(partition_key: str) -> Iterator[None]:
    """An error of the APIs, the mapping or a setting becomes a Failure that says the business
    cause first, quotes the API's own message and says what to do next. One no retry can fix
    (refused credentials, a query Kingdee calls wrong, a bad mapping) forbids the step's retries;
    one that may pass (an outage, a quota) leaves them to the retry policy."""
    try:
        yield
    except Exception as exc:
        cause = cause_of(exc)
        if cause is None:
            raise
        raise dg.Failure(
            description=failure_text(cause, exc, partition_key), allow_retries=cause.retryable
        ) from exc


def preview(
    frame: pd.DataFrame, columns: list[str], rows: int = PREVIEW_ROWS, total: int | None = None
) -> dg.MetadataValue:
    """A small markdown table for the UI (the full data is in the stored file). ``total``: how
    many rows there are, when ``frame`` holds only the first ones."""
    if frame.empty:
        return dg.MetadataValue.md("_(none)_")
    shown = frame[columns].head(rows).astype(object).where(frame[columns].head(rows).notna(), "")
    count = len(frame) if total is None else total
    more = f"\n\n_…and {count - rows} more_" if count > rows else ""
    return dg.MetadataValue.md(shown.to_markdown(index=False) + more)


class WriteConfig(dg.Config):
    batch_size: int = Field(default=20, ge=1, le=200, description="bills per BatchSave call")
    lease_wait_seconds: float = Field(
        default=1800,
        ge=0,
        description="how long to wait while another run writes the same day before stopping",
    )
    lease_ttl_seconds: float = Field(
        default=600,
        gt=0,
        description="a day's lease not renewed for this long belongs to a dead run and is taken over",
    )
    max_sends: int = Field(
        default=3, ge=1, le=10, description="BatchSave attempts per bill when calls go unanswered"
    )
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=MAX_THREADS,
        description="BatchSave calls at once; empty: every Kingdee thread the integration may "
        "use (KINGDEE_THREADS, default 4), which Submit, Audit and the look-ups share",
    )
    only_bills: list[str] = Field(
        default=[],
        description=(
            "重新推送 / re-push: send only these bills (FBillNo, or the WDT document number); the "
            "day's other bills are looked up and reported, never sent. Empty: every ready bill"
        ),
    )


def _log_progress(context: dg.AssetExecutionContext, done: int, total: int) -> None:
    """About ten progress lines a day: each is an event the run's log stores and the UI shows,
    and a line per batch would bury the messages that matter among hundreds."""
    if done == total or done % max(1, total // 10) == 0:
        context.log.info("BatchSave %d/%d done", done, total)


def write_lease(flow: Flow, context: dg.AssetExecutionContext, config: WriteConfig) -> WriteLease:
    return WriteLease(
        context.instance,
        f"{flow.lease_scope}/{context.partition_key}",
        context.run.run_id,
        ttl_seconds=config.lease_ttl_seconds,
    )


@dataclass(frozen=True)
class FlowAssets:
    """A flow's four assets, in data-flow order."""

    raw: dg.AssetsDefinition
    lines: dg.AssetsDefinition
    bills: dg.AssetsDefinition
    results: dg.AssetsDefinition

    def all(self) -> list[dg.AssetsDefinition]:
        return [self.raw, self.lines, self.bills, self.results]


def _daily(flow: Flow, name: str) -> dict[str, Any]:
    """What every asset of a flow is: one of its four names, under its prefix and group, by day."""
    return {
        "name": name,
        "key_prefix": flow.key_prefix,
        "partitions_def": daily_partitions,
        "group_name": flow.group,
    }


def calls_api(pool: str) -> dict[str, Any]:
    """An API-bound step: in the API's pool, retried by Dagster after a transient failure."""
    return {"pool": pool, "retry_policy": API_RETRY, "kinds": {"api", "pandas"}}


def build_assets(flow: Flow) -> FlowAssets:
    """The flow's assets: pull, normalize, map, write — one Beijing day per partition."""
    source, form = flow.source, flow.form
    raw_key = dg.AssetKey(flow.asset_path(flow.raw_name))
    lines_key = dg.AssetKey(flow.asset_path(flow.lines_name))
    bills_key = dg.AssetKey(flow.asset_path(flow.bills_name))

    class RawConfig(dg.Config):
        status: str = Field(
            default=source.status,
            description=f"WDT status filter, comma-separated ({_status_names(flow)})",
        )
        warehouse_no: str = Field(default="", description="only this WDT warehouse; empty = all")
        max_passes: int = Field(
            default=3, ge=1, le=10, description="re-reads when rows move while paging"
        )

    class NormalizeConfig(dg.Config):
        accepted_statuses: list[int] = Field(
            default=source.statuses,
            description="WDT statuses whose lines are usable (keep in step with the pull)",
        )

    @dg.asset(
        **_daily(flow, flow.raw_name),
        **calls_api(WDT_POOL),
        description=(
            f"{source.title} whose {source.noun} time ({source.time_title}) falls on the "
            "partition's Beijing day, exactly as WDT sent them. Complete: the distinct orders "
            "pulled equal WDT's total_count, or the step fails with both numbers."
        ),
        metadata={"dagster/column_schema": column_schema(flow.raw_schema)},
    )
    def raw(
        context: dg.AssetExecutionContext, config: RawConfig, wdt: WdtResource
    ) -> dg.Output[StreamedDay]:
        started = time.monotonic()
        with api_step(context.partition_key):
            client = wdt.client(context.log.warning)
        with api_step(context.partition_key):
            try:
                day = pull_day(
                    flow,
                    client,
                    context.partition_key,
                    status=config.status,
                    warehouse_no=config.warehouse_no,
                    max_passes=config.max_passes,
                    on_step_down=context.log.warning,
                )
            except IncompletePullError as exc:
                raise dg.Failure(
                    description=failure_text(cause_of(exc), exc, context.partition_key),
                    metadata={
                        "expected_total_count": exc.expected,
                        "distinct_orders_pulled": exc.got,
                    },
                ) from exc
        kept, pulled, window = day.kept, day.pulled, day.window

        first = kept[:PREVIEW_ROWS]  # a day may be 100k orders: only the shown ones get a frame
        overview = pd.DataFrame(
            {
                source.number: [entry.number for entry in first],
                source.time_field: [entry.time for entry in first],
                "lines": [entry.lines for entry in first],
            },
            dtype=object,
        )
        return dg.Output(
            StreamedDay(lambda: raw_rows(source, kept, pulled.spool)),
            metadata={
                "orders": len(kept),
                "lines": sum(entry.lines for entry in kept),
                "total_count": pulled.total_count,
                "distinct_orders_pulled": len(pulled.entries),
                "outside_day": len(pulled.entries) - len(kept),
                "pages": pulled.pages,
                "page_size": pulled.page_size,
                "page_size_steps": dg.MetadataValue.json(pulled.step_downs),
                "passes": pulled.passes,
                "api_calls": client.stats.calls,
                "retries": client.stats.retries,
                "throttled": client.stats.throttled,
                "window_start": window.query_start.isoformat(),
                "window_end": window.query_end.isoformat(),
                "status_filter": config.status,
                "warehouse_filter": config.warehouse_no,
                "open_day": window.is_open,
                "duration_seconds": round(time.monotonic() - started, 3),
                "preview": preview(
                    overview, [source.number, source.time_field, "lines"], total=len(kept)
                ),
            },
        )

    @dg.asset(
        **_daily(flow, flow.lines_name),
        ins={"raw": dg.AssetIn(raw_key)},
        kinds={"pandas"},
        description=(
            f"{source.lines_title}, one typed row per WDT detail line and lot: a line taken from "
            "several batches or bins (position_details_list) is a row per batch and bin with its "
            "part; exact decimal quantities, Beijing times. A line that cannot be used keeps its "
            "row with a reject_reason."
        ),
        metadata={"dagster/column_schema": column_schema(flow.lines_schema)},
    )
    def lines(config: NormalizeConfig, raw: StoredDay) -> dg.Output[pd.DataFrame]:
        started = time.monotonic()
        # Streamed: a large day's nested orders are never all in memory at once.
        normalized = normalize_orders(
            raw.values("order"), flow, accepted_statuses=config.accepted_statuses
        )
        rejected = normalized[normalized["reject_reason"].notna()]
        return dg.Output(
            normalized,
            metadata={
                "lines": len(normalized),
                "usable_lines": len(normalized) - len(rejected),
                "rejected_lines": len(rejected),
                flow.documents: int(normalized[source.key].nunique()),
                "materials": int(normalized["spec_no"].nunique()),
                "duration_seconds": round(time.monotonic() - started, 3),
                "rejected_preview": preview(
                    rejected, [source.number, "rec_id", "spec_no", "reject_reason"]
                ),
            },
        )

    @dg.asset(
        **_daily(flow, flow.bills_name),
        **calls_api(KINGDEE_POOL),
        ins={"lines": dg.AssetIn(lines_key)},
        description=(
            f"{form.plural}: one bill per {source.noun} (or, with the mapping's strategy "
            "per_day_warehouse, merged bills per warehouse and day) built by the mapping, each "
            "in its warehouse's stock org, with materials from Kingdee BD_MATERIAL in that org "
            "(through the mapping's code map) and their units "
            "from BD_UNIT: one entry per lot and bin, quantities converted to the Kingdee unit "
            "and rounded to its precision (each rounding listed). Each bill is `ready`, or "
            "`held` with the reason (material missing in Kingdee, rejected lines, unit mismatch, "
            "lot, shelf-life dates or bin missing, unmapped warehouse)."
        ),
        metadata={"dagster/column_schema": column_schema(flow.bills_schema)},
    )
    def bills(
        context: dg.AssetExecutionContext, lines: pd.DataFrame, kingdee: KingdeeResource
    ) -> dg.Output[pd.DataFrame]:
        started = time.monotonic()
        with api_step(context.partition_key):
            mapping = flow.load_mapping()
            client = kingdee.client(context.log.warning)
            day = build_day_bills(
                flow,
                mapping,
                client,
                lines,
                kingdee.org_number,
                context.partition_key,
                context.resources.io_manager,
            )
        built, wanted = day.bills, day.looked_up
        held = built[built["readiness"] == Readiness.HELD]
        missing = sorted({number for numbers in built["missing_materials"] for number in numbers})
        context.log.info(
            "%d bills: %d ready, %d held", len(built), len(built) - len(held), len(held)
        )
        return dg.Output(
            built,
            metadata={
                "bills": len(built),
                "ready": len(built) - len(held),
                "held": len(held),
                "materials_looked_up": sum(len(numbers) for numbers in wanted.values()),
                "stock_orgs": ", ".join(sorted(wanted)),
                "missing_materials": len(missing),
                "rounded_entries": sum(len(rounded or []) for rounded in built["roundings"]),
                "renumbered_materials": len(
                    {spec for numbers in built["material_numbers"] for spec in numbers or {}}
                ),
                "api_calls": client.stats.calls,
                "duration_seconds": round(time.monotonic() - started, 3),
                "held_preview": preview(held, ["bill_no", "hold_reason"]),
            },
        )

    @dg.asset(
        **_daily(flow, flow.results_name),
        **calls_api(KINGDEE_POOL),
        ins={"bills": dg.AssetIn(bills_key)},
        description=(
            f"金蝶写入结果 (what Kingdee now holds), one row per {form.chinese}: created, "
            "already_in_kingdee, held or failed (permanent or transient), with the FID, the number "
            "Kingdee gave the bill and Kingdee's own messages. Idempotent: bills Kingdee already "
            "holds (found by the source reference they carry, or by number) are never sent again, "
            "unanswered calls are reconciled before any resend, and one run at a time writes a day "
            "(a lease in Dagster's storage)."
        ),
        metadata={"dagster/column_schema": column_schema(flow.results_schema)},
    )
    def results(
        context: dg.AssetExecutionContext,
        config: WriteConfig,
        bills: pd.DataFrame,
        kingdee: KingdeeResource,
    ) -> dg.Output[pd.DataFrame]:
        return write_day(flow, context, config, bills, kingdee)

    return FlowAssets(raw, lines, bills, results)


def _status_names(flow: Flow) -> str:
    names = flow.source.method.statuses
    return ", ".join(f"{status} = {names[status]}" for status in flow.source.statuses)


def write_day(
    flow: Flow,
    context: dg.AssetExecutionContext,
    config: WriteConfig,
    bills: pd.DataFrame,
    kingdee: KingdeeResource,
) -> dg.Output[pd.DataFrame]:
    """Write a day's ready bills, holding the day's lease: the write step's body."""
    started = time.monotonic()
    with api_step(context.partition_key):
        client = kingdee.client(context.log.warning)

    def waiting(holder: LeaseHolder) -> None:
        context.log.info(
            "%s is being written by run %s; waiting for it (at most %.0f s)",
            context.partition_key,
            holder.run_id,
            config.lease_wait_seconds,
        )

    try:
        with (
            api_step(context.partition_key),
            holding(
                write_lease(flow, context, config),
                wait_seconds=config.lease_wait_seconds,
                poll_seconds=min(5.0, config.lease_ttl_seconds / 3),
                on_wait=waiting,
            ) as lease,
        ):
            mapping = flow.load_mapping()
            writer = BillWriter(
                client,
                bill_scope(flow, mapping, kingdee.org_number, context.partition_key),
                batch_size=config.batch_size,
                max_sends=config.max_sends,
                max_in_flight=config.max_in_flight,
                log=context.log,
                on_batch=lambda done, total: _log_progress(context, done, total),
                before_send=lease.check,
            )
            to_write = bills_to_write(bills, flow)
            if config.only_bills:
                to_write = select_for_retry(to_write, config.only_bills)
            summary = writer.write(to_write)
            # What happens after the save (submit, audit), still holding the day: only bills
            # Kingdee now holds, each gated on Kingdee's read-back of it (lifecycle.py).
            lease.check()
            lifecycle = Lifecycle(
                client,
                writer.scope,
                mapping.after_save,
                batch_size=config.batch_size,
                log=context.log,
            )
            models = {bill.bill_no: bill.model for bill in to_write if bill.bill_no}
            after_save = {
                settled.fid: settled
                for settled in lifecycle.settle(
                    [
                        BillInKingdee(item.bill_no, item.fid, models.get(item.bill_no))
                        for item in summary.outcomes
                        if item.outcome in IN_KINGDEE and item.fid is not None and item.bill_no
                    ]
                )
            }
            # What each blocking material is now: the retry sensor re-syncs the day once one
            # of them changes (created, enabled, audited), not on a timer. Those holding bills
            # back were looked up with the bills; only those a refusal named are asked now.
            blockers = summary.blocker_states(to_write)
            unknown = [key for key, state in blockers.items() if state is None]
            if unknown:
                blockers.update(blocker_states(client, unknown, writer.scope.orgs))
    except LeaseBusy as exc:
        raise dg.Failure(
            description=f"partition {context.partition_key}: {exc}",
            metadata={"lease_holder_run": exc.holder.run_id},
        ) from exc
    results = results_frame(summary, flow, datetime.now(BEIJING), after_save)
    status, open_bills = report_write(context, flow, results)
    context.log.info("%s %s: %s", flow.name, context.partition_key, summary_text(open_bills))
    settled = results["settled"].dropna()
    trouble = results[
        results["outcome"].isin(OPEN) | results["settled"].isin(NOT_IN_EFFECT)
    ].assign(
        reason=lambda frame: frame["messages"].map(lambda messages: " | ".join(messages)[:300])
    )
    in_kingdee = results[results["kingdee_bill_no"].notna()]
    return dg.Output(
        results,
        metadata={
            "day_status": status.label,
            **{outcome.value: summary.count(outcome) for outcome in Outcome},
            **{f"failed_{kind.value}": summary.failed(kind) for kind in Failure},
            "renumbered_by_kingdee": int(
                (in_kingdee["kingdee_bill_no"] != in_kingdee["bill_no"]).sum()
            ),
            "blocking_materials": dg.MetadataValue.json(blockers),
            **{state.value: int((settled == state).sum()) for state in Settled},
            "not_in_effect_transient": int(
                (
                    results["settled"].isin(NOT_IN_EFFECT)
                    & (results["failure"] == Failure.TRANSIENT)
                ).sum()
            ),
            "after_save": mapping.after_save,
            "submit_calls": lifecycle.calls.get("Submit", 0),
            "audit_calls": lifecycle.calls.get("Audit", 0),
            "batch_save_calls": summary.batch_calls,
            "call_failures": summary.call_failures,
            "reconciliations": summary.reconciliations,
            "api_calls": client.stats.calls,
            "lease_waited_seconds": round(lease.waited, 3),
            "duration_seconds": round(time.monotonic() - started, 3),
            "held_and_failed": preview(
                trouble, ["bill_no", "outcome", "settled", "failure", "reason"]
            ),
        },
    )
