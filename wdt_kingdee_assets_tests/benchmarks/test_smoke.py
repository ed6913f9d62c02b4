"""The benchmark runs at a tiny size, and its API call counts equal the minimum formula."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from benchmarks.bench import QUICK_LIMITS, measure_cpu, measure_day, measure_peer, report

REPO = Path(__file__).resolve().parents[2]


def test_a_day_uses_exactly_the_minimum_api_calls():
    day = measure_day(150, QUICK_LIMITS)
    minimum = day.minimums(QUICK_LIMITS)
    assert day.orders > 100 and day.ready > 0
    assert day.wdt_calls == minimum["wdt"]
    assert day.lookup_calls == minimum["lookups"]
    assert day.batch_save_calls == minimum["batch_save"]
    assert day.lifecycle_calls == minimum["lifecycle"]


def test_the_peer_pulls_pages_of_100_and_sends_every_order_in_batches_of_20():
    peer = measure_peer(150, QUICK_LIMITS)
    assert peer.orders > 100
    # The last page is the first one short of 100 (an empty one when the day is a multiple).
    assert peer.wdt_calls == peer.orders // 100 + 1
    assert peer.batch_save_calls == math.ceil(peer.orders / 20)
    assert peer.saved + peer.refused == peer.orders and peer.saved > 0


def test_the_bounds_at_the_budgets():
    day = measure_day(150, QUICK_LIMITS)
    assert day.orders < 2000  # one page of 2000 and the completeness re-count
    wdt_only = replace(QUICK_LIMITS, wdt_calls_per_minute=60, wdt_latency=0.1)
    assert day.minimums(wdt_only)["wdt"] == 2
    assert day.bound_seconds(wdt_only) == pytest.approx(0.2)
    # 45 days make 90 WDT calls: 60 start in the first minute, the 90th waits for the second.
    assert day.backfill_bound_seconds(45, wdt_only) == pytest.approx(60.1)
    assert day.backfill_bound_seconds(30, wdt_only) == pytest.approx(0.2)  # one day's chain
    kingdee_only = replace(
        QUICK_LIMITS, wdt_calls_per_minute=0, kingdee_latency=0.5, kingdee_concurrency=4
    )
    calls = sum(day.minimums(kingdee_only)[key] for key in ("lookups", "batch_save", "lifecycle"))
    # Across days every call may overlap another day's: the calls share the 4 threads.
    assert day.backfill_bound_seconds(40, kingdee_only) == pytest.approx(40 * calls * 0.5 / 4)


def test_the_cpu_table_and_report_are_produced():
    cpu = measure_cpu(200, 5)
    assert (cpu["orders"], cpu["lines"], cpu["bills"]) == (200, 1000, 200)
    assert cpu["raw_peak_rss_mb"] > 0
    day = measure_day(20, QUICK_LIMITS)
    text = report([day], cpu, None, QUICK_LIMITS, measure_peer(20, QUICK_LIMITS))
    assert "WDT queryWithDetail" in text and "normalize + map" in text
    assert "peer: 1 page of 100" in text and "peak RSS, raw step" in text


def test_a_workers_peak_memory_is_its_own_not_its_parents():
    """Linux carries ru_maxrss over fork and exec: a small worker started by a large parent
    must still report its own small peak."""
    ballast = bytearray(400 * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])
    code = "from benchmarks.bench import _peak_rss_mb; print(_peak_rss_mb())"
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert float(output) < 200, output
    del ballast
