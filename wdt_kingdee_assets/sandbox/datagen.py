"""Seeded, deterministic sandbox data: a material catalog, and WDT production stock-outs and
stock-ins by day.

Stock-outs have the shape of reference §7 (``wms.stockout.Process.queryWithDetail``); stock-ins
the shape of the published answer of ``wms.stockin.Process.queryWithDetail``
(``docs/reference/production_stockin.md`` §1). Each day draws from its own
``random.Random(f"{seed}:{day}")`` (stock-ins from ``f"{seed}:in:{day}"``), so a day's orders do
not depend on which other days were generated, and ids are derived from the day's ordinal, so
they never collide across days.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

WAREHOUSES: tuple[tuple[str, str], ...] = (
    ("CK001", "成品仓"),
    ("CK002", "原料仓"),
    ("CK003", "半成品仓"),
    ("CK004", "辅料仓"),
)

UNITS = ("Pcs", "kg", "m", "箱")
COUNTED_UNITS = frozenset({"Pcs", "箱"})  # whole numbers; kg and m carry up to 4 decimals
# Orders per day are numbered below this, which keeps ids unique across days.
IDS_PER_DAY = 100_000
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_HUNDRED = Decimal(100)
_TEN_THOUSAND = Decimal(10_000)

MALFORMED_KINDS: tuple[str, ...] = (
    "missing_spec_no",
    "num_zero",
    "num_negative",
    "num_not_a_number",
    "unparseable_consign_time",
    "unknown_status",
    "long_strings",
    "non_ascii",
    "quote_in_stockout_no",
    "quote_in_spec_no",
)

_STATUS_WEIGHTS = ((110, 92), (5, 2), (48, 2), (50, 2), (77, 2))
# 80 已完成; 10 已取消, 20 编辑中, 30 待审核, 37 待质检, 40 质检待确认.
_STOCKIN_STATUS_WEIGHTS = ((80, 92), (10, 2), (20, 2), (30, 2), (37, 1), (40, 1))
_MATERIALS = (
    ("不锈钢螺丝", "Pcs"),
    ("六角螺母", "Pcs"),
    ("平垫圈", "Pcs"),
    ("电源适配器", "Pcs"),
    ("控制主板", "Pcs"),
    ("硅胶密封圈", "Pcs"),
    ("食品级PET颗粒", "kg"),
    ("聚丙烯粒料", "kg"),
    ("白砂糖", "kg"),
    ("工业酒精", "kg"),
    ("铜芯电线", "m"),
    ("PVC软管", "m"),
    ("无纺布", "m"),
    ("缠绕膜", "m"),
    ("五层瓦楞纸箱", "箱"),
    ("矿泉水550ml", "箱"),
    ("标签贴纸", "箱"),
    ("防静电包装袋", "箱"),
)
_GRADES = ("A级", "B级", "加厚", "标准", "经济型", "进口", "国产", "高强度")
_BRANDS = ("旺达", "金禾", "华美", "中联", "鑫源")
_OPERATORS = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊")
_PRODUCERS = ("一车间", "二车间", "三车间", "外协加工厂")


@dataclass(frozen=True)
class CatalogMaterial:
    number: str  # the WDT spec_no = Kingdee FNumber
    name: str
    base_unit: str
    in_kingdee: bool  # False: the material is missing in Kingdee (held bills, the check fires)
    batch_managed: bool


def _below(rng: random.Random, n: int) -> int:
    """A uniform int in [0, n): ``randrange`` costs several times more, and we draw millions."""
    return int(rng.random() * n)


def _ean13(rng: random.Random) -> str:
    digits = "690" + "".join(str(rng.randrange(10)) for _ in range(9))
    weighted = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str((10 - weighted % 10) % 10)


def build_catalog(seed: int, size: int = 200, missing_ratio: float = 0.03) -> list[CatalogMaterial]:
    """``size`` distinct materials; ``round(size * missing_ratio)`` of them absent from Kingdee."""
    if size < 1:
        raise ValueError(f"catalog size must be at least 1, got {size}")
    if not 0 <= missing_ratio <= 1:
        raise ValueError(f"missing_ratio must be within [0, 1], got {missing_ratio}")
    rng = random.Random(f"{seed}:catalog")
    numbers: set[str] = set()
    ordered: list[str] = []
    while len(ordered) < size:
        number = _ean13(rng) if rng.random() < 0.5 else f"MAT-{rng.randrange(10000, 100000)}"
        if number not in numbers:
            numbers.add(number)
            ordered.append(number)
    missing = set(rng.sample(range(size), round(size * missing_ratio)))
    catalog = []
    for index, number in enumerate(ordered):
        base, unit = rng.choice(_MATERIALS)
        catalog.append(
            CatalogMaterial(
                number=number,
                name=f"{rng.choice(_GRADES)}{base}",
                base_unit=unit,
                in_kingdee=index not in missing,
                batch_managed=rng.random() < 0.3,
            )
        )
    return catalog


def _quantity(rng: random.Random, unit: str) -> Decimal:
    if unit in COUNTED_UNITS or rng.random() < 0.3:
        return Decimal(1 + _below(rng, 500))
    return Decimal(1 + _below(rng, 5_000_000)) / _TEN_THOUSAND


@lru_cache(maxsize=8192)
def _line_template(material: CatalogMaterial, index: int) -> dict[str, Any]:
    """The fields a line takes from its material alone; built once per material, then copied."""
    return {
        "spec_id": 10_000 + index,
        "spec_no": material.number,
        "goods_no": material.number,
        "goods_name": material.name,
        "short_name": material.name[:6],
        "spec_code": "",
        "spec_name": "默认规格",
        "barcode": material.number if material.number.isdigit() else "",
    }


def _split(rng: random.Random, num: Decimal, unit: str) -> list[Decimal]:
    """``num`` as taken from one or two places (exactly, in the unit's steps)."""
    step = Decimal(1) if unit in COUNTED_UNITS and num == num.to_integral_value() else None
    if rng.random() >= 0.2:
        return [num]
    if step is not None:
        if num < 2:
            return [num]
        first = Decimal(1 + _below(rng, int(num) - 1))
    else:
        first = (num * Decimal(1 + _below(rng, 9)) / 10).quantize(Decimal("0.0001"))
        if not 0 < first < num:
            return [num]
    return [first, num - first]


def _positions(
    rng: random.Random, rec_id: int, material: CatalogMaterial, num: Decimal, day: date
) -> list[dict[str, Any]]:
    """Where a line was picked, as WDT records it per position: each its batch, bin, dates and
    count (position_details_list); the counts add up to the line's num."""
    positions = []
    for n, count in enumerate(_split(rng, num, material.base_unit), start=1):
        batch = (
            f"B{day:%Y%m%d}{1 + _below(rng, 19):02d}{'ABCD'[n - 1]}"
            if material.batch_managed
            else ""
        )
        made = day - timedelta(days=10 + _below(rng, 200))
        positions.append(
            {
                "rec_id": rec_id * 10 + n,
                "stockout_detail_id": rec_id,
                "position_id": 1 + _below(rng, 499),
                "position_no": f"A-{1 + _below(rng, 29):02d}-{1 + _below(rng, 8):02d}",
                "batch_no": batch,
                "production_date": made.isoformat() if batch else "",
                "expire_date": f"{made.year + 2}-{made.month:02d}-{made.day:02d}" if batch else "",
                "position_goods_count": count,
            }
        )
    return positions


def _line(
    rng: random.Random,
    rec_id: int,
    material: CatalogMaterial,
    index: int,
    day: date,
    lots_in_positions: bool = False,
) -> dict[str, Any]:
    num = _quantity(rng, material.base_unit)
    price = Decimal(100 + _below(rng, 499_900)) / _HUNDRED
    # A batch-managed material always leaves with its batch: Kingdee rejects its lines without
    # FLot, and the sandbox's default days should show held bills, not inconsistent data.
    batch_no = (
        f"B{day.year:04d}{day.month:02d}{day.day:02d}{1 + _below(rng, 19):02d}"
        if material.batch_managed
        else ""
    )
    position_no = f"A-{1 + _below(rng, 29):02d}-{1 + _below(rng, 8):02d}"
    line: dict[str, Any] = {
        "rec_id": rec_id,
        **_line_template(material, index),
        "num": num,
        "expect_num": num,
        "checked_cost_price": price,
        "scan_type": _below(rng, 3),
        "defect": False,
        "remark": "",
        "brand_name": _BRANDS[index % len(_BRANDS)],
        "aux_unit_name": "",
        "base_unit_name": material.base_unit,
        "position_details_list": [
            {
                "rec_id": rec_id * 10 + 1,
                "stockout_detail_id": rec_id,
                "position_id": 1 + _below(rng, 499),
                "position_no": position_no,
                "batch_no": batch_no,
                "expire_date": "",
                "production_date": "",
                "position_goods_count": num,
            }
        ],
    }
    if lots_in_positions:
        # The per-batch truth only in the positions (the line has no batch of its own), and a
        # line picked from two batches or bins now and then.
        line["position_details_list"] = _positions(rng, rec_id, material, num, day)
        return line
    if batch_no:
        line["batch_no"] = batch_no
        line["expire_date"] = f"{day.year + 2}-{day.month:02d}-{day.day:02d}"
    if rng.random() < 0.4:
        line["position_no"] = position_no
    return line


def generate_order(
    rng: random.Random,
    *,
    stockout_id: int,
    stockout_no: str,
    process_no: str,
    consign_time: datetime,
    catalog: Sequence[CatalogMaterial],
    status: int = 110,
    warehouse: tuple[str, str] | None = None,
    lots_in_positions: bool = False,
) -> dict[str, Any]:
    """One stock-out order as WDT sends it; ``consign_time`` is Beijing local (naive).
    ``lots_in_positions``: batches only per position, some lines from two batches or bins."""
    warehouse_no, warehouse_name = warehouse or rng.choice(WAREHOUSES)
    count = min(len(catalog), rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6, 8, 10, 12, 15, 20)))
    picks = rng.sample(range(len(catalog)), count)
    lines = [
        _line(
            rng,
            stockout_id * 100 + n,
            catalog[index],
            index,
            consign_time.date(),
            lots_in_positions,
        )
        for n, index in enumerate(picks, start=1)
    ]
    created = consign_time - timedelta(minutes=10 + _below(rng, 2870))
    modified = consign_time + timedelta(seconds=_below(rng, 601))
    return {
        "stockout_id": stockout_id,
        "stockout_no": stockout_no,
        "src_order_type": 5,
        "status": status,
        "process_no": process_no,
        "warehouse_no": warehouse_no,
        "warehouse_name": warehouse_name,
        "created": created.strftime(TIME_FORMAT),
        "modified": modified.strftime(TIME_FORMAT),
        "consign_time": consign_time.strftime(TIME_FORMAT),
        "operator_name": rng.choice(_OPERATORS),
        "checkouter_name": "系统",
        "producer_name": rng.choice(_PRODUCERS),
        "goods_count": sum((line["num"] for line in lines), Decimal(0)),
        "goods_type_count": len(lines),
        "checked_goods_total_cost": sum(
            (line["num"] * line["checked_cost_price"] for line in lines), Decimal(0)
        ).quantize(Decimal("0.0001")),
        "weigh_post_cost": Decimal("0.0000"),
        "logistics_name": "无",
        "logistics_no": "",
        "remark": "",
        "error_info": "",
        "note_count": 0,
        "flag_id": 0,
        "flag_name": "无",
        "detail_list": lines,
    }


