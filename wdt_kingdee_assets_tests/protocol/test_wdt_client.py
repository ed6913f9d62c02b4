"""The real WdtClient against the simulator: error classes, retries, throttling, no leaked secrets.

Calls are counted on the simulator's side (its admin state), so "retried" and "not retried"
mean requests that really reached the server.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import requests

from wdt_kingdee_assets.sandbox.credentials import WdtCredentials
from wdt_kingdee_assets.sandbox.wdt_server import MSG_RATE, MSG_STATUS_FILTER, MSG_WINDOW
from wdt_kingdee_assets.throttle import Backoff, ThrottleWait
from wdt_kingdee_assets.wdt.client import BEIJING, WdtClient
from wdt_kingdee_assets.wdt.errors import (
    WdtBusinessError,
    WdtError,
    WdtProtocolError,
    WdtRejectedError,
    WdtThrottledError,
    WdtTransientError,
)
from wdt_kingdee_assets.wdt.methods import PROCESS_STOCKOUT
from wdt_kingdee_assets_tests.fixtures.wdt import WdtSandbox, fast_backoff, stockout_query

DAY_START = datetime(2026, 8, 22, tzinfo=BEIJING)
QUERY = stockout_query(DAY_START, DAY_START + timedelta(days=1))
ORDER = {"stockout_id": 1, "status": 110, "consign_time": "2026-08-22 09:30:00", "detail_list": []}


def test_a_page_round_trip(wdt_sim: WdtSandbox, wdt_client: WdtClient) -> None:
    wdt_sim.app.add_orders([ORDER])
    page = wdt_client.query_page(QUERY, 0)
    assert (page.page_no, page.total_count, page.orders) == (0, 1, [ORDER])
    assert wdt_client.query_page(QUERY, 0, calc_total=False).total_count is None
    assert wdt_client.count(QUERY) == 1
    assert (wdt_client.stats.calls, wdt_client.stats.retries) == (3, 0)


def test_rejected_is_raised_after_one_call(
    wdt_sim: WdtSandbox, make_wdt_client: Callable[..., WdtClient]
) -> None:
    client = make_wdt_client(appsecret="wrong_secret:sandbox_salt")
    with pytest.raises(WdtRejectedError) as caught:
        client.query_page(QUERY, 0)
    assert (caught.value.status, caught.value.server_message) == (1, "验证失败")
    assert "验证失败" in str(caught.value) and PROCESS_STOCKOUT.name in str(caught.value)
    assert wdt_sim.calls() == 1 and client.stats.retries == 0


def test_stale_client_clock_is_rejected_not_retried(
    wdt_sim: WdtSandbox, make_wdt_client: Callable[..., WdtClient]
) -> None:
    client = make_wdt_client(clock=lambda: time.time() - 300)
    with pytest.raises(WdtRejectedError) as caught:
        client.query_page(QUERY, 0)
    assert caught.value.status == 7 and wdt_sim.calls() == 1


def test_business_errors_are_not_retried(wdt_sim: WdtSandbox, wdt_client: WdtClient) -> None:
    with pytest.raises(WdtBusinessError) as caught:
        wdt_client.query_page(stockout_query(DAY_START, DAY_START, status="110;5"), 0)
    assert caught.value.server_message == MSG_STATUS_FILTER
    too_wide = stockout_query(DAY_START, DAY_START + timedelta(days=31))
    with pytest.raises(WdtBusinessError, match=MSG_WINDOW):
        wdt_client.query_page(too_wide, 0)
    assert wdt_sim.calls() == 2


def test_throttle_fault_is_backed_off_and_recovers(
    wdt_sim: WdtSandbox, wdt_client: WdtClient
) -> None:
    wdt_sim.app.add_orders([ORDER])
    wdt_sim.add_faults("throttle,times=2")
    assert wdt_client.count(QUERY) == 1
    assert wdt_sim.calls() == 3
    stats = wdt_client.stats
    assert (stats.calls, stats.retries, stats.throttled) == (3, 2, 2)
    assert stats.waited_seconds > 0


def test_throttled_until_retries_run_out(wdt_sim: WdtSandbox, wdt_client: WdtClient) -> None:
    wdt_sim.add_faults("throttle,times=10")
    with pytest.raises(WdtThrottledError) as caught:
        wdt_client.count(QUERY)
    assert caught.value.server_message == MSG_RATE and caught.value.status == 100
    assert wdt_sim.calls() == 4 and wdt_client.stats.throttled == 4


class FakeTime:
    """One clock for client and simulator: backoff sleeps move it, so a minute passes at once."""

    def __init__(self) -> None:
        self.now = time.time()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_quota_exhausted_for_five_minutes_is_waited_out_as_wdt_asks(
    make_wdt_sim: Callable[..., WdtSandbox], make_wdt_client: Callable[..., WdtClient]
) -> None:
    """The client's default patience against WDT throttling for five minutes, over real HTTP; the
    clock both sides read is moved by the client's rests, so the five minutes pass at once."""
    clock = FakeTime()
    sandbox = make_wdt_sim(clock=clock)
    sandbox.app.add_orders([ORDER])
    sandbox.add_faults("throttle,seconds=300")
    logged: list[str] = []
    client = make_wdt_client(
        sandbox, clock=clock, sleep=clock.sleep, throttle_wait=ThrottleWait(), log=logged.append
    )
    assert client.count(QUERY) == 1
    assert 300 <= sum(clock.slept) <= 900
    assert client.stats.throttled == len(logged) >= 3
    assert logged[0].startswith(f"WDT throttled ({MSG_RATE}), waiting ")
    assert logged[0].endswith("s, attempt 2 of 5")
    assert all(60 <= delay <= 360 for delay in clock.slept)


