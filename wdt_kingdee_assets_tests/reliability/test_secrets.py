"""No secret reaches the event log, run config, metadata, exception text or stored files.

The sandbox accepts distinctive credentials (so a leak cannot hide behind a common default), a
full sync runs with faults that send error pages and unanswered writes through the error paths,
then runs with refused credentials fail on each API. Everything Dagster recorded is scanned.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from wdt_kingdee_assets.sandbox.credentials import KingdeeCredentials, WdtCredentials

WDT_SECRET, WDT_SALT = "WdtSecretPart-7Hq2Lx9", "pepperSalt-3Vn8"
KINGDEE_SECRET = "KingdeeAppSecret-Zr4Tw61Mb"
WRONG_WDT_SECRET = "WrongWdtSecret-Qa5Ne2"
WRONG_KINGDEE_SECRET = "WrongKingdeeSecret-Ux8Ko3"
SECRETS = (
    WDT_SECRET,
    f"{WDT_SECRET}:{WDT_SALT}",
    KINGDEE_SECRET,
    WRONG_WDT_SECRET,
    WRONG_KINGDEE_SECRET,
)


def leaks(text: str, where: str) -> list[str]:
    return [f"{secret!r} in {where}" for secret in SECRETS if secret in text]


def scan_run(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    found: list[str] = []
    run = instance.get_run_by_id(run_id)
    assert run is not None
    found += leaks(json.dumps(run.run_config, default=str), f"run config of {run_id}")
    found += leaks(json.dumps(run.tags, default=str), f"tags of {run_id}")
    for entry in instance.all_logs(run_id):
        # The serialized entry holds the message, metadata values and any error with its cause.
        found += leaks(entry.user_message, f"log message of {run_id}")
        found += leaks(dg.serialize_value(entry), f"event {entry.dagster_event_type} of {run_id}")
    return found


def scan_files(root: Path) -> list[str]:
    found: list[str] = []
    for path in root.rglob("*"):
        if path.is_file():
            found += leaks(path.read_bytes().decode("utf-8", errors="replace"), str(path))
    return found


def test_no_secret_appears_anywhere_dagster_records(make_pipeline, monkeypatch):
    pipeline = make_pipeline(
        wdt_credentials=WdtCredentials(
            sid="acme_sid", appkey="acme_key", appsecret=f"{WDT_SECRET}:{WDT_SALT}"
        ),
        kingdee_credentials=KingdeeCredentials(app_secret=KINGDEE_SECRET),
        missing_ratio=0.1,
        malformed=4,
        wdt_faults=["html_error,skip=1", "5xx"],
        kingdee_faults=["5xx_after_commit@BatchSave", "truncated_json@ExecuteBillQuery,skip=1"],
    )
    day = pipeline.days[-1]
    synced = pipeline.run(day)
    assert synced.success
    monkeypatch.setenv("KINGDEE_APP_SECRET", WRONG_KINGDEE_SECRET)
    kingdee_refused = pipeline.run(day)
    monkeypatch.setenv("WDT_APPSECRET", f"{WRONG_WDT_SECRET}:{WDT_SALT}")
    wdt_refused = pipeline.run(day)
    assert not kingdee_refused.success and not wdt_refused.success
    failures = [
        event.event_specific_data.error.to_string()
        for result in (kingdee_refused, wdt_refused)
        for event in result.all_events
        if event.is_step_failure
    ]
    assert any("Kingdee" in text for text in failures) and any(
        "验证失败" in text for text in failures
    )

    found = []
    for result in (synced, kingdee_refused, wdt_refused):
        found += scan_run(pipeline.instance, result.run_id)
    found += scan_files(Path(pipeline.instance.root_directory))
    found += scan_files(pipeline.data_dir)
    assert not found, found
