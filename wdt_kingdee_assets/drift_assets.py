"""WDT after the fact, in Dagster: a flow's ``kingdee_vs_wdt`` asset (the day's bills as a run
would build them now, against what Kingdee holds: ``preview.py``) and its check that Kingdee
still agrees with WDT — in the preview job, which writes nothing — and ``kingdee_corrections``
(``corrections.py``), which only the correct job runs and which acts only when asked.
"""

import time
from collections import Counter
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from wdt_kingdee_assets.assets import KINGDEE_POOL, FlowAssets, api_step, calls_api
from wdt_kingdee_assets.corrections import Corrector, Result
from wdt_kingdee_assets.day import bill_scope
from wdt_kingdee_assets.drift import DRIFT, Verdict, field_label
from wdt_kingdee_assets.evidence import BILL_NUMBERS, bill_numbers, evidence_table
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.partitions import daily_partitions
from wdt_kingdee_assets.preview import preview_day
from wdt_kingdee_assets.resources import KingdeeResource, WdtResource
from wdt_kingdee_assets.storage import column_schema


class CorrectConfig(dg.Config):
    confirm: bool = Field(
        default=False,
        description="correct this day although the mapping says on_drift: report (a person "
        "asking for it)",
    )


def build_corrections_asset(flow: Flow, assets: FlowAssets) -> dg.AssetsDefinition:
    form = flow.form

    @dg.asset(
        name=flow.corrections_name,
        key_prefix=flow.key_prefix,
        partitions_def=daily_partitions,
        group_name=flow.group,
        deps=[assets.results.key],
        **calls_api(KINGDEE_POOL),
        description=(
            f"金蝶单据更正 / corrections: each {form.chinese} that no longer says what WDT says "
            "is changed in place (Save with its FID; unaudited first when audited, then "
            "submitted and audited again), or deleted when its document was cancelled — each "
            "with before and after. In approval, in a closed period, held twice, or gone from "
            "WDT: left to a person, saying why. Sends only with on_drift: correct in the "
            "mapping, or confirm: true for the day; else it lists what it would do."
        ),
        metadata={"dagster/column_schema": column_schema(flow.corrections_schema)},
    )
    def kingdee_corrections(
        context: dg.AssetExecutionContext,
        config: CorrectConfig,
        wdt: WdtResource,
        kingdee: KingdeeResource,
    ) -> dg.Output[pd.DataFrame]:
        day = context.partition_key
        mapping = flow.load_mapping()
        act = mapping.on_drift == "correct" or config.confirm
        if not act:
            context.log.warning(
                "%s: 未开启更正 / corrections are off (on_drift: %s): what would be done is "
                "listed, nothing is sent. Set on_drift: correct, or run %s with confirm: true.",
                day,
                mapping.on_drift,
                flow.correct_job_name,
            )
        client = kingdee.client(context.log.warning)
        with api_step(day):
            preview = preview_day(
                flow,
                mapping,
                wdt.client(context.log.warning),
                client,
                kingdee.org_number,
                day,
                io_manager=context.resources.io_manager,
            )
            corrector = Corrector(
                client,
                bill_scope(flow, mapping, kingdee.org_number, day),
                mapping.after_save,
                log=context.log,
            )
            done = corrector.correct([item.row() for item in preview.drift], act=act)
        frame = flow.corrections_schema.frame(item.row() for item in done)
        counted = Counter(str(item.result) for item in done)
        for item in done:
            context.log.info(
                "%s %s: %s → %s %s",
                item.source_ref,
                item.kingdee_bill_no,
                item.action,
                item.result,
                " | ".join(item.messages),
            )
        return dg.Output(
            frame,
            metadata={
                "corrections_on": act,
                "drifted_bills": len(done),
                **{str(result): counted.get(str(result), 0) for result in Result},
                "corrections": evidence_table(
                    [
                        {
                            "source": item.source_ref,
                            "bill": item.kingdee_bill_no,
                            "action": str(item.action),
                            "result": str(item.result),
                            "before": item.before,
                            "after": item.after,
                            "messages": " | ".join(item.messages)[:200],
                        }
                        for item in done
                    ]
                ),
                BILL_NUMBERS: bill_numbers(item.kingdee_bill_no for item in done),
            },
        )

    return kingdee_corrections


