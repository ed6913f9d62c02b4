"""The one invariant every reliability test asserts: nothing lost, nothing duplicated.

For the stock-outs WDT holds for a day (completed, consigned that day), after a sync:

* Kingdee holds exactly one bill per *eligible* stock-out — the bill whose source reference
  ``[WDT:<stockout_no>]`` names it, whatever number Kingdee's coding rule gave it (and, when the
  data center keeps the numbers sent, numbered by its ``stockout_no``) — dated its consign day,
  with the same quantity per material as WDT's lines, and ``kingdee_write_results`` says
  ``created`` or ``already_in_kingdee`` with that bill's FID and number;
* every other stock-out has no bill in Kingdee and is visibly ``held`` or ``failed`` in
  ``kingdee_write_results`` with a reason;
* Kingdee holds no stock-out twice, no FBillNo twice, and no bill that no eligible stock-out
  explains.

Eligibility is judged here from WDT's raw orders and the simulators' own state, independently of
the pipeline's normalizer and mapping: a test that reused them would agree with any bug in them.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

import pandas as pd

from wdt_kingdee_assets.sandbox.datagen import WAREHOUSES
from wdt_kingdee_assets.sandbox.kingdee_server import KingdeeMaterial
from wdt_kingdee_assets.sandbox.runtime import Sandbox
from wdt_kingdee_assets.sandbox.wdt_server import parse_stored_time
from wdt_kingdee_assets_tests.fixtures.pipeline import Pipeline

WRITTEN = frozenset({"created", "already_in_kingdee"})
NOT_WRITTEN = frozenset({"held", "failed"})
# The oracle's own reading of the reference token (the contract in SPEC and reference.py), so
# that a bug in the pipeline's parser cannot agree with itself.
_REFERENCE = re.compile(r"\[WDT:([^\]\s]+)\]")


@dataclass(frozen=True)
class KingdeeWorld:
    """What Kingdee accepts: usable materials of the stock org, by number, and its warehouses;
    and whether its coding rule keeps the numbers sent."""

    materials: Mapping[str, KingdeeMaterial]
    warehouses: frozenset[str]
    keeps_numbers: bool = True

    @classmethod
    def of(cls, sandbox: Sandbox, org: str = "100") -> KingdeeWorld:
        usable = {
            material.number.casefold(): material
            for material in sandbox.kingdee.materials()
            if material.use_org == org and not material.forbidden
            if material.document_status == "C"
        }
        return cls(
            usable,
            frozenset(number for number, _ in WAREHOUSES),
            keeps_numbers=sandbox.kingdee.numbering == "keep",
        )


def source_of(bill: Mapping[str, Any]) -> str | None:
    """The stock-out a Kingdee bill says it stands for: the reference in FNote or an F_ field."""
    for name, value in bill.items():
        if name == "FNote" or name.startswith("F_"):
            match = _REFERENCE.search(str(value or ""))
            if match:
                return unquote(match.group(1))
    return None


def _positive(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number > 0 else None


def why_not_eligible(order: Mapping[str, Any], world: KingdeeWorld) -> str | None:
    """None when the stock-out must end in Kingdee, else the oracle's reason it cannot."""
    if parse_stored_time(order.get("consign_time")) is None:
        return "consign_time unreadable"
    if not str(order.get("stockout_no") or "").strip():
        return "no stockout_no"
    if str(order.get("warehouse_no") or "").strip() not in world.warehouses:
        return "warehouse unknown to Kingdee"
    lines = order.get("detail_list")
    if not isinstance(lines, list) or not lines:
        return "no lines"
    for line in lines:
        spec_no = str(line.get("spec_no") or "").strip()
        if not spec_no:
            return "line without spec_no"
        if _positive(line.get("num")) is None:
            return f"line {spec_no}: num {line.get('num')!r}"
        material = world.materials.get(spec_no.casefold())
        if material is None:
            return f"material {spec_no} not usable in Kingdee"
        if material.batch_managed and not str(line.get("batch_no") or "").strip():
            return f"material {spec_no} needs a batch"
    return None


def orders_for_day(sandbox: Sandbox, day: date) -> list[dict[str, Any]]:
    """The completed stock-outs a sync of ``day`` must account for (SPEC §3 boundary rule).

    An order whose consign time is unreadable is kept by whichever day's query window WDT put it
    in, ``[day − 1 s, next day 00:00:00]``, judged by the simulator's own stand-in time.
    """
    start = datetime.combine(day, datetime.min.time())
    end = start + timedelta(days=1)
    wanted = []
    for candidate in (day - timedelta(days=1), day, day + timedelta(days=1)):
        for order in sandbox.wdt.orders_on(candidate):
            if str(order.get("status")) != "110":
                continue
            moment = parse_stored_time(order.get("consign_time"))
            if moment is not None:
                if start <= moment < end:
                    wanted.append(order)
            elif start - timedelta(seconds=1) <= _stand_in_time(order) <= end:
                wanted.append(order)
    return wanted


