"""Randomized fault schedules and data shapes: the invariant holds after a bounded number of syncs.

Hypothesis draws a day (orders, malformed records, missing materials, time format), a schedule of
faults on both simulators, the writer's batch size and send budget, the page size, the Kingdee
auth mode and coding rule (keeping the numbers sent, or renumbering every bill), a crash after
some BatchSave calls, and whether two syncs of the day race each other (each holding the day's
write lease, as runs do). Each example syncs the day with the pipeline's own pieces and real
clients (pull → normalize → build bills → BillWriter) until a sync runs without any fault
striking, then asserts the invariant. A sync that failed or was cut short is what a
re-materialization repairs, so the bound is one sync per fault fired, plus one.

CI runs a few dozen examples; ``WDT_KINGDEE_FUZZ_EXAMPLES=500 python -m pytest
wdt_kingdee_assets_tests/reliability/test_randomized.py`` runs as many as asked (and a few more
through Dagster: ``WDT_KINGDEE_FUZZ_DAGSTER_EXAMPLES``).
"""

from __future__ import annotations

import os
import threading
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wdt_kingdee_assets.beijing import BEIJING, day_window
from wdt_kingdee_assets.bills import build_bills, spec_nos_by_org
from wdt_kingdee_assets.catalog import look_up
from wdt_kingdee_assets.flows import PRODUCTION_STOCKOUT
from wdt_kingdee_assets.kingdee.client import KingdeeClient
from wdt_kingdee_assets.kingdee.errors import KingdeeError
from wdt_kingdee_assets.lease import WriteLease, holding
from wdt_kingdee_assets.lifecycle import BillInKingdee, Lifecycle
from wdt_kingdee_assets.locator import BillScope
from wdt_kingdee_assets.mapping import MisDeliveryMapping, load_mapping
from wdt_kingdee_assets.normalize import normalize_orders, parse_wdt_datetime
from wdt_kingdee_assets.outcomes import IN_KINGDEE
from wdt_kingdee_assets.sandbox.faults import FaultRule
from wdt_kingdee_assets.sandbox.runtime import REAL_DATA_CENTER, Sandbox, SandboxOptions
from wdt_kingdee_assets.wdt.client import WdtClient
from wdt_kingdee_assets.wdt.errors import WdtError
from wdt_kingdee_assets.wdt.pull import pull_documents
from wdt_kingdee_assets.writer import BillWriter, bills_to_write, results_frame
from wdt_kingdee_assets_tests.fixtures.kingdee import fast_backoff as kingdee_backoff
from wdt_kingdee_assets_tests.fixtures.pipeline import TODAY
from wdt_kingdee_assets_tests.fixtures.wdt import fast_backoff as wdt_backoff
from wdt_kingdee_assets_tests.fixtures.wdt import fast_throttle, stockout_query
from wdt_kingdee_assets_tests.reliability.invariant import (
    KingdeeWorld,
    assert_nothing_lost_nothing_duplicated,
    assert_pipeline_invariant,
    faults_fired,
    orders_for_day,
)

STARTED = dg.DagsterRunStatus.STARTED
EXAMPLES = int(os.environ.get("WDT_KINGDEE_FUZZ_EXAMPLES", "25"))
DAGSTER_EXAMPLES = int(os.environ.get("WDT_KINGDEE_FUZZ_DAGSTER_EXAMPLES", "2"))
DAY = date(2025, 6, 9)

WDT_KINDS = (
    "timeout,seconds=0.1",
    "reset",
    "5xx",
    "throttle",
    "html_error",
    "empty_body",
    "truncated_json",
    "delay,seconds=0.05",
)
KINGDEE_KINDS = (
    "timeout@{op},seconds=0.1",
    "timeout_after_commit@{op},seconds=0.1",
    "5xx@{op}",
    "5xx_after_commit@{op}",
    "reset@{op}",
    "reset_after_commit@{op}",
    "throttle@{op}",
    "session_lost@{op}",
    "html_error@{op}",
    "empty_body@{op}",
    "truncated_json@{op}",
    "delay@{op},seconds=0.05",
)


