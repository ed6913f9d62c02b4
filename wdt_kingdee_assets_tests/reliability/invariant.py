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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

import pandas as pd

from wdt_kingdee_assets.sandbox.datagen import WAREHOUSES
from wdt_kingdee_assets.sandbox.kingdee_server import KingdeeMaterial
from wdt_kingdee_assets.sandbox.runtime import (
    BIN_WAREHOUSES,
    BINS,
    BRANCH_ORG,
    BRANCH_WAREHOUSE,
    CARTON_PIECES,
    MATERIAL_CODE_FIELD,
    Sandbox,
)
from wdt_kingdee_assets.sandbox.wdt_server import parse_stored_time
from wdt_kingdee_assets_tests.fixtures.pipeline import Pipeline

WRITTEN = frozenset({"created", "already_in_kingdee"})
NOT_WRITTEN = frozenset({"held", "failed"})
# The oracle's own reading of the reference token (the contract in SPEC and reference.py), so
# that a bug in the pipeline's parser cannot agree with itself.
_REFERENCE = re.compile(r"\[WDT:([^\]\s]+)\]")
_BY_NAME = {name: number for number, name in WAREHOUSES}


@dataclass(frozen=True)
class KingdeeWorld:
    """What Kingdee accepts: usable materials per stock org by the WDT code they stand for,
    its warehouses (each in its stock org) and their bins, its units' precision; whether its
    coding rule keeps the numbers sent; and what WDT really sends (the simulator's answer of a
    stored order).

    The run's mapping is taken to fit the sandbox's data-center profile (the default mapping
    for the default sandbox, ``real_data_center.yaml`` for the full profile): warehouses by
    name, units by name, 箱 → 24 Pcs, bins by WDT's position codes, the branch warehouse's bills
    in the branch org."""

    materials: Mapping[str, Mapping[str, KingdeeMaterial]]  # org → WDT code → material
    warehouses: frozenset[str]
    org: str = "100"  # the flow's stock org
    warehouse_orgs: Mapping[str, str] = field(default_factory=dict)  # warehouse → its own org
    keeps_numbers: bool = True
    served: Callable[[Mapping[str, Any]], Mapping[str, Any]] = lambda order: order
    bins: Mapping[str, frozenset[str]] = field(default_factory=dict)
    precision: Callable[[str], int] = lambda unit: 4
    catalog_units: Mapping[str, str] = field(default_factory=dict)  # WDT code → its unit

    @classmethod
    def of(cls, sandbox: Sandbox) -> KingdeeWorld:
        usable: dict[str, dict[str, KingdeeMaterial]] = defaultdict(dict)
        for material in sandbox.kingdee.materials():
            if not material.forbidden and material.document_status == "C":
                code = str(material.fields.get(MATERIAL_CODE_FIELD) or material.number)
                usable[material.use_org][code.casefold()] = material
        options = sandbox.options
        return cls(
            dict(usable),
            frozenset(number for number, _ in WAREHOUSES),
            org=options.org_number,
            warehouse_orgs={BRANCH_WAREHOUSE: BRANCH_ORG} if options.kingdee_branch_org else {},
            keeps_numbers=sandbox.kingdee.numbering == "keep",
            served=sandbox.wdt.served,
            bins=dict.fromkeys(BIN_WAREHOUSES, frozenset(BINS)) if options.kingdee_bins else {},
            precision=lambda unit: sandbox.kingdee.unit(unit).precision,
            catalog_units={m.number.casefold(): m.base_unit for m in sandbox.catalog},
        )

    def org_of(self, warehouse: str) -> str:
        return self.warehouse_orgs.get(warehouse, self.org)

    def material(self, spec_no: str, warehouse: str) -> KingdeeMaterial | None:
        return self.materials.get(self.org_of(warehouse), {}).get(spec_no.casefold())

    def factor(self, spec_no: str, material: KingdeeMaterial) -> Decimal | None:
        """Kingdee units per WDT unit: equal units, or a WDT 箱 counted as 24 Pcs in Kingdee."""
        wdt_unit = self.catalog_units.get(spec_no.casefold(), material.base_unit)
        if wdt_unit == material.base_unit:
            return Decimal(1)
        return Decimal(CARTON_PIECES) if (wdt_unit, material.base_unit) == ("箱", "Pcs") else None


@dataclass(frozen=True)
class _Part:
    """Where some of a line was taken from, as WDT says it: (batch, bin), count and dates."""

    batch: str
    bin: str
    num: Decimal
    dated: bool


