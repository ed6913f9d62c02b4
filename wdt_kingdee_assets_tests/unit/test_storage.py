"""The JSON Lines IO manager: what a run's steps load is what the file holds, parsed once."""

import json
import stat
from decimal import Decimal

import dagster as dg
import pandas as pd
import pytest

from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.reading import read_day
from wdt_kingdee_assets.storage import PartitionedJsonlIOManager, StoredDay, column_schema

DAY = "2025-06-09"
KEY = dg.AssetKey("kingdee_write_results")
# What the asset's definition carries: the IO manager reads the stored columns from it.
DEFINITION = {"dagster/column_schema": column_schema(PRODUCTION_STOCKOUT.results_schema)}


def _output_context() -> dg.OutputContext:
    return dg.build_output_context(asset_key=KEY, partition_key=DAY, definition_metadata=DEFINITION)


def _results(*bills: str) -> pd.DataFrame:
    return PRODUCTION_STOCKOUT.results_schema.frame(
        {"bill_no": bill, "stockout_id": n, "outcome": "created", "messages": [f"保存成功 {bill}"]}
        for n, bill in enumerate(bills, start=1)
    )


def _store(manager: PartitionedJsonlIOManager, frame: pd.DataFrame) -> None:
    manager.handle_output(_output_context(), frame)


def _load(manager: PartitionedJsonlIOManager, as_type: type = pd.DataFrame) -> pd.DataFrame:
    context = dg.build_input_context(
        asset_key=KEY,
        partition_key=DAY,
        dagster_type=dg.PythonObjectDagsterType(as_type),
        upstream_output=_output_context(),
    )
    return manager.load_input(context)


def test_loads_of_an_unchanged_day_share_one_parse(tmp_path):
    manager = PartitionedJsonlIOManager(base_dir=str(tmp_path))
    _store(manager, _results("B1", "B2"))
    first, second = _load(manager), _load(manager)
    assert first["messages"].iloc[0] is second["messages"].iloc[0], "parsed once"
    assert list(second["bill_no"]) == ["B1", "B2"]
    first["outcome"] = "failed"
    assert list(second["outcome"]) == ["created", "created"], "a step's column change is its own"
    assert list(_load(manager)["outcome"]) == ["created", "created"]


def test_a_changed_file_is_read_again(tmp_path):
    manager = PartitionedJsonlIOManager(base_dir=str(tmp_path))
    _store(manager, _results("B1"))
    assert list(_load(manager)["bill_no"]) == ["B1"]
    _store(manager, _results("B1", "B2"))
    assert list(_load(manager)["bill_no"]) == ["B1", "B2"]

    other = PartitionedJsonlIOManager(base_dir=str(tmp_path))
    other.handle_output(_output_context(), _results("B3", "B4", "B5"))
    assert list(_load(manager)["bill_no"]) == ["B3", "B4", "B5"], "written by another process"


def test_reuse_is_bounded_and_can_be_turned_off(tmp_path):
    manager = PartitionedJsonlIOManager(base_dir=str(tmp_path), reuse_bytes=0)
    _store(manager, _results("B1"))
    first, second = _load(manager), _load(manager)
    assert first["messages"].iloc[0] == second["messages"].iloc[0]
    assert first["messages"].iloc[0] is not second["messages"].iloc[0], "parsed at every load"


def test_a_missing_day_names_what_to_materialize(tmp_path):
    manager = PartitionedJsonlIOManager(base_dir=str(tmp_path))
    with pytest.raises(dg.Failure, match="kingdee_write_results has no stored value for partition"):
        _load(manager)


def test_a_stored_day_streams_the_values_a_frame_would_hold(tmp_path, monkeypatch):
    monkeypatch.setattr("wdt_kingdee_assets.frames.READ_CHUNK_LINES", 2)
    manager = PartitionedJsonlIOManager(base_dir=str(tmp_path))
    _store(manager, _results("B1", "B2", "B3"))
    day = _load(manager, StoredDay)
    assert isinstance(day, StoredDay)
    frame = _load(manager)
    for column in ("bill_no", "stockout_id", "messages", "written_at"):
        assert list(day.values(column)) == list(frame[column])
    with pytest.raises(KeyError, match="no column 'order'"):
        next(day.values("order"))


def test_a_damaged_stored_day_fails_with_the_path_and_the_remedy(tmp_path):
    manager = PartitionedJsonlIOManager(base_dir=str(tmp_path))
    _store(manager, _results("B1"))
    path = manager.path_for("kingdee_write_results", DAY)
    path.write_text(path.read_text(encoding="utf-8") + '{"bill_no": "B2", \n', encoding="utf-8")
    damaged = "is not a valid stored day .*re-materialize the partition"
    with pytest.raises(dg.Failure, match=damaged):
        _load(manager)
    day = _load(manager, StoredDay)
    with pytest.raises(dg.Failure, match=damaged):
        list(day.values("bill_no"))


def test_a_stored_day_reads_back_exact_with_its_day_and_is_readable_by_the_group(tmp_path):
    schema = PRODUCTION_STOCKOUT.lines_schema
    lines = schema.frame(
        [{"stockout_id": 1, "stockout_no": "CK1", "spec_no": "00123", "num": Decimal("1.2500")}]
    )
    context = dg.build_output_context(
        asset_key=dg.AssetKey("normalized_stockouts"),
        partition_key=DAY,
        definition_metadata={"dagster/column_schema": column_schema(schema)},
    )
    PartitionedJsonlIOManager(base_dir=str(tmp_path / "data")).handle_output(context, lines)
    path = tmp_path / "data" / "normalized_stockouts" / f"{DAY}.jsonl"
    assert json.loads(path.read_text(encoding="utf-8"))["day"] == DAY
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
    read = read_day("normalized_stockouts", DAY, tmp_path / "data")
    assert list(read.columns[:2]) == ["day", "stockout_id"]
    assert (read.at[0, "day"], read.at[0, "spec_no"], read.at[0, "num"]) == (
        DAY,
        "00123",
        Decimal("1.2500"),
    )
    with pytest.raises(KeyError, match="kingdee_bills"):
        read_day("bills", DAY, tmp_path / "data")
