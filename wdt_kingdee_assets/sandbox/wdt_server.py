"""A protocol-faithful simulator of WDT Ultimate's paged document queries:
``wms.stockout.Process.queryWithDetail`` (生产出库查询) and ``wms.stockin.Process.queryWithDetail``
(生产入库查询), each with its own store (:data:`METHODS`, the simulator's own table of them).

It runs as a :class:`SimApp` on :class:`SimServer` and checks each call in the order of reference
§10, answering with the real error envelopes ``{"status": N, "message": "…"}`` and the documented
Chinese messages, so the real client is what the tests exercise. Where the reference only guesses
(an exact message, which check comes first), the choice is marked [G] below.

Admin endpoints (JSON) let tests and the demo look inside and inject faults:
``GET /__admin__/state``, ``POST /__admin__/reset``, ``POST|DELETE /__admin__/faults``,
``POST /__admin__/orders`` (``{"orders": [...], "method": …}``, the stock-out method by default),
``GET /__admin__/orders?day=YYYY-MM-DD&method=…``.
"""

from __future__ import annotations

import bisect
import json
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from wdt_kingdee_assets.sandbox.credentials import WdtCredentials
from wdt_kingdee_assets.sandbox.datagen import (
    WAREHOUSES,
    CatalogMaterial,
    build_catalog,
    generate_order,
    generate_stockin,
)
from wdt_kingdee_assets.sandbox.faults import FaultPlan, FaultRule
from wdt_kingdee_assets.sandbox.httpserver import (
    HoldThenClose,
    ResetConnection,
    ServiceTime,
    SimRequest,
    SimResponse,
)
from wdt_kingdee_assets.wdt.signing import sign, split_appsecret, wdt_timestamp

OPERATION = "queryWithDetail"
API_PATH = "/openapi"
SUPPORTED_FAULTS = frozenset(
    {
        "delay",
        "timeout",
        "5xx",
        "reset",
        "throttle",
        "insert_rows",
        "html_error",
        "empty_body",
        "truncated_json",
    }
)
SYSTEM_PARAMS = ("sid", "key", "salt", "method", "v", "timestamp", "sign")
TIMESTAMP_TOLERANCE = 120
MAX_PAGE_SIZE = 2000
MAX_WINDOW = timedelta(days=30)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BEIJING = timezone(timedelta(hours=8))  # no DST in China since 1991: a fixed offset is exact

MSG_RATE = "超过每分钟最大调用频率限制，请稍后重试"
MSG_CONCURRENCY = "超过每分钟最大并发次数限制，请稍后重试"
MSG_STATUS_FILTER = "状态参数格式不正确，请用以逗号隔开的整数字符串为参数"
MSG_WINDOW = "您的查询时间过宽,查询时间不能大于30天"
# DOC-ERR lists the error; its exact wording in an answer, and its status, are a guess [G].
MSG_NO_WAREHOUSE = "无仓库访问权限"
MSG_AUTH = "验证失败"

_STATUS_FILTER = re.compile(r"^\d+(,\d+)*$")
_WDT_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_JAVA_INT = re.compile(r"^-?\d{1,10}$")
_INSERTED_IDS_FROM = 900_000_000_000  # far above datagen's day-ordinal ids


@dataclass(frozen=True)
class SimMethod:
    """One document query the simulator serves, as its official page describes it."""

    name: str
    key: str  # the order's id
    number: str  # the order's number, also a filter
    time_fields: dict[int, str]  # time_type → order field
    completed: int  # the status of a finished document (what inserted rows get)
    cancelled: int  # 已取消
    lines: str = "detail_list"

    @property
    def paged_only(self) -> str:
        return f"此方法仅支持分页查询：{self.name}"

    @property
    def params(self) -> frozenset[str]:
        """The body parameters its page documents; any other name is refused (status 2)."""
        return frozenset(
            {"start_time", "end_time", "time_type", "warehouse_no", "status", "process_no"}
            | {self.number}
        )


