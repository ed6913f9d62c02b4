"""Pure: a flow's WDT orders → one typed row per detail line and lot, with a reject reason when
unusable.

Older and newer answers of one method differ (reference §7, real-servers-vs-ours §2): the 2024
shape has ``warehouse_no``, ``rec_id`` and per-position batches; a published 2020 answer has only
``warehouse_name``, no ids, no positions and epoch-millisecond times. Both are read; what is
missing becomes a reason on the row or a hold in the mapping, never a crash.

Nothing is dropped: an order without lines, or a line that cannot become a Kingdee entry, is kept
as a row whose ``reject_reason`` says why, so it shows up in the checks and the UI.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from wdt_kingdee_assets.beijing import BEIJING
from wdt_kingdee_assets.bulk import gc_paused

if TYPE_CHECKING:
    from wdt_kingdee_assets.flow import Flow
    from wdt_kingdee_assets.source import Source

WDT_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
# Ids and statuses are stored as 64-bit integers: a larger value is garbage, not an id.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_wdt_datetime(value: Any) -> datetime | None:
    """WDT sends ``yyyy-MM-dd HH:mm:ss`` Beijing strings or epoch-millisecond ints; None if neither."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | Decimal) or (isinstance(value, str) and value.strip().isdigit()):
        try:
            millis = int(value)
        except (ValueError, InvalidOperation, OverflowError):  # OverflowError: Decimal infinity
            return None
        if not 0 < millis < 10**14:
            return None
        return datetime.fromtimestamp(millis / 1000, tz=BEIJING)
    if isinstance(value, str):
        text = value.strip()
        # fromisoformat is many times faster than strptime, but also reads other ISO forms
        # (offsets, "T", fractions): the pattern holds it to exactly `yyyy-MM-dd HH:mm:ss`.
        if not WDT_DATETIME.fullmatch(text):
            return None
        try:
            return datetime.fromisoformat(text).replace(tzinfo=BEIJING)
        except ValueError:
            return None
    return None


def parse_quantity(value: Any) -> tuple[Decimal | None, str | None]:
    """(quantity, None) for a positive finite decimal, else (None, reason)."""
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return None, f"num is missing or not a number: {value!r}"
    try:
        if isinstance(value, Decimal):
            quantity = value
        elif type(value) is int:
            quantity = Decimal(value)
        else:
            quantity = Decimal(str(value).strip())
    except InvalidOperation:
        return None, f"num is not a number: {value!r}"
    if not quantity.is_finite():
        return None, f"num is not a finite number: {value!r}"
    if quantity <= 0:
        return None, f"num must be greater than 0, got {quantity}"
    return quantity, None


def parse_int(value: Any) -> int | None:
    """An integer id or status as WDT may send it (number or text); None if it is not one."""
    if type(value) is int:  # the usual case, and bool (a subclass) stays out
        return value if INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    if not INT64_MIN <= number <= INT64_MAX:
        return None
    return int(number)


def _parse_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "是"}
    return bool(value)


def _text(value: Any) -> str | None:
    if type(value) is str:  # nearly always: tested first, as this runs a dozen times a line
        return value.strip() or None
    if value is None:
        return None
    return str(value).strip() or None


_LINE_VALUES = 11  # the line columns of a row (Flow.lines_schema, rec_id … defect)
_NO_LINE = (None,) * _LINE_VALUES  # the line columns of a row that stands for a line-less order
_HEADER_VALUES = 7
# How WDT writes "no date": empty, or MySQL's zero date.
_NO_DATE = frozenset({"", "0000-00-00", "0000-00-00 00:00:00"})


def document_id(order: Mapping[str, Any], key: str, number: str) -> int | None:
    """The document's id: WDT's own (``stockout_id``), or — for an older answer that has no id
    at all (a published 2020 answer of the stock-out method has none) — a negative id derived
    from the document's number, so that it never meets a real WDT id and is the same on every
    pull. None when WDT sent an id that is not an integer (the order is then rejected)."""
    value = order.get(key)
    if value is None or value == "":
        text = _text(order.get(number))
        if text is None:
            return None
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=7).digest()
        return -1 - int.from_bytes(digest, "big")
    return parse_int(value)


def _date_text(value: Any) -> str | None:
    if value is None:
        return None
    text = (value if type(value) is str else str(value)).strip()
    return None if text in _NO_DATE else text


