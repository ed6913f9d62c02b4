"""A flow's asset checks, each named after the property it verifies and carrying its evidence.
Severity follows what a failure means for the day: ERROR when bills are missing, wrong or
duplicated in Kingdee; WARN for lines and bills that are visibly held back. Only the check that
proves the mapping right (source quantities = bill quantities) blocks the write: a wrong mapping
must never reach Kingdee, while a missing material only holds the bills that use it.
"""

import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import dagster as dg
import pandas as pd

from wdt_kingdee_assets.assets import API_RETRY, FlowAssets, api_step
from wdt_kingdee_assets.day import bill_scope
from wdt_kingdee_assets.evidence import BILL_NUMBERS, bill_numbers, evidence_table, listed, verdict
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.kingdee.client import BillRecord
from wdt_kingdee_assets.kingdee.forms import KingdeeForm
from wdt_kingdee_assets.lifecycle import NOT_IN_EFFECT, Settled
from wdt_kingdee_assets.locator import match_records
from wdt_kingdee_assets.open_bills import (
    MATERIAL_MISSING,
    NOT_TAKEN_EFFECT,
    DayStatus,
    day_open_bills,
    status_of,
    summary_text,
)
from wdt_kingdee_assets.outcomes import IN_KINGDEE, Readiness
from wdt_kingdee_assets.partitions import daily_partitions
from wdt_kingdee_assets.resources import KingdeeResource, WdtResource
from wdt_kingdee_assets.units import round_quantity
from wdt_kingdee_assets.wdt.client import DocumentQuery

# Partitioned asset checks are a preview feature in Dagster 1.13; they are what lets the UI show
# each day's result on its own, which is the point of these checks.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def.*")


def _quantities(pairs: Iterable[tuple[Any, str, Any]]) -> dict[tuple[Any, str], Decimal]:
    """Σ quantity per (bill, material), exact."""
    totals: dict[tuple[Any, str], Decimal] = defaultdict(Decimal)
    for key, material, quantity in pairs:
        totals[(key, material)] += Decimal(str(quantity))
    return dict(totals)


def _names(bills: pd.DataFrame) -> list[str]:
    """How a check names each row of the bills: its FBillNo, or for a held document that is in no
    merged bill, the document (its source reference)."""
    return [
        bill_no or source_ref
        for bill_no, source_ref in zip(bills["bill_no"], bills["source_ref"], strict=True)
    ]