STOCKOUT = SimMethod(
    "wms.stockout.Process.queryWithDetail",
    "stockout_id",
    "stockout_no",
    {1: "created", 2: "consign_time", 3: "modified"},
    completed=110,
    cancelled=5,
)
STOCKIN = SimMethod(
    "wms.stockin.Process.queryWithDetail",
    "stockin_id",
    "stockin_no",
    {1: "created", 2: "check_time", 3: "modified"},  # 建单 / 审核 / 最后修改时间
    completed=80,
    cancelled=10,
)
METHODS = {method.name: method for method in (STOCKOUT, STOCKIN)}
METHOD = STOCKOUT.name  # the first method, the default of the admin routes
SORT_TIME_TYPE = 2  # each store is kept sorted by its documents' time_type 2 time


class _Reply(Exception):
    """Control flow, not an error: stop checking and answer with this error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.envelope = {"status": status, "message": message}


def _java_int(value: str) -> int:
    """Parse like Java's ``Integer.parseInt``: a millisecond timestamp overflows and fails."""
    if not _JAVA_INT.match(value) or not -(2**31) <= int(value) < 2**31:
        raise _Reply(1, f'For input string: "{value}"')
    return int(value)


def parse_stored_time(value: Any) -> datetime | None:
    """A stored order's time as naive Beijing time, from text or epoch ms; None if unusable."""
    if isinstance(value, str):
        try:
            return datetime.strptime(value, TIME_FORMAT)
        except ValueError:
            return None
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return datetime.fromtimestamp(int(value) / 1000, BEIJING).replace(tzinfo=None)
    return None


def _epoch_ms(value: Any) -> Any:
    moment = parse_stored_time(value) if isinstance(value, str) else None
    if moment is None:
        return value
    return int(moment.replace(tzinfo=BEIJING).timestamp() * 1000)


# How WDT names the units the sandbox's goods are counted in (its 2024 shape sends the codes).
UNIT_NAMES = {"Pcs": "个", "kg": "千克", "m": "米", "箱": "箱"}
# The 2020 answer's detail lines lack these; its orders lack the id and the warehouse code.
_NOT_IN_2020_LINES = frozenset({"rec_id", "spec_id", "position_details_list"})


def _named_unit(line: dict[str, Any]) -> dict[str, Any]:
    unit = line.get("base_unit_name")
    return {**line, "base_unit_name": UNIT_NAMES.get(unit, unit)}


def _older_shape(order: dict[str, Any], method: SimMethod) -> dict[str, Any]:
    """The order as the published 2020 answer has it (real-servers-vs-ours §2.2 #1)."""
    times = set(method.time_fields.values())
    older = {
        key: _epoch_ms(value) if key in times else value
        for key, value in order.items()
        if key not in (method.key, "warehouse_no")
    }
    older["freeze_reason"] = 0
    older["src_order_id"] = int(order[method.key]) % 100_000
    older["detail_list"] = [_older_line(line) for line in order["detail_list"]]
    return older


def _older_line(line: dict[str, Any]) -> dict[str, Any]:
    """A detail line without ids or positions: a line taken from one place keeps that place's
    batch, bin and expiry on the line (the 2020 fields); one from several places has none."""
    older = {key: value for key, value in line.items() if key not in _NOT_IN_2020_LINES}
    positions = line.get("position_details_list") or []
    if len(positions) == 1:
        place = positions[0]
        for name in ("batch_no", "position_no", "expire_date"):
            if place.get(name) and not older.get(name):
                older[name] = place[name]
    return _named_unit(older)


def _mark_decimal(value: Any) -> str:
    if isinstance(value, Decimal) and value.is_finite():
        return f"\x00{value}\x00"
    return str(value)


_MARKED_DECIMAL = re.compile(r'"\\u0000([-+0-9.Ee]+)\\u0000"')