class Crash(Exception):
    """The process running the partition died between two BatchSave calls."""


@dataclass(frozen=True)
class Scenario:
    orders: int
    malformed: int
    missing_ratio: float
    datetime_format: str
    seed: int
    page_size: int
    batch_size: int
    max_sends: int
    auth_mode: str
    numbering: str
    racing: bool
    crash_after_batches: int | None
    wdt_faults: tuple[str, ...]
    kingdee_faults: tuple[str, ...]
    real_data_center: bool  # every data-center profile setting on, with its mapping


def _rule(kind: str, times: int, skip: int) -> str:
    return f"{kind},times={times},skip={skip}"


wdt_rules = st.builds(
    _rule,
    st.sampled_from(WDT_KINDS) | st.just("insert_rows,rows=2"),
    st.integers(1, 3),
    st.integers(0, 4),
)
kingdee_rules = st.builds(
    _rule,
    st.builds(
        str.format,
        st.sampled_from(KINGDEE_KINDS),
        op=st.sampled_from(("BatchSave", "BatchSave", "ExecuteBillQuery", "Submit", "Audit")),
    )
    | st.just("throttle@LoginBySign"),
    st.integers(1, 3),
    st.integers(0, 4),
)
scenarios = st.builds(
    Scenario,
    orders=st.integers(0, 40),
    malformed=st.integers(0, 12),
    missing_ratio=st.sampled_from((0.0, 0.05, 0.2)),
    datetime_format=st.sampled_from(("string", "epoch_ms")),
    seed=st.integers(0, 10_000),
    page_size=st.integers(1, 30),
    batch_size=st.integers(1, 12),
    max_sends=st.integers(1, 3),
    auth_mode=st.sampled_from(("signature", "session")),
    numbering=st.sampled_from(("keep", "auto")),
    racing=st.booleans(),
    crash_after_batches=st.none() | st.integers(1, 4),
    wdt_faults=st.lists(wdt_rules, max_size=3).map(tuple),
    kingdee_faults=st.lists(kingdee_rules, max_size=4).map(tuple),
    real_data_center=st.booleans(),
)


def profile(scenario: Scenario) -> dict[str, Any]:
    """The sandbox options of the scenario's data center."""
    return REAL_DATA_CENTER if scenario.real_data_center else {}


def sandbox_for(scenario: Scenario, **options: Any) -> Sandbox:
    sandbox = Sandbox(
        SandboxOptions(
            seed=scenario.seed,
            orders_per_day=scenario.orders,
            malformed=scenario.malformed,
            missing_ratio=scenario.missing_ratio,
            datetime_format=scenario.datetime_format,  # type: ignore[arg-type]
            days=1,
            today=TODAY,
            kingdee_unique_bill_no=False,
            kingdee_numbering=scenario.numbering,  # type: ignore[arg-type]
            wdt_faults=list(scenario.wdt_faults),
            kingdee_faults=list(scenario.kingdee_faults),
            **profile(scenario),
            **options,
        )
    )
    sandbox.seed()
    return sandbox


