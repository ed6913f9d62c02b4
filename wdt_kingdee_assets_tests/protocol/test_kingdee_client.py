"""KingdeeClient against the simulator over real HTTP: writes, reads, faults, auth modes."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pytest

from wdt_kingdee_assets.kingdee.client import KingdeeClient
from wdt_kingdee_assets.kingdee.errors import (
    KingdeeAuthError,
    KingdeeError,
    KingdeeProtocolError,
    KingdeeQueryError,
    KingdeeSessionLost,
    KingdeeTransientError,
    KingdeeUnknownOutcome,
)
from wdt_kingdee_assets.kingdee.filters import field_eq
from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY
from wdt_kingdee_assets.sandbox.faults import FaultRule
from wdt_kingdee_assets_tests.fixtures.kingdee import (
    KingdeeSandbox,
    client_for,
    found_numbers,
    mis_delivery_bill,
)

FORM = MIS_DELIVERY.form_id


def _fault(sandbox: KingdeeSandbox, text: str) -> None:
    sandbox.app.faults.add(FaultRule.parse(text))


# -- BatchSave -------------------------------------------------------------------------------


def test_one_bad_bill_does_not_sink_its_batch(kingdee_client: KingdeeClient) -> None:
    models = [
        mis_delivery_bill("QTCK-1"),
        mis_delivery_bill("QTCK-2", [("MAT-404", "Pcs", 1)]),
        mis_delivery_bill("QTCK-3", [("MAT-002", "kg", Decimal("2.5"))], lot="L2025"),
    ]
    result = kingdee_client.batch_save(FORM, models)
    assert not result.is_success
    assert result.msg_code == 11
    assert [(bill.dindex, bill.number) for bill in result.saved] == [(0, "QTCK-1"), (2, "QTCK-3")]
    assert list(result.errors) == [1]
    assert result.errors[1] == [
        "FMaterialId: 第1行字段“物料编码”的值“MAT-404”在系统中不存在或已禁用。"
    ]
    assert result.unanswered(len(models)) == []
    found = found_numbers(kingdee_client, ["QTCK-1", "QTCK-2", "QTCK-3"])
    assert set(found) == {"QTCK-1", "QTCK-3"}
    assert found["QTCK-1"] == [result.saved[0].fid]


def test_all_good_batch_is_a_success(kingdee_client: KingdeeClient) -> None:
    result = kingdee_client.batch_save(FORM, [mis_delivery_bill("OK-1"), mis_delivery_bill("OK-2")])
    assert result.is_success and result.msg_code == 0 and result.errors == {}
    assert result.raw["Result"]["NeedReturnData"] == [{"FBillNo": "OK-1"}, {"FBillNo": "OK-2"}]


def test_duplicate_bill_number_is_rejected(kingdee_client: KingdeeClient) -> None:
    assert kingdee_client.batch_save(FORM, [mis_delivery_bill("DUP-1")]).is_success
    again = kingdee_client.batch_save(
        FORM, [mis_delivery_bill("DUP-1"), mis_delivery_bill("dup-1"), mis_delivery_bill("DUP-2")]
    )
    assert [bill.number for bill in again.saved] == ["DUP-2"]
    assert again.errors[0] == ["FBillNo: 单据编号“DUP-1”已经存在，不允许重复保存。"]
    assert 1 in again.errors  # Kingdee's collation is case-insensitive
    within = kingdee_client.batch_save(
        FORM, [mis_delivery_bill("DUP-3"), mis_delivery_bill("DUP-3")]
    )
    assert [bill.dindex for bill in within.saved] == [0] and list(within.errors) == [1]
    assert found_numbers(kingdee_client, ["DUP-1", "DUP-3"]) == {
        "DUP-1": [within.saved[0].fid - 2],
        "DUP-3": [within.saved[0].fid],
    }


@pytest.mark.parametrize(
    ("rule", "cause", "committed"),
    [
        ("5xx_after_commit@BatchSave", "http_5xx", True),
        ("5xx@BatchSave", "http_5xx", False),
        ("reset_after_commit@BatchSave", "connection", True),
        ("reset@BatchSave", "connection", False),
        ("timeout_after_commit@BatchSave,seconds=1", "timeout", True),
        ("truncated_json@BatchSave", "malformed", True),
        ("html_error@BatchSave", "malformed", False),
        ("empty_body@BatchSave", "malformed", False),
        ("throttle@BatchSave", "throttled", False),
    ],
)
def test_a_write_without_a_usable_answer_is_an_unknown_outcome(
    kingdee_sim: KingdeeSandbox, rule: str, cause: str, committed: bool
) -> None:
    client = client_for(kingdee_sim, write_timeout=0.3)
    _fault(kingdee_sim, rule)
    with pytest.raises(KingdeeUnknownOutcome) as caught:
        client.batch_save(FORM, [mis_delivery_bill("UNK-1")])
    assert caught.value.cause == cause
    assert client.stats.calls == 1, "a write is never retried"
    found = found_numbers(client, ["UNK-1"])
    assert ("UNK-1" in found) is committed


def test_options_override_the_defaults(kingdee_client: KingdeeClient) -> None:
    """Without IsVerifyBaseDataField a disabled material slips through, as in Kingdee."""
    model = mis_delivery_bill("OPT-1", [("MAT-OLD", "Pcs", 1)])
    assert not kingdee_client.batch_save(FORM, [model]).is_success
    loose = kingdee_client.batch_save(FORM, [model], options={"IsVerifyBaseDataField": False})
    assert loose.is_success


def test_bill_entries_read_back_quantities(kingdee_client: KingdeeClient) -> None:
    lines = [("MAT-001", "Pcs", 3), ("MAT-003", "Pcs", Decimal("1.25")), ("MAT-001", "Pcs", 2)]
    saved = kingdee_client.batch_save(
        FORM, [mis_delivery_bill("RB-1", lines), mis_delivery_bill("RB-2")]
    )
    fids = [bill.fid for bill in saved.saved]
    entries = kingdee_client.bill_entries(MIS_DELIVERY, [*fids, 999_999])
    assert [(entry.bill_no, entry.material_number, entry.qty) for entry in entries] == [
        ("RB-1", "MAT-001", Decimal(3)),
        ("RB-1", "MAT-003", Decimal("1.25")),
        ("RB-1", "MAT-001", Decimal(2)),
        ("RB-2", "MAT-001", Decimal(5)),
    ]
    assert all(isinstance(entry.qty, Decimal) for entry in entries)


def test_read_back_packs_in_lists_to_one_page_each(kingdee_sim: KingdeeSandbox) -> None:
    """Six bills of two lines, pages of five rows: lists of two bills (four rows, a short page
    that proves the list complete) read everything in three calls, where fixed lists of three
    bills would need two pages each."""
    writer = client_for(kingdee_sim)
    bills = [f"PK-{n}" for n in range(6)]
    lines = [("MAT-001", "Pcs", 1), ("MAT-003", "Pcs", 2)]
    saved = writer.batch_save(FORM, [mis_delivery_bill(no, lines) for no in bills])
    assert saved.is_success
    fids = [bill.fid for bill in saved.saved]

    packed = client_for(kingdee_sim, in_list_size=3, page_limit=5)
    entries = packed.bill_entries(MIS_DELIVERY, fids, dict.fromkeys(fids, 2))
    assert packed.stats.calls == 3
    fixed = client_for(kingdee_sim, in_list_size=3, page_limit=5)
    assert fixed.bill_entries(MIS_DELIVERY, fids) == entries
    assert fixed.stats.calls == 4
    assert sorted((entry.bill_no, entry.qty) for entry in entries) == sorted(
        (no, Decimal(qty)) for no in bills for qty in (1, 2)
    )


@pytest.mark.parametrize(
    ("code", "words"), [(2, "没有权限"), (4, "异常"), (6, "数据库"), (7, "许可")]
)
def test_a_call_level_refusal_blames_no_bill(
    kingdee_sim: KingdeeSandbox, code: int, words: str
) -> None:
    """Kingdee refuses the call itself with DIndex 0: that is not bill 0's rejection."""
    _fault(kingdee_sim, f"call_error@BatchSave,code={code}")
    client = client_for(kingdee_sim)
    result = client.batch_save(FORM, [mis_delivery_bill("CALL-1"), mis_delivery_bill("CALL-2")])
    assert result.call_failed and result.msg_code == code
    assert result.errors == {} and result.saved == []
    assert len(result.call_errors) == 1 and words in result.call_errors[0]
    assert found_numbers(client, ["CALL-1", "CALL-2"]) == {}


