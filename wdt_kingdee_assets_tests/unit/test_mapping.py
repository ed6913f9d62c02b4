import json
from decimal import Decimal

import pytest

from wdt_kingdee_assets.bills import wire_model, wire_quantity
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY
from wdt_kingdee_assets.mapping import (
    MappingConfigError,
    MisDeliveryMapping,
    load_mapping,
)
from wdt_kingdee_assets.normalize import normalize_orders
from wdt_kingdee_assets_tests.fixtures.bills import material, stockout_bills

MATERIALS = {
    "MAT-001": material("MAT-001", "Pcs"),
    "MAT-002": material("MAT-002", "kg"),
    "OFF-1": material("OFF-1", "Pcs", usable=False),
}


def stockout(stockout_id, lines, **extra):
    return {
        "stockout_id": stockout_id,
        "stockout_no": f"CK{stockout_id}",
        "process_no": f"PS{stockout_id}",
        "warehouse_no": "CK001",
        "status": 110,
        "consign_time": "2024-08-22 10:00:00",
        "detail_list": [
            {
                "rec_id": index,
                "spec_no": spec,
                "num": num,
                "base_unit_name": MATERIALS[spec].base_unit if spec in MATERIALS else "Pcs",
                **({"batch_no": "L9"} if spec == "MAT-002" else {}),
            }
            for index, (spec, num) in enumerate(lines, start=1)
        ],
        **extra,
    }


def test_default_mapping_builds_the_seed_bill():
    lines = normalize_orders(
        [stockout(7, [("MAT-001", 3), ("MAT-002", "1.25")])], PRODUCTION_STOCKOUT
    )
    bills = stockout_bills(
        lines,
        MATERIALS,
        MisDeliveryMapping(),
    )
    bill = bills.iloc[0]
    assert bill["readiness"] == "ready"
    model = bill["model"]
    assert model["FBillNo"] == "CK7"
    assert model["FBillTypeID"] == {"FNUMBER": "QTCKD01_SYS"}
    assert (
        model["FStockOrgId"] == model["FPickOrgId"] == model["FOwnerIdHead"] == {"FNumber": "100"}
    )
    assert model["FDate"] == "2024-08-22"
    assert model["FDeptId"] == {"FNumber": "BM000032"}
    assert (model["FStockDirect"], model["FOwnerTypeIdHead"]) == ("GENERAL", "BD_OwnerOrg")
    assert model["FNote"] == "[WDT:CK7] / PS7"
    assert bill["source_ref"] == "CK7"
    first, second = model["FEntity"]
    assert first["FMaterialId"] == {"FNumber": "MAT-001"}
    assert first["FUnitID"] == first["FBaseUnitId"] == {"FNumber": "Pcs"}
    assert first["FQty"] == Decimal("3")
    assert first["FStockId"] == {"FNumber": "CK001"}
    assert first["FStockStatusId"] == {"FNumber": "KCZT01_SYS"}
    assert (first["FKeeperTypeId"], first["FKeeperId"]) == ("BD_KeeperOrg", {"FNumber": "100"})
    assert "FLot" not in first and second["FLot"] == {"FNumber": "L9"}
    assert list(model)[:3] == ["FBillNo", "FBillTypeID", "FStockOrgId"]  # template order


def test_missing_disabled_material_and_rejected_lines_hold_only_their_bills():
    lines = normalize_orders(
        [
            stockout(1, [("MAT-001", 1)]),
            stockout(2, [("MAT-001", 1), ("NEW-404", 2)]),
            stockout(3, [("OFF-1", 1)]),
            stockout(4, [("MAT-001", 0)]),
        ],
        PRODUCTION_STOCKOUT,
    )
    bills = stockout_bills(
        lines,
        MATERIALS,
        MisDeliveryMapping(),
    ).set_index("stockout_id")
    assert bills.loc[1, "readiness"] == "ready"
    assert (
        bills.loc[2, "missing_materials"] == ["NEW-404"]
        and "NEW-404" in bills.loc[2, "hold_reason"]
    )
    assert bills.loc[3, "missing_materials"] == ["OFF-1"]
    assert bills.loc[2, "missing_states"] == {"NEW-404": "absent"}
    assert bills.loc[3, "missing_states"] == {"OFF-1": "disabled"}
    assert "rejected line" in bills.loc[4, "hold_reason"]
    assert bills.loc[2, "model"] is None


def test_warehouse_map_and_hold_on_unmapped():
    lines = normalize_orders(
        [stockout(1, [("MAT-001", 1)]), stockout(2, [("MAT-001", 1)], warehouse_no="CK999")],
        PRODUCTION_STOCKOUT,
    )
    config = MisDeliveryMapping(warehouses={"CK001": "STK-A"}, unmapped_warehouse="hold")
    bills = stockout_bills(
        lines,
        MATERIALS,
        config,
        org="200",
    ).set_index("stockout_id")
    assert bills.loc[1, "model"]["FEntity"][0]["FStockId"] == {"FNumber": "STK-A"}
    assert bills.loc[1, "model"]["FStockOrgId"] == {"FNumber": "200"}
    assert "CK999 is not mapped" in bills.loc[2, "hold_reason"]


def test_wire_quantities_stay_exact():
    assert wire_quantity(Decimal("3")) == 3
    assert wire_quantity("0.1168") == 0.1168
    assert wire_quantity(Decimal("123456789012345.1234")) == "123456789012345.1234"
    wired = wire_model({"FBillNo": "X", "FEntity": [{"FQty": "2.5000"}]}, MIS_DELIVERY)
    assert json.dumps(wired) == '{"FBillNo": "X", "FEntity": [{"FQty": 2.5}]}'


def test_mapping_file_overrides_defaults(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text("department: BM000099\nwarehouses:\n  CK001: STK-A\n", encoding="utf-8")
    config = load_mapping(path)
    assert config.department == "BM000099" and config.warehouses["CK001"].stock == "STK-A"
    assert config.bill_type == "QTCKD01_SYS"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("stock_direct: SIDEWAYS\n", "stock_direct"),
        ("departmnet: BM1\n", "departmnet"),
        ("note_template: 'WDT {stockout_number}'\n", "note_template"),
        ("- just\n- a list\n", "expected a mapping"),
        ("warehouses: [1, 2]\n", "warehouses"),
        ("note_template: 'WDT {stockout_no}'\n", "note_template must contain {source_ref}"),
        ("bill_no_template: '{source_ref}'\n", "bill_no_template"),
        ("source_ref_field: FMEMO\n", "source_ref_field"),
    ],
)
def test_bad_mapping_file_names_the_field(tmp_path, text, named):
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MappingConfigError, match=named):
        load_mapping(path)


def test_mapping_path_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    path.write_text('{"bill_no_template": "WDT-{stockout_no}"}', encoding="utf-8")
    monkeypatch.setenv("WDT_KINGDEE_MAPPING", str(path))
    assert load_mapping().bill_no_template == "WDT-{stockout_no}"


def test_a_custom_reference_field_carries_the_token_and_frees_the_note(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(
        "source_ref_field: F_PAEZ_SourceRef\nnote_template: 'WDT {stockout_no}'\n",
        encoding="utf-8",
    )
    config = load_mapping(path)
    lines = normalize_orders([stockout(7, [("MAT-001", 3)])], PRODUCTION_STOCKOUT)
    model = stockout_bills(lines, MATERIALS, config).iloc[0]["model"]
    assert model["F_PAEZ_SourceRef"] == "[WDT:CK7]"
    assert model["FNote"] == "WDT CK7"
    assert list(model).index("F_PAEZ_SourceRef") == list(model).index("FNote") + 1
