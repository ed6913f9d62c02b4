"""The UI path: `dagster-webserver` + `dagster-daemon` with the shipped dagster.yaml, driven over GraphQL.

A single-partition run, a 7-day backfill and the late-stock-outs sensor, each launched the way
the UI launches them, against the sandbox running in this test process; then Kingdee's state,
the checks' results and the sensor's run are read back.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dagster_graphql import DagsterGraphQLClient

from wdt_kingdee_assets.instance import install_instance_config
from wdt_kingdee_assets.normalize import parse_wdt_datetime
from wdt_kingdee_assets.sandbox.faults import FaultRule
from wdt_kingdee_assets.sandbox.kingdee_server import KingdeeMaterial
from wdt_kingdee_assets.sandbox.runtime import Sandbox, SandboxOptions
from wdt_kingdee_assets.sandbox.wdt_server import STOCKIN

pytestmark = pytest.mark.slow

ASSETS = ["raw_stockouts", "normalized_stockouts", "kingdee_bills", "kingdee_write_results"]
CHECKS = {
    "raw_stockouts": ["raw_stockouts_complete"],
    "normalized_stockouts": ["no_rejected_lines"],
    "kingdee_bills": [
        "materials_exist_in_kingdee",
        "bill_quantities_match_source",
        "no_held_bills",
    ],
    "kingdee_write_results": [
        "ready_bills_written",
        "ready_bills_in_effect",
        "day_complete",
        "kingdee_quantities_match_bills",
        "no_duplicate_bills_in_kingdee",
    ],
}
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
# The Kingdee threads the services may use between them (KINGDEE_THREADS).
KINGDEE_THREADS = 2
MODULE = "wdt_kingdee_assets.definitions"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"gave up waiting for {what} after {timeout:.0f} s")


def answering(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def dagster_services(home: Path, env: dict[str, str]) -> Iterator[int]:
    """Webserver and daemon on one DAGSTER_HOME; stopped with SIGTERM, then their groups killed."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    commands = {
        "webserver": [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port), "-m", MODULE],
        "daemon": [str(bin_dir / "dagster-daemon"), "run", "-m", MODULE],
    }  # fmt: skip
    processes: list[subprocess.Popen] = []
    try:
        for name, command in commands.items():
            log = (home / f"{name}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=home,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        wait_for("the webserver", lambda: answering(f"http://127.0.0.1:{port}/server_info"), 90)
        yield port
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
            # The group: code servers and run workers the service started go with it.
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class Dagster:
    """The few GraphQL calls the UI makes for this test."""

    def __init__(self, port: int) -> None:
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=port)

    def query(self, text: str, **variables: Any) -> dict[str, Any]:
        # The client has helpers for jobs and run status only; backfills, sensors and check
        # results go through its (private) raw executor, as the UI's own queries do.
        return self.client._execute(text, variables)

    def location(self) -> tuple[str, str] | None:
        """(location, repository) once the code location has loaded; None before."""
        data = self.query(
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
        )
        nodes = data["repositoriesOrError"].get("nodes") or []
        return (nodes[0]["location"]["name"], nodes[0]["name"]) if nodes else None

    def asset_groups(self) -> dict[str, dict[str, Any]]:
        """Group → its asset keys and the jobs that materialize them, as the UI lists them."""
        data = self.query("{ assetNodes { assetKey { path } groupName jobNames } }")
        groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"assets": set(), "jobs": set()})
        for node in data["assetNodes"]:
            group = groups[node["groupName"]]
            group["assets"].add("/".join(node["assetKey"]["path"]))
            group["jobs"].update(job for job in node["jobNames"] if not job.startswith("__"))
        return dict(groups)

    def launch_backfill(self, days: list[str]) -> str:
        data = self.query(
            """mutation($params: LaunchBackfillParams!) {
                 launchPartitionBackfill(backfillParams: $params) {
                   __typename
                   ... on LaunchBackfillSuccess { backfillId }
                   ... on PythonError { message }
                 }
               }""",
            params={"partitionNames": days, "assetSelection": [{"path": [a]} for a in ASSETS]},
        )["launchPartitionBackfill"]
        assert data["__typename"] == "LaunchBackfillSuccess", data
        return data["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        data = self.query(
            """query($id: String!) {
                 partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
               }""",
            id=backfill_id,
        )
        return data["partitionBackfillOrError"]["status"]

    def runs(self, tag: str, value: str) -> list[dict[str, Any]]:
        data = self.query(
            """query($tags: [ExecutionTag!]) {
                 runsOrError(filter: {tags: $tags}) {
                   ... on Runs { results { runId status tags { key value } } }
                 }
               }""",
            tags=[{"key": tag, "value": value}],
        )
        return [
            {**run, "tags": {t["key"]: t["value"] for t in run["tags"]}}
            for run in data["runsOrError"]["results"]
        ]

    def check_executions(self, asset: str, check: str) -> list[dict[str, Any]]:
        data = self.query(
            """query($key: AssetKeyInput!, $check: String!) {
                 assetCheckExecutions(assetKey: $key, checkName: $check, limit: 100) {
                   partition status evaluation { success severity partition }
                 }
               }""",
            key={"path": [asset]},
            check=check,
        )
        return data["assetCheckExecutions"]

    def latest_metadata(self, asset: str) -> dict[str, Any]:
        """The newest materialization's metadata: numbers as numbers, tables as row dicts."""
        data = self.query(
            """query($key: AssetKeyInput!) {
                 assetOrError(assetKey: $key) {
                   ... on Asset { assetMaterializations(limit: 1) { runId metadataEntries {
                     label
                     ... on IntMetadataEntry { intValue }
                     ... on TextMetadataEntry { text }
                     ... on TableMetadataEntry { table { records } }
                   } } }
                 }
               }""",
            key={"path": [asset]},
        )
        [latest] = data["assetOrError"]["assetMaterializations"]
        values: dict[str, Any] = {"run_id": latest["runId"]}
        for entry in latest["metadataEntries"]:
            if "table" in entry:
                values[entry["label"]] = [json.loads(r) for r in entry["table"]["records"]]
            else:
                values[entry["label"]] = entry.get("intValue", entry.get("text"))
        return values

    def job_runs(self, job: str) -> list[dict[str, Any]]:
        """The runs the UI lists under the job: its name and this code location's tag."""
        location, repository = self.location() or ("", "")
        data = self.query(
            """query($filter: RunsFilter) {
                 runsOrError(filter: $filter) { ... on Runs { results { runId status } } }
               }""",
            filter={
                "pipelineName": job,
                "tags": [{"key": ".dagster/repository", "value": f"{repository}@{location}"}],
            },
        )
        return data["runsOrError"]["results"]

    def start_sensor(self, name: str) -> str:
        location, repository = self.location() or ("", "")
        data = self.query(
            """mutation($selector: SensorSelector!) {
                 startSensor(sensorSelector: $selector) {
                   __typename
                   ... on Sensor { sensorState { status } }
                   ... on PythonError { message }
                 }
               }""",
            selector={
                "repositoryLocationName": location,
                "repositoryName": repository,
                "sensorName": name,
            },
        )["startSensor"]
        assert data["__typename"] == "Sensor", data
        return data["sensorState"]["status"]


