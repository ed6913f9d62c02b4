import pytest

from wdt_kingdee_assets.reference import parse_reference, reference_token


@pytest.mark.parametrize(
    "source_ref",
    ["CK2025060900001", "CK'2025", "出库单 001", "A]B", "50%", "tab\there", "😀", "a[WDT:b]"],
)
def test_every_source_ref_round_trips_through_free_text(source_ref):
    note = f"领料 {reference_token(source_ref)} / PS2025060901 备注 ]"
    assert parse_reference(note) == source_ref


def test_text_without_a_token_has_no_reference():
    assert parse_reference("WDT CK1 / PS1") is None
    assert parse_reference("") is None and parse_reference(None) is None
    assert parse_reference("[WDT:]") is None


def test_the_first_token_wins_and_an_empty_ref_is_refused():
    assert parse_reference(f"{reference_token('A')} {reference_token('B')}") == "A"
    with pytest.raises(ValueError, match="empty"):
        reference_token("")
