"""Pure: how a flow's WDT documents become bills of its Kingdee form (``bills.py`` builds them).

Each flow's mapping is a pydantic-validated config with the seed article's defaults built in (one
class per form: :class:`MisDeliveryMapping` for 其他出库单); a YAML or JSON file named by the
flow's variable (``WDT_KINGDEE_MAPPING`` for production stock-outs) overrides any of them. One
document becomes one bill (``strategy: per_stockout``) or documents are merged per warehouse and
day (``per_day_warehouse``). The parts a real data center needs — warehouse names, bins, units,
code maps, custom fields — are values of ``codes.py`` and ``units.py``, validated at load.
"""

from __future__ import annotations

import json
import os
from abc import abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from string import Formatter
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wdt_kingdee_assets.codes import (
    CUSTOM_FIELD,
    BinMap,
    MaterialCodes,
    Unmapped,
    WarehouseTarget,
)
from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY, MISCELLANEOUS, KingdeeForm
from wdt_kingdee_assets.units import UnitsConfig

if TYPE_CHECKING:
    pass

MAPPING_ENV = "WDT_KINGDEE_MAPPING"
STOCKIN_MAPPING_ENV = "WDT_KINGDEE_STOCKIN_MAPPING"
REFERENCE_PLACEHOLDER = "source_ref"
# A merged bill's number: its warehouse, its day (yyyymmdd) and its part ("1", "S1-2" …).
MERGED_FIELDS = frozenset({"warehouse_no", "date", "part"})
# What an entry's own template (entry_fields) may name: the line's fields, beside the document's.
LINE_FIELDS = frozenset(
    {
        "spec_no",
        "goods_no",
        "goods_name",
        "batch_no",
        "position_no",
        "base_unit_name",
        "rec_id",
        "production_date",
        "expire_date",
    }
)


class MappingConfigError(ValueError):
    """The mapping file is unreadable or invalid; the message names the file and each bad field."""


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name is not None}


def _checked_template(template: str, allowed: frozenset[str]) -> str:
    unknown = _placeholders(template) - allowed
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return template


def _checked_fields(fields: dict[str, str], allowed: frozenset[str]) -> dict[str, str]:
    for name, template in fields.items():
        if not CUSTOM_FIELD.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a custom field (F_<prefix>_<name>, e.g. F_PAEZ_Line)"
            )
        try:
            _checked_template(template, allowed)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from exc
    return fields


