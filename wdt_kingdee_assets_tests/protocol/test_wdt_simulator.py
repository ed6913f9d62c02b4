"""The WDT simulator over real HTTP: it rejects what the real server rejects (reference §10).

Requests here are built by hand (signed with the pure signer) so that each one can be broken
in exactly one way.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests

from wdt_kingdee_assets.sandbox.datagen import build_catalog, generate_day
from wdt_kingdee_assets.sandbox.wdt_server import (
    MSG_CONCURRENCY,
    MSG_RATE,
    MSG_STATUS_FILTER,
    MSG_WINDOW,
    STOCKOUT,
)
from wdt_kingdee_assets.wdt.signing import sign, split_appsecret, wdt_timestamp
from wdt_kingdee_assets_tests.fixtures.wdt import WdtSandbox

DAY = date(2026, 8, 22)
DAY_BODY = {"start_time": "2026-08-22 00:00:00", "end_time": "2026-08-23 00:00:00", "time_type": 2}


def call(
    sandbox: WdtSandbox,
    body: Any = None,
    *,
    raw_body: str | None = None,
    set_params: dict[str, str] | None = None,
    drop: tuple[str, ...] = (),
    sign_body: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """One signed POST; the knobs break it in one chosen way. Returns the parsed envelope."""
    secret, salt = split_appsecret(sandbox.credentials.appsecret)
    text = raw_body if raw_body is not None else json.dumps([body or DAY_BODY], ensure_ascii=False)
    params = {
        "sid": sandbox.credentials.sid,
        "key": sandbox.credentials.appkey,
        "salt": salt,
        "method": "wms.stockout.Process.queryWithDetail",
        "v": "1.0",
        "timestamp": str(wdt_timestamp(time.time() if now is None else now)),
        "page_size": "10",
        "page_no": "0",
        "calc_total": "1",
        **(set_params or {}),
    }
    for name in drop:
        params.pop(name, None)
    params.setdefault("sign", sign(params, text if sign_body is None else sign_body, secret))
    if "sign" in drop:
        del params["sign"]
    response = requests.post(
        sandbox.base_url,
        params=params,
        data=text.encode("utf-8"),
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 200
    return json.loads(response.content, parse_float=Decimal)


@pytest.fixture
def seeded(wdt_sim: WdtSandbox) -> WdtSandbox:
    catalog = build_catalog(seed=3, size=30)
    wdt_sim.app.add_orders(generate_day(DAY, seed=3, orders=25, catalog=catalog))
    return wdt_sim


def test_a_valid_call_gets_the_success_envelope(seeded: WdtSandbox) -> None:
    envelope = call(seeded, {**DAY_BODY, "status": ""})
    assert envelope["status"] == 0 and "message" not in envelope
    assert envelope["data"]["total_count"] == 25
    assert len(envelope["data"]["order"]) == 10


def test_an_appkey_sees_only_its_warehouses_and_is_refused_the_others(seeded: WdtSandbox) -> None:
    """权限校验: the other warehouses' documents are neither answered nor counted — silently —
    and asking for one of them by warehouse_no is refused."""
    everything = call(seeded, {**DAY_BODY, "status": ""}, set_params={"page_size": "100"})
    seen = {order["warehouse_no"] for order in everything["data"]["order"]}
    granted = sorted(seen)[0]
    seeded.app.visible_warehouses = {granted}
    visible = call(seeded, {**DAY_BODY, "status": ""}, set_params={"page_size": "100"})
    orders = visible["data"]["order"]
    assert {order["warehouse_no"] for order in orders} == {granted}
    assert visible["data"]["total_count"] == len(orders) < everything["data"]["total_count"]
    other = sorted(seen)[-1]
    assert call(seeded, {**DAY_BODY, "warehouse_no": other}) == {
        "status": 100,
        "message": "无仓库访问权限",
    }


def test_total_count_only_when_asked(seeded: WdtSandbox) -> None:
    envelope = call(seeded, set_params={"calc_total": "0"})
    assert "total_count" not in envelope["data"] and envelope["data"]["order"]


def test_scalars_may_be_strings_like_the_doc_sample(seeded: WdtSandbox) -> None:
    assert call(seeded, {**DAY_BODY, "time_type": "2"})["status"] == 0


@pytest.mark.parametrize("missing", ["sid", "key", "salt", "method", "v", "timestamp", "sign"])
def test_missing_system_parameters_are_status_1(wdt_sim: WdtSandbox, missing: str) -> None:
    assert call(wdt_sim, drop=(missing,))["status"] == 1


def test_wrong_version_is_status_8(wdt_sim: WdtSandbox) -> None:
    assert call(wdt_sim, set_params={"v": "2.0"}) == {"status": 8, "message": "版本错误"}


@pytest.mark.parametrize("skew", [-121, 121, -3600])
def test_timestamp_outside_120_seconds_is_status_7(wdt_sim: WdtSandbox, skew: int) -> None:
    assert call(wdt_sim, now=time.time() + skew) == {"status": 7, "message": "时间戳错误"}


def test_timestamp_inside_120_seconds_is_accepted(wdt_sim: WdtSandbox) -> None:
    assert call(wdt_sim, now=time.time() - 100)["status"] == 0


def test_millisecond_timestamp_is_a_java_parse_error(wdt_sim: WdtSandbox) -> None:
    millis = str(int(time.time() * 1000))
    assert call(wdt_sim, set_params={"timestamp": millis}) == {
        "status": 1,
        "message": f'For input string: "{millis}"',
    }


def test_unknown_sid_and_wrong_key_are_status_1(wdt_sim: WdtSandbox) -> None:
    assert call(wdt_sim, set_params={"sid": "nobody"}) == {
        "status": 1,
        "message": "sid is not exists",
    }
    assert call(wdt_sim, set_params={"key": "wrong"})["message"] == "验证失败"


def test_bad_signature_is_rejected(wdt_sim: WdtSandbox) -> None:
    assert call(wdt_sim, set_params={"sign": "0" * 32}) == {"status": 1, "message": "验证失败"}


def test_signature_covers_the_raw_body_bytes(wdt_sim: WdtSandbox) -> None:
    compact = json.dumps([DAY_BODY], separators=(",", ":"))
    spaced = json.dumps([DAY_BODY])
    assert call(wdt_sim, raw_body=spaced, sign_body=compact)["status"] == 1
    # Any serialisation is fine as long as the signed text is the sent text (SDKs differ).
    escaped = json.dumps([{**DAY_BODY, "warehouse_no": "成品仓"}], ensure_ascii=True)
    assert call(wdt_sim, raw_body=escaped)["status"] == 0


def test_unknown_method_is_refused(wdt_sim: WdtSandbox) -> None:
    assert call(wdt_sim, set_params={"method": "wms.stockout.Sales.queryWithDetail"})["status"] == 1


@pytest.mark.parametrize(
    "raw_body", ['{"start_time":"2026-08-22 00:00:00"}', '["x"]', "[]", "not json"]
)
def test_body_must_be_an_array_holding_one_object(wdt_sim: WdtSandbox, raw_body: str) -> None:
    assert call(wdt_sim, raw_body=raw_body)["status"] == 1


def test_paged_method_needs_the_pager(wdt_sim: WdtSandbox) -> None:
    envelope = call(wdt_sim, drop=("page_no", "page_size", "calc_total"))
    assert envelope == {"status": 100, "message": STOCKOUT.paged_only}
    assert envelope["message"].startswith("此方法仅支持分页查询")


def test_page_size_over_2000_is_refused(wdt_sim: WdtSandbox) -> None:
    assert call(wdt_sim, set_params={"page_size": "2001"})["status"] == 100
    assert call(wdt_sim, set_params={"page_size": "2000"})["status"] == 0


@pytest.mark.parametrize("status", ["110;5", "a", "110,", ",5", "5, 110"])
def test_bad_status_filter_gets_the_documented_message(wdt_sim: WdtSandbox, status: str) -> None:
    assert call(wdt_sim, {**DAY_BODY, "status": status}) == {
        "status": 100,
        "message": MSG_STATUS_FILTER,
    }
    assert MSG_STATUS_FILTER == "状态参数格式不正确，请用以逗号隔开的整数字符串为参数"


@pytest.mark.parametrize("name", ["shop_no", "stockin_no", "page_size"])
def test_a_parameter_the_method_does_not_document_is_status_2_naming_it(
    wdt_sim: WdtSandbox, name: str
) -> None:
    """A misspelt or foreign filter would otherwise be ignored and the whole day returned."""
    assert call(wdt_sim, {**DAY_BODY, name: "x"}) == {"status": 2, "message": name}


def test_unparseable_date_echoes_the_value(wdt_sim: WdtSandbox) -> None:
    body = {**DAY_BODY, "start_time": "2023/02/06 17:59:19"}
    assert call(wdt_sim, body) == {
        "status": 100,
        "message": "Unparseable date: 2023/02/06 17:59:19",
    }


def test_window_over_30_days_is_refused(wdt_sim: WdtSandbox) -> None:
    too_wide = {**DAY_BODY, "start_time": "2026-07-01 00:00:00", "end_time": "2026-07-31 00:00:01"}
    assert call(wdt_sim, too_wide) == {"status": 100, "message": MSG_WINDOW}
    exactly = {**DAY_BODY, "start_time": "2026-07-01 00:00:00", "end_time": "2026-07-31 00:00:00"}
    assert call(wdt_sim, exactly)["status"] == 0


def test_times_are_required_unless_a_document_number_is_given(seeded: WdtSandbox) -> None:
    assert call(seeded, {"time_type": 2})["status"] == 100
    first = seeded.app.orders_on(DAY)[0]
    found = call(seeded, {"stockout_no": first["stockout_no"], "status": ""})
    assert [o["stockout_id"] for o in found["data"]["order"]] == [first["stockout_id"]]
    by_process = call(seeded, {"process_no": first["process_no"], "status": ""})
    assert first["stockout_id"] in {o["stockout_id"] for o in by_process["data"]["order"]}


def test_calls_per_minute_limit(make_wdt_sim: Callable[..., WdtSandbox]) -> None:
    sandbox = make_wdt_sim(calls_per_minute=2)
    assert [call(sandbox)["status"] for _ in range(2)] == [0, 0]
    assert call(sandbox) == {"status": 100, "message": MSG_RATE}


def test_concurrency_limit(make_wdt_sim: Callable[..., WdtSandbox]) -> None:
    sandbox = make_wdt_sim(max_concurrency=1, latency=0.3)
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda: results.append(call(sandbox))) for _ in range(2)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert sorted(r["status"] for r in results) == [0, 100]
    assert {"status": 100, "message": MSG_CONCURRENCY} in results


def _ids(envelope: dict[str, Any]) -> list[int]:
    return [order["stockout_id"] for order in envelope["data"]["order"]]


def test_filters_and_inclusive_window(wdt_sim: WdtSandbox) -> None:
    def order(stockout_id: int, consign: str, **extra: Any) -> dict[str, Any]:
        return {
            "stockout_id": stockout_id,
            "stockout_no": f"CK{stockout_id}",
            "status": 110,
            "warehouse_no": "CK001",
            "created": "2026-08-01 08:00:00",
            "modified": "2026-09-01 08:00:00",
            "consign_time": consign,
            **extra,
        }

    wdt_sim.app.add_orders(
        [
            order(1, "2026-08-22 00:00:00"),
            order(2, "2026-08-22 12:00:00", warehouse_no="CK002"),
            order(3, "2026-08-23 00:00:00"),
            order(4, "2026-08-23 00:00:01"),
            order(5, "2026-08-21 23:59:59"),
            order(6, "2026-08-22 13:00:00", status=5),
        ]
    )
    day = call(wdt_sim, {**DAY_BODY, "status": ""})
    assert _ids(day) == [1, 2, 6, 3]  # both ends inclusive, ordered by consign time
    assert _ids(call(wdt_sim, {**DAY_BODY, "status": "110"})) == [1, 2, 3]
    assert _ids(call(wdt_sim, {**DAY_BODY, "status": "5,110", "warehouse_no": "CK002"})) == [2]
    created = {**DAY_BODY, "time_type": 1, "start_time": "2026-08-01 00:00:00", "status": ""}
    assert len(_ids(call(wdt_sim, created))) == 6
    modified = {**created, "time_type": 3}
    assert _ids(call(wdt_sim, modified)) == []
    paged = call(wdt_sim, {**DAY_BODY, "status": ""}, set_params={"page_size": "3", "page_no": "1"})
    assert _ids(paged) == [3] and paged["data"]["total_count"] == 4


def test_decimals_are_served_as_exact_json_numbers(wdt_sim: WdtSandbox) -> None:
    wdt_sim.app.add_orders(
        [
            {
                "stockout_id": 1,
                "consign_time": "2026-08-22 10:00:00",
                "status": 110,
                "detail_list": [{"num": Decimal("12.3400"), "spec_no": "X"}],
            }
        ]
    )
    envelope = call(wdt_sim)
    assert envelope["data"]["order"][0]["detail_list"][0]["num"] == Decimal("12.3400")
    assert str(envelope["data"]["order"][0]["detail_list"][0]["num"]) == "12.3400"


def test_epoch_ms_datetime_format(make_wdt_sim: Callable[..., WdtSandbox]) -> None:
    sandbox = make_wdt_sim(datetime_format="epoch_ms")
    sandbox.app.add_orders(
        [{"stockout_id": 1, "status": 110, "consign_time": "2026-08-22 10:00:00", "created": "x"}]
    )
    [order] = call(sandbox)["data"]["order"]
    assert order["consign_time"] == 1787364000000  # 2026-08-22 02:00:00 UTC
    assert order["created"] == "x"  # what cannot be read is served as it is


def test_admin_state_orders_reset(seeded: WdtSandbox) -> None:
    call(seeded)
    state = seeded.admin("GET", "state")
    assert state["orders"] == 25 and state["by_day"] == {"2026-08-22": 25}
    assert sum(state["by_status"].values()) == 25 and state["calls"] == 1
    listed = seeded.admin("GET", "orders", day="2026-08-22")["orders"]
    assert len(listed) == 25
    assert seeded.admin("GET", "orders", day="2026-08-23")["orders"] == []
    added = seeded.admin(
        "POST", "orders", {"orders": [{"stockout_id": 7, "consign_time": "2026-08-23 01:00:00"}]}
    )
    assert added == {"added": 1}
    assert seeded.admin("GET", "state")["by_day"]["2026-08-23"] == 1
    seeded.admin("POST", "faults", {"rules": ["throttle,times=2"]})
    seeded.admin("POST", "reset")
    state = seeded.admin("GET", "state")
    assert (state["orders"], state["calls"], state["faults"]["rules"]) == (0, 0, [])


def test_admin_faults(wdt_sim: WdtSandbox) -> None:
    added = wdt_sim.admin(
        "POST", "faults", {"rules": ["throttle,times=2", {"kind": "5xx", "status": 503}]}
    )
    assert added["added"] == 2
    assert [r["kind"] for r in wdt_sim.admin("GET", "state")["faults"]["rules"]] == [
        "throttle",
        "5xx",
    ]
    assert call(wdt_sim) == {"status": 100, "message": MSG_RATE}
    wdt_sim.admin("DELETE", "faults")
    assert wdt_sim.admin("GET", "state")["faults"]["rules"] == []
    assert call(wdt_sim)["status"] == 0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"rules": ["bogus"]}, "kind"),
        ({"rules": ["session_lost"]}, "not supported"),
        ({"rules": ["throttle,times"]}, "key=value"),
        ({"rules": [{"kind": "5xx", "status": 200}]}, "status"),
        ({"nope": 1}, "rules"),
    ],
)
def test_admin_rejects_bad_fault_rules_with_a_reason(
    wdt_sim: WdtSandbox, payload: dict[str, Any], reason: str
) -> None:
    response = requests.post(f"{wdt_sim.server.root_url}/__admin__/faults", json=payload, timeout=5)
    assert response.status_code == 400
    assert reason in response.json()["error"]
    assert wdt_sim.admin("GET", "state")["faults"]["rules"] == []


def test_admin_rejects_orders_without_ids(wdt_sim: WdtSandbox) -> None:
    response = requests.post(
        f"{wdt_sim.server.root_url}/__admin__/orders", json={"orders": [{"x": 1}]}, timeout=5
    )
    assert response.status_code == 400 and "stockout_id" in response.json()["error"]
