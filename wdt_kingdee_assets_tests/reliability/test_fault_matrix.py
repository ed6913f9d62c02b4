"""Every fault the simulators can inject, one day synced under it through Dagster: the invariant holds.

Kingdee runs with ``unique_bill_no=False`` (a data center whose coding rules accept a duplicate
FBillNo), so nothing but the writer's own guards stands between a fault and a duplicate bill; and
every row runs twice, once with the numbers sent kept and once under a coding rule that renumbers
every bill (so the guards must find bills by the reference they carry). Each
row says how many materializations the fault may cost: most are absorbed inside one run (retries,
reconciliation); a fault that fails a run, or leaves bills unanswered past ``max_sends``, is
settled by re-materializing the partition, as an operator or the retry sensor would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
import pytest

from wdt_kingdee_assets.sandbox.runtime import (
    BIN_WAREHOUSES,
    REAL_DATA_CENTER,
)
from wdt_kingdee_assets_tests.reliability.invariant import (
    assert_pipeline_invariant,
    orders_for_day,
)

BATCH_SIZE = 5  # ~16 ready bills a day: four BatchSave calls, so faults strike mid-partition
WRITE_CONFIG = {"ops": {"kingdee_write_results": {"config": {"batch_size": BATCH_SIZE}}}}
# The asset checks are proven in pipeline/; here the invariant is the judge, and a run without
# the checks costs a third of the time.
ASSETS_ONLY = dg.AssetSelection.all().without_checks()


@dataclass(frozen=True)
class Fault:
    wdt: tuple[str, ...] = ()
    kingdee: tuple[str, ...] = ()
    runs: int = 1  # materializations after which the invariant must hold
    options: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)


SESSION = {"KINGDEE_AUTH_MODE": "session"}

MATRIX: dict[str, Fault] = {
    # WDT: each is retried inside the pull; the pull still proves the day complete.
    "wdt timeout": Fault(wdt=("timeout,seconds=0.3,skip=1",)),
    "wdt connection reset": Fault(wdt=("reset,skip=1,times=2",)),
    "wdt 5xx": Fault(wdt=("5xx,status=502,times=2",)),
    "wdt throttled": Fault(wdt=("throttle,times=2,skip=1",)),
    "wdt html error page": Fault(wdt=("html_error,skip=1",)),
    "wdt empty body": Fault(wdt=("empty_body,skip=2",)),
    "wdt truncated json": Fault(wdt=("truncated_json,skip=1",)),
    "wdt rows inserted while paging": Fault(wdt=("insert_rows,rows=3,skip=1,times=2",)),
    "wdt slow server": Fault(wdt=("delay,seconds=0.5,times=2",), options={"wdt_latency": 0.02}),
    "wdt epoch-ms times, reset": Fault(
        wdt=("reset,skip=2",), options={"datetime_format": "epoch_ms"}
    ),
    # BatchSave without a usable answer: reconciled by FBillNo before any resend.
    "batchsave timeout before commit": Fault(kingdee=("timeout@BatchSave,seconds=0.3",)),
    "batchsave timeout after commit": Fault(
        kingdee=("timeout_after_commit@BatchSave,seconds=0.3,skip=1",)
    ),
    "batchsave reset before commit": Fault(kingdee=("reset@BatchSave,skip=1",)),
    "batchsave reset after commit": Fault(kingdee=("reset_after_commit@BatchSave",)),
    "batchsave 5xx before commit": Fault(kingdee=("5xx@BatchSave,status=503",)),
    "batchsave 5xx after commit": Fault(kingdee=("5xx_after_commit@BatchSave,skip=1",)),
    "batchsave throttled": Fault(kingdee=("throttle@BatchSave,times=2",)),
    "batchsave html error page": Fault(kingdee=("html_error@BatchSave",)),
    "batchsave empty body": Fault(kingdee=("empty_body@BatchSave,skip=2",)),
    "batchsave truncated json after commit": Fault(kingdee=("truncated_json@BatchSave,skip=1",)),
    "batchsave unanswered past max_sends": Fault(kingdee=("5xx@BatchSave,times=4",), runs=2),
    "batchsave committed, never answered": Fault(kingdee=("5xx_after_commit@BatchSave,times=3",)),
    # Reads (materials, existence, reconciliation, read-back): retried.
    "query 5xx": Fault(kingdee=("5xx@ExecuteBillQuery,times=2",)),
    "query reset": Fault(kingdee=("reset@ExecuteBillQuery,skip=1,times=2",)),
    "query timeout": Fault(kingdee=("timeout@ExecuteBillQuery,seconds=0.3,skip=1",)),
    "query throttled": Fault(kingdee=("throttle@ExecuteBillQuery,skip=1,times=2",)),
    "query truncated json": Fault(kingdee=("truncated_json@ExecuteBillQuery,skip=1",)),
    "query html error page": Fault(kingdee=("html_error@ExecuteBillQuery,skip=1",)),
    # Signature mode: MsgCode 1 means refused credentials (reference §2c), the run fails loudly;
    # the next materialization finds what the first one committed.
    "signature: session lost on BatchSave": Fault(
        kingdee=("session_lost@BatchSave,skip=1",), runs=2
    ),
    "signature: session lost on a query": Fault(
        kingdee=("session_lost@ExecuteBillQuery,skip=1",), runs=2
    ),
    # Session mode: re-login once; a write is reconciled first.
    "session: lost on BatchSave": Fault(kingdee=("session_lost@BatchSave,skip=1",), env=SESSION),
    "session: lost on a query": Fault(
        kingdee=("session_lost@ExecuteBillQuery,skip=1",), env=SESSION
    ),
    "session: login throttled": Fault(kingdee=("throttle@LoginBySign",), env=SESSION),
    "session: lost after a commit went unanswered": Fault(
        kingdee=("5xx_after_commit@BatchSave", "session_lost@ExecuteBillQuery,skip=2"),
        env=SESSION,
    ),
    # Kingdee refuses a call as a whole (DIndex 0 names no bill): nothing is resent in the run,
    # its bills fail (transient) with Kingdee's words, and the re-run writes them.
    "batchsave refused as a whole, passing": Fault(
        kingdee=("call_error@BatchSave,code=4,skip=1",), runs=2
    ),
    "batchsave refused as a whole, then reconciled": Fault(
        kingdee=("call_error@BatchSave,code=6", "5xx@ExecuteBillQuery,skip=1"), runs=2
    ),
    # After the save (after_save audit, the default): a Submit or Audit that commits without an
    # answer is reconciled by status in the run; one refused before any work, or refused as a
    # whole, leaves its bills unconfirmed or refused, and the re-run (asking first) audits them.
    "audit 5xx after commit": Fault(kingdee=("5xx_after_commit@Audit",)),
    "audit timeout after commit": Fault(kingdee=("timeout_after_commit@Audit,seconds=0.3",)),
    "submit 5xx": Fault(kingdee=("5xx@Submit",), runs=2),
    "submit reset after commit": Fault(kingdee=("reset_after_commit@Submit,skip=1",)),
    "audit refused as a whole": Fault(kingdee=("call_error@Audit,code=6",), runs=2),
    # WDT throttled for a stated time rather than a number of calls.
    "wdt throttled for a while": Fault(wdt=("throttle,seconds=0.05,skip=1",)),
    "kingdee slow server": Fault(
        kingdee=("delay@BatchSave,seconds=0.5",),
        options={"kingdee_latency": 0.02, "kingdee_per_bill_latency": 0.01},
    ),
}


# Two worlds: the plain sandbox keeping the numbers sent, and a real data center (every profile
# setting on: lots per position, both WDT row shapes, units by name and in cartons, precision,
# bins, shelf life, own material numbers, required custom fields) whose coding rule renumbers
# every bill.
WORLDS = {
    "plain": {"kingdee_numbering": "keep"},
    "real_data_center": {**REAL_DATA_CENTER, "kingdee_numbering": "auto"},
}


# Every fault runs in the real data center. The plain world adds the faults of the write path
# (BatchSave, Submit, Audit, sessions), where a data center keeping our numbers lets the guards
# find bills by FBillNo — a path of its own; WDT's and the queries' faults do not take it.
WRITE_PATH = ("batchsave", "submit", "audit", "session:", "signature:")
CASES = [
    *((name, "real_data_center") for name in MATRIX),
    *((name, "plain") for name in MATRIX if name.split()[0] in WRITE_PATH),
]


@pytest.mark.parametrize(("name", "world"), CASES)
def test_a_day_synced_under_the_fault_loses_and_duplicates_nothing(
    make_pipeline, monkeypatch, name, world
):
    fault = MATRIX[name]
    monkeypatch.setenv("WDT_PAGE_SIZE", "10")
    for variable, value in fault.env.items():
        monkeypatch.setenv(variable, value)
    pipeline = make_pipeline(
        missing_ratio=0.05,
        kingdee_unique_bill_no=False,
        wdt_faults=list(fault.wdt),
        kingdee_faults=list(fault.kingdee),
        **WORLDS[world],
        **fault.options,
    )
    day = pipeline.days[-1]
    assert orders_for_day(pipeline.sandbox, pipeline.sandbox.sync_days()[-1])

    runs = [
        pipeline.run(day, run_config=WRITE_CONFIG, selection=ASSETS_ONLY) for _ in range(fault.runs)
    ]

    assert runs[-1].success
    for simulator in (pipeline.sandbox.wdt, pipeline.sandbox.kingdee):
        unfired = [r for r in simulator.faults.snapshot()["rules"] if r["fired"] < r["times"]]
        assert not unfired, f"the fault never struck as scheduled: {unfired}"
    assert_pipeline_invariant(pipeline, day)
    # The bills take effect: every one Kingdee holds is audited, none twice (Kingdee refuses an
    # audit of what is not B, so a doubled Audit would show as a refusal in the results).
    assert {bill["FDocumentStatus"] for bill in pipeline.sandbox.kingdee.bills()} <= {"C"}
    results = pipeline.stored("kingdee_write_results", day)
    assert not results["settled"].isin(["refused_at_submit", "refused_at_audit"]).any()


def test_a_partial_batch_fails_only_its_rejected_bills_and_a_rerun_sends_exactly_those(
    make_pipeline, monkeypatch, tmp_path
):
    """Kingdee rejects some bills of a batch: its warehouses CK001 and CK003 manage bins, and
    the mapping does not know it yet, so their entries go without FStockLocId."""
    pipeline = make_pipeline(
        missing_ratio=0, kingdee_unique_bill_no=False, orders_per_day=30, kingdee_bins=True
    )
    day = pipeline.days[-1]
    orders = orders_for_day(pipeline.sandbox, pipeline.sandbox.sync_days()[-1])
    rejected = {o["stockout_no"] for o in orders if o["warehouse_no"] in BIN_WAREHOUSES}
    assert 0 < len(rejected) < len(orders)

    assert pipeline.run(day, run_config=WRITE_CONFIG, selection=ASSETS_ONLY).success
    results = pipeline.stored("kingdee_write_results", day).set_index("bill_no")
    assert set(results.loc[sorted(rejected), "outcome"]) == {"failed"}
    assert all("仓位" in " ".join(results.loc[number, "messages"]) for number in rejected)
    assert (
        set(results.index[results["outcome"] == "created"])
        == {o["stockout_no"] for o in orders} - rejected
    )

    mapping = tmp_path / "bins.yaml"  # the bins are configured
    mapping.write_text("bins:\n  CK001: {}\n  CK003: {}\n", encoding="utf-8")
    monkeypatch.setenv("WDT_KINGDEE_MAPPING", str(mapping))
    assert pipeline.run(day, run_config=WRITE_CONFIG, selection=ASSETS_ONLY).success
    assert_pipeline_invariant(pipeline, day)
    after = pipeline.stored("kingdee_write_results", day)
    assert set(after.loc[after["outcome"] == "created", "bill_no"]) == rejected
    assert all(
        entry.get("bin")
        for bill in pipeline.sandbox.kingdee.bills()
        if bill["FBillNo"] in rejected
        for entry in bill["entries"]
    )