def _stand_in_time(order: Mapping[str, Any]) -> datetime:
    """The time the simulator files an order with an unreadable consign time under."""
    for name in ("created", "modified"):
        moment = parse_stored_time(order.get(name))
        if moment is not None:
            return moment
    return datetime.min


def _source_quantities(order: Mapping[str, Any]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in order["detail_list"]:
        totals[str(line["spec_no"]).strip()] += Decimal(str(line["num"]))
    return dict(totals)


def _kingdee_quantities(bill: Mapping[str, Any]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for entry in bill["entries"]:
        totals[entry["material"]] += Decimal(str(entry["qty"]))
    return dict(totals)


def assert_nothing_lost_nothing_duplicated(
    orders: Sequence[Mapping[str, Any]],
    kingdee_bills: Iterable[Mapping[str, Any]],
    write_results: pd.DataFrame,
    world: KingdeeWorld,
) -> None:
    """The invariant, over every stock-out in ``orders`` (one or several days) at once.

    ``kingdee_bills`` is what the Kingdee simulator holds (``KingdeeSimulator.bills()``);
    ``write_results`` the ``kingdee_write_results`` rows of the same days.
    """
    bills = list(kingdee_bills)
    counts = Counter(str(bill["FBillNo"]).casefold() for bill in bills)
    duplicated = sorted(number for number, count in counts.items() if count > 1)
    assert not duplicated, f"FBillNo held more than once in Kingdee: {duplicated}"
    sources = Counter(source_of(bill) for bill in bills)
    twice = sorted(str(source) for source, count in sources.items() if count > 1)
    assert not twice, f"stock-outs held more than once in Kingdee: {twice}"
    by_source = {source_of(bill): bill for bill in bills}

    results: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in write_results.to_dict("records"):
        results[int(row["stockout_id"])].append(row)

    problems: list[str] = []
    explained: set[str] = set()
    for order in orders:
        number = str(order.get("stockout_no") or "").strip()
        rows = results.get(int(order["stockout_id"]), [])
        reason = why_not_eligible(order, world)
        bill = by_source.get(number) if number else None
        if reason is None:
            explained.add(number)
            if bill is None:
                problems.append(f"{number}: eligible but not in Kingdee (results: {rows})")
                continue
            if _kingdee_quantities(bill) != _source_quantities(order):
                problems.append(
                    f"{number}: Kingdee quantities {_kingdee_quantities(bill)} "
                    f"!= WDT {_source_quantities(order)}"
                )
            consign_day = parse_stored_time(order["consign_time"]).date().isoformat()
            if not str(bill["FDate"]).startswith(consign_day):
                problems.append(f"{number}: dated {bill['FDate']}, consigned {consign_day}")
            if [row["outcome"] for row in rows] not in (["created"], ["already_in_kingdee"]):
                problems.append(f"{number}: in Kingdee but write results say {rows}")
            elif int(rows[0]["fid"]) != int(bill["FID"]):
                problems.append(f"{number}: FID {rows[0]['fid']} != Kingdee's {bill['FID']}")
            elif rows[0]["kingdee_bill_no"] != bill["FBillNo"]:
                problems.append(
                    f"{number}: recorded as {rows[0]['kingdee_bill_no']}, "
                    f"Kingdee numbers it {bill['FBillNo']}"
                )
            if world.keeps_numbers and bill["FBillNo"] != number:
                problems.append(f"{number}: Kingdee kept number {bill['FBillNo']}")
        else:
            if bill is not None:
                problems.append(f"{number}: written to Kingdee although {reason}")
            visible = [
                row for row in rows if row["outcome"] in NOT_WRITTEN and list(row["messages"])
            ]
            if len(rows) != 1 or not visible:
                problems.append(f"{number} ({reason}): not held/failed with a reason: {rows}")
    phantoms = sorted(str(source) for source in set(by_source) - explained)
    if phantoms:
        problems.append(f"Kingdee holds bills no eligible stock-out explains: {phantoms}")
    assert not problems, "invariant violated:\n" + "\n".join(problems[:40])


def assert_pipeline_invariant(pipeline: Pipeline, *days: str) -> None:
    """The invariant over what a :class:`Pipeline` synced: its stored write results, its sandbox."""
    sandbox = pipeline.sandbox
    orders = [order for day in days for order in orders_for_day(sandbox, date.fromisoformat(day))]
    results = pd.concat([pipeline.stored("kingdee_write_results", day) for day in days])
    assert_nothing_lost_nothing_duplicated(
        orders, sandbox.kingdee.bills(), results, KingdeeWorld.of(sandbox)
    )


def faults_fired(sandbox: Sandbox) -> int:
    """How many injected faults both simulators have fired so far."""
    return len(sandbox.wdt.faults.snapshot()["fired"]) + len(
        sandbox.kingdee.faults.snapshot()["fired"]
    )