def build_drift_asset(flow: Flow, corrections: dg.AssetsDefinition) -> dg.AssetsDefinition:
    source, form = flow.source, flow.form

    @dg.asset(
        name=flow.drift_name,
        key_prefix=flow.key_prefix,
        partitions_def=daily_partitions,
        group_name=flow.group,
        # After the corrections when a job runs both: then it says what Kingdee holds after them.
        deps=[corrections.key],
        **calls_api(KINGDEE_POOL),
        description=(
            f"金蝶与旺店通对账 / Kingdee against WDT now: the day's {form.plural} as a sync "
            f"would build them from WDT now, each against the {form.chinese} Kingdee holds for it "
            "— new, identical, different (the fields, WDT's value beside Kingdee's), held, or "
            f"only in Kingdee (its {source.noun} cancelled, moved to another day or gone in "
            "WDT). Before a day's first sync it is the preview; after, the drift report. Reads "
            "only: nothing is written to Kingdee."
        ),
        metadata={"dagster/column_schema": column_schema(flow.drift_schema)},
    )
    def kingdee_vs_wdt(
        context: dg.AssetExecutionContext, wdt: WdtResource, kingdee: KingdeeResource
    ) -> dg.Output[pd.DataFrame]:
        started = time.monotonic()
        day = context.partition_key
        with api_step(day):
            preview = preview_day(
                flow,
                flow.load_mapping(),
                wdt.client(context.log.warning),
                kingdee.client(context.log.warning),
                kingdee.org_number,
                day,
                io_manager=context.resources.io_manager,
            )
        frame = preview.frame()
        changes = Counter(change for item in preview.drift for change in item.changes)
        context.log.info(
            "%s: %s", day, ", ".join(f"{verdict} {n}" for verdict, n in preview.counts().items())
        )
        for warehouse, refusal in preview.hidden.items():
            context.log.warning(
                "WDT warehouse %s: %s — this appkey does not see its documents: none is synced",
                warehouse,
                refusal,
            )
        return dg.Output(
            frame,
            metadata={
                **preview.counts(),
                "drift": len(preview.drift),
                "changes": dg.MetadataValue.json(dict(sorted(changes.items()))),
                "batch_save_payloads": len(preview.payloads),
                "hidden_warehouses": dg.MetadataValue.json(preview.hidden),
                "differences": evidence_table(drift_rows(frame)),
                "duration_seconds": round(time.monotonic() - started, 3),
            },
        )

    return kingdee_vs_wdt


def drift_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One evidence row per differing field of each bill that drifted (one per bill gone)."""
    rows = []
    for row in frame[frame["verdict"].isin([str(v) for v in DRIFT])].to_dict("records"):
        base = {
            "source": row["source_ref"],
            "bill": row["kingdee_bill_no"],
            "status": row["document_status"],
            "changes": ", ".join(row["changes"] or []),
        }
        if row["verdict"] == Verdict.ONLY_IN_KINGDEE:
            rows.append({**base, "field": "—", "WDT now": "—", "Kingdee": row["note"]})
            continue
        for diff in row["differences"] or []:
            what = field_label(diff)
            rows.append({**base, "field": what, "WDT now": diff["wdt"], "Kingdee": diff["kingdee"]})
    return rows


def build_drift_check(flow: Flow, drift: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    source, form = flow.source, flow.form

    @dg.asset_check(
        asset=drift,
        name="kingdee_agrees_with_wdt",
        partitions_def=daily_partitions,
        description=(
            f"金蝶与旺店通一致 / Kingdee agrees with WDT: every {form.chinese} Kingdee holds for "
            f"the day says what its {source.noun} says now. Fails naming each {source.noun} "
            f"changed after the sync (cancelled, quantity or material edited, lines added or "
            "removed, moved to another day) with its bill and the old and new values. What to "
            "do / 处理: correct the bill in Kingdee (or set on_drift: correct in the mapping and "
            f"run {flow.correct_job_name}), or restore the {source.noun} in WDT."
        ),
    )
    def kingdee_agrees_with_wdt(kingdee_vs_wdt: pd.DataFrame) -> dg.AssetCheckResult:
        frame = kingdee_vs_wdt
        drifted = frame[frame["verdict"].isin([str(v) for v in DRIFT])]
        rows = drift_rows(frame)
        passed = drifted.empty
        return dg.AssetCheckResult(
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None
            if passed
            else (
                f"{len(drifted)} 张{form.chinese}与旺店通不一致 / {len(drifted)} bill(s) no longer "
                f"match WDT: "
                + "; ".join(
                    f"{row['kingdee_bill_no']} ({row['source_ref']}: {', '.join(row['changes'])})"
                    for row in drifted.to_dict("records")[:5]
                )
            ),
            metadata={
                "drifted_bills": len(drifted),
                "bills_compared": int((frame["verdict"] != Verdict.NEW).sum()),
                "differences": evidence_table(rows),
                BILL_NUMBERS: bill_numbers(drifted["kingdee_bill_no"]),
            },
        )

    return kingdee_agrees_with_wdt


def build_drift_jobs(
    flow: Flow, drift: dg.AssetsDefinition, corrections: dg.AssetsDefinition
) -> list:
    """The preview job (compare only: writes nothing) and the correct job (correct, then
    compare again)."""
    return [
        dg.define_asset_job(
            flow.preview_job_name,
            selection=dg.AssetSelection.assets(drift),
            description=(
                f"预览/对账{flow.title}: what a sync of the day would write, against what "
                "Kingdee holds, with the drift check. Reads WDT and Kingdee; writes nothing."
            ),
        ),
        dg.define_asset_job(
            flow.correct_job_name,
            selection=dg.AssetSelection.assets(corrections, drift),
            description=(
                f"更正{flow.title}: corrects the day's bills that no longer match WDT (only "
                "with on_drift: correct, or confirm: true), then compares again."
            ),
        ),
    ]
