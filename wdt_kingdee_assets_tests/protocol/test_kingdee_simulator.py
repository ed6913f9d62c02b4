"""The Kingdee simulator as a server: the official SDK, raw envelopes, auth, filters, admin API."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import pytest
import requests
from k3cloud_webapi_sdk.main import K3CloudApiSdk

from wdt_kingdee_assets.kingdee.errors import KingdeeQueryError
from wdt_kingdee_assets.kingdee.signing import login_sign, sdk_headers
from wdt_kingdee_assets.sandbox.faults import FaultRule
from wdt_kingdee_assets.sandbox.httpserver import SimServer
from wdt_kingdee_assets.sandbox.kingdee_server import KingdeeMaterial, KingdeeSimulator
from wdt_kingdee_assets_tests.fixtures.kingdee import (
    KingdeeSandbox,
    client_for,
    found_numbers,
    mis_delivery_bill,
)

PREFIX = "Kingdee.BOS.WebApi.ServicesStub."
BATCH_SAVE = PREFIX + "DynamicFormService.BatchSave"
QUERY = PREFIX + "DynamicFormService.ExecuteBillQuery"
LOGIN = PREFIX + "AuthService.LoginBySign"


def _url(sandbox: KingdeeSandbox, service: str) -> str:
    return f"{sandbox.base_url}{service}.common.kdsvc"


def _signed(sandbox: KingdeeSandbox, url: str, **changes: Any) -> dict[str, str]:
    creds = sandbox.credentials
    options: dict[str, Any] = {
        "acct_id": creds.acct_id,
        "username": creds.username,
        "app_id": creds.app_id,
        "app_secret": creds.app_secret,
        "lcid": creds.lcid,
        "org_num": 0,
        "timestamp": int(time.time()),
        **changes,
    }
    return sdk_headers(url, **options)


def _post(sandbox: KingdeeSandbox, service: str, body: Any, **headers: str) -> requests.Response:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(_url(sandbox, service), data=payload, headers=headers, timeout=5)


def _login(sandbox: KingdeeSandbox, timestamp: int | None = None) -> requests.Response:
    creds = sandbox.credentials
    stamp = int(time.time()) if timestamp is None else timestamp
    sign = login_sign(creds.acct_id, creds.username, creds.app_id, creds.app_secret, stamp)
    params = [creds.acct_id, creds.username, creds.app_id, str(stamp), sign, creds.lcid]
    return _post(sandbox, LOGIN, {"parameters": params})


def _session(sandbox: KingdeeSandbox) -> str:
    answer = _login(sandbox).json()
    assert answer["LoginResultType"] == 1
    return answer["KDSVCSessionId"]


def _status(body: Any) -> dict[str, Any]:
    while isinstance(body, list):
        body = body[0]
    return body["Result"]["ResponseStatus"]


# -- the official SDK, unchanged --------------------------------------------------------------


def test_official_sdk_saves_and_queries_unchanged(kingdee_sim: KingdeeSandbox) -> None:
    creds = kingdee_sim.credentials
    sdk = K3CloudApiSdk(kingdee_sim.base_url)
    sdk.InitConfig(
        creds.acct_id, creds.username, creds.app_id, creds.app_secret, kingdee_sim.base_url
    )
    data = {
        "NumberSearch": "true",
        "IsVerifyBaseDataField": "true",
        "NeedReturnFields": ["FBillNo"],
        "Model": [mis_delivery_bill("SDK-1"), mis_delivery_bill("SDK-2", [("NOPE", "Pcs", 1)])],
    }
    saved = json.loads(sdk.BatchSave("STK_MisDelivery", data))
    status = saved["Result"]["ResponseStatus"]
    assert [entity["Number"] for entity in status["SuccessEntitys"]] == ["SDK-1"]
    assert {error["DIndex"] for error in status["Errors"]} == {1}
    rows = json.loads(
        sdk.ExecuteBillQuery(
            {
                "FormId": "STK_MisDelivery",
                "FieldKeys": "FBillNo,FDate,FQty,FMaterialId.FNumber",
                "FilterString": "FBillNo = 'SDK-1'",
            }
        )
    )
    assert rows == [["SDK-1", "2025-03-01T00:00:00", 5.0, "MAT-001"]]
    assert sdk.cookiesStore.SID and kingdee_sim.app.state()["counts"]["sessions"] == 1


def test_sdk_with_a_wrong_secret_is_refused(kingdee_sim: KingdeeSandbox) -> None:
    creds = kingdee_sim.credentials
    sdk = K3CloudApiSdk(kingdee_sim.base_url)
    sdk.InitConfig(creds.acct_id, creds.username, creds.app_id, "nope", kingdee_sim.base_url)
    answer = json.loads(sdk.ExecuteBillQuery({"FormId": "BD_STOCK", "FieldKeys": "FNumber"}))
    assert _status(answer)["MsgCode"] == 1


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    ["X-Kd-Signature", "X-Api-Signature", "X-Kd-Appkey", "username", "lcid", "nothing"],
)
def test_signature_checks(kingdee_sim: KingdeeSandbox, tamper: str) -> None:
    url = _url(kingdee_sim, QUERY)
    changes: dict[str, Any] = {}
    if tamper == "username":
        changes["username"] = "someone_else"
    if tamper == "lcid":
        changes["lcid"] = 1033
    headers = _signed(kingdee_sim, url, **changes)
    if tamper in headers:
        headers[tamper] = base64.b64encode(b"0" * 64).decode()
    body = {"data": {"FormId": "BD_STOCK", "FieldKeys": "FNumber"}}
    response = requests.post(url, json=body, headers=headers, timeout=5)
    assert response.status_code == 200
    cookies = response.headers["Set-Cookie"]
    assert "kdservice-sessionid=" in cookies and "ASP.NET_SessionId=" in cookies
    if tamper == "nothing":
        assert response.json() == [["CK001"], ["CK001"], ["CK002"], ["CK002"]]
    else:
        assert _status(response.json())["MsgCode"] == 1
        assert _status(response.json())["Errors"][0]["Message"] == "会话信息已丢失，请重新登录"


def test_unknown_data_center_is_http_500_text(kingdee_sim: KingdeeSandbox) -> None:
    url = _url(kingdee_sim, QUERY)
    headers = _signed(kingdee_sim, url, acct_id="no_such_acct")
    response = requests.post(url, json={"data": {}}, headers=headers, timeout=5)
    assert response.status_code == 500
    assert response.text == "Fail to verify thirty passport"


def test_no_credentials_no_session_is_msgcode_1(kingdee_sim: KingdeeSandbox) -> None:
    response = _post(kingdee_sim, BATCH_SAVE, {"formid": "STK_MisDelivery", "data": {}})
    assert _status(response.json())["MsgCode"] == 1
    assert kingdee_sim.app.bills() == []


def test_login_by_sign(kingdee_sim: KingdeeSandbox) -> None:
    response = _login(kingdee_sim)
    answer = response.json()
    assert answer["LoginResultType"] == 1 and answer["IsSuccessByAPI"] is True
    assert response.cookies["kdservice-sessionid"] == answer["KDSVCSessionId"]
    assert response.cookies.get("ASP.NET_SessionId")
    stale = _login(kingdee_sim, timestamp=int(time.time()) - 3600).json()
    assert stale["LoginResultType"] != 1 and not stale["KDSVCSessionId"]
    creds = kingdee_sim.credentials
    forged = _post(
        kingdee_sim,
        LOGIN,
        {"parameters": [creds.acct_id, creds.username, creds.app_id, int(time.time()), "ab", 2052]},
    ).json()
    assert forged["LoginResultType"] != 1


def test_three_envelopes_and_string_data(kingdee_sim: KingdeeSandbox) -> None:
    """SDK, positional and legacy ApiClient bodies; ``data`` as object or JSON string."""
    sid = _session(kingdee_sim)
    cookie = {"kdservice-sessionid": sid}
    model = json.dumps({"Model": [mis_delivery_bill("ENV-1")]})
    positional = {"parameters": ["STK_MisDelivery", model]}
    saved = requests.post(_url(kingdee_sim, BATCH_SAVE), json=positional, cookies=cookie, timeout=5)
    assert _status(saved.json())["IsSuccess"] is True
    legacy = {
        "format": 1,
        "useragent": "ApiClient",
        "rid": "8a4f",
        "parameters": [json.dumps({"FormId": "STK_MisDelivery", "FieldKeys": "FBillNo"})],
        "timestamp": "2025-03-01 10:00:00",
        "v": "1.0",
    }
    rows = _post(kingdee_sim, QUERY, legacy, **{"kdservice-sessionid": sid}).json()
    assert rows == [["ENV-1"]]
    sdk_style = {"data": json.dumps({"FormId": "STK_MisDelivery", "FieldKeys": "FBillNo"})}
    assert _post(kingdee_sim, QUERY, sdk_style, **{"kdservice-sessionid": sid}).json() == rows


def test_service_paths_match_case_insensitively(kingdee_sim: KingdeeSandbox) -> None:
    sid = _session(kingdee_sim)
    url = kingdee_sim.base_url.replace("/k3cloud/", "/K3Cloud/") + QUERY.lower() + ".common.kdsvc"
    body = {
        "data": {
            "FormId": "bd_stock",
            "FieldKeys": "fnumber",
            "FilterString": "FUseOrgId.FNumber='100'",
        }
    }
    rows = requests.post(url, json=body, headers={"kdservice-sessionid": sid}, timeout=5).json()
    assert rows == [["CK001"], ["CK002"]]


# -- BatchSave validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "field", "message"),
    [
        (
            mis_delivery_bill("V-1", [("MAT-001", "kg", 1)]),
            "FUnitID",
            "第1行字段“单位”的值“kg”与物料“MAT-001”的基本单位“Pcs”不一致。",
        ),
        (
            mis_delivery_bill("V-2", [("MAT-002", "kg", 1)]),
            "FLot",
            "第1行物料“MAT-002”启用了批号管理，字段“批号”是必填项。",
        ),
        (
            mis_delivery_bill("V-3", [("MAT-001", "Pcs", 0)]),
            "FQty",
            "第1行字段“实发数量”必须大于0。",
        ),
        (
            mis_delivery_bill("V-4", stock="CK999"),
            "FStockId",
            "第1行字段“发货仓库”的值“CK999”在系统中不存在或已禁用。",
        ),
        (
            mis_delivery_bill("V-5", [("MAT-OLD", "Pcs", 1)]),
            "FMaterialId",
            "第1行字段“物料编码”的值“MAT-OLD”在系统中不存在或已禁用。",
        ),
        (
            mis_delivery_bill("V-6", [("MAT-NEW", "Pcs", 1)]),
            "FMaterialId",
            "第1行字段“物料编码”的值“MAT-NEW”在系统中不存在或已禁用。",
        ),
        (
            mis_delivery_bill("V-7", FDeptId={"FNumber": "BM999"}),
            "FDeptId",
            "字段“领料部门”的值“BM999”在系统中不存在或已禁用。",
        ),
        (mis_delivery_bill("V-8", FDeptId=None), "FDeptId", "字段“领料部门”是必填项。"),
        (
            mis_delivery_bill("V-9", FDate="01/03/2025"),
            "FDate",
            "字段“日期”的值“01/03/2025”格式不正确。",
        ),
        (mis_delivery_bill("V-10", FStockOrgId={"FNumber": "999"}), "FStockOrgId", "库存组织"),
        (mis_delivery_bill("V-11", FBaseCurrId=None), "FBaseCurrId", "字段“本位币”是必填项。"),
        (mis_delivery_bill("V-12", FEntity=[]), "FEntity", "至少需要一行分录"),
    ],
)
def test_batch_save_validation(
    kingdee_sim: KingdeeSandbox, model: dict, field: str, message: str
) -> None:
    if model.get("FDeptId", "") is None:
        del model["FDeptId"]
    if model.get("FBaseCurrId", "") is None:
        del model["FBaseCurrId"]
    client = client_for(kingdee_sim)
    result = client.batch_save("STK_MisDelivery", [mis_delivery_bill("GOOD"), model])
    assert [bill.dindex for bill in result.saved] == [0]
    errors = _status(result.raw)["Errors"]
    assert {error["DIndex"] for error in errors} == {1}
    assert any(error["FieldName"] == field and message in error["Message"] for error in errors)
    assert _status(result.raw)["ErrorCode"] == 500 and result.msg_code == 11


def test_material_in_another_use_org_does_not_count(kingdee_sim: KingdeeSandbox) -> None:
    kingdee_sim.app.add_material(KingdeeMaterial("MAT-200", "只在200", "Pcs", use_org="200"))
    client = client_for(kingdee_sim)
    assert not client.batch_save(
        "STK_MisDelivery", [mis_delivery_bill("ORG-1", [("MAT-200", "Pcs", 1)])]
    ).saved
    other = mis_delivery_bill("ORG-2", [("MAT-200", "Pcs", 1)], org="200")
    assert client.batch_save("STK_MisDelivery", [other]).is_success


def test_concurrent_saves_of_one_bill_number_store_it_once(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim)
    results = []

    def save() -> None:
        results.append(client.batch_save("STK_MisDelivery", [mis_delivery_bill("RACE-1")]))

    threads = [threading.Thread(target=save) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(result.saved) for result in results) == 1
    assert [bill["FBillNo"] for bill in kingdee_sim.app.bills()] == ["RACE-1"]


def test_auto_numbering_and_bills_view(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim)
    result = client.batch_save(
        "STK_MisDelivery", [mis_delivery_bill(None, [("MAT-002", "kg", "2.5")], lot="L1")]
    )
    assert result.saved[0].number == "QTCK000001"
    assert kingdee_sim.app.bills() == [
        {
            "FormId": "STK_MisDelivery",
            "FID": result.saved[0].fid,
            "FBillNo": "QTCK000001",
            "FDate": "2025-03-01T00:00:00",
            "FDocumentStatus": "A",
            "FStockOrgId": "100",
            "FBillTypeID": "QTCKD01_SYS",
            "FNote": "WDT None",
            "entries": [
                {"material": "MAT-002", "qty": "2.5", "unit": "kg", "stock": "CK001", "lot": "L1"}
            ],
        }
    ]


def test_a_custom_header_field_is_stored_and_queryable_and_an_unknown_one_is_not(
    kingdee_sim: KingdeeSandbox,
) -> None:
    app = KingdeeSimulator(
        kingdee_sim.credentials,
        materials=[KingdeeMaterial("MAT-001", "螺丝", "Pcs")],
        warehouses=["CK001"],
        custom_header_fields=["F_PAEZ_SourceRef"],
    )
    with SimServer(app) as server:
        sandbox = KingdeeSandbox(
            app, server, server.root_url + "/k3cloud/", kingdee_sim.credentials
        )
        client = client_for(sandbox)
        model = {**mis_delivery_bill("CUS-1"), "F_PAEZ_SourceRef": "[WDT:X]", "F_PAEZ_Typo": "y"}
        assert client.batch_save("STK_MisDelivery", [model]).is_success
        assert client.execute_bill_query("STK_MisDelivery", ["F_PAEZ_SourceRef"]) == [["[WDT:X]"]]
        assert "F_PAEZ_Typo" not in app.bills()[0]
        with pytest.raises(KingdeeQueryError, match="F_PAEZ_Typo"):
            client.execute_bill_query("STK_MisDelivery", ["F_PAEZ_Typo"])


# -- ExecuteBillQuery -------------------------------------------------------------------------


@pytest.fixture
def three_bills(kingdee_sim: KingdeeSandbox) -> KingdeeSandbox:
    client = client_for(kingdee_sim)
    models = [
        mis_delivery_bill("Q-1", [("MAT-001", "Pcs", 1), ("MAT-003", "Pcs", 2)]),
        mis_delivery_bill("Q-2", FDate="2025-03-02"),
        mis_delivery_bill("Q-3", [("MAT-002", "kg", "0.5")], lot="L9", FNote="it's fine"),
    ]
    assert client.batch_save("STK_MisDelivery", models).is_success
    return kingdee_sim


@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("", ["Q-1", "Q-2", "Q-3"]),
        ("FBillNo = 'Q-1' or FBillNo = 'Q-3'", ["Q-1", "Q-3"]),
        ("FBillNo <> 'Q-1' and (FDate = '2025-03-02' or FNote = 'it''s fine')", ["Q-2", "Q-3"]),
        ("fbillno in ('q-2','Q-9')", ["Q-2"]),
        ("FBillNo not in ('Q-2') and FDate >= '2025-03-01'", ["Q-1", "Q-3"]),
        ("FID > 0 and FDocumentStatus = 'A'", ["Q-1", "Q-2", "Q-3"]),
        # the bills' FIDs are 100001…: a number IN-list, its literals numbers or number text
        ("FID in (100001, 100003.0, 999)", ["Q-1", "Q-3"]),
        ("FID not in (100002)", ["Q-1", "Q-3"]),
        ("FID in ('100002')", ["Q-2"]),
        ("FBillNo = 'Q-1'' or ''1''=''1'", []),
        ("FBillNo = 'X'' or FBillNo<>'''", []),
    ],
)
def test_filter_strings(
    three_bills: KingdeeSandbox, filter_string: str, expected: list[str]
) -> None:
    sid = _session(three_bills)
    body = {
        "data": {"FormId": "STK_MisDelivery", "FieldKeys": "FBillNo", "FilterString": filter_string}
    }
    rows = _post(three_bills, QUERY, body, **{"kdservice-sessionid": sid}).json()
    assert [row[0] for row in rows] == expected


@pytest.mark.parametrize(
    ("data", "msg_code", "message"),
    [
        (
            {"FieldKeys": "FBillNo", "FilterString": "FBillNo = 'unterminated"},
            4,
            "GetRealExpress error",
        ),
        ({"FieldKeys": "FBillNo", "FilterString": "FBillNo = 'a' or"}, 4, "GetRealExpress error"),
        ({"FieldKeys": "FBillNo", "FilterString": "FBillNo ~ 'a'"}, 4, "GetRealExpress error"),
        ({"FieldKeys": "FBillNo", "FilterString": "FDate = 'soon'"}, 4, "GetRealExpress error"),
        (
            {"FieldKeys": "FBillNo", "FilterString": "FID in (100001, 'x')"},
            4,
            "GetRealExpress error",
        ),
        ({"FieldKeys": "FBillNo,FNoSuchField"}, 9, "元数据中标识为FNoSuchField的字段不存在"),
        ({"FieldKeys": ""}, 8, "data数据包中的参数FieldKeys的值不能为空。"),
        (
            {"FieldKeys": "FBillNo", "FormId": "NO_SUCH_FORM"},
            4,
            "标识为“NO_SUCH_FORM”的业务对象不存在，或者被删除。",
        ),
    ],
)
def test_query_errors_are_wrapped_envelopes(
    three_bills: KingdeeSandbox, data: dict, msg_code: int, message: str
) -> None:
    sid = _session(three_bills)
    body = {"data": {"FormId": "STK_MisDelivery", **data}}
    answer = _post(three_bills, QUERY, body, **{"kdservice-sessionid": sid}).json()
    assert isinstance(answer, list) and isinstance(answer[0], list)
    status = _status(answer)
    assert status["IsSuccess"] is False and status["MsgCode"] == msg_code
    assert message in status["Errors"][0]["Message"]


def test_entry_fields_give_one_row_per_line_and_paging(three_bills: KingdeeSandbox) -> None:
    sid = _session(three_bills)
    keys = (
        "FBillNo,FEntity_FSeq,FMaterialId.FNumber,FQty,"
        "FUnitID.FNumber,FStockId.FNumber,FLot.FNumber,FDate"
    )
    body = {"data": {"FormId": "STK_MisDelivery", "FieldKeys": keys, "OrderString": "FBillNo desc"}}
    rows = _post(three_bills, QUERY, body, **{"kdservice-sessionid": sid}).json()
    assert rows == [
        ["Q-3", 1, "MAT-002", 0.5, "kg", "CK001", "L9", "2025-03-01T00:00:00"],
        ["Q-2", 1, "MAT-001", 5.0, "Pcs", "CK001", None, "2025-03-02T00:00:00"],
        ["Q-1", 1, "MAT-001", 1.0, "Pcs", "CK001", None, "2025-03-01T00:00:00"],
        ["Q-1", 2, "MAT-003", 2.0, "Pcs", "CK001", None, "2025-03-01T00:00:00"],
    ]
    paged = {"data": {**body["data"], "StartRow": 1, "Limit": 2}}
    assert _post(three_bills, QUERY, paged, **{"kdservice-sessionid": sid}).json() == rows[1:3]
    beyond = {"data": {**body["data"], "StartRow": 10}}
    assert _post(three_bills, QUERY, beyond, **{"kdservice-sessionid": sid}).json() == []


def test_material_query_has_one_row_per_use_org(kingdee_sim: KingdeeSandbox) -> None:
    sid = _session(kingdee_sim)
    keys = (
        "FMATERIALID,FNumber,FName,FForbidStatus,FDocumentStatus,"
        "FBaseUnitId.FNumber,FUseOrgId.FNumber"
    )
    body = {
        "data": {"FormId": "BD_MATERIAL", "FieldKeys": keys, "FilterString": "FNumber='MAT-001'"}
    }
    rows = _post(kingdee_sim, QUERY, body, **{"kdservice-sessionid": sid}).json()
    assert [(row[1], row[3], row[4], row[5], row[6]) for row in rows] == [
        ("MAT-001", "A", "C", "Pcs", "100"),
        ("MAT-001", "A", "C", "Pcs", "200"),
    ]
    assert rows[0][0] != rows[1][0]


# -- admin API and fault plumbing -------------------------------------------------------------


def test_admin_api(kingdee_sim: KingdeeSandbox) -> None:
    root = kingdee_sim.server.root_url
    client = client_for(kingdee_sim)
    client.batch_save("STK_MisDelivery", [mis_delivery_bill("ADM-1")])
    state = requests.get(f"{root}/__admin__/state", timeout=5).json()
    assert state["counts"]["bills"] == 1 and state["bills"][0]["FBillNo"] == "ADM-1"
    assert state["calls"] == {"BatchSave": 1} and state["materials"] == 6

    material = {"number": "MAT-009", "name": "新物料", "base_unit": "Pcs"}
    assert requests.post(f"{root}/__admin__/materials", json=material, timeout=5).status_code == 200
    assert client.find_materials(["MAT-009"], "100")["MAT-009"].usable
    bad_material = requests.post(f"{root}/__admin__/materials", json={"number": "X"}, timeout=5)
    assert bad_material.status_code == 400 and "base_unit" in bad_material.json()["error"]

    ok = requests.post(
        f"{root}/__admin__/faults", json={"rules": ["5xx_after_commit@BatchSave"]}, timeout=5
    )
    assert ok.status_code == 200
    for bad in (["nonsense"], ["insert_rows@BatchSave"], ["5xx@Nope"], ["5xx,times=0"], "x"):
        refused = requests.post(f"{root}/__admin__/faults", json={"rules": bad}, timeout=5)
        assert refused.status_code == 400 and refused.json()["error"]
    assert len(kingdee_sim.app.faults.snapshot()["rules"]) == 1
    assert requests.delete(f"{root}/__admin__/faults", timeout=5).json() == {"ok": True}
    assert kingdee_sim.app.faults.snapshot()["rules"] == []

    assert requests.post(f"{root}/__admin__/reset", timeout=5).json() == {"ok": True}
    state = requests.get(f"{root}/__admin__/state", timeout=5).json()
    assert state["counts"]["bills"] == 0 and state["calls"] == {} and state["materials"] == 7


def test_fault_counting_skip_and_times(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim)
    kingdee_sim.app.faults.add(FaultRule.parse("5xx@ExecuteBillQuery,skip=1,times=1"))
    found_numbers(client, ["A"])
    found_numbers(client, ["B"])
    assert client.stats.retries == 1
    fired = kingdee_sim.app.state()["faults"]["fired"]
    assert fired == [{"kind": "5xx", "operation": "ExecuteBillQuery"}]


def test_a_bill_may_name_only_a_department_its_org_uses(kingdee_sim: KingdeeSandbox) -> None:
    """BD_Department per org: the branch's department on a main-org bill is as unknown as a
    department that does not exist; on the branch's own bill it is accepted."""
    app = KingdeeSimulator(
        kingdee_sim.credentials,
        materials=[
            KingdeeMaterial("MAT-001", "螺丝", "Pcs", use_org=org) for org in ("100", "200")
        ],
        warehouses=["CK001"],
        orgs=("100", "200"),
        departments={"BM000032": ["100"], "BM000200": ["200"]},
    )
    with SimServer(app) as server:
        client = client_for(
            KingdeeSandbox(app, server, server.root_url + "/k3cloud/", kingdee_sim.credentials)
        )
        result = client.batch_save(
            "STK_MisDelivery",
            [
                mis_delivery_bill("DEP-1", FDeptId={"FNumber": "BM000200"}),
                mis_delivery_bill("DEP-2", org="200", FDeptId={"FNumber": "BM000200"}),
                mis_delivery_bill("DEP-3"),
            ],
        )
    assert [bill.number for bill in result.saved] == ["DEP-2", "DEP-3"]
    assert result.errors[0] == ["FDeptId: 字段“领料部门”的值“BM000200”在系统中不存在或已禁用。"]