def completed_orders(sandbox: Sandbox, day: str) -> list[dict[str, Any]]:
    return [
        order
        for order in sandbox.wdt.orders_on(date.fromisoformat(day))
        if order.get("status") == 110 and parse_wdt_datetime(order.get("consign_time"))
    ]


def quantities(lines: list[dict[str, Any]], material: str, qty: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        totals[line[material]] += Decimal(str(line[qty]))
    return dict(totals)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    # Eight closed days: one for the single run, seven for the backfill.
    # Kingdee answers in 50 ms, so that the runs' calls can overlap.
    running = Sandbox(
        SandboxOptions(
            seed=5,
            orders_per_day=5,
            stockins_per_day=6,
            days=4,
            missing_ratio=0,
            kingdee_latency=0.05,
        )
    )
    running.seed()
    with running:
        yield running


def service_environment(sandbox: Sandbox, home: Path) -> dict[str, str]:
    """The instance config in ``home``; the services' environment: the caller's without any
    WDT_/KINGDEE_/DAGSTER_ setting, the sandbox's, and no WDT quota rests."""
    install_instance_config(home)
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WDT_", "KINGDEE_", "DAGSTER_"))
    }
    return (
        kept
        | sandbox.env()
        | {
            "DAGSTER_HOME": str(home),
            "WDT_CALLS_PER_MINUTE": "0",
            "KINGDEE_THREADS": str(KINGDEE_THREADS),
        }
    )


