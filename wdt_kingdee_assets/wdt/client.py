"""A `requests` client for WDT's paged document queries (:mod:`wdt.methods`), first of them
``wms.stockout.Process.queryWithDetail`` (reference §2–§6, §9).

One page per call, signed, paced by the process-wide limiter and retried by one policy:
transient and protocol failures are retried with bounded backoff; a throttled answer is waited
out as WDT asks (minutes, :class:`ThrottleWait`); rejected and business errors are raised at once.
Every retry and every wait is reported through ``log`` as it happens. No Dagster in here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import requests

from wdt_kingdee_assets.throttle import Backoff, RateLimiter, ThrottleWait, shared_limiter
from wdt_kingdee_assets.wdt.errors import (
    WdtBusinessError,
    WdtError,
    WdtProtocolError,
    WdtRejectedError,
    WdtThrottledError,
    WdtTransientError,
    error_for_envelope,
)
from wdt_kingdee_assets.wdt.methods import WdtMethod
from wdt_kingdee_assets.wdt.signing import sign, split_appsecret, wdt_timestamp

BEIJING = ZoneInfo("Asia/Shanghai")
WDT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_PAGE_SIZE = 2000
_EXCERPT_CHARS = 200


def to_wdt_time(moment: datetime, *, round_up: bool = False) -> str:
    """``moment`` as the Beijing local ``yyyy-MM-dd HH:mm:ss`` the API expects.

    The API has whole seconds only; ``round_up`` moves a fractional end of window up to the next
    second so that truncation never narrows the window.
    """
    if moment.tzinfo is None:
        raise ValueError(f"WDT query times must be timezone-aware, got naive {moment!r}")
    local = moment.astimezone(BEIJING)
    if round_up and local.microsecond:
        local = local.replace(microsecond=0) + timedelta(seconds=1)
    return local.strftime(WDT_TIME_FORMAT)


@dataclass(frozen=True)
class DocumentQuery:
    """One query of a WDT document method: the method and its business parameters (``body[0]``)."""

    method: WdtMethod
    start_time: datetime  # tz-aware; sent as Beijing local time
    end_time: datetime
    time_type: int  # which of the method's time fields the window filters on
    status: str | None = None  # comma-separated statuses; None = WDT's default
    warehouse_no: str | None = None

    def __post_init__(self) -> None:
        for name in ("start_time", "end_time"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"DocumentQuery.{name} must be timezone-aware")
        self.method.time_field(self.time_type)  # raises, naming the method, for another

    @property
    def time_field(self) -> str:
        """The order field this query's window is on (``consign_time``, ``check_time`` …)."""
        return self.method.time_field(self.time_type)

    def body_params(self) -> dict[str, Any]:
        """The object sent as the body's only element; unset filters are left out."""
        params: dict[str, Any] = {
            "start_time": to_wdt_time(self.start_time),
            "end_time": to_wdt_time(self.end_time, round_up=True),
            "time_type": self.time_type,
        }
        if self.status is not None:
            params["status"] = self.status
        if self.warehouse_no is not None:
            params["warehouse_no"] = self.warehouse_no
        return params


@dataclass
class DocumentPage:
    page_no: int
    orders: list[dict[str, Any]]
    total_count: int | None  # present when the page was asked with calc_total=1