def test_latency_and_concurrency_limit(kingdee_sim: KingdeeSandbox) -> None:
    app = KingdeeSimulator(
        kingdee_sim.credentials, warehouses=["CK001"], per_bill_latency=0.05, max_concurrency=2
    )
    with SimServer(app) as server:
        sandbox = KingdeeSandbox(
            app, server, server.root_url + "/k3cloud/", kingdee_sim.credentials
        )
        client = client_for(sandbox)
        threads = [
            threading.Thread(
                target=client.batch_save, args=("STK_MisDelivery", [{"FBillNo": f"L{n}"}] * 2)
            )
            for n in range(5)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
    assert app.state()["peak_concurrency"] == 2
    assert elapsed >= 0.25  # 5 calls × 0.1 s of bill latency, 2 at a time


def test_a_warehouse_of_one_stock_org_cannot_be_named_by_another() -> None:
    app = KingdeeSimulator(
        materials=[
            KingdeeMaterial("MAT-001", "螺丝", "Pcs", use_org=org) for org in ("100", "200")
        ],
        warehouses=("CK001", "CK004"),
        orgs=("100", "200"),
        warehouse_orgs={"CK004": "200"},
    )
    with SimServer(app) as server:
        client = client_for(
            KingdeeSandbox(app, server, server.root_url + "/k3cloud/", app.credentials)
        )
        refused = client.batch_save(
            "STK_MisDelivery", [mis_delivery_bill("ORG-100", stock="CK004")]
        )
        assert not refused.saved and "CK004" in refused.errors[0][0]
        assert client.batch_save(
            "STK_MisDelivery", [mis_delivery_bill("ORG-200", stock="CK004", org="200")]
        ).is_success
        # BD_STOCK lists the warehouse in its own org only.
        rows = client.execute_bill_query("BD_STOCK", ["FNumber", "FUseOrgId.FNumber"], "")
        assert sorted(map(tuple, rows)) == [("CK001", "100"), ("CK001", "200"), ("CK004", "200")]
