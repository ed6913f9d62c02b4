"""Where asset values live: one JSON Lines file per asset and partition, written atomically.

Why JSON Lines: an ops engineer can open a day's file in any editor, `jq`, Excel's JSON import,
pandas or DuckDB without Dagster; quantities stay exact decimal strings; Chinese text is stored
as is; and it needs no extra dependency. Why one file per partition, written to a temporary file
and renamed into place: partitions that run side by side in a backfill never touch the same file,
and a crashed step never leaves a half-written day behind.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
import pandas as pd
from pydantic import Field, PrivateAttr

from wdt_kingdee_assets.files import DAY_FIELD, default_data_dir, write_atomically
from wdt_kingdee_assets.frames import Column, FrameSchema

COLUMN_SCHEMA = "dagster/column_schema"
FILE_MODE_ENV = "WDT_KINGDEE_FILE_MODE"
# Owner writes, the owner's group reads (a reporting account in the group), others nothing: the
# days name materials, quantities and warehouses — business data, not for every local user.
DEFAULT_FILE_MODE = "0640"


def column_schema(schema: FrameSchema) -> dg.TableSchema:
    """The asset's column schema: shown in the UI, and what its stored files are read back by."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(column.name, column.kind, description=column.description)
            for column in schema.columns
        ]
    )


def stored_schema(context: dg.OutputContext | dg.InputContext) -> FrameSchema:
    """The schema of the asset being stored or loaded, from its definition's column schema."""
    definition = context if isinstance(context, dg.OutputContext) else context.upstream_output
    name = "/".join(context.asset_key.path)
    value = (definition.definition_metadata or {}).get(COLUMN_SCHEMA) if definition else None
    table = getattr(value, "schema", value)
    if not isinstance(table, dg.TableSchema):
        raise dg.DagsterInvariantViolationError(
            f"asset {name!r} has no {COLUMN_SCHEMA} in its definition: nothing says how to store it"
        )
    columns = tuple(Column(c.name, c.type, c.description or "") for c in table.columns)
    return FrameSchema(name, columns)


FileSignature = tuple[int, int, int]


def _not_valid(schema: FrameSchema, partition_key: str, path: Path, exc: Exception) -> dg.Failure:
    return dg.Failure(
        f"{schema.name} for partition {partition_key}: {path} is not a valid stored day ({exc}); "
        "re-materialize the partition"
    )


@dataclass(frozen=True)
class StoredDay:
    """A stored day read as it is consumed, a chunk of rows at a time.

    For a step that goes through a large day once, in order: the normalizer holds one chunk of
    nested WDT orders instead of all of them (as a frame they cost about three times the file).
    A step gets this instead of a DataFrame by annotating its input ``StoredDay``. Each
    :meth:`values` call reads the file as it was when that call opened it, even if the day is
    re-materialized meanwhile (a new file is renamed into place; the open one is unchanged).
    """

    schema: FrameSchema
    path: Path
    partition_key: str

    def values(self, column: str) -> Iterator[Any]:
        """One column's values, row by row, as a DataFrame load would hold them."""
        try:
            with self.path.open(encoding="utf-8") as stream:
                yield from self.schema.read_jsonl_column(stream, column)
        except ValueError as exc:  # JSONDecodeError, or a value its column cannot hold
            raise _not_valid(self.schema, self.partition_key, self.path, exc) from exc


@dataclass(frozen=True)
class StreamedDay:
    """A day handed to the IO manager as rows it stores as they are made, for a day too large to
    hold as a frame: the raw step's orders, read back one at a time from the pull's spool.
    ``rows`` is called once, by the store."""

    rows: Callable[[], Iterator[Mapping[str, Any]]]


class PartitionedJsonlIOManager(dg.ConfigurableIOManager):
    """Stores each asset's DataFrame as ``<base_dir>/<asset>/<partition>.jsonl``.

    A run reads a stored day once: the five checks and the write step all load ``kingdee_bills``,
    and parsing it again for each would put the same work on the day's critical path five times.
    Later loads of an unchanged file (same inode, size and modification time) share the frame
    parsed first, so every step still sees exactly what the file holds, never a step's in-memory
    output. Steps receive the frame as shared, read-only data (a shallow copy: replacing a column
    is private to the step; the nested dicts of ``json`` columns are not to be changed).
    """

    base_dir: str | None = Field(
        default=None, description="None: resolved when the run starts (see default_data_dir)"
    )
    reuse_bytes: int = Field(
        default=64 * 2**20,
        ge=0,
        description=(
            "stored files up to this many bytes in all are kept parsed for the rest of the run "
            "(least recently used dropped first); 0 = parse the file at every load"
        ),
    )
    file_mode: str = Field(
        default=DEFAULT_FILE_MODE,
        pattern=r"^0?[0-7]{3}$",
        description="octal mode of the stored files (folders get x where r is set)",
    )
    _parsed: OrderedDict[Path, tuple[FileSignature, pd.DataFrame]] = PrivateAttr(
        default_factory=OrderedDict
    )

    @property
    def data_dir(self) -> Path:
        return Path(self.base_dir or default_data_dir())

    def path_for(self, stored_name: str, partition_key: str) -> Path:
        """``<base_dir>/<asset key, / between parts>/<partition>.jsonl``."""
        return self.data_dir / stored_name / f"{partition_key}.jsonl"

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | StreamedDay) -> None:
        schema = stored_schema(context)
        path = self.path_for(schema.name, context.partition_key)
        self._parsed.pop(path, None)
        day = {DAY_FIELD: context.partition_key}

        def write(handle: TextIO) -> None:
            if isinstance(obj, StreamedDay):
                schema.write_rows(obj.rows(), handle, day)
            else:
                schema.write_jsonl(obj, handle, day)

        write_atomically(path, write, self.file_mode)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | StoredDay:
        """The stored day as a DataFrame, or as a :class:`StoredDay` for an input annotated so."""
        schema = stored_schema(context)
        path = self.path_for(schema.name, context.asset_partition_key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise dg.Failure(
                f"{schema.name} has no stored value for partition {context.asset_partition_key} "
                f"(expected {path}); materialize it first"
            ) from None
        if context.dagster_type.typing_type is StoredDay:
            return StoredDay(schema, path, context.asset_partition_key)
        signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        held = self._parsed.get(path)
        if held is not None and held[0] == signature:
            self._parsed.move_to_end(path)
            return held[1].copy(deep=False)
        try:
            with path.open(encoding="utf-8") as stream:
                frame = schema.read_jsonl(stream)
        except ValueError as exc:  # JSONDecodeError, or a value its column cannot hold
            raise _not_valid(schema, context.asset_partition_key, path, exc) from exc
        self._keep_parsed(path, signature, frame)
        return frame.copy(deep=False)

    def _keep_parsed(self, path: Path, signature: FileSignature, frame: pd.DataFrame) -> None:
        self._parsed.pop(path, None)
        if signature[1] > self.reuse_bytes:
            return
        self._parsed[path] = (signature, frame)
        while sum(held_signature[1] for held_signature, _ in self._parsed.values()) > (
            self.reuse_bytes
        ):
            self._parsed.popitem(last=False)