def test_a_renumbering_coding_rule_answers_with_its_own_number(kingdee_sim: KingdeeSandbox) -> None:
    kingdee_sim.app.numbering = "auto"
    client = client_for(kingdee_sim)
    result = client.batch_save(FORM, [mis_delivery_bill("OURS-1"), mis_delivery_bill("OURS-2")])
    assert [bill.number for bill in result.saved] == ["QTCK000001", "QTCK000002"]
    assert found_numbers(client, ["OURS-1", "OURS-2"]) == {}
    [first, second] = client.find_bills(
        MIS_DELIVERY, [], orgs=("100",), day=date(2025, 3, 1), bill_type="QTCKD01_SYS"
    )
    assert (first.number, first.reference) == ("QTCK000001", "WDT OURS-1")
    assert (second.fid, second.document_status) == (result.saved[1].fid, "A")


def test_look_ups_are_scoped_to_the_stock_org_day_and_bill_type(
    kingdee_sim: KingdeeSandbox,
) -> None:
    kingdee_sim.app.unique_bill_no = False  # a coding rule that numbers per org
    client = client_for(kingdee_sim)
    saved = client.batch_save(
        FORM,
        [
            mis_delivery_bill("ORG-1"),
            mis_delivery_bill("ORG-1", org="200"),  # the same number in another org
            mis_delivery_bill("ORG-2", FDate="2025-03-02"),
        ],
    )
    assert len(saved.saved) == 3
    assert [
        r.number for r in client.find_bills(MIS_DELIVERY, ["ORG-1", "ORG-2"], orgs=("100",))
    ] == [
        "ORG-1",
        "ORG-2",
    ]
    assert [r.fid for r in client.find_bills(MIS_DELIVERY, ["ORG-1"], orgs=("200",))] == [
        saved.saved[1].fid
    ]

    def on(day: date, bill_type: str = "QTCKD01_SYS", numbers: tuple[str, ...] = ()) -> list[str]:
        records = client.find_bills(
            MIS_DELIVERY, list(numbers), orgs=("100",), day=day, bill_type=bill_type
        )
        return [record.number for record in records]

    assert on(date(2025, 3, 1)) == ["ORG-1"]
    assert on(date(2025, 3, 1), "QTCKD02_SYS") == []
    before = client.stats.calls
    assert on(date(2025, 3, 1), numbers=("ORG-2", "ORG-1")) == ["ORG-1", "ORG-2"]
    assert client.stats.calls - before == 1, "the day and the numbers come in one query"


