"""wdt-kingdee-assets: 旺店通·旗舰版 production stock-outs → 金蝶云星空 其他出库单, as Dagster assets.

``defs`` is the project's Definitions, so ``dagster … -m wdt_kingdee_assets`` finds it.
"""

from wdt_kingdee_assets.definitions import defs

__all__ = ["defs"]