def _model_quantities(bills: pd.DataFrame, form: KingdeeForm) -> dict[tuple[Any, str], Decimal]:
    return _quantities(
        (bill_no, entry[form.material]["FNumber"], entry[form.quantity])
        for bill_no, model in zip(bills["bill_no"], bills["model"], strict=True)
        if model
        for entry in model[form.entry]
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


def build_checks(flow: Flow, assets: FlowAssets) -> list[dg.AssetChecksDefinition]:
    """The flow's checks, bound to its assets."""
    source, form = flow.source, flow.form

    @dg.asset_check(
        name=f"{flow.raw_name}_complete",
        asset=assets.raw,
        partitions_def=daily_partitions,
        pool="wdt_api",
        retry_policy=API_RETRY,
        description=(
            "拉取完整 / pull complete: the orders pulled equal WDT's total_count for the day's "
            "window, and a fresh re-count at WDT (one order per page) still gives the same number "
            f"— a larger count means late {source.noun}s: re-sync the day."
        ),
    )
    def raw_complete(
        context: dg.AssetCheckExecutionContext, wdt: WdtResource
    ) -> dg.AssetCheckResult:
        pulled = _latest_metadata(context, assets.raw.key)
        if "window_start" not in pulled:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                description=verdict(
                    False,
                    "",
                    f"该日未拉取 / {flow.raw_name} has no materialization for {context.partition_key}",
                    "物化该日 / materialize the day",
                ),
            )
        # Re-count exactly the window and filters of the pull: for the open day a later window
        # would count documents the pull was never meant to see.
        query = DocumentQuery(
            method=source.method,
            start_time=datetime.fromisoformat(pulled["window_start"]),
            end_time=datetime.fromisoformat(pulled["window_end"]),
            time_type=source.time_type,
            status=pulled.get("status_filter") or None,
            warehouse_no=pulled.get("warehouse_filter") or None,
        )
        with api_step(context.partition_key):
            recount = wdt.client(context.log.warning).count(query)
        total_at_pull = pulled.get("total_count")
        distinct = pulled.get("distinct_orders_pulled")
        passed = (
            total_at_pull is not None and distinct == total_at_pull and recount == total_at_pull
        )
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "total_count_at_pull": total_at_pull if total_at_pull is not None else -1,
                "distinct_orders_pulled": distinct if distinct is not None else -1,
                "total_count_now": recount,
                f"late_{flow.documents}": recount - (total_at_pull or 0),
            },
            description=verdict(
                passed,
                f"{distinct} {flow.documents} pulled = WDT's count then and now",
                f"拉取不完整 / the pull is not complete: WDT counts {recount} now, {total_at_pull} "
                f"at the pull, {distinct} distinct pulled",
                f"重新物化该日，迟到的{source.document_chinese}随之拉取 / re-materialize the day: "
                f"late {source.noun}s are pulled with it",
            ),
        )

    @dg.asset_check(
        asset=assets.lines,
        partitions_def=daily_partitions,
        description=(
            "拒收明细 / rejected lines: lists every WDT line that cannot become a Kingdee entry, "
            "with why."
        ),
    )
    def no_rejected_lines(lines: pd.DataFrame) -> dg.AssetCheckResult:
        rejected = lines[lines["reject_reason"].notna()]
        rows = [
            {
                source.number: row[source.number],
                "rec_id": row["rec_id"],
                "spec_no": row["spec_no"],
                "reason": row["reject_reason"],
            }
            for row in rejected.to_dict("records")
        ]
        return dg.AssetCheckResult(
            passed=not rows,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rejected_lines": len(rows), "lines": evidence_table(rows)},
            description=verdict(
                not rows,
                f"every {source.noun} line is usable",
                f"{len(rows)} 行明细无法使用 / {len(rows)} WDT line(s) cannot become entries: "
                + listed(sorted({row["reason"] for row in rows}), 3),
                "在旺店通修正这些单据后重同步该日 / fix these documents in WDT, then re-sync the day",
            ),
        )

    def materials_exist_in_kingdee(bills: pd.DataFrame) -> dg.AssetCheckResult:
        held_by: dict[str, list[str]] = defaultdict(list)
        for name, missing in zip(_names(bills), bills["missing_materials"], strict=True):
            for number in missing or []:
                held_by[number].append(name)
        rows = [
            {"material": number, "bills": ", ".join(held), "bill_count": len(held)}
            for number, held in sorted(held_by.items())
        ]
        return dg.AssetCheckResult(
            passed=not held_by,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "missing_materials": len(held_by),
                "bills_held": len({bill for held in held_by.values() for bill in held}),
                BILL_NUMBERS: bill_numbers(bill for held in held_by.values() for bill in held),
                "missing": evidence_table(rows),
                "missing_json": dg.MetadataValue.json(
                    {number: held for number, held in sorted(held_by.items())}
                ),
            },
            description=verdict(
                not held_by,
                "every material exists and is enabled in Kingdee",
                f"{len(held_by)} 种物料在金蝶缺失或未启用，暂挂 "
                f"{len({b for held in held_by.values() for b in held})} 张单据 / material(s) "
                f"missing or not enabled in Kingdee: {listed(sorted(held_by))}",
                MATERIAL_MISSING.next_step,
            ),
        )

    def no_held_bills(bills: pd.DataFrame) -> dg.AssetCheckResult:
        held = bills[bills["readiness"] == Readiness.HELD]
        rows = [
            {"bill": name, "reason": reason}
            for name, reason in zip(_names(held), held["hold_reason"], strict=True)
        ]
        return dg.AssetCheckResult(
            passed=not rows,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "held_bills": len(rows),
                "bills": evidence_table(rows),
                BILL_NUMBERS: bill_numbers(row["bill"] for row in rows),
            },
            description=verdict(
                not rows,
                "no bill is held",
                f"{len(rows)} 张单据暂挂 / {len(rows)} bill(s) held: "
                + listed(sorted({str(row["reason"]) for row in rows}), 3),
                "按原因在金蝶补资料或修正映射，暂挂单据传感器随后重推 / add what Kingdee lacks or fix "
                "the mapping as each reason says; the held-bills sensor then re-syncs the day",
            ),
        )

    def ready_bills_written(results: pd.DataFrame, bills: pd.DataFrame) -> dg.AssetCheckResult:
        ready = set(bills.loc[bills["readiness"] == Readiness.READY, "bill_no"])
        outcome = dict(zip(results["bill_no"], results["outcome"], strict=True))
        messages = dict(zip(results["bill_no"], results["messages"], strict=True))
        unwritten = sorted(bill for bill in ready if outcome.get(bill) not in IN_KINGDEE)
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
            metadata={
                "ready_bills": len(ready),
                "not_written": len(unwritten),
                "bills": evidence_table(rows),
                BILL_NUMBERS: bill_numbers(unwritten),
            },
            description=verdict(
                not unwritten,
                f"all {len(ready)} ready bill(s) are in Kingdee",
                f"{len(unwritten)} 张就绪单据未写入金蝶 / ready bill(s) not written: "
                + listed(f"{row['bill']} ({row['messages'][:80]})" for row in rows),
                "按金蝶的提示处理后重推（wdt-kingdee retry --bill …），不会重复写入 / act on Kingdee's "
                "message, then retry (wdt-kingdee retry --bill …): nothing is written twice",
            ),
        )

    def ready_bills_in_effect(results: pd.DataFrame) -> dg.AssetCheckResult:
        in_kingdee = results[results["outcome"].isin(IN_KINGDEE)]
        short = in_kingdee[in_kingdee["settled"].isin(NOT_IN_EFFECT)]
        rows = [
            {
                "bill": bill_no,
                "settled": settled,
                "status": status,
                "failure": failure,
                "messages": " | ".join(messages or [])[:300],
            }
            for bill_no, settled, status, failure, messages in zip(
                short["bill_no"],
                short["settled"],
                short["document_status"],
                short["failure"],
                short["messages"],
                strict=True,
            )
        ]
        counts = in_kingdee["settled"].value_counts()
        return dg.AssetCheckResult(
            passed=not rows,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **{state.value: int(counts.get(state.value, 0)) for state in Settled},
                "not_in_effect": len(rows),
                "bills": evidence_table(rows),
                BILL_NUMBERS: bill_numbers(short["bill_no"]),
            },
            description=verdict(
                not rows,
                f"{len(in_kingdee)} bill(s) in Kingdee, each as after_save asks",
                f"{len(rows)} 张单据已保存未生效 / bill(s) in Kingdee not in effect: "
                + listed(
                    f"{row['bill']} {row['settled']} ({row['messages'][:80]})" for row in rows
                ),
                NOT_TAKEN_EFFECT.next_step,
            ),
        )

    def day_complete(results: pd.DataFrame) -> dg.AssetCheckResult:
        open_bills = day_open_bills(flow, results)
        status = status_of(open_bills)
        counts = open_bills["status"].value_counts()
        return dg.AssetCheckResult(
            passed=status == DayStatus.DONE,
            severity=dg.AssetCheckSeverity.ERROR
            if status == DayStatus.ATTENTION
            else dg.AssetCheckSeverity.WARN,
            description=summary_text(open_bills),
            metadata={
                "day_status": status.label,
                DayStatus.WAITING.value: int(counts.get(DayStatus.WAITING, 0)),
                DayStatus.ATTENTION.value: int(counts.get(DayStatus.ATTENTION, 0)),
                "bills": evidence_table(
                    open_bills[["bill_no", "status", "cause", "next_step"]].to_dict("records")
                ),
                BILL_NUMBERS: bill_numbers(open_bills["bill_no"]),
            },
        )

    @dg.multi_asset_check(
        name=flow.qualified("kingdee_matches_bills"),
        specs=[
            dg.AssetCheckSpec(
                "kingdee_quantities_match_bills",
                asset=assets.results,
                partitions_def=daily_partitions,
                additional_deps=[assets.bills],
                description=(
                    f"数量一致 (单→金蝶) / Kingdee matches the bills: per bill and material, Σ "
                    f"{form.quantity} as Kingdee reports it (read back with ExecuteBillQuery by "
                    f"FID) = Σ {form.quantity} of the bill sent."
                ),
            ),
            dg.AssetCheckSpec(
                "no_duplicate_bills_in_kingdee",
                asset=assets.results,
                partitions_def=daily_partitions,
                description=(
                    f"单据不重复 / no duplicates: each source {source.noun} of the day has at most "
                    "one bill in Kingdee among the day's bills of the form (found by the source "
                    "reference it carries, or by FBillNo when it carries none), whatever numbers "
                    "Kingdee's coding rule gave them."
                ),
            ),
        ],
        ins={
            "results": dg.AssetIn(assets.results.key),
            "bills": dg.AssetIn(assets.bills.key),
        },
        pool="kingdee_api",
        retry_policy=API_RETRY,
    )
    def kingdee_matches_bills(
        context: dg.AssetCheckExecutionContext,
        results: pd.DataFrame,
        bills: pd.DataFrame,
        kingdee: KingdeeResource,
    ) -> Iterable[dg.AssetCheckResult]:
        yield from _kingdee_matches_bills(flow, context, results, bills, kingdee)

    bill_checks = _judged_together(
        flow.qualified(f"{flow.bills_name}_checks"),
        assets.bills,
        assets.lines,
        judges=[
            Judged(
                "materials_exist_in_kingdee",
                lambda bills, lines: materials_exist_in_kingdee(bills),
                description=(
                    "物料缺失 / missing materials: every material (spec_no) on the day's "
                    "bills exists and is enabled in Kingdee BD_MATERIAL for the stock org; "
                    "lists each missing one with the bills it holds back."
                ),
            ),
            Judged(
                "bill_quantities_match_source",
                lambda bills, lines: _bills_match_source(flow, bills, lines),
                blocking=True,
                reads_beside=True,
                description=(
                    "数量一致 (源→单) / quantities match the source: per bill and material, Σ "
                    f"num of the WDT lines = Σ {form.quantity} of the {form.chinese}, and "
                    f"every usable {source.noun} has a bill. Blocks the write: a mismatch "
                    "means the mapping is wrong."
                ),
            ),
            Judged(
                "no_held_bills",
                lambda bills, lines: no_held_bills(bills),
                description=(
                    "暂挂单据 / held bills: lists every bill that is not ready to send, with "
                    "the reason."
                ),
            ),
        ],
    )
    result_checks = _judged_together(
        flow.qualified(f"{flow.results_name}_checks"),
        assets.results,
        assets.bills,
        judges=[
            Judged(
                "ready_bills_written",
                ready_bills_written,
                reads_beside=True,
                description=(
                    f"全部写入 / every ready bill written: each ready {form.chinese} ended "
                    "`created` or `already_in_kingdee`; lists the failed ones with Kingdee's "
                    "messages."
                ),
            ),
            Judged(
                "ready_bills_in_effect",
                lambda results, bills: ready_bills_in_effect(results),
                description=(
                    f"单据生效 / bills in effect: every {form.chinese} Kingdee holds for the "
                    "day reached what the mapping's after_save asks — audit: 已审核 (C), "
                    "stock has moved; submit: 审核中 (B). Lists the others with Kingdee's "
                    "words: refused at submit or audit (库存不足, 关账 …), left alone because "
                    "Kingdee's read-back differs, or unconfirmed after a call without an "
                    "answer."
                ),
            ),
            Judged(
                "day_complete",
                lambda results, bills: day_complete(results),
                blocking=True,
                description=(
                    f"当日完成 / day complete: every {source.noun} of the day is a "
                    f"{form.chinese} in effect in Kingdee. Fails as WARN while bills only "
                    "wait on someone (a material to create, a warehouse to map: run tag "
                    "wdt_kingdee/day_status=waiting_on_someone), as ERROR — which fails the "
                    "run — when bills need attention (Kingdee refused them, calls failed, "
                    "saved but not in effect). Says which bills and what to do next; the "
                    "open_bills asset lists them across days."
                ),
            ),
        ],
    )
    return [
        raw_complete,
        no_rejected_lines,
        bill_checks,
        result_checks,
        kingdee_matches_bills,
    ]


