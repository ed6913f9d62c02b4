"""The API budgets: calls in flight never exceed the thread budget, lowering it holds back new
calls, and both budgets hold across the processes of one machine."""

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from wdt_kingdee_assets.throttle import RateLimiter, ThreadBudget, shared_threads


def run_calls(budget: ThreadBudget, calls: int, seconds: float) -> int:
    """``calls`` threads each holding a thread of the budget for ``seconds``; the peak held."""
    lock = threading.Lock()
    held, peak = 0, 0

    def call() -> None:
        nonlocal held, peak
        with budget:
            with lock:
                held += 1
                peak = max(peak, held)
            time.sleep(seconds)
            with lock:
                held -= 1

    workers = [threading.Thread(target=call) for _ in range(calls)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return peak


def test_calls_in_flight_never_exceed_the_budget_and_use_all_of_it():
    assert run_calls(ThreadBudget(3), calls=12, seconds=0.02) == 3


def test_the_smallest_budget_asked_for_one_account_wins():
    account = ("kingdee", "http://127.0.0.1:1/", "dc", "user-of-this-test")
    first = shared_threads(account, 4)
    assert shared_threads(account, 2) is first
    assert shared_threads(account, 5).size == 2
    assert run_calls(first, calls=8, seconds=0.02) == 2


def test_a_budget_lowered_while_calls_are_in_flight_starts_none_above_it():
    budget = ThreadBudget(4)
    started = threading.Barrier(5)
    release = threading.Event()

    def hold() -> None:
        with budget:
            started.wait()
            release.wait()

    holders = [threading.Thread(target=hold) for _ in range(4)]
    for holder in holders:
        holder.start()
    started.wait()
    budget.lower_to(1)
    release.set()
    for holder in holders:
        holder.join()
    assert run_calls(budget, calls=4, seconds=0.01) == 1


def test_a_budget_needs_a_thread():
    with pytest.raises(ValueError, match="at least one thread"):
        ThreadBudget(0)


HOLD_CALLS = """
import json, sys, time
from pathlib import Path
from wdt_kingdee_assets.throttle import ThreadBudget
from concurrent.futures import ThreadPoolExecutor

budget = ThreadBudget(int(sys.argv[2]), slot_files=Path(sys.argv[1]))

def call(_):
    with budget:
        began = time.time()
        time.sleep(0.05)
        return began, time.time()

with ThreadPoolExecutor(3) as pool:
    print(json.dumps(list(pool.map(call, range(6)))))
"""


def peak_overlap(intervals: list[tuple[float, float]]) -> int:
    moments = sorted([(began, 1) for began, _ in intervals] + [(end, -1) for _, end in intervals])
    peak = held = 0
    for _, change in moments:
        held += change
        peak = max(peak, held)
    return peak


def test_processes_of_one_machine_share_one_thread_budget(tmp_path):
    """Three runs side by side (three processes, three threads each) never hold more than the
    budget's two threads between them, and do use both."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", HOLD_CALLS, str(tmp_path / "kingdee.thread"), "2"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    intervals = [
        tuple(pair) for process in processes for pair in json.loads(process.communicate()[0])
    ]
    assert len(intervals) == 18
    assert peak_overlap(intervals) == 2


def test_a_thread_held_by_a_process_that_died_is_free_again(tmp_path):
    slots = tmp_path / "kingdee.thread"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from wdt_kingdee_assets.throttle import "
            "ThreadBudget; budget = ThreadBudget(1, slot_files=Path(sys.argv[1])); "
            "budget.__enter__(); print('held', flush=True); time.sleep(60)",
            str(slots),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    budget = ThreadBudget(1, slot_files=slots)
    taken = threading.Event()
    waiter = threading.Thread(target=lambda: (budget.__enter__(), taken.set()))
    waiter.start()
    assert not taken.wait(0.3), "the slot of a live holder was taken"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert taken.wait(5), "the slot of a killed holder was never freed"
    waiter.join()


def test_processes_share_one_calls_per_minute_window(tmp_path):
    """Three processes start a call each; a fourth caller of a 3-a-minute account then waits
    until the first of them is a minute old."""
    window = tmp_path / "wdt.window"
    start_one = (
        "import sys; from pathlib import Path; from wdt_kingdee_assets.throttle import "
        "RateLimiter; RateLimiter(3, window_file=Path(sys.argv[1])).acquire()"
    )
    first = time.time()
    for _ in range(3):
        subprocess.run([sys.executable, "-c", start_one, str(window)], check=True)
    asked_at = time.time()
    now = [asked_at]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(3, window_file=window, clock=lambda: now[0], sleep=sleep)
    assert limiter.acquire() == pytest.approx(sum(slept))
    # One wait, until the oldest of the three starts (made after `first`) leaves the window.
    assert len(slept) == 1 and 60 - (asked_at - first) <= slept[0] <= 60
    assert len(json.loads(window.read_text())) == 3


WAIT_IN_LINE = """
import sys, time
from pathlib import Path
from wdt_kingdee_assets.throttle import ThreadBudget

budget = ThreadBudget(1, slot_files=Path(sys.argv[1]))
print("loaded", flush=True)
sys.stdin.readline()  # told to ask for the thread
with budget:
    print(time.time(), flush=True)
    time.sleep(0.1)
"""


def test_the_oldest_process_takes_a_freed_thread_first_however_long_the_others_waited(tmp_path):
    """Two runs wait for the one thread a third holds: the younger asked first, but the older
    process gets it first — so the runs of a backfill finish one after another, not together."""
    slots = tmp_path / "kingdee.thread"
    holder = ThreadBudget(1, slot_files=slots)
    waiters = []
    for _ in range(2):  # the second loads the budgets after the first has: it is younger
        waiters.append(
            subprocess.Popen(
                [sys.executable, "-c", WAIT_IN_LINE, str(slots)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
        assert waiters[-1].stdout.readline().strip() == "loaded"
    older, younger = waiters
    with holder:
        for process in (younger, older):  # the younger asks first
            process.stdin.write("go\n")
            process.stdin.flush()
            time.sleep(0.5)
        assert len(list(slots.parent.glob("kingdee.thread.waiting/*"))) == 2
    got = {
        name: float(process.communicate()[0])
        for name, process in [("older", older), ("younger", younger)]
    }
    assert got["older"] < got["younger"]
    assert not list(slots.parent.glob("kingdee.thread.waiting/*"))  # no ticket left behind


def test_a_ticket_left_by_a_process_that_died_does_not_hold_the_line(tmp_path):
    slots = tmp_path / "kingdee.thread"
    line = tmp_path / "kingdee.thread.waiting"
    line.mkdir()
    stale = line / f"{0:020d}-{0:020d}-1-1"  # the oldest ticket there can be, its lock free
    stale.touch()
    budget = ThreadBudget(1, slot_files=slots)
    waiter = threading.Thread(target=lambda: budget.__enter__().__exit__(None, None, None))
    waiter.start()
    waiter.join(timeout=5)
    assert not waiter.is_alive()  # it took the free thread although the stale ticket is older
    assert not stale.exists()
