"""The Kingdee master data a day's bills need: the materials its WDT codes stand for (through the
flow's code map, ``codes.MaterialCodes``) and the units those materials count in (BD_UNIT)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from wdt_kingdee_assets.blockers import blocker_parts
from wdt_kingdee_assets.codes import MaterialCodes
from wdt_kingdee_assets.kingdee.client import KingdeeClient, MaterialInfo, UnitInfo, material_state


@dataclass(frozen=True)
class MasterData:
    materials: dict[str, dict[str, MaterialInfo]]  # stock org → WDT spec_no → its material
    units: dict[str, UnitInfo]  # unit number (case-folded) → BD_UNIT record


def look_up(
    client: KingdeeClient, spec_nos_by_org: Mapping[str, Iterable[str]], codes: MaterialCodes
) -> MasterData:
    """Each spec_no's material in each stock org it is needed in (BD_MATERIAL has a row per
    use-org: a material not assigned to an org does not exist for its bills), then the
    materials' units."""
    materials = {
        org: _materials_in(client, spec_nos, codes, org)
        for org, spec_nos in spec_nos_by_org.items()
    }
    unit_numbers = sorted(
        {
            info.base_unit
            for found in materials.values()
            for info in found.values()
            if info.base_unit
        }
    )
    units = client.find_units(unit_numbers) if unit_numbers else {}
    return MasterData(materials, units)


def _materials_in(
    client: KingdeeClient, spec_nos: Iterable[str], codes: MaterialCodes, use_org: str
) -> dict[str, MaterialInfo]:
    """Each spec_no's material in ``use_org``: by the code table, else by the code field, else
    by its own number (``unmapped: identity``); a spec_no found by none is absent."""
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
    return materials


def blocker_states(
    client: KingdeeClient, keys: Iterable[str], orgs: Sequence[str]
) -> dict[str, str]:
    """What Kingdee says now of each blocking material (``blockers.py`` keys) in its stock org:
    one look-up per org (``orgs``: the flow's, its own first)."""
    by_org: dict[str, dict[str, str]] = {}
    for key in keys:
        number, org = blocker_parts(key, orgs)
        by_org.setdefault(org, {})[key] = number
    states: dict[str, str] = {}
    for org, numbers in by_org.items():
        found = client.find_materials(sorted(set(numbers.values())), use_org=org)
        states.update({key: material_state(found.get(number)) for key, number in numbers.items()})
    return states
