"""The commands a user types: `wdt-kingdee sandbox`, `wdt-kingdee sync`, `dagster asset materialize`."""

from __future__ import annotations

import csv as csv_module
import json
import subprocess
import sys
import urllib.request
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path

import openpyxl
import pytest

from wdt_kingdee_assets.beijing import BEIJING
from wdt_kingdee_assets.reading import read_day
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
    rows = [line.split() for line in result.stdout.splitlines()]
    synced = [row for row in rows if row and row[0] in ("stockouts", "stockins")]
    # Every flow, every day: the stock-outs and the stock-ins of both days, each done or waiting
    # on a material the sandbox lacks — and the exit code says which.
    assert sorted(row[0] for row in synced) == ["stockins"] * 2 + ["stockouts"] * 2
    statuses = {row[2] for row in synced}
    assert statuses <= {"done", "waiting_on_someone"}, result.stdout[-2000:]
    expected = 3 if "waiting_on_someone" in statuses else 0
    assert result.returncode == expected, result.stdout[-2000:] + result.stderr[-3000:]
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


def wdt_kingdee(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wdt_kingdee_assets.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def create_material(kingdee_url: str, number: str, unit: str) -> None:
    root = kingdee_url.split("/k3cloud")[0]
    body = json.dumps({"number": number, "name": "新建物料", "base_unit": unit}).encode()
    request = urllib.request.Request(f"{root}/__admin__/materials", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.load(response)["ok"]


@pytest.mark.slow
def test_status_open_bills_and_retry_answer_the_daily_questions_with_exit_codes(tmp_path: Path):
    """The day against "real" servers (the sandbox in another process): synced with `retry --day`,
    judged by `status`, listed and exported by `open-bills`, finished by `retry --bill` once the
    missing materials exist — each command's exit code saying where the days stand."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    with running_sandbox(
        "--days", "1", "--orders-per-day", "8", "--stockins-per-day", "2", "--missing-ratio", "0.3", "--seed", "4"
    ) as exported:  # fmt: skip
        env = clean_env(**exported, DAGSTER_HOME=str(home), WDT_CALLS_PER_MINUTE="0")
        day = (datetime.now(BEIJING).date() - timedelta(days=1)).isoformat()

        synced = wdt_kingdee("retry", "--day", day, env=env)
        assert synced.returncode == 3, synced.stdout + synced.stderr[-3000:]
        assert "待人处理 waiting on someone" in synced.stdout

        status = wdt_kingdee("status", "--days", "1", env=env)
        assert status.returncode == 3, status.stdout
        assert "waiting_on_someone" in status.stdout and "needs_attention" not in status.stdout

        csv, xlsx = tmp_path / "open.csv", tmp_path / "open.xlsx"
        listed = wdt_kingdee("open-bills", "--csv", str(csv), "--xlsx", str(xlsx), env=env)
        assert listed.returncode == 0, listed.stderr[-3000:]
        assert "物料缺失或未启用 material missing or not enabled in Kingdee" in listed.stdout
        raw = csv.read_bytes()
        assert raw.startswith("\ufeff".encode()), "Excel needs the BOM to read UTF-8"
        rows = list(csv_module.DictReader(raw.decode("utf-8-sig").splitlines()))
        assert rows and {row["status"] for row in rows} == {"waiting_on_someone"}
        workbook = openpyxl.load_workbook(xlsx)
        assert workbook.sheetnames == ["按原因 by cause", "单据 bills"]
        assert workbook["单据 bills"].max_row == len(rows) + 1

        assert wdt_kingdee("retry", "--bill", "NO-SUCH-BILL", env=env).returncode == 2

        # Every missing material is created in Kingdee; the open bills alone are re-pushed.
        data_dir = home / "wdt_kingdee_data"
        units = {}
        for lines in ("normalized_stockouts", "production_stockin/normalized_stockins"):
            with suppress(FileNotFoundError):
                frame = read_day(lines, day, data_dir)
                units.update(zip(frame["spec_no"], frame["base_unit_name"], strict=True))
        for number in {key for row in rows for key in row["causes"].split(", ")}:
            create_material(exported["KINGDEE_BASE_URL"], number, units[number])
        before = len(admin_state(exported["KINGDEE_BASE_URL"])["bills"])  # 其他出库单
        bills = [arg for row in rows for arg in ("--bill", row["bill_no"])]
        retried = wdt_kingdee("retry", *bills, env=env)
        assert retried.returncode == 0, retried.stdout + retried.stderr[-3000:]
        stockouts = sum(row["flow"] == "production_stockout" for row in rows)
        assert len(admin_state(exported["KINGDEE_BASE_URL"])["bills"]) == before + stockouts
        for row in rows:
            assert f"{row['bill_no']}: created" in retried.stdout

        done = wdt_kingdee("status", "--days", "1", env=env)
        assert done.returncode == 0, done.stdout
        assert "没有未完成的单据" in wdt_kingdee("open-bills", env=env).stdout