def sync_once(
    sandbox: Sandbox, scenario: Scenario, lease: WriteLease | None = None
) -> pd.DataFrame:
    """One sync of the day with the pipeline's pieces (what the four assets do), new clients;
    the write holds ``lease`` when one is given."""
    wdt_creds, kingdee_creds = sandbox.wdt_credentials, sandbox.kingdee_credentials
    wdt = WdtClient(
        sandbox.wdt_base_url,
        wdt_creds.sid,
        wdt_creds.appkey,
        wdt_creds.appsecret,
        page_size=scenario.page_size,
        calls_per_minute=0,
        timeout=5,
        backoff=wdt_backoff(),
        throttle_wait=fast_throttle(),  # WDT asks for minutes of rest; the suite rests ms
    )
    kingdee = KingdeeClient(
        sandbox.kingdee_base_url,
        kingdee_creds.acct_id,
        kingdee_creds.username,
        kingdee_creds.app_id,
        kingdee_creds.app_secret,
        auth_mode=scenario.auth_mode,  # type: ignore[arg-type]
        read_timeout=5,
        write_timeout=5,
        backoff=kingdee_backoff(),
    )
    window = day_window(DAY.isoformat())
    pulled = pull_documents(wdt, stockout_query(window.query_start, window.query_end))
    kept = [
        order
        for order in pulled.orders
        if (moment := parse_wdt_datetime(order.get("consign_time"))) is None
        or window.contains(moment)
    ]
    lines = normalize_orders(kept, PRODUCTION_STOCKOUT)
    mapping = (
        load_mapping(sandbox.options.mapping_file)
        if sandbox.options.mapping_file
        else (MisDeliveryMapping())
    )
    master = look_up(kingdee, spec_nos_by_org(lines, mapping, "100"), mapping.materials)
    bills = build_bills(
        lines,
        master.materials,
        mapping,
        "100",
        source=PRODUCTION_STOCKOUT.source,
        schema=PRODUCTION_STOCKOUT.bills_schema,
        units=master.units,
    )

    def crash_between_batches(done: int, total: int) -> None:
        if done == scenario.crash_after_batches and done < total:
            raise Crash(f"killed after BatchSave {done}/{total}")

    scope = BillScope(
        PRODUCTION_STOCKOUT.form,
        DAY,
        mapping.stock_orgs("100"),
        mapping.bill_type,
        mapping.reference_field,
    )
    writer = BillWriter(
        kingdee,
        scope,
        batch_size=scenario.batch_size,
        max_sends=scenario.max_sends,
        on_batch=crash_between_batches,
    )
    with holding(lease, wait_seconds=120, poll_seconds=0.02) if lease else nullcontext() as held:
        writer.before_send = held.check if held else None
        to_write = bills_to_write(bills, PRODUCTION_STOCKOUT)
        summary = writer.write(to_write)
        # What happens after the save (audit, the default), as the write step does it.
        models = {bill.bill_no: bill.model for bill in to_write}
        settled = Lifecycle(kingdee, scope, "audit", batch_size=scenario.batch_size).settle(
            [
                BillInKingdee(item.bill_no, item.fid, models.get(item.bill_no))
                for item in summary.outcomes
                if item.outcome in IN_KINGDEE and item.fid is not None and item.bill_no
            ]
        )
    return results_frame(
        summary, PRODUCTION_STOCKOUT, datetime.now(BEIJING), {bill.fid: bill for bill in settled}
    )


def assert_in_effect(bills: list[dict]) -> None:
    """After the clean sync every bill Kingdee holds is audited (after_save audit, the default)."""
    assert {bill["FDocumentStatus"] for bill in bills} <= {"C"}, [
        (bill["FBillNo"], bill["FDocumentStatus"])
        for bill in bills
        if bill["FDocumentStatus"] != "C"
    ]