def _parts(line: Mapping[str, Any], num: Decimal) -> list[_Part] | None:
    """The line's parts per (batch, bin), from its positions or else the line; None when its
    positions do not add up to ``num``."""
    positions = line.get("position_details_list") or []
    batch, place = str(line.get("batch_no") or ""), str(line.get("position_no") or "")
    dated = bool(line.get("production_date") or line.get("expire_date"))
    if not positions:
        return [_Part(batch, place, num, dated)]
    grouped: dict[tuple[str, str], list[Any]] = {}
    for item in positions:
        count = Decimal(str(item["position_goods_count"]))
        where = (str(item.get("batch_no") or batch), str(item.get("position_no") or place))
        has_dates = bool(item.get("production_date") or item.get("expire_date")) or dated
        part = grouped.setdefault(where, [Decimal(0), has_dates])
        part[0] += count
    if sum(part[0] for part in grouped.values()) != num:
        return None
    return [_Part(b, p, part[0], part[1]) for (b, p), part in grouped.items()]


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
    """None when the stock-out must end in Kingdee, else the oracle's reason it cannot: judged
    on what WDT sends of it."""
    served = world.served(order)
    if parse_stored_time(order.get("consign_time")) is None:
        return "consign_time unreadable"
    if not str(order.get("stockout_no") or "").strip():
        return "no stockout_no"
    warehouse = warehouse_of(served)
    if warehouse not in world.warehouses:
        return "warehouse unknown to Kingdee"
    lines = served.get("detail_list")
    if not isinstance(lines, list) or not lines:
        return "no lines"
    for line in lines:
        spec_no = str(line.get("spec_no") or "").strip()
        if not spec_no:
            return "line without spec_no"
        num = _positive(line.get("num"))
        if num is None:
            return f"line {spec_no}: num {line.get('num')!r}"
        material = world.material(spec_no, warehouse)
        if material is None:
            return f"material {spec_no} not usable in Kingdee org {world.org_of(warehouse)}"
        factor = world.factor(spec_no, material)
        if factor is None:
            return f"material {spec_no}: no conversion to {material.base_unit}"
        parts = _parts(line, num)
        if parts is None:
            return f"line {spec_no}: positions do not add up to num"
        for part in parts:
            if material.batch_managed and not part.batch:
                return f"material {spec_no} needs a batch"
            if material.shelf_life and not part.dated:
                return f"material {spec_no} needs a production or expiry date"
            if warehouse in world.bins and part.bin not in world.bins[warehouse]:
                return f"warehouse {warehouse} needs a bin for {spec_no}"
            if _rounded(part.num * factor, world.precision(material.base_unit)) <= 0:
                return f"material {spec_no}: {part.num} rounds to 0"
    return None


def warehouse_of(served: Mapping[str, Any]) -> str | None:
    """The WDT warehouse code of an order as WDT serves it: its own, or its name's."""
    return str(served.get("warehouse_no") or "").strip() or _BY_NAME.get(
        str(served.get("warehouse_name") or "")
    )


def _rounded(quantity: Decimal, places: int) -> Decimal:
    return quantity.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


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


def _source_quantities(
    order: Mapping[str, Any], world: KingdeeWorld
) -> dict[tuple[str, str | None], Decimal]:
    """What Kingdee must hold per (material number, lot): each part of each line in the
    Kingdee unit, rounded half up to its precision."""
    totals: dict[tuple[str, str | None], Decimal] = defaultdict(Decimal)
    served = world.served(order)
    for line in served["detail_list"]:
        spec_no = str(line["spec_no"]).strip()
        material = world.material(spec_no, warehouse_of(served))
        factor = world.factor(spec_no, material)
        for part in _parts(line, Decimal(str(line["num"]))) or []:
            lot = part.batch if material.batch_managed else None
            totals[(material.number, lot)] += _rounded(
                part.num * factor, world.precision(material.base_unit)
            )
    return dict(totals)


def _kingdee_quantities(bill: Mapping[str, Any]) -> dict[tuple[str, str | None], Decimal]:
    totals: dict[tuple[str, str | None], Decimal] = defaultdict(Decimal)
    for entry in bill["entries"]:
        totals[(entry["material"], entry["lot"] or None)] += Decimal(str(entry["qty"]))
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
    # A coding rule may count per stock org: a number is unique within its org.
    counts = Counter((bill["FStockOrgId"], str(bill["FBillNo"]).casefold()) for bill in bills)
    duplicated = sorted(number for number, count in counts.items() if count > 1)
    assert not duplicated, f"FBillNo held more than once in a stock org: {duplicated}"
    sources = Counter(source_of(bill) for bill in bills)
    twice = sorted(str(source) for source, count in sources.items() if count > 1)
    assert not twice, f"stock-outs held more than once in Kingdee: {twice}"
    by_source = {source_of(bill): bill for bill in bills}

    # By the stock-out's number: WDT's older answers carry no stockout_id (the pipeline then
    # derives one), and a bill's source reference is the number either way.
    results: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in write_results.to_dict("records"):
        results[str(row["source_ref"])].append(row)

    problems: list[str] = []
    explained: set[str] = set()
    for order in orders:
        number = str(order.get("stockout_no") or "").strip()
        rows = results.get(str(order.get("stockout_no") or "").strip(), [])
        reason = why_not_eligible(order, world)
        bill = by_source.get(number) if number else None
        if reason is None:
            explained.add(number)
            if bill is None:
                problems.append(f"{number}: eligible but not in Kingdee (results: {rows})")
                continue
            if _kingdee_quantities(bill) != _source_quantities(order, world):
                problems.append(
                    f"{number}: Kingdee quantities {_kingdee_quantities(bill)} "
                    f"!= WDT {_source_quantities(order, world)}"
                )
            org = world.org_of(warehouse_of(world.served(order)))
            if bill["FStockOrgId"] != org:
                problems.append(f"{number}: in stock org {bill['FStockOrgId']}, not {org}")
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
