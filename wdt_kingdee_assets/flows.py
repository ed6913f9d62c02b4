"""The flows this project syncs, declared. Adding a flow is adding a :class:`Flow` here (and, when
its WDT method or Kingdee form is new, an entry in ``wdt/methods.py`` / ``kingdee/forms.py`` and a
mapping for the form in ``mapping.py``); ``definitions.py`` builds every flow in ``FLOWS``."""

from __future__ import annotations

from functools import partial

from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.kingdee.forms import MIS_DELIVERY, MISCELLANEOUS
from wdt_kingdee_assets.mapping import (
    MAPPING_ENV,
    STOCKIN_MAPPING_ENV,
    MiscellaneousMapping,
    MisDeliveryMapping,
    load_mapping,
)
from wdt_kingdee_assets.source import Source
from wdt_kingdee_assets.wdt.methods import PROCESS_STOCKIN, PROCESS_STOCKOUT

# 生产出库 → 其他出库单: the seed article's scheme, the first flow.
PRODUCTION_STOCKOUT = Flow(
    name="production_stockout",
    documents="stockouts",
    source=Source(
        method=PROCESS_STOCKOUT,
        time_type=2,  # 出库时间: the day the goods left
        status="110",  # 已完成
        noun="stock-out",
        chinese="生产出库单",
        english="production stock-outs",
        lines_title="出库明细 (stock-out lines)",
        document_chinese="出库单",
        time_title="出库时间",
        quantity_title="actual quantity (实发数量)",
    ),
    form=MIS_DELIVERY,
    load_mapping=partial(load_mapping, env=MAPPING_ENV, model=MisDeliveryMapping),
    mapping_env=MAPPING_ENV,
    keeps_original_names=True,
    schedule_on_by_default=True,
)

# 生产入库 → 其他入库单: finished goods checked in (审核) on a Beijing day, one receipt bill each.
PRODUCTION_STOCKIN = Flow(
    name="production_stockin",
    documents="stockins",
    source=Source(
        method=PROCESS_STOCKIN,
        time_type=2,  # 审核时间: when the stock-in became final (see docs/reference)
        status="80",  # 已完成
        noun="stock-in",
        chinese="生产入库单",
        english="production stock-ins",
        lines_title="入库明细 (stock-in lines)",
        document_chinese="入库单",
        time_title="审核时间",
        quantity_title="quantity (数量)",
    ),
    form=MISCELLANEOUS,
    load_mapping=partial(load_mapping, env=STOCKIN_MAPPING_ENV, model=MiscellaneousMapping),
    mapping_env=STOCKIN_MAPPING_ENV,
)

FLOWS: tuple[Flow, ...] = (PRODUCTION_STOCKOUT, PRODUCTION_STOCKIN)
