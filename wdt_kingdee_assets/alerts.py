"""Failure alerts: a failed run, or a failed ERROR check, becomes one message to a chat webhook.

One message per finished run that failed or has a failed ERROR-severity check, naming the
partition (the Beijing day), what failed and the bill numbers in the evidence — so the person on
duty knows which bills (其他出库单, 其他入库单 …) to look at before opening the UI. Formats:
DingTalk (钉钉群机器人, optional 加签 signing), WeCom (企业微信群机器人), Feishu (飞书自定义机器人,
optional 签名校验) and plain JSON for anything else. Without a webhook the message goes to the
sensor's log.

The webhook URL carries the robot's token and the signing secret is a secret: both arrive only
through ``dg.EnvVar``, and nothing here prints them — delivery errors name the format and host,
never the URL, the exception text of the HTTP library (which quotes the URL) or the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import dagster as dg
import requests
from pydantic import Field

from wdt_kingdee_assets.evidence import BILL_NUMBERS, bills_named

WEBHOOK_ENV = "WDT_KINGDEE_ALERT_WEBHOOK"
SECRET_ENV = "WDT_KINGDEE_ALERT_SECRET"
FORMAT_ENV = "WDT_KINGDEE_ALERT_FORMAT"
UI_URL_ENV = "WDT_KINGDEE_UI_URL"

WebhookFormat = Literal["auto", "dingtalk", "wecom", "feishu", "json"]
# Robots with the "自定义关键词" security setting only accept messages containing a keyword:
# every message starts with this one.
KEYWORD = "WDT→金蝶"
BILLS_SHOWN = 30
DETAIL_CHARS = 300
# WeCom rejects markdown content over 4096 bytes; the others allow more, one cap keeps them alike.
MAX_TEXT_BYTES = 3800


@dataclass(frozen=True)
class Finding:
    """One thing that failed in a run: a step, or an ERROR check with its evidence."""

    what: str
    detail: str
    bills: tuple[str, ...] = ()


@dataclass(frozen=True)
class Alert:
    run_id: str
    job_name: str
    partition: str | None
    run_status: str
    findings: tuple[Finding, ...]
    flow: str | None = None  # the flow's title (生产出库 → 其他出库单), when the run is one flow's

    @property
    def bills(self) -> list[str]:
        return sorted({bill for finding in self.findings for bill in finding.bills})

    @property
    def title(self) -> str:
        day = self.partition or "(no partition)"
        verdict = (
            "运行失败 run failed" if self.run_status == "FAILURE" else "检查失败 checks failed"
        )
        return f"{KEYWORD} {self.flow or self.job_name} {day}: {verdict}"


class AlertDeliveryError(Exception):
    """The webhook did not take the message; the text names format and host, never the URL."""


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def alert_text(alert: Alert, *, markdown: bool, ui_url: str | None = None) -> str:
    """The message body; ``markdown`` for DingTalk/WeCom, plain lines for Feishu and logs."""
    bullet, strong = ("- ", "**") if markdown else ("• ", "")
    lines = [f"### {alert.title}" if markdown else alert.title, ""]
    lines.append(f"{bullet}分区 partition: {strong}{alert.partition or '-'}{strong}")
    lines.append(f"{bullet}运行 run: {alert.run_id} ({alert.job_name}, {alert.run_status})")
    for finding in alert.findings:
        lines.append(f"{bullet}{strong}{finding.what}{strong}: {finding.detail}")
        if finding.bills:
            shown = ", ".join(finding.bills[:BILLS_SHOWN])
            more = (
                f" … (+{len(finding.bills) - BILLS_SHOWN})"
                if len(finding.bills) > BILLS_SHOWN
                else ""
            )
            lines.append(f"  单据 bills: {shown}{more}")
    if ui_url:
        link = f"{ui_url.rstrip('/')}/runs/{alert.run_id}"
        lines.append(f"[在 Dagster 中查看 / open in Dagster]({link})" if markdown else link)
    text = "\n".join(lines)
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_TEXT_BYTES:
        text = encoded[: MAX_TEXT_BYTES - 4].decode("utf-8", errors="ignore") + " …"
    return text


def detect_format(url: str) -> WebhookFormat:
    host = (urlsplit(url).hostname or "").lower()
    if host.endswith("dingtalk.com"):
        return "dingtalk"
    if host == "qyapi.weixin.qq.com":
        return "wecom"
    if host.endswith(("feishu.cn", "larksuite.com")):
        return "feishu"
    return "json"


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk 加签: base64(HMAC-SHA256(key=secret, "{timestamp}\\n{secret}"))."""
    digest = hmac.new(
        secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu 签名校验: base64(HMAC-SHA256(key="{timestamp}\\n{secret}", empty message))."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _with_query(url: str, extra: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *extra.items()])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def webhook_request(
    alert: Alert,
    fmt: WebhookFormat,
    url: str,
    *,
    secret: str | None = None,
    ui_url: str | None = None,
    now: float | None = None,
) -> tuple[str, dict[str, Any]]:
    """The URL to post to and the JSON body, in the robot's own message shape."""
    fmt = detect_format(url) if fmt == "auto" else fmt
    now = time.time() if now is None else now
    if fmt == "dingtalk":
        if secret:
            stamp = int(now * 1000)
            url = _with_query(url, {"timestamp": str(stamp), "sign": dingtalk_sign(secret, stamp)})
        text = alert_text(alert, markdown=True, ui_url=ui_url)
        return url, {"msgtype": "markdown", "markdown": {"title": alert.title, "text": text}}
    if fmt == "wecom":
        text = alert_text(alert, markdown=True, ui_url=ui_url)
        return url, {"msgtype": "markdown", "markdown": {"content": text}}
    if fmt == "feishu":
        body: dict[str, Any] = {
            "msg_type": "text",
            "content": {"text": alert_text(alert, markdown=False, ui_url=ui_url)},
        }
        if secret:
            stamp = int(now)
            body = {"timestamp": str(stamp), "sign": feishu_sign(secret, stamp), **body}
        return url, body
    return url, {
        "source": "wdt-kingdee-assets",
        "title": alert.title,
        "text": alert_text(alert, markdown=False, ui_url=ui_url),
        "partition": alert.partition,
        "run_id": alert.run_id,
        "job_name": alert.job_name,
        "run_status": alert.run_status,
        "failures": [
            {"what": f.what, "detail": f.detail, "bills": list(f.bills)} for f in alert.findings
        ],
        "bills": alert.bills,
    }


