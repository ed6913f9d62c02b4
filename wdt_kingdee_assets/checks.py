"""Asset checks, each named after the property it verifies and carrying its evidence.
Severity follows what a failure means for the day: ERROR when bills are missing, wrong or
duplicated in Kingdee; WARN for lines and bills that are visibly held back. Only the check that
proves the mapping right (source quantities = bill quantities) blocks the write: a wrong mapping
must never reach Kingdee, while a missing material only holds the bills that use it.
"""

import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import dagster as dg
import pandas as pd

from wdt_kingdee_assets.assets import (
    API_RETRY,
    api_step,
    bill_scope,
    kingdee_bills,
    kingdee_write_results,
    normalized_stockouts,
    raw_stockouts,
)
from wdt_kingdee_assets.kingdee.client import BillRecord
from wdt_kingdee_assets.locator import match_records
from wdt_kingdee_assets.mapping import load_mapping
from wdt_kingdee_assets.partitions import daily_partitions
from wdt_kingdee_assets.resources import KingdeeResource, WdtResource
from wdt_kingdee_assets.wdt.client import DocumentQuery
from wdt_kingdee_assets.wdt.methods import PROCESS_STOCKOUT

# Partitioned asset checks are a preview feature in Dagster 1.13; they are what lets the UI show
# each day's result on its own, which is the point of these checks.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")

EVIDENCE_ROWS = 50


def _table(rows: list[dict[str, Any]], limit: int = EVIDENCE_ROWS) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("_(none)_")
    frame = pd.DataFrame(rows[:limit]).astype(str)
    more = f"\n\n_…and {len(rows) - limit} more_" if len(rows) > limit else ""
    return dg.MetadataValue.md(frame.to_markdown(index=False) + more)


def _quantities(pairs: Iterable[tuple[Any, str, Any]]) -> dict[tuple[Any, str], Decimal]:
    """Σ quantity per (bill, material), exact."""
    totals: dict[tuple[Any, str], Decimal] = defaultdict(Decimal)
    for key, material, quantity in pairs:
        totals[(key, material)] += Decimal(str(quantity))
    return dict(totals)


def _model_quantities(bills: pd.DataFrame) -> dict[tuple[Any, str], Decimal]:
    return _quantities(
        (bill_no, entry["FMaterialId"]["FNumber"], entry["FQty"])
        for bill_no, model in zip(bills["bill_no"], bills["model"], strict=True)
        if model
        for entry in model["FEntity"]
    )


def _differences(
    expected: Mapping[tuple[Any, str], Decimal], actual: Mapping[tuple[Any, str], Decimal]
) -> list[dict[str, Any]]:
    return [
        {
            "bill": key[0],
            "material": key[1],
            "expected": expected.get(key, Decimal(0)),
            "actual": actual.get(key, Decimal(0)),
        }
        for key in sorted(set(expected) | set(actual), key=str)
        if expected.get(key, Decimal(0)) != actual.get(key, Decimal(0))
    ]


def _latest_metadata(
    context: dg.AssetCheckExecutionContext, asset_key: dg.AssetKey
) -> dict[str, Any]:
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[context.partition_key]),
        limit=1,
    ).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {key: value.value for key, value in records[0].asset_materialization.metadata.items()}


@dg.asset_check(
    asset=raw_stockouts,
    partitions_def=daily_partitions,
    pool="wdt_api",
    retry_policy=API_RETRY,
    description=(
        "拉取完整 / pull complete: the orders pulled equal WDT's total_count for the day's window, "
        "and a fresh re-count at WDT (one order per page) still gives the same number — a larger "
        "count means late stock-outs: re-sync the day."
    ),
)
def raw_stockouts_complete(
    context: dg.AssetCheckExecutionContext, wdt: WdtResource
) -> dg.AssetCheckResult:
    pulled = _latest_metadata(context, raw_stockouts.key)
    if "window_start" not in pulled:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"raw_stockouts has no materialization for {context.partition_key}",
        )
    # Re-count exactly the window and filters of the pull: for the open day a later window
    # would count stock-outs the pull was never meant to see.
    query = DocumentQuery(
        method=PROCESS_STOCKOUT,
        start_time=datetime.fromisoformat(pulled["window_start"]),
        end_time=datetime.fromisoformat(pulled["window_end"]),
        time_type=2,
        status=pulled.get("status_filter") or None,
        warehouse_no=pulled.get("warehouse_filter") or None,
    )
    with api_step(context.partition_key):
        recount = wdt.client(context.log.warning).count(query)
    total_at_pull = pulled.get("total_count")
    distinct = pulled.get("distinct_orders_pulled")
    passed = total_at_pull is not None and distinct == total_at_pull and recount == total_at_pull
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "total_count_at_pull": total_at_pull if total_at_pull is not None else -1,
            "distinct_orders_pulled": distinct if distinct is not None else -1,
            "total_count_now": recount,
            "late_stockouts": recount - (total_at_pull or 0),
        },
        description=None
        if passed
        else "the pulled day does not match WDT's count; re-materialize it",
    )


