"""Pure parts of the complete pull: window splitting and the stable order of results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from wdt_kingdee_assets.wdt.client import BEIJING, DocumentQuery
from wdt_kingdee_assets.wdt.methods import PROCESS_STOCKIN
from wdt_kingdee_assets.wdt.pull import sort_orders, split_window
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
    assert [order["stockout_id"] for order in sort_orders(orders, query)] == [5, 2, 1, 3, 4]


def test_stockins_sort_by_the_time_field_of_the_query_then_their_own_key() -> None:
    orders = [
        {"stockin_id": 9, "check_time": "2026-07-01 10:00:00", "created": "2026-06-01 00:00:00"},
        {"stockin_id": 7, "check_time": "2026-07-01 10:00:00", "created": "2026-06-02 00:00:00"},
        {"stockin_id": 8, "check_time": "2026-07-01 09:00:00", "created": "2026-06-03 00:00:00"},
    ]
    start = datetime(2026, 7, 1, tzinfo=BEIJING)
    by_check = DocumentQuery(PROCESS_STOCKIN, start, start, time_type=2)
    by_created = DocumentQuery(PROCESS_STOCKIN, start, start, time_type=1)
    assert [order["stockin_id"] for order in sort_orders(orders, by_check)] == [8, 7, 9]
    assert [order["stockin_id"] for order in sort_orders(orders, by_created)] == [9, 7, 8]
