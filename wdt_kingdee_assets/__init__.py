"""wdt-kingdee-assets: 旺店通·旗舰版 production stock-outs → 金蝶云星空 其他出库单, as Dagster assets.

``defs`` is the project's Definitions, so ``dagster … -m wdt_kingdee_assets`` finds it. It is
loaded on first access (PEP 562): the protocol clients, the mapping and the simulators can be
imported without loading Dagster.
"""

from typing import Any

__all__ = ["defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        from wdt_kingdee_assets.definitions import defs

        return defs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