def racing_syncs(
    sandbox: Sandbox, scenario: Scenario, instance: dg.DagsterInstance
) -> pd.DataFrame:
    """Two syncs of the day at once, each as its own run holding the day's lease; the results of
    the one that finished last (raises what either raised)."""
    finished: list[pd.DataFrame] = []
    errors: list[BaseException] = []

    def one(run_id: str) -> None:
        try:
            finished.append(
                sync_once(sandbox, scenario, WriteLease(instance, f"race/{DAY}", run_id))
            )
        except BaseException as exc:  # handed to the caller, as a failed run
            errors.append(exc)

    runs = [
        dg.DagsterRun(job_name="sync_stockouts", run_id=str(uuid.uuid4()), status=STARTED)
        for _ in range(2)
    ]
    for run in runs:
        instance.add_run(run)
    threads = [threading.Thread(target=one, args=(run.run_id,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return finished[-1]


def sync_until_clean(sandbox: Sandbox, scenario: Scenario) -> pd.DataFrame:
    """Re-sync until one sync completes with no fault striking (bounded: faults are finite)."""
    # A racing pair shares an instance on disk, as the runs of one deployment share its storage.
    with dg.instance_for_test() if scenario.racing else nullcontext() as instance:
        return _sync_until_clean(sandbox, scenario, instance)


def _sync_until_clean(
    sandbox: Sandbox, scenario: Scenario, instance: dg.DagsterInstance | None
) -> pd.DataFrame:
    bound = sync_bound(scenario)
    crashed = False
    for _ in range(bound):
        before = faults_fired(sandbox)
        this = scenario if not crashed else _without_crash(scenario)
        try:
            results = (
                racing_syncs(sandbox, this, instance) if instance else sync_once(sandbox, this)
            )
        except Crash:
            crashed = True
            continue
        except (WdtError, KingdeeError):
            assert faults_fired(sandbox) > before, "a sync failed although no fault struck"
            continue
        if faults_fired(sandbox) == before:
            return results
    raise AssertionError(f"no clean sync within {bound} syncs: {scenario}")


def sync_bound(scenario: Scenario) -> int:
    """One sync per fault that can strike, one for the crash, and the clean one."""
    rules = [FaultRule.parse(rule) for rule in (*scenario.wdt_faults, *scenario.kingdee_faults)]
    return 1 + sum(rule.times for rule in rules) + (1 if scenario.crash_after_batches else 0)


def _without_crash(scenario: Scenario) -> Scenario:
    return Scenario(**{**scenario.__dict__, "crash_after_batches": None})


@pytest.mark.timeout(max(300, 5 * EXAMPLES))  # the long run is long by design
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios)
def test_random_fault_schedules_lose_and_duplicate_nothing(scenario: Scenario):
    with sandbox_for(scenario) as sandbox:
        results = sync_until_clean(sandbox, scenario)
        assert_nothing_lost_nothing_duplicated(
            orders_for_day(sandbox, DAY),
            sandbox.kingdee.bills(),
            results,
            KingdeeWorld.of(sandbox),
        )
        assert_in_effect(sandbox.kingdee.bills())


@pytest.mark.timeout(max(300, 60 * DAGSTER_EXAMPLES))
@settings(
    max_examples=DAGSTER_EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios)
def test_random_fault_schedules_through_dagster(make_pipeline, monkeypatch, scenario: Scenario):
    """A few examples through Dagster itself: its resources, IO manager and stored results."""
    monkeypatch.setenv("WDT_PAGE_SIZE", str(scenario.page_size))
    monkeypatch.setenv("KINGDEE_AUTH_MODE", scenario.auth_mode)
    pipeline = make_pipeline(
        seed=scenario.seed,
        orders_per_day=scenario.orders,
        malformed=scenario.malformed,
        missing_ratio=scenario.missing_ratio,
        datetime_format=scenario.datetime_format,
        days=1,
        kingdee_unique_bill_no=False,
        kingdee_numbering=scenario.numbering,
        wdt_faults=list(scenario.wdt_faults),
        kingdee_faults=list(scenario.kingdee_faults),
        **profile(scenario),
    )
    day = pipeline.days[-1]
    config = {
        "ops": {
            "kingdee_write_results": {
                "config": {"batch_size": scenario.batch_size, "max_sends": scenario.max_sends}
            }
        }
    }
    selection = dg.AssetSelection.all().without_checks()
    for _ in range(sync_bound(scenario)):
        before = faults_fired(pipeline.sandbox)
        result = pipeline.run(day, run_config=config, selection=selection)
        if faults_fired(pipeline.sandbox) == before:
            assert result.success
            break
    assert_pipeline_invariant(pipeline, day)
    assert_in_effect(pipeline.sandbox.kingdee.bills())
