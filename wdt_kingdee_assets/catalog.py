"""The Kingdee master data a day's bills need: the materials its WDT codes stand for (through the
flow's code map, ``codes.MaterialCodes``) and the units those materials count in (BD_UNIT)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wdt_kingdee_assets.codes import MaterialCodes
from wdt_kingdee_assets.kingdee.client import KingdeeClient, MaterialInfo, UnitInfo


@dataclass(frozen=True)
class MasterData:
    materials: dict[str, MaterialInfo]  # WDT spec_no → the Kingdee material it is
    units: dict[str, UnitInfo]  # unit number (case-folded) → BD_UNIT record


def look_up(
    client: KingdeeClient, spec_nos: Iterable[str], codes: MaterialCodes, use_org: str
) -> MasterData:
    """Each spec_no's material: by the code table, else by the code field, else by its own number
    (``unmapped: identity``); a spec_no found by none is absent. Then the materials' units."""
    by_number: dict[str, str] = {}
    by_code: list[str] = []
    for spec_no in spec_nos:
        number = codes.from_table(spec_no)
        if number is not None:
            by_number[spec_no] = number
        elif codes.by_field:
            by_code.append(spec_no)
        elif (fallback := codes.fallback(spec_no)) is not None:
            by_number[spec_no] = fallback
    materials: dict[str, MaterialInfo] = {}
    if by_code:
        coded = client.find_materials(by_code, use_org, by_field=codes.by_field)
        for spec_no in by_code:
            if spec_no in coded:
                materials[spec_no] = coded[spec_no]
            elif (fallback := codes.fallback(spec_no)) is not None:
                by_number[spec_no] = fallback
    if by_number:
        found = client.find_materials(sorted(set(by_number.values())), use_org)
        materials.update(
            {spec_no: found[number] for spec_no, number in by_number.items() if number in found}
        )
    unit_numbers = sorted({info.base_unit for info in materials.values() if info.base_unit})
    units = client.find_units(unit_numbers) if unit_numbers else {}
    return MasterData(materials, units)
