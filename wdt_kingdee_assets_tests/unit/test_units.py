from decimal import Decimal

import pytest
from pydantic import ValidationError

from wdt_kingdee_assets.kingdee.client import UnitInfo
from wdt_kingdee_assets.units import UnitsConfig, round_quantity

PCS = UnitInfo("Pcs", "Pcs", 0)
KG = UnitInfo("kg", "千克", 2)


def test_a_unit_matches_by_number_name_or_alias_and_else_says_both():
    units = UnitsConfig(names={"个": "Pcs"})
    assert units.factor("M1", "kg", KG) == (Decimal(1), None)
    assert units.factor("M1", "千克", KG) == (Decimal(1), None)
    assert units.factor("M1", "个", PCS) == (Decimal(1), None)
    factor, why = units.factor("M1", "箱", PCS)
    assert factor is None and "箱" in why and "Pcs" in why and "M1" in why


def test_a_conversion_of_the_material_wins_over_one_for_every_material():
    units = UnitsConfig(
        conversions=[
            {"wdt_unit": "箱", "kingdee_unit": "Pcs", "factor": 24},
            {"wdt_unit": "箱", "kingdee_unit": "Pcs", "factor": 12, "material": "M2"},
        ]
    )
    assert units.factor("M1", "箱", PCS) == (Decimal(24), None)
    assert units.factor("M2", "箱", PCS) == (Decimal(12), None)
    assert units.configured_factor("M2", "箱", "Pcs") == Decimal(12)
    assert units.configured_factor("M3", "Pcs", "Pcs") == Decimal(1)


def test_a_line_without_a_unit_is_held_unless_told_to_trust_it():
    for empty in (None, "", "无"):
        factor, why = UnitsConfig().factor("M1", empty, PCS)
        assert factor is None and "units.missing" in why
        assert UnitsConfig(missing="assume_kingdee").factor("M1", empty, PCS) == (1, None)


def test_a_conversion_must_have_a_positive_factor():
    with pytest.raises(ValidationError, match="factor"):
        UnitsConfig(conversions=[{"wdt_unit": "箱", "kingdee_unit": "Pcs", "factor": 0}])


@pytest.mark.parametrize(
    ("quantity", "places", "rounded"),
    [
        ("1.2345", 2, "1.23"),
        ("1.235", 2, "1.24"),  # half up, not half even
        ("2.5", 0, "3"),
        ("7", 0, "7"),
        ("1.20", 2, "1.20"),
        ("0.004", 2, "0.00"),
    ],
)
def test_quantities_round_half_up_to_the_units_precision(quantity, places, rounded):
    assert round_quantity(Decimal(quantity), places) == Decimal(rounded)
    assert str(round_quantity(Decimal(quantity), places)) == rounded
