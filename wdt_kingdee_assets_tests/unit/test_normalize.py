from datetime import datetime
from decimal import Decimal

import pytest

from wdt_kingdee_assets.beijing import BEIJING
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.normalize import normalize_orders, parse_quantity, parse_wdt_datetime


def order(**overrides):
    base = {
        "stockout_id": 1001,
        "stockout_no": "CK2024082201",
        "process_no": "PS2024082201",
        "warehouse_no": "CK001",
        "status": 110,
        "consign_time": "2024-08-22 23:59:59",
        "detail_list": [
            {"rec_id": 1, "spec_no": "MAT-001", "num": 2, "base_unit_name": "Pcs", "defect": 0},
            {"rec_id": 2, "spec_no": "MAT-002", "num": "0.1168", "batch_no": "L1", "defect": True},
        ],
    }
    base.update(overrides)
    return base


def test_typed_lines_with_exact_decimals_and_beijing_times():
    lines = normalize_orders([order()], PRODUCTION_STOCKOUT)
    assert list(lines["num"]) == [Decimal("2"), Decimal("0.1168")]
    assert lines["consign_time"].iloc[0] == datetime(2024, 8, 22, 23, 59, 59, tzinfo=BEIJING)
    assert lines["reject_reason"].isna().all()
    assert list(lines["defect"]) == [False, True]
    assert lines["batch_no"].iloc[1] == "L1"


def test_epoch_millisecond_times_are_accepted():
    # 2020 real responses send epoch ms (reference §7).
    moment = parse_wdt_datetime(1598025599000)
    assert moment == datetime(2020, 8, 21, 23, 59, 59, tzinfo=BEIJING)
    assert parse_wdt_datetime("2023/02/06 17:59:19") is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (0, "greater than 0"),
        (-1, "greater than 0"),
        ("abc", "not a number"),
        (None, "missing"),
        ("NaN", "finite"),
    ],
)
def test_bad_quantities_have_reasons(value, reason):
    quantity, problem = parse_quantity(value)
    assert quantity is None and reason in problem


def test_unusable_lines_are_kept_with_reasons():
    orders = [
        order(stockout_id=1, detail_list=[{"rec_id": 1, "num": 1}]),
        order(stockout_id=2, consign_time="22/08/2024"),
        order(stockout_id=3, status=999),
        order(stockout_id=4, detail_list=[]),
        order(stockout_id=5, status=5),
        {"stockout_no": "CK-NO-ID", "detail_list": [{"spec_no": "X", "num": 1}]},
    ]
    lines = normalize_orders(orders, PRODUCTION_STOCKOUT)
    reasons = dict(zip(lines["stockout_id"].astype(object), lines["reject_reason"], strict=False))
    assert "spec_no is missing" in reasons[1]
    assert "consign_time" in reasons[2]
    assert "unknown WDT status" in reasons[3]
    assert "no detail lines" in reasons[4]
    assert "已取消" in reasons[5]
    assert lines["reject_reason"].notna().all()
    # No stockout_id at all (an older answer): identified by a negative id from its number.
    assert lines["stockout_id"].iloc[-1] < 0
    assert len(lines) == 2 + 1 + 2 + 1 + 2 + 1  # every line (or the line-less order) is a row


def test_quotes_and_long_non_ascii_text_pass_through_unchanged():
    long_name = "大号不锈钢螺丝" * 40
    lines = normalize_orders(
        [
            order(
                stockout_no="CK'01",
                detail_list=[{"spec_no": "MAT'9", "num": 1, "goods_name": long_name}],
            )
        ],
        PRODUCTION_STOCKOUT,
    )
    assert lines["stockout_no"].iloc[0] == "CK'01"
    assert lines["spec_no"].iloc[0] == "MAT'9"
    assert lines["goods_name"].iloc[0] == long_name


def _positions_order(positions, num=5):
    return {
        "stockout_id": 1,
        "stockout_no": "CK1",
        "warehouse_no": "CK001",
        "status": 110,
        "consign_time": "2024-08-22 10:00:00",
        "detail_list": [
            {"rec_id": 11, "spec_no": "M1", "num": num, "position_details_list": positions}
        ],
    }


