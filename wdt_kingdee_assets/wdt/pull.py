"""A complete pull of one query: windows of at most 30 days, all pages, checked against WDT's count.

Rows can move while we page (an order inserted before the current page shifts every later row
by one, so one row is read twice and another never), so a single pass over the pages proves
nothing by itself. The pull repeats full passes, bounded, until the numbers add up, and fails
loudly with both numbers otherwise (SPEC §3: never a silently short day).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from wdt_kingdee_assets.wdt.client import BEIJING, WDT_TIME_FORMAT, DocumentQuery, WdtClient
from wdt_kingdee_assets.wdt.errors import (
    IncompletePullError,
    WdtBusinessError,
    WdtError,
    WdtTransientError,
)
from wdt_kingdee_assets.wdt.methods import WdtMethod
from wdt_kingdee_assets.wdt.spool import OrderSpool, SpooledOrder

MAX_WINDOW_DAYS = 30


def _whole_seconds(moment: datetime, *, round_up: bool) -> datetime:
    floor = moment.replace(microsecond=0)
    return floor + timedelta(seconds=1) if round_up and floor != moment else floor


def split_window(
    start: datetime, end: datetime, max_days: int = MAX_WINDOW_DAYS
) -> list[tuple[datetime, datetime]]:
    """Consecutive windows of at most ``max_days`` covering ``[start, end]``.

    Windows share their boundaries (one's end is the next one's start): whether WDT treats
    ``start_time``/``end_time`` as inclusive is undocumented, and an order stamped exactly on a
    boundary is then read by at least one window under every reading; the pull de-duplicates
    it by the method's key. Boundaries are whole seconds (the API has no finer resolution), the
    start rounded down and the end up, so no window is narrowed by the wire format.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("split_window needs timezone-aware datetimes")
    if end < start:
        raise ValueError(f"window ends before it starts: {start.isoformat()} > {end.isoformat()}")
    if max_days < 1:
        raise ValueError(f"max_days must be at least 1, got {max_days}")
    start = _whole_seconds(start, round_up=False)
    end = _whole_seconds(end, round_up=True)
    step = timedelta(days=max_days)
    windows = []
    cursor = start
    while True:
        upper = min(cursor + step, end)
        windows.append((cursor, upper))
        if upper >= end:
            return windows
        cursor = upper


@dataclass
class PullResult:
    """The pulled orders lie in ``spool``; ``entries`` says where, sorted by the window's time,
    then the method's key. A large day is streamed from there (``spool.get``); ``orders`` reads
    them all into memory, for the small pulls that want them at once."""

    entries: list[SpooledOrder]
    spool: OrderSpool
    total_count: int  # distinct orders WDT counted over all windows (boundary twins once)
    pages: int  # page calls made, all passes and windows
    passes: int  # full passes made, summed over windows
    windows: int
    page_size: int = 0  # the page size the pull ended with
    step_downs: list[str] = field(default_factory=list)  # each smaller page size, and why

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every order, each exactly as WDT sent it, in the entries' order."""
        return [self.spool.get(entry) for entry in self.entries]


# The page size a pull steps down to, at the least (WDT_PAGE_SIZE below it is kept as it is).
MIN_STEP_PAGE_SIZE = 100
# A refusal of the page itself [G: WDT's wording for too large a page is not documented].
_PAGE_REFUSED = ("page_size", "分页", "页大小")


