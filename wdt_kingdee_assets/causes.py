"""Pure: what a step's failure means for a person — the business cause first (中文 / English),
the API's own message quoted unchanged (a user searches for it), and what to do next."""

from __future__ import annotations

from dataclasses import dataclass

from wdt_kingdee_assets.kingdee.errors import (
    KingdeeAuthError,
    KingdeeError,
    KingdeeQueryError,
)
from wdt_kingdee_assets.mapping import MappingConfigError
from wdt_kingdee_assets.wdt.errors import (
    IncompletePullError,
    WdtBusinessError,
    WdtError,
    WdtRejectedError,
)


@dataclass(frozen=True)
class StepCause:
    cause: str
    next_step: str
    retryable: bool  # whether Dagster's retries of the step may clear it


# Most specific first: the first class the error is an instance of gives its cause.
CAUSES: tuple[tuple[type[Exception], StepCause], ...] = (
    (
        WdtRejectedError,
        StepCause(
            "旺店通拒绝调用（签名、凭据或权限）/ WDT refused the call (signature, credentials or "
            "permission)",
            "检查 WDT_SID、WDT_APPKEY、WDT_APPSECRET 与接口权限 / check WDT_SID, WDT_APPKEY, "
            "WDT_APPSECRET and the app's rights to the method",
            False,
        ),
    ),
    (
        WdtBusinessError,
        StepCause(
            "旺店通返回业务错误 / WDT answered with a business error",
            "按旺店通的消息修正查询条件或设置 / act on WDT's message (filters, settings)",
            False,
        ),
    ),
    (
        IncompletePullError,
        StepCause(
            "拉取不完整：分页期间单据变动 / the pull is incomplete: documents moved while paging",
            "重新物化该日（Dagster 会自动重试）/ re-materialize the day (Dagster retries it)",
            True,
        ),
    ),
    (
        WdtError,
        StepCause(
            "旺店通暂时无法应答（已多次重试）/ WDT did not answer usably after the client's retries",
            "Dagster 稍后重试该步骤；若持续失败，检查旺店通服务与网络 / Dagster retries the step; "
            "if it keeps failing, check WDT's service and the network",
            True,
        ),
    ),
    (
        KingdeeAuthError,
        StepCause(
            "金蝶拒绝登录或权限不足 / Kingdee refused the login or the user's rights",
            "检查 KINGDEE_ACCT_ID、KINGDEE_USERNAME、KINGDEE_APP_ID、KINGDEE_APP_SECRET 与用户权限 "
            "/ check the KINGDEE_* variables and the API user's rights",
            False,
        ),
    ),
    (
        KingdeeQueryError,
        StepCause(
            "金蝶拒绝查询（字段或过滤条件）/ Kingdee refused a query (a field or the filter)",
            "检查映射文件中的字段名（如 source_ref_field）/ check the field names of the mapping "
            "file (source_ref_field …)",
            False,
        ),
    ),
    (
        KingdeeError,
        StepCause(
            "金蝶暂时无法应答（已多次重试）/ Kingdee did not answer usably after the client's retries",
            "Dagster 稍后重试该步骤；若持续失败，检查金蝶服务 / Dagster retries the step; if it "
            "keeps failing, check the Kingdee server",
            True,
        ),
    ),
    (
        MappingConfigError,
        StepCause(
            "映射文件有误 / the mapping file is wrong",
            "按消息修正映射文件后重跑 / fix the mapping file as the message says, then re-run",
            False,
        ),
    ),
    (
        ValueError,
        StepCause(
            "设置有误 / a setting or an argument is wrong",
            "按消息修正后重跑 / fix it as the message says, then re-run",
            False,
        ),
    ),
)


def cause_of(error: Exception) -> StepCause | None:
    """The cause of an error a step may meet; None for one that is a defect of ours."""
    return next((cause for kind, cause in CAUSES if isinstance(error, kind)), None)


def failure_text(cause: StepCause, error: Exception, partition_key: str) -> str:
    return f"{cause.cause} — {partition_key}: «{error}» — 下一步 / next: {cause.next_step}"
