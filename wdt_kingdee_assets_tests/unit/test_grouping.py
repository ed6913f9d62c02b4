"""Merged bills: one warehouse's day in numbered parts, stable across rebuilds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from wdt_kingdee_assets.grouping import SourceLine, batch_of, merge_documents


def line(document: str, rec_id: int, material: str, quantity: str, lot: str | None = None):
    return SourceLine(document, rec_id, material, "Pcs", Decimal(quantity), lot)


DOCUMENTS = {
    "CK2": [line("CK2", 21, "MAT-1", "2"), line("CK2", 22, "MAT-2", "1.5")],
    "CK1": [line("CK1", 11, "MAT-1", "3"), line("CK1", 12, "MAT-1", "1", lot="L1")],
}


def test_merged_quantities_add_up_per_material_and_lot_and_keep_their_lineage():
    [bill] = merge_documents(DOCUMENTS, {}, max_lines=50, merge_lines=True)
    assert bill.label == "1" and bill.sources == ["CK1", "CK2"]
    by_key = {(entry.material, entry.lot): entry for entry in bill.entries}
    assert by_key[("MAT-1", None)].quantity == Decimal("5")
    assert [(s.document, s.rec_id) for s in by_key[("MAT-1", None)].lineage] == [
        ("CK1", 11),
        ("CK2", 21),
    ]
    assert by_key[("MAT-1", "L1")].quantity == Decimal("1")
    total = sum(entry.quantity for entry in bill.entries)
    assert total == sum(line.quantity for lines in DOCUMENTS.values() for line in lines)


def test_kept_lines_are_one_entry_per_source_line_and_the_cap_splits_into_parts():
    bills = merge_documents(DOCUMENTS, {}, max_lines=3, merge_lines=False)
    assert [bill.label for bill in bills] == ["1", "2"]
    assert [len(bill.entries) for bill in bills] == [3, 1]
    assert [entry.lineage[0].rec_id for bill in bills for entry in bill.entries] == [
        11,
        12,
        21,
        22,
    ]
    assert bills[1].sources == ["CK2"]


def test_documents_ready_later_go_to_a_supplement_and_earlier_bills_stay_as_they_were():
    first = merge_documents({"CK1": DOCUMENTS["CK1"]}, {}, max_lines=50, merge_lines=True)
    earlier = {number: batch_of(bill.label) for bill in first for number in bill.sources}
    again = merge_documents(DOCUMENTS, earlier, max_lines=50, merge_lines=True)
    assert [bill.label for bill in again] == ["1", "S1-1"]
    assert again[0] == first[0], "the bill built first is rebuilt exactly"
    assert again[1].sources == ["CK2"]
    later = {number: batch_of(bill.label) for bill in again for number in bill.sources}
    third = merge_documents(
        {**DOCUMENTS, "CK3": [line("CK3", 31, "MAT-9", "1")]}, later, max_lines=50, merge_lines=True
    )
    assert [bill.label for bill in third] == ["1", "S1-1", "S2-1"]


@pytest.mark.parametrize(("label", "batch"), [("1", 0), ("12", 0), ("S1-1", 1), ("S3-2", 3)])
def test_part_labels_name_their_batch(label, batch):
    assert batch_of(label) == batch


def test_a_label_that_is_not_a_part_is_refused():
    with pytest.raises(ValueError, match="not a merged bill part label"):
        batch_of("CK001")