def test_ui_runs_backfills_and_sensor_through_the_webserver(tmp_path: Path, sandbox: Sandbox):
    home = tmp_path / "dagster_home"
    env = service_environment(sandbox, home)
    days = [day.isoformat() for day in sandbox.sync_days()]
    single, backfilled = days[0], days[1:]

    with dagster_services(home, env) as port:
        dagster = Dagster(port)
        # The webserver answers before it has loaded the code location.
        wait_for("the code location", dagster.location, 90)
        # Two flows, each a group of four daily assets and its comparison with Kingdee, with
        # the sync, preview and correct jobs.
        groups = dagster.asset_groups()
        assert groups["wdt_to_kingdee"] == {
            "assets": {*ASSETS, "kingdee_corrections", "kingdee_vs_wdt"},
            "jobs": {"sync_stockouts", "retry_stockouts", "preview_stockouts", "correct_stockouts"},
        }
        assert groups["production_stockin"]["jobs"] == {
            "sync_stockins",
            "retry_stockins",
            "preview_stockins",
            "correct_stockins",
        }
        assert groups["operations"]["assets"] == {"open_bills"}
        assert len(groups["production_stockin"]["assets"]) == 6
        run_id = dagster.client.submit_job_execution(
            "sync_stockouts", tags={"dagster/partition": single}
        )
        stockin_run = dagster.client.submit_job_execution(
            "sync_stockins", tags={"dagster/partition": single}
        )
        backfill_id = dagster.launch_backfill(backfilled)

        wait_for(
            "the single-partition run",
            lambda: dagster.client.get_run_status(run_id).value in FINISHED,
            120,
        )
        assert dagster.client.get_run_status(run_id).value == "SUCCESS"
        wait_for(
            "the stock-in run",
            lambda: dagster.client.get_run_status(stockin_run).value in FINISHED,
            120,
        )
        assert dagster.client.get_run_status(stockin_run).value == "SUCCESS"
        receipts = sandbox.kingdee.bills("STK_MISCELLANEOUS")
        checked_in = [
            order
            for order in sandbox.wdt.orders_on(date.fromisoformat(single), STOCKIN.name)
            if order["status"] == 80
        ]
        assert len(receipts) == len(checked_in) > 0
        runs = wait_for(
            "the backfill's runs",
            lambda: (r := dagster.runs("dagster/backfill", backfill_id)) and len(r) == len(backfilled) and all(x["status"] in FINISHED for x in r) and r,
            150,
        )  # fmt: skip
        # One run per day (the backfill policy), every one successful.
        assert sorted(r["tags"]["dagster/partition"] for r in runs) == backfilled
        assert {r["status"] for r in runs} == {"SUCCESS"}

        # The runs went side by side, and between them never had more Kingdee calls in flight
        # than the machine's budget lends (the runs' processes share its lock files).
        assert sandbox.kingdee.state()["peak_concurrency"] <= KINGDEE_THREADS

        # Kingdee holds each completed stock-out of the days once, with its quantities.
        bills = {bill["FBillNo"]: bill for bill in sandbox.kingdee.bills()}
        assert not [
            n for n, c in Counter(b["FBillNo"] for b in sandbox.kingdee.bills()).items() if c > 1
        ]
        orders = [order for day in days for order in completed_orders(sandbox, day)]
        assert sorted(bills) == sorted(order["stockout_no"] for order in orders)
        for order in orders:
            assert quantities(bills[order["stockout_no"]]["entries"], "material", "qty") == (
                quantities(order["detail_list"], "spec_no", "num")
            ), order["stockout_no"]

        # Every check ran for every day, partition by partition, and passed.
        for asset, names in CHECKS.items():
            for name in names:
                executions = dagster.check_executions(asset, name)
                passed = {
                    e["partition"]: e["evaluation"]["success"]
                    for e in executions
                    if e["evaluation"]
                }
                assert passed == dict.fromkeys(days, True), (asset, name, executions)

        # A stock-out of an already synced day reaches WDT late; the sensor, switched on from
        # the UI, re-syncs exactly that day.
        late_day = backfilled[1]  # a day with synced days on both sides
        late = copy.deepcopy(completed_orders(sandbox, late_day)[0])
        late.update(stockout_id=880001, stockout_no="LATE-E2E-1")
        sandbox.wdt.add_orders([late])
        assert dagster.start_sensor("late_stockouts_sensor") == "RUNNING"
        [sensor_run] = wait_for(
            "the sensor's run",
            lambda: [
                r
                for r in dagster.runs("dagster/sensor_name", "late_stockouts_sensor")
                if r["status"] in FINISHED
            ],
            120,
        )
        assert sensor_run["tags"]["dagster/partition"] == late_day
        assert sensor_run["status"] == "SUCCESS"
        assert [b["FBillNo"] for b in sandbox.kingdee.bills()].count("LATE-E2E-1") == 1
        assert len(sandbox.kingdee.bills()) == len(orders) + 1

        # The backfill daemon marks the backfill done on its next pass over it.
        status = wait_for(
            "the backfill's status",
            lambda: (s := dagster.backfill_status(backfill_id)) not in {"REQUESTED", "CANCELING", "FAILING"} and s,
            60,
        )  # fmt: skip
        assert status == "COMPLETED_SUCCESS"


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc (Linux)."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with suppress(OSError):
                children = [int(c) for c in (task / "children").read_text().split()]
                found.extend(children)
                queue.extend(children)
    return found


