"""The sandbox's documented default credentials (not secrets: they only open the local simulators).

``wdt-kingdee sandbox`` uses these unless the SPEC §5 environment variables are set, in which case
it accepts exactly those values instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class WdtCredentials:
    sid: str = "sandbox_sid"
    appkey: str = "sandbox_key"
    appsecret: str = "sandbox_secret:sandbox_salt"  # `secret:salt`, as WDT issues it


@dataclass(frozen=True)
class KingdeeCredentials:
    acct_id: str = "sandbox_acct"
    username: str = "sandbox_api"
    # `<clientId>_<32 chars>`: the 32 chars are base64 of 24 bytes, as Kingdee issues them.
    app_id: str = "240915_d2R0LWtpbmdkZWUtc2FuZGJveC0yMDI2"
    app_secret: str = "sandbox_app_secret_5f1e0c2a9b7d4e38"
    lcid: int = 2052


def wdt_from_env() -> WdtCredentials:
    default = WdtCredentials()
    return WdtCredentials(
        sid=os.environ.get("WDT_SID", default.sid),
        appkey=os.environ.get("WDT_APPKEY", default.appkey),
        appsecret=os.environ.get("WDT_APPSECRET", default.appsecret),
    )


def kingdee_from_env() -> KingdeeCredentials:
    default = KingdeeCredentials()
    return KingdeeCredentials(
        acct_id=os.environ.get("KINGDEE_ACCT_ID", default.acct_id),
        username=os.environ.get("KINGDEE_USERNAME", default.username),
        app_id=os.environ.get("KINGDEE_APP_ID", default.app_id),
        app_secret=os.environ.get("KINGDEE_APP_SECRET", default.app_secret),
        lcid=int(os.environ.get("KINGDEE_LCID", default.lcid)),
    )