def test_paged_look_ups_order_by_their_key(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim, page_limit=3)
    numbers = [f"ORD-{n}" for n in range(8)]
    assert client.batch_save(FORM, [mis_delivery_bill(no) for no in reversed(numbers)]).saved
    records = client.find_bills(MIS_DELIVERY, numbers, orgs=("100",))
    assert [r.fid for r in records] == sorted(r.fid for r in records)
    assert sorted(r.number for r in records) == numbers
    queries = [q for q in kingdee_sim.app.queries() if q["FormId"] == FORM]
    assert queries and all(q["OrderString"] == "FID" for q in queries)


# -- reads -----------------------------------------------------------------------------------


def test_find_materials_tells_missing_disabled_and_usable_apart(
    kingdee_client: KingdeeClient,
) -> None:
    found = kingdee_client.find_materials(
        ["MAT-001", "MAT-002", "MAT-OLD", "MAT-NEW", "NOPE"], "100"
    )
    assert set(found) == {"MAT-001", "MAT-002", "MAT-OLD", "MAT-NEW"}
    assert found["MAT-001"].usable and found["MAT-001"].base_unit == "Pcs"
    assert found["MAT-002"].usable and found["MAT-002"].base_unit == "kg"
    assert found["MAT-002"].batch_managed and not found["MAT-001"].batch_managed
    assert found["MAT-OLD"].forbidden and not found["MAT-OLD"].usable
    assert found["MAT-NEW"].document_status == "A" and not found["MAT-NEW"].usable
    assert set(kingdee_client.find_materials(["MAT-001", "MAT-002"], "200")) == {"MAT-001"}