@dg.asset_check(
    asset=normalized_stockouts,
    partitions_def=daily_partitions,
    description="拒收明细 / rejected lines: lists every WDT line that cannot become a Kingdee entry, with why.",
)
def no_rejected_lines(normalized_stockouts: pd.DataFrame) -> dg.AssetCheckResult:
    rejected = normalized_stockouts[normalized_stockouts["reject_reason"].notna()]
    rows = [
        {
            "stockout_no": row.stockout_no,
            "rec_id": row.rec_id,
            "spec_no": row.spec_no,
            "reason": row.reject_reason,
        }
        for row in rejected.itertuples(index=False)
    ]
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rejected_lines": len(rows), "lines": _table(rows)},
    )


@dg.asset_check(
    asset=kingdee_bills,
    partitions_def=daily_partitions,
    description=(
        "物料缺失 / missing materials: every material (spec_no) on the day's bills exists and is "
        "enabled in Kingdee BD_MATERIAL for the stock org; lists each missing one with the bills it holds back."
    ),
)
def materials_exist_in_kingdee(kingdee_bills: pd.DataFrame) -> dg.AssetCheckResult:
    held_by: dict[str, list[str]] = defaultdict(list)
    for bill_no, missing in zip(
        kingdee_bills["bill_no"], kingdee_bills["missing_materials"], strict=True
    ):
        for number in missing or []:
            held_by[number].append(bill_no)
    rows = [
        {"material": number, "bills": ", ".join(bills), "bill_count": len(bills)}
        for number, bills in sorted(held_by.items())
    ]
    return dg.AssetCheckResult(
        passed=not held_by,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "missing_materials": len(held_by),
            "bills_held": len({bill for bills in held_by.values() for bill in bills}),
            "missing": _table(rows),
            "missing_json": dg.MetadataValue.json(
                {number: bills for number, bills in sorted(held_by.items())}
            ),
        },
    )


@dg.asset_check(
    asset=kingdee_bills,
    partitions_def=daily_partitions,
    blocking=True,
    additional_ins={"normalized_stockouts": dg.AssetIn("normalized_stockouts")},
    description=(
        "数量一致 (源→单) / quantities match the source: per bill and material, Σ num of the WDT "
        "lines = Σ FQty of the 其他出库单, and every usable stock-out has a bill. Blocks the write: "
        "a mismatch means the mapping is wrong."
    ),
)
def bill_quantities_match_source(
    kingdee_bills: pd.DataFrame, normalized_stockouts: pd.DataFrame
) -> dg.AssetCheckResult:
    ready = kingdee_bills[kingdee_bills["readiness"] == "ready"]
    bill_of = dict(zip(ready["stockout_id"], ready["bill_no"], strict=True))
    lines = normalized_stockouts[normalized_stockouts["stockout_id"].isin(list(bill_of))]
    expected = _quantities(
        (bill_of[stockout_id], spec_no, num)
        for stockout_id, spec_no, num in zip(
            lines["stockout_id"], lines["spec_no"], lines["num"], strict=True
        )
    )
    actual = _model_quantities(ready)
    differences = _differences(expected, actual)
    identified = set(normalized_stockouts["stockout_id"].dropna())
    without_bill = sorted(identified - set(kingdee_bills["stockout_id"]))
    return dg.AssetCheckResult(
        passed=not differences and not without_bill,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "bills_compared": len(ready),
            "mismatches": len(differences),
            "stockouts_without_bill": len(without_bill),
            "differences": _table(differences),
        },
    )


@dg.asset_check(
    asset=kingdee_bills,
    partitions_def=daily_partitions,
    description="暂挂单据 / held bills: lists every bill that is not ready to send, with the reason.",
)
def no_held_bills(kingdee_bills: pd.DataFrame) -> dg.AssetCheckResult:
    held = kingdee_bills[kingdee_bills["readiness"] == "held"]
    rows = [
        {"bill": row.bill_no, "reason": row.hold_reason} for row in held.itertuples(index=False)
    ]
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"held_bills": len(rows), "bills": _table(rows)},
    )


