"""WDT Ultimate (旺店通·旗舰版) protocol: signing, the stock-out query client, complete pulls.

No Dagster here: the pipeline wraps these in a resource.
"""

from wdt_kingdee_assets.wdt.client import CallStats, StockoutPage, StockoutQuery, WdtClient
from wdt_kingdee_assets.wdt.errors import (
    IncompletePullError,
    WdtBusinessError,
    WdtError,
    WdtProtocolError,
    WdtRejectedError,
    WdtThrottledError,
    WdtTransientError,
)
from wdt_kingdee_assets.wdt.pull import PullResult, pull_stockouts, split_window
from wdt_kingdee_assets.wdt.signing import sign, split_appsecret, wdt_timestamp

__all__ = [
    "CallStats",
    "IncompletePullError",
    "PullResult",
    "StockoutPage",
    "StockoutQuery",
    "WdtBusinessError",
    "WdtClient",
    "WdtError",
    "WdtProtocolError",
    "WdtRejectedError",
    "WdtThrottledError",
    "WdtTransientError",
    "pull_stockouts",
    "sign",
    "split_appsecret",
    "split_window",
    "wdt_timestamp",
]