def test_chunked_lookups(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim, in_list_size=2)
    client.batch_save(FORM, [mis_delivery_bill(f"CH-{n}") for n in range(5)])
    before = client.stats.calls
    found = found_numbers(client, [f"CH-{n}" for n in range(5)] + ["CH-0"])
    assert sorted(found) == [f"CH-{n}" for n in range(5)]
    assert client.stats.calls - before == 3


def test_paging_returns_every_row_once(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim, page_limit=2000)
    for batch in range(3):
        models = [
            mis_delivery_bill(f"PG-{batch}-{n}", [("MAT-001", "Pcs", n + 1)] * 100)
            for n in range(15)
        ]
        assert client.batch_save(FORM, models).is_success
    before = client.stats.calls
    rows = client.execute_bill_query(FORM, ["FEntity_FEntryId", "FBillNo", "FQty"])
    assert len(rows) == 4500
    assert len({row[0] for row in rows}) == 4500
    assert client.stats.calls - before == 3  # 2000 + 2000 + 500
    wide = client_for(kingdee_sim, page_limit=3000)
    assert len(wide.execute_bill_query(FORM, ["FEntity_FEntryId"])) == 4500
    assert wide.stats.calls == 3  # 3000 + 1500 + an empty page: short pages are not trusted


def test_a_quote_in_a_bill_number_cannot_widen_the_query(kingdee_client: KingdeeClient) -> None:
    kingdee_client.batch_save(FORM, [mis_delivery_bill("SAFE-1"), mis_delivery_bill("SAFE-2")])
    hostile = "X' or FBillNo<>'"
    assert found_numbers(kingdee_client, [hostile]) == {}
    assert kingdee_client.execute_bill_query(FORM, ["FID"], field_eq("FBillNo", hostile)) == []
    assert found_numbers(kingdee_client, ["SAFE-1' --", "SAFE-1"]) == {
        "SAFE-1": found_numbers(kingdee_client, ["SAFE-1"])["SAFE-1"]
    }
    saved = kingdee_client.batch_save(FORM, [mis_delivery_bill("O'Brien-1")])
    assert found_numbers(kingdee_client, ["O'Brien-1"]) == {"O'Brien-1": [saved.saved[0].fid]}


@pytest.mark.parametrize(
    ("form", "keys", "filter_string", "msg_code", "message"),
    [
        (FORM, ["FBillNo"], "FBillNo in ('A'", 4, "GetRealExpress error"),
        (FORM, ["FNoSuchField"], "", 9, "元数据中标识为FNoSuchField的字段不存在"),
        (FORM, ["FBillNo"], "FNoSuchField = 1", 9, "元数据中标识为FNoSuchField的字段不存在"),
        ("NO_SUCH_FORM", ["FID"], "", 4, "标识为“NO_SUCH_FORM”的业务对象不存在，或者被删除。"),
    ],
)
def test_bad_queries_raise_query_errors_with_kingdees_message(
    kingdee_client: KingdeeClient,
    form: str,
    keys: list[str],
    filter_string: str,
    msg_code: int,
    message: str,
) -> None:
    with pytest.raises(KingdeeQueryError) as caught:
        kingdee_client.execute_bill_query(form, keys, filter_string)
    assert caught.value.msg_code == msg_code
    assert message in caught.value.messages[0]
    assert kingdee_client.stats.calls == 1, "a bad query is not retried"