class MappingConfig(BaseModel):
    """How a flow's WDT documents become Kingdee bills: what every form's mapping shares.

    A subclass per flow names its form (``FORM``) and the document fields its templates may use
    (``DOCUMENT_FIELDS``), and shapes the form's header and entries. Defaults follow SPEC §4.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    FORM: ClassVar[KingdeeForm]
    DOCUMENT_FIELDS: ClassVar[frozenset[str]]

    strategy: Literal["per_stockout", "per_day_warehouse"] = Field(
        default="per_stockout",
        description="per_stockout: one bill per document; per_day_warehouse: merged bills "
        "(合并生单), one per warehouse and day (grouping.py)",
    )
    merged_bill_no_template: str = Field(
        default="{warehouse_no}-{date}-{part}",
        description="merged bills' FBillNo; placeholders: " + ", ".join(sorted(MERGED_FIELDS)),
    )
    max_lines: int = Field(
        default=200, ge=1, le=10_000, description="merged bills: entry lines per bill (part)"
    )
    merge_lines: bool = Field(
        default=True,
        description="merged bills: one entry per (material, lot), or one per source line",
    )
    bill_no_template: str = Field(description="FBillNo, from the document's fields")
    bill_type: str
    stock_org: str | None = Field(default=None, description="库存组织; None = KINGDEE_ORG_NUMBER")
    owner_org: str | None = Field(default=None, description="货主; None = the stock org")
    department: str = "BM000032"
    stock_direct: Literal["GENERAL", "RETURN"] = "GENERAL"
    base_currency: str = "PRE001"
    stock_status: str = "KCZT01_SYS"
    note_template: str = Field(
        default="{source_ref} / {process_no}",
        description="the remark (备注); {source_ref} is the token a re-run finds the bill by "
        "(see reference.py)",
    )
    source_ref_field: str | None = Field(
        default=None,
        description=(
            "header field that carries the source reference: None or the form's remark field "
            "(through note_template), or a custom field such as F_PAEZ_SourceRef that the data "
            "center has added to the form"
        ),
    )
    warehouses: dict[str, WarehouseTarget] = Field(
        default_factory=dict,
        description="WDT warehouse_no → the Kingdee warehouse: its FStockId number, or "
        "{stock, department, owner} when the warehouse has its own department or owner org",
    )
    unmapped_warehouse: Unmapped = Field(
        default="identity",
        description="a warehouse missing from `warehouses`: use its WDT code, or hold the bill",
    )
    warehouse_names: dict[str, str] = Field(
        default_factory=dict,
        description="WDT warehouse_name → warehouse_no, for answers that name the warehouse "
        "only (older WDT builds send no warehouse_no)",
    )
    lot_from_batch_no: bool = Field(
        default=True, description="send each line's batch (from its positions) as FLot"
    )
    bins: dict[str, BinMap] = Field(
        default_factory=dict,
        description="bin-managed Kingdee warehouses (FStockId number) → how WDT's position_no "
        "becomes the entry's bin (FStockLocId)",
    )
    units: UnitsConfig = Field(default_factory=UnitsConfig)
    materials: MaterialCodes = Field(default_factory=MaterialCodes)
    header_fields: dict[str, str] = Field(
        default_factory=dict,
        description="the customer's own F_… header fields: constants or templates over the "
        "document's fields",
    )
    entry_fields: dict[str, str] = Field(
        default_factory=dict,
        description="the customer's own F_… entry fields: constants or templates over the "
        "line's and the document's fields",
    )
    on_drift: Literal["report", "correct"] = Field(
        default="report",
        description="when WDT changes a document after its bill was written: report it (the "
        "drift check fails, an alert goes out), or correct the bill in Kingdee (corrections.py)",
    )
    after_save: Literal["audit", "submit", "none"] = Field(
        default="audit",
        description="what happens to a saved bill: audit (submit, then audit: stock moves), "
        "submit (an approval workflow audits), or none (stays saved, status A)",
    )

    @classmethod
    def note_fields(cls) -> frozenset[str]:
        return cls.DOCUMENT_FIELDS | {REFERENCE_PLACEHOLDER}

    @field_validator("bill_no_template")
    @classmethod
    def _bill_no_placeholders(cls, template: str) -> str:
        return _checked_template(template, cls.DOCUMENT_FIELDS)

    @field_validator("merged_bill_no_template")
    @classmethod
    def _merged_bill_no_placeholders(cls, template: str) -> str:
        if "{part}" not in template:
            raise ValueError(
                "must contain {part}: the parts of one day's bill need their own numbers"
            )
        return _checked_template(template, MERGED_FIELDS)

    @field_validator("note_template")
    @classmethod
    def _note_placeholders(cls, template: str) -> str:
        return _checked_template(template, cls.note_fields())

    @classmethod
    def header_template_fields(cls) -> frozenset[str]:
        return cls.DOCUMENT_FIELDS | {"warehouse_name", "bill_date"}

    @field_validator("header_fields")
    @classmethod
    def _header_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        return _checked_fields(fields, cls.header_template_fields())

    @field_validator("entry_fields")
    @classmethod
    def _entry_fields(cls, fields: dict[str, str]) -> dict[str, str]:
        return _checked_fields(fields, cls.DOCUMENT_FIELDS | LINE_FIELDS)

    @field_validator("source_ref_field")
    @classmethod
    def _reference_field(cls, field: str | None) -> str | None:
        note = cls.FORM.note
        if field is not None and field != note and not CUSTOM_FIELD.fullmatch(field):
            raise ValueError(
                f"must be {note} or a custom header field like F_PAEZ_SourceRef, got {field!r}"
            )
        return field

    @model_validator(mode="after")
    def _note_carries_the_reference(self) -> MappingConfig:
        # Without the reference a bill renumbered by Kingdee's coding rule cannot be found again,
        # and every re-run would write it once more.
        if self.reference_field == self.FORM.note and REFERENCE_PLACEHOLDER not in _placeholders(
            self.note_template
        ):
            raise ValueError(
                "note_template must contain {source_ref}: it is how a re-run finds a bill that "
                "Kingdee renumbered (or name a custom header field in source_ref_field)"
            )
        return self

    @property
    def reference_field(self) -> str:
        """The header field the source reference is written to and found by."""
        return self.source_ref_field or self.FORM.note

    @property
    def form_id(self) -> str:
        return self.FORM.form_id

    def main_org(self, default_org: str) -> str:
        """The flow's stock org: the mapping's, else the Kingdee resource's (KINGDEE_ORG_NUMBER)."""
        return self.stock_org or default_org

    def stock_orgs(self, default_org: str) -> tuple[str, ...]:
        """Every stock org the flow writes bills of: its own first, then each warehouse's own.
        What every look-up of the day's bills in Kingdee is narrowed to."""
        main = self.main_org(default_org)
        own = {target.org for target in self.warehouses.values() if target.org}
        return (main, *sorted(own - {main}))

    def warehouse_of(
        self, warehouse_no: str | None, warehouse_name: str | None
    ) -> tuple[str | None, str | None]:
        """(WDT warehouse_no, why there is none): the document's own code, else the one its
        name stands for in ``warehouse_names`` (older WDT builds send the name only)."""
        if warehouse_no is not None:
            return warehouse_no, None
        if warehouse_name is None:
            return None, "旺店通未给出仓库 / WDT sent neither warehouse_no nor warehouse_name"
        found = self.warehouse_names.get(warehouse_name)
        if found is None:
            return None, (
                f"旺店通未给出仓库编号 / WDT sent no warehouse_no, and its warehouse_name "
                f"{warehouse_name} is not in warehouse_names"
            )
        return found, None

    def target(self, warehouse_no: str) -> WarehouseTarget | None:
        """Where a WDT warehouse's bills go in Kingdee; None when it is not mapped (hold)."""
        if warehouse_no in self.warehouses:
            return self.warehouses[warehouse_no]
        return (
            WarehouseTarget(stock=warehouse_no) if self.unmapped_warehouse == "identity" else None
        )

    def orgs(self, default_org: str, target: WarehouseTarget | None = None) -> tuple[str, str]:
        """(stock, owner) org numbers of a bill of ``target``'s warehouse (the flow's own
        without one). A warehouse of another stock org owns its goods itself unless it names an
        owner: the mapping's ``owner_org`` is the flow's own stock org's owner."""
        main = self.main_org(default_org)
        if target is not None and target.org and target.org != main:
            stock, owner = target.org, target.org
        else:
            stock, owner = main, self.owner_org or main
        return stock, (target.owner if target is not None and target.owner else owner)

    def stock_org_of(
        self, warehouse_no: str | None, warehouse_name: str | None, default_org: str
    ) -> str:
        """The stock org a document's bill goes to (the flow's own when its warehouse is
        unknown: such a bill is held anyway)."""
        code, _ = self.warehouse_of(warehouse_no, warehouse_name)
        target = self.target(code) if code else None
        return self.orgs(default_org, target)[0]

    @abstractmethod
    def header(self, bill: Mapping[str, Any], note: str, org: str, ref: References) -> dict:
        """The bill's header fields in the form's template order, without its entries; the
        bill names its ``stock_org`` and ``owner_org`` (``orgs``), ``org`` is the flow's
        default (KINGDEE_ORG_NUMBER)."""

    def entry_first(self) -> dict[str, Any]:
        """Fields a form's entries start with (its template's order), before the common ones."""
        return {}

    def entries(self, stock_org: str, owner_org: str, ref: References) -> EntryMaker:
        """A maker of the form's entry lines for bills of ``stock_org`` (the keeper) and
        ``owner_org`` (``orgs``), keyed as the form spells its fields (``kingdee/forms.py``),
        in Kingdee's template order."""
        form = self.FORM
        status, keeper = ref(self.stock_status), ref(stock_org)
        owner = ref(owner_org)
        first = self.entry_first()

        def entry(material, unit, quantity, stock, lot, rec_id, detail=(), custom=None):
            unit_ref = ref(unit)
            item: dict[str, Any] = {
                **first,
                form.material: ref(material),
                "FUnitID": unit_ref,
                form.quantity: quantity,
                "FBaseUnitId": unit_ref,
                form.stock: ref(stock),
                form.stock_status: status,
                form.owner_type: "BD_OwnerOrg",
                form.owner: owner,
                form.keeper_type: "BD_KeeperOrg",
                form.keeper: keeper,
            }
            if lot:
                item[form.lot] = ref(lot)
            if detail:
                flex, bin_number, produced, expires = detail
                if bin_number:
                    # Kingdee's flex-field shape: {"FSTOCKLOCID__FF100001": {"FNumber": "A-01"}}
                    item[form.bin] = {f"{form.bin.upper()}__{flex}": ref(bin_number)}
                if produced:
                    item[form.produce_date] = produced
                if expires:
                    item[form.expiry_date] = expires
            if rec_id is not None and rec_id is not pd.NA:
                # A negative id is the line's place in an order WDT sent without line ids.
                item["FEntryNote"] = f"WDT rec_id {rec_id}" if rec_id > 0 else f"WDT 第{-rec_id}行"
            if custom:
                item.update(custom)
            return item

        return entry


