"""WDT Ultimate (旺店通·旗舰版) protocol: signing, the document query methods and their client,
complete pulls.

No Dagster here: the pipeline wraps these in a resource.
"""

from wdt_kingdee_assets.wdt.client import CallStats, DocumentPage, DocumentQuery, WdtClient
from wdt_kingdee_assets.wdt.errors import (
    IncompletePullError,
    WdtBusinessError,
    WdtError,
    WdtProtocolError,
    WdtRejectedError,
    WdtThrottledError,
    WdtTransientError,
)
from wdt_kingdee_assets.wdt.methods import PROCESS_STOCKIN, PROCESS_STOCKOUT, WdtMethod
from wdt_kingdee_assets.wdt.pull import PullResult, pull_documents, split_window
from wdt_kingdee_assets.wdt.signing import sign, split_appsecret, wdt_timestamp

__all__ = [
    "PROCESS_STOCKIN",
    "PROCESS_STOCKOUT",
    "CallStats",
    "DocumentPage",
    "DocumentQuery",
    "IncompletePullError",
    "PullResult",
    "WdtBusinessError",
    "WdtClient",
    "WdtError",
    "WdtMethod",
    "WdtProtocolError",
    "WdtRejectedError",
    "WdtThrottledError",
    "WdtTransientError",
    "pull_documents",
    "sign",
    "split_appsecret",
    "split_window",
    "wdt_timestamp",
]
