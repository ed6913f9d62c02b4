"""The four daily assets: WDT stock-outs in, Kingdee 其他出库单 out, each step with its evidence."""

import time
from datetime import datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from wdt_kingdee_assets.frames import (
    KINGDEE_BILLS,
    NORMALIZED_STOCKOUTS,
    RAW_STOCKOUTS,
    WRITE_RESULTS,
)
from wdt_kingdee_assets.mapping import build_bills, load_mapping
from wdt_kingdee_assets.normalize import normalize_orders, parse_int, parse_wdt_datetime
from wdt_kingdee_assets.partitions import BEIJING, daily_partitions, day_window
from wdt_kingdee_assets.resources import KingdeeResource, WdtResource
from wdt_kingdee_assets.storage import StoredDay, column_schema
from wdt_kingdee_assets.wdt.client import StockoutQuery
from wdt_kingdee_assets.wdt.errors import IncompletePullError
from wdt_kingdee_assets.wdt.pull import pull_stockouts
from wdt_kingdee_assets.writer import MAX_IN_FLIGHT, BillWriter, bills_to_write, results_frame

GROUP = "wdt_to_kingdee"
WDT_POOL = "wdt_api"
KINGDEE_POOL = "kingdee_api"
PREVIEW_ROWS = 20


def preview(frame: pd.DataFrame, columns: list[str], rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    """A small markdown table for the UI (the full data is in the stored file)."""
    if frame.empty:
        return dg.MetadataValue.md("_(none)_")
    shown = frame[columns].head(rows).astype(object).where(frame[columns].head(rows).notna(), "")
    more = f"\n\n_…and {len(frame) - rows} more_" if len(frame) > rows else ""
    return dg.MetadataValue.md(shown.to_markdown(index=False) + more)


class RawStockoutsConfig(dg.Config):
    status: str = Field(
        default="110", description="WDT status filter, comma-separated (110 = 已完成)"
    )
    warehouse_no: str = Field(default="", description="only this WDT warehouse; empty = all")
    max_passes: int = Field(
        default=3, ge=1, le=10, description="re-reads when rows move while paging"
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name=GROUP,
    pool=WDT_POOL,
    kinds={"api", "pandas"},
    description=(
        "旺店通生产出库单 (WDT production stock-outs) whose stock-out time (出库时间) falls on the "
        "partition's Beijing day, exactly as WDT sent them. Complete: the distinct orders pulled "
        "equal WDT's total_count, or the step fails with both numbers."
    ),
    metadata={"dagster/column_schema": column_schema(RAW_STOCKOUTS)},
)
def raw_stockouts(
    context: dg.AssetExecutionContext, config: RawStockoutsConfig, wdt: WdtResource
) -> dg.Output[pd.DataFrame]:
    started = time.monotonic()
    window = day_window(context.partition_key)
    client = wdt.client()
    query = StockoutQuery(
        start_time=window.query_start,
        end_time=window.query_end,
        time_type=2,
        status=config.status or None,
        warehouse_no=config.warehouse_no or None,
    )
    try:
        pulled = pull_stockouts(client, query, max_passes=config.max_passes)
    except IncompletePullError as exc:
        raise dg.Failure(
            description=f"partition {context.partition_key}: {exc}",
            metadata={"expected_total_count": exc.expected, "distinct_orders_pulled": exc.got},
        ) from exc

    kept = []
    for order in pulled.orders:
        moment = parse_wdt_datetime(order.get("consign_time"))
        # An order whose time cannot be read stays: WDT put it in this window, and the
        # normalizer rejects its lines with the reason, so it is reported, not lost.
        if moment is None or window.contains(moment):
            kept.append(order)
    frame = RAW_STOCKOUTS.frame(
        {
            # kept even when WDT's id is not an integer: the normalizer rejects it with the reason
            "stockout_id": parse_int(order.get("stockout_id")),
            "stockout_no": order.get("stockout_no"),
            "consign_time": order.get("consign_time"),
            "order": order,
        }
        for order in kept
    )
    lines = sum(len(order.get("detail_list") or []) for order in kept)
    overview = frame.assign(lines=[len(order.get("detail_list") or []) for order in kept])
    return dg.Output(
        frame,
        metadata={
            "orders": len(kept),
            "lines": lines,
            "total_count": pulled.total_count,
            "distinct_orders_pulled": len(pulled.orders),
            "outside_day": len(pulled.orders) - len(kept),
            "pages": pulled.pages,
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
            "preview": preview(overview, ["stockout_no", "consign_time", "lines"]),
        },
    )


class NormalizeConfig(dg.Config):
    accepted_statuses: list[int] = Field(
        default=[110],
        description="WDT statuses whose lines are usable (keep in step with the pull)",
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name=GROUP,
    kinds={"pandas"},
    description=(
        "出库明细 (stock-out lines), one typed row per WDT detail line: exact decimal quantities, "
        "Beijing times. A line that cannot be used keeps its row with a reject_reason."
    ),
    metadata={"dagster/column_schema": column_schema(NORMALIZED_STOCKOUTS)},
)
def normalized_stockouts(
    config: NormalizeConfig, raw_stockouts: StoredDay
) -> dg.Output[pd.DataFrame]:
    started = time.monotonic()
    # Streamed: a large day's nested orders are never all in memory at once.
    orders = raw_stockouts.values("order")
    lines = normalize_orders(orders, accepted_statuses=config.accepted_statuses)
    rejected = lines[lines["reject_reason"].notna()]
    return dg.Output(
        lines,
        metadata={
            "lines": len(lines),
            "usable_lines": len(lines) - len(rejected),
            "rejected_lines": len(rejected),
            "stockouts": int(lines["stockout_id"].nunique()),
            "materials": int(lines["spec_no"].nunique()),
            "duration_seconds": round(time.monotonic() - started, 3),
            "rejected_preview": preview(
                rejected, ["stockout_no", "rec_id", "spec_no", "reject_reason"]
            ),
        },
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name=GROUP,
    pool=KINGDEE_POOL,
    kinds={"api", "pandas"},
    description=(
        "其他出库单 (misc. delivery bills, STK_MisDelivery): one bill per stock-out built by the "
        "mapping, with materials and base units from Kingdee BD_MATERIAL. Each bill is `ready`, or "
        "`held` with the reason (material missing in Kingdee, rejected lines, unmapped warehouse)."
    ),
    metadata={"dagster/column_schema": column_schema(KINGDEE_BILLS)},
)
def kingdee_bills(
    context: dg.AssetExecutionContext, normalized_stockouts: pd.DataFrame, kingdee: KingdeeResource
) -> dg.Output[pd.DataFrame]:
    started = time.monotonic()
    mapping = load_mapping()
    client = kingdee.client()
    usable = normalized_stockouts[normalized_stockouts["reject_reason"].isna()]
    numbers = sorted(set(usable["spec_no"]))
    stock_org = mapping.orgs(kingdee.org_number)[0]
    materials = client.find_materials(numbers, use_org=stock_org) if numbers else {}
    bills = build_bills(normalized_stockouts, materials, mapping, kingdee.org_number)
    held = bills[bills["readiness"] == "held"]
    missing = sorted({number for numbers in bills["missing_materials"] for number in numbers})
    context.log.info("%d bills: %d ready, %d held", len(bills), len(bills) - len(held), len(held))
    return dg.Output(
        bills,
        metadata={
            "bills": len(bills),
            "ready": len(bills) - len(held),
            "held": len(held),
            "materials_looked_up": len(numbers),
            "missing_materials": len(missing),
            "api_calls": client.stats.calls,
            "duration_seconds": round(time.monotonic() - started, 3),
            "held_preview": preview(held, ["bill_no", "hold_reason"]),
        },
    )


class WriteConfig(dg.Config):
    batch_size: int = Field(default=20, ge=1, le=200, description="bills per BatchSave call")
    max_sends: int = Field(
        default=3, ge=1, le=10, description="BatchSave attempts per bill when calls go unanswered"
    )
    max_in_flight: int = Field(
        default=1,
        ge=1,
        le=MAX_IN_FLIGHT,
        description="BatchSave calls at once (Kingdee advises at most 5 server threads)",
    )


def _log_progress(context: dg.AssetExecutionContext, done: int, total: int) -> None:
    """About ten progress lines a day: each is an event the run's log stores and the UI shows,
    and a line per batch would bury the messages that matter among hundreds."""
    if done == total or done % max(1, total // 10) == 0:
        context.log.info("BatchSave %d/%d done", done, total)


@dg.asset(
    partitions_def=daily_partitions,
    group_name=GROUP,
    pool=KINGDEE_POOL,
    kinds={"api", "pandas"},
    description=(
        "金蝶写入结果 (what Kingdee now holds), one row per 其他出库单: created, already_in_kingdee, "
        "held or failed, with the FID and Kingdee's own messages. Idempotent: bills Kingdee already "
        "holds are never sent again, and unanswered calls are reconciled before any resend."
    ),
    metadata={"dagster/column_schema": column_schema(WRITE_RESULTS)},
)
def kingdee_write_results(
    context: dg.AssetExecutionContext,
    config: WriteConfig,
    kingdee_bills: pd.DataFrame,
    kingdee: KingdeeResource,
) -> dg.Output[pd.DataFrame]:
    started = time.monotonic()
    client = kingdee.client()
    mapping = load_mapping()
    bills = bills_to_write(kingdee_bills)
    writer = BillWriter(
        client,
        mapping.form_id,
        batch_size=config.batch_size,
        max_sends=config.max_sends,
        max_in_flight=config.max_in_flight,
        log=context.log,
        on_batch=lambda done, total: _log_progress(context, done, total),
    )
    summary = writer.write(bills)
    results = results_frame(summary, settled_at=datetime.now(BEIJING))
    trouble = results[results["outcome"].isin(["failed", "held"])].assign(
        reason=lambda frame: frame["messages"].map(lambda messages: " | ".join(messages)[:300])
    )
    return dg.Output(
        results,
        metadata={
            "created": summary.count("created"),
            "already_in_kingdee": summary.count("already_in_kingdee"),
            "held": summary.count("held"),
            "failed": summary.count("failed"),
            "batch_save_calls": summary.batch_calls,
            "reconciliations": summary.reconciliations,
            "api_calls": client.stats.calls,
            "duration_seconds": round(time.monotonic() - started, 3),
            "held_and_failed": preview(trouble, ["bill_no", "outcome", "reason"]),
        },
    )