# (material, unit, quantity, stock, lot or None, WDT line id or None, detail, custom fields) →
# one entry of the form; detail = (bin flex field, bin, production date, expiry date) or ().
EntryMaker = Callable[..., dict[str, Any]]

STOCKOUT_FIELDS = frozenset({"stockout_no", "process_no", "warehouse_no", "stockout_id"})


class MisDeliveryMapping(MappingConfig):
    """How a WDT production stock-out becomes a Kingdee 其他出库单 (STK_MisDelivery)."""

    FORM: ClassVar[KingdeeForm] = MIS_DELIVERY
    DOCUMENT_FIELDS: ClassVar[frozenset[str]] = STOCKOUT_FIELDS

    bill_no_template: str = Field(
        default="{stockout_no}",
        description="FBillNo; placeholders: " + ", ".join(sorted(STOCKOUT_FIELDS)),
    )
    bill_type: str = "QTCKD01_SYS"
    pick_org: str | None = Field(default=None, description="领用组织; None = the stock org")

    def header(self, bill: Mapping[str, Any], note: str, org: str, ref: References) -> dict:
        stock_org = bill["stock_org"]
        # The mapping's pick org is that of its own stock org; a warehouse of another stock
        # org picks for itself.
        pick_org = self.pick_org if stock_org == self.main_org(org) else None
        # Key order follows Kingdee's template: later fields can overwrite earlier ones
        # (reference §7).
        return {
            "FBillNo": bill["bill_no"],
            "FBillTypeID": {"FNUMBER": self.bill_type},
            "FStockOrgId": ref(stock_org),
            "FPickOrgId": ref(pick_org or stock_org),
            "FStockDirect": self.stock_direct,
            "FDate": bill["bill_date"],
            "FDeptId": ref(bill.get("department") or self.department),
            "FOwnerTypeIdHead": "BD_OwnerOrg",
            "FOwnerIdHead": ref(bill["owner_org"]),
            "FBaseCurrId": ref(self.base_currency),
            "FNote": note,
        }


