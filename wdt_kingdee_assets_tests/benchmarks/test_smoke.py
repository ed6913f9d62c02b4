"""The benchmark runs at a tiny size, and its API call counts equal the minimum formula."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.bench import QUICK_LIMITS, measure_cpu, measure_day, report

REPO = Path(__file__).resolve().parents[2]


def test_a_day_uses_exactly_the_minimum_api_calls():
    day = measure_day(150, QUICK_LIMITS)
    minimum = day.minimums(QUICK_LIMITS)
    assert day.orders > 100 and day.ready > 0
    assert day.wdt_calls == minimum["wdt"]
    assert day.lookup_calls == minimum["lookups"]
    assert day.batch_save_calls == minimum["batch_save"]
    assert day.lifecycle_calls == minimum["lifecycle"]


def test_the_cpu_table_and_report_are_produced():
    cpu = measure_cpu(200, 5)
    assert (cpu["orders"], cpu["lines"], cpu["bills"]) == (200, 1000, 200)
    day = measure_day(20, QUICK_LIMITS)
    text = report([day], cpu, None, QUICK_LIMITS)
    assert "WDT queryWithDetail" in text and "normalize + map" in text


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
