"""How close the sync comes to what the APIs' limits allow, and what local work costs.

    python -m benchmarks.bench            # the documented run (README "Performance")
    python -m benchmarks.bench --quick    # tiny sizes: what the CI smoke test runs

Prints its tables as ratios against a floor or bound so that machines compare:
1. API calls per day against the minimum the APIs' limits allow (pages of 2000, IN-lists of 500,
   batches).
2. Wall time of a day against the bound those limits and latencies impose, and beside it the
   peer (``benchmarks/peer.py``) syncing the same day on the same kind of sandbox.
3. Local CPU and peak memory of the raw step and of normalizing and mapping N orders × 5 lines,
   against `json.loads` of the same payload.
4. Dagster's per-partition overhead, a multi-day backfill through the daemon against its bound
   at the API budgets, and a year of history projected from the measured per-day costs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DAY = date(2025, 6, 10)


@dataclass(frozen=True)
class Limits:
    """The limits a perfect client would also have to live with (the sandbox enforces them)."""

    # No quota is documented for WDT (reference §6); 60 calls a minute is a cautious account.
    wdt_calls_per_minute: float = 60
    # A call, plus each order on its page with its lines: a page of 100 in 0.2 s, of 2000 in 2.1 s.
    wdt_latency: float = 0.1
    wdt_per_order_latency: float = 0.001
    # Kingdee replays UI events for every field and runs its validators per bill (§7), and
    # queues WebAPI calls: 0.3 s a call plus 50 ms a bill is a fast, unloaded data center.
    kingdee_latency: float = 0.3
    kingdee_per_bill_latency: float = 0.05
    kingdee_concurrency: int = 4  # server threads lent (KINGDEE_THREADS); Kingdee advises ≤ 5
    page_size: int = 2000  # the method's maximum, the project's default
    batch_size: int = 20
    in_list_size: int = 500
    page_limit: int = 2000


# Tiny and latency-free: the CI smoke test checks the call counts, not the clock.
QUICK_LIMITS = Limits(
    wdt_calls_per_minute=600,
    wdt_latency=0.0,
    wdt_per_order_latency=0.0,
    kingdee_latency=0.0,
    kingdee_per_bill_latency=0.0,
)


@dataclass
class DayFigures:
    orders: int
    bills: int
    ready: int
    materials: int
    entries: int
    wdt_calls: int
    lookup_calls: int
    batch_save_calls: int
    lifecycle_calls: int  # Submit and Audit
    wall_seconds: float
    first_call_after_start: float
    end_after_last_call: float

    def minimums(self, limits: Limits) -> dict[str, int]:
        in_list = limits.in_list_size
        # Existence: the bills by number, the day's bills (by reference) riding on the first
        # IN-list; the materials by number, and their few units (BD_UNIT) in one more.
        reads = (
            math.ceil(self.bills / in_list)
            + math.ceil(self.materials / in_list)
            + (1 if self.materials else 0)
        )
        # The read-back of the day's entries in pages; a page short of the limit ends it. It is
        # made twice: by the lifecycle's gate (before Submit and Audit) and by the check after.
        read_back = (self.entries + limits.page_limit) // limits.page_limit
        # The lifecycle asks each written bill's status first (by FID).
        statuses = math.ceil(self.ready / in_list)
        batches = math.ceil(self.ready / limits.batch_size)
        return {
            # the pages, plus the completeness check's one-order re-count (part of every run)
            "wdt": max(1, math.ceil(self.orders / limits.page_size)) + 1,
            "lookups": reads + ((2 * read_back + statuses) if self.ready else 0),
            "batch_save": batches,
            # after_save audit: one Submit and one Audit per batch of bills
            "lifecycle": 2 * batches,
        }

    def wdt_seconds(self, limits: Limits) -> float:
        """The day's WDT calls answered one after another: its pages and the re-count."""
        pages = self.minimums(limits)["wdt"] - 1
        return (pages + 1) * limits.wdt_latency + (self.orders + 1) * limits.wdt_per_order_latency

    def kingdee_thread_seconds(self, limits: Limits) -> float:
        """The server time the day's minimum Kingdee calls take: what the thread budget lends."""
        minimum = self.minimums(limits)
        per_batch = limits.kingdee_latency + limits.batch_size * limits.kingdee_per_bill_latency
        calls = minimum["lookups"] + minimum["lifecycle"]
        return calls * limits.kingdee_latency + minimum["batch_save"] * per_batch

    def bound_seconds(self, limits: Limits) -> float:
        """The time a perfect client needs for the day alone: the same minimum calls at the
        limits, each look-up waiting for the one before, the batches of a step in flight."""
        minimum = self.minimums(limits)
        wdt = self.wdt_seconds(limits) + _quota_seconds(minimum["wdt"], limits)
        lookups = minimum["lookups"] * limits.kingdee_latency
        per_batch = limits.kingdee_latency + limits.batch_size * limits.kingdee_per_bill_latency
        rounds = math.ceil(minimum["batch_save"] / limits.kingdee_concurrency)
        # BatchSave, then Submit, then Audit: each step's batches in flight together.
        writes = rounds * per_batch + 2 * rounds * limits.kingdee_latency
        return wdt + lookups + writes

    def backfill_bound_seconds(self, days: int, limits: Limits) -> float:
        """``days`` such days at the budgets: the days overlap, so the bound is the busier API's
        budget — WDT's calls a minute, or Kingdee's thread-seconds over its threads — and never
        less than one day alone. A lower bound: no client, however parallel, goes faster."""
        wdt_calls = days * self.minimums(limits)["wdt"]
        wdt = _quota_seconds(wdt_calls, limits) + self.wdt_seconds(limits) / max(
            1, self.minimums(limits)["wdt"]
        )
        kingdee = days * self.kingdee_thread_seconds(limits) / limits.kingdee_concurrency
        return max(wdt, kingdee, self.bound_seconds(limits))


