"""Reading a stored day outside Dagster, right: ``read_day("kingdee_bills", "2026-12-02")``.

The files are JSON Lines (``storage.py``): quantities are exact decimal strings, material and
warehouse codes strings that may be all digits with leading zeros. ``pd.read_json`` guesses
types and gets both wrong (floats, integers); this reader gives each column the type its asset
declares (``Decimal`` quantities, ``str`` codes, Beijing datetimes), plus the ``day`` column
every file carries.

    from wdt_kingdee_assets.reading import read_day
    bills = read_day("kingdee_bills", "2026-12-02")                 # the stock-out flow
    receipts = read_day("production_stockin/kingdee_bills", "2026-12-02")
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wdt_kingdee_assets.files import DAY_FIELD, default_data_dir
from wdt_kingdee_assets.flows import FLOWS
from wdt_kingdee_assets.frames import FrameSchema

# Every stored asset's columns, by its stored name (``kingdee_bills``, ``production_stockin/…``).
STORED: dict[str, FrameSchema] = {schema.name: schema for flow in FLOWS for schema in flow.schemas}


def read_day(asset: str, day: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """The stored ``asset`` of ``day`` (``data_dir``: by default as the IO manager resolves it),
    with a leading ``day`` column. ``KeyError`` names the assets there are; a missing day is a
    ``FileNotFoundError`` with its path."""
    schema = STORED.get(asset)
    if schema is None:
        raise KeyError(f"no stored asset {asset!r}; there are: {', '.join(sorted(STORED))}")
    path = Path(data_dir or default_data_dir()) / asset / f"{day}.jsonl"
    with path.open(encoding="utf-8") as stream:
        frame = schema.read_jsonl(stream)
    frame.insert(0, DAY_FIELD, [day] * len(frame))
    return frame
