"""Complete pulls against the simulator: every order once, even while rows move, or loud failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from wdt_kingdee_assets.encoding import encode_json
from wdt_kingdee_assets.sandbox.datagen import build_catalog, generate_day
from wdt_kingdee_assets.sandbox.wdt_server import dumps_exact
from wdt_kingdee_assets.wdt.client import BEIJING, WdtClient
from wdt_kingdee_assets.wdt.errors import IncompletePullError, WdtBusinessError, WdtTransientError
from wdt_kingdee_assets.wdt.pull import pull_documents
from wdt_kingdee_assets_tests.fixtures.wdt import WdtSandbox, stockout_query

DAY = date(2026, 8, 22)
DAY_START = datetime(2026, 8, 22, tzinfo=BEIJING)
ALL_STATUSES = stockout_query(DAY_START, DAY_START + timedelta(days=1), status=None)
CATALOG = build_catalog(seed=5, size=60)


def test_multi_page_pull_returns_every_order_exactly_once(
    wdt_sim: WdtSandbox, make_wdt_client: Callable[..., WdtClient]
) -> None:
    orders = generate_day(DAY, seed=5, orders=537, catalog=CATALOG)
    wdt_sim.app.add_orders(orders)
    client = make_wdt_client(page_size=50)
    result = pull_documents(client, ALL_STATUSES)
    ids = [order["stockout_id"] for order in result.orders]
    assert len(ids) == len(set(ids)) == result.total_count == 537
    assert set(ids) == {order["stockout_id"] for order in orders}
    assert (result.pages, result.passes, result.windows) == (11, 1, 1)
    assert wdt_sim.calls() == 11
    # Lossless: each order is what WDT sent, as the stored day writes it — decimals as their
    # exact text (never a float), whole numbers as int.
    sent = [json.loads(dumps_exact(order), parse_float=Decimal) for order in orders]
    by_id = {order["stockout_id"]: order for order in sent}
    assert all(
        encode_json(order) == encode_json(by_id[order["stockout_id"]]) for order in result.orders
    )
    nums = [line["num"] for order in result.orders for line in order["detail_list"]]
    assert all(type(num) is int or (type(num) is str and Decimal(num).is_finite()) for num in nums)
    assert any(type(num) is str for num in nums)  # the day has fractional quantities
    keys = [(order["consign_time"], order["stockout_id"]) for order in result.orders]
    assert keys == sorted(keys)


def test_status_filter_is_applied(wdt_sim: WdtSandbox, wdt_client: WdtClient) -> None:
    orders = generate_day(DAY, seed=5, orders=200, catalog=CATALOG)
    wdt_sim.app.add_orders(orders)
    completed = stockout_query(DAY_START, DAY_START + timedelta(days=1))
    result = pull_documents(wdt_client, completed)
    assert {o["status"] for o in result.orders} == {110}
    assert len(result.orders) == sum(o["status"] == 110 for o in orders) == result.total_count


def test_an_empty_day_is_complete(wdt_sim: WdtSandbox, wdt_client: WdtClient) -> None:
    result = pull_documents(wdt_client, ALL_STATUSES)
    assert (result.orders, result.total_count, result.pages) == ([], 0, 1)


def test_rows_inserted_while_paging_are_still_all_pulled(
    wdt_sim: WdtSandbox, make_wdt_client: Callable[..., WdtClient]
) -> None:
    wdt_sim.app.add_orders(generate_day(DAY, seed=5, orders=120, catalog=CATALOG))
    client = make_wdt_client(page_size=25)
    # After the 2nd page is answered, 3 orders appear ahead of it: later pages shift by 3.
    wdt_sim.add_faults("insert_rows,skip=1,times=1,rows=3")
    result = pull_documents(client, ALL_STATUSES)
    final_count = client.count(ALL_STATUSES)
    assert final_count == 123
    ids = {order["stockout_id"] for order in result.orders}
    assert len(ids) == len(result.orders) == result.total_count == final_count
    assert {order["stockout_id"] for order in wdt_sim.app.orders_on(DAY)} == ids
    assert result.passes == 2


def test_rows_that_keep_moving_fail_loudly_with_both_numbers(
    wdt_sim: WdtSandbox, make_wdt_client: Callable[..., WdtClient]
) -> None:
    wdt_sim.app.add_orders(generate_day(DAY, seed=5, orders=60, catalog=CATALOG))
    client = make_wdt_client(page_size=20)
    wdt_sim.add_faults("insert_rows,times=1000,rows=2")
    with pytest.raises(IncompletePullError) as caught:
        pull_documents(client, ALL_STATUSES, max_passes=2)
    error = caught.value
    assert error.expected > error.got
    assert f"total_count={error.expected}" in str(error) and f"{error.got} distinct" in str(error)
    assert "2026-08-22 00:00:00" in str(error) and error.passes == 2


def test_an_order_re_timed_out_of_the_window_is_not_pulled(
    wdt_sim: WdtSandbox, make_wdt_client: Callable[..., WdtClient]
) -> None:
    orders = generate_day(DAY, seed=5, orders=40, catalog=CATALOG)
    wdt_sim.app.add_orders(orders)
    client = make_wdt_client(page_size=10)
    first_page = client.query_page(ALL_STATUSES, 0)
    moved = {**first_page.orders[0], "consign_time": "2026-08-24 10:00:00"}
    wdt_sim.app.add_orders([moved])
    result = pull_documents(client, ALL_STATUSES)
    assert result.total_count == len(result.orders) == 39
    assert moved["stockout_id"] not in {o["stockout_id"] for o in result.orders}


def test_windows_over_30_days_are_split_and_boundary_orders_counted_once(
    wdt_sim: WdtSandbox, wdt_client: WdtClient
) -> None:
    start = datetime(2026, 6, 1, tzinfo=BEIJING)
    boundary = start + timedelta(days=30)  # where the first window ends and the second begins
    days = [date(2026, 6, 1), date(2026, 6, 20), date(2026, 7, 10)]
    orders = [o for day in days for o in generate_day(day, seed=9, orders=15, catalog=CATALOG)]
    on_boundary = {
        **orders[0],
        "stockout_id": 1,
        "stockout_no": "CKEDGE",
        "consign_time": boundary.strftime("%Y-%m-%d %H:%M:%S"),
    }
    wdt_sim.app.add_orders([*orders, on_boundary])
    query = stockout_query(start, start + timedelta(days=45), status=None)
    result = pull_documents(wdt_client, query)
    assert result.windows == 2
    ids = [order["stockout_id"] for order in result.orders]
    assert len(ids) == len(set(ids)) == 46 == result.total_count
    assert 1 in ids


def test_epoch_millisecond_times_pull_and_sort(
    make_wdt_sim: Callable[..., WdtSandbox], make_wdt_client: Callable[..., WdtClient]
) -> None:
    sandbox = make_wdt_sim(datetime_format="epoch_ms")
    sandbox.app.add_orders(generate_day(DAY, seed=5, orders=70, catalog=CATALOG))
    result = pull_documents(make_wdt_client(sandbox, page_size=30), ALL_STATUSES)
    assert len(result.orders) == result.total_count == 70
    times = [order["consign_time"] for order in result.orders]
    assert all(isinstance(t, int) for t in times) and times == sorted(times)


def test_malformed_orders_are_pulled_too(wdt_sim: WdtSandbox, wdt_client: WdtClient) -> None:
    wdt_sim.app.add_orders(generate_day(DAY, seed=5, orders=10, catalog=CATALOG, malformed=10))
    result = pull_documents(wdt_client, ALL_STATUSES)
    assert len(result.orders) == result.total_count == 20
    assert result.orders[-1]["consign_time"] == "0000-00-00 00:00:00"  # unreadable sorts last


def test_pages_of_2000_step_down_when_a_page_fails_and_say_why(
    wdt_sim: WdtSandbox, make_wdt_client: Callable[..., WdtClient]
) -> None:
    orders = generate_day(DAY, seed=5, orders=300, catalog=CATALOG)
    wdt_sim.app.add_orders(orders)
    client = make_wdt_client()  # the default: the method's maximum page
    assert client.page_size == 2000
    heard: list[str] = []
    # Every try of the first page fails (the client's four attempts): the pull halves the page.
    wdt_sim.add_faults("5xx,times=4")
    result = pull_documents(client, ALL_STATUSES, on_step_down=heard.append)
    assert result.total_count == len(result.orders) == 300
    assert result.page_size == 1000 and len(result.step_downs) == 1
    assert "page_size 2000 → 1000" in result.step_downs[0] and "1000" in heard[0]
    # Healthy, a day of 300 is one page.
    assert pull_documents(client, ALL_STATUSES).pages == 1


def test_a_failure_no_smaller_page_can_fix_is_not_stepped_down(
    wdt_sim: WdtSandbox, make_wdt_client: Callable[..., WdtClient]
) -> None:
    wdt_sim.app.add_orders(generate_day(DAY, seed=5, orders=20, catalog=CATALOG))
    client = make_wdt_client(page_size=100)  # at the floor already
    wdt_sim.add_faults("5xx,times=4")
    with pytest.raises(WdtTransientError):
        pull_documents(client, ALL_STATUSES)
    bad_status = stockout_query(DAY_START, DAY_START + timedelta(days=1), status="x")
    with pytest.raises(WdtBusinessError):
        pull_documents(make_wdt_client(), bad_status)
