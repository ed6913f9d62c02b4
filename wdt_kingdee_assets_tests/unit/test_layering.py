"""The pure rooms stay pure: the protocols, the calendar, normalizing, mapping, the flows and the
simulators import no Dagster, so they can be used, tested and reasoned about without it."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "wdt_kingdee_assets.beijing",
    "wdt_kingdee_assets.frames",
    "wdt_kingdee_assets.encoding",
    "wdt_kingdee_assets.normalize",
    "wdt_kingdee_assets.mapping",
    "wdt_kingdee_assets.bills",
    "wdt_kingdee_assets.units",
    "wdt_kingdee_assets.codes",
    "wdt_kingdee_assets.catalog",
    "wdt_kingdee_assets.reference",
    "wdt_kingdee_assets.flow",
    "wdt_kingdee_assets.flows",
    "wdt_kingdee_assets.writer",
    "wdt_kingdee_assets.lifecycle",
    "wdt_kingdee_assets.grouping",
    "wdt_kingdee_assets.locator",
    "wdt_kingdee_assets.wdt",
    "wdt_kingdee_assets.kingdee",
    "wdt_kingdee_assets.sandbox.runtime",
    "wdt_kingdee_assets.cli",
    "wdt_kingdee_assets.files",
    "wdt_kingdee_assets.open_bills",
    "wdt_kingdee_assets.operations",
    "wdt_kingdee_assets.export",
    "wdt_kingdee_assets.causes",
    "wdt_kingdee_assets.reading",
]


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_loads_without_dagster(module: str):
    probe = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster')[:3])"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", f"{module} loads Dagster: {result.stdout.strip()}"