class Judged(NamedTuple):
    """A check of one stored day that calls no API: ``judge`` gets the checked asset's day and
    the day of the asset beside it (which it may ignore)."""

    name: str
    judge: Callable[[pd.DataFrame, pd.DataFrame], dg.AssetCheckResult]
    description: str
    blocking: bool = False
    reads_beside: bool = False  # lineage: the check depends on the asset beside too


def _judged_together(
    name: str,
    checked: dg.AssetsDefinition,
    beside: dg.AssetsDefinition,
    judges: list[Judged],
) -> dg.AssetChecksDefinition:
    """Checks that only judge stored days (``checked``'s, with ``beside``'s next to it), in one
    step, each stored and shown per day. Each step is bookkeeping in every run of every day — a
    start, its inputs, a success: events written to Dagster's storage — and a backfill pays it per
    day. Any of them can still be run alone (the UI's *Execute*), and a blocking one still fails
    the step after the others have reported, so the write waits for it."""
    specs = {
        judged.name: dg.AssetCheckSpec(
            judged.name,
            asset=checked,
            partitions_def=daily_partitions,
            blocking=judged.blocking,
            additional_deps=[beside.key] if judged.reads_beside else None,
            description=judged.description,
        )
        for judged in judges
    }

    @dg.multi_asset_check(
        name=name,
        specs=list(specs.values()),
        ins={"checked": dg.AssetIn(checked.key), "beside": dg.AssetIn(beside.key)},
        can_subset=True,
    )
    def judged(
        context: dg.AssetCheckExecutionContext, checked: pd.DataFrame, beside: pd.DataFrame
    ) -> Iterable[dg.AssetCheckResult]:
        selected = context.selected_asset_check_keys
        for judged in judges:
            spec = specs[judged.name]
            if spec.key in selected:
                result = judged.judge(checked, beside)
                yield dg.AssetCheckResult(
                    passed=result.passed,
                    asset_key=spec.asset_key,
                    check_name=spec.name,
                    metadata=result.metadata,
                    severity=result.severity,
                    description=result.description,
                )

    return judged


