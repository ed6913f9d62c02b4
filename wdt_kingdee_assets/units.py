"""Pure: from WDT's unit to the quantity Kingdee stores.

WDT counts a line in the goods' unit (``base_unit_name``, a name such as ``千克`` or ``箱``);
Kingdee counts an entry in the unit named in ``FUnitID``, to that unit's precision (BD_UNIT
``FPrecision``). The flow sends every entry in the material's Kingdee base unit. So a line is
usable only when its WDT unit *is* that unit (by the unit's number or name, or an alias in
``units.names``) or a conversion says how many Kingdee units one WDT unit holds; then the
quantity is converted exactly and rounded to the unit's precision, half up (四舍五入, the
rounding Kingdee applies to quantities by default [G]). Every rounding is reported on its bill.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

# How WDT writes "no unit": nothing, or 无 (a published answer has "base_unit_name": "无").
NO_UNIT = frozenset({"", "无"})


class Unit(Protocol):
    """What the flow needs to know of a Kingdee unit (BD_UNIT)."""

    @property
    def number(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def precision(self) -> int: ...


def _fold(text: str) -> str:
    return text.strip().casefold()


class UnitConversion(BaseModel):
    """One WDT unit = ``factor`` Kingdee units, for one material or for every material."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wdt_unit: str = Field(min_length=1, description="WDT base_unit_name, e.g. 箱")
    kingdee_unit: str = Field(min_length=1, description="Kingdee unit number, e.g. Pcs")
    factor: Decimal = Field(gt=0, description="Kingdee units in one WDT unit, e.g. 24")
    material: str | None = Field(
        default=None, description="WDT spec_no it applies to; empty = every material"
    )


class UnitsConfig(BaseModel):
    """How WDT's units meet Kingdee's (the ``units`` part of a flow's mapping)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    names: dict[str, str] = Field(
        default_factory=dict,
        description="WDT unit name → Kingdee unit number when they mean the same unit (个: Pcs)",
    )
    conversions: list[UnitConversion] = Field(default_factory=list)
    missing: Literal["hold", "assume_kingdee"] = Field(
        default="hold",
        description="a line whose WDT unit is empty or 无: hold its bill, or take its quantity "
        "as counted in the Kingdee unit",
    )

    def factor(
        self, spec_no: str, wdt_unit: str | None, kingdee: Unit
    ) -> tuple[Decimal | None, str | None]:
        """(Kingdee units per WDT unit, None), or (None, why the line cannot be converted)."""
        if wdt_unit is None or wdt_unit.strip() in NO_UNIT:
            if self.missing == "assume_kingdee":
                return Decimal(1), None
            return None, (
                f"旺店通未给出单位 / WDT names no unit ({wdt_unit or '(empty)'!s}) for {spec_no}; "
                f"Kingdee counts it in {kingdee.number} (set units.missing: assume_kingdee to "
                "trust the quantity)"
            )
        wdt, number = _fold(wdt_unit), _fold(kingdee.number)
        alias = self.names.get(wdt_unit.strip())
        if wdt in (number, _fold(kingdee.name)) or (alias is not None and _fold(alias) == number):
            return Decimal(1), None
        factor = self._conversion(spec_no, wdt_unit, kingdee.number)
        if factor is not None:
            return factor, None
        return None, (
            f"单位不一致 / unit mismatch for {spec_no}: WDT {wdt_unit}, Kingdee {kingdee.number} "
            f"({kingdee.name}); add units.names or units.conversions"
        )

    def configured_factor(self, spec_no: str, wdt_unit: str | None, kingdee_unit: str) -> Decimal:
        """The factor a line was converted by, as the checks recompute it: the configured
        conversion for this material and unit pair, else 1 (the units are the same)."""
        if wdt_unit is None:
            return Decimal(1)
        return self._conversion(spec_no, wdt_unit, kingdee_unit) or Decimal(1)

    def _conversion(self, spec_no: str, wdt_unit: str, kingdee_unit: str) -> Decimal | None:
        """The configured factor: the material's own before one for every material."""
        wdt, number = _fold(wdt_unit), _fold(kingdee_unit)
        generic = None
        for conversion in self.conversions:
            if _fold(conversion.wdt_unit) != wdt or _fold(conversion.kingdee_unit) != number:
                continue
            if conversion.material is None:
                generic = generic or conversion.factor
            elif conversion.material == spec_no:
                return conversion.factor
        return generic


def round_quantity(quantity: Decimal, precision: int) -> Decimal:
    """``quantity`` at ``precision`` decimal places, half up; unchanged when it already fits."""
    exponent = quantity.as_tuple().exponent
    if isinstance(exponent, int) and -exponent <= precision:
        return quantity
    return quantity.quantize(Decimal(1).scaleb(-precision), rounding=ROUND_HALF_UP)