def _quota_seconds(calls: int, limits: Limits) -> float:
    """How long the calls-per-minute window holds back the last of ``calls`` call starts."""
    if limits.wdt_calls_per_minute <= 0:
        return 0.0
    return max(0, math.ceil(calls / limits.wdt_calls_per_minute) - 1) * 60.0


def _client_env(limits: Limits) -> dict[str, str]:
    """The client settings a user would set to match the limits."""
    return {
        "WDT_PAGE_SIZE": str(limits.page_size),
        "WDT_CALLS_PER_MINUTE": str(limits.wdt_calls_per_minute),
        "KINGDEE_THREADS": str(limits.kingdee_concurrency),
    }


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """The job reads its settings from the environment; restore it afterwards."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _sandbox(orders: int, days: int, limits: Limits, seed: int = 1) -> Any:
    from wdt_kingdee_assets.sandbox.runtime import Sandbox, SandboxOptions

    sandbox = Sandbox(
        SandboxOptions(
            seed=seed,
            orders_per_day=orders,
            days=days,
            today=DAY,
            wdt_calls_per_minute=limits.wdt_calls_per_minute,
            wdt_latency=limits.wdt_latency,
            wdt_per_order_latency=limits.wdt_per_order_latency,
            kingdee_latency=limits.kingdee_latency,
            kingdee_per_bill_latency=limits.kingdee_per_bill_latency,
            kingdee_concurrency=limits.kingdee_concurrency,
        )
    )
    sandbox.seed()
    return sandbox


def _sandbox_arguments(orders: int, limits: Limits, seed: int) -> list[str]:
    return [
        "--days", "1", "--orders-per-day", str(orders), "--seed", str(seed),
        "--wdt-calls-per-minute", str(limits.wdt_calls_per_minute),
        "--wdt-latency", str(limits.wdt_latency),
        "--wdt-per-order-latency", str(limits.wdt_per_order_latency),
        "--kingdee-latency", str(limits.kingdee_latency),
        "--kingdee-per-bill-latency", str(limits.kingdee_per_bill_latency),
        "--kingdee-concurrency", str(limits.kingdee_concurrency),
    ]  # fmt: skip


def measure_day(orders: int, limits: Limits) -> DayFigures:
    """Sync yesterday from a `wdt-kingdee sandbox` process (Dagster materialize in this one).

    The simulators run in their own process, as real servers do on their own machines: their
    work must not share this process's interpreter with the pipeline it is measured against.
    """
    import dagster as dg

    from wdt_kingdee_assets.beijing import BEIJING
    from wdt_kingdee_assets.definitions import FLOW_DEFS, build_resources
    from wdt_kingdee_assets.factory import flow_parts
    from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
    from wdt_kingdee_assets_tests.fixtures.sandbox_process import admin, clean_env, running_sandbox

    day = (datetime.now(BEIJING).date() - timedelta(days=1)).isoformat()
    with (
        running_sandbox(*_sandbox_arguments(orders, limits, seed=1), env=clean_env()) as exported,
        tempfile.TemporaryDirectory() as data_dir,
        tempfile.TemporaryDirectory() as budget,
        _environment({**exported, **_client_env(limits), "WDT_KINGDEE_BUDGET_DIR": budget}),
        dg.instance_for_test() as instance,
    ):
        # The sync job's assets: the comparison with Kingdee is a job of its own.
        result = dg.materialize(
            flow_parts(PRODUCTION_STOCKOUT, FLOW_DEFS[PRODUCTION_STOCKOUT.name]),
            partition_key=day,
            resources=build_resources(data_dir),
            instance=instance,
        )
        record = instance.get_run_record_by_id(result.run_id)
        wdt_calls = admin(exported["WDT_BASE_URL"], "calls")
        kingdee_calls = admin(exported["KINGDEE_BASE_URL"], "calls")
        bills = admin(exported["KINGDEE_BASE_URL"], "state")["bills"]
    meta = {
        event.asset_key.path[-1]: {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }
    moments = [moment for moment, _ in wdt_calls + kingdee_calls]
    kingdee_paths = [path.lower() for _, path in kingdee_calls]
    return DayFigures(
        orders=meta["raw_stockouts"]["distinct_orders_pulled"],
        bills=meta["kingdee_bills"]["bills"],
        ready=meta["kingdee_bills"]["ready"],
        materials=meta["kingdee_bills"]["materials_looked_up"],
        entries=sum(len(bill["entries"]) for bill in bills),
        wdt_calls=len(wdt_calls),
        lookup_calls=sum("executebillquery" in path for path in kingdee_paths),
        batch_save_calls=sum("batchsave" in path for path in kingdee_paths),
        lifecycle_calls=sum(
            path.rstrip("/").split(".")[-3] in ("submit", "audit") for path in kingdee_paths
        ),
        wall_seconds=record.end_time - record.start_time,
        first_call_after_start=min(moments) - record.start_time,
        end_after_last_call=record.end_time - max(moments),
    )


def measure_peer(orders: int, limits: Limits) -> Any:
    """The peer syncing yesterday from its own `wdt-kingdee sandbox` process (same seed)."""
    from benchmarks.peer import sync_day
    from wdt_kingdee_assets.beijing import BEIJING
    from wdt_kingdee_assets_tests.fixtures.sandbox_process import clean_env, running_sandbox

    day = (datetime.now(BEIJING).date() - timedelta(days=1)).isoformat()
    with (
        running_sandbox(*_sandbox_arguments(orders, limits, seed=1), env=clean_env()) as exported,
        tempfile.TemporaryDirectory() as budget,
        _environment({"WDT_KINGDEE_BUDGET_DIR": budget}),
    ):
        return sync_day(exported, day, limits.wdt_calls_per_minute)


def median_day(days: list[DayFigures]) -> DayFigures:
    """The run in the middle by wall time: a shared machine's noise only ever adds time, and
    one run can land on a slow moment or a fast one."""
    return sorted(days, key=lambda run: run.wall_seconds)[len(days) // 2]


PAGE_ORDERS = 1000  # orders per WDT answer in the CPU payload (the API allows up to 2000)


def cpu_payload(orders: int, lines: int, path: Path) -> None:
    """`orders` orders × `lines` lines as WDT answers them: one JSON page per line of the file."""
    from wdt_kingdee_assets.sandbox.datagen import build_catalog, generate_order
    from wdt_kingdee_assets.sandbox.wdt_server import dumps_exact

    catalog = build_catalog(seed=1, size=400, missing_ratio=0)
    rng = random.Random(1)
    start = datetime(2025, 6, 9)
    with path.open("w", encoding="utf-8") as out:
        for page_start in range(0, orders, PAGE_ORDERS):
            page = []
            for n in range(page_start, min(orders, page_start + PAGE_ORDERS)):
                order = generate_order(
                    rng,
                    stockout_id=n + 1,
                    stockout_no=f"CK{n + 1:08d}",
                    process_no="PS1",
                    consign_time=start + timedelta(seconds=n % 86400),
                    catalog=catalog,
                )
                details = order["detail_list"]
                order["detail_list"] = [
                    {
                        **details[i % len(details)],
                        "rec_id": (n + 1) * 100 + i,
                        "spec_no": catalog[(n + i) % len(catalog)].number,
                    }
                    for i in range(lines)
                ]
                page.append(order)
            envelope = {"status": 0, "data": {"total_count": orders, "order": page}}
            out.write(dumps_exact(envelope) + "\n")


def store_raw(pages_path: Path, raw_path: Path) -> float:
    """What the raw_stockouts step does with the answers: parse them as the client does
    (decimals exact), spool each page's orders as it arrives (as the pull does), then copy them
    from the spool into the stored day. Returns the CPU seconds of the parse."""
    from decimal import Decimal

    from wdt_kingdee_assets.beijing import day_window
    from wdt_kingdee_assets.day import raw_rows
    from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
    from wdt_kingdee_assets.wdt.client import DocumentQuery
    from wdt_kingdee_assets.wdt.pull import order_key, sort_orders
    from wdt_kingdee_assets.wdt.spool import OrderSpool

    source = PRODUCTION_STOCKOUT.source
    window = day_window("2025-06-09")
    query = DocumentQuery(source.method, window.query_start, window.query_end, source.time_type)
    spool = OrderSpool()
    entries = []
    parse = 0.0
    with pages_path.open(encoding="utf-8") as pages:
        for page in pages:
            started = time.process_time()
            orders = json.loads(page, parse_float=Decimal)["data"]["order"]
            parse += time.process_time() - started
            entries += [spool.put(o, order_key(o, query.method), query) for o in orders]
    rows = raw_rows(source, sort_orders(entries), spool)
    with raw_path.open("w", encoding="utf-8") as stream:
        PRODUCTION_STOCKOUT.raw_schema.write_rows(rows, stream)
    spool.close()
    return parse


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ``ru_maxrss``: Linux carries
    ``ru_maxrss`` over fork and exec, so a worker started by a large parent would report the
    parent's size."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raw_worker(pages_path: Path, raw_path: Path) -> dict[str, float]:
    """The raw step's work in a process of its own, so that its peak memory is its own."""
    import dagster  # noqa: F401 - a step process has Dagster loaded; count it in the peak

    parse = store_raw(pages_path, raw_path)
    return {"parse_with_decimals": parse, "raw_peak_rss_mb": _peak_rss_mb()}


