"""The FilterString builder: quoting that cannot be escaped, strict field names."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wdt_kingdee_assets.kingdee.filters import all_of, field_eq, field_in, quote
from wdt_kingdee_assets.sandbox.kingdee_server import _FilterParser, _tokenize


def test_quote_doubles_single_quotes() -> None:
    assert quote("O'Brien") == "'O''Brien'"
    assert quote("X' or FBillNo<>'") == "'X'' or FBillNo<>'''"


def test_quote_numbers() -> None:
    assert quote(42) == "42"
    assert quote(Decimal("2.50")) == "2.50"
    assert quote(Decimal("1E+3")) == "1000"


@pytest.mark.parametrize("value", [True, 1.5, None, Decimal("NaN"), Decimal("Infinity"), "a\nb"])
def test_quote_refuses_values_without_a_safe_literal(value: object) -> None:
    with pytest.raises(ValueError):
        quote(value)  # type: ignore[arg-type]


def test_field_eq_and_in() -> None:
    assert field_eq("FUseOrgId.FNumber", "100") == "FUseOrgId.FNumber = '100'"
    assert field_in("FBillNo", ["A", "B", "A"]) == "FBillNo in ('A','B')"


def test_field_in_refuses_an_empty_list() -> None:
    with pytest.raises(ValueError):
        field_in("FBillNo", [])


@pytest.mark.parametrize("name", ["", "1F", "FBillNo;drop", "FBillNo or 1=1", "F Bill", "FBillNo'"])
def test_field_names_are_validated(name: str) -> None:
    with pytest.raises(ValueError):
        field_eq(name, "x")
    with pytest.raises(ValueError):
        field_in(name, ["x"])


def test_all_of_parenthesises_each_clause() -> None:
    assert all_of("a = 1 or b = 2", "c = 3") == "(a = 1 or b = 2) and (c = 3)"
    with pytest.raises(ValueError):
        all_of()


@given(st.text(alphabet=st.characters(blacklist_characters="\x00\r\n"), max_size=40))
def test_any_string_is_one_literal_to_the_server_parser(value: str) -> None:
    """Whatever the value holds, the simulator's tokenizer sees one string token equal to it."""
    tokens = _tokenize(quote(value))
    assert [token.kind for token in tokens] == ["string", "end"]
    assert tokens[0].value == value


@given(st.text(alphabet="'XAB or<>=()FBilNo ", max_size=30))
def test_an_injected_value_matches_only_itself(value: str) -> None:
    parser = _FilterParser(field_eq("FBillNo", value), lambda name: name.casefold())
    predicate = parser.parse()
    assert predicate(lambda key: value) is True
    assert predicate(lambda key: value + "-other") is False