def _bills_match_source(
    flow: Flow, bills: pd.DataFrame, lines: pd.DataFrame
) -> dg.AssetCheckResult:
    """Per bill and Kingdee material, and per warehouse and material: what the WDT lines each
    ready bill stands for come to — converted to the entry's unit (the mapping's conversions),
    rounded to its precision where the bill says it rounded — = Σ quantity of its entries; for
    merged bills, every usable line's quantity in entries' lineage exactly once; and every
    document in some bill (ready or held).

    Entries of a bill of one document are its usable lines in order (one per line and lot);
    a merged bill's say which lines they add up (lineage)."""
    key, number, form = flow.source.key, flow.source.number, flow.form
    units = flow.load_mapping().units
    usable = lines[lines["reject_reason"].isna() & lines[key].notna()]
    rows_of: dict[Any, list[tuple[Any, Decimal]]] = defaultdict(list)  # document → (line, num)
    line_of: dict[tuple[Any, Any], tuple[str, Any]] = {}  # (document, rec_id) → (spec, unit)
    in_line: dict[tuple[Any, Any], Decimal] = defaultdict(Decimal)  # Σ num of a line's rows
    warehouse_of: dict[Any, Any] = {}
    for document, rec_id, spec_no, num, unit, warehouse in zip(
        usable[number],
        usable["rec_id"],
        usable["spec_no"],
        usable["num"],
        usable["base_unit_name"],
        usable["warehouse_no"],
        strict=True,
    ):
        rows_of[document].append((rec_id, num))
        line_of[(document, rec_id)] = (spec_no, unit)
        in_line[(document, rec_id)] += num
        warehouse_of[document] = warehouse
    ready = bills[bills["readiness"] == Readiness.READY]
    expected: list[tuple[Any, str, Any]] = []
    billed: dict[tuple[Any, Any], Decimal] = defaultdict(Decimal)
    merged_documents: set[Any] = set()
    for bill_no, sources, lineage, model, roundings, renumbered in zip(
        ready["bill_no"],
        ready["sources"],
        ready["lineage"],
        ready["model"],
        ready["roundings"],
        ready["material_numbers"],
        strict=True,
    ):
        entries = model[form.entry] if model else []
        if lineage:  # a merged bill: its entries say which lines they add up
            parts = [
                [(doc, rec_id, Decimal(str(num))) for doc, rec_id, num in item] for item in lineage
            ]
            for item in parts:
                for document, rec_id, num in item:
                    billed[(document, rec_id)] += num
                    merged_documents.add(document)
        else:  # a bill of one document: its usable lines, one entry each, in order
            parts = [
                [(document, rec_id, num)]
                for document in sources or []
                for rec_id, num in rows_of[document]
            ]
        rounded = {item["entry"]: item["precision"] for item in roundings or []}
        for seq, item in enumerate(parts, start=1):
            entry = entries[seq - 1] if seq <= len(entries) else None
            unit = entry["FUnitID"]["FNumber"] if entry else ""
            exact = Decimal(0)
            material = "(no such WDT line)"
            for document, rec_id, num in item:
                spec_no, wdt_unit = line_of.get((document, rec_id), (None, None))
                if spec_no is None:
                    continue
                material = (renumbered or {}).get(spec_no, spec_no)
                exact += num * units.configured_factor(spec_no, wdt_unit, unit)
            quantity = round_quantity(exact, rounded[seq]) if seq in rounded else exact
            expected.append((bill_no, material, quantity))
    actual = _model_quantities(ready, form)
    differences = _differences(_quantities(expected), actual)
    warehouse_of_bill = {
        bill_no: warehouse_of.get((sources or [None])[0])
        for bill_no, sources in zip(ready["bill_no"], ready["sources"], strict=True)
    }
    per_warehouse = _differences(
        _quantities((warehouse_of_bill[bill], spec, num) for bill, spec, num in expected),
        _quantities(
            (warehouse_of_bill[bill], material, qty) for (bill, material), qty in actual.items()
        ),
    )
    unbilled = [
        {
            "document": document,
            "rec_id": rec_id,
            "wdt_num": in_line[(document, rec_id)],
            "billed_num": billed.get((document, rec_id), Decimal(0)),
        }
        for document in sorted(merged_documents, key=str)
        for rec_id in dict.fromkeys(rec_id for rec_id, _ in rows_of[document])
        if billed.get((document, rec_id), Decimal(0)) != in_line[(document, rec_id)]
    ]
    covered = {document for sources in bills["sources"] for document in sources or []}
    identified = set(lines[key].dropna())
    without_bill = sorted(
        (identified - set(bills[key].dropna()))
        - {ident for ident, doc in zip(lines[key], lines[number], strict=True) if doc in covered}
    )
    problems = [*differences, *per_warehouse]
    return dg.AssetCheckResult(
        passed=not problems and not without_bill and not unbilled,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "bills_compared": len(ready),
            "mismatches": len(differences),
            "warehouse_mismatches": len(per_warehouse),
            "entries_rounded": sum(len(items or []) for items in ready["roundings"]),
            f"{flow.documents}_without_bill": len(without_bill),
            "lines_not_billed_once": len(unbilled),
            "differences": evidence_table(differences),
            "per_warehouse_differences": evidence_table(per_warehouse),
            "lines_not_billed_once_list": evidence_table(unbilled),
            BILL_NUMBERS: bill_numbers(row["bill"] for row in differences),
        },
        description=verdict(
            not problems and not without_bill and not unbilled,
            f"{len(ready)} ready bill(s) carry exactly the WDT quantities",
            f"数量与旺店通不一致，未写入 / quantities differ from WDT, nothing written: "
            f"{len(differences)} bill/material, {len(per_warehouse)} warehouse/material "
            f"mismatch(es), {len(without_bill)} {flow.documents} without a bill, "
            f"{len(unbilled)} line(s) not billed once",
            "检查映射文件的单位换算与合并策略后重同步 / check the mapping's unit conversions and "
            "strategy, then re-sync the day: the write stays blocked until they match",
        ),
    )