STOCKIN_FIELDS = frozenset({"stockin_no", "process_no", "warehouse_no", "stockin_id"})


class MiscellaneousMapping(MappingConfig):
    """How a WDT production stock-in becomes a Kingdee 其他入库单 (STK_MISCELLANEOUS).

    The header needs a department or a supplier (供应商与部门两者必填一项): a production stock-in
    comes from a workshop, so the department is the default and the supplier is optional.
    """

    FORM: ClassVar[KingdeeForm] = MISCELLANEOUS
    DOCUMENT_FIELDS: ClassVar[frozenset[str]] = STOCKIN_FIELDS

    bill_no_template: str = Field(
        default="{stockin_no}",
        description="FBillNo; placeholders: " + ", ".join(sorted(STOCKIN_FIELDS)),
    )
    bill_type: str = "QTRKD01_SYS"
    supplier: str | None = Field(
        default=None, description="供应商 (FSUPPLIERID), sent instead of the department when set"
    )
    in_stock_type: Literal["1", "2", "3"] = Field(
        default="1", description="入库类型 (FInStockType): 1 = 合格入库"
    )

    def header(self, bill: Mapping[str, Any], note: str, org: str, ref: References) -> dict:
        partner = (
            {"FSUPPLIERID": ref(self.supplier)}
            if self.supplier
            else {"FDEPTID": ref(bill.get("department") or self.department)}
        )
        return {
            "FBillNo": bill["bill_no"],
            "FBillTypeID": {"FNUMBER": self.bill_type},
            "FStockOrgId": ref(bill["stock_org"]),
            "FStockDirect": self.stock_direct,
            "FDate": bill["bill_date"],
            **partner,
            "FOwnerTypeIdHead": "BD_OwnerOrg",
            "FOwnerIdHead": ref(bill["owner_org"]),
            "FBaseCurrId": ref(self.base_currency),
            "FNOTE": note,
        }

    def entry_first(self) -> dict[str, Any]:
        return {"FInStockType": self.in_stock_type}


def load_mapping(
    path: str | os.PathLike[str] | None = None,
    *,
    env: str = MAPPING_ENV,
    model: type[MappingConfig] = MisDeliveryMapping,
) -> MappingConfig:
    """The built-in defaults of ``model``, overridden by the file at ``path`` or ``$env``."""
    path = path or os.environ.get(env) or None
    if path is None:
        return model()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise MappingConfigError(f"mapping file {file}: cannot read it: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MappingConfigError(
            f"mapping file {file}: expected a mapping of fields, got {type(data).__name__}"
        )
    try:
        # A code table is named relative to the mapping file.
        return model.model_validate(data, context={"base_dir": file.parent})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise MappingConfigError(f"mapping file {file}: {problems}") from exc


class References:
    """One ``{"FNumber": ...}`` object per distinct number, shared by every entry that names it.

    A day's bills can hold hundreds of thousands of entries that name a few hundred materials,
    units and warehouses; sharing the reference objects keeps the models' memory to the entries
    themselves. Models are therefore read-only: copy an entry before changing a reference in it.
    """

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], dict[str, str]] = {}

    def __call__(self, number: str, key: str = "FNumber") -> dict[str, str]:
        reference = self._cache.get((key, number))
        if reference is None:
            reference = self._cache[(key, number)] = {key: number}
        return reference