def _accepted(fmt: WebhookFormat, response: requests.Response) -> str | None:
    """None when the robot took the message, else why not (its own code and message)."""
    if not response.ok:
        return f"HTTP {response.status_code}"
    if fmt == "json":
        return None
    try:
        answer = response.json()
    except ValueError:
        return f"HTTP {response.status_code} with a body that is not JSON"
    # DingTalk and WeCom answer errcode/errmsg; Feishu answers code/msg (older robots
    # StatusCode/StatusMessage).
    for code_key, message_key in (
        ("errcode", "errmsg"),
        ("code", "msg"),
        ("StatusCode", "StatusMessage"),
    ):
        if code_key in answer:
            code = answer[code_key]
            return (
                None
                if code == 0
                else f"{code_key} {code}: {_truncate(str(answer.get(message_key)), 120)}"
            )
    return "an answer without a status code"


class AlertNotifier(dg.ConfigurableResource):
    """Posts alerts to a chat robot's webhook, or logs them when none is configured."""

    webhook_url: str | None = Field(
        default=None, description=f"robot webhook (secret: set {WEBHOOK_ENV}); None = log only"
    )
    webhook_format: WebhookFormat = Field(
        default="auto", description="auto = from the URL's host; json for any other receiver"
    )
    signing_secret: str | None = Field(
        default=None, description=f"DingTalk 加签 / Feishu 签名校验 secret (set {SECRET_ENV})"
    )
    ui_url: str | None = Field(default=None, description="Dagster UI address for run links")
    timeout_seconds: float = Field(default=10.0, gt=0)

    def endpoint(self) -> str:
        """What may be shown about the webhook: its format and host."""
        if not self.webhook_url:
            return "log only"
        parts = urlsplit(self.webhook_url)
        fmt = (
            detect_format(self.webhook_url)
            if self.webhook_format == "auto"
            else self.webhook_format
        )
        return f"{fmt} webhook at {parts.scheme}://{parts.hostname}"

    def notify(self, alert: Alert, log: Any) -> bool:
        """Deliver ``alert``; True if a webhook took it, False if it was only logged.

        Raises AlertDeliveryError when the webhook refused or could not be reached.
        """
        if not self.webhook_url:
            log.warning(
                "ALERT (no %s set)\n%s",
                WEBHOOK_ENV,
                alert_text(alert, markdown=False, ui_url=self.ui_url),
            )
            return False
        fmt = (
            detect_format(self.webhook_url)
            if self.webhook_format == "auto"
            else self.webhook_format
        )
        url, body = webhook_request(
            alert, fmt, self.webhook_url, secret=self.signing_secret, ui_url=self.ui_url
        )
        try:
            response = requests.post(
                url,
                data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self.timeout_seconds,
            )
        except requests.RequestException as exc:
            # The library's message quotes the URL (and so the token): only the class is kept.
            raise AlertDeliveryError(
                f"{self.endpoint()} could not be reached ({type(exc).__name__})"
            ) from None
        refused = _accepted(fmt, response)
        if refused:
            raise AlertDeliveryError(f"{self.endpoint()} refused the alert: {refused}")
        log.info("alert for run %s sent to %s", alert.run_id, self.endpoint())
        return True


