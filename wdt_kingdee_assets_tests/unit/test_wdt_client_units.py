"""Pure parts of the WDT client: query encoding, error classification, stats, repr."""

from __future__ import annotations

import pickle
import threading
from datetime import UTC, datetime

import pytest

from wdt_kingdee_assets.wdt.client import CallStats, WdtClient
from wdt_kingdee_assets.wdt.errors import (
    IncompletePullError,
    WdtBusinessError,
    WdtError,
    WdtRejectedError,
    WdtThrottledError,
    WdtTransientError,
    error_for_envelope,
)
from wdt_kingdee_assets.wdt.methods import PROCESS_STOCKOUT
from wdt_kingdee_assets_tests.fixtures.wdt import stockout_query

METHOD = PROCESS_STOCKOUT.name


def test_query_times_are_sent_as_beijing_local_time() -> None:
    query = stockout_query(
        datetime(2026, 8, 21, 16, 0, tzinfo=UTC),
        datetime(2026, 8, 22, 16, 0, 0, 250_000, tzinfo=UTC),
    )
    assert query.body_params() == {
        "start_time": "2026-08-22 00:00:00",
        # A fractional end rounds up: the wire has whole seconds, the window must not shrink.
        "end_time": "2026-08-23 00:00:01",
        "time_type": 2,
        "status": "110",
    }


def test_unset_filters_are_left_out_and_set_ones_sent() -> None:
    start = datetime(2026, 8, 22, tzinfo=UTC)
    assert "status" not in stockout_query(start, start, status=None).body_params()
    assert (
        stockout_query(start, start, warehouse_no="CK001").body_params()["warehouse_no"] == "CK001"
    )


def test_naive_times_and_unknown_time_types_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        stockout_query(datetime(2026, 8, 22), datetime(2026, 8, 23))
    aware = datetime(2026, 8, 22, tzinfo=UTC)
    with pytest.raises(ValueError, match="time_type"):
        stockout_query(aware, aware, time_type=4)


@pytest.mark.parametrize("page_size", [0, 2001])
def test_page_size_must_be_within_the_api_limit(page_size: int) -> None:
    with pytest.raises(ValueError, match="page_size"):
        WdtClient("http://127.0.0.1:1/openapi", "s", "k", "sec:salt", page_size=page_size)


def test_repr_and_bad_appsecret_errors_never_show_the_secret() -> None:
    client = WdtClient("http://127.0.0.1:1/openapi", "sid1", "key1", "TopSecret42:salty")
    assert "TopSecret42" not in repr(client) and "salty" not in repr(client)
    with pytest.raises(ValueError) as caught:
        WdtClient("http://127.0.0.1:1/openapi", "sid1", "key1", "TopSecret42")
    assert "TopSecret42" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (1, "验证失败", WdtRejectedError),
        (1, "sid is not exists", WdtRejectedError),
        (2, "stockout_nox", WdtRejectedError),
        (6, "ip限制", WdtRejectedError),
        (7, "时间戳错误", WdtRejectedError),
        (8, "版本错误", WdtRejectedError),
        (4, "数据库错误", WdtTransientError),
        (5, "数据库错误", WdtTransientError),
        (100, "超过每分钟最大调用频率限制，请稍后重试", WdtThrottledError),
        (100, "超过每分钟最大调用频率限制,请稍后重试", WdtThrottledError),
        (100, "超过每分钟最大并发次数限制，请稍后重试", WdtThrottledError),
        (100, "您的查询时间过宽,查询时间不能大于30天", WdtBusinessError),
        (99, "其他错误", WdtBusinessError),
        (3, "需要动态口令", WdtBusinessError),
        (42, "未知", WdtBusinessError),
    ],
)
def test_error_envelopes_map_to_the_documented_classes(
    status: int, message: str, expected: type[WdtError]
) -> None:
    error = error_for_envelope(METHOD, status, message)
    assert type(error) is expected
    assert (error.status, error.server_message, error.method) == (status, message, METHOD)
    assert METHOD in str(error) and str(status) in str(error) and message in str(error)


def test_errors_survive_pickling_with_their_fields() -> None:
    error = error_for_envelope(METHOD, 7, "时间戳错误")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.status, copy.server_message) == (
        WdtRejectedError,
        str(error),
        7,
        "时间戳错误",
    )
    incomplete = IncompletePullError(method=METHOD, expected=10, got=8, window="w", passes=3)
    again = pickle.loads(pickle.dumps(incomplete))
    assert (again.expected, again.got, str(again)) == (10, 8, str(incomplete))


def test_incomplete_pull_message_names_both_numbers_and_the_window() -> None:
    error = IncompletePullError(
        method=METHOD, expected=541, got=537, window="window 2026-08-22", passes=3
    )
    assert "541" in str(error) and "537" in str(error) and "window 2026-08-22" in str(error)


def test_call_stats_increments_are_thread_safe() -> None:
    stats = CallStats()

    def bump() -> None:
        for _ in range(2000):
            stats.add(calls=1, retries=1, waited=0.5)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (stats.calls, stats.retries, stats.waited_seconds) == (16000, 16000, 8000.0)