def _break(order: dict[str, Any], kind: str) -> None:
    """Give ``order`` exactly one defect of ``kind`` (the normalizer must reject or survive it)."""
    line = order["detail_list"][0]
    if kind == "missing_spec_no":
        del line["spec_no"]
    elif kind == "num_zero":
        line["num"] = Decimal(0)
    elif kind == "num_negative":
        line["num"] = -abs(line["num"])
    elif kind == "num_not_a_number":
        line["num"] = "abc"
    elif kind == "unparseable_consign_time":
        order["consign_time"] = "0000-00-00 00:00:00"  # MySQL's zero date, as legacy rows have
    elif kind == "unknown_status":
        order["status"] = 95
    elif kind == "long_strings":
        order["remark"] = "备注" * 2000
        line["goods_name"] = "超长名称" * 500
        line["spec_no"] = "MAT-" + "9" * 60  # longer than the documented string(40)
    elif kind == "non_ascii":
        line["spec_no"] = "物料－Ａ１😀"
        order["remark"] = "ﺎﻠﻋﺮﺒﻳﺓ ✓ 全角，标点"
    elif kind == "quote_in_stockout_no":
        order["stockout_no"] = order["stockout_no"][:-1] + "'" + order["stockout_no"][-1]
    elif kind == "quote_in_spec_no":
        line["spec_no"] = line["spec_no"] + "'X"
    else:
        raise ValueError(f"unknown malformed kind {kind!r}; known: {MALFORMED_KINDS}")