@dg.asset_check(
    asset=kingdee_write_results,
    partitions_def=daily_partitions,
    additional_ins={"kingdee_bills": dg.AssetIn("kingdee_bills")},
    description=(
        "全部写入 / every ready bill written: each ready 其他出库单 ended `created` or "
        "`already_in_kingdee`; lists the failed ones with Kingdee's messages."
    ),
)
def ready_bills_written(
    kingdee_write_results: pd.DataFrame, kingdee_bills: pd.DataFrame
) -> dg.AssetCheckResult:
    ready = set(kingdee_bills.loc[kingdee_bills["readiness"] == "ready", "bill_no"])
    outcome = dict(
        zip(kingdee_write_results["bill_no"], kingdee_write_results["outcome"], strict=True)
    )
    messages = dict(
        zip(kingdee_write_results["bill_no"], kingdee_write_results["messages"], strict=True)
    )
    unwritten = sorted(
        bill for bill in ready if outcome.get(bill) not in ("created", "already_in_kingdee")
    )
    rows = [
        {
            "bill": bill,
            "outcome": outcome.get(bill, "(no result)"),
            "messages": " | ".join(messages.get(bill) or [])[:300],
        }
        for bill in unwritten
    ]
    return dg.AssetCheckResult(
        passed=not unwritten,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"ready_bills": len(ready), "not_written": len(unwritten), "bills": _table(rows)},
    )


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "kingdee_quantities_match_bills",
            asset=kingdee_write_results,
            partitions_def=daily_partitions,
            additional_deps=[kingdee_bills],
            description=(
                "数量一致 (单→金蝶) / Kingdee matches the bills: per bill and material, Σ FQty as "
                "Kingdee reports it (read back with ExecuteBillQuery by FID) = Σ FQty of the bill sent."
            ),
        ),
        dg.AssetCheckSpec(
            "no_duplicate_bills_in_kingdee",
            asset=kingdee_write_results,
            partitions_def=daily_partitions,
            description=(
                "单据不重复 / no duplicates: each source stock-out of the day has at most one bill "
                "in Kingdee among the day's bills of the form (found by the source reference it "
                "carries, or by FBillNo when it carries none), whatever numbers Kingdee's coding "
                "rule gave them."
            ),
        ),
    ],
    ins={
        "kingdee_write_results": dg.AssetIn("kingdee_write_results"),
        "kingdee_bills": dg.AssetIn("kingdee_bills"),
    },
    pool="kingdee_api",
    retry_policy=API_RETRY,
)
def kingdee_matches_bills(
    context: dg.AssetCheckExecutionContext,
    kingdee_write_results: pd.DataFrame,
    kingdee_bills: pd.DataFrame,
    kingdee: KingdeeResource,
) -> Iterable[dg.AssetCheckResult]:
    client = kingdee.client()
    scope = bill_scope(load_mapping(), kingdee, context.partition_key)
    in_kingdee = kingdee_write_results[
        kingdee_write_results["outcome"].isin(["created", "already_in_kingdee"])
        & kingdee_write_results["fid"].notna()
    ]
    bill_of_fid = {
        int(fid): bill_no
        for fid, bill_no in zip(in_kingdee["fid"], in_kingdee["bill_no"], strict=True)
    }
    sent = kingdee_bills[
        kingdee_bills["bill_no"].isin(list(bill_of_fid.values())) & kingdee_bills["model"].notna()
    ]
    sent_entries = {
        bill_no: len(model["FEntity"])
        for bill_no, model in zip(sent["bill_no"], sent["model"], strict=True)
    }
    # One read-back of the whole day (every bill of the form, org and bill type dated the day,
    # with the reference each carries) serves both checks; a bill of ours dated otherwise (found
    # by its number) is read by FID.
    with api_step(context.partition_key):
        entries = client.day_entries(
            scope.form_id,
            scope.day,
            org=scope.org,
            bill_type=scope.bill_type,
            reference_field=scope.reference_field,
        )
        elsewhere = sorted(set(bill_of_fid) - {entry.fid for entry in entries})
        if elsewhere:
            entries += client.bill_entries(
                scope.form_id, elsewhere, reference_field=scope.reference_field
            )
    expected = _model_quantities(sent)
    actual = _quantities(
        (bill_of_fid[entry.fid], entry.material_number, entry.qty)
        for entry in entries
        if bill_of_fid.get(entry.fid) in sent_entries
    )
    differences = _differences(expected, actual)
    yield dg.AssetCheckResult(
        check_name="kingdee_quantities_match_bills",
        passed=not differences,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "bills_compared": len(sent),
            "entries_read_back": len(entries),
            "mismatches": len(differences),
            "differences": _table(differences),
        },
    )

    headers = {
        entry.fid: BillRecord(entry.fid, entry.bill_no, entry.reference, "") for entry in entries
    }
    found = match_records(
        [row for row in kingdee_bills.itertuples(index=False) if row.bill_no], headers.values()
    )
    duplicated = [
        {
            "bill": bill_no,
            "fids": [record.fid for record in records],
            "kingdee_bill_nos": [record.number for record in records],
        }
        for bill_no, records in sorted(found.items())
        if len(records) > 1
    ]
    yield dg.AssetCheckResult(
        check_name="no_duplicate_bills_in_kingdee",
        passed=not duplicated,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "bills_checked": int(kingdee_bills["bill_no"].notna().sum()),
            "duplicated": len(duplicated),
            "bills": _table(duplicated),
        },
    )
