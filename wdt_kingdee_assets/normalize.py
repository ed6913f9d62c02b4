"""Pure: a flow's WDT orders → one typed row per detail line, with a reject reason when unusable.

Nothing is dropped: an order without lines, or a line that cannot become a Kingdee entry, is kept
as a row whose ``reject_reason`` says why, so it shows up in the checks and the UI.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

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
    if value is None:
        return None
    text = (value if type(value) is str else str(value)).strip()
    return text or None


_NO_LINE = (None,) * 9  # the line columns of a row that stands for a line-less order


class _Lines:
    """The normalized frame's columns, filled line by line: no dict per line on the hot path.

    A row is the order's 6 header values, the line's 9 values and the reject reason, in the
    flow's lines column order (``Flow.lines_schema``).
    """

    def __init__(self, source: Source, names: list[str]) -> None:
        self.source = source
        self.columns: dict[str, list[Any]] = {name: [] for name in names}
        self._appends = [values.append for values in self.columns.values()]

    def add(
        self, header: tuple[Any, ...], line: tuple[Any, ...], reject_reason: str | None
    ) -> None:
        for append, value in zip(self._appends, (*header, *line, reject_reason), strict=True):
            append(value)

    def add_order(self, order: Mapping[str, Any], accepted_statuses: Collection[int]) -> None:
        source = self.source
        key, number, time_field = source.key, source.number, source.time_field
        statuses = source.method.statuses
        order_problems: list[str] = []
        document_id = parse_int(order.get(key))
        if document_id is None:
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
        warehouse_no = _text(order.get("warehouse_no"))
        if warehouse_no is None:
            order_problems.append("warehouse_no is missing")

        header = (
            document_id,
            document_no,
            _text(order.get("process_no")),
            warehouse_no,
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

        for detail in details:
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
            line = (
                parse_int(detail.get("rec_id")),
                spec_no,
                _text(detail.get("goods_no")),
                _text(detail.get("goods_name")),
                num,
                _text(detail.get("batch_no")),
                _text(detail.get("position_no")),
                _text(detail.get("base_unit_name")),
                _parse_bool(detail.get("defect", False)),
            )
            self.add(header, line, "; ".join(problems) or None)


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
                lines.add((None,) * 6, _NO_LINE, reason)
        return schema.from_columns(lines.columns)