def generate_day(
    day: date,
    *,
    seed: int,
    orders: int,
    catalog: Sequence[CatalogMaterial],
    malformed: int = 0,
    lots_in_positions: bool = False,
) -> list[dict[str, Any]]:
    """``orders`` well-formed orders consigned on Beijing ``day``, then ``malformed`` broken ones.

    Well-formed orders are numbered in consign-time order; malformed ones follow (numbers after
    them, times anywhere in the day). The k-th malformed order (0-based) has the single defect
    ``MALFORMED_KINDS[k % len(MALFORMED_KINDS)]`` and status 110 unless the defect is the status.
    """
    if orders < 0 or malformed < 0:
        raise ValueError("orders and malformed must not be negative")
    if orders + malformed >= IDS_PER_DAY:
        raise ValueError(f"at most {IDS_PER_DAY - 1} orders per day, got {orders + malformed}")
    if not catalog:
        raise ValueError("the catalog is empty")
    rng = random.Random(f"{seed}:{day.isoformat()}")
    midnight = datetime.combine(day, time())
    seconds = sorted(_below(rng, 86_400) for _ in range(orders))
    seconds += [_below(rng, 86_400) for _ in range(malformed)]
    statuses, weights = zip(*_STATUS_WEIGHTS, strict=True)
    result = []
    for n, offset in enumerate(seconds, start=1):
        result.append(
            generate_order(
                rng,
                stockout_id=day.toordinal() * IDS_PER_DAY + n,
                stockout_no=f"CK{day:%Y%m%d}{n:04d}",
                process_no=f"PS{day:%Y%m%d}{1 + _below(rng, 99):02d}",
                consign_time=midnight + timedelta(seconds=offset),
                catalog=catalog,
                status=110 if n > orders else rng.choices(statuses, weights)[0],
                lots_in_positions=lots_in_positions,
            )
        )
    for k, order in enumerate(result[orders:]):
        _break(order, MALFORMED_KINDS[k % len(MALFORMED_KINDS)])
    return result


