"""Exactly once whatever the data center and the instance are set to: a Kingdee whose coding rule
renumbers every bill, two processes racing for one day, a call Kingdee refuses as a whole, WDT
throttled for minutes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import date

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from wdt_kingdee_assets.bills import wire_model
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY
from wdt_kingdee_assets.lease import WriteLease, holding
from wdt_kingdee_assets.locator import BillScope
from wdt_kingdee_assets.writer import BillWriter, bills_to_write
from wdt_kingdee_assets_tests.fixtures.pipeline import (
    check_results,
    materializations,
    needs_attention,
)
from wdt_kingdee_assets_tests.reliability.invariant import (
    assert_pipeline_invariant,
    orders_for_day,
)

RACER = "wdt_kingdee_assets_tests.reliability.materialize_day"
ASSETS_ONLY = dg.AssetSelection.all().without_checks()
UP_TO_BILLS = dg.AssetSelection.assets("raw_stockouts", "normalized_stockouts", "kingdee_bills")
BATCHES_OF_5 = {"ops": {"kingdee_write_results": {"config": {"batch_size": 5}}}}


def test_a_renumbering_kingdee_gets_each_bill_once_over_reruns(make_pipeline):
    pipeline = make_pipeline(
        missing_ratio=0.1, kingdee_unique_bill_no=False, kingdee_numbering="auto"
    )
    day = pipeline.days[-1]
    for _ in range(3):
        result = pipeline.run(day)
        assert result.success
        assert_pipeline_invariant(pipeline, day)
    results = pipeline.stored("kingdee_write_results", day)
    written = results[results["outcome"] == "already_in_kingdee"]
    assert len(written) > 0 and set(results["outcome"]) <= {"already_in_kingdee", "held"}
    assert (written["kingdee_bill_no"] != written["bill_no"]).all()
    assert all(number.startswith("QTCK") for number in written["kingdee_bill_no"])
    metadata = materializations(result, "kingdee_write_results")[0].metadata
    assert metadata["renumbered_by_kingdee"].value == len(written)
    checks = check_results(result)
    assert checks["no_duplicate_bills_in_kingdee"].passed
    assert checks["kingdee_quantities_match_bills"].passed


def test_the_duplicate_check_counts_bills_per_source_not_per_number(make_pipeline):
    """Under a renumbering rule two copies of one stock-out have two different numbers."""
    pipeline = make_pipeline(
        missing_ratio=0, orders_per_day=5, kingdee_unique_bill_no=False, kingdee_numbering="auto"
    )
    day = pipeline.days[-1]
    assert pipeline.run(day).success
    bills = pipeline.stored("kingdee_bills", day)
    copied = bills[bills["readiness"] == "ready"].iloc[0]
    again = pipeline.kingdee_client().batch_save(
        "STK_MisDelivery", [wire_model(copied["model"], MIS_DELIVERY)]
    )
    assert again.saved and again.saved[0].number != copied["bill_no"]

    result = pipeline.run(day)
    evaluation = check_results(result)["no_duplicate_bills_in_kingdee"]
    assert not evaluation.passed and evaluation.metadata["duplicated"].value == 1
    assert copied["bill_no"] in evaluation.metadata["bills"].value
    assert again.saved[0].number in evaluation.metadata["bills"].value


def test_a_custom_reference_field_identifies_bills_across_renumbering(make_pipeline, tmp_path):
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "source_ref_field: F_PAEZ_SourceRef\nnote_template: 'WDT {stockout_no}'\n",
        encoding="utf-8",
    )
    pipeline = make_pipeline(
        missing_ratio=0,
        kingdee_unique_bill_no=False,
        kingdee_numbering="auto",
        kingdee_custom_fields=["F_PAEZ_SourceRef"],
    )
    os.environ["WDT_KINGDEE_MAPPING"] = str(mapping)
    try:
        day = pipeline.days[-1]
        assert pipeline.run(day).success and pipeline.run(day).success
        assert_pipeline_invariant(pipeline, day)
        held = pipeline.sandbox.kingdee.bills()
        assert held and all(bill["F_PAEZ_SourceRef"].startswith("[WDT:") for bill in held)
        assert all("[WDT:" not in bill["FNote"] for bill in held)
    finally:
        del os.environ["WDT_KINGDEE_MAPPING"]


def _racer(pipeline, day: str, home, lease_wait: float, log, **env_extra) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home), **env_extra}
    return subprocess.Popen(
        [sys.executable, "-m", RACER, day, str(pipeline.data_dir), "5", str(lease_wait)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _shared_home(tmp_path):
    """A DAGSTER_HOME without pool or run limits, its storage created before the racers start
    (two processes creating a new SQLite storage at once race on its tables)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n", encoding="utf-8")
    with dg.DagsterInstance.from_config(str(home)):
        pass
    return home