@pytest.mark.parametrize(
    "rule",
    [
        "5xx@ExecuteBillQuery,times=2",
        "reset@ExecuteBillQuery",
        "throttle@ExecuteBillQuery,times=2",
        "html_error@ExecuteBillQuery",
        "empty_body@ExecuteBillQuery",
        "truncated_json@ExecuteBillQuery",
        "timeout@ExecuteBillQuery,seconds=1",
    ],
)
def test_reads_retry_transient_failures(kingdee_sim: KingdeeSandbox, rule: str) -> None:
    client = client_for(kingdee_sim, read_timeout=0.3)
    _fault(kingdee_sim, rule)
    found = client.find_materials(["MAT-001"], "100")
    assert found["MAT-001"].usable
    assert client.stats.retries >= 1


def test_reads_give_up_after_the_bounded_attempts(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim)
    _fault(kingdee_sim, "5xx@ExecuteBillQuery,times=10")
    with pytest.raises(KingdeeTransientError):
        found_numbers(client, ["X"])
    assert client.stats.calls == client.backoff.max_attempts


def test_protocol_errors_are_typed_after_retries(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim)
    _fault(kingdee_sim, "html_error@ExecuteBillQuery,times=10")
    with pytest.raises(KingdeeProtocolError) as caught:
        found_numbers(client, ["X"])
    assert "not JSON" in str(caught.value)


# -- auth ------------------------------------------------------------------------------------


def test_session_mode_logs_in_again_once_after_session_loss(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim, auth_mode="session")
    assert client.batch_save(FORM, [mis_delivery_bill("SES-1")]).is_success
    _fault(kingdee_sim, "session_lost@ExecuteBillQuery")
    assert "SES-1" in found_numbers(client, ["SES-1"])
    assert client.stats.relogins == 1
    assert kingdee_sim.app.state()["calls"]["LoginBySign"] == 2


def test_session_mode_gives_up_when_the_new_session_is_lost_too(
    kingdee_sim: KingdeeSandbox,
) -> None:
    client = client_for(kingdee_sim, auth_mode="session")
    _fault(kingdee_sim, "session_lost@ExecuteBillQuery,times=2")
    with pytest.raises(KingdeeSessionLost) as caught:
        found_numbers(client, ["X"])
    assert caught.value.messages == ["会话信息已丢失，请重新登录"]
    assert client.stats.relogins == 1


def test_session_loss_on_a_write_is_an_unknown_outcome(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim, auth_mode="session")
    found_numbers(client, ["X"])
    _fault(kingdee_sim, "session_lost@BatchSave")
    with pytest.raises(KingdeeUnknownOutcome) as caught:
        client.batch_save(FORM, [mis_delivery_bill("SES-2")])
    assert caught.value.cause == "session_lost"
    assert found_numbers(client, ["SES-2"]) == {}
    assert client.batch_save(FORM, [mis_delivery_bill("SES-2")]).is_success
    assert client.stats.relogins == 1


def test_signature_mode_rides_the_session_cookie(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim)
    for _ in range(3):
        found_numbers(client, ["X"])
    assert kingdee_sim.app.state()["counts"]["sessions"] == 1
    _fault(kingdee_sim, "session_lost@ExecuteBillQuery")
    with pytest.raises(KingdeeAuthError):
        found_numbers(client, ["X"])
    assert found_numbers(client, ["X"]) == {}, "signatures open a new session"


