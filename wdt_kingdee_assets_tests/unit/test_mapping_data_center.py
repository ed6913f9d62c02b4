"""The mapping against a real data center's rules: lots per position, bins, units, precision,
older WDT shapes, code maps and custom fields (pure: no servers)."""

from decimal import Decimal

from wdt_kingdee_assets.bills import spec_nos_by_org
from wdt_kingdee_assets.blockers import blocker_parts
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.kingdee.client import UnitInfo
from wdt_kingdee_assets.mapping import MisDeliveryMapping, load_mapping
from wdt_kingdee_assets.normalize import normalize_orders
from wdt_kingdee_assets_tests.fixtures.bills import material, stockout_bills

PIECES = UnitInfo("Pcs", "Pcs", 0)
KILOS = UnitInfo("kg", "千克", 2)
UNITS = {"pcs": PIECES, "kg": KILOS}


def position(batch, count, place="A-01-01", **dates):
    return {"batch_no": batch, "position_no": place, "position_goods_count": count, **dates}


def stockout(lines, **order):
    return {
        "stockout_id": 7,
        "stockout_no": "CK7",
        "process_no": "PS7",
        "warehouse_no": "CK001",
        "warehouse_name": "成品仓",
        "status": 110,
        "consign_time": "2024-08-22 10:00:00",
        "detail_list": [
            {"rec_id": n, "spec_no": "M1", "num": 5, "base_unit_name": "Pcs", **line}
            for n, line in enumerate(lines, start=1)
        ],
        **order,
    }


def bills_of(order, materials, config=None, units=UNITS):
    lines = normalize_orders([order], PRODUCTION_STOCKOUT)
    return stockout_bills(lines, materials, config, units=units)


LOTS = {"M1": material("M1", "Pcs", batch_managed=True)}


def test_a_line_from_two_batches_is_one_entry_per_batch_adding_up_to_num():
    order = stockout([{"position_details_list": [position("L1", 2), position("L2", 3, "B-2")]}])
    [bill] = bills_of(order, LOTS).to_dict("records")
    assert bill["readiness"] == "ready"
    entries = bill["model"]["FEntity"]
    assert [(e["FLot"], e["FQty"]) for e in entries] == [
        ({"FNumber": "L1"}, Decimal(2)),
        ({"FNumber": "L2"}, Decimal(3)),
    ]
    assert {e["FEntryNote"] for e in entries} == {"WDT rec_id 1"}


def test_positions_that_disagree_with_num_hold_the_bill_saying_so():
    order = stockout([{"position_details_list": [position("L1", 2), position("L2", 2)]}])
    [bill] = bills_of(order, LOTS).to_dict("records")
    assert bill["readiness"] == "held"
    assert "position_details_list adds up to 4, not num 5" in bill["hold_reason"]


def test_a_lot_managed_material_without_a_batch_is_held_before_sending():
    [bill] = bills_of(stockout([{}]), LOTS).to_dict("records")
    assert bill["readiness"] == "held" and "批号管理" in bill["hold_reason"]
    # Its state is kept, so that turning lot management off in Kingdee releases the bill.
    assert bill["missing_states"] == {"M1": "usable:Pcs:lots"}


def test_shelf_life_materials_carry_their_dates_or_are_held():
    shelf = {"M1": material("M1", "Pcs", batch_managed=True, shelf_life=True)}
    dated = position("L1", 5, production_date="2024-08-01", expire_date="2026-08-01 00:00:00")
    [bill] = bills_of(stockout([{"position_details_list": [dated]}]), shelf).to_dict("records")
    [entry] = bill["model"]["FEntity"]
    assert (entry["FProduceDate"], entry["FExpiryDate"]) == ("2024-08-01", "2026-08-01")
    undated = stockout([{"position_details_list": [position("L1", 5)]}])
    [held] = bills_of(undated, shelf).to_dict("records")
    assert held["readiness"] == "held" and "保质期" in held["hold_reason"]
    garbled = stockout([{"batch_no": "L1", "expire_date": "2026/08/01"}])
    [bad] = bills_of(garbled, shelf).to_dict("records")
    assert "not a date" in bad["hold_reason"]