def _write_results_metadata(home) -> list[dict]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(
            dg.AssetKey("kingdee_write_results"), limit=10
        ).records
        return [
            {key: value.value for key, value in record.asset_materialization.metadata.items()}
            for record in records
        ]


def test_two_processes_racing_for_one_day_write_each_bill_once(make_pipeline, tmp_path):
    """An instance without pool limits: two runs of a day at once, on a Kingdee that accepts a
    repeated number. The second waits for the first's lease, then finds every bill there."""
    pipeline = make_pipeline(
        missing_ratio=0.05,
        orders_per_day=30,
        kingdee_unique_bill_no=False,
        kingdee_per_bill_latency=0.15,  # about a second per BatchSave: the writes overlap
    )
    day = pipeline.days[-1]
    home = _shared_home(tmp_path)
    with open(tmp_path / "racers.log", "wb") as log:
        racers = [_racer(pipeline, day, home, 600, log) for _ in range(2)]
        codes = [racer.wait(timeout=300) for racer in racers]
    assert codes == [0, 0], (tmp_path / "racers.log").read_text(errors="replace")[-4000:]
    assert_pipeline_invariant(pipeline, day)
    waited = sorted(meta["lease_waited_seconds"] for meta in _write_results_metadata(home))
    assert waited[0] < 0.5 and waited[1] >= 1, f"one run waited for the other's lease: {waited}"
    created = sorted(meta["created"] for meta in _write_results_metadata(home))
    assert created[0] == 0 and created[1] > 0


def test_a_run_that_cannot_wait_stops_naming_the_holder_and_a_later_run_completes(
    make_pipeline, tmp_path
):
    pipeline = make_pipeline(
        missing_ratio=0,
        orders_per_day=30,
        kingdee_unique_bill_no=False,
        kingdee_per_bill_latency=0.6,
    )
    day = pipeline.days[-1]
    home = _shared_home(tmp_path)
    with open(tmp_path / "racers.log", "wb") as log:
        # One Kingdee thread makes the write serial: six batches of 5 bills at 3 s each, so the
        # impatient run has 15 s after the first batch to reach the lease, however slow the machine.
        patient = _racer(pipeline, day, home, 600, log, KINGDEE_THREADS="1")
        # The impatient one starts once the patient one writes (its first bills are in Kingdee).
        deadline = time.monotonic() + 120
        while not pipeline.sandbox.kingdee.bills():
            assert time.monotonic() < deadline and patient.poll() is None
            time.sleep(0.05)
        impatient = _racer(pipeline, day, home, 0, log)
        assert impatient.wait(timeout=300) == 1
        assert patient.wait(timeout=300) == 0
    text = (tmp_path / "racers.log").read_text(errors="replace")
    assert "is being written by run" in text and "wrote nothing" in text
    assert_pipeline_invariant(pipeline, day)
    assert pipeline.run(day).success  # a later run completes the day, sending nothing
    assert set(pipeline.stored("kingdee_write_results", day)["outcome"]) == {"already_in_kingdee"}


