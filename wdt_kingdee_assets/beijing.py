"""The Beijing calendar: days, the WDT query window of a day, and the go-live day.

Pure: no Dagster, and nothing read at import, so that the CLI and the sandbox run without the
deployment's settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")

START_DATE_ENV = "WDT_KINGDEE_START_DATE"

# The open (today's) partition is read up to "now minus this lag": rows still being written at the
# source must not be half-read, and WDT's own clock may lag ours by a little.
OPEN_DAY_LAG = timedelta(minutes=2)

# The WDT API does not document whether start_time/end_time are inclusive (reference §6). The
# window therefore starts one second early and ends on the next midnight: every order of the day is
# inside it under either reading, and orders of the neighbouring days that may come along are
# dropped by the day filter.
WINDOW_LEAD = timedelta(seconds=1)


def start_date() -> str:
    """The first partition: the go-live day, which only the person deploying can know.

    No default: a made-up early date would offer years of empty days to a one-click "materialize
    missing" that writes to a real Kingdee. The sandbox sets it to its own first day.
    """
    value = os.environ.get(START_DATE_ENV, "").strip()
    if not value:
        raise ValueError(
            f"{START_DATE_ENV} is not set: set it to the first Beijing day to sync (your go-live "
            "day, YYYY-MM-DD); every day from it on becomes a partition"
        )
    try:
        date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{START_DATE_ENV} must be a date like 2025-06-01, got {value!r}") from exc
    return value


@dataclass(frozen=True)
class DayWindow:
    """A Beijing day and the WDT query window that covers it."""

    day: date
    start: datetime  # day 00:00:00 Beijing, inclusive
    end: datetime  # next day 00:00:00 Beijing, exclusive
    query_start: datetime
    query_end: datetime

    @property
    def is_open(self) -> bool:
        """True for a day still in progress when the window was computed."""
        return self.query_end < self.end

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def day_window(partition_key: str, now: datetime | None = None) -> DayWindow:
    """The window for a partition key ``YYYY-MM-DD``; today's ends at ``now - OPEN_DAY_LAG``."""
    day = date.fromisoformat(partition_key)
    start = datetime(day.year, day.month, day.day, tzinfo=BEIJING)
    end = start + timedelta(days=1)
    now = (now or datetime.now(BEIJING)).astimezone(BEIJING).replace(microsecond=0)
    query_end = min(end, now - OPEN_DAY_LAG)
    if query_end <= start:
        raise ValueError(
            f"partition {partition_key} has not started yet in Beijing time (now {now:%Y-%m-%d %H:%M:%S})"
        )
    return DayWindow(day, start, end, start - WINDOW_LEAD, query_end)
