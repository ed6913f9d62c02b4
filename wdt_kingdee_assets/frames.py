"""Typed columns of a DataFrame, and how they travel to and from JSON Lines.

One schema per asset (each flow derives its four, ``flow.py``) is the contract between the steps,
the persisted files and the UI: the same columns are the asset's column schema, which is where
the IO manager reads them back from. Quantities are ``Decimal`` in memory and exact decimal
strings on disk: never floats.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import islice
from typing import Any, Literal, TextIO

import pandas as pd

from wdt_kingdee_assets.beijing import BEIJING
from wdt_kingdee_assets.bulk import gc_paused
from wdt_kingdee_assets.encoding import EncodedJson, encode_json

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

    def write_jsonl(
        self, frame: pd.DataFrame, stream: TextIO, constants: Mapping[str, Any] | None = None
    ) -> None:
        """One JSON object per row, written as it is made: a day is never one string in memory.
        ``constants`` lead every row (the partition's ``day``), for tools that read the files."""
        missing = [name for name in self.names if name not in frame.columns]
        if missing:
            raise ValueError(f"{self.name}: DataFrame lacks columns {missing}")
        self._write_columns([frame[name].tolist() for name in self.names], stream, constants)

    def write_rows(
        self,
        rows: Iterable[Mapping[str, Any]],
        stream: TextIO,
        constants: Mapping[str, Any] | None = None,
    ) -> None:
        """As :meth:`write_jsonl`, from rows made one at a time (a missing field is empty): a
        chunk of READ_CHUNK_LINES rows is all that is in memory at once."""
        rows = iter(rows)
        while chunk := list(islice(rows, READ_CHUNK_LINES)):
            columns = [[row.get(name) for row in chunk] for name in self.names]
            self._write_columns(columns, stream, constants)

    def _write_columns(
        self, columns: list[list[Any]], stream: TextIO, constants: Mapping[str, Any] | None
    ) -> None:
        names = self.names
        cells = [
            _json_column(values, column.kind)
            for values, column in zip(columns, self.columns, strict=True)
        ]
        encoded = [column.name for column in self.columns if column.kind == "json"]
        lead = dict(constants or {})
        for row in zip(*cells, strict=True):
            record = {**lead, **dict(zip(names, row, strict=True))}
            # A json cell already encoded (an order from the pull's spool) goes in as it is.
            spliced = [
                f"{encode_json(name)}:{record.pop(name)}"
                for name in encoded
                if type(record.get(name)) is EncodedJson
            ]
            line = encode_json(record)
            if spliced:
                line = line[:-1] + ("," if len(line) > 2 else "") + ",".join(spliced) + "}"
            stream.write(line + "\n")

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
    # Per cell, the value already of its kind is tested first, then None (the usual missing
    # cell) before _is_missing: a column of a 100k-order day is half a million cells.
    if kind == "int":
        return pd.Series(
            [
                v if type(v) is int else (None if v is None or _is_missing(v) else int(v))
                for v in values
            ],
            dtype="Int64",
        )
    if kind == "bool":
        return pd.Series(
            [
                v if type(v) is bool else (None if v is None or _is_missing(v) else bool(v))
                for v in values
            ],
            dtype="boolean",
        )
    if kind == "decimal":
        return pd.Series(
            [
                v
                if type(v) is Decimal
                else (None if v is None or _is_missing(v) else Decimal(str(v)))
                for v in values
            ],
            dtype=object,
        )
    if kind == "datetime":
        return pd.Series(
            pd.to_datetime(
                [v if type(v) is datetime or not _is_missing(v) else None for v in values],
                utc=True,
                format="ISO8601",
            ),
        ).dt.tz_convert(BEIJING)
    if kind == "json":
        return pd.Series(values, dtype=object)
    return pd.Series(
        [
            v if type(v) is str else (None if v is None or _is_missing(v) else str(v))
            for v in values
        ],
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