def _cpu_seconds(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.process_time()
    result = work()
    return time.process_time() - started, result


def cpu_worker(pages_path: Path, raw_path: Path) -> dict[str, float]:
    """The normalize and map steps in one process, as a run executes them; figures as JSON.

    The input is what the normalize step reads: the stored raw day, streamed as the step reads
    it, so its parsing counts in the normalize figure. The floor is `json.loads` of WDT's
    answers for the same orders, one page at a time as the client receives them.
    """
    import dagster  # noqa: F401 - a step process has Dagster loaded; count it in the peak

    from wdt_kingdee_assets.bills import build_bills
    from wdt_kingdee_assets.bulk import gc_paused
    from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
    from wdt_kingdee_assets.kingdee.client import MaterialInfo, UnitInfo
    from wdt_kingdee_assets.mapping import MisDeliveryMapping
    from wdt_kingdee_assets.normalize import normalize_orders
    from wdt_kingdee_assets.storage import StoredDay

    def parse_pages() -> float:
        """CPU seconds of json.loads alone, one answer at a time (reading the file not counted)."""
        spent = 0.0
        with pages_path.open(encoding="utf-8") as pages:
            for page in pages:
                started = time.process_time()
                json.loads(page)
                spent += time.process_time() - started
        return spent

    stored = StoredDay(PRODUCTION_STOCKOUT.raw_schema, raw_path, "benchmark")

    def parse_alone() -> int:
        with gc_paused():  # as inside the normalizer
            return sum(1 for _ in stored.values("order"))

    # Two passes, each figure the best of its two (a busy machine only ever adds time, and
    # interleaving spreads its slow moments over all figures); the peak RSS is read after the
    # first pass, which is what one run of the steps costs.
    parse_pages()  # the first parse also pays for growing the heap
    floor = parse_stored = normalize = mapping = math.inf
    peak_rss_mb = 0.0
    for _ in range(2):
        lines = bills = None
        floor = min(floor, parse_pages())
        seconds, order_count = _cpu_seconds(parse_alone)
        parse_stored = min(parse_stored, seconds)
        seconds, lines = _cpu_seconds(
            lambda: normalize_orders(stored.values("order"), PRODUCTION_STOCKOUT)
        )
        normalize = min(normalize, seconds)
        # Each material in the unit WDT counts it in, so that every bill is built, none held.
        materials = {
            number: MaterialInfo(number, number, unit, False, "C", 1)
            for number, unit in zip(lines["spec_no"], lines["base_unit_name"], strict=True)
            if number is not None
        }
        units = {
            info.base_unit.casefold(): UnitInfo(info.base_unit, info.base_unit, 4)
            for info in materials.values()
        }
        seconds, bills = _cpu_seconds(
            lambda: build_bills(
                lines,  # noqa: B023
                {"100": materials},  # noqa: B023
                MisDeliveryMapping(),
                "100",
                source=PRODUCTION_STOCKOUT.source,
                schema=PRODUCTION_STOCKOUT.bills_schema,
                units=units,  # noqa: B023
            )
        )
        mapping = min(mapping, seconds)
        peak_rss_mb = peak_rss_mb or _peak_rss_mb()
    return {
        "orders": order_count,
        "lines": len(lines),
        "bills": len(bills),
        "floor_json_loads": floor,
        "parse_stored": parse_stored,
        "normalize": normalize,
        "map": mapping,
        "peak_rss_mb": peak_rss_mb,
    }


def measure_cpu(orders: int, lines: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        pages, raw = Path(folder) / "pages.jsonl", Path(folder) / "raw.jsonl"
        cpu_payload(orders, lines, pages)
        figures: dict[str, float] = {}
        for worker in ("--raw-worker", "--cpu-worker"):
            output = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench", worker, str(pages), str(raw)],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            figures |= json.loads(output.strip().splitlines()[-1])
    return figures


def measure_backfill(days: int, orders: int, limits: Limits) -> dict[str, float]:
    """A `days`-day backfill through the daemon with the shipped instance file (SQLite, one
    machine: the runs share the API budgets in $DAGSTER_HOME/api-budget)."""
    import dagster as dg

    from wdt_kingdee_assets_tests.fixtures.daemon import (
        daemon_running,
        finished_backfill_runs,
        launch_backfill,
    )

    sandbox = _sandbox(orders, days, limits, seed=2)
    keys = [day.isoformat() for day in sandbox.sync_days()]
    with sandbox, tempfile.TemporaryDirectory() as home:
        shutil.copy(REPO / "wdt_kingdee_assets" / "dagster.yaml", Path(home, "dagster.yaml"))
        env = {**os.environ, **sandbox.env(), **_client_env(limits), "DAGSTER_HOME": home}
        with daemon_running(env):
            started = time.time()
            launch_backfill(env, keys)
            with _environment({"DAGSTER_HOME": home}), dg.DagsterInstance.get() as instance:
                records = finished_backfill_runs(instance, keys, timeout=3600)
        wall = max(record.end_time for record in records) - started
        succeeded = sum(record.dagster_run.is_success for record in records)
    return {"days": days, "succeeded": succeeded, "wall_seconds": wall}


def _cpu_model() -> str:
    """The processor's name: CPU figures of two runs compare only on the same kind of core."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown processor"


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}×" if base > 0 else "n/a"


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(
    days: list[DayFigures],
    cpu: dict[str, float],
    backfill: dict[str, float] | None,
    limits: Limits,
    peer: Any = None,
) -> str:
    """The tables; the day's figures are those of its median run by wall time."""
    day = median_day(days)
    walls = sorted(run.wall_seconds for run in days)
    minimum = day.minimums(limits)
    bound = day.bound_seconds(limits)
    machine = (
        f"{platform.machine()} ({_cpu_model()}), {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )

    def calls_row(name: str, actual: int, least: int) -> tuple[str, ...]:
        return (name, str(actual), str(least), f"{actual - least:+d}")

    wall_rows = [
        (
            "this project (start → end)",
            f"{day.wall_seconds:.2f} s",
            f"{bound:.2f} s",
            _ratio(day.wall_seconds, bound),
        )
    ]
    if peer is not None:
        wall_rows.append(
            (
                f"peer: {peer.wdt_calls} page{'s' * (peer.wdt_calls != 1)} of 100, "
                f"{peer.batch_save_calls} BatchSave of 20 "
                f"one at a time ({peer.saved} saved, {peer.refused} refused, none audited)",
                f"{peer.wall_seconds:.2f} s",
                f"{bound:.2f} s",
                _ratio(peer.wall_seconds, bound),
            )
        )
    out = [
        f"Machine: {machine}. Limits: {json.dumps(asdict(limits))}",
        "",
        f"API calls for one day ({day.orders} orders, {day.bills} bills, {day.ready} ready, "
        f"{day.materials} materials, {day.entries} entries in Kingdee):",
        _table(
            [
                calls_row("WDT queryWithDetail", day.wdt_calls, minimum["wdt"]),
                calls_row("Kingdee ExecuteBillQuery", day.lookup_calls, minimum["lookups"]),
                calls_row("Kingdee BatchSave", day.batch_save_calls, minimum["batch_save"]),
                calls_row("Kingdee Submit + Audit", day.lifecycle_calls, minimum["lifecycle"]),
            ],
            ("calls", "actual", "minimum", "over"),
        ),
        "",
        f"Wall time for one day, median of {len(days)} runs "
        f"({', '.join(f'{wall:.2f}' for wall in walls)} s):",
        _table(wall_rows, ("", "actual", "bound at the APIs' limits", "ratio")),
        "",
        f"Local work, {cpu['orders']} orders × {cpu['lines'] // max(1, cpu['orders'])} lines (CPU seconds; peak RSS of each step's process, Dagster loaded):",
        _table(
            [
                (label, f"{seconds:.2f}", _ratio(seconds, cpu["floor_json_loads"]))
                for label, seconds in (
                    ("json.loads of WDT's answers (the floor)", cpu["floor_json_loads"]),
                    ("raw step: parse with exact decimals (client)", cpu["parse_with_decimals"]),
                    ("parse the stored raw day alone (streamed)", cpu["parse_stored"]),
                    ("normalize step, streaming that parse", cpu["normalize"]),
                    ("map to bills", cpu["map"]),
                    (
                        "normalize + map, the parse of the stored day included",
                        cpu["normalize"] + cpu["map"],
                    ),
                    (
                        "normalize + map, without that parse",
                        cpu["normalize"] - cpu["parse_stored"] + cpu["map"],
                    ),
                )
            ]
            + [
                ("peak RSS, raw step", f"{cpu['raw_peak_rss_mb']:.0f} MB", ""),
                ("peak RSS, normalize + map", f"{cpu['peak_rss_mb']:.0f} MB", ""),
            ],
            ("step", "seconds", "vs floor"),
        ),
        "",
        "Dagster overhead per partition:",
        _table(
            [
                ("run start → first API call", f"{day.first_call_after_start:.2f} s"),
                ("last API call → run end", f"{day.end_after_last_call:.2f} s"),
            ],
            ("", "seconds"),
        ),
    ]
    if backfill:
        excess = (backfill["wall_seconds"] - backfill["bound"]) / backfill["days"]
        year_bound = day.backfill_bound_seconds(365, limits)
        year = year_bound + 365 * max(0.0, excess)
        out += [
            "",
            f"Backfill of {backfill['days']} days of about {backfill['orders']} orders through "
            f"the daemon (the shipped SQLite instance file), {backfill['succeeded']} succeeded:",
            _table(
                [
                    (
                        "wall time",
                        f"{backfill['wall_seconds']:.1f} s",
                        f"{backfill['bound']:.1f} s",
                        _ratio(backfill["wall_seconds"], backfill["bound"]),
                    )
                ],
                ("", "actual", "bound at the API budgets", "ratio"),
            ),
            "",
            f"A year of history projected from the measured day ({day.orders} orders a day; "
            f"365 × its minimum calls at the budgets, plus the backfill's measured "
            f"{excess:.2f} s a day above its bound, as if none of it overlapped):",
            _table(
                [
                    (
                        "this project",
                        f"{year / 3600:.1f} h",
                        f"{year_bound / 3600:.1f} h",
                        _ratio(year, year_bound),
                        str(
                            365
                            * (
                                day.wdt_calls
                                + day.lookup_calls
                                + day.batch_save_calls
                                + day.lifecycle_calls
                            )
                        ),
                    )
                ]
                + (
                    [
                        (
                            "peer (365 × its measured day, one day after another)",
                            f"{365 * peer.wall_seconds / 3600:.1f} h",
                            f"{year_bound / 3600:.1f} h",
                            _ratio(365 * peer.wall_seconds, year_bound),
                            str(365 * (peer.wdt_calls + peer.batch_save_calls)),
                        )
                    ]
                    if peer is not None
                    else []
                ),
                ("", "projected", "bound", "ratio", "API calls"),
            ),
        ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke test)")
    parser.add_argument("--orders", type=int, default=2000, help="orders in the API day")
    parser.add_argument(
        "--day-runs", type=int, default=3, help="runs of the day; the median is reported"
    )
    parser.add_argument("--cpu-orders", type=int, default=100_000, help="orders for the CPU table")
    parser.add_argument("--backfill-days", type=int, default=30, help="0 = skip the backfill")
    parser.add_argument(
        "--backfill-orders", type=int, default=100, help="orders per backfilled day"
    )
    parser.add_argument("--cpu-worker", type=Path, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--raw-worker", type=Path, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cpu_worker:
        print(json.dumps(cpu_worker(*args.cpu_worker)))
        return 0
    if args.raw_worker:
        print(json.dumps(raw_worker(*args.raw_worker)))
        return 0
    # The partitions start at the go-live day; the measured days are all after this one.
    os.environ.setdefault("WDT_KINGDEE_START_DATE", "2024-01-01")
    limits = Limits()
    if args.quick:
        args.orders, args.cpu_orders, args.backfill_days, args.day_runs = 150, 500, 0, 1
        limits = QUICK_LIMITS
    days = [measure_day(args.orders, limits) for _ in range(args.day_runs)]
    peer = measure_peer(args.orders, limits)
    cpu = measure_cpu(args.cpu_orders, 5)
    backfill = None
    if args.backfill_days:
        backfill = measure_backfill(args.backfill_days, args.backfill_orders, limits)
        one = measure_day(args.backfill_orders, limits)
        backfill["orders"] = one.orders
        backfill["bound"] = one.backfill_bound_seconds(args.backfill_days, limits)
    print(report(days, cpu, backfill, limits, peer))
    day = median_day(days)
    print(json.dumps({"day": asdict(day), "minimums": day.minimums(limits), "peer": asdict(peer)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