def alert_notifier_from_env() -> AlertNotifier:
    """The notifier of the Definitions: secrets as ``dg.EnvVar`` (resolved at run time, shown by
    name only), and only when set — an unset EnvVar would fail every tick instead of logging."""
    return AlertNotifier(
        webhook_url=dg.EnvVar(WEBHOOK_ENV) if os.environ.get(WEBHOOK_ENV) else None,
        signing_secret=dg.EnvVar(SECRET_ENV) if os.environ.get(SECRET_ENV) else None,
        webhook_format=os.environ.get(FORMAT_ENV) or "auto",
        ui_url=os.environ.get(UI_URL_ENV) or None,
    )


# --- reading what failed out of the instance ------------------------------------------------------


def check_finding(evaluation: dg.AssetCheckEvaluation) -> Finding:
    """What a failed check says, for a message: its figures and the bills it names.

    The bills come from the check's ``bill_numbers`` entry (data, ``evidence.py``);
    the markdown tables are for people and are not read back."""
    scalars: list[str] = []
    bills = bills_named(evaluation.metadata)
    for key, entry in evaluation.metadata.items():
        if key != BILL_NUMBERS and isinstance(entry.value, bool | int | float | str):
            scalars.append(f"{key}={entry.value}")
    detail = ", ".join(scalars) or "failed"
    if evaluation.description:
        detail = f"{evaluation.description} ({detail})"
    return Finding(
        what=f"检查失败 check {evaluation.check_name} on {evaluation.asset_key.to_user_string()}",
        detail=_truncate(detail, DETAIL_CHARS),
        bills=tuple(sorted(set(bills))),
    )


# A blocking check's failure fails its step with this error; the check's own evaluation (an
# ERROR finding of its own) already says what failed and what to do.
CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"


def failure_cause(data: Any, fallback: str = "") -> str:
    """What a STEP_FAILURE says to a person: a Failure's description (the business cause, the
    API's words), else the innermost cause of the error chain — not the framework's wrapper."""
    user = getattr(data, "user_failure_data", None)
    if user is not None and user.description:
        return user.description
    error = getattr(data, "error", None)
    while error is not None and error.cause is not None:
        error = error.cause
    text = (error.message if error else fallback).strip()
    if error is not None and error.cls_name and not text.startswith(error.cls_name):
        text = f"{error.cls_name}: {text}"
    return text


def _step_findings(instance: dg.DagsterInstance, run_id: str) -> list[Finding]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    findings = []
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.event_specific_data if event else None
        error = getattr(data, "error", None)
        if error is not None and error.cls_name == CHECK_FAILED_ERROR:
            continue
        findings.append(
            Finding(
                what=f"步骤失败 step {event.step_key if event else '?'} failed",
                detail=_truncate(
                    failure_cause(data, record.event_log_entry.message or ""), DETAIL_CHARS
                ),
            )
        )
    return findings


def flow_of_run(run: dg.DagsterRun) -> str | None:
    """The title of the flow a run belongs to: by its job, else by the assets it materialized
    (a run launched from the asset graph is ``__ASSET_JOB``)."""
    from wdt_kingdee_assets.flows import FLOWS

    for flow in FLOWS:
        jobs = {
            flow.job_name,
            flow.retry_job_name,
            flow.preview_job_name,
            flow.correct_job_name,
        }
        if run.job_name in jobs:
            return flow.title
    keys = run.asset_selection or set()
    for flow in FLOWS:
        if any(
            key.path[:-1] == flow.key_prefix and key.path[-1] in flow.asset_names for key in keys
        ):
            return flow.title
    return None


