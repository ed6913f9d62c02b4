"""The columns of each asset's DataFrame, and how they travel to and from JSON Lines.

One schema per asset is the contract between the steps, the persisted files and the UI (the
same columns are shown as the asset's column schema). Quantities are ``Decimal`` in memory and
exact decimal strings on disk: never floats.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TextIO

import pandas as pd

from wdt_kingdee_assets.beijing import BEIJING
from wdt_kingdee_assets.bulk import gc_paused

Kind = Literal["int", "str", "decimal", "datetime", "bool", "json"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    description: str


@dataclass(frozen=True)
class FrameSchema:
    name: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    def frame(self, records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
        """A DataFrame with exactly these columns, in order, each coerced to its kind.

        Records are consumed one at a time into column lists, so a generator of rows never
        exists as a list of dicts (half a million of them cost more than the frame itself).
        """
        data: dict[str, list[Any]] = {column.name: [] for column in self.columns}
        for row in records:
            for name, values in data.items():
                values.append(row.get(name))
        return self.from_columns(data)

    def from_columns(self, data: dict[str, list[Any]]) -> pd.DataFrame:
        """The frame from one list per column (all of them, equally long); consumes ``data``.

        Each source list is released as soon as its column is built.
        """
        return pd.DataFrame(
            {column.name: _coerce(data.pop(column.name), column.kind) for column in self.columns}
        )

    def write_jsonl(self, frame: pd.DataFrame, stream: TextIO) -> None:
        """One JSON object per row, written as it is made: a day is never one string in memory."""
        missing = [name for name in self.names if name not in frame.columns]
        if missing:
            raise ValueError(f"{self.name}: DataFrame lacks columns {missing}")
        names = self.names
        columns = [
            _json_column(frame[column.name].tolist(), column.kind) for column in self.columns
        ]
        encode = _ENCODER.encode
        for row in zip(*columns, strict=True):
            stream.write(encode(dict(zip(names, row, strict=True))) + "\n")

    def read_jsonl(self, stream: Iterable[str]) -> pd.DataFrame:
        """The frame from JSON Lines, parsed and spread into columns a chunk of lines at a time."""
        data: dict[str, list[Any]] = {name: [] for name in self.names}
        with gc_paused():
            for records in _record_chunks(stream):
                for name, values in data.items():
                    values.extend([record.get(name) for record in records])
            return self.from_columns(data)

    def read_jsonl_column(self, stream: Iterable[str], name: str) -> Iterator[Any]:
        """One column's values as :meth:`read_jsonl` would hold them, parsed a chunk of lines at
        a time: for a step that goes through a large day once and keeps none of it."""
        kinds = {column.name: column.kind for column in self.columns}
        if name not in kinds:
            raise KeyError(f"{self.name} has no column {name!r}")
        for records in _record_chunks(stream):
            yield from _coerce([record.get(name) for record in records], kinds[name]).tolist()


READ_CHUNK_LINES = 1000


def _record_chunks(stream: Iterable[str]) -> Iterator[list[dict[str, Any]]]:
    """Parse JSON Lines as arrays of READ_CHUNK_LINES objects.

    The decoder shares one string object per distinct key within a call only: a call per line
    would give each of 100k orders its own copies of ~45 keys (hundreds of MB for a large day).
    """
    chunk: list[str] = []
    for line in stream:
        if line.strip():
            chunk.append(line)
        if len(chunk) == READ_CHUNK_LINES:
            yield json.loads("[" + ",".join(chunk) + "]")
            chunk = []
    if chunk:
        yield json.loads("[" + ",".join(chunk) + "]")


def _is_missing(value: Any) -> bool:
    """None, pandas' NA/NaT, or a float NaN. Identity tests, not ``pd.isna``: this runs once per
    cell of frames with millions of cells."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def _coerce(values: list[Any], kind: Kind) -> pd.Series:
    if kind == "int":
        return pd.Series(
            [v if type(v) is int else (None if _is_missing(v) else int(v)) for v in values],
            dtype="Int64",
        )
    if kind == "bool":
        return pd.Series([None if _is_missing(v) else bool(v) for v in values], dtype="boolean")
    if kind == "decimal":
        return pd.Series(
            [
                v if type(v) is Decimal else (None if _is_missing(v) else Decimal(str(v)))
                for v in values
            ],
            dtype=object,
        )
    if kind == "datetime":
        return pd.Series(
            pd.to_datetime(
                [None if _is_missing(v) else v for v in values], utc=True, format="ISO8601"
            ),
        ).dt.tz_convert(BEIJING)
    if kind == "json":
        return pd.Series(values, dtype=object)
    return pd.Series(
        [v if type(v) is str else (None if _is_missing(v) else str(v)) for v in values],
        dtype=object,
    )


