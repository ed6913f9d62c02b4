"""Bad input: a clear error naming the problem, or a reject reason on the row; never silence.

Malformed WDT records (the normalizer directly, and fuzzed), malformed envelopes from either API,
a bad mapping file (fuzzed too), and missing environment variables.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import dagster as dg
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from wdt_kingdee_assets.beijing import day_window
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.kingdee.errors import KingdeeProtocolError
from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY
from wdt_kingdee_assets.mapping import (
    MappingConfigError,
    MisDeliveryMapping,
    load_mapping,
)
from wdt_kingdee_assets.normalize import normalize_orders
from wdt_kingdee_assets.sandbox.datagen import MALFORMED_KINDS
from wdt_kingdee_assets.sandbox.faults import FaultRule
from wdt_kingdee_assets.wdt.errors import WdtProtocolError
from wdt_kingdee_assets.wdt.pull import pull_documents
from wdt_kingdee_assets_tests.fixtures.bills import material, stockout_bills
from wdt_kingdee_assets_tests.fixtures.pipeline import check_results, needs_attention
from wdt_kingdee_assets_tests.fixtures.wdt import stockout_query
from wdt_kingdee_assets_tests.reliability.invariant import (
    assert_pipeline_invariant,
    orders_for_day,
)

FUZZ = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def good_line(**changes: Any) -> dict[str, Any]:
    return {"rec_id": 1, "spec_no": "MAT-1", "num": "2.5", "base_unit_name": "Pcs", **changes}


def good_order(**changes: Any) -> dict[str, Any]:
    order = {
        "stockout_id": 7,
        "stockout_no": "CK7",
        "process_no": "PS7",
        "status": 110,
        "warehouse_no": "CK001",
        "consign_time": "2025-06-09 10:00:00",
        "detail_list": [good_line()],
    }
    order.update(changes)
    return order


BAD_RECORDS = {
    "stockout_id not an integer": (good_order(stockout_id="CK-7"), "stockout_id"),
    "stockout_id a fraction": (good_order(stockout_id=7.5), "stockout_id"),
    "stockout_no missing": (good_order(stockout_no=""), "stockout_no"),
    "detail_list missing": (good_order(detail_list=None), "detail_list"),
    "detail_list empty": (good_order(detail_list=[]), "no detail lines"),
    "detail_list an object": (good_order(detail_list={"spec_no": "MAT-1"}), "detail_list"),
    "line not an object": (good_order(detail_list=["MAT-1"]), "not an object"),
    "spec_no missing": (good_order(detail_list=[good_line(spec_no=None)]), "spec_no"),
    "spec_no blank": (good_order(detail_list=[good_line(spec_no="   ")]), "spec_no"),
    "num zero": (good_order(detail_list=[good_line(num=0)]), "num"),
    "num negative": (good_order(detail_list=[good_line(num="-3")]), "num"),
    "num not a number": (good_order(detail_list=[good_line(num="abc")]), "num"),
    "num NaN": (good_order(detail_list=[good_line(num="NaN")]), "num"),
    "num infinite": (good_order(detail_list=[good_line(num="Infinity")]), "num"),
    "num a list": (good_order(detail_list=[good_line(num=[1])]), "num"),
    "num a boolean": (good_order(detail_list=[good_line(num=True)]), "num"),
    "num missing": (good_order(detail_list=[{"rec_id": 1, "spec_no": "MAT-1"}]), "num"),
    "consign_time unparseable": (good_order(consign_time="2025/06/09 10:00"), "consign_time"),
    "consign_time zero date": (good_order(consign_time="0000-00-00 00:00:00"), "consign_time"),
    "consign_time impossible": (good_order(consign_time="2025-02-30 10:00:00"), "consign_time"),
    "consign_time negative ms": (good_order(consign_time=-5), "consign_time"),
    "consign_time absurd ms": (good_order(consign_time=10**18), "consign_time"),
    "status unknown": (good_order(status=95), "status"),
    "status not synced": (good_order(status=5), "status"),
    "status text": (good_order(status="完成"), "status"),
}


@pytest.mark.parametrize("name", list(BAD_RECORDS))
def test_a_malformed_record_is_kept_with_a_reason_naming_the_field(name):
    order, named = BAD_RECORDS[name]
    lines = normalize_orders(
        [good_order(stockout_id=1, stockout_no="CK1"), order], PRODUCTION_STOCKOUT
    )
    assert len(lines) == 2, "each record keeps a row; its good neighbour too"
    good, bad = lines.iloc[0], lines.iloc[1]
    assert good["reject_reason"] is None
    assert named in bad["reject_reason"], bad["reject_reason"]


@pytest.mark.parametrize(
    "text",
    ["CK'1", "CK''1'", "CK' OR '1'='1", "出库单－Ａ１😀", "X" * 5000, "a\nb\tc", 'CK"1\\'],
)
def test_odd_strings_are_kept_verbatim_and_reach_the_bill(text):
    """Quotes, non-ASCII, control characters and very long values pass through untouched."""
    order = good_order(stockout_no=text, detail_list=[good_line(spec_no=text)])
    lines = normalize_orders([order], PRODUCTION_STOCKOUT)
    assert lines.iloc[0]["reject_reason"] is None
    assert lines.iloc[0]["spec_no"] == text.strip()

    materials = {text.strip(): material(text.strip())}
    bills = stockout_bills(lines, materials)
    assert bills.iloc[0]["bill_no"] == text.strip()
    assert bills.iloc[0]["model"]["FEntity"][0]["FMaterialId"] == {"FNumber": text.strip()}


# -- fuzzing the normalizer and the mapping -------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["110", "2025-06-09 10:00:00", "1749434400000", "0", "-1", "1e400", " 7 "])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
fuzzed_lines = (
    st.fixed_dictionaries(
        {},
        optional={
            "rec_id": json_values,
            "spec_no": json_scalars,
            "num": json_scalars,
            "batch_no": json_scalars,
            "defect": json_scalars,
            "goods_name": json_scalars,
        },
    )
    | json_values
)
fuzzed_orders = (
    st.fixed_dictionaries(
        {"stockout_id": json_scalars | st.integers(1, 50)},
        optional={
            "stockout_no": json_scalars,
            "status": json_scalars | st.just(110),
            "warehouse_no": json_scalars,
            "consign_time": json_scalars | st.integers(),
            "process_no": json_values,
            "detail_list": st.lists(fuzzed_lines, max_size=4) | json_values,
        },
    )
    | json_values
)


def expected_rows(order: Any) -> int:
    if not isinstance(order, dict):
        return 1
    lines = order.get("detail_list")
    return len(lines) if isinstance(lines, list) and lines else 1


@FUZZ
@given(st.lists(fuzzed_orders, max_size=6), st.sets(st.text(max_size=6), max_size=4))
def test_fuzzed_records_never_crash_or_vanish_and_ready_bills_keep_their_quantities(orders, known):
    lines = normalize_orders(orders, PRODUCTION_STOCKOUT)
    assert len(lines) == sum(expected_rows(order) for order in orders), "a record vanished"
    usable = lines[lines["reject_reason"].isna()]
    for line in usable.itertuples(index=False):
        assert isinstance(line.num, Decimal) and line.num.is_finite() and line.num > 0
        assert line.spec_no and line.stockout_no and line.warehouse_no and line.status == 110
        assert line.consign_time is not None and line.consign_time.tzinfo is not None
    materials = {number: material(number) for number in set(usable["spec_no"]) | known}
    bills = stockout_bills(lines, materials)
    identified = lines[lines["stockout_id"].notna()]
    assert sorted(bills["stockout_id"]) == sorted(set(identified["stockout_id"]))
    for bill in bills.itertuples(index=False):
        mine = identified[identified["stockout_id"] == bill.stockout_id]
        if bill.readiness == "held":
            assert bill.hold_reason
            continue
        assert mine["reject_reason"].isna().all()
        sent = sum((Decimal(str(entry["FQty"])) for entry in bill.model["FEntity"]), Decimal(0))
        assert sent == sum(mine["num"], Decimal(0))


mapping_fields = st.sampled_from(
    [*MisDeliveryMapping.model_fields, "FBillNo", "warehouse", "strategy", "unknown_field"]
)


@FUZZ
@given(
    st.dictionaries(mapping_fields, json_values, max_size=4),
    st.sampled_from(["yaml", "json"]),
)
def test_fuzzed_mapping_files_load_or_fail_naming_the_file_and_field(tmp_path_factory, data, ext):
    path = tmp_path_factory.mktemp("mapping") / f"mapping.{ext}"
    try:
        text = (
            yaml.safe_dump(data, allow_unicode=True)
            if ext == "yaml"
            else json.dumps(data, ensure_ascii=False, default=str)
        )
    except (yaml.YAMLError, TypeError, ValueError):
        return  # not representable in that format: nothing a user could write
    path.write_text(text, encoding="utf-8")
    try:
        config = load_mapping(path)
    except MappingConfigError as error:
        message = str(error)
        assert str(path) in message
        assert any(field in message for field in data) or "expected a mapping" in message
    else:
        for field, value in data.items():
            loaded = getattr(config, field)
            if isinstance(loaded, BaseModel):  # a section (units, materials): its defaults kept
                assert loaded == type(loaded).model_validate(
                    value, context={"base_dir": path.parent}
                )
            else:
                assert loaded == value or field in ("warehouses",)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("stock_direct: SIDEWAYS\n", "stock_direct"),
        ("bill_no_template: '{order_no}'\n", "bill_no_template"),
        ("warehouses: [CK001]\n", "warehouses"),
        ("FBillNo: '{stockout_no}'\n", "FBillNo"),
        ("bill_type: [unclosed\n", "cannot read"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_a_bad_mapping_file_fails_the_day_naming_the_field_and_writes_nothing(
    make_pipeline, monkeypatch, tmp_path, text, named
):
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("WDT_KINGDEE_MAPPING", str(path))
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=5)
    result = pipeline.run(pipeline.days[-1])
    assert not result.success
    errors = step_errors(result)
    assert any(named in error and str(path) in error for error in errors), errors
    assert pipeline.sandbox.kingdee.bills() == []


def step_errors(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        event.event_specific_data.error.to_string()
        for event in result.all_events
        if event.is_step_failure
    ]


@pytest.mark.parametrize(
    "variable", ["WDT_APPSECRET", "WDT_BASE_URL", "KINGDEE_APP_SECRET", "KINGDEE_ACCT_ID"]
)
def test_a_missing_environment_variable_fails_naming_it_and_writes_nothing(
    make_pipeline, monkeypatch, variable
):
    """Dagster refuses to launch the run at all, and says which variable is unset."""
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=5)
    monkeypatch.delenv(variable)
    with pytest.raises(dg.DagsterInvalidConfigError, match=f'"{variable}" which is not set'):
        pipeline.run(pipeline.days[-1])
    assert pipeline.sandbox.kingdee.bills() == []


def test_an_appsecret_without_salt_fails_saying_what_form_is_expected(make_pipeline, monkeypatch):
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=5)
    monkeypatch.setenv("WDT_APPSECRET", "no-salt-here")
    result = pipeline.run(pipeline.days[-1])
    assert not result.success
    errors = step_errors(result)
    assert any("secret:salt" in error for error in errors), errors
    assert not any("no-salt-here" in error for error in errors)


# -- malformed envelopes and records through the pipeline ----------------------------------


GARBAGE = {
    "html_error": "<!DOCTYPE html>",
    "empty_body": "0 bytes",
    "truncated_json": '{"status": 0',
}


@pytest.mark.parametrize("kind", list(GARBAGE))
def test_a_wdt_answering_garbage_raises_an_error_quoting_the_answer(wdt_sim, wdt_client, kind):
    """Retried (bounded), then a protocol error that says what came back; never an empty page."""
    wdt_sim.add_faults(f"{kind},times=99")
    window = day_window("2025-06-09")
    with pytest.raises(WdtProtocolError, match="not a WDT envelope") as raised:
        pull_documents(wdt_client, stockout_query(window.query_start, window.query_end))
    assert GARBAGE[kind] in str(raised.value)


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("html_error", "<!DOCTYPE html>"),
        ("empty_body", "empty body"),
        ("truncated_json", "not JSON"),
    ],
)
def test_kingdee_queries_answering_garbage_raise_an_error_quoting_the_answer(
    kingdee_sim, kingdee_client, kind, named
):
    kingdee_sim.app.faults.add(FaultRule.parse(f"{kind}@ExecuteBillQuery,times=99"))
    with pytest.raises(KingdeeProtocolError) as raised:
        kingdee_client.find_bills(MIS_DELIVERY, ["CK1"], orgs=("100",))
    assert named in str(raised.value)


def test_batchsave_answering_garbage_leaves_each_bill_failed_with_the_answer(make_pipeline):
    pipeline = make_pipeline(
        missing_ratio=0,
        orders_per_day=8,
        kingdee_unique_bill_no=False,
        kingdee_faults=["empty_body@BatchSave,times=99"],
    )
    day = pipeline.days[-1]
    assert needs_attention(pipeline.run(day))  # the bills fail visibly; the day's other work stands
    results = pipeline.stored("kingdee_write_results", day)
    assert set(results["outcome"]) == {"failed"}
    for messages in results["messages"]:
        assert any("empty body" in message for message in messages), messages
        assert any("not in Kingdee after 3" in message for message in messages), messages
    assert pipeline.sandbox.kingdee.bills() == []
    pipeline.sandbox.kingdee.faults.clear()
    assert pipeline.run(day).success
    assert_pipeline_invariant(pipeline, day)


def test_every_malformed_kind_from_wdt_is_held_with_its_reason_and_the_rest_synced(
    make_pipeline,
):
    pipeline = make_pipeline(
        missing_ratio=0, malformed=2 * len(MALFORMED_KINDS), kingdee_unique_bill_no=False
    )
    day = pipeline.days[-1]
    result = pipeline.run(day)
    assert result.success
    assert_pipeline_invariant(pipeline, day)
    assert not check_results(result)["no_rejected_lines"].passed
    numbers = {
        o["stockout_no"] for o in orders_for_day(pipeline.sandbox, pipeline.sandbox.sync_days()[-1])
    }
    quoted = {number for number in numbers if "'" in number}
    assert quoted and quoted <= set(pipeline.kingdee_bill_numbers())