def test_bins_of_a_bin_managed_warehouse_in_kingdees_flex_field_shape():
    config = MisDeliveryMapping(bins={"CK001": {"positions": {"A-01-01": "01-01"}}})
    order = stockout([{"position_no": "A-01-01"}])
    [bill] = bills_of(order, {"M1": material("M1")}, config).to_dict("records")
    assert bill["model"]["FEntity"][0]["FStockLocId"] == {
        "FSTOCKLOCID__FF100001": {"FNumber": "01-01"}
    }
    [held] = bills_of(stockout([{}]), {"M1": material("M1")}, config).to_dict("records")
    assert held["readiness"] == "held" and "仓位" in held["hold_reason"]


def test_a_unit_mismatch_holds_naming_both_and_a_conversion_sends_the_kingdee_unit():
    order = stockout([{"base_unit_name": "箱", "num": 2}])
    [held] = bills_of(order, {"M1": material("M1")}).to_dict("records")
    assert held["readiness"] == "held"
    assert "WDT 箱, Kingdee Pcs" in held["hold_reason"]
    config = MisDeliveryMapping(
        units={"conversions": [{"wdt_unit": "箱", "kingdee_unit": "Pcs", "factor": 24}]}
    )
    [bill] = bills_of(order, {"M1": material("M1")}, config).to_dict("records")
    [entry] = bill["model"]["FEntity"]
    assert (entry["FUnitID"], entry["FQty"]) == ({"FNumber": "Pcs"}, Decimal(48))


def test_quantities_are_rounded_to_the_units_precision_and_each_rounding_reported():
    order = stockout(
        [
            {"num": "1.2345", "base_unit_name": "千克"},
            {"num": "2.5", "base_unit_name": "千克"},
            {"num": "0.004", "base_unit_name": "千克"},
        ]
    )
    [held] = bills_of(order, {"M1": material("M1", "kg")}).to_dict("records")
    assert "rounds to 0" in held["hold_reason"]  # 0.004 kg at 2 decimals is nothing
    [bill] = bills_of(stockout(order["detail_list"][:2]), {"M1": material("M1", "kg")}).to_dict(
        "records"
    )
    assert [e["FQty"] for e in bill["model"]["FEntity"]] == [Decimal("1.23"), Decimal("2.5")]
    assert bill["roundings"] == [
        {
            "entry": 1,
            "material": "M1",
            "exact": "1.2345",
            "sent": "1.23",
            "unit": "kg",
            "precision": 2,
        }
    ]


def test_an_older_answer_without_warehouse_no_finds_it_by_name_or_holds():
    order = stockout([{}], warehouse_no=None)
    order.pop("stockout_id")
    [held] = bills_of(order, {"M1": material("M1")}).to_dict("records")
    assert held["readiness"] == "held" and "warehouse_names" in held["hold_reason"]
    config = MisDeliveryMapping(warehouse_names={"成品仓": "CK001"})
    [bill] = bills_of(order, {"M1": material("M1")}, config).to_dict("records")
    assert bill["readiness"] == "ready" and bill["stockout_id"] < 0
    assert bill["model"]["FEntity"][0]["FStockId"] == {"FNumber": "CK001"}


def test_code_maps_renumber_materials_and_custom_fields_are_filled_from_templates():
    config = MisDeliveryMapping(
        warehouses={"CK001": {"stock": "STK-A", "department": "BM9", "owner": "200"}},
        header_fields={"F_PAEZ_Workshop": "{process_no}", "F_PAEZ_Empty": "{warehouse_name}x"},
        entry_fields={"F_PAEZ_Line": "{stockout_no}/{rec_id}/{batch_no}", "F_PAEZ_Const": "K"},
    )
    mapped = {"M1": material("01.0001")}  # the look-up found M1 under Kingdee's own number
    [bill] = bills_of(stockout([{"batch_no": "L1"}]), mapped, config).to_dict("records")
    model = bill["model"]
    assert bill["material_numbers"] == {"M1": "01.0001"}
    assert model["FEntity"][0]["FMaterialId"] == {"FNumber": "01.0001"}
    assert model["FDeptId"] == {"FNumber": "BM9"} and model["FOwnerIdHead"] == {"FNumber": "200"}
    assert model["FEntity"][0]["FOwnerId"] == {"FNumber": "200"}
    assert model["F_PAEZ_Workshop"] == "PS7" and model["F_PAEZ_Empty"] == "成品仓x"
    assert model["FEntity"][0]["F_PAEZ_Line"] == "CK7/1/L1"
    assert model["FEntity"][0]["F_PAEZ_Const"] == "K"
    [held] = bills_of(stockout([{}]), {}, config).to_dict("records")
    assert held["readiness"] == "held" and "M1" in held["hold_reason"]