def test_a_quota_that_outlasts_the_rests_fails_after_them(
    make_wdt_sim: Callable[..., WdtSandbox], make_wdt_client: Callable[..., WdtClient]
) -> None:
    clock = FakeTime()
    sandbox = make_wdt_sim(clock=clock)
    sandbox.add_faults("throttle,seconds=3600")
    client = make_wdt_client(sandbox, clock=clock, sleep=clock.sleep, throttle_wait=ThrottleWait())
    with pytest.raises(WdtThrottledError):
        client.count(QUERY)
    assert len(clock.slept) == 4 and sum(clock.slept) <= 900
    assert sandbox.calls() == 5


def test_the_servers_own_rate_limit_is_backed_off(
    make_wdt_sim: Callable[..., WdtSandbox], make_wdt_client: Callable[..., WdtClient]
) -> None:
    clock = FakeTime()
    sandbox = make_wdt_sim(calls_per_minute=3, clock=clock)
    sandbox.app.add_orders([ORDER])
    client = make_wdt_client(
        sandbox,
        clock=clock,
        sleep=clock.sleep,
        backoff=Backoff(base_seconds=20, cap_seconds=60, max_attempts=10, rng=random.Random(1)),
        throttle_wait=ThrottleWait(20, 60, 600, rng=random.Random(1)),
    )
    assert [client.count(QUERY) for _ in range(5)] == [1] * 5
    assert client.stats.throttled >= 1
    assert sandbox.calls() == 5 + client.stats.throttled
    assert sum(clock.slept) >= 60 - 1e-6  # the server's window had to roll over


def test_concurrency_limit_is_backed_off(
    make_wdt_sim: Callable[..., WdtSandbox], make_wdt_client: Callable[..., WdtClient]
) -> None:
    sandbox = make_wdt_sim(max_concurrency=1, latency=0.15)
    client = make_wdt_client(
        sandbox,
        backoff=Backoff(base_seconds=0.2, cap_seconds=0.4, max_attempts=10, rng=random.Random(2)),
        throttle_wait=ThrottleWait(0.2, 0.4, 5, rng=random.Random(2)),
    )
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(client.count(QUERY))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [0, 0, 0]
    assert client.stats.throttled >= 1


@pytest.mark.parametrize("rule", ["5xx,times=2", "5xx,times=2,status=503", "reset,times=2"])
def test_transient_failures_are_retried_and_recover(
    wdt_sim: WdtSandbox, wdt_client: WdtClient, rule: str
) -> None:
    wdt_sim.add_faults(rule)
    assert wdt_client.count(QUERY) == 0
    assert wdt_sim.calls() == 3 and wdt_client.stats.retries == 2


def test_timeouts_are_retried_and_recover(
    wdt_sim: WdtSandbox, make_wdt_client: Callable[..., WdtClient]
) -> None:
    client = make_wdt_client(timeout=0.2)
    wdt_sim.add_faults("timeout,seconds=0.6,times=2")
    assert client.count(QUERY) == 0
    assert wdt_sim.calls() == 3 and client.stats.retries == 2


