"""The resolved Definitions equal the stored snapshot: a restructuring changes nothing a user sees
(asset keys, groups, descriptions, checks, jobs, schedules, sensors, pools, retries, config)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from wdt_kingdee_assets.definitions import defs
from wdt_kingdee_assets_tests.definitions_snapshot import snapshot

STORED = Path(__file__).resolve().parents[1] / "snapshots" / "definitions.json"


def test_the_definitions_equal_the_stored_snapshot():
    now = snapshot(defs)
    if os.environ.get("WDT_KINGDEE_UPDATE_SNAPSHOT"):
        STORED.write_text(json.dumps(now, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    stored = json.loads(STORED.read_text(encoding="utf-8"))
    for part in stored:
        assert now[part] == stored[part], f"the definitions' {part} differ from {STORED.name}"
    assert set(now) == set(stored)
