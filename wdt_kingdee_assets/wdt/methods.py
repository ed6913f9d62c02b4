"""WDT's document queries as data: what differs between ``wms.stockout.Process.queryWithDetail``,
``wms.stockin.Process.queryWithDetail`` and their siblings, so that one client and one complete
pull serve them all.

Each entry is taken from the method's official page (``shared/reference/wdt_api.md`` for the
stock-out method, ``docs/reference/production_stockin.md`` for the stock-in method).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class WdtMethod:
    """One paged WDT document query."""

    name: str
    key: str  # the order's id, the de-duplication key (``stockout_id``)
    number: str  # the order's number people see (``stockout_no``)
    time_fields: Mapping[int, str]  # time_type → the order field it filters on
    lines: str  # the order field holding its lines
    statuses: Mapping[int, str]  # status → WDT's own name for it
    max_window_days: int = 30

    def time_field(self, time_type: int) -> str:
        """The order field a query of ``time_type`` filters on (``ValueError`` for another)."""
        try:
            return self.time_fields[time_type]
        except KeyError:
            raise ValueError(
                f"{self.name}: time_type must be one of {sorted(self.time_fields)}, got {time_type}"
            ) from None


PROCESS_STOCKOUT = WdtMethod(
    name="wms.stockout.Process.queryWithDetail",
    key="stockout_id",
    number="stockout_no",
    time_fields={1: "created", 2: "consign_time", 3: "modified"},  # 建单 / 出库 / 最后修改时间
    lines="detail_list",
    statuses={5: "已取消", 48: "未确认", 50: "待审核", 77: "拣货中", 110: "已完成"},
)

PROCESS_STOCKIN = WdtMethod(
    name="wms.stockin.Process.queryWithDetail",
    key="stockin_id",
    number="stockin_no",
    time_fields={1: "created", 2: "check_time", 3: "modified"},  # 建单 / 审核 / 最后修改时间
    lines="detail_list",
    statuses={
        10: "已取消",
        20: "编辑中",
        30: "待审核",
        37: "待质检",
        40: "质检待确认",
        80: "已完成",
    },
)

METHODS = {method.name: method for method in (PROCESS_STOCKOUT, PROCESS_STOCKIN)}
