"""A process killed between BatchSave calls: the re-run completes the day, no duplicate, no loss."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from wdt_kingdee_assets_tests.reliability.invariant import (
    KingdeeWorld,
    assert_pipeline_invariant,
    orders_for_day,
    why_not_eligible,
)

BATCH_SIZE = 5
VICTIM = "wdt_kingdee_assets_tests.reliability.materialize_day"
WAIT_SECONDS = 180  # a bound on waiting for the victim, not a performance assertion


def wait_for(condition, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}")
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_a_run_killed_after_some_batches_committed_is_completed_by_a_rerun(make_pipeline, tmp_path):
    pipeline = make_pipeline(
        orders_per_day=40,
        missing_ratio=0.05,
        kingdee_unique_bill_no=False,
        kingdee_per_bill_latency=0.1,  # half a second per BatchSave: time to strike between them
    )
    day = pipeline.days[-1]
    kingdee = pipeline.sandbox.kingdee
    world = KingdeeWorld.of(pipeline.sandbox)
    eligible = [
        order
        for order in orders_for_day(pipeline.sandbox, pipeline.sandbox.sync_days()[-1])
        if why_not_eligible(order, world) is None
    ]
    assert len(eligible) > 3 * BATCH_SIZE

    with open(tmp_path / "victim.log", "wb") as log:
        victim = subprocess.Popen(
            [sys.executable, "-m", VICTIM, day, str(pipeline.data_dir), str(BATCH_SIZE)],
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: len(kingdee.bills()) >= BATCH_SIZE, "a BatchSave committed", victim)
        finally:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
    committed_at_kill = len(kingdee.bills())
    # Kingdee finishes a BatchSave whose client has died; judge only once it has.
    wait_for(lambda: kingdee.state()["in_flight"] == 0, "Kingdee to finish in-flight calls")
    committed = len(kingdee.bills())
    assert 0 < committed_at_kill <= committed < len(eligible), (committed, len(eligible))
    assert not (pipeline.data_dir / "kingdee_write_results" / f"{day}.jsonl").exists()

    kingdee.per_bill_latency = 0
    assert pipeline.run(day).success
    assert_pipeline_invariant(pipeline, day)
    results = pipeline.stored("kingdee_write_results", day)
    assert (results["outcome"] == "already_in_kingdee").sum() == committed
    assert (results["outcome"] == "created").sum() == len(eligible) - committed