def _stockin_line(
    rng: random.Random, rec_id: int, material: CatalogMaterial, index: int, day: date
) -> dict[str, Any]:
    """A stock-in detail line as the method's published answer has it: the batch and the bin on
    the line itself (no position list), empty strings where a value is absent."""
    num = _quantity(rng, material.base_unit)
    batch = f"R{day:%Y%m%d}{1 + _below(rng, 19):02d}" if material.batch_managed else ""
    template = _line_template(material, index)
    return {
        "rec_id": rec_id,
        **template,
        "expire_date": f"{day.year + 2}-{day.month:02d}-{day.day:02d}" if batch else "",
        "num": num,
        "num2": num,
        "production_date": day.isoformat() if batch else "",
        "position_no": f"A-{1 + _below(rng, 29):02d}-{1 + _below(rng, 8):02d}",
        "batch_no": batch,
        "expect_num": num,
        "remark": "生产成品入库",
        "weight": Decimal(1),
        "goods_weight": num,
        "defect": False,
        "unit_ratio": Decimal(1),
        "validity_days": 730 if batch else 0,
        "need_inspect_num": Decimal(0),
        "brand_name": _BRANDS[index % len(_BRANDS)],
        "aux_unit_name": "无",
        "base_unit_name": material.base_unit,
    }


