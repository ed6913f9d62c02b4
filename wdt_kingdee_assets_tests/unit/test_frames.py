import io
import json
from datetime import datetime
from decimal import Decimal

import pandas as pd

from wdt_kingdee_assets.beijing import BEIJING, day_window
from wdt_kingdee_assets.encoding import EncodedJson, encode_json
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.normalize import normalize_orders


def test_jsonl_round_trip_keeps_decimals_times_and_chinese():
    lines = normalize_orders(
        [
            {
                "stockout_id": 9,
                "stockout_no": "CK9",
                "warehouse_no": "CK001",
                "status": 110,
                "consign_time": "2024-03-01 00:00:00",
                "detail_list": [
                    {"rec_id": 1, "spec_no": "螺丝'A", "num": "0.0001", "goods_name": "螺丝"}
                ],
            }
        ],
        PRODUCTION_STOCKOUT,
    )
    stream = io.StringIO()
    PRODUCTION_STOCKOUT.lines_schema.write_jsonl(lines, stream)
    text = stream.getvalue()
    assert '"num":"0.0001"' in text and "螺丝'A" in text
    back = PRODUCTION_STOCKOUT.lines_schema.read_jsonl(io.StringIO(text))
    assert back["num"].iloc[0] == Decimal("0.0001")
    assert back["consign_time"].iloc[0] == datetime(2024, 3, 1, tzinfo=BEIJING)
    assert back["spec_no"].iloc[0] == "螺丝'A"


def test_nested_messages_round_trip():
    frame = PRODUCTION_STOCKOUT.results_schema.frame(
        [
            {
                "bill_no": "B1",
                "stockout_id": 1,
                "outcome": "failed",
                "messages": ["字段“物料编码”不存在"],
                "attempts": 1,
            }
        ]
    )
    stream = io.StringIO()
    PRODUCTION_STOCKOUT.results_schema.write_jsonl(frame, stream)
    back = PRODUCTION_STOCKOUT.results_schema.read_jsonl(io.StringIO(stream.getvalue()))
    assert back["messages"].iloc[0] == ["字段“物料编码”不存在"]
    assert back["fid"].isna().iloc[0]


def test_day_window_covers_the_day_under_either_boundary_reading():
    window = day_window("2024-03-01", now=datetime(2024, 3, 5, tzinfo=BEIJING))
    assert window.query_start == datetime(2024, 2, 29, 23, 59, 59, tzinfo=BEIJING)
    assert window.query_end == datetime(2024, 3, 2, tzinfo=BEIJING)
    assert window.contains(datetime(2024, 3, 1, 23, 59, 59, tzinfo=BEIJING))
    assert not window.contains(datetime(2024, 3, 2, tzinfo=BEIJING))
    assert not window.is_open


def test_open_day_window_ends_before_now():
    now = datetime(2024, 3, 1, 10, 0, 0, tzinfo=BEIJING)
    window = day_window("2024-03-01", now=now)
    assert window.is_open and window.query_end < now


def test_rows_with_an_order_already_encoded_store_the_same_lines_as_the_frame():
    order = {
        "stockout_id": 7,
        "stockout_no": "CK7",
        "detail_list": [{"num": Decimal("12.3400"), "goods_name": "电源适配器", "ok": None}],
    }
    rows = [
        {"stockout_id": 7, "stockout_no": "CK7", "consign_time": "2024-03-01 00:00:00"},
        {"stockout_id": None, "stockout_no": "CK8", "consign_time": None},
    ]
    schema = PRODUCTION_STOCKOUT.raw_schema
    from_frame, from_rows = io.StringIO(), io.StringIO()
    schema.write_jsonl(
        schema.frame([{**rows[0], "order": order}, {**rows[1], "order": None}]),
        from_frame,
        {"day": "2024-03-01"},
    )
    schema.write_rows(
        [{**rows[0], "order": EncodedJson(encode_json(order))}, rows[1]],
        from_rows,
        {"day": "2024-03-01"},
    )
    assert [json.loads(line) for line in from_rows.getvalue().splitlines()] == [
        json.loads(line) for line in from_frame.getvalue().splitlines()
    ]
    back = schema.read_jsonl(io.StringIO(from_rows.getvalue()))
    assert back["order"].iloc[0]["detail_list"][0] == {
        "num": "12.3400",
        "goods_name": "电源适配器",
        "ok": None,
    }
    assert back["order"].iloc[1] is None and pd.isna(back["stockout_id"].iloc[1])