def test_a_line_is_one_row_per_batch_and_bin_of_its_positions():
    positions = [
        {"batch_no": "L1", "position_no": "A-1", "position_goods_count": 1},
        {"batch_no": "L2", "position_no": "A-1", "position_goods_count": 2},
        {"batch_no": "L1", "position_no": "A-1", "position_goods_count": 2, "expire_date": "x"},
        {"batch_no": "L3", "position_no": "A-2", "position_goods_count": 0},  # took nothing
    ]
    lines = normalize_orders([_positions_order(positions)], PRODUCTION_STOCKOUT)
    assert lines[["rec_id", "batch_no", "position_no"]].values.tolist() == [
        [11, "L1", "A-1"],
        [11, "L2", "A-1"],
    ]
    assert lines["num"].tolist() == [Decimal(3), Decimal(2)]
    assert lines["reject_reason"].isna().all()


@pytest.mark.parametrize(
    ("count", "reason"),
    [(4, "adds up to 4, not num 5"), ("abc", "not a number"), (-5, "not a number")],
)
def test_positions_that_cannot_be_used_keep_the_line_whole_with_a_reason(count, reason):
    order = _positions_order([{"batch_no": "L1", "position_goods_count": count}])
    [row] = normalize_orders([order], PRODUCTION_STOCKOUT).to_dict("records")
    assert row["num"] == Decimal(5) and reason in row["reject_reason"]


@pytest.mark.parametrize(("count", "num"), [("5", "5"), ("5.000", "5"), (5, "5"), ("5", 5)])
def test_one_position_holding_the_line_gives_its_lot_and_the_line_the_rest(count, num):
    """The day's usual shape: one position with the whole quantity, by value (5.000 is 5), each
    field the position lacks taken from the line."""
    order = _positions_order([{"batch_no": " P1 ", "position_goods_count": count}], num=num)
    order["detail_list"][0] |= {"position_no": "L-BIN", "expire_date": "2027-01-31"}
    [row] = normalize_orders([order], PRODUCTION_STOCKOUT).to_dict("records")
    assert row["reject_reason"] is None and row["num"] == Decimal(5)
    assert (row["batch_no"], row["position_no"]) == ("P1", "L-BIN")
    assert (row["production_date"], row["expire_date"]) == (None, "2027-01-31")


def test_a_position_count_that_is_a_boolean_is_not_a_quantity():
    order = _positions_order([{"batch_no": "P1", "position_goods_count": True}], num=1)
    [row] = normalize_orders([order], PRODUCTION_STOCKOUT).to_dict("records")
    assert "count that is not a number: True" in row["reject_reason"]


def test_an_older_answer_is_read_with_ids_derived_from_numbers_and_places():
    older = {
        "stockout_no": "CK2020062208",
        "warehouse_name": "巫妖的仓库",
        "status": 110,
        "consign_time": 1592876325000,
        "freeze_reason": 0,
        "detail_list": [
            {"spec_no": "23441", "num": 5, "base_unit_name": "无"},
            {"spec_no": "mkb-yellow", "num": 5, "base_unit_name": "无"},
        ],
    }
    lines = normalize_orders([older, {**older, "stockout_no": "CK2"}], PRODUCTION_STOCKOUT)
    assert lines["reject_reason"].isna().all()
    assert lines["rec_id"].tolist() == [-1, -2, -1, -2]
    first, second = lines["stockout_id"].iloc[0], lines["stockout_id"].iloc[2]
    assert first < 0 and second < 0 and first != second
    again = normalize_orders([older], PRODUCTION_STOCKOUT)
    assert again["stockout_id"].iloc[0] == first  # the same on every pull
    assert lines["warehouse_no"].isna().all() and set(lines["warehouse_name"]) == {"巫妖的仓库"}


def test_no_row_is_lost_where_a_chunk_of_rows_is_spread_into_the_columns():
    """Rows are spread into the columns every 10,000; one spread here falls in the middle of an
    order (at its line that is not an object), and every row before and after it is kept."""
    line = {"rec_id": 1, "spec_no": "M1", "num": 1}
    big = {**_positions_order([]), "detail_list": [line] * 9_999}
    mixed = {**_positions_order([]), "stockout_id": 2, "detail_list": [line, "x", line, line]}
    lines = normalize_orders([big, mixed], PRODUCTION_STOCKOUT)
    assert len(lines) == 10_003
    assert lines["stockout_id"].tolist()[-4:] == [2, 2, 2, 2]
    assert lines["reject_reason"].notna().sum() == 1
