"""The commands a user types: `wdt-kingdee sandbox`, `wdt-kingdee sync`, `dagster asset materialize`."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from wdt_kingdee_assets.beijing import BEIJING
from wdt_kingdee_assets_tests.fixtures.sandbox_process import (
    SANDBOX_VARIABLES,
    admin_state,
    clean_env,
    running_sandbox,
)


def test_sandbox_prints_every_variable_and_serves_until_interrupted():
    with running_sandbox("--days", "1", "--orders-per-day", "5", "--seed", "3") as exported:
        assert set(exported) == SANDBOX_VARIABLES
        # The partitions start on the sandbox's first day: no years of empty days to offer.
        first_day = datetime.now(BEIJING).date() - timedelta(days=1)
        assert exported["WDT_KINGDEE_START_DATE"] == first_day.isoformat()
        assert exported["WDT_BASE_URL"].startswith("http://127.0.0.1:")
        assert admin_state(exported["WDT_BASE_URL"])["orders"] > 0
        assert admin_state(exported["KINGDEE_BASE_URL"])["counts"]["bills"] == 0


def test_sandbox_accepts_exactly_the_credentials_in_the_environment():
    env = clean_env(WDT_SID="acme", WDT_APPSECRET="s3cr3t:pepper", KINGDEE_APP_SECRET="k-secret-1")
    with running_sandbox("--days", "1", "--orders-per-day", "2", env=env) as exported:
        assert (exported["WDT_SID"], exported["WDT_APPSECRET"]) == ("acme", "s3cr3t:pepper")
        assert exported["KINGDEE_APP_SECRET"] == "k-secret-1"


def test_dagster_cli_materializes_a_day_with_the_sandbox_environment(tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    with running_sandbox(
        "--days", "1", "--orders-per-day", "8", "--missing-ratio", "0"
    ) as exported:
        day = (datetime.now(BEIJING).date() - timedelta(days=1)).isoformat()
        result = subprocess.run(
            [
                "dagster",
                "asset",
                "materialize",
                "-m",
                "wdt_kingdee_assets",
                "--select",
                "*",
                "--partition",
                day,
            ],
            env=clean_env(**exported, DAGSTER_HOME=str(home), WDT_CALLS_PER_MINUTE="0"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        bills = admin_state(exported["KINGDEE_BASE_URL"])["bills"]
        assert bills and len({bill["FBillNo"] for bill in bills}) == len(bills)
        assert (home / "wdt_kingdee_data" / "kingdee_write_results" / f"{day}.jsonl").exists()
        for secret in (exported["WDT_APPSECRET"].split(":")[0], exported["KINGDEE_APP_SECRET"]):
            assert secret not in result.stdout + result.stderr


@pytest.mark.slow
def test_main_job_syncs_recent_days_and_prints_a_summary(tmp_path: Path):
    """The quick start in a fresh shell: no WDT_KINGDEE_START_DATE, no DAGSTER_HOME."""
    result = subprocess.run(
        [sys.executable, "-m", "wdt_kingdee_assets.cli", "sync", "--days", "2", "--orders-per-day", "6",
         "--dagster-home", str(tmp_path / "home")],
        env=clean_env(WDT_CALLS_PER_MINUTE="0"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines()]
    synced = [row for row in rows if row and row[0] in ("stockouts", "stockins")]
    # Every flow, every day: the stock-outs and the stock-ins of both days, each run ok.
    assert sorted((row[0], row[2]) for row in synced) == sorted(
        (flow, "ok") for flow in ("stockouts", "stockins") for _ in range(2)
    )
    assert "其他入库单 (STK_MISCELLANEOUS)" in result.stdout
    assert "dagster dev" in result.stdout
    assert (tmp_path / "home" / "dagster.yaml").exists()


def test_dagster_validates_the_workspace_without_credentials():
    # Credentials are EnvVars resolved at run time: the definitions load without them.
    result = subprocess.run(
        ["dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=Path(__file__).resolve().parents[2],
        env=clean_env(WDT_KINGDEE_START_DATE="2025-06-01"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_definitions_without_a_start_date_fail_naming_the_variable():
    """Outside the sandbox nothing guesses the go-live day: no years of empty partitions."""
    result = subprocess.run(
        ["dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=Path(__file__).resolve().parents[2],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "WDT_KINGDEE_START_DATE is not set" in result.stdout + result.stderr


def test_preview_prints_each_bill_writes_the_payloads_and_nothing_to_kingdee(tmp_path: Path):
    out = tmp_path / "payloads.json"
    day = (datetime.now(BEIJING).date() - timedelta(days=1)).isoformat()
    command = [sys.executable, "-m", "wdt_kingdee_assets.cli", "preview", "--day", day]
    with running_sandbox("--days", "1", "--orders-per-day", "6", "--missing-ratio", "0") as env:
        result = subprocess.run(
            [*command, "--out", str(out)],
            env=clean_env(**env, WDT_KINGDEE_DATA_DIR=str(tmp_path / "data")),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        lines = result.stdout.splitlines()
        assert f"production_stockout {day}: new 6, identical 0" in "\n".join(lines)
        assert sum(line.startswith("new ") for line in lines) == 6
        [payload] = json.loads(out.read_text(encoding="utf-8"))
        assert payload["formid"] == "STK_MisDelivery" and len(payload["data"]["Model"]) == 6
        assert admin_state(env["KINGDEE_BASE_URL"])["bills"] == []
    # It cannot answer without the environment: exit 2, naming what is missing.
    missing = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "not set: KINGDEE_ACCT_ID" in missing.stderr
