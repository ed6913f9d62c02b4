"""Pure: typed stock-out lines + Kingdee materials → 其他出库单 (STK_MisDelivery) models.

The mapping is a pydantic-validated config with the seed article's defaults built in; a YAML or
JSON file named by ``WDT_KINGDEE_MAPPING`` overrides any of them. One stock-out becomes one bill
(``strategy: per_stockout``); the strategy is a config value so that other groupings (e.g. one
merged bill per day and warehouse) can be added beside it without touching the rest.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from string import Formatter
from typing import Any, Literal, Protocol

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wdt_kingdee_assets.bulk import gc_paused
from wdt_kingdee_assets.frames import KINGDEE_BILLS
from wdt_kingdee_assets.reference import reference_token

MAPPING_ENV = "WDT_KINGDEE_MAPPING"
BILL_NO_FIELDS = frozenset({"stockout_no", "process_no", "warehouse_no", "stockout_id"})
REFERENCE_PLACEHOLDER = "source_ref"
NOTE_FIELDS = BILL_NO_FIELDS | {REFERENCE_PLACEHOLDER}
# Kingdee's own header field for remarks, and the shape of a customer's extension field (F_xxx_…).
NOTE_FIELD = "FNote"
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
    """How a WDT production stock-out becomes a Kingdee 其他出库单. Defaults follow SPEC §4."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["per_stockout"] = "per_stockout"
    form_id: str = "STK_MisDelivery"
    bill_no_template: str = Field(
        default="{stockout_no}",
        description="FBillNo; placeholders: " + ", ".join(sorted(BILL_NO_FIELDS)),
    )
    bill_type: str = "QTCKD01_SYS"
    stock_org: str | None = Field(default=None, description="库存组织; None = KINGDEE_ORG_NUMBER")
    pick_org: str | None = Field(default=None, description="领用组织; None = the stock org")
    owner_org: str | None = Field(default=None, description="货主; None = the stock org")
    department: str = "BM000032"
    stock_direct: Literal["GENERAL", "RETURN"] = "GENERAL"
    base_currency: str = "PRE001"
    stock_status: str = "KCZT01_SYS"
    note_template: str = Field(
        default="{source_ref} / {process_no}",
        description="FNote; {source_ref} is the token a re-run finds the bill by (see reference.py)",
    )
    source_ref_field: str = Field(
        default=NOTE_FIELD,
        description=(
            "header field that carries the source reference: FNote (through note_template), or "
            "a custom field such as F_PAEZ_SourceRef that the data center has added to the form"
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

    @field_validator("bill_no_template")
    @classmethod
    def _bill_no_placeholders(cls, template: str) -> str:
        return _checked_template(template, BILL_NO_FIELDS)

    @field_validator("note_template")
    @classmethod
    def _note_placeholders(cls, template: str) -> str:
        return _checked_template(template, NOTE_FIELDS)

    @field_validator("source_ref_field")
    @classmethod
    def _reference_field(cls, field: str) -> str:
        if field != NOTE_FIELD and not _CUSTOM_FIELD.fullmatch(field):
            raise ValueError(
                f"must be {NOTE_FIELD} or a custom header field like F_PAEZ_SourceRef, got {field!r}"
            )
        return field

    @model_validator(mode="after")
    def _note_carries_the_reference(self) -> MappingConfig:
        # Without the reference a bill renumbered by Kingdee's coding rule cannot be found again,
        # and every re-run would write it once more.
        if self.source_ref_field == NOTE_FIELD and REFERENCE_PLACEHOLDER not in _placeholders(
            self.note_template
        ):
            raise ValueError(
                "note_template must contain {source_ref}: it is how a re-run finds a bill that "
                "Kingdee renumbered (or name a custom header field in source_ref_field)"
            )
        return self

    def orgs(self, default_org: str) -> tuple[str, str, str]:
        """(stock, pick, owner) org numbers, falling back to the Kingdee resource's org."""
        stock = self.stock_org or default_org
        return stock, self.pick_org or stock, self.owner_org or stock


def load_mapping(path: str | os.PathLike[str] | None = None) -> MappingConfig:
    """The built-in defaults, overridden by the file at ``path`` or ``$WDT_KINGDEE_MAPPING``."""
    path = path or os.environ.get(MAPPING_ENV) or None
    if path is None:
        return MappingConfig()
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
        return MappingConfig.model_validate(data)
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


def wire_model(model: Mapping[str, Any]) -> dict[str, Any]:
    """A stored model, ready for BatchSave's JSON: quantities as exact numbers."""
    wired = dict(model)
    wired["FEntity"] = [
        {**entry, "FQty": wire_quantity(entry["FQty"])} for entry in model["FEntity"]
    ]
    return wired


def _format(template: str, values: Mapping[str, Any]) -> str:
    return template.format(
        **{name: "" if values.get(name) is None else values[name] for name in NOTE_FIELDS}
    )


def _note_values(header: Mapping[str, Any]) -> dict[str, Any]:
    """The template values of a bill: its header fields, the source ref as its token."""
    return {**header, REFERENCE_PLACEHOLDER: reference_token(header["source_ref"])}


def _stock_number(warehouse_no: str, config: MappingConfig) -> str | None:
    if warehouse_no in config.warehouses:
        return config.warehouses[warehouse_no]
    return warehouse_no if config.unmapped_warehouse == "identity" else None


class _References:
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
    lines: pd.DataFrame, materials: Mapping[str, Material], config: MappingConfig, org: str
) -> pd.DataFrame:
    """One bill per stock-out (KINGDEE_BILLS columns), ``ready`` or ``held`` with the reasons.

    A bill is held when any of its lines was rejected (a partial bill would misstate the
    stock-out), when Kingdee lacks or has disabled one of its materials, when a material has no
    base unit, or when its warehouse is not mapped. Lines without a stock-out id cannot form a
    bill; they stay visible in ``normalized_stockouts`` and its rejected-lines check.

    One pass over the lines sorted by stock-out (stable, so each bill keeps WDT's line order),
    on plain lists: per-group pandas calls would cost far more than the work itself.
    """
    stock_org, pick_org, owner_org = config.orgs(org)
    ref = _References()
    identified = lines[lines["stockout_id"].notna()].sort_values("stockout_id", kind="stable")
    column = {name: identified[name].tolist() for name in identified.columns}
    ids, reject, spec = column["stockout_id"], column["reject_reason"], column["spec_no"]
    unusable = {
        number
        for number in set(spec)
        if number is not None and (number not in materials or not materials[number].usable)
    }

    status, owner, keeper = ref(config.stock_status), ref(owner_org), ref(stock_org)
    lot_numbers, rec_ids, quantities = column["batch_no"], column["rec_id"], column["num"]

    def entry(k: int, unit: dict[str, str], stock: dict[str, str]) -> dict[str, Any]:
        item: dict[str, Any] = {
            "FMaterialId": ref(spec[k]),
            "FUnitID": unit,
            "FQty": quantities[k],
            "FBaseUnitId": unit,
            "FStockId": stock,
            "FStockStatusId": status,
            "FOwnerTypeId": "BD_OwnerOrg",
            "FOwnerId": owner,
            "FKeeperTypeId": "BD_KeeperOrg",
            "FKeeperId": keeper,
        }
        if config.lot_from_batch_no and lot_numbers[k]:
            item["FLot"] = ref(lot_numbers[k])
        if rec_ids[k] is not None and rec_ids[k] is not pd.NA:
            item["FEntryNote"] = f"WDT rec_id {rec_ids[k]}"
        return item

    def bill(first: int, end: int) -> dict[str, Any]:
        header = {
            "stockout_id": int(ids[first]),
            "stockout_no": column["stockout_no"][first],
            "process_no": column["process_no"][first],
            "warehouse_no": column["warehouse_no"][first],
        }
        consign_time = column["consign_time"][first]
        # One bill per stock-out: the stock-out's number is what the bill stands for.
        header["source_ref"] = header["stockout_no"]
        header["bill_no"] = (
            _format(config.bill_no_template, header) if header["stockout_no"] else None
        )
        header["bill_date"] = None if pd.isna(consign_time) else consign_time.strftime("%Y-%m-%d")

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

        ready = not reasons and header["bill_no"] and header["bill_date"] and stock
        model = None
        if ready:
            # Key order follows Kingdee's template: later fields can overwrite earlier ones
            # (reference §7).
            model = {
                "FBillNo": header["bill_no"],
                "FBillTypeID": {"FNUMBER": config.bill_type},
                "FStockOrgId": ref(stock_org),
                "FPickOrgId": ref(pick_org),
                "FStockDirect": config.stock_direct,
                "FDate": header["bill_date"],
                "FDeptId": ref(config.department),
                "FOwnerTypeIdHead": "BD_OwnerOrg",
                "FOwnerIdHead": ref(owner_org),
                "FBaseCurrId": ref(config.base_currency),
                "FNote": _format(config.note_template, _note_values(header)),
                **(
                    {}
                    if config.source_ref_field == NOTE_FIELD
                    else {config.source_ref_field: reference_token(header["source_ref"])}
                ),
                "FEntity": [
                    entry(k, ref(materials[spec[k]].base_unit), ref(stock)) for k in usable
                ],
            }
        return {
            **header,
            "readiness": "ready" if ready else "held",
            "hold_reason": None if ready else "; ".join(reasons),
            "missing_materials": missing,
            "missing_states": {
                number: materials[number].state if number in materials else ABSENT
                for number in missing
            },
            "line_count": end - first,
            "model": model,
        }

    bills = []
    first = 0
    with gc_paused():
        while first < len(ids):
            end = first + 1
            while end < len(ids) and ids[end] == ids[first]:
                end += 1
            bills.append(bill(first, end))
            first = end
        return KINGDEE_BILLS.frame(bills)