def alert_for_run(instance: dg.DagsterInstance, run_id: str) -> Alert | None:
    """The alert a finished run deserves, or None when it succeeded with its ERROR checks passing."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return None
    evaluations = [
        record.event_log_entry.dagster_event.event_specific_data
        for record in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        if record.event_log_entry.dagster_event
    ]
    findings = [
        check_finding(evaluation)
        for evaluation in evaluations
        if isinstance(evaluation, dg.AssetCheckEvaluation)
        and not evaluation.passed
        and evaluation.severity == dg.AssetCheckSeverity.ERROR
    ]
    failed = run.status == dg.DagsterRunStatus.FAILURE
    if failed:
        findings = _step_findings(instance, run_id) + findings
        if not findings:
            findings = [Finding("运行失败 run failed", "no step failed; see the run's events")]
    if not findings:
        return None
    return Alert(
        run_id=run_id,
        flow=flow_of_run(run),
        job_name=run.job_name,
        partition=run.tags.get("dagster/partition"),
        run_status=run.status.value,
        findings=tuple(findings),
    )


# --- the sensor ---------------------------------------------------------------------------------

FINISHED = (dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_SUCCESS)
PAGE = 100


def _finished_runs(instance: dg.DagsterInstance, after: int) -> Iterable[tuple[int, str]]:
    """(storage id, run id) of runs that finished after ``after``, oldest first.

    Failures and successes are read as two lists; when either is cut at PAGE, only what lies
    before the earlier cut is returned, so nothing between is skipped.
    """
    pages = [
        instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type, after_storage_id=after),
            limit=PAGE,
            ascending=True,
        )
        for event_type in FINISHED
    ]
    cut = min((p.records[-1].storage_id for p in pages if p.has_more and p.records), default=None)
    merged = sorted(
        (record.storage_id, record.event_log_entry.run_id)
        for page in pages
        for record in page.records
    )
    return [
        (storage_id, run_id) for storage_id, run_id in merged if cut is None or storage_id <= cut
    ]


def _latest_finish(instance: dg.DagsterInstance) -> int:
    latest = [
        instance.fetch_run_status_changes(event_type, limit=1).records for event_type in FINISHED
    ]
    return max((records[0].storage_id for records in latest if records), default=0)


@dg.sensor(
    name="failure_alerts_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "失败告警 / failure alerts: for every run that failed, or whose ERROR checks failed, posts "
        "one message — the Beijing day, what failed, and the 其他出库单 (misc. delivery bill) "
        f"numbers in the evidence — to the webhook in {WEBHOOK_ENV} (DingTalk, WeCom, Feishu or "
        "JSON), or logs it when none is set."
    ),
)
def failure_alerts_sensor(
    context: dg.SensorEvaluationContext, alert_notifier: AlertNotifier
) -> dg.SensorResult:
    # The cursor is the storage id of the last run-finished event handled. A first start begins
    # at the end of the log: turning the sensor on must not replay months of history to a chat.
    if not context.cursor:
        start = _latest_finish(context.instance)
        return dg.SensorResult(
            cursor=json.dumps({"after": start}),
            skip_reason=f"watching runs that finish after event {start}",
        )
    after = int(json.loads(context.cursor)["after"])
    sent = 0
    for storage_id, run_id in _finished_runs(context.instance, after):
        alert = alert_for_run(context.instance, run_id)
        if alert is not None:
            try:
                alert_notifier.notify(alert, context.log)
            except AlertDeliveryError as exc:
                # Keep the cursor before this run: the next tick tries it again; the message is
                # logged so that it is not only in a chat that did not get it.
                context.log.error("%s\n%s", exc, alert_text(alert, markdown=False))
                return dg.SensorResult(cursor=json.dumps({"after": after}), skip_reason=str(exc))
            sent += 1
        after = storage_id
    return dg.SensorResult(
        cursor=json.dumps({"after": after}),
        skip_reason=f"{sent} alert(s) sent via {alert_notifier.endpoint()}",
    )