class Lot(NamedTuple):
    """One part of a detail line: the quantity taken from one batch at one bin. (A tuple, not a
    frozen dataclass: a day makes one or two per line, and a tuple is made several times faster.)"""

    batch_no: str | None
    position_no: str | None
    num: Decimal | None  # None on a row whose num was unusable (it carries the reason)
    production_date: str | None
    expire_date: str | None


def line_lots(detail: Mapping[str, Any], num: Decimal) -> tuple[list[Lot], str | None]:
    """The lots of a line of ``num`` (valid), and why its positions cannot be used (if so).

    The per-batch truth is ``position_details_list`` (batch, bin, count, dates per position):
    positions are added up per (batch, bin), each batch taken from the position or else the line.
    A line without positions (older answers, stock-ins) is one lot from the line's own fields.
    Positions that do not add up exactly to ``num`` make one lot of ``num`` and a reason.
    """
    positions = detail.get("position_details_list")
    if type(positions) is list and len(positions) == 1 and isinstance(positions[0], Mapping):
        # The usual case, and the hot path of a day: one position holding the whole line. A
        # field of the line is only read when the position lacks it.
        item = positions[0]
        count, line_num = item.get("position_goods_count"), detail.get("num")
        same = type(count) is type(line_num) and count == line_num  # the same text, no parse
        if same or parse_quantity(count)[0] == num:
            return [
                Lot(
                    _text(item.get("batch_no")) or _text(detail.get("batch_no")),
                    _text(item.get("position_no")) or _text(detail.get("position_no")),
                    num,
                    _date_text(item.get("production_date"))
                    or _date_text(detail.get("production_date")),
                    _date_text(item.get("expire_date")) or _date_text(detail.get("expire_date")),
                )
            ], None
    batch = _text(detail.get("batch_no"))
    position = _text(detail.get("position_no"))
    produced = _date_text(detail.get("production_date"))
    expires = _date_text(detail.get("expire_date"))
    whole = [Lot(batch, position, num, produced, expires)]
    if not isinstance(positions, list) or not positions:
        return whole, None
    parts: dict[tuple[str | None, str | None], list[Any]] = {}
    total = Decimal(0)
    for item in positions:
        count = item.get("position_goods_count") if isinstance(item, Mapping) else None
        quantity, _ = parse_quantity(count)
        if quantity is None and parse_int(count) != 0:
            return whole, f"position_details_list has a count that is not a number: {count!r}"
        if quantity is None:  # an empty position (count 0) takes nothing
            continue
        total += quantity
        where = (_text(item.get("batch_no")) or batch, _text(item.get("position_no")) or position)
        part = parts.get(where)
        if part is None:
            parts[where] = [
                quantity,
                _date_text(item.get("production_date")) or produced,
                _date_text(item.get("expire_date")) or expires,
            ]
        else:
            part[0] += quantity
    if total != num:
        return whole, f"position_details_list adds up to {total}, not num {num}"
    return [
        Lot(where[0], where[1], quantity, made, expiry)
        for where, (quantity, made, expiry) in parts.items()
    ], None


_ROWS_PER_CHUNK = 10_000