def test_merged_bills_keep_lots_bins_and_dates_apart():
    config = MisDeliveryMapping(strategy="per_day_warehouse", bins={"CK001": {}})
    first = stockout([{"position_details_list": [position("L1", 2), position("L1", 3, "B-2")]}])
    second = stockout(
        [{"num": 4, "position_details_list": [position("L1", 4)]}],
        stockout_id=8,
        stockout_no="CK8",
    )
    lines = normalize_orders([first, second], PRODUCTION_STOCKOUT)
    [bill] = stockout_bills(lines, LOTS, config, units=UNITS).to_dict("records")
    entries = bill["model"]["FEntity"]
    assert [(e["FStockLocId"]["FSTOCKLOCID__FF100001"]["FNumber"], e["FQty"]) for e in entries] == [
        ("A-01-01", Decimal(6)),
        ("B-2", Decimal(3)),
    ]
    assert bill["lineage"][0] == [["CK7", 1, Decimal(2)], ["CK8", 1, Decimal(4)]]


def test_a_held_bill_waits_on_the_kingdee_number_its_code_maps_to(tmp_path):
    """The held-bills sensor asks Kingdee about the number, so that creating 01.0009 releases
    the bill of spec_no M1."""
    (tmp_path / "codes.csv").write_text("spec_no,material_number\nM1,01.0009\n", encoding="utf-8")
    (tmp_path / "mapping.yaml").write_text("materials: {table: codes.csv}\n", encoding="utf-8")
    config = load_mapping(tmp_path / "mapping.yaml")
    [held] = bills_of(stockout([{}]), {}, config).to_dict("records")
    assert held["missing_states"] == {"01.0009": "absent"}
    assert held["missing_materials"] == ["M1 → 01.0009"]


BRANCH = MisDeliveryMapping(
    warehouses={"CK004": {"stock": "CK004", "org": "200"}},
    owner_org="100",
    pick_org="101",
)


def test_a_warehouse_of_another_stock_org_gets_bills_of_that_org():
    orders = [
        stockout([{}]),
        stockout([{}], stockout_id=8, stockout_no="CK8", warehouse_no="CK004"),
    ]
    lines = normalize_orders(orders, PRODUCTION_STOCKOUT)
    assert spec_nos_by_org(lines, BRANCH, "100") == {"100": ["M1"], "200": ["M1"]}
    pieces = {"M1": material("M1")}
    bills = stockout_bills(lines, pieces, BRANCH, elsewhere={"200": pieces}, units=UNITS)
    own, branch = (bills.set_index("bill_no").loc[n, "model"] for n in ("CK7", "CK8"))
    assert (own["FStockOrgId"], own["FPickOrgId"], own["FOwnerIdHead"]) == (
        {"FNumber": "100"},
        {"FNumber": "101"},
        {"FNumber": "100"},
    )
    # The branch picks and owns for itself: the mapping's pick and owner orgs are its own org's.
    assert {"FNumber": "200"} == branch["FStockOrgId"] == branch["FPickOrgId"]
    assert branch["FOwnerIdHead"] == {"FNumber": "200"}
    [entry] = branch["FEntity"]
    assert entry["FKeeperId"] == entry["FOwnerId"] == {"FNumber": "200"}
    assert stockout_bills(lines, pieces, BRANCH, elsewhere={"200": pieces}, units=UNITS)[
        "stock_org"
    ].tolist() == ["100", "200"]


def test_a_material_not_assigned_to_the_branch_org_holds_only_the_branch_bill():
    orders = [
        stockout([{}]),
        stockout([{}], stockout_id=8, stockout_no="CK8", warehouse_no="CK004"),
    ]
    lines = normalize_orders(orders, PRODUCTION_STOCKOUT)
    bills = stockout_bills(lines, {"M1": material("M1")}, BRANCH, elsewhere={}, units=UNITS)
    own, branch = bills.to_dict("records")
    assert own["readiness"] == "ready"
    assert branch["readiness"] == "held" and "use-org 200" in branch["hold_reason"]
    # What it waits on names the org: the sensor asks Kingdee about M1 in org 200.
    assert branch["missing_states"] == {"M1@200": "absent"}
    assert blocker_parts("M1@200", ("100", "200")) == ("M1", "200")
    assert blocker_parts("M1", ("100", "200")) == ("M1", "100")
    assert blocker_parts("A@B", ("100", "200")) == ("A@B", "100")  # a number with an @