def environment_of(pid: int) -> dict[str, str]:
    with suppress(OSError):
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    return {}


def command_of(pid: int) -> str:
    with suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
def test_sync_ui_keeps_every_process_on_the_sandbox_whatever_a_dotenv_says(tmp_path: Path):
    """A `.env` in the working directory and the shell both name a "real" Kingdee and WDT: neither
    reaches the UI's webserver, daemon or code server, nor the runs they launch."""
    real = {
        "KINGDEE_BASE_URL": "http://127.0.0.1:9/k3cloud/",
        "KINGDEE_APP_SECRET": "production-secret-1",
        "WDT_BASE_URL": "http://127.0.0.1:9/openapi",
        "WDT_KINGDEE_DATA_DIR": str(tmp_path / "production-data"),
    }
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in real.items()), "utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WDT_", "KINGDEE_"))}
    env.pop("DAGSTER_HOME", None)
    ui = subprocess.Popen(
        [sys.executable, "-m", "wdt_kingdee_assets.cli", "sync", "--ui", "--port", str(port),
         "--days", "1", "--orders-per-day", "3", "--dagster-home", str(tmp_path / "home")],
        cwd=tmp_path,
        env={**env, **real, "WDT_CALLS_PER_MINUTE": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for("the UI", lambda: answering(f"http://127.0.0.1:{port}/server_info"), 240)

        def dagster_processes() -> dict[int, str] | None:
            found = {pid: command_of(pid) for pid in descendants(ui.pid)}
            found = {pid: command for pid, command in found.items() if "dagster" in command}
            daemon = any("daemon" in command for command in found.values())
            code_server = any(
                "grpc" in command or "code-server" in command for command in found.values()
            )
            return found if daemon and code_server else None

        processes = wait_for("daemon and code server", dagster_processes, 120)
        assert len(processes) >= 3, processes
        for pid, command in processes.items():
            seen = environment_of(pid)
            assert seen.get("KINGDEE_BASE_URL", "").startswith("http://127.0.0.1:"), command
            for name, value in real.items():
                assert seen.get(name) != value, f"{command} has {name} from the shell or .env"
                assert value not in "\0".join(seen.values()), command
    finally:
        with suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGINT)
        try:
            ui.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()


def finished(dagster: Dagster, run_id: str) -> str:
    wait_for(f"run {run_id}", lambda: dagster.client.get_run_status(run_id).value in FINISHED, 120)
    return dagster.client.get_run_status(run_id).value


def test_held_and_failed_days_are_not_done_the_open_bills_group_them_and_one_bill_is_retried(
    tmp_path: Path,
):
    """The ops engineer's morning: a day waiting on a material, a day Kingdee failed, both
    shown as not done; the open bills grouped by cause; one bill re-pushed from the UI."""
    sandbox = Sandbox(
        SandboxOptions(seed=11, orders_per_day=8, stockins_per_day=1, days=2, missing_ratio=0.25)
    )
    sandbox.seed()
    home = tmp_path / "dagster_home"
    env = service_environment(sandbox, home)
    held_day, failed_day = (day.isoformat() for day in sandbox.sync_days())
    with sandbox, dagster_services(home, env) as port:
        dagster = Dagster(port)
        wait_for("the code location", dagster.location, 90)

        # A day whose only open bills wait on materials: the run succeeds, but the day says
        # "waiting on someone" — in the run's tags and in its day_complete check (WARN).
        waiting_run = dagster.client.submit_job_execution(
            "sync_stockouts", tags={"dagster/partition": held_day}
        )
        assert finished(dagster, waiting_run) == "SUCCESS"
        [tagged] = dagster.runs("wdt_kingdee/day_status", "waiting_on_someone")
        assert tagged["runId"] == waiting_run and int(tagged["tags"]["wdt_kingdee/open_bills"]) > 0

        # A day Kingdee answers with HTTP 500: the bills fail, the run fails at day_complete.
        sandbox.kingdee.faults.add(FaultRule.parse("5xx@BatchSave,times=999"))
        failed_run = dagster.client.submit_job_execution(
            "sync_stockouts", tags={"dagster/partition": failed_day}
        )
        assert finished(dagster, failed_run) == "FAILURE"
        [attention] = dagster.runs("wdt_kingdee/day_status", "needs_attention")
        assert attention["runId"] == failed_run
        sandbox.kingdee.faults.clear()

        complete = {
            e["partition"]: e["evaluation"]
            for e in dagster.check_executions("kingdee_write_results", "day_complete")
            if e["evaluation"]
        }
        assert complete[held_day]["success"] is False and complete[held_day]["severity"] == "WARN"
        assert complete[failed_day]["success"] is False
        assert complete[failed_day]["severity"] == "ERROR"
        # The CLI-less user finds the runs under the job, as launched from the UI.
        assert {run["runId"] for run in dagster.job_runs("sync_stockouts")} >= {
            waiting_run,
            failed_run,
        }

        # The open bills of both days in one table, grouped by cause.
        view = dagster.latest_metadata("open_bills")
        assert view["run_id"] == failed_run
        causes = view["by_cause"]
        materials = [c for c in causes if c["cause"].startswith("物料缺失")]
        calls = [c for c in causes if c["cause"].startswith("接口调用失败")]
        assert materials and calls
        assert view["waiting_on_someone"] == sum(
            1 for row in view["bills"] if row["status"] == "waiting_on_someone"
        )
        attention_rows = [row for row in view["bills"] if row["status"] == "needs_attention"]
        assert view["needs_attention"] == len(attention_rows) > 0
        held = [row for row in view["bills"] if row["day"] == held_day]
        assert {row["status"] for row in held} == {"waiting_on_someone"}

        # The material of one held bill is created in Kingdee; that bill alone is re-pushed
        # from the UI through the retry job's config.
        bill = next(
            row
            for row in held
            if row["flow"] == "production_stockout" and ", " not in row["cause"].split(": ", 1)[1]
        )
        number = bill["cause"].split(": ", 1)[1]
        material = next(m for m in sandbox.catalog if m.number == number)
        sandbox.kingdee.add_material(
            KingdeeMaterial(material.number, material.name, material.base_unit)
        )
        before = {b["FBillNo"] for b in sandbox.kingdee.bills()}
        retry_run = dagster.client.submit_job_execution(
            "retry_stockouts",
            run_config={"ops": {"kingdee_write_results": {"config": {"only_bills": [bill["bill_no"]]}}}},
            tags={"dagster/partition": held_day},
        )  # fmt: skip
        finished(dagster, retry_run)
        after = {b["FBillNo"] for b in sandbox.kingdee.bills()}
        assert after - before == {bill["bill_no"]}, "exactly the named bill, once"
        still_open = {row["bill_no"] for row in dagster.latest_metadata("open_bills")["bills"]}
        assert bill["bill_no"] not in still_open
