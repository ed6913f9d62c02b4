"""Failure alerts over real runs, posted to a local webhook in each robot's own message shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from wdt_kingdee_assets.alerts import alert_notifier_from_env, failure_alerts_sensor
from wdt_kingdee_assets_tests.automation.conftest import tick

TOKEN = "robot-token-8f3a1c"
SIGNING_SECRET = "SEC-signing-5b9e27"


def expected_dingtalk_sign(timestamp: str) -> str:
    key = SIGNING_SECRET.encode()
    return base64.b64encode(
        hmac.new(key, f"{timestamp}\n{SIGNING_SECRET}".encode(), hashlib.sha256).digest()
    ).decode()


def expected_feishu_sign(timestamp: str) -> str:
    key = f"{timestamp}\n{SIGNING_SECRET}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def configure(monkeypatch, url: str | None, fmt: str = "auto", secret: str | None = None) -> None:
    for name, value in (
        ("WDT_KINGDEE_ALERT_WEBHOOK", url),
        ("WDT_KINGDEE_ALERT_FORMAT", fmt),
        ("WDT_KINGDEE_ALERT_SECRET", secret),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def alert_tick(pipeline, cursor):
    return tick(failure_alerts_sensor, pipeline, cursor, alert_notifier=alert_notifier_from_env())


@pytest.fixture
def held_day(make_pipeline):
    """A day whose ERROR check materials_exist_in_kingdee fails; the sensor started before it."""
    pipeline = make_pipeline(today=None, days=1, orders_per_day=12, missing_ratio=0.3)
    start = alert_tick(pipeline, None)
    assert "watching runs" in start.skip_message
    day = pipeline.days[-1]
    result = pipeline.run(day)
    assert result.success
    results = pipeline.stored("kingdee_write_results", day)
    held = sorted(results.loc[results["outcome"] == "held", "bill_no"])
    assert held
    return pipeline, day, held, result.run_id, start.cursor


@pytest.mark.parametrize(
    ("fmt", "path", "answer"),
    [
        ("dingtalk", f"/robot/send?access_token={TOKEN}", {"errcode": 0, "errmsg": "ok"}),
        ("wecom", f"/cgi-bin/webhook/send?key={TOKEN}", {"errcode": 0, "errmsg": "ok"}),
        ("feishu", f"/open-apis/bot/v2/hook/{TOKEN}", {"code": 0, "msg": "success"}),
        ("json", f"/hooks/{TOKEN}", {}),
    ],
)
def test_a_failed_error_check_is_posted_in_the_robots_shape_without_secrets(
    held_day, webhook, monkeypatch, capfd, fmt, path, answer
):
    pipeline, day, held, run_id, cursor = held_day
    webhook.answer = answer
    configure(monkeypatch, webhook.url(path), fmt, SIGNING_SECRET)
    result = alert_tick(pipeline, cursor)
    [posted] = webhook.posted
    body = posted.body
    if fmt == "dingtalk":
        assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"title", "text"}
        text = body["markdown"]["text"]
        assert posted.query["access_token"] == [TOKEN]
        [stamp] = posted.query["timestamp"]
        assert posted.query["sign"] == [expected_dingtalk_sign(stamp)]
    elif fmt == "wecom":
        assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"content"}
        text = body["markdown"]["content"]
        assert len(text.encode("utf-8")) <= 4096
    elif fmt == "feishu":
        assert body["msg_type"] == "text"
        text = body["content"]["text"]
        assert body["sign"] == expected_feishu_sign(body["timestamp"])
    else:
        text = body["text"]
        assert body["partition"] == day and body["run_id"] == run_id
        assert set(held) <= set(body["bills"])
        [failure] = body["failures"]
        assert "materials_exist_in_kingdee" in failure["what"]
    assert text.startswith(("### WDT→金蝶", "WDT→金蝶"))
    assert day in text and run_id in text and "materials_exist_in_kingdee" in text
    assert all(bill in text for bill in held)
    assert "no_held_bills" not in text  # a WARN check is not alerted

    logs = capfd.readouterr()
    for secret in (TOKEN, SIGNING_SECRET):
        assert secret not in posted.raw
        assert secret not in logs.out + logs.err
        assert secret not in result.skip_message
    assert "1 alert(s) sent" in result.skip_message


def test_a_failed_run_names_the_step_and_the_cursor_survives_restarts(
    make_pipeline, webhook, monkeypatch, capfd
):
    pipeline = make_pipeline(today=None, days=2, orders_per_day=4, missing_ratio=0)
    configure(monkeypatch, webhook.url(f"/hooks/{TOKEN}"), "json")
    cursor = alert_tick(pipeline, None).cursor
    first_day, second_day = pipeline.days
    wdt_secret = pipeline.sandbox.env()["WDT_APPSECRET"]
    monkeypatch.setenv("WDT_APPSECRET", "wrong-secret:wrong-salt")
    failed = pipeline.run(first_day)
    assert not failed.success

    sent = alert_tick(pipeline, cursor)
    [posted] = webhook.posted
    assert posted.body["partition"] == first_day and posted.body["run_status"] == "FAILURE"
    [step] = posted.body["failures"]
    assert "raw_stockouts" in step["what"]
    assert wdt_secret.split(":")[0] not in posted.raw

    # Restart with the saved cursor: nothing is sent twice.
    assert "0 alert(s) sent" in alert_tick(pipeline, sent.cursor).skip_message
    assert len(webhook.posted) == 1

    # A successful day with all checks passing is not an alert; the next failure is.
    monkeypatch.setenv("WDT_APPSECRET", wdt_secret)
    assert pipeline.run(second_day).success
    monkeypatch.setenv("WDT_APPSECRET", "wrong-secret:wrong-salt")
    assert not pipeline.run(second_day).success
    later = alert_tick(pipeline, sent.cursor)
    assert [p.body["partition"] for p in webhook.posted] == [first_day, second_day]
    assert "1 alert(s) sent" in later.skip_message
    assert "wrong-secret" not in "".join(p.raw for p in webhook.posted) + capfd.readouterr().err


def test_a_refusing_webhook_keeps_the_alert_for_the_next_tick(
    held_day, webhook, monkeypatch, capfd
):
    pipeline, _, held, _, cursor = held_day
    configure(monkeypatch, webhook.url(f"/robot/send?access_token={TOKEN}"), "dingtalk")
    webhook.answer = {"errcode": 310000, "errmsg": "keywords not in content"}
    refused = alert_tick(pipeline, cursor)
    assert "errcode 310000" in refused.skip_message
    assert "dingtalk webhook at http://127.0.0.1" in refused.skip_message
    assert refused.cursor == cursor
    logs = capfd.readouterr()
    assert TOKEN not in refused.skip_message + logs.out + logs.err
    assert held[0] in logs.out + logs.err  # the alert itself is in the log meanwhile

    webhook.answer = {"errcode": 0, "errmsg": "ok"}
    delivered = alert_tick(pipeline, refused.cursor)
    assert "1 alert(s) sent" in delivered.skip_message
    assert len(webhook.posted) == 2 and delivered.cursor != cursor


def test_an_unreachable_webhook_is_reported_without_its_url(held_day, monkeypatch, capfd):
    pipeline, _, _, _, cursor = held_day
    configure(monkeypatch, f"http://127.0.0.1:9/robot/send?access_token={TOKEN}", "dingtalk")
    result = alert_tick(pipeline, cursor)
    assert "could not be reached (ConnectionError)" in result.skip_message
    logs = capfd.readouterr()
    assert TOKEN not in result.skip_message + logs.out + logs.err
    assert result.cursor == cursor


def test_without_a_webhook_the_alert_is_logged(held_day, monkeypatch, capfd):
    pipeline, day, held, _, cursor = held_day
    configure(monkeypatch, None)
    result = alert_tick(pipeline, cursor)
    assert "via log only" in result.skip_message
    logs = capfd.readouterr()
    assert "ALERT (no WDT_KINGDEE_ALERT_WEBHOOK set)" in logs.err + logs.out
    assert day in logs.err + logs.out and held[0] in logs.err + logs.out
    assert json.loads(result.cursor)["after"] > json.loads(cursor)["after"]
