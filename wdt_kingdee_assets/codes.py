"""Pure: where WDT's codes are not Kingdee's — materials, warehouses and bins.

A data center rarely numbers its materials with the merchant codes WDT uses (``spec_no``), nor
its bins with WDT's position codes. These parts of a flow's mapping say how one becomes the other:
a table file and/or a Kingdee material field holding the WDT code, warehouse targets (the Kingdee
warehouse, department and owner), and per bin-managed warehouse the bin map. Each is validated when
the mapping file loads, naming the field (and for a table, the row) that is wrong.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, model_validator

# The shape of a customer's extension field (F_xxx_…).
CUSTOM_FIELD = re.compile(r"F_[A-Za-z0-9]+_[A-Za-z0-9_]+")
TABLE_COLUMNS = ("spec_no", "material_number")
# What a code no map names becomes: itself (the codes are the same), or a hold of its bill.
Unmapped = Literal["identity", "hold"]


def read_code_table(path: Path) -> dict[str, str]:
    """spec_no → Kingdee material number from a CSV file (columns ``spec_no,material_number``,
    UTF-8 with or without BOM, as Excel and WPS save it) or a YAML mapping."""
    if path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of spec_no: material number")
        # YAML reads 01.0012 as the number 1.0012 and 0012 as 12: codes must be quoted text.
        unquoted = [f"{key!r}: {value!r}" for key, value in data.items() if not _texts(key, value)]
        if unquoted:
            raise ValueError(
                f"{path}: quote every code, or YAML turns it into a number: {unquoted[:3]}"
            )
        rows = list(data.items())
        where = [f"key {key!r}" for key, _ in rows]
    else:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream)
            if reader.fieldnames is None or not set(TABLE_COLUMNS) <= set(reader.fieldnames):
                raise ValueError(
                    f"{path}: the header must name the columns {', '.join(TABLE_COLUMNS)}; "
                    f"got {reader.fieldnames}"
                )
            rows = [(row["spec_no"], row["material_number"]) for row in reader]
        where = [f"row {n}" for n in range(2, len(rows) + 2)]
    table: dict[str, str] = {}
    for (spec_no, number), place in zip(rows, where, strict=True):
        spec_no, number = str(spec_no or "").strip(), str(number or "").strip()
        if not spec_no or not number:
            raise ValueError(f"{path}: {place}: spec_no and material_number must not be empty")
        if spec_no in table and table[spec_no] != number:
            raise ValueError(
                f"{path}: {place}: spec_no {spec_no} is mapped twice "
                f"({table[spec_no]} and {number})"
            )
        table[spec_no] = number
    return table


def _texts(*values: Any) -> bool:
    return all(isinstance(value, str) for value in values)


class MaterialCodes(BaseModel):
    """WDT ``spec_no`` → Kingdee material number (FNumber)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str | None = Field(
        default=None,
        description="a CSV (spec_no,material_number) or YAML file, relative to the mapping file",
    )
    by_field: str | None = Field(
        default=None,
        description="a BD_MATERIAL field that holds the WDT code (e.g. F_PAEZ_WdtCode): codes "
        "not in the table are looked up by it",
    )
    unmapped: Unmapped = Field(
        default="identity",
        description="a spec_no found by neither: use it as the material number, or hold the bill",
    )
    _numbers: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _load_table(self, info: ValidationInfo) -> MaterialCodes:
        if self.by_field is not None and not CUSTOM_FIELD.fullmatch(self.by_field):
            raise ValueError(
                f"by_field must be a custom field like F_PAEZ_WdtCode, got {self.by_field!r}"
            )
        if self.table is not None:
            base = (info.context or {}).get("base_dir") or Path.cwd()
            path = Path(base) / self.table
            try:
                self._numbers = read_code_table(path)
            except OSError as exc:
                raise ValueError(f"table: cannot read {path}: {exc}") from exc
            except (ValueError, yaml.YAMLError) as exc:
                raise ValueError(f"table: {exc}") from exc
        return self

    @property
    def identity(self) -> bool:
        """No map at all: every spec_no is its own material number."""
        return self.table is None and self.by_field is None and self.unmapped == "identity"

    def from_table(self, spec_no: str) -> str | None:
        return self._numbers.get(spec_no)

    def fallback(self, spec_no: str) -> str | None:
        """The number of a spec_no neither the table nor the field maps (None: hold)."""
        return spec_no if self.unmapped == "identity" else None


class WarehouseTarget(BaseModel):
    """Where a WDT warehouse's bills go in Kingdee: the warehouse, and optionally its own stock
    org (a warehouse of a branch factory), department and owner org."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stock: str = Field(min_length=1, description="Kingdee FStockId number")
    org: str | None = Field(
        default=None,
        min_length=1,
        description="the warehouse's stock org (库存组织, FStockOrgId) when it is not the flow's",
    )
    department: str | None = Field(default=None, description="the bills' department instead")
    owner: str | None = Field(default=None, description="the bills' owner org (货主) instead")

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, value: Any) -> Any:
        return {"stock": value} if isinstance(value, str) else value


class BinMap(BaseModel):
    """A bin-managed Kingdee warehouse (仓位管理): each entry needs its bin (``FStockLocId``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    flex_field: str = Field(
        default="FF100001",
        pattern=r"^FF\d+$",
        description="the bin dimension's flex field (仓位值集), as in FSTOCKLOCID__FF100001",
    )
    positions: dict[str, str] = Field(
        default_factory=dict, description="WDT position_no → Kingdee bin number"
    )
    unmapped: Unmapped = Field(
        default="identity",
        description="a position missing from `positions`: use its WDT code, or hold the bill",
    )

    def bin_for(self, position_no: str | None) -> str | None:
        if position_no is None:
            return None
        if position_no in self.positions:
            return self.positions[position_no]
        return position_no if self.unmapped == "identity" else None
