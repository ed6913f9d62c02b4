"""The peer: a day's sync as an integrator writes it from the seed article (``../shared/seed``).

What the article's platform does, done plainly: pull the day's completed production stock-outs
(``queryWithDetail``, status 110, pages of 100, one after another), map each order field by field
as the article lists (FBillNo = stockout_no, bill type QTCKD01_SYS, stock org 100, FDate = the
consign time, each line's spec_no, num and warehouse), and send ``BatchSave`` calls of 20 rows,
one at a time. No existence check (the article's platform dedupes in its own store, which a first
run does not have), no Submit or Audit, no checks, no lots, no unit conversion. It speaks the
same protocols through the project's own clients (signing, sessions), so the figures compare
call patterns, not HTTP stacks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from wdt_kingdee_assets.beijing import day_window
from wdt_kingdee_assets.kingdee.client import KingdeeClient
from wdt_kingdee_assets.wdt.client import DocumentQuery, WdtClient
from wdt_kingdee_assets.wdt.methods import PROCESS_STOCKOUT

PAGE_SIZE = 100  # the article's page_size
ROWS_PER_BATCH = 20  # the article's "rows": 20


@dataclass(frozen=True)
class PeerFigures:
    orders: int
    wdt_calls: int
    batch_save_calls: int
    saved: int
    refused: int
    wall_seconds: float


def peer_bill(order: dict[str, Any], org: str) -> dict[str, Any]:
    """The article's field list, and the form's required fields filled as a platform template
    fills them: fixed values, the line's own unit and first position's batch."""
    return {
        "FBillNo": order["stockout_no"],
        "FBillTypeID": {"FNUMBER": "QTCKD01_SYS"},
        "FStockOrgId": {"FNumber": org},
        "FPickOrgId": {"FNumber": org},
        "FStockDirect": "GENERAL",
        "FDate": str(order["consign_time"])[:10],
        "FDeptId": {"FNumber": "BM000032"},
        "FOwnerTypeIdHead": "BD_OwnerOrg",
        "FOwnerIdHead": {"FNumber": org},
        "FBaseCurrId": {"FNumber": "PRE001"},
        "FEntity": [
            {
                "FMaterialId": {"FNumber": line["spec_no"]},
                "FUnitID": {"FNumber": line["base_unit_name"]},
                "FQty": line["num"],
                "FBaseUnitId": {"FNumber": line["base_unit_name"]},
                "FStockId": {"FNumber": order["warehouse_no"]},
                "FLot": {
                    "FNumber": (line.get("position_details_list") or [{}])[0].get("batch_no", "")
                },
            }
            for line in order["detail_list"]
        ],
    }


def sync_day(env: dict[str, str], day: str, calls_per_minute: float) -> PeerFigures:
    started = time.monotonic()
    wdt = WdtClient(
        env["WDT_BASE_URL"],
        env["WDT_SID"],
        env["WDT_APPKEY"],
        env["WDT_APPSECRET"],
        page_size=PAGE_SIZE,
        calls_per_minute=calls_per_minute,
    )
    kingdee = KingdeeClient(
        env["KINGDEE_BASE_URL"],
        env["KINGDEE_ACCT_ID"],
        env["KINGDEE_USERNAME"],
        env["KINGDEE_APP_ID"],
        env["KINGDEE_APP_SECRET"],
        threads=1,
    )
    window = day_window(day)
    query = DocumentQuery(
        method=PROCESS_STOCKOUT,
        start_time=window.query_start,
        end_time=window.query_end,
        time_type=2,
        status="110",
    )
    orders: list[dict[str, Any]] = []
    page_no = 0
    while True:
        page = wdt.query_page(query, page_no, calc_total=False)
        orders.extend(page.orders)
        if len(page.orders) < PAGE_SIZE:
            break
        page_no += 1
    org = env.get("KINGDEE_ORG_NUMBER", "100")
    bills = [peer_bill(order, org) for order in orders]
    saved = refused = calls = 0
    for start in range(0, len(bills), ROWS_PER_BATCH):
        batch = bills[start : start + ROWS_PER_BATCH]
        result = kingdee.batch_save("STK_MisDelivery", batch)
        calls += 1
        saved += len(result.saved)
        refused += len(batch) - len(result.saved)
    return PeerFigures(
        orders=len(orders),
        wdt_calls=page_no + 1,
        batch_save_calls=calls,
        saved=saved,
        refused=refused,
        wall_seconds=time.monotonic() - started,
    )