@pytest.mark.parametrize("mode", ["signature", "session"])
def test_bad_app_secret_is_an_auth_error_and_not_retried(
    kingdee_sim: KingdeeSandbox, mode: str
) -> None:
    secret = "wrong_secret_1b2c3d4e5f60718293a4"
    client = client_for(kingdee_sim, app_secret=secret, auth_mode=mode)
    for call in (
        lambda: found_numbers(client, ["X"]),
        lambda: client.batch_save(FORM, [mis_delivery_bill("AUTH-1")]),
    ):
        with pytest.raises(KingdeeAuthError) as caught:
            call()
        _assert_no_secret(caught.value, secret)
    assert client.stats.calls == 2 and client.stats.retries == 0
    assert secret not in repr(client)
    assert kingdee_sim.app.bills() == []


def test_unknown_data_center_is_an_auth_error(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim, acct_id="no_such_acct")
    with pytest.raises(KingdeeAuthError) as caught:
        found_numbers(client, ["X"])
    assert "Fail to verify thirty passport" in str(caught.value)


def test_no_secret_in_any_exception_or_repr(kingdee_sim: KingdeeSandbox) -> None:
    secret = kingdee_sim.credentials.app_secret
    client = client_for(kingdee_sim, read_timeout=0.3, write_timeout=0.3)
    assert secret not in repr(client) and secret not in str(client.__dict__.get("stats"))
    raised: list[KingdeeError] = []
    for rule, call in [
        ("5xx@ExecuteBillQuery,times=9", lambda: found_numbers(client, ["X"])),
        ("truncated_json@BatchSave", lambda: client.batch_save(FORM, [mis_delivery_bill("S")])),
        ("timeout@BatchSave,seconds=1", lambda: client.batch_save(FORM, [mis_delivery_bill("T")])),
        ("throttle@ExecuteBillQuery,times=9", lambda: found_numbers(client, ["X"])),
    ]:
        _fault(kingdee_sim, rule)
        with pytest.raises(KingdeeError) as caught:
            call()
        raised.append(caught.value)
        kingdee_sim.app.faults.clear()
    with pytest.raises(KingdeeQueryError) as bad_query:
        client.execute_bill_query(FORM, ["FNope"])
    raised.append(bad_query.value)
    for error in raised:
        _assert_no_secret(error, secret)


def _assert_no_secret(error: BaseException, secret: str) -> None:
    chain: BaseException | None = error
    while chain is not None:
        assert secret not in str(chain) and secret not in repr(chain)
        assert "X-Kd-Signature" not in str(chain)
        chain = chain.__cause__ or chain.__context__


def test_concurrent_readers_share_one_relogin(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim, auth_mode="session")
    found_numbers(client, ["X"])
    _fault(kingdee_sim, "session_lost@ExecuteBillQuery")
    errors: list[BaseException] = []

    def read() -> None:
        try:
            client.find_materials(["MAT-001"], "100")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=read) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert client.stats.relogins == 1


def test_login_is_retried_when_throttled(kingdee_sim: KingdeeSandbox) -> None:
    client = client_for(kingdee_sim, auth_mode="session")
    _fault(kingdee_sim, "throttle@LoginBySign")
    assert found_numbers(client, ["X"]) == {}
    assert client.stats.retries == 1 and client.stats.relogins == 0


def test_decimal_quantities_go_out_exactly(kingdee_client: KingdeeClient) -> None:
    # Within the unit's 4 decimals; the second has no exact float, so it goes out as text.
    lines = [
        ("MAT-001", "Pcs", Decimal("0.1")),
        ("MAT-001", "Pcs", Decimal("90071992547409.9931")),
    ]
    assert kingdee_client.batch_save(FORM, [mis_delivery_bill("DEC-1", lines)]).is_success
    entries = kingdee_client.bill_entries(
        MIS_DELIVERY,
        [
            record.fid
            for record in kingdee_client.find_bills(MIS_DELIVERY, ["DEC-1"], orgs=("100",))
        ],
    )
    assert [entry.qty for entry in entries] == [Decimal("0.1"), Decimal("90071992547409.9931")]