@dataclass
class CallStats:
    """What the client did, for run metadata; increments are thread-safe."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    waited_seconds: float = 0.0  # limiter waits plus backoff sleeps
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(
        self, *, calls: int = 0, retries: int = 0, throttled: int = 0, waited: float = 0.0
    ) -> None:
        with self._lock:
            self.calls += calls
            self.retries += retries
            self.throttled += throttled
            self.waited_seconds += waited


def _strip_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _excerpt(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    short = " ".join(text.split())[:_EXCERPT_CHARS]
    return repr(short) + (" …" if len(text) > _EXCERPT_CHARS else "")


class WdtClient:
    """Signed, paced, retried calls to WDT's paged document queries."""

    def __init__(
        self,
        base_url: str,
        sid: str,
        appkey: str,
        appsecret: str,
        *,
        page_size: int = MAX_PAGE_SIZE,
        calls_per_minute: float = 60.0,
        timeout: float = 30.0,
        backoff: Backoff | None = None,
        throttle_wait: ThrottleWait | None = None,
        log: Callable[[str], None] | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
        self.base_url = base_url
        self.sid = sid
        self.appkey = appkey
        self._secret, self._salt = split_appsecret(appsecret)
        self.page_size = page_size
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self.throttle_wait = throttle_wait or ThrottleWait()
        self._log = log or (lambda message: None)
        self.limiter: RateLimiter = shared_limiter(("wdt", base_url, sid), calls_per_minute)
        self.stats = CallStats()
        self._session = session or requests.Session()
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"WdtClient(base_url={self.base_url!r}, sid={self.sid!r}, appkey={self.appkey!r}, "
            f"page_size={self.page_size})"
        )

    def query_page(
        self,
        query: DocumentQuery,
        page_no: int,
        *,
        page_size: int | None = None,
        calc_total: bool = True,
    ) -> DocumentPage:
        """One page (``page_no`` is 0-based), retried per the client's policy."""
        size = self.page_size if page_size is None else page_size
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {size}")
        if page_no < 0:
            raise ValueError(f"page_no is 0-based and cannot be negative, got {page_no}")
        body = json.dumps([query.body_params()], ensure_ascii=False, separators=(",", ":"))
        pager = {
            "page_size": str(size),
            "page_no": str(page_no),
            "calc_total": "1" if calc_total else "0",
        }
        data = self._call(query.method, pager, body)
        return self._page(query.method, data, page_no, calc_total)

    def by_number(self, method: WdtMethod, number: str) -> dict[str, Any] | None:
        """The document numbered ``number`` as WDT holds it now, in any status; None when WDT
        has none. A number needs no time window (the method's page says so); every status is
        asked for explicitly, as nothing says which ones WDT answers when none is given [G]."""
        params = {method.number: number, "status": ",".join(map(str, sorted(method.statuses)))}
        body = json.dumps([params], ensure_ascii=False, separators=(",", ":"))
        pager = {"page_size": "10", "page_no": "0", "calc_total": "0"}
        page = self._page(method, self._call(method, pager, body), 0, False)
        found = [order for order in page.orders if str(order.get(method.number)) == number]
        return found[0] if found else None

    def count(self, query: DocumentQuery) -> int:
        """WDT's ``total_count`` for ``query`` at the cost of one one-row page."""
        total = self.query_page(query, 0, page_size=1, calc_total=True).total_count
        assert total is not None  # _page guarantees it when calc_total is asked
        return total

    def _call(self, method: WdtMethod, pager: Mapping[str, str], body: str) -> Any:
        attempts = max(1, self.backoff.max_attempts)
        rests = self.throttle_wait.waits()
        failures = throttled = 0
        while True:
            try:
                return self._call_once(method.name, pager, body)
            except (WdtRejectedError, WdtBusinessError):
                raise
            except WdtThrottledError as error:
                self.stats.add(throttled=1)
                if throttled == len(rests):
                    raise
                delay = self.throttle_wait.jittered(rests[throttled])
                throttled += 1
                self._log(
                    f"WDT throttled ({error.server_message}), waiting {delay:.0f} s, "
                    f"attempt {throttled + 1} of {len(rests) + 1}"
                )
            except WdtError as error:
                failures += 1
                if failures == attempts:
                    raise
                delay = self.backoff.delay(failures)
                self._log(
                    f"WDT call failed ({error}), retrying in {delay:.1f} s, "
                    f"attempt {failures + 1} of {attempts}"
                )
            self.stats.add(retries=1, waited=delay)
            self._sleep(delay)

    def _call_once(self, method: str, pager: Mapping[str, str], body: str) -> Any:
        self.stats.add(waited=self.limiter.acquire())
        self.stats.add(calls=1)
        params = {
            "sid": self.sid,
            "key": self.appkey,
            "salt": self._salt,
            "method": method,
            "v": "1.0",
            # Fresh per attempt: a retry after a long backoff must stay inside the ±120 s window.
            "timestamp": str(wdt_timestamp(self._clock())),
            **pager,
        }
        params["sign"] = sign(params, body, self._secret)
        where = _strip_query(self.base_url)
        try:
            response = self._session.post(
                self.base_url,
                params=params,
                data=body.encode("utf-8"),
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self.timeout,
            )
        except requests.Timeout:
            # `from None`: requests' text holds the full URL, its query (sid, salt, sign) too.
            raise WdtTransientError(
                f"{method}: no answer from {where} within {self.timeout}s", method=method
            ) from None
        except requests.RequestException as exc:
            raise WdtTransientError(
                f"{method}: connection to {where} failed ({type(exc).__name__})",
                method=method,
            ) from None
        return self._envelope_data(method, response, where)

    def _envelope_data(self, method: str, response: requests.Response, where: str) -> Any:
        raw = response.content
        try:
            envelope = json.loads(raw, parse_float=Decimal)
        except ValueError:
            envelope = None
        status = envelope.get("status") if isinstance(envelope, dict) else None
        if isinstance(status, str) and status.strip().isdigit():
            status = int(status)
        # The reference guesses business errors come with HTTP 200; an error envelope is honoured
        # whatever the HTTP status, so either reading classifies the same way.
        if isinstance(status, int) and not isinstance(status, bool) and status != 0:
            message = str(envelope.get("message", ""))
            raise error_for_envelope(method, status, message)
        if response.status_code >= 500:
            raise WdtTransientError(
                f"{method}: HTTP {response.status_code} from {where}: {_excerpt(raw)}",
                method=method,
            )
        if status != 0 or response.status_code != 200 or "data" not in envelope:
            raise WdtProtocolError(
                f"{method}: not a WDT envelope (HTTP {response.status_code}, "
                f"{len(raw)} bytes) from {where}: {_excerpt(raw)}",
                method=method,
            )
        return envelope["data"]

    def _page(self, method: WdtMethod, data: Any, page_no: int, calc_total: bool) -> DocumentPage:
        def invalid(why: str) -> WdtProtocolError:
            return WdtProtocolError(
                f"{method.name}: page {page_no} answer {why}", method=method.name
            )

        if isinstance(data, dict):
            orders = data.get("order")
            total = data.get("total_count")
        elif isinstance(data, list):
            # Sibling qjb methods answer a bare array (count elsewhere); the reference says this one
            # does not, but accepting both costs nothing.
            orders, total = data, None
        else:
            raise invalid(f"has data of type {type(data).__name__}")
        # An empty page may omit `order` or send null [G]; an empty list is the same answer.
        orders = [] if orders is None else orders
        # An older answer has no id (a published 2020 one): its number identifies the order.
        if not isinstance(orders, list) or not all(
            isinstance(order, dict) and (method.key in order or method.number in order)
            for order in orders
        ):
            raise invalid(
                f"has an `order` that is not a list of orders with {method.key} or {method.number}"
            )
        if total is not None:
            try:
                total = int(total)
            except (TypeError, ValueError):
                raise invalid(f"has a non-integer total_count {str(total)[:40]!r}") from None
        elif calc_total:
            raise invalid("lacks total_count although calc_total=1 was asked")
        return DocumentPage(page_no=page_no, orders=orders, total_count=total)
