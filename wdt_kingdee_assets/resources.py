"""Dagster resources: one per API, thin wrappers that build the protocol clients from config.

Credentials arrive through ``dg.EnvVar`` (see ``definitions.py``): Dagster resolves them at run
time, shows only the variable's name in the UI, and never puts the value in run config. The
clients keep secrets out of their repr and exception text.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Literal

import dagster as dg
from pydantic import Field

from wdt_kingdee_assets.kingdee.client import DEFAULT_THREADS, MAX_THREADS, KingdeeClient
from wdt_kingdee_assets.storage import DEFAULT_FILE_MODE, FILE_MODE_ENV, PartitionedJsonlIOManager
from wdt_kingdee_assets.throttle import Backoff, ThrottleWait
from wdt_kingdee_assets.wdt.client import WdtClient


class WdtResource(dg.ConfigurableResource):
    """旺店通·旗舰版 open API (wms.stockout.Process.queryWithDetail)."""

    base_url: str = Field(description="e.g. http://wdt.wangdian.cn/openapi")
    sid: str = Field(description="卖家账号")
    appkey: str = Field(description="接口账号 (appkey)")
    appsecret: str = Field(description="appsecret as issued, `secret:salt`")
    page_size: int = Field(
        default=2000,
        ge=1,
        le=2000,
        description="orders per page: the method's maximum, halved for the rest of a pull when "
        "a page times out or is refused",
    )
    calls_per_minute: float = Field(
        default=60.0,
        ge=0,
        description="the account's calls a minute, shared by every process on the machine; "
        "0 = unlimited",
    )
    timeout_seconds: float = Field(default=30.0, gt=0)
    throttle_first_wait_seconds: float = Field(
        default=60.0, ge=0, description="first rest when WDT says its quota is used up (doubles)"
    )
    throttle_max_wait_seconds: float = Field(
        default=900.0,
        ge=0,
        description="rest at most this long in all before a throttled call fails (WDT asks 5-10 min)",
    )
    retry_first_delay_seconds: float = Field(
        default=1.0,
        ge=0,
        description="first delay before a failed call is tried again (doubling, jittered, "
        "at most 60 s, 6 tries)",
    )

    def client(
        self, log: Callable[[str], None] | None = None, *, patient: bool = True
    ) -> WdtClient:
        """A client; ``patient=False`` fails a throttled call at once (for sensors, whose ticks
        must stay short: the next tick asks again)."""
        throttle = ThrottleWait(
            first_seconds=self.throttle_first_wait_seconds,
            max_total_seconds=self.throttle_max_wait_seconds if patient else 0.0,
        )
        return WdtClient(
            self.base_url,
            self.sid,
            self.appkey,
            self.appsecret,
            page_size=self.page_size,
            calls_per_minute=self.calls_per_minute,
            timeout=self.timeout_seconds,
            throttle_wait=throttle,
            backoff=Backoff(base_seconds=self.retry_first_delay_seconds),
            log=log,
        )


class KingdeeResource(dg.ConfigurableResource):
    """金蝶云星空 WebAPI (BatchSave / ExecuteBillQuery)."""

    base_url: str = Field(description="site root, e.g. http://host/k3cloud/")
    acct_id: str = Field(description="数据中心 ID")
    username: str = Field(description="集成用户")
    app_id: str = Field(description="第三方应用 AppID `<clientId>_<secret part>`")
    app_secret: str = Field(description="第三方应用 AppSecret")
    lcid: int = 2052
    org_number: str = Field(default="100", description="stock org number (库存组织编码)")
    auth_mode: Literal["signature", "session"] = Field(
        default="signature", description="SDK signed headers, or LoginBySign session login"
    )
    calls_per_minute: float = Field(default=0.0, ge=0, description="0 = unlimited")
    threads: int = Field(
        default=DEFAULT_THREADS,
        ge=1,
        le=MAX_THREADS,
        description="server threads the data center lends the integration: Kingdee calls in "
        "flight at once on this machine, whatever they are (BatchSave, Submit, Audit, queries)",
    )
    write_timeout_seconds: float = Field(default=300.0, gt=0)
    in_list_size: int = Field(default=500, ge=1, le=2000, description="FBillNo/FNumber per IN-list")
    retry_first_delay_seconds: float = Field(
        default=1.0,
        ge=0,
        description="first delay before a failed call is tried again (doubling, jittered, "
        "at most 60 s, 6 tries)",
    )

    def client(self, log: Callable[[str], None] | None = None) -> KingdeeClient:
        """A client; ``log`` hears of each retry as it happens (a step passes its logger)."""
        return KingdeeClient(
            self.base_url,
            self.acct_id,
            self.username,
            self.app_id,
            self.app_secret,
            lcid=self.lcid,
            org_number=self.org_number,
            auth_mode=self.auth_mode,
            calls_per_minute=self.calls_per_minute,
            threads=self.threads,
            write_timeout=self.write_timeout_seconds,
            in_list_size=self.in_list_size,
            backoff=Backoff(base_seconds=self.retry_first_delay_seconds),
            log=log,
        )


def _optional(name: str, default: str) -> str:
    """Non-secret tunables (SPEC §5 optional variables) with their documented defaults."""
    return os.environ.get(name) or default


# The first delay before a failed API call is tried again, both clients (then doubling).
CALL_RETRY_DELAY = "WDT_KINGDEE_CALL_RETRY_DELAY_SECONDS"


def build_resources(data_dir: str | None = None) -> dict[str, Any]:
    """The resources, credentials from the environment (resolved by Dagster at run time)."""
    return {
        "wdt": WdtResource(
            base_url=dg.EnvVar("WDT_BASE_URL"),
            sid=dg.EnvVar("WDT_SID"),
            appkey=dg.EnvVar("WDT_APPKEY"),
            appsecret=dg.EnvVar("WDT_APPSECRET"),
            page_size=int(_optional("WDT_PAGE_SIZE", "2000")),
            calls_per_minute=float(_optional("WDT_CALLS_PER_MINUTE", "60")),
            throttle_first_wait_seconds=float(_optional("WDT_THROTTLE_FIRST_WAIT_SECONDS", "60")),
            throttle_max_wait_seconds=float(_optional("WDT_THROTTLE_MAX_WAIT_SECONDS", "900")),
            retry_first_delay_seconds=float(_optional(CALL_RETRY_DELAY, "1")),
        ),
        "kingdee": KingdeeResource(
            base_url=dg.EnvVar("KINGDEE_BASE_URL"),
            acct_id=dg.EnvVar("KINGDEE_ACCT_ID"),
            username=dg.EnvVar("KINGDEE_USERNAME"),
            app_id=dg.EnvVar("KINGDEE_APP_ID"),
            app_secret=dg.EnvVar("KINGDEE_APP_SECRET"),
            lcid=int(_optional("KINGDEE_LCID", "2052")),
            org_number=_optional("KINGDEE_ORG_NUMBER", "100"),
            auth_mode=_optional("KINGDEE_AUTH_MODE", "signature"),
            threads=int(_optional("KINGDEE_THREADS", str(DEFAULT_THREADS))),
            retry_first_delay_seconds=float(_optional(CALL_RETRY_DELAY, "1")),
        ),
        "io_manager": PartitionedJsonlIOManager(
            base_dir=data_dir, file_mode=_optional(FILE_MODE_ENV, DEFAULT_FILE_MODE)
        ),
    }