class _Lines:
    """The normalized frame's columns, filled a chunk of rows at a time: no dict per row on the
    hot path, and a row is one tuple until its chunk is spread into the columns (in C, by
    ``zip``) — the columns of a chunk at a time, not one append per cell.

    A row is the order's 7 header values, the line's 11 values and the reject reason, in the
    flow's lines column order (``Flow.lines_schema``). A line taken from several batches or bins
    is one row per (batch, bin), each with that part's quantity; ``rec_id`` names the line.
    """

    def __init__(self, source: Source, names: list[str]) -> None:
        self.source = source
        self._columns: dict[str, list[Any]] = {name: [] for name in names}
        self._rows: list[tuple[Any, ...]] = []

    def add(
        self, header: tuple[Any, ...], line: tuple[Any, ...], reject_reason: str | None
    ) -> None:
        self._rows.append((*header, *line, reject_reason))
        if len(self._rows) >= _ROWS_PER_CHUNK:
            self._spread()

    def _spread(self) -> None:
        if self._rows:
            for values, cells in zip(
                self._columns.values(), zip(*self._rows, strict=True), strict=True
            ):
                values.extend(cells)
            self._rows.clear()  # the same list: add_order holds it while adding a line's rows

    def columns(self) -> dict[str, list[Any]]:
        """Every row added, as one list per column."""
        self._spread()
        return self._columns

    def add_order(self, order: Mapping[str, Any], accepted_statuses: Collection[int]) -> None:
        source = self.source
        key, number, time_field = source.key, source.number, source.time_field
        statuses = source.method.statuses
        order_problems: list[str] = []
        ident = document_id(order, key, number)
        if ident is None:
            order_problems.append(f"{key} is missing or not an integer: {order.get(key)!r}")
        document_no = _text(order.get(number))
        if document_no is None:
            order_problems.append(f"{number} is missing")
        moment = parse_wdt_datetime(order.get(time_field))
        if moment is None:
            order_problems.append(f"{time_field} is not a WDT date-time: {order.get(time_field)!r}")
        status = parse_int(order.get("status"))
        if status not in statuses:
            order_problems.append(f"unknown WDT status: {order.get('status')!r}")
        elif status not in accepted_statuses:
            order_problems.append(f"status {status} ({statuses[status]}) is not synced")

        # A missing warehouse_no is no line's fault: the mapping finds the warehouse by its name
        # (an older answer has only warehouse_name) or holds the document, saying so.
        header = (
            ident,
            document_no,
            _text(order.get("process_no")),
            _text(order.get("warehouse_no")),
            _text(order.get("warehouse_name")),
            moment,
            status,
        )
        details = order.get(source.method.lines)
        if not isinstance(details, list) or not details:
            reason = (
                "order has no detail lines"
                if isinstance(details, list)
                else f"{source.method.lines} is missing"
            )
            self.add(header, _NO_LINE, "; ".join([*order_problems, reason]))
            return

        rows = self._rows  # the hot path appends its rows itself, one call fewer per row
        for index, detail in enumerate(details, start=1):
            if not isinstance(detail, Mapping):
                reason = "; ".join([*order_problems, "detail line is not an object"])
                self.add(header, _NO_LINE, reason)
                continue
            problems = list(order_problems)
            spec_no = _text(detail.get("spec_no"))
            if spec_no is None:
                problems.append("spec_no is missing")
            num, num_problem = parse_quantity(detail.get("num"))
            if num_problem:
                problems.append(num_problem)
                lots = [
                    Lot(
                        _text(detail.get("batch_no")),
                        _text(detail.get("position_no")),
                        num,
                        _date_text(detail.get("production_date")),
                        _date_text(detail.get("expire_date")),
                    )
                ]
            else:
                lots, lot_problem = line_lots(detail, num)
                if lot_problem:
                    problems.append(lot_problem)
            # An older answer has no line ids: the line's place in the order, negative so that it
            # is never taken for WDT's own id (it names the line in lineage and checks).
            rec_id = parse_int(detail.get("rec_id"))
            if rec_id is None and detail.get("rec_id") in (None, ""):
                rec_id = -index
            goods_no, goods_name = _text(detail.get("goods_no")), _text(detail.get("goods_name"))
            unit = _text(detail.get("base_unit_name"))
            defect = detail.get("defect", False)
            if type(defect) is not bool:
                defect = _parse_bool(defect)
            reason = "; ".join(problems) if problems else None
            for batch_no, position_no, quantity, made, expiry in lots:
                rows.append(
                    (
                        *header,
                        rec_id,
                        spec_no,
                        goods_no,
                        goods_name,
                        quantity,
                        batch_no,
                        position_no,
                        made,
                        expiry,
                        unit,
                        defect,
                        reason,
                    )
                )
        if len(rows) >= _ROWS_PER_CHUNK:
            self._spread()


def normalize_orders(
    orders: Iterable[Mapping[str, Any]],
    flow: Flow,
    accepted_statuses: Collection[int] | None = None,
) -> pd.DataFrame:
    """One row per detail line (the flow's lines columns); unusable lines carry a reason.

    ``accepted_statuses`` defaults to the statuses the flow pulls."""
    schema = flow.lines_schema
    lines = _Lines(flow.source, schema.names)
    accepted = flow.source.statuses if accepted_statuses is None else accepted_statuses
    with gc_paused():
        for order in orders:
            if isinstance(order, Mapping):
                lines.add_order(order, accepted)
            else:
                reason = f"order is not a JSON object: {str(order)[:80]!r}"
                lines.add((None,) * _HEADER_VALUES, _NO_LINE, reason)
        return schema.from_columns(lines.columns())
