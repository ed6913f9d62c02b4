"""Production path: the shipped deploy/dagster.yaml on a real PostgreSQL server.

A day's sync through the sandbox, then a 3-day backfill run by the daemon, shown from the event
log's timestamps never to run two steps of the same API pool at once; and the per-day write lease
in PostgreSQL's key-value table, raced for by many threads at once.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from wdt_kingdee_assets.lease import WriteLease
from wdt_kingdee_assets.sandbox.runtime import Sandbox, SandboxOptions
from wdt_kingdee_assets_tests.deploy.postgres import (
    PostgresServer,
    postgres_server,
    server_binaries,
)
from wdt_kingdee_assets_tests.fixtures.daemon import (
    daemon_running,
    finished_backfill_runs,
    launch_backfill,
)

REPO = Path(__file__).resolve().parents[2]
WDT_POOL_STEPS = {"raw_stockouts", "raw_stockouts_raw_stockouts_complete"}
KINGDEE_POOL_STEPS = {"kingdee_bills", "kingdee_write_results", "kingdee_matches_bills"}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = server_binaries()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are missing; .ci/run installs them")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with postgres_server(bin_dir) as server:
        yield server


@pytest.fixture
def deployment(postgres, tmp_path) -> Iterator[tuple[Sandbox, dict[str, str]]]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    sandbox = Sandbox(
        SandboxOptions(
            seed=5, orders_per_day=12, days=4, missing_ratio=0, kingdee_per_bill_latency=0.02
        )
    )
    sandbox.seed()
    with sandbox:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("WDT_", "KINGDEE_"))},
            **sandbox.env(),
            **postgres.env(),
            "DAGSTER_HOME": str(home),
            "WDT_CALLS_PER_MINUTE": "0",
        }
        yield sandbox, env


def dagster_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def postgres_instance(env: dict[str, str]) -> dg.DagsterInstance:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return dg.DagsterInstance.get()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_a_day_syncs_on_postgres_storage(deployment):
    sandbox, env = deployment
    day = sandbox.sync_days()[0].isoformat()
    result = dagster_cli(
        env, "asset", "materialize", "-m", "wdt_kingdee_assets", "--select", "*", "--partition", day
    )
    assert result.returncode == 0, result.stderr[-3000:]

    with postgres_instance(env) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert instance.get_materialized_partitions(dg.AssetKey("kingdee_write_results")) == {day}
    numbers = [bill["FBillNo"] for bill in sandbox.kingdee.bills()]
    expected = {
        o["stockout_no"]
        for o in sandbox.wdt.orders_on(sandbox.sync_days()[0])
        if o["status"] == 110
    }
    assert sorted(numbers) == sorted(expected)


def step_intervals(
    instance: dg.DagsterInstance, run_ids: list[str]
) -> dict[str, list[tuple[float, float, str]]]:
    """Step key → [(start, end, run_id)] from the runs' event logs."""
    intervals: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for run_id in run_ids:
        started: dict[str, float] = {}
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None or not event.step_key:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                started[event.step_key] = entry.timestamp
            elif event.event_type in (
                dg.DagsterEventType.STEP_SUCCESS,
                dg.DagsterEventType.STEP_FAILURE,
            ):
                intervals[event.step_key].append((started[event.step_key], entry.timestamp, run_id))
    return intervals


def overlapping(intervals: list[tuple[float, float, str]]) -> list[tuple]:
    ordered = sorted(intervals)
    return [(a, b) for a, b in itertools.pairwise(ordered) if b[0] < a[1]]


def test_backfill_never_runs_two_steps_of_one_api_pool_at_once(deployment):
    sandbox, env = deployment
    days = [day.isoformat() for day in sandbox.sync_days()[1:]]
    with daemon_running(env):
        launch_backfill(env, days)
        with postgres_instance(env) as instance:
            records = finished_backfill_runs(instance, days, timeout=240)
            runs = [record.dagster_run for record in records]
            assert all(run.is_success for run in runs), [
                (r.tags["dagster/partition"], r.status) for r in runs
            ]
            assert sorted(run.tags["dagster/partition"] for run in runs) == sorted(days)
            intervals = step_intervals(instance, [run.run_id for run in runs])
            run_spans = [(r.start_time, r.end_time, r.dagster_run.run_id) for r in records]

    # The runs themselves did overlap (the queue allows several at once), so it is the pools,
    # not a serial queue, that kept the API-bound steps apart.
    assert overlapping(run_spans), run_spans
    for pool_steps in (WDT_POOL_STEPS, KINGDEE_POOL_STEPS):
        pooled = [interval for step in pool_steps for interval in intervals.get(step, [])]
        assert len({run_id for _, _, run_id in pooled}) == len(days), intervals.keys()
        assert overlapping(pooled) == []
    numbers = [bill["FBillNo"] for bill in sandbox.kingdee.bills()]
    assert len(numbers) == len(set(numbers)) > 0


def test_the_write_lease_has_one_holder_on_postgres_however_many_race(deployment):
    _, env = deployment
    with postgres_instance(env) as instance:
        runs = []
        for _ in range(6):
            run = dg.DagsterRun(job_name="sync_stockouts", run_id=str(uuid.uuid4()))
            instance.add_run(run)
            runs.append(run.run_id)
        for round_no in range(5):
            leases = [WriteLease(instance, f"race/{round_no}", run_id) for run_id in runs]
            start = threading.Barrier(len(leases))

            def take(lease: WriteLease, start: threading.Barrier) -> None:
                start.wait()
                lease.try_acquire()

            threads = [threading.Thread(target=take, args=(lease, start)) for lease in leases]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            holders = [lease for lease in leases if lease.held]
            assert len(holders) == 1, round_no
            others = [lease for lease in leases if not lease.held]
            assert {lease.try_acquire().run_id for lease in others} == {holders[0].run_id}