def generate_stockin(
    rng: random.Random,
    *,
    stockin_id: int,
    stockin_no: str,
    process_no: str,
    check_time: datetime,
    catalog: Sequence[CatalogMaterial],
    status: int = 80,
    warehouse: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One production stock-in as WDT sends it; ``check_time`` (审核时间) is Beijing local."""
    warehouse_no, warehouse_name = warehouse or rng.choice(WAREHOUSES)
    count = min(len(catalog), rng.choice((1, 1, 1, 2, 2, 3, 4, 6)))
    picks = rng.sample(range(len(catalog)), count)
    lines = [
        _stockin_line(rng, stockin_id * 100 + n, catalog[index], index, check_time.date())
        for n, index in enumerate(picks, start=1)
    ]
    created = check_time - timedelta(minutes=5 + _below(rng, 600))
    modified = check_time + timedelta(seconds=_below(rng, 601))
    total = sum((line["num"] for line in lines), Decimal(0))
    return {
        "stockin_id": stockin_id,
        "stockin_no": stockin_no,
        "logistics_name": "无",
        "logistics_no": "",
        "created": created.strftime(TIME_FORMAT),
        "src_order_type": 6,  # 生产成品单
        "goods_type_count": len(lines),
        "remark": "库存异动生产生成",
        "goods_count": total,
        "operator_name": rng.choice(_OPERATORS),
        "warehouse_name": warehouse_name,
        "warehouse_no": warehouse_no,
        "producer_name": rng.choice(_PRODUCERS),
        "modified": modified.strftime(TIME_FORMAT),
        "process_no": process_no,
        "right_num": total,
        "note_count": 0,
        "check_time": check_time.strftime(TIME_FORMAT),
        "flag_id": 0,
        "flag_name": "无",
        "status": status,
        "detail_list": lines,
    }


def generate_stockin_day(
    day: date, *, seed: int, stockins: int, catalog: Sequence[CatalogMaterial]
) -> list[dict[str, Any]]:
    """``stockins`` production stock-ins checked (审核) on Beijing ``day``, numbered in time order."""
    if not 0 <= stockins < IDS_PER_DAY:
        raise ValueError(f"stock-ins per day must be 0 to {IDS_PER_DAY - 1}, got {stockins}")
    if not catalog:
        raise ValueError("the catalog is empty")
    rng = random.Random(f"{seed}:in:{day.isoformat()}")
    midnight = datetime.combine(day, time())
    seconds = sorted(_below(rng, 86_400) for _ in range(stockins))
    statuses, weights = zip(*_STOCKIN_STATUS_WEIGHTS, strict=True)
    return [
        generate_stockin(
            rng,
            stockin_id=day.toordinal() * IDS_PER_DAY + n,
            stockin_no=f"RK{day:%Y%m%d}{n:04d}",
            process_no=f"PS{day:%Y%m%d}{1 + _below(rng, 99):02d}",
            check_time=midnight + timedelta(seconds=offset),
            catalog=catalog,
            status=rng.choices(statuses, weights)[0],
        )
        for n, offset in enumerate(seconds, start=1)
    ]
