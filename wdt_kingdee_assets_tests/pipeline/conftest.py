"""A sandbox plus a Dagster instance: runs partitions end to end over real HTTP."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from wdt_kingdee_assets.definitions import ASSETS, CHECKS, build_resources
from wdt_kingdee_assets.normalize import parse_wdt_datetime
from wdt_kingdee_assets.sandbox.runtime import Sandbox, SandboxOptions
from wdt_kingdee_assets.storage import SCHEMAS

TODAY = date(2025, 6, 10)


@dataclass
class Pipeline:
    sandbox: Sandbox
    instance: dg.DagsterInstance
    data_dir: Path

    @property
    def days(self) -> list[str]:
        return [day.isoformat() for day in self.sandbox.sync_days()]

    def run(self, day: str, **kwargs) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [*ASSETS, *CHECKS],
            partition_key=day,
            resources=build_resources(str(self.data_dir)),
            instance=self.instance,
            raise_on_error=False,
            **kwargs,
        )

    def run_checks(self, day: str, *checks: dg.AssetChecksDefinition) -> dg.ExecuteInProcessResult:
        """Evaluate only these checks for a day, against what is stored and what the APIs say now."""
        job = dg.define_asset_job("recheck", selection=dg.AssetSelection.checks(*checks))
        defs = dg.Definitions(
            assets=ASSETS,
            asset_checks=CHECKS,
            jobs=[job],
            resources=build_resources(str(self.data_dir)),
        )
        # A job of checks alone has no partitions definition of its own to validate a
        # partition_key against; the partition tag is what the checks read.
        return defs.resolve_job_def("recheck").execute_in_process(
            tags={"dagster/partition": day}, instance=self.instance, raise_on_error=False
        )

    def stored(self, asset: str, day: str) -> pd.DataFrame:
        return SCHEMAS[asset].from_jsonl(
            (self.data_dir / asset / f"{day}.jsonl").read_text("utf-8")
        )

    def completed_orders(self, day: str) -> list[dict]:
        """What WDT holds for the day: the stock-outs that must end in Kingdee."""
        return [
            order
            for order in self.sandbox.wdt.orders_on(date.fromisoformat(day))
            if order.get("status") == 110 and parse_wdt_datetime(order.get("consign_time"))
        ]

    def kingdee_quantities(self) -> dict[str, dict[str, Decimal]]:
        """FBillNo → material → Σ qty, as the Kingdee simulator holds them."""
        held: dict[str, dict[str, Decimal]] = {}
        for bill in self.sandbox.kingdee.bills():
            totals: dict[str, Decimal] = defaultdict(Decimal)
            for entry in bill["entries"]:
                totals[entry["material"]] += Decimal(str(entry["qty"]))
            held[bill["FBillNo"]] = dict(totals)
        return held

    def kingdee_bill_numbers(self) -> list[str]:
        return [bill["FBillNo"] for bill in self.sandbox.kingdee.bills()]


def source_quantities(order: dict) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in order["detail_list"]:
        totals[line["spec_no"]] += Decimal(str(line["num"]))
    return dict(totals)


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()
    }


@pytest.fixture
def make_pipeline(tmp_path, monkeypatch) -> Iterator:
    started: list[Sandbox] = []
    instance_cm = dg.instance_for_test()
    instance = instance_cm.__enter__()

    def make(**options) -> Pipeline:
        opts = SandboxOptions(
            **{"seed": 11, "orders_per_day": 25, "days": 2, "today": TODAY, **options}
        )
        sandbox = Sandbox(opts)
        sandbox.seed()
        sandbox.start()
        started.append(sandbox)
        for name, value in sandbox.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("WDT_CALLS_PER_MINUTE", "0")
        return Pipeline(sandbox, instance, tmp_path / "data")

    yield make
    for sandbox in started:
        sandbox.stop()
    instance_cm.__exit__(None, None, None)