@pytest.mark.parametrize(
    ("rule", "timeout", "says"),
    [
        ("5xx,times=10,status=502", 2.0, "HTTP 502"),
        ("reset,times=10", 2.0, "connection to"),
        ("timeout,seconds=0.5,times=10", 0.15, "no answer"),
    ],
)
def test_transient_failures_raise_after_the_bound(
    wdt_sim: WdtSandbox,
    make_wdt_client: Callable[..., WdtClient],
    rule: str,
    timeout: float,
    says: str,
) -> None:
    client = make_wdt_client(timeout=timeout, backoff=fast_backoff(max_attempts=3))
    wdt_sim.add_faults(rule)
    with pytest.raises(WdtTransientError, match=says):
        client.count(QUERY)
    assert wdt_sim.calls() == 3


@pytest.mark.parametrize(
    ("kind", "excerpt"),
    [("html_error", "系统维护中"), ("empty_body", "0 bytes"), ("truncated_json", '{"status": 0')],
)
def test_answers_that_are_not_envelopes_are_protocol_errors(
    wdt_sim: WdtSandbox, wdt_client: WdtClient, kind: str, excerpt: str
) -> None:
    wdt_sim.app.add_orders([ORDER])
    wdt_sim.add_faults(f"{kind},times=1")
    assert wdt_client.count(QUERY) == 1  # retried once, then the real answer
    wdt_sim.add_faults(f"{kind},times=10")
    with pytest.raises(WdtProtocolError) as caught:
        wdt_client.count(QUERY)
    assert excerpt in str(caught.value)
    assert wdt_sim.calls() == 2 + 4


def test_delay_fault_is_just_slow(wdt_sim: WdtSandbox, wdt_client: WdtClient) -> None:
    wdt_sim.add_faults("delay,seconds=0.2")
    started = time.monotonic()
    assert wdt_client.count(QUERY) == 0
    assert time.monotonic() - started >= 0.2 and wdt_sim.calls() == 1


SECRET = "Zq9TopSecretPart"
SALT = "SaltyBit77"
LEAKY_CREDENTIALS = WdtCredentials(sid="leaksid", appkey="leakkey", appsecret=f"{SECRET}:{SALT}")


@pytest.mark.parametrize(
    ("rule", "client_options", "expected"),
    [
        ("5xx,times=10", {}, WdtTransientError),
        ("reset,times=10", {}, WdtTransientError),
        ("timeout,seconds=0.4,times=10", {"timeout": 0.1}, WdtTransientError),
        ("html_error,times=10", {}, WdtProtocolError),
        ("throttle,times=10", {}, WdtThrottledError),
        (None, {"appsecret": "Zq9TopSecretPartX:SaltyBit77"}, WdtRejectedError),
        (None, {"clock": lambda: time.time() + 999}, WdtRejectedError),
    ],
)
def test_no_secret_salt_or_sign_in_errors_or_repr(
    make_wdt_sim: Callable[..., WdtSandbox],
    make_wdt_client: Callable[..., WdtClient],
    rule: str | None,
    client_options: dict[str, object],
    expected: type[WdtError],
) -> None:
    sandbox = make_wdt_sim(LEAKY_CREDENTIALS)
    client = make_wdt_client(sandbox, backoff=fast_backoff(max_attempts=2), **client_options)
    if rule:
        sandbox.add_faults(rule)
    with pytest.raises(expected) as caught:
        client.count(QUERY)
    rendered = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    for forbidden in (SECRET, SALT, "sign=", "salt="):
        assert forbidden not in rendered
    assert SECRET not in repr(client) and SALT not in repr(client)


def test_a_document_changed_after_the_fact_is_found_by_number_in_any_status(wdt_sim, wdt_client):
    number = "CK-1"
    wdt_sim.app.add_orders([{**ORDER, "stockout_no": number}])
    changed = requests.post(
        f"{wdt_sim.server.root_url}/__admin__/orders/change",
        json={"number": number, "cancel": True},
        timeout=5,
    ).json()["order"]
    assert changed["status"] == 5 and changed["modified"]
    found = wdt_client.by_number(PROCESS_STOCKOUT, number)
    assert found is not None and found["status"] == 5
    assert wdt_client.by_number(PROCESS_STOCKOUT, "CK-NONE") is None
    bad = requests.post(
        f"{wdt_sim.server.root_url}/__admin__/orders/change", json={"number": "CK-NONE"}, timeout=5
    )
    assert bad.status_code == 400 and "CK-NONE" in bad.json()["error"]