def test_without_the_lease_racing_writers_duplicate_and_with_it_they_do_not(make_pipeline):
    """The lease is necessary: the writer's ask-first rule alone lets two writers both send."""
    pipeline = make_pipeline(
        missing_ratio=0,
        orders_per_day=20,
        kingdee_unique_bill_no=False,
        kingdee_per_bill_latency=0.02,
    )
    day = pipeline.days[-1]
    assert pipeline.run(day, selection=UP_TO_BILLS).success
    bills = bills_to_write(pipeline.stored("kingdee_bills", day), PRODUCTION_STOCKOUT)
    scope = BillScope(MIS_DELIVERY, date.fromisoformat(day), ("100",), "QTCKD01_SYS", "FNote")

    def race(*writes) -> None:
        start = threading.Barrier(len(writes))

        def go(write) -> None:
            start.wait()
            write()

        threads = [threading.Thread(target=go, args=(write,)) for write in writes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def unguarded() -> None:
        BillWriter(pipeline.kingdee_client(), scope, batch_size=5).write(bills)

    race(unguarded, unguarded)
    numbers = [bill["FBillNo"] for bill in pipeline.sandbox.kingdee.bills()]
    assert len(numbers) > len(set(numbers)), "two unguarded writers duplicated bills"

    pipeline.sandbox.kingdee.reset()

    def guarded(run_id: str):
        pipeline.instance.add_run(
            DagsterRun(job_name="sync_stockouts", run_id=run_id, status=dg.DagsterRunStatus.STARTED)
        )

        def write() -> None:
            lease = WriteLease(pipeline.instance, f"wdt_to_kingdee/{day}", run_id)
            with holding(lease, wait_seconds=60, poll_seconds=0.05) as held:
                writer = BillWriter(
                    pipeline.kingdee_client(), scope, batch_size=5, before_send=held.check
                )
                writer.write(bills)

        return write

    race(guarded("a" * 32), guarded("b" * 32))
    numbers = [bill["FBillNo"] for bill in pipeline.sandbox.kingdee.bills()]
    assert numbers and len(numbers) == len(set(numbers))


@pytest.mark.parametrize("code", [2, 7])
def test_an_account_refused_as_a_whole_blames_no_bill_and_stops_sending(make_pipeline, code):
    pipeline = make_pipeline(
        missing_ratio=0, orders_per_day=20, kingdee_faults=[f"call_error@BatchSave,code={code}"]
    )
    day = pipeline.days[-1]
    result = pipeline.run(day, run_config=BATCHES_OF_5)
    assert needs_attention(result)
    results = pipeline.stored("kingdee_write_results", day)
    assert set(results["outcome"]) == {"failed"} and set(results["failure"]) == {"permanent"}
    first = results.iloc[0]["messages"]
    assert any(f"MsgCode {code}" in message for message in first)
    later = results.iloc[-1]["messages"]
    assert any(message.startswith("not sent: ") for message in later)
    metadata = materializations(result, "kingdee_write_results")[0].metadata
    assert metadata["batch_save_calls"].value == 1 and metadata["call_failures"].value == 1
    assert pipeline.kingdee_bill_numbers() == []


def test_a_passing_call_level_failure_fails_its_batch_only_and_a_rerun_completes(make_pipeline):
    pipeline = make_pipeline(
        missing_ratio=0, orders_per_day=20, kingdee_faults=["call_error@BatchSave,code=6,skip=1"]
    )
    day = pipeline.days[-1]
    result = pipeline.run(day, run_config=BATCHES_OF_5)
    assert needs_attention(result)
    results = pipeline.stored("kingdee_write_results", day)
    failed = results[results["outcome"] == "failed"]
    assert len(failed) == 5 and set(failed["failure"]) == {"transient"}
    assert all(any("数据库操作失败" in m for m in messages) for messages in failed["messages"])
    assert (failed["attempts"] == 1).all(), "a refused call is not sent again in the run"
    assert pipeline.run(day, run_config=BATCHES_OF_5).success
    assert_pipeline_invariant(pipeline, day)


def test_a_day_survives_wdt_throttling_and_its_run_log_says_so(make_pipeline, monkeypatch):
    monkeypatch.setenv("WDT_THROTTLE_FIRST_WAIT_SECONDS", "0.5")
    monkeypatch.setenv("WDT_THROTTLE_MAX_WAIT_SECONDS", "10")
    pipeline = make_pipeline(missing_ratio=0, orders_per_day=5, wdt_faults=["throttle,seconds=2"])
    day = pipeline.days[-1]
    result = pipeline.run(day, selection=ASSETS_ONLY)
    assert result.success
    logged = [
        record.user_message
        for record in pipeline.instance.all_logs(result.run_id)
        if record.user_message
    ]
    assert any(m.startswith("WDT throttled (超过每分钟最大调用频率限制") for m in logged), logged
    assert orders_for_day(pipeline.sandbox, pipeline.sandbox.sync_days()[-1])
    assert_pipeline_invariant(pipeline, day)