@dataclass
class _Pager:
    """The page size of one pull: it starts at the client's and halves when a page of that
    size times out or is refused, for the rest of the pull."""

    size: int
    floor: int
    step_downs: list[str] = field(default_factory=list)
    on_step_down: Callable[[str], None] | None = None

    def step_down(self, error: WdtError) -> bool:
        """Whether a smaller page may help with ``error`` (then the size is halved)."""
        pages_refused = isinstance(error, WdtBusinessError) and any(
            marker in str(error) for marker in _PAGE_REFUSED
        )
        if self.size <= self.floor or not (isinstance(error, WdtTransientError) or pages_refused):
            return False
        smaller = max(self.floor, self.size // 2)
        said = f"page_size {self.size} → {smaller}: {error}"
        self.step_downs.append(said)
        if self.on_step_down:
            self.on_step_down(f"WDT pages of {self.size} failed, asking {smaller} a page: {error}")
        self.size = smaller
        return True


@dataclass
class _Pass:
    orders: dict[str, SpooledOrder]
    totals: list[int]
    pages: int
    overran: bool  # stopped by the page cap before the pages covered the total

    @property
    def consistent(self) -> bool:
        """One snapshot: the total never changed and every counted order was read once."""
        return (
            not self.overran and len(set(self.totals)) == 1 and len(self.orders) == self.totals[-1]
        )


def order_key(order: dict[str, Any], method: WdtMethod) -> str:
    """The de-duplication key: the method's id (``stockout_id``) as text, so 42 and "42" are
    one order. An older answer without the id (a published 2020 one has none) is keyed by the
    document's number instead, which WDT keeps unique as well."""
    ident = order.get(method.key)
    if ident is None or ident == "":
        return f"{method.number}:{order.get(method.number)}"
    return str(ident)


def _time_sort_key(value: Any) -> tuple[int, Decimal, str]:
    # Times arrive as 'yyyy-MM-dd HH:mm:ss' or as epoch ms (reference §7); anything else sorts
    # last rather than failing here: judging it is the normalizer's job.
    if isinstance(value, str):
        try:
            moment = datetime.strptime(value, WDT_TIME_FORMAT).replace(tzinfo=BEIJING)
        except ValueError:
            return (1, Decimal(0), value)
        return (0, Decimal(int(moment.timestamp() * 1000)), "")
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return (0, Decimal(value), "")
    return (1, Decimal(0), str(value))


def _id_sort_key(key: str) -> tuple[int, Decimal, str]:
    try:
        return (0, Decimal(key), "")
    except InvalidOperation:
        return (1, Decimal(0), key)


def sort_orders(entries: list[SpooledOrder]) -> list[SpooledOrder]:
    """A stable, documented order: by the window's time field, then the method's key."""
    return sorted(entries, key=lambda entry: (_time_sort_key(entry.time), _id_sort_key(entry.key)))


def _one_pass(client: WdtClient, query: DocumentQuery, size: int, spool: OrderSpool) -> _Pass:
    orders: dict[str, SpooledOrder] = {}
    totals: list[int] = []
    page_no = 0
    page_cap: int | None = None
    while True:
        page = client.query_page(query, page_no, page_size=size, calc_total=True)
        assert page.total_count is not None  # asked with calc_total=1
        totals.append(page.total_count)
        for order in page.orders:
            key = order_key(order, query.method)
            orders[key] = spool.put(order, key, query)
        if page_cap is None:
            # Rows inserted faster than we page would keep the pass going forever; past twice
            # the first count's pages the pass is inconsistent anyway and the next one starts.
            page_cap = 2 * (-(-page.total_count // size)) + 1
        page_no += 1
        if len(page.orders) < size or page_no * size >= page.total_count:
            return _Pass(orders, totals, page_no, overran=False)
        if page_no >= page_cap:
            return _Pass(orders, totals, page_no, overran=True)


def _describe(query: DocumentQuery) -> str:
    start = query.start_time.astimezone(BEIJING).strftime(WDT_TIME_FORMAT)
    end = query.end_time.astimezone(BEIJING).strftime(WDT_TIME_FORMAT)
    return f"window {start} .. {end} (Beijing, time_type={query.time_type}, status={query.status})"


def _pass_of(client: WdtClient, query: DocumentQuery, pager: _Pager, spool: OrderSpool) -> _Pass:
    """One pass, begun again with smaller pages when a page of this size fails (a pass never
    mixes page sizes: the offsets would shift)."""
    while True:
        try:
            return _one_pass(client, query, pager.size, spool)
        except WdtError as exc:
            if not pager.step_down(exc):
                raise


def _pull_window(
    client: WdtClient, query: DocumentQuery, max_passes: int, pager: _Pager, spool: OrderSpool
) -> tuple[dict[str, SpooledOrder], int, int, int]:
    """(orders by key, WDT's total, pages, passes) for one window of at most 30 days."""
    union: dict[str, SpooledOrder] = {}
    pages = 0
    for passes in range(1, max_passes + 1):
        this = _pass_of(client, query, pager, spool)
        pages += this.pages
        union.update(this.orders)  # a later pass has the fresher copy of an order
        latest_total = this.totals[-1]
        if this.consistent:
            # Preferred over the union: the union may still hold orders that left the window
            # (cancelled, re-timed) after an earlier pass read them.
            return this.orders, latest_total, pages, passes
        if len(union) == latest_total:
            return union, latest_total, pages, passes
    raise IncompletePullError(
        method=query.method.name,
        expected=latest_total,
        got=len(union),
        window=_describe(query),
        passes=max_passes,
    )


def pull_documents(
    client: WdtClient,
    query: DocumentQuery,
    *,
    max_passes: int = 3,
    on_step_down: Callable[[str], None] | None = None,
) -> PullResult:
    """Every order WDT reports for ``query``, each once, or :class:`IncompletePullError`.

    Pages are the client's size (WDT allows 2000); a page that times out or is refused for its
    size is asked again in halves, down to 100 (``on_step_down`` hears each step, with why)."""
    if max_passes < 1:
        raise ValueError(f"max_passes must be at least 1, got {max_passes}")
    pager = _Pager(
        client.page_size, min(MIN_STEP_PAGE_SIZE, client.page_size), on_step_down=on_step_down
    )
    windows = split_window(query.start_time, query.end_time, query.method.max_window_days)
    spool = OrderSpool()
    merged: dict[str, SpooledOrder] = {}
    counted = pages = passes = 0
    for start, end in windows:
        orders, total, window_pages, window_passes = _pull_window(
            client, replace(query, start_time=start, end_time=end), max_passes, pager, spool
        )
        twins = sum(1 for key in orders if key in merged)
        counted += total - twins
        merged.update(orders)
        pages += window_pages
        passes += window_passes
    return PullResult(
        entries=sort_orders(list(merged.values())),
        spool=spool,
        total_count=counted,
        pages=pages,
        passes=passes,
        windows=len(windows),
        page_size=pager.size,
        step_downs=pager.step_downs,
    )