def dumps_exact(value: Any) -> str:
    """JSON text with every ``Decimal`` as a JSON number, digit for digit (as WDT sends them).

    ``json.dumps`` can only make a Decimal a float (inexact) or a string. Each Decimal is
    therefore emitted as a NUL-delimited string marker, which the encoder always escapes as
    ``\\u0000`` (no real field contains NUL), and the markers are unquoted afterwards: the
    encoding stays in C, which matters when a benchmark pages through 100k lines.
    """
    text = json.dumps(value, ensure_ascii=False, default=_mark_decimal)
    return _MARKED_DECIMAL.sub(r"\1", text)


@dataclass
class _Row:
    """One stored order with its times parsed once, for filtering and ordering."""

    order: dict[str, Any]
    times: dict[int, datetime | None]  # by time_type
    sort_key: tuple[datetime, int]


def _row(order: dict[str, Any], method: SimMethod) -> _Row:
    parsed = {
        time_type: parse_stored_time(order.get(name))
        for time_type, name in method.time_fields.items()
    }
    # A real order always has valid times; sandbox data may carry a broken one on purpose (to
    # reach the normalizer's reject path), so filter such an order by its other times.
    fallback = next((moment for moment in parsed.values() if moment is not None), None)
    times = {key: moment or fallback for key, moment in parsed.items()}
    return _Row(order, times, (times[SORT_TIME_TYPE] or datetime.min, int(order[method.key])))


class _Store:
    """One method's documents, kept sorted by their time for windowed reads."""

    def __init__(self, method: SimMethod) -> None:
        self.method = method
        self.rows: dict[str, _Row] = {}
        self._sorted: list[_Row] | None = []
        self.sorted_keys: list[tuple[datetime, int]] = []

    def add(self, rows: Iterable[_Row]) -> None:
        for row in rows:
            self.rows[str(row.order[self.method.key])] = row
        self._sorted = None

    def clear(self) -> None:
        self.rows.clear()
        self._sorted = None

    def ordered(self) -> list[_Row]:
        if self._sorted is None:
            self._sorted = sorted(self.rows.values(), key=lambda row: row.sort_key)
            self.sorted_keys = [row.sort_key for row in self._sorted]
        return self._sorted


@dataclass(frozen=True)
class _Query:
    method: SimMethod
    filters: dict[str, Any]
    time_type: int
    start: datetime | None
    end: datetime | None
    page_no: int
    page_size: int
    calc_total: bool


