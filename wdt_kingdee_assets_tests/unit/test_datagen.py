"""The seeded data generator: deterministic, realistic shape, unique ids, requested defects."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from wdt_kingdee_assets.sandbox.datagen import (
    MALFORMED_KINDS,
    WAREHOUSES,
    build_catalog,
    generate_day,
)

DAY = date(2026, 8, 22)
ORDER_FIELDS = {
    "stockout_id", "stockout_no", "src_order_type", "status", "process_no", "warehouse_no",
    "warehouse_name", "created", "modified", "consign_time", "operator_name", "checkouter_name",
    "producer_name", "goods_count", "goods_type_count", "checked_goods_total_cost",
    "weigh_post_cost", "logistics_name", "logistics_no", "remark", "error_info", "note_count",
    "flag_id", "flag_name", "detail_list",
}  # fmt: skip
LINE_FIELDS = {
    "rec_id", "spec_id", "spec_no", "goods_no", "goods_name", "short_name", "spec_code",
    "spec_name", "barcode", "num", "expect_num", "checked_cost_price", "scan_type", "defect",
    "remark", "brand_name", "aux_unit_name", "base_unit_name", "position_details_list",
}  # fmt: skip


@pytest.fixture(scope="module")
def catalog():
    return build_catalog(seed=7)


def test_catalog_is_deterministic_unique_and_partly_missing_in_kingdee(catalog) -> None:
    assert build_catalog(seed=7) == catalog
    assert build_catalog(seed=8) != catalog
    assert len(catalog) == 200 and len({m.number for m in catalog}) == 200
    assert sum(not m.in_kingdee for m in catalog) == 6
    assert {m.base_unit for m in catalog} <= {"Pcs", "kg", "m", "箱"}
    assert any(m.number.startswith("MAT-") for m in catalog)
    assert any(m.number.isdigit() and len(m.number) == 13 for m in catalog)
    assert any(m.batch_managed for m in catalog)
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in m.name) for m in catalog)


def test_warehouses() -> None:
    assert 3 <= len(WAREHOUSES) <= 5
    assert ("CK001", "成品仓") in WAREHOUSES


def test_a_day_is_deterministic_and_independent_of_other_days(catalog) -> None:
    first = generate_day(DAY, seed=1, orders=50, catalog=catalog)
    assert generate_day(DAY, seed=1, orders=50, catalog=catalog) == first
    assert generate_day(DAY, seed=2, orders=50, catalog=catalog) != first


def test_orders_have_the_reference_shape(catalog) -> None:
    orders = generate_day(DAY, seed=1, orders=300, catalog=catalog)
    numbers = {m.number: m for m in catalog}
    for order in orders:
        assert set(order) == ORDER_FIELDS
        assert order["src_order_type"] == 5
        assert order["stockout_no"].startswith(f"CK{DAY:%Y%m%d}")
        assert order["process_no"].startswith("PS")
        consigned = datetime.strptime(order["consign_time"], "%Y-%m-%d %H:%M:%S")
        assert consigned.date() == DAY
        assert 1 <= len(order["detail_list"]) <= 20
        assert order["goods_type_count"] == len(order["detail_list"])
        assert order["goods_count"] == sum(line["num"] for line in order["detail_list"])
        for line in order["detail_list"]:
            assert set(line) >= LINE_FIELDS
            material = numbers[line["spec_no"]]
            assert line["base_unit_name"] == material.base_unit
            assert isinstance(line["num"], Decimal) and line["num"] > 0
            assert -line["num"].as_tuple().exponent <= 4
            if material.base_unit in ("Pcs", "箱"):
                assert line["num"] == line["num"].to_integral_value()
            if "batch_no" in line:
                assert material.batch_managed
    statuses = Counter(order["status"] for order in orders)
    assert statuses[110] > 0.8 * len(orders) and set(statuses) <= {5, 48, 50, 77, 110}
    assert any("batch_no" in line for order in orders for line in order["detail_list"])
    assert any("position_no" in line for order in orders for line in order["detail_list"])
    times = [order["consign_time"] for order in orders]
    assert times == sorted(times)


def test_ids_are_unique_across_days(catalog) -> None:
    ids: list[int] = []
    numbers: list[str] = []
    rec_ids: list[int] = []
    for offset in range(3):
        for order in generate_day(
            DAY + timedelta(days=offset), seed=1, orders=200, catalog=catalog
        ):
            ids.append(order["stockout_id"])
            numbers.append(order["stockout_no"])
            rec_ids.extend(line["rec_id"] for line in order["detail_list"])
    assert len(set(ids)) == len(ids) == 600
    assert len(set(numbers)) == len(numbers)
    assert len(set(rec_ids)) == len(rec_ids)


def test_malformed_orders_carry_one_defect_each(catalog) -> None:
    orders = generate_day(DAY, seed=1, orders=5, catalog=catalog, malformed=len(MALFORMED_KINDS))
    broken = dict(zip(MALFORMED_KINDS, orders[5:], strict=True))
    first_line = {kind: order["detail_list"][0] for kind, order in broken.items()}
    assert "spec_no" not in first_line["missing_spec_no"]
    assert first_line["num_zero"]["num"] == 0
    assert first_line["num_negative"]["num"] < 0
    assert first_line["num_not_a_number"]["num"] == "abc"
    assert broken["unparseable_consign_time"]["consign_time"] == "0000-00-00 00:00:00"
    assert broken["unknown_status"]["status"] not in (5, 48, 50, 77, 110)
    assert len(broken["long_strings"]["remark"]) > 1000
    assert len(first_line["long_strings"]["spec_no"]) > 40
    assert not first_line["non_ascii"]["spec_no"].isascii()
    assert "'" in broken["quote_in_stockout_no"]["stockout_no"]
    assert "'" in first_line["quote_in_spec_no"]["spec_no"]
    assert all(order["status"] == 110 for kind, order in broken.items() if kind != "unknown_status")


def test_ten_thousand_orders_have_unique_ids_and_numbers(catalog) -> None:
    orders = generate_day(DAY, seed=3, orders=10_000, catalog=catalog)
    assert len({order["stockout_id"] for order in orders}) == 10_000
    assert len({order["stockout_no"] for order in orders}) == 10_000


def test_bad_arguments_are_refused(catalog) -> None:
    with pytest.raises(ValueError):
        generate_day(DAY, seed=1, orders=-1, catalog=catalog)
    with pytest.raises(ValueError):
        generate_day(DAY, seed=1, orders=1, catalog=[])
    with pytest.raises(ValueError):
        build_catalog(seed=1, size=0)
