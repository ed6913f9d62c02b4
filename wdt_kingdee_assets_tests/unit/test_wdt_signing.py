"""WDT signing: the reference §3 test vector and the appsecret/timestamp rules."""

from __future__ import annotations

import pytest

from wdt_kingdee_assets.wdt.signing import sign, split_appsecret, wdt_timestamp

VECTOR_PARAMS = {
    "sid": "demo_sid",
    "key": "demo_key",
    "salt": "demo_salt",
    "method": "wms.stockout.Process.queryWithDetail",
    "timestamp": "400000000",
    "v": "1.0",
    "page_size": "100",
    "page_no": "0",
    "calc_total": "1",
}
VECTOR_BODY = '[{"start_time":"2024-08-01 00:00:00","end_time":"2024-08-02 00:00:00"}]'


def test_reference_test_vector() -> None:
    assert sign(VECTOR_PARAMS, VECTOR_BODY, "demo_secret") == "94984b8aadfcfdf4ae79018a6232d37e"


def test_an_existing_sign_param_is_not_signed() -> None:
    with_sign = {**VECTOR_PARAMS, "sign": "whatever"}
    assert sign(with_sign, VECTOR_BODY, "demo_secret") == "94984b8aadfcfdf4ae79018a6232d37e"


def test_sign_depends_on_every_byte_of_the_body() -> None:
    spaced = VECTOR_BODY.replace(",", ", ")
    assert sign(VECTOR_PARAMS, spaced, "demo_secret") != sign(
        VECTOR_PARAMS, VECTOR_BODY, "demo_secret"
    )


def test_non_ascii_body_is_signed_as_utf8() -> None:
    body = '[{"warehouse_no":"成品仓"}]'
    escaped = '[{"warehouse_no":"\\u6210\\u54c1\\u4ed3"}]'
    assert len(sign(VECTOR_PARAMS, body, "s")) == 32
    assert sign(VECTOR_PARAMS, body, "s") != sign(VECTOR_PARAMS, escaped, "s")


def test_split_appsecret_splits_at_the_first_colon() -> None:
    assert split_appsecret("abc:def") == ("abc", "def")
    assert split_appsecret("abc:de:f") == ("abc", "de:f")


@pytest.mark.parametrize("bad", ["no-colon-here-Xy7", ":onlysalt-Xy7", "onlysecret-Xy7:", ""])
def test_split_appsecret_error_names_the_form_but_not_the_value(bad: str) -> None:
    with pytest.raises(ValueError) as caught:
        split_appsecret(bad)
    message = str(caught.value)
    assert "WDT_APPSECRET" in message and "secret:salt" in message
    assert "Xy7" not in message


def test_wdt_timestamp_counts_from_2012_beijing() -> None:
    assert wdt_timestamp(1325347200) == 0
    assert wdt_timestamp(1325347200.99) == 0
    assert wdt_timestamp(1725347200) == 400000000
