"""The second flow's two ends over real HTTP: WDT's production stock-in query, and Kingdee's
其他入库单 (STK_MISCELLANEOUS) with its own field keys and required fields."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest

from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY, MISCELLANEOUS
from wdt_kingdee_assets.sandbox.datagen import build_catalog, generate_stockin_day
from wdt_kingdee_assets.sandbox.wdt_server import STOCKIN, STOCKOUT
from wdt_kingdee_assets.wdt.client import BEIJING, DocumentQuery
from wdt_kingdee_assets.wdt.errors import WdtBusinessError
from wdt_kingdee_assets.wdt.methods import PROCESS_STOCKIN
from wdt_kingdee_assets.wdt.pull import pull_documents

DAY = date(2025, 3, 1)
START = datetime(2025, 3, 1, tzinfo=BEIJING)


def stockin_day(wdt_sim, count: int = 12) -> list[dict]:
    orders = generate_stockin_day(DAY, seed=5, stockins=count, catalog=build_catalog(seed=5))
    wdt_sim.app.add_orders(orders, STOCKIN.name)
    return orders


def test_the_stockin_method_is_paged_completely_by_check_time(wdt_sim, make_wdt_client):
    orders = stockin_day(wdt_sim)
    # A stock-out of the same day lives in its own store: the stock-in query never sees it.
    stockout = {"stockout_id": 1, "stockout_no": "CK1", "consign_time": "2025-03-01 10:00:00"}
    wdt_sim.app.add_orders([stockout], STOCKOUT.name)
    client = make_wdt_client(page_size=5)
    query = DocumentQuery(PROCESS_STOCKIN, START, START + timedelta(days=1), time_type=2)
    pulled = pull_documents(client, query)
    assert sorted(order["stockin_no"] for order in pulled.orders) == sorted(
        order["stockin_no"] for order in orders
    )
    assert pulled.total_count == len(orders) and pulled.pages >= 3
    completed = DocumentQuery(
        PROCESS_STOCKIN, START, START + timedelta(days=1), time_type=2, status="80"
    )
    assert {order["status"] for order in pull_documents(client, completed).orders} == {80}


def test_the_stockin_window_is_by_the_time_type_asked(wdt_sim, make_wdt_client):
    [order] = stockin_day(wdt_sim, count=1)
    order.update(created="2025-02-20 09:00:00", check_time="2025-03-01 09:00:00")
    wdt_sim.app.add_orders([order], STOCKIN.name)
    client = make_wdt_client()
    by_check = DocumentQuery(PROCESS_STOCKIN, START, START + timedelta(days=1), time_type=2)
    by_created = DocumentQuery(PROCESS_STOCKIN, START, START + timedelta(days=1), time_type=1)
    assert client.count(by_check) == 1 and client.count(by_created) == 0


def test_a_bad_status_filter_is_refused_with_wdts_text(make_wdt_client):
    query = DocumentQuery(PROCESS_STOCKIN, START, START, time_type=2, status="80;10")
    with pytest.raises(WdtBusinessError, match="状态参数格式不正确"):
        make_wdt_client().query_page(query, 0)


def receipt(bill_no: str, **changes) -> dict:
    """An STK_MISCELLANEOUS model as the stock-in mapping builds it."""
    entry = {
        "FInStockType": "1",
        "FMATERIALID": {"FNumber": "MAT-001"},
        "FUnitID": {"FNumber": "Pcs"},
        "FQty": 4,
        "FBaseUnitId": {"FNumber": "Pcs"},
        "FSTOCKID": {"FNumber": "CK001"},
        "FSTOCKSTATUSID": {"FNumber": "KCZT01_SYS"},
        "FOWNERTYPEID": "BD_OwnerOrg",
        "FOWNERID": {"FNumber": "100"},
        "FKEEPERTYPEID": "BD_KeeperOrg",
        "FKEEPERID": {"FNumber": "100"},
        **changes.pop("entry", {}),
    }
    model = {
        "FBillNo": bill_no,
        "FBillTypeID": {"FNUMBER": "QTRKD01_SYS"},
        "FStockOrgId": {"FNumber": "100"},
        "FStockDirect": "GENERAL",
        "FDate": "2025-03-01",
        "FDEPTID": {"FNumber": "BM000032"},
        "FOwnerTypeIdHead": "BD_OwnerOrg",
        "FOwnerIdHead": {"FNumber": "100"},
        "FBaseCurrId": {"FNumber": "PRE001"},
        "FNOTE": f"[WDT:{bill_no}]",
        "FEntity": [entry],
        **changes,
    }
    return {key: value for key, value in model.items() if value is not None}


def test_a_receipt_is_saved_and_read_back_by_its_own_keys(kingdee_client):
    result = kingdee_client.batch_save(MISCELLANEOUS.form_id, [receipt("RK1")])
    assert result.is_success
    [record] = kingdee_client.find_bills(MISCELLANEOUS, ["RK1"], orgs=("100",))
    assert record.reference == "[WDT:RK1]"
    [entry] = kingdee_client.bill_entries(MISCELLANEOUS, [record.fid])
    assert (entry.material_number, entry.qty) == ("MAT-001", 4)
    # The 其他出库单 form holds nothing of it: a look-up there does not find it.
    assert kingdee_client.find_bills(MIS_DELIVERY, ["RK1"], orgs=("100",)) == []


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"FDEPTID": None}, "字段“部门”是必填项"),
        ({"FBillTypeID": {"FNUMBER": "QTCKD01_SYS"}}, "单据类型"),
        ({"entry": {"FInStockType": None}}, "入库类型"),
        # A key spelled as the other form spells it is not this form's field: its value is lost.
        ({"entry": {"FMATERIALID": None, "FMaterialId": {"FNumber": "MAT-001"}}}, "物料编码"),
    ],
)
def test_a_receipt_missing_what_the_form_requires_is_refused(kingdee_client, changes, refusal):
    model = receipt("RK2", **changes)
    if "entry" in changes:
        model["FEntity"] = [{k: v for k, v in model["FEntity"][0].items() if v is not None}]
    result = kingdee_client.batch_save(MISCELLANEOUS.form_id, [model])
    assert not result.is_success
    messages = [message for messages in result.errors.values() for message in messages]
    assert any(refusal in message for message in messages), messages
    assert kingdee_client.find_bills(MISCELLANEOUS, ["RK2"], orgs=("100",)) == []


def test_stockins_of_random_days_do_not_collide(wdt_sim):
    days = [DAY + timedelta(days=n) for n in random.Random(3).sample(range(60), 5)]
    catalog = build_catalog(seed=1)
    ids = [
        order["stockin_id"]
        for day in days
        for order in generate_stockin_day(day, seed=1, stockins=30, catalog=catalog)
    ]
    assert len(ids) == len(set(ids)) == 150
