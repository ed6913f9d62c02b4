"""Pure parts of the complete pull: window splitting and the stable order of results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

import pytest

from wdt_kingdee_assets.encoding import encode_json
from wdt_kingdee_assets.wdt.client import BEIJING, DocumentQuery
from wdt_kingdee_assets.wdt.methods import PROCESS_STOCKIN
from wdt_kingdee_assets.wdt.pull import order_key, sort_orders, split_window
from wdt_kingdee_assets.wdt.spool import OrderSpool, SpooledOrder
from wdt_kingdee_assets_tests.fixtures.wdt import stockout_query

START = datetime(2026, 7, 1, tzinfo=BEIJING)


def test_a_short_window_is_kept_whole() -> None:
    assert split_window(START, START + timedelta(days=1)) == [(START, START + timedelta(days=1))]


def test_exactly_thirty_days_is_one_window() -> None:
    assert len(split_window(START, START + timedelta(days=30))) == 1


def test_long_windows_are_split_into_touching_windows_of_at_most_30_days() -> None:
    end = START + timedelta(days=75, hours=5)
    windows = split_window(START, end)
    assert len(windows) == 3
    assert windows[0][0] == START and windows[-1][1] == end
    for (_, first_end), (second_start, _) in pairwise(windows):
        assert first_end == second_start  # shared boundary: safe under any inclusivity
    assert all(upper - lower <= timedelta(days=30) for lower, upper in windows)


def test_custom_max_days() -> None:
    assert len(split_window(START, START + timedelta(days=10), max_days=3)) == 4


def test_fractional_seconds_widen_the_window() -> None:
    [(lower, upper)] = split_window(
        START + timedelta(microseconds=700), START + timedelta(seconds=5, microseconds=1)
    )
    assert (lower, upper) == (START, START + timedelta(seconds=6))


def test_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        split_window(datetime(2026, 7, 1), datetime(2026, 7, 2))
    with pytest.raises(ValueError, match="ends before"):
        split_window(START, START - timedelta(seconds=1))


def _spooled(orders: list[dict[str, object]], query: DocumentQuery) -> list[SpooledOrder]:
    spool = OrderSpool()
    return [spool.put(order, order_key(order, query.method), query) for order in orders]


def test_orders_sort_by_consign_time_in_either_format_then_id() -> None:
    at_nine_ms = int(datetime(2026, 7, 1, 9, tzinfo=BEIJING).astimezone(UTC).timestamp() * 1000)
    orders = [
        {"stockout_id": 3, "consign_time": "2026-07-01 10:00:00"},
        {"stockout_id": 2, "consign_time": at_nine_ms},
        {"stockout_id": 1, "consign_time": "2026-07-01 10:00:00"},
        {"stockout_id": 4, "consign_time": "0000-00-00 00:00:00"},
        {"stockout_id": 5, "consign_time": "2026-07-01 08:59:59"},
    ]
    query = stockout_query(
        datetime(2026, 7, 1, tzinfo=BEIJING), datetime(2026, 7, 2, tzinfo=BEIJING)
    )
    ordered = sort_orders(_spooled(orders, query))
    assert [entry.ident for entry in ordered] == [5, 2, 1, 3, 4]


def test_stockins_sort_by_the_time_field_of_the_query_then_their_own_key() -> None:
    orders = [
        {"stockin_id": 9, "check_time": "2026-07-01 10:00:00", "created": "2026-06-01 00:00:00"},
        {"stockin_id": 7, "check_time": "2026-07-01 10:00:00", "created": "2026-06-02 00:00:00"},
        {"stockin_id": 8, "check_time": "2026-07-01 09:00:00", "created": "2026-06-03 00:00:00"},
    ]
    start = datetime(2026, 7, 1, tzinfo=BEIJING)
    by_check = DocumentQuery(PROCESS_STOCKIN, start, start, time_type=2)
    by_created = DocumentQuery(PROCESS_STOCKIN, start, start, time_type=1)
    assert [e.ident for e in sort_orders(_spooled(orders, by_check))] == [8, 7, 9]
    assert [e.ident for e in sort_orders(_spooled(orders, by_created))] == [9, 7, 8]


def test_a_spooled_order_comes_back_exactly_and_its_entry_says_what_the_pull_needs() -> None:
    query = stockout_query(
        datetime(2026, 7, 1, tzinfo=BEIJING), datetime(2026, 7, 2, tzinfo=BEIJING)
    )
    first = {
        "stockout_id": 7,
        "stockout_no": "CK7",
        "consign_time": "2026-07-01 10:00:00",
        "detail_list": [{"num": Decimal("12.3400"), "goods_name": "电源适配器"}] * 2,
    }
    odd = {"stockout_no": "CK8", "detail_list": "not a list"}
    spool = OrderSpool()
    entries = [spool.put(order, order_key(order, query.method), query) for order in (first, odd)]
    # Read back in any order, as often as asked, as the stored day holds it: decimals as their
    # exact text, Chinese as it is; the text is what a stored file writes for the order.
    assert [spool.text(entry) for entry in reversed(entries)] == [
        encode_json(odd),
        encode_json(first),
    ]
    assert spool.get(entries[0])["detail_list"][0] == {"num": "12.3400", "goods_name": "电源适配器"}
    assert spool.get(entries[1]) == odd
    assert (entries[0].key, entries[0].number, entries[0].lines) == ("7", "CK7", 2)
    # An order without an id is keyed by its number; lines that are not a list count none.
    assert (entries[1].key, entries[1].ident, entries[1].lines) == ("stockout_no:CK8", None, 0)
    spool.close()
