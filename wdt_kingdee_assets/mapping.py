"""Pure: a flow's typed WDT lines + Kingdee materials → bill models of the flow's form.

Each flow's mapping is a pydantic-validated config with the seed article's defaults built in (one
class per form: :class:`MisDeliveryMapping` for 其他出库单); a YAML or JSON file named by the
flow's variable (``WDT_KINGDEE_MAPPING`` for production stock-outs) overrides any of them. One
document becomes one bill (``strategy: per_stockout``); the strategy is a config value so that
other groupings (e.g. one merged bill per day and warehouse) can be added beside it.
"""

from __future__ import annotations

import json
import os
import re
from abc import abstractmethod
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from string import Formatter
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wdt_kingdee_assets.bulk import gc_paused
from wdt_kingdee_assets.grouping import SourceLine, merge_documents
from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY, MISCELLANEOUS, KingdeeForm
from wdt_kingdee_assets.outcomes import Readiness
from wdt_kingdee_assets.reference import reference_token

if TYPE_CHECKING:
    from wdt_kingdee_assets.frames import FrameSchema
    from wdt_kingdee_assets.source import Source

MAPPING_ENV = "WDT_KINGDEE_MAPPING"
STOCKIN_MAPPING_ENV = "WDT_KINGDEE_STOCKIN_MAPPING"
REFERENCE_PLACEHOLDER = "source_ref"
# A merged bill's number: its warehouse, its day (yyyymmdd) and its part ("1", "S1-2" …).
MERGED_FIELDS = frozenset({"warehouse_no", "date", "part"})
# The shape of a customer's extension field (F_xxx_…).
_CUSTOM_FIELD = re.compile(r"F_[A-Za-z0-9]+_[A-Za-z0-9_]+")


class MappingConfigError(ValueError):
    """The mapping file is unreadable or invalid; the message names the file and each bad field."""


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(template) if name is not None}


def _checked_template(template: str, allowed: frozenset[str]) -> str:
    unknown = _placeholders(template) - allowed
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return template


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
    warehouses: dict[str, str] = Field(
        default_factory=dict, description="WDT warehouse_no → Kingdee FStockId number"
    )
    unmapped_warehouse: Literal["identity", "hold"] = Field(
        default="identity",
        description="a warehouse missing from `warehouses`: use its WDT code, or hold the bill",
    )
    lot_from_batch_no: bool = Field(default=True, description="send batch_no as FLot")
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

    @field_validator("source_ref_field")
    @classmethod
    def _reference_field(cls, field: str | None) -> str | None:
        note = cls.FORM.note
        if field is not None and field != note and not _CUSTOM_FIELD.fullmatch(field):
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

    def orgs(self, default_org: str) -> tuple[str, str]:
        """(stock, owner) org numbers, falling back to the Kingdee resource's org."""
        stock = self.stock_org or default_org
        return stock, self.owner_org or stock

    @abstractmethod
    def header(self, bill: Mapping[str, Any], note: str, org: str, ref: References) -> dict:
        """The bill's header fields in the form's template order, without its entries."""

    def entry_first(self) -> dict[str, Any]:
        """Fields a form's entries start with (its template's order), before the common ones."""
        return {}

    def entries(self, org: str, ref: References) -> EntryMaker:
        """A maker of the form's entry lines for bills of stock org ``org``, keyed as the form
        spells its fields (``kingdee/forms.py``), in Kingdee's template order."""
        form = self.FORM
        stock_org, owner_org = self.orgs(org)
        status, owner, keeper = ref(self.stock_status), ref(owner_org), ref(stock_org)
        first, with_lot = self.entry_first(), self.lot_from_batch_no

        def entry(material, unit, quantity, stock, lot, rec_id) -> dict[str, Any]:
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
            if with_lot and lot:
                item[form.lot] = ref(lot)
            if rec_id is not None and rec_id is not pd.NA:
                item["FEntryNote"] = f"WDT rec_id {rec_id}"
            return item

        return entry