def _json_column(values: list[Any], kind: Kind) -> list[Any]:
    """One column's cells as the encoder takes them: missing → None, each kind as stored.

    Whole columns at a time, so that a frame of millions of cells costs no Python call per cell;
    Decimals and datetimes, top-level or nested, are left to the encoder's ``default``.
    """
    if kind == "int":
        return [v if type(v) is int else (None if _is_missing(v) else int(v)) for v in values]
    if kind == "bool":
        return [v if type(v) is bool else (None if _is_missing(v) else bool(v)) for v in values]
    if kind == "str":
        return [v if type(v) is str else (None if _is_missing(v) else str(v)) for v in values]
    if kind == "decimal":
        return [None if _is_missing(v) else str(v) for v in values]
    if kind == "datetime":
        return [None if _is_missing(v) else v.isoformat() for v in values]
    return [None if _is_missing(v) else v for v in values]


def _json_default(value: Any) -> Any:
    """What the encoder cannot write itself: Decimals as exact strings, datetimes as ISO text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):  # pandas' Timestamp included
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON: {value!r}")


# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


RAW_STOCKOUTS = FrameSchema(
    "raw_stockouts",
    (
        Column("stockout_id", "int", "WDT stockout_id (出库单ID), the key"),
        Column("stockout_no", "str", "WDT stockout_no (出库单号)"),
        Column("consign_time", "str", "consign_time (出库时间) exactly as WDT sent it"),
        Column("order", "json", "the order as WDT sent it (decimals as exact strings)"),
    ),
)

NORMALIZED_STOCKOUTS = FrameSchema(
    "normalized_stockouts",
    (
        Column("stockout_id", "int", "WDT stockout_id"),
        Column("stockout_no", "str", "WDT stockout_no (出库单号)"),
        Column("process_no", "str", "production order no. (生产单号)"),
        Column("warehouse_no", "str", "WDT warehouse code (仓库编号)"),
        Column("consign_time", "datetime", "stock-out time (出库时间), Beijing"),
        Column("status", "int", "WDT status (110 = 已完成)"),
        Column("rec_id", "int", "WDT detail line id"),
        Column("spec_no", "str", "merchant SKU code (商家编码) = Kingdee material number"),
        Column("goods_no", "str", "goods code (货品编号)"),
        Column("goods_name", "str", "goods name (货品名称)"),
        Column("num", "decimal", "actual quantity (实发数量), exact"),
        Column("batch_no", "str", "batch / lot (批次)"),
        Column("position_no", "str", "bin (货位)"),
        Column("base_unit_name", "str", "WDT unit name (单位)"),
        Column("defect", "bool", "defective goods (残次品)"),
        Column("reject_reason", "str", "why the line cannot be used; empty when usable"),
    ),
)

KINGDEE_BILLS = FrameSchema(
    "kingdee_bills",
    (
        Column("bill_no", "str", "FBillNo sent for the 其他出库单 (misc. delivery bill)"),
        Column(
            "source_ref",
            "str",
            "what the bill stands for (the stock-out's number); written into it as [WDT:…]",
        ),
        Column("stockout_id", "int", "WDT stockout_id the bill comes from"),
        Column("stockout_no", "str", "WDT stockout_no"),
        Column("bill_date", "str", "FDate (yyyy-MM-dd)"),
        Column("readiness", "str", "ready | held"),
        Column("hold_reason", "str", "why the bill is held; empty when ready"),
        Column("missing_materials", "json", "spec_no values Kingdee lacks or has disabled"),
        Column(
            "missing_states",
            "json",
            "what Kingdee said of each missing material (absent, disabled, unaudited:A)",
        ),
        Column("line_count", "int", "number of FEntity lines"),
        Column("model", "json", "the STK_MisDelivery model sent to BatchSave"),
    ),
)

WRITE_RESULTS = FrameSchema(
    "kingdee_write_results",
    (
        Column("bill_no", "str", "FBillNo sent"),
        Column("source_ref", "str", "the source reference the bill carries ([WDT:…])"),
        Column("stockout_id", "int", "WDT stockout_id"),
        Column("outcome", "str", "created | already_in_kingdee | failed | held"),
        Column("fid", "int", "Kingdee FID (internal id) when the bill is in Kingdee"),
        Column(
            "kingdee_bill_no",
            "str",
            "FBillNo as Kingdee holds it (its coding rule may have renumbered the bill)",
        ),
        Column(
            "failure",
            "str",
            "for held and failed bills: permanent (a retry cannot fix it) or transient",
        ),
        Column(
            "blockers",
            "json",
            "materials a permanent failure hinges on: it is reconsidered when one of them changes",
        ),
        Column("messages", "json", "Kingdee's messages or the hold reason, verbatim"),
        Column("attempts", "int", "BatchSave calls that carried this bill in this run"),
        Column("written_at", "datetime", "when this run settled the bill"),
    ),
)