class WdtSimulator:
    """The WDT open API for production stock-outs and stock-ins, in memory, thread-safe."""

    def __init__(
        self,
        credentials: WdtCredentials = WdtCredentials(),  # noqa: B008 - frozen, safe to share
        *,
        calls_per_minute: float = 0,
        max_concurrency: int = 0,
        latency: float = 0.0,
        per_order_latency: float = 0.0,
        datetime_format: Literal["string", "epoch_ms"] = "string",
        shape: Literal["2024", "2020", "mixed"] = "2024",
        unit_names: bool = False,
        visible_warehouses: Iterable[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = credentials
        # 权限校验: the warehouses this appkey may see (None: all). Rows of the others are not
        # answered at all, nor counted in total_count; asking for one by warehouse_no is refused.
        self.visible_warehouses = None if visible_warehouses is None else set(visible_warehouses)
        self._secret, self._salt = split_appsecret(credentials.appsecret)
        self.calls_per_minute = calls_per_minute  # 0 = unlimited
        self.max_concurrency = max_concurrency  # 0 = unlimited
        self.latency = latency
        # A page of 2000 orders with their lines is not answered as fast as a page of 100.
        self.per_order_latency = per_order_latency
        self._service_time = ServiceTime()
        self.datetime_format = datetime_format
        if shape not in ("2024", "2020", "mixed"):
            raise ValueError(f"shape must be 2024, 2020 or mixed, got {shape!r}")
        self.shape = shape
        self.unit_names = unit_names
        self._clock = clock
        # A throttle may last a stated time (`throttle,seconds=300`), by this server's clock.
        self.faults = FaultPlan(SUPPORTED_FAULTS, clock)
        self._lock = threading.RLock()
        self._stores = {name: _Store(method) for name, method in METHODS.items()}
        self._accepted: deque[float] = deque()
        self._in_flight = 0
        self._calls = 0
        self._inserted = 0
        self._catalog: list[CatalogMaterial] = build_catalog(seed=0, size=40, missing_ratio=0)

    # --- data -------------------------------------------------------------------------------

    def _store(self, method: str) -> _Store:
        if method not in self._stores:
            raise ValueError(f"no such method {method!r}; served: {sorted(self._stores)}")
        return self._stores[method]

    def add_orders(self, orders: Iterable[dict[str, Any]], method: str = METHOD) -> None:
        """Store orders of ``method`` (an order with a known id replaces the old one)."""
        store = self._store(method)
        key = store.method.key
        rows = []
        for order in orders:
            if not isinstance(order, dict) or not str(order.get(key, "")).isdigit():
                raise ValueError(f"every order must be an object with an integer {key}")
            # A private copy: callers may go on mutating what they passed in.
            parsed = json.loads(dumps_exact(order), parse_float=Decimal)
            rows.append(_row(parsed, store.method))
        with self._lock:
            store.add(rows)

    def change_order(
        self,
        number: str,
        *,
        cancel: bool = False,
        quantities: dict[str, Any] | None = None,
        materials: dict[str, str] | None = None,
        consign_time: str | None = None,
        add_line: dict[str, Any] | None = None,
        drop_line: str | None = None,
        method: str = METHOD,
    ) -> dict[str, Any]:
        """Change a stored document after the fact, as a warehouse does in WDT after a sync:
        cancel it (status 5 已取消 / 10 for stock-ins), set line quantities (spec_no → num) or
        materials (spec_no → new spec_no), move it to another time, add or drop a line. Its
        ``modified`` time becomes now (what ``time_type=3`` reads); returns the stored order."""
        store = self._store(method)
        spec = store.method
        with self._lock:
            row = next(
                (r for r in store.rows.values() if str(r.order.get(spec.number)) == number), None
            )
            if row is None:
                raise ValueError(f"no {spec.name} document numbered {number!r}")
            order = json.loads(dumps_exact(row.order), parse_float=Decimal)
            lines = order.get(spec.lines) or []
            if cancel:
                order["status"] = spec.cancelled
            for line in lines:
                code = str(line.get("spec_no"))
                if quantities and code in quantities:
                    line["num"] = Decimal(str(quantities[code]))
                    # A line now counted afresh: its positions no longer say how it was taken.
                    line.pop("position_details_list", None)
                if materials and code in materials:
                    line["spec_no"] = materials[code]
            if drop_line is not None:
                lines = [line for line in lines if str(line.get("spec_no")) != drop_line]
            if add_line is not None:
                lines.append(json.loads(dumps_exact(add_line), parse_float=Decimal))
            order[spec.lines] = lines
            if consign_time is not None:
                order[spec.time_fields[SORT_TIME_TYPE]] = consign_time
            now = datetime.fromtimestamp(self._clock(), BEIJING).replace(tzinfo=None)
            order["modified"] = now.strftime(TIME_FORMAT)
            store.add([_row(order, spec)])
            return order

    def reset(self) -> None:
        """Forget orders, calls, the rate window and faults."""
        with self._lock:
            for store in self._stores.values():
                store.clear()
            self._accepted.clear()
            self._calls = 0
            self._inserted = 0
        self.faults.clear()

    def state(self) -> dict[str, Any]:
        """The stock-out store's figures at the top (``orders``, ``by_day`` …), every method's
        under ``methods``."""
        with self._lock:
            stores = {name: list(store.rows.values()) for name, store in self._stores.items()}
            calls = self._calls

        def figures(rows: list[_Row]) -> dict[str, Any]:
            by_day = Counter(
                row.times[SORT_TIME_TYPE].date().isoformat()
                for row in rows
                if row.times[SORT_TIME_TYPE]
            )
            by_status = Counter(str(row.order.get("status")) for row in rows)
            return {
                "orders": len(rows),
                "by_day": dict(sorted(by_day.items())),
                "by_status": dict(sorted(by_status.items())),
            }

        return {
            **figures(stores[METHOD]),
            "methods": {name: figures(rows) for name, rows in stores.items()},
            "calls": calls,
            "faults": self.faults.snapshot(),
        }

    def orders_on(self, day: date | None, method: str = METHOD) -> list[dict[str, Any]]:
        """Stored orders of ``method`` (by their day — consign day, check day — when ``day`` is
        given), in the API's order."""
        store = self._store(method)
        with self._lock:
            rows = store.ordered()
        return [
            row.order
            for row in rows
            if day is None
            or (row.times[SORT_TIME_TYPE] is not None and row.times[SORT_TIME_TYPE].date() == day)
        ]

    # --- HTTP -------------------------------------------------------------------------------

    def handle(self, request: SimRequest) -> SimResponse:
        if request.path == API_PATH:
            if request.method != "POST":
                return SimResponse.text("405 Method Not Allowed", 405)
            return self._api(request)
        if request.path.startswith("/__admin__/"):
            return self._admin(request)
        return SimResponse.json({"error": f"no such path {request.path}"}, 404)

    def _api(self, request: SimRequest) -> SimResponse:
        with self._lock:
            self._calls += 1
            self._in_flight += 1
            # Concurrency is judged on arrival: this call and those still being answered.
            concurrent = self._in_flight
        self._service_time.start(self.latency)
        try:
            response = self._respond(request, concurrent)
            self._service_time.wait()
            return response
        finally:
            with self._lock:
                self._in_flight -= 1

    def _respond(self, request: SimRequest, concurrent: int) -> SimResponse:
        fault = self.faults.take(OPERATION)
        if fault is not None:
            early = self._fault_before_work(fault)
            if early is not None:
                return early
        try:
            query = self._validate(request, concurrent)
            data, query_window = self._answer(query)
            body = dumps_exact({"status": 0, "data": data}).encode("utf-8")
        except _Reply as reply:
            return SimResponse.json(reply.envelope)
        if fault is not None and fault.kind == "truncated_json":
            return SimResponse(200, body[: len(body) // 2], [_JSON_TYPE])
        if fault is not None and fault.kind == "insert_rows" and query_window is not None:
            self._insert_rows(fault.rows, query)
        return SimResponse(200, body, [_JSON_TYPE])

    def _fault_before_work(self, fault: FaultRule) -> SimResponse | None:
        if fault.kind == "delay":
            self._service_time.add(fault.seconds)
        elif fault.kind == "timeout":
            raise HoldThenClose(fault.seconds)
        elif fault.kind == "reset":
            raise ResetConnection()
        elif fault.kind == "5xx":
            page = f"<html><body><h1>{fault.status} Server Error</h1><hr>nginx</body></html>"
            return SimResponse.text(page, fault.status, "text/html")
        elif fault.kind == "throttle":
            return SimResponse.json({"status": 100, "message": MSG_RATE})
        elif fault.kind == "html_error":
            page = (
                "<!DOCTYPE html><html><head><title>系统维护中</title></head>"
                "<body>请稍后再试</body></html>"
            )
            return SimResponse.text(page, 200, "text/html")
        elif fault.kind == "empty_body":
            return SimResponse(200, b"", [_JSON_TYPE])
        return None

    # --- the §10 checklist --------------------------------------------------------------------

    def _validate(self, request: SimRequest, concurrent: int) -> _Query:
        query = request.query
        for name in SYSTEM_PARAMS:
            if not query.get(name):
                raise _Reply(1, f"参数错误: 缺少系统参数 {name}")  # [G] exact text
        if query["v"] != "1.0":
            raise _Reply(8, "版本错误")
        timestamp = _java_int(query["timestamp"])
        if abs(timestamp - wdt_timestamp(self._clock())) > TIMESTAMP_TOLERANCE:
            raise _Reply(7, "时间戳错误")
        if query["sid"] != self.credentials.sid:
            raise _Reply(1, "sid is not exists")
        if query["key"] != self.credentials.appkey or query["salt"] != self._salt:
            raise _Reply(1, MSG_AUTH)
        try:
            body_text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise _Reply(1, MSG_AUTH) from None
        # Verified over the raw bytes received: the official SDKs serialise JSON differently.
        if sign(dict(query), body_text, self._secret) != query["sign"]:
            raise _Reply(1, MSG_AUTH)
        method = METHODS.get(query["method"])
        if method is None:
            raise _Reply(1, f"method is not exists: {query['method']}")  # [G] exact text
        try:
            arguments = json.loads(body_text, parse_float=Decimal)
        except ValueError:
            raise _Reply(1, "参数错误") from None
        if not isinstance(arguments, list) or len(arguments) != 1:
            raise _Reply(1, "invalid argument count")
        params = arguments[0]
        if not isinstance(params, dict):
            raise _Reply(1, "argument type mismatch")
        # Status 2: "是否为接口文档内的参数信息", the message being the field's name (DOC-ERR).
        unknown = sorted(set(params) - method.params)
        if unknown:
            raise _Reply(2, unknown[0])
        if "page_no" not in query or "page_size" not in query:
            raise _Reply(100, method.paged_only)
        page_no = _java_int(query["page_no"])
        page_size = _java_int(query["page_size"])
        # Above 2000 the real server may clamp or refuse [G]: refusing is the strict reading,
        # and a client that respects the limit works under both.
        if not 1 <= page_size <= MAX_PAGE_SIZE or page_no < 0:
            raise _Reply(100, f"分页参数错误: page_size 范围 1-{MAX_PAGE_SIZE}, page_no 从0开始")
        calc_total = query.get("calc_total", "0") == "1"
        warehouse = params.get("warehouse_no")
        if warehouse not in (None, "") and not self._visible(str(warehouse)):
            raise _Reply(100, MSG_NO_WAREHOUSE)
        status = params.get("status")
        if status not in (None, "") and not _STATUS_FILTER.match(str(status)):
            raise _Reply(100, MSG_STATUS_FILTER)
        start, end = self._window(params, method)
        try:
            time_type = int(params.get("time_type") or 1)
        except (TypeError, ValueError):
            raise _Reply(1, "argument type mismatch") from None
        if time_type not in method.time_fields:
            raise _Reply(100, "time_type参数错误")  # [G] exact text
        self._admit(concurrent)
        return _Query(method, params, time_type, start, end, page_no, page_size, calc_total)

    def _window(
        self, params: dict[str, Any], method: SimMethod
    ) -> tuple[datetime | None, datetime | None]:
        raw_start, raw_end = params.get("start_time"), params.get("end_time")
        # Both pages: without a document or production number the window is required.
        if (
            not raw_start
            and not raw_end
            and (params.get(method.number) or params.get("process_no"))
        ):
            return None, None
        if not raw_start or not raw_end:
            raise _Reply(100, "参数中必须包含起止时间")  # [G] generic table text
        start, end = (self._parse_time(str(raw)) for raw in (raw_start, raw_end))
        if end - start > MAX_WINDOW:
            raise _Reply(100, MSG_WINDOW)
        return start, end

    @staticmethod
    def _parse_time(text: str) -> datetime:
        try:
            if _WDT_TIME.match(text):
                return datetime.strptime(text, TIME_FORMAT)
        except ValueError:
            pass
        raise _Reply(100, f"Unparseable date: {text}")

    def _admit(self, concurrent: int) -> None:
        """The server's limits, last on the checklist; only admitted calls use up the quota [G]."""
        with self._lock:
            if self.max_concurrency and concurrent > self.max_concurrency:
                raise _Reply(100, MSG_CONCURRENCY)
            if self.calls_per_minute > 0:
                now = self._clock()
                while self._accepted and now - self._accepted[0] >= 60.0:
                    self._accepted.popleft()
                if len(self._accepted) >= max(1, int(self.calls_per_minute)):
                    raise _Reply(100, MSG_RATE)
                self._accepted.append(now)

    # --- answering ----------------------------------------------------------------------------

    def _visible(self, warehouse_no: str | None) -> bool:
        return self.visible_warehouses is None or warehouse_no in self.visible_warehouses

    def _matches(self, row: _Row, query: _Query) -> bool:
        order, filters = row.order, query.filters
        if not self._visible(order.get("warehouse_no")):
            return False
        status = filters.get("status")
        if status not in (None, "") and str(order.get("status")) not in str(status).split(","):
            return False
        for name in ("warehouse_no", query.method.number, "process_no"):
            wanted = filters.get(name)
            if wanted not in (None, "") and str(order.get(name)) != str(wanted):
                return False
        if query.start is None or query.end is None:
            return True
        moment = row.times[query.time_type]
        # Inclusive on both ends. The real server's inclusivity is undocumented [G]; the client
        # overlaps windows and filters by day, so it is correct under either reading.
        return moment is not None and query.start <= moment <= query.end

    def _answer(self, query: _Query) -> tuple[dict[str, Any], tuple[datetime, datetime] | None]:
        store = self._stores[query.method.name]
        with self._lock:
            rows = store.ordered()
            if (
                query.time_type == SORT_TIME_TYPE
                and query.start is not None
                and query.end is not None
            ):
                # Rows are sorted by this time, so the window is one contiguous slice.
                low = bisect.bisect_left(store.sorted_keys, (query.start, -1))
                high = bisect.bisect_right(store.sorted_keys, (query.end, 2**63))
                rows = rows[low:high]
            matched = [row for row in rows if self._matches(row, query)]
        first = query.page_no * query.page_size
        page = [
            self.served(row.order, query.method) for row in matched[first : first + query.page_size]
        ]
        self._service_time.add(self.per_order_latency * len(page))
        data: dict[str, Any] = {"order": page}
        if query.calc_total:
            data = {"total_count": len(matched), **data}
        window = (query.start, query.end) if query.start and query.end else None
        return data, window

    def served(self, order: dict[str, Any], method: SimMethod = STOCKOUT) -> dict[str, Any]:
        """A stored order as this server answers it: its build's row shape (``shape``: the
        stock-out method's published 2020 answer has no ids, no warehouse_no, no positions and
        epoch-ms times, and fields the 2024 page lacks; ``mixed`` answers every odd-numbered
        order so), its units by name (``unit_names``) and its times (``datetime_format``)."""
        older = (
            method is STOCKOUT
            and self.shape != "2024"
            and (self.shape == "2020" or int(order[method.key]) % 2 == 1)
        )
        if older:
            return _older_shape(order, method)
        if self.unit_names:
            order = {**order, "detail_list": [_named_unit(line) for line in order["detail_list"]]}
        if self.datetime_format == "string":
            return order
        times = set(method.time_fields.values())
        return {key: _epoch_ms(value) if key in times else value for key, value in order.items()}

    def _insert_rows(self, count: int, query: _Query) -> None:
        """New completed orders stamped at the window's start: every later page shifts by one."""
        assert query.start is not None
        filters, method = query.filters, query.method
        wanted = [int(s) for s in str(filters.get("status") or method.completed).split(",")]
        status = method.completed if method.completed in wanted else wanted[0]
        wanted_warehouse = str(filters.get("warehouse_no") or "")
        warehouse = (
            (wanted_warehouse, dict(WAREHOUSES).get(wanted_warehouse, "仓库"))
            if wanted_warehouse
            else None
        )
        orders = []
        with self._lock:
            for _ in range(count):
                self._inserted += 1
                number = self._inserted
                rng = random.Random(f"insert:{number}")
                document_id = _INSERTED_IDS_FROM + number
                process_no = f"PS{query.start:%Y%m%d}9{number:03d}"
                if method is STOCKIN:
                    order = generate_stockin(
                        rng,
                        stockin_id=document_id,
                        stockin_no=f"RK{query.start:%Y%m%d}9{number:05d}",
                        process_no=process_no,
                        check_time=query.start,
                        catalog=self._catalog,
                        status=status,
                        warehouse=warehouse,
                    )
                else:
                    order = generate_order(
                        rng,
                        stockout_id=document_id,
                        stockout_no=f"CK{query.start:%Y%m%d}9{number:05d}",
                        process_no=process_no,
                        consign_time=query.start,
                        catalog=self._catalog,
                        status=status,
                        warehouse=warehouse,
                    )
                stamp = query.start.strftime(TIME_FORMAT)
                order.update({name: stamp for name in method.time_fields.values()})
                orders.append(order)
            self.add_orders(orders, method.name)

    # --- admin --------------------------------------------------------------------------------

    def _admin(self, request: SimRequest) -> SimResponse:
        route = (request.method, request.path.removeprefix("/__admin__/").strip("/"))
        try:
            payload = json.loads(request.body or b"{}", parse_float=Decimal)
        except ValueError:
            return SimResponse.json({"error": "the body is not JSON"}, 400)
        if route == ("GET", "state"):
            return SimResponse.json(self.state())
        if route == ("POST", "reset"):
            self.reset()
            return SimResponse.json({"ok": True})
        if route == ("POST", "faults"):
            return self._add_faults(payload)
        if route == ("DELETE", "faults"):
            self.faults.clear()
            return SimResponse.json({"ok": True})
        if route == ("POST", "orders"):
            orders = payload.get("orders") if isinstance(payload, dict) else None
            if not isinstance(orders, list):
                return SimResponse.json({"error": 'expected {"orders": [...]}'}, 400)
            try:
                self.add_orders(orders, payload.get("method") or METHOD)
            except ValueError as exc:
                return SimResponse.json({"error": str(exc)}, 400)
            return SimResponse.json({"added": len(orders)})
        if route == ("POST", "orders/change"):
            if not isinstance(payload, dict) or not isinstance(payload.get("number"), str):
                return SimResponse.json({"error": 'expected {"number": "...", ...}'}, 400)
            changes = {k: v for k, v in payload.items() if k not in ("number",)}
            try:
                changed = self.change_order(payload["number"], **changes)
            except (TypeError, ValueError) as exc:
                return SimResponse.json({"error": str(exc)}, 400)
            return SimResponse(200, dumps_exact({"order": changed}).encode("utf-8"), [_JSON_TYPE])
        if route == ("GET", "orders"):
            day_text = request.query.get("day")
            try:
                day = date.fromisoformat(day_text) if day_text else None
            except ValueError:
                return SimResponse.json({"error": f"day must be YYYY-MM-DD, got {day_text!r}"}, 400)
            method = request.query.get("method") or METHOD
            if method not in METHODS:
                return SimResponse.json({"error": f"no such method {method!r}"}, 400)
            served = [self.served(o, METHODS[method]) for o in self.orders_on(day, method)]
            text = dumps_exact({"orders": served})
            return SimResponse(200, text.encode("utf-8"), [_JSON_TYPE])
        return SimResponse.json({"error": f"no admin route {route[0]} {request.path}"}, 404)

    def _add_faults(self, payload: Any) -> SimResponse:
        specs = payload.get("rules") if isinstance(payload, dict) else None
        if not isinstance(specs, list):
            return SimResponse.json({"error": 'expected {"rules": ["kind,key=value", ...]}'}, 400)
        try:
            rules = [_parse_rule(spec) for spec in specs]
            for rule in rules:
                if rule.kind not in self.faults.supported:
                    raise ValueError(
                        f"fault kind {rule.kind!r} is not supported by the WDT simulator; "
                        f"supported: {sorted(self.faults.supported)}"
                    )
        except (ValueError, ValidationError) as exc:
            return SimResponse.json({"error": str(exc)}, 400)
        for rule in rules:
            self.faults.add(rule)
        return SimResponse.json({"added": len(rules), "faults": self.faults.snapshot()})


_JSON_TYPE = ("Content-Type", "application/json; charset=utf-8")


def _parse_rule(spec: Any) -> FaultRule:
    if isinstance(spec, str):
        return FaultRule.parse(spec)
    if isinstance(spec, dict):
        return FaultRule.model_validate(spec)
    raise ValueError(f"a fault rule is a string or an object, got {type(spec).__name__}")