# (material, unit, quantity, stock, lot or None, WDT line id or None) → one entry of the form.
EntryMaker = Callable[[str, str, Decimal, str, str | None, Any], dict[str, Any]]

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
        stock_org, owner_org = self.orgs(org)
        # Key order follows Kingdee's template: later fields can overwrite earlier ones
        # (reference §7).
        return {
            "FBillNo": bill["bill_no"],
            "FBillTypeID": {"FNUMBER": self.bill_type},
            "FStockOrgId": ref(stock_org),
            "FPickOrgId": ref(self.pick_org or stock_org),
            "FStockDirect": self.stock_direct,
            "FDate": bill["bill_date"],
            "FDeptId": ref(self.department),
            "FOwnerTypeIdHead": "BD_OwnerOrg",
            "FOwnerIdHead": ref(owner_org),
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
        stock_org, owner_org = self.orgs(org)
        partner = (
            {"FSUPPLIERID": ref(self.supplier)}
            if self.supplier
            else {"FDEPTID": ref(self.department)}
        )
        return {
            "FBillNo": bill["bill_no"],
            "FBillTypeID": {"FNUMBER": self.bill_type},
            "FStockOrgId": ref(stock_org),
            "FStockDirect": self.stock_direct,
            "FDate": bill["bill_date"],
            **partner,
            "FOwnerTypeIdHead": "BD_OwnerOrg",
            "FOwnerIdHead": ref(owner_org),
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
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(root)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise MappingConfigError(f"mapping file {file}: {problems}") from exc


class Material(Protocol):
    """What the mapping needs to know of a Kingdee material (BD_MATERIAL)."""

    @property
    def base_unit(self) -> str | None: ...

    @property
    def usable(self) -> bool: ...

    @property
    def state(self) -> str:
        """What Kingdee says of it, short (``disabled``, ``usable:Pcs`` …): whether it changed."""
        ...


ABSENT = "absent"  # the state of a material Kingdee does not have


def wire_quantity(quantity: Decimal | str) -> int | float | str:
    """A quantity as a JSON number when that is exact, else as its decimal string.

    Kingdee's templates send FQty as a number; a float whose shortest repr equals the decimal is
    exact on the wire. Anything that would not round-trip is sent as text rather than rounded.
    """
    value = Decimal(str(quantity))
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


def wire_model(model: Mapping[str, Any], form: KingdeeForm) -> dict[str, Any]:
    """A stored model, ready for BatchSave's JSON: quantities as exact numbers."""
    wired = dict(model)
    quantity = form.quantity
    wired[form.entry] = [
        {**entry, quantity: wire_quantity(entry[quantity])} for entry in model[form.entry]
    ]
    return wired


def _format(template: str, values: Mapping[str, Any], fields: frozenset[str]) -> str:
    return template.format(
        **{name: "" if values.get(name) is None else values[name] for name in fields}
    )


def _note_values(header: Mapping[str, Any]) -> dict[str, Any]:
    """The template values of a bill: its header fields, the source ref as its token."""
    return {**header, REFERENCE_PLACEHOLDER: reference_token(header["source_ref"])}


def _stock_number(warehouse_no: str, config: MappingConfig) -> str | None:
    if warehouse_no in config.warehouses:
        return config.warehouses[warehouse_no]
    return warehouse_no if config.unmapped_warehouse == "identity" else None


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


def build_bills(
    lines: pd.DataFrame,
    materials: Mapping[str, Material],
    config: MappingConfig,
    org: str,
    source: Source,
    schema: FrameSchema,
    earlier: Mapping[str, int] | None = None,
    own: frozenset[str] = frozenset(),
) -> pd.DataFrame:
    """The day's bills (``schema``: the flow's bills columns), each ``ready`` or ``held`` with the
    reasons.

    First each document is judged: it is held when any of its lines was rejected (a partial bill
    would misstate the document), when Kingdee lacks or has disabled one of its materials, when a
    material has no base unit, or when its warehouse is not mapped. Lines without a document id
    cannot form a bill; they stay visible in the normalized lines and their rejected-lines check.
    Then the mapping's ``strategy`` groups the ready documents: one bill each (``per_stockout``),
    or merged per warehouse and day (``per_day_warehouse``, ``grouping.py``; ``earlier`` says
    which batch each document was built into before, so that no built bill changes; the
    documents in ``own`` already have a bill of their own in Kingdee and keep it). A held
    document is its own held row either way.

    One pass over the lines sorted by document (stable, so each bill keeps WDT's line order),
    on plain lists: per-group pandas calls would cost far more than the work itself.
    """
    key, number = source.key, source.number
    form = config.FORM
    stock_org = config.orgs(org)[0]
    note_fields = config.note_fields()
    ref = References()
    entry = config.entries(org, ref)
    identified = lines[lines[key].notna()].sort_values(key, kind="stable")
    column = {name: identified[name].tolist() for name in identified.columns}
    ids, reject, spec = column[key], column["reject_reason"], column["spec_no"]
    unusable = {
        number
        for number in set(spec)
        if number is not None and (number not in materials or not materials[number].usable)
    }
    lot_numbers, rec_ids, quantities = column["batch_no"], column["rec_id"], column["num"]

    def judged(first: int, end: int) -> dict[str, Any]:
        """One document: its header, its usable lines, and why it is held (if it is)."""
        header = {
            key: int(ids[first]),
            number: column[number][first],
            "process_no": column["process_no"][first],
            "warehouse_no": column["warehouse_no"][first],
        }
        moment = column[source.time_field][first]
        # A document's own bill stands for it: the document's number is its source reference.
        header["source_ref"] = header[number]
        header["bill_no"] = (
            _format(config.bill_no_template, header, config.DOCUMENT_FIELDS)
            if header[number]
            else None
        )
        header["bill_date"] = None if pd.isna(moment) else moment.strftime("%Y-%m-%d")

        reasons: list[str] = []
        rejected = [reject[k] for k in range(first, end) if reject[k] is not None]
        if rejected:
            reasons.append(f"{len(rejected)} rejected line(s): " + "; ".join(sorted(set(rejected))))
        usable = [k for k in range(first, end) if reject[k] is None]
        spec_nos = sorted({spec[k] for k in usable})
        missing = [number for number in spec_nos if number in unusable]
        if missing:
            reasons.append(
                "物料在金蝶中不存在或已禁用 / material missing or disabled in Kingdee "
                f"(use-org {stock_org}): " + ", ".join(missing)
            )
        no_unit = [n for n in spec_nos if n not in unusable and not materials[n].base_unit]
        if no_unit:
            reasons.append("material has no base unit in Kingdee: " + ", ".join(no_unit))
        warehouse_no = header["warehouse_no"]
        stock = _stock_number(warehouse_no, config) if warehouse_no else None
        if warehouse_no and stock is None:
            reasons.append(f"warehouse {warehouse_no} is not mapped to a Kingdee FStockId")
        ready = bool(not reasons and header["bill_no"] and header["bill_date"] and stock)
        return {
            **header,
            "readiness": Readiness.READY if ready else Readiness.HELD,
            "hold_reason": None if ready else "; ".join(reasons),
            "missing_materials": missing,
            "missing_states": {
                number: materials[number].state if number in materials else ABSENT
                for number in missing
            },
            "line_count": end - first,
            "model": None,
            "sources": [header[number]] if header[number] else [],
            "lineage": None,
            "_usable": usable,
            "_stock": stock,
        }

    def model(bill: Mapping[str, Any], values: Mapping[str, Any], made: list[dict]) -> dict:
        note = _format(config.note_template, _note_values(values), note_fields)
        built = config.header(bill, note, org, ref)
        if config.reference_field != form.note:
            built[config.reference_field] = reference_token(values["source_ref"])
        built[form.entry] = made
        return built

    def own_bill(document: dict[str, Any]) -> dict[str, Any]:
        """A ready document's bill of its own (``per_stockout``)."""
        made = [
            entry(
                spec[k],
                materials[spec[k]].base_unit,
                quantities[k],
                document["_stock"],
                lot_numbers[k],
                rec_ids[k],
            )
            for k in document["_usable"]
        ]
        return {**document, "model": model(document, document, made)}

    def merged_bills(ready: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ready documents merged per warehouse and day (``per_day_warehouse``)."""
        groups: dict[tuple[str, str, str], dict[str, list[SourceLine]]] = {}
        for document in ready:
            where = (document["bill_date"], document["warehouse_no"], document["_stock"])
            groups.setdefault(where, {})[document[number]] = [
                SourceLine(
                    document[number],
                    None if rec_ids[k] is pd.NA else rec_ids[k],
                    spec[k],
                    materials[spec[k]].base_unit,
                    quantities[k],
                    lot_numbers[k] if config.lot_from_batch_no else None,
                )
                for k in document["_usable"]
            ]
        bills = []
        for (bill_date, warehouse_no, stock), documents in sorted(groups.items()):
            parts = merge_documents(
                documents,
                earlier or {},
                max_lines=config.max_lines,
                merge_lines=config.merge_lines,
            )
            for part in parts:
                date_digits = bill_date.replace("-", "")
                bill = {
                    "warehouse_no": warehouse_no,
                    "bill_date": bill_date,
                    "bill_no": _format(
                        config.merged_bill_no_template,
                        {"warehouse_no": warehouse_no, "date": date_digits, "part": part.label},
                        MERGED_FIELDS,
                    ),
                    "source_ref": f"{bill_date}/{warehouse_no}/{part.label}",
                    # The note's {process_no}: how many documents the bill merges.
                    "process_no": f"合并生单 {len(part.sources)} 张",
                }
                made = [
                    entry(item.material, item.unit, item.quantity, stock, item.lot, None)
                    for item in part.entries
                ]
                bills.append(
                    {
                        **bill,
                        "readiness": Readiness.READY,
                        "missing_materials": [],
                        "missing_states": {},
                        "line_count": len(made),
                        "model": model(bill, bill, made),
                        "sources": part.sources,
                        "lineage": [
                            [[line.document, line.rec_id, line.quantity] for line in item.lineage]
                            for item in part.entries
                        ],
                    }
                )
        return bills

    documents = []
    first = 0
    with gc_paused():
        while first < len(ids):
            end = first + 1
            while end < len(ids) and ids[end] == ids[first]:
                end += 1
            documents.append(judged(first, end))
            first = end
        held = [document for document in documents if document["readiness"] == Readiness.HELD]
        ready = [document for document in documents if document["readiness"] == Readiness.READY]
        if config.strategy == "per_day_warehouse":
            for document in held:
                document["bill_no"] = None  # a held document is in no merged bill (yet)
            alone = [own_bill(document) for document in ready if document[number] in own]
            to_merge = [document for document in ready if document[number] not in own]
            bills = [*merged_bills(to_merge), *alone, *held]
        else:
            bills = [
                own_bill(document) if document["readiness"] == Readiness.READY else document
                for document in documents
            ]
        return schema.frame(bills)