def _kingdee_matches_bills(
    flow: Flow,
    context: dg.AssetCheckExecutionContext,
    results: pd.DataFrame,
    bills: pd.DataFrame,
    kingdee: KingdeeResource,
) -> Iterable[dg.AssetCheckResult]:
    form = flow.form
    client = kingdee.client(context.log.warning)
    scope = bill_scope(flow, flow.load_mapping(), kingdee.org_number, context.partition_key)
    in_kingdee = results[results["outcome"].isin(IN_KINGDEE) & results["fid"].notna()]
    bill_of_fid = {
        int(fid): bill_no
        for fid, bill_no in zip(in_kingdee["fid"], in_kingdee["bill_no"], strict=True)
    }
    sent = bills[bills["bill_no"].isin(list(bill_of_fid.values())) & bills["model"].notna()]
    sent_entries = {
        bill_no: len(model[form.entry])
        for bill_no, model in zip(sent["bill_no"], sent["model"], strict=True)
    }
    # One read-back of the whole day (every bill of the form, stock orgs and bill type dated the day,
    # with the reference each carries) serves both checks; a bill of ours dated otherwise (found
    # by its number) is read by FID.
    with api_step(context.partition_key):
        entries = client.day_entries(
            scope.form,
            scope.day,
            orgs=scope.orgs,
            bill_type=scope.bill_type,
            reference_field=scope.reference_field,
        )
        elsewhere = sorted(set(bill_of_fid) - {entry.fid for entry in entries})
        if elsewhere:
            entries += client.bill_entries(
                scope.form, elsewhere, reference_field=scope.reference_field
            )
    expected = _model_quantities(sent, form)
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
            "differences": evidence_table(differences),
            BILL_NUMBERS: bill_numbers(row["bill"] for row in differences),
        },
        description=verdict(
            not differences,
            f"Kingdee holds the sent quantities of {len(sent)} bill(s)",
            "金蝶读回数量与发送不一致 / Kingdee's quantities differ from what was sent: "
            + listed(dict.fromkeys(row["bill"] for row in differences)),
            "在金蝶核对这些单据是否被手工修改；kingdee_vs_wdt 说明差异 / look at these bills in "
            "Kingdee (edited by hand?); the kingdee_vs_wdt asset explains each difference",
        ),
    )

    headers = {
        entry.fid: BillRecord(entry.fid, entry.bill_no, entry.reference, "") for entry in entries
    }
    found = match_records(
        [row for row in bills.itertuples(index=False) if row.bill_no], headers.values()
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
            "bills_checked": int(bills["bill_no"].notna().sum()),
            "duplicated": len(duplicated),
            "bills": evidence_table(duplicated),
            BILL_NUMBERS: bill_numbers(row["bill"] for row in duplicated),
        },
        description=verdict(
            not duplicated,
            "each source document has at most one bill in Kingdee",
            "金蝶中有重复单据 / duplicate bills in Kingdee: "
            + listed(f"{row['bill']} FID {row['fids']}" for row in duplicated),
            "在金蝶删除多余的一张（保留最早的 FID），并查明谁另外写入 / delete the extra bill in "
            "Kingdee (keep the earliest FID) and find who else writes these bills",
        ),
    )
