"""The per-day write lease on a real Dagster instance (SQLite): taken once, waited for, expired."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import dagster as dg
import pytest

from wdt_kingdee_assets.lease import LeaseBusy, LeaseLost, WriteLease, holding

KEY = "wdt_to_kingdee/2025-06-09"


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


def a_run(instance: dg.DagsterInstance, status=dg.DagsterRunStatus.STARTED) -> str:
    run = dg.DagsterRun(job_name="sync_stockouts", run_id=str(uuid.uuid4()), status=status)
    instance.add_run(run)
    return run.run_id


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_one_run_holds_the_day_and_another_stops_naming_it(instance):
    first, second = a_run(instance), a_run(instance)
    holder = WriteLease(instance, KEY, first)
    assert holder.try_acquire() is None and holder.held
    waiting = WriteLease(instance, KEY, second)
    assert waiting.try_acquire().run_id == first
    waits = []
    with pytest.raises(LeaseBusy, match=first) as busy:
        waiting.acquire(0.3, poll_seconds=0.1, on_wait=waits.append)
    assert "wrote nothing" in str(busy.value) and waits and waits[0].run_id == first
    holder.release()
    assert waiting.acquire(0) == pytest.approx(0, abs=0.5) and waiting.held
    assert WriteLease(instance, "wdt_to_kingdee/2025-06-10", first).try_acquire() is None


def test_a_lease_whose_run_finished_is_taken_over(instance):
    crashed = a_run(instance)
    WriteLease(instance, KEY, crashed).try_acquire()
    instance.report_run_failed(instance.get_run_by_id(crashed))
    assert WriteLease(instance, KEY, a_run(instance)).try_acquire() is None


def test_a_lease_nobody_renewed_expires_and_its_holder_learns_it_lost_it(instance):
    clock = Clock()
    stuck = WriteLease(instance, KEY, a_run(instance), ttl_seconds=60, clock=clock)
    stuck.try_acquire()
    newcomer = WriteLease(instance, KEY, a_run(instance), ttl_seconds=60, clock=clock)
    clock.now += 30
    stuck.renew()
    clock.now += 50
    assert newcomer.try_acquire() is not None, "renewed 50 s ago: still alive"
    clock.now += 11
    assert newcomer.try_acquire() is None, "61 s without renewal: its run is taken to be dead"
    with pytest.raises(LeaseLost, match="taken over"):
        stuck.renew()
    stuck.release()  # releasing a lost lease leaves the new holder's lease alone
    assert WriteLease(instance, KEY, a_run(instance)).try_acquire().run_id == newcomer.run_id


def test_the_same_run_takes_its_own_lease_again(instance):
    """A step retried in the same run (its earlier attempt died holding the lease)."""
    run = a_run(instance)
    WriteLease(instance, KEY, run).try_acquire()
    assert WriteLease(instance, KEY, run).try_acquire() is None


def test_holding_renews_in_the_background_and_releases_at_the_end(instance):
    lease = WriteLease(instance, KEY, a_run(instance), ttl_seconds=0.3)
    other = WriteLease(instance, KEY, a_run(instance), ttl_seconds=0.3)
    with holding(lease, wait_seconds=0) as held:
        time.sleep(0.9)  # three times the lease's life: only the renewals keep it
        assert other.try_acquire() is not None
        held.check()
    assert other.try_acquire() is None


def test_a_lease_taken_over_while_held_stops_the_holder_at_its_next_check(instance):
    clock = Clock()
    lease = WriteLease(instance, KEY, a_run(instance), ttl_seconds=0.3, clock=clock)
    thief = WriteLease(instance, KEY, a_run(instance), ttl_seconds=0.3, clock=clock)
    with holding(lease, wait_seconds=0) as held:
        clock.now += 10  # the holder looks dead to everyone, the thief takes the day
        assert thief.try_acquire() is None
        deadline = time.monotonic() + 5
        while held.lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LeaseLost):
            held.check()


def test_only_one_of_many_racing_threads_takes_a_free_lease(instance):
    runs = [a_run(instance) for _ in range(8)]
    start = threading.Barrier(len(runs))
    winners: list[str] = []

    def race(run_id: str) -> None:
        lease = WriteLease(instance, KEY, run_id)
        start.wait()
        if lease.try_acquire() is None:
            winners.append(run_id)

    threads = [threading.Thread(target=race, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
