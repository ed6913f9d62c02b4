"""A flow is a value: which WDT documents become which Kingdee bills, and what it is called.

One :class:`Flow` names its WDT query (method, time type, statuses), its Kingdee form and the
mapping that turns lines into bills; everything else — the four assets, their checks, the job,
schedules and sensors (``factory.build_flow_defs``), the stored columns, the lease — is derived
from it. Pure: no Dagster, no I/O.

Names. The first flow (production stock-out) keeps the names it had before flows existed — asset
keys ``raw_stockouts`` …, group ``wdt_to_kingdee``, job ``sync_stockouts``, schedule
``sync_yesterday_daily`` — so that users' run history, schedules and sensor cursors stay where
they are. Every other flow lives under its own name: asset keys ``<flow>/raw_<documents>`` …,
group ``<flow>``, job ``sync_<documents>``, schedules and sensors ``<flow>_<name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wdt_kingdee_assets.frames import Column, FrameSchema
from wdt_kingdee_assets.kingdee.forms import KingdeeForm
from wdt_kingdee_assets.source import Source

if TYPE_CHECKING:
    from wdt_kingdee_assets.mapping import MappingConfig

ORIGINAL_GROUP = "wdt_to_kingdee"


@dataclass(frozen=True)
class Flow:
    name: str  # "production_stockout"
    documents: str  # "stockouts": the plural in asset and job names
    source: Source
    form: KingdeeForm
    load_mapping: Callable[[], MappingConfig]  # the flow's mapping, from its file or defaults
    mapping_env: str  # the variable naming the flow's mapping file
    keeps_original_names: bool = False
    # Whether its daily schedule runs once deployed. A flow added in an upgrade starts stopped:
    # it must not begin writing a new kind of bill into a customer's Kingdee unasked.
    schedule_on_by_default: bool = False

    # -- names ---------------------------------------------------------------------------

    @property
    def title(self) -> str:
        """``生产出库 → 其他出库单``"""
        return f"{self.source.chinese.removesuffix('单')} → {self.form.chinese}"

    @property
    def group(self) -> str:
        return ORIGINAL_GROUP if self.keeps_original_names else self.name

    @property
    def key_prefix(self) -> list[str]:
        return [] if self.keeps_original_names else [self.name]

    def asset_path(self, name: str) -> list[str]:
        return [*self.key_prefix, name]

    @property
    def raw_name(self) -> str:
        return f"raw_{self.documents}"

    @property
    def lines_name(self) -> str:
        return f"normalized_{self.documents}"

    bills_name = "kingdee_bills"
    results_name = "kingdee_write_results"
    drift_name = "kingdee_vs_wdt"  # the day's bills now against Kingdee (preview.py)
    corrections_name = "kingdee_corrections"

    @property
    def asset_names(self) -> frozenset[str]:
        """The last parts of the flow's asset keys (under its key prefix)."""
        return frozenset(
            {
                self.raw_name,
                self.lines_name,
                self.bills_name,
                self.results_name,
                self.drift_name,
                self.corrections_name,
            }
        )

    @property
    def preview_job_name(self) -> str:
        return f"preview_{self.documents}"

    @property
    def correct_job_name(self) -> str:
        return f"correct_{self.documents}"

    @property
    def job_name(self) -> str:
        return f"sync_{self.documents}"

    @property
    def retry_job_name(self) -> str:
        return f"retry_{self.documents}"

    def qualified(self, name: str) -> str:
        """A name that must be unique across flows (a schedule, a sensor, a multi-check's op):
        the first flow's unchanged."""
        return name if self.keeps_original_names else f"{self.name}_{name}"

    @property
    def lease_scope(self) -> str:
        """The prefix of the per-day write lease's key: one writer per flow and day."""
        return self.group

    # -- stored columns ------------------------------------------------------------------

    @property
    def schemas(self) -> tuple[FrameSchema, ...]:
        """The stored assets' schemas: the four of the sync in data-flow order, then the
        comparison with Kingdee."""
        return (
            self.raw_schema,
            self.lines_schema,
            self.bills_schema,
            self.results_schema,
            self.drift_schema,
            self.corrections_schema,
        )

    def _stored_name(self, name: str) -> str:
        return "/".join(self.asset_path(name))

    @property
    def raw_schema(self) -> FrameSchema:
        s = self.source
        return FrameSchema(
            self._stored_name(self.raw_name),
            (
                Column(s.key, "int", f"WDT {s.key} ({s.key_title}), the key"),
                Column(s.number, "str", f"WDT {s.number} ({s.number_title})"),
                Column(
                    s.time_field, "str", f"{s.time_field} ({s.time_title}) exactly as WDT sent it"
                ),
                Column("order", "json", "the order as WDT sent it (decimals as exact strings)"),
            ),
        )

    @property
    def lines_schema(self) -> FrameSchema:
        s = self.source
        first_status = s.statuses[0]
        return FrameSchema(
            self._stored_name(self.lines_name),
            # One row per detail line and lot: a line taken from several batches or bins
            # (position_details_list) is a row per (batch, bin) with that part's quantity.
            (
                Column(s.key, "int", f"WDT {s.key}"),
                Column(s.number, "str", f"WDT {s.number} ({s.number_title})"),
                Column("process_no", "str", "production order no. (生产单号)"),
                Column("warehouse_no", "str", "WDT warehouse code (仓库编号)"),
                Column("warehouse_name", "str", "WDT warehouse name (仓库名称)"),
                Column(s.time_field, "datetime", f"{s.noun} time ({s.time_title}), Beijing"),
                Column(
                    "status",
                    "int",
                    f"WDT status ({first_status} = {s.method.statuses[first_status]})",
                ),
                Column(
                    "rec_id",
                    "int",
                    "WDT detail line id (negative: the line's place, when WDT sent no ids)",
                ),
                Column("spec_no", "str", "merchant SKU code (商家编码) = Kingdee material number"),
                Column("goods_no", "str", "goods code (货品编号)"),
                Column("goods_name", "str", "goods name (货品名称)"),
                Column(
                    "num",
                    "decimal",
                    f"{s.quantity_title}, exact: the line's, or this batch's and bin's part of it",
                ),
                Column("batch_no", "str", "batch / lot (批次), from the position when it has one"),
                Column("position_no", "str", "bin (货位)"),
                Column("production_date", "str", "production date (生产日期) as WDT sent it"),
                Column("expire_date", "str", "expiry date (有效期) as WDT sent it"),
                Column("base_unit_name", "str", "WDT unit name (单位)"),
                Column("defect", "bool", "defective goods (残次品)"),
                Column("reject_reason", "str", "why the line cannot be used; empty when usable"),
            ),
        )

    @property
    def bills_schema(self) -> FrameSchema:
        s, form = self.source, self.form
        return FrameSchema(
            self._stored_name(self.bills_name),
            (
                Column("bill_no", "str", f"FBillNo sent for the {form.name}"),
                Column(
                    "source_ref",
                    "str",
                    f"what the bill stands for (the {s.noun}'s number); written into it as [WDT:…]",
                ),
                Column(s.key, "int", f"WDT {s.key} the bill comes from"),
                Column(s.number, "str", f"WDT {s.number}"),
                Column("bill_date", "str", f"{form.date} (yyyy-MM-dd)"),
                Column(
                    "stock_org",
                    "str",
                    f"{form.stock_org} (库存组织): the flow's own, or its warehouse's; its "
                    "materials are looked up in it",
                ),
                Column("readiness", "str", "ready | held"),
                Column("hold_reason", "str", "why the bill is held; empty when ready"),
                Column(
                    "missing_materials",
                    "json",
                    "materials Kingdee lacks or has disabled (spec_no, or spec_no → number)",
                ),
                Column(
                    "missing_states",
                    "json",
                    "each Kingdee material that holds the bill → what Kingdee said of it (absent, "
                    "disabled, unaudited:A, or usable:kg:lots for a material whose lot or "
                    "shelf-life management the lines do not satisfy)",
                ),
                Column("line_count", "int", f"number of {form.entry} lines"),
                Column("model", "json", f"the {form.form_id} model sent to BatchSave"),
                Column(
                    "sources",
                    "json",
                    f"the {s.noun}s the bill carries ({s.number}); several for a merged bill",
                ),
                Column(
                    "lineage",
                    "json",
                    f"merged bills: per {form.entry} line, the WDT lines it adds up "
                    f"[{s.number}, rec_id, num]; empty for a bill of one {s.noun} (line i is "
                    f"its line i)",
                ),
                Column(
                    "roundings",
                    "json",
                    f"entries whose {form.quantity} was rounded to its unit's precision (BD_UNIT): "
                    "entry, material, exact, sent, unit, precision; empty when none was",
                ),
                Column(
                    "material_numbers",
                    "json",
                    "spec_no → Kingdee material number where the code map renumbers; empty when "
                    "every spec_no is its own number",
                ),
            ),
        )

    @property
    def drift_schema(self) -> FrameSchema:
        s, form = self.source, self.form
        return FrameSchema(
            self._stored_name(self.drift_name),
            (
                Column(
                    "verdict",
                    "str",
                    "new (a sync would write it) | identical | different | held (a sync would "
                    "not write it) | only_in_kingdee (its source is not in the day any more)",
                ),
                Column("source_ref", "str", f"what the bill stands for (the {s.noun}'s number)"),
                Column("bill_no", "str", "FBillNo a sync sends; empty for a bill only in Kingdee"),
                Column("kingdee_bill_no", "str", f"the {form.chinese} Kingdee holds for it"),
                Column("fid", "int", "its Kingdee FID"),
                Column("document_status", "str", "its FDocumentStatus in Kingdee"),
                Column(
                    "changes",
                    "json",
                    "what changed in WDT after the sync: quantity_changed, material_changed, "
                    "lines_added, lines_removed, moved_to_another_day, cancelled …",
                ),
                Column(
                    "differences",
                    "json",
                    f"each differing field: {form.date}, {form.stock_org}, or {form.quantity} per "
                    "material, lot and warehouse — WDT's value now beside Kingdee's",
                ),
                Column("note", "str", f"a held bill's reason; what WDT says of a {s.noun} gone"),
                Column(
                    "model",
                    "json",
                    f"the {form.form_id} model a sync (or a correction) would send now",
                ),
            ),
        )

    @property
    def corrections_schema(self) -> FrameSchema:
        s, form = self.source, self.form
        return FrameSchema(
            self._stored_name(self.corrections_name),
            (
                Column("source_ref", "str", f"the {s.noun} the bill stands for"),
                Column("kingdee_bill_no", "str", f"the {form.chinese} corrected"),
                Column("fid", "int", "its Kingdee FID"),
                Column(
                    "action",
                    "str",
                    "change (Save with its FID, after an UnAudit if it was audited) | delete | "
                    "corrected_from_its_new_day | needs_a_person",
                ),
                Column("changes", "json", "what changed in WDT (kingdee_vs_wdt)"),
                Column("before", "json", "the differing fields as Kingdee held them"),
                Column("after", "json", "the differing fields as WDT says them now"),
                Column("result", "str", "done | failed | unconfirmed | left_alone"),
                Column("document_status", "str", "FDocumentStatus after the correction"),
                Column("messages", "json", "Kingdee's words, or why it was left to a person"),
            ),
        )

    @property
    def results_schema(self) -> FrameSchema:
        return FrameSchema(
            self._stored_name(self.results_name),
            (
                Column("bill_no", "str", "FBillNo sent"),
                Column("source_ref", "str", "the source reference the bill carries ([WDT:…])"),
                Column(self.source.key, "int", f"WDT {self.source.key}"),
                Column("outcome", "str", "created | already_in_kingdee | failed | held"),
                Column("fid", "int", "Kingdee FID (internal id) when the bill is in Kingdee"),
                Column(
                    "kingdee_bill_no",
                    "str",
                    "FBillNo as Kingdee holds it (its coding rule may have renumbered the bill)",
                ),
                Column(
                    "failure",
                    "str",
                    "for held and failed bills: permanent (a retry cannot fix it) or transient",
                ),
                Column(
                    "blockers",
                    "json",
                    "materials a permanent failure hinges on: it is reconsidered when one of "
                    "them changes",
                ),
                Column(
                    "document_status",
                    "str",
                    "FDocumentStatus in Kingdee after the run: A 创建, B 审核中, C 已审核, D 重新审核",
                ),
                Column(
                    "settled",
                    "str",
                    "after the save (after_save): audited | submitted | saved | not_gated | "
                    "refused_at_submit | refused_at_audit | unconfirmed",
                ),
                Column("messages", "json", "Kingdee's messages or the hold reason, verbatim"),
                Column("attempts", "int", "BatchSave calls that carried this bill in this run"),
                Column("written_at", "datetime", "when this run settled the bill"),
            ),
        )
