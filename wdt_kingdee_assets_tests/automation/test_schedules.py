"""The daily schedule syncs yesterday (Beijing), the intraday one today; both name the partition."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from wdt_kingdee_assets.definitions import defs

BEIJING = ZoneInfo("Asia/Shanghai")
REPOSITORY = defs.get_repository_def()
sync_yesterday_daily = REPOSITORY.get_schedule_def("sync_yesterday_daily")
sync_today_hourly = REPOSITORY.get_schedule_def("sync_today_hourly")


def evaluate(schedule: dg.ScheduleDefinition, at: datetime) -> dg.ScheduleExecutionData:
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=at,
            repository_def=REPOSITORY,
        )
        return REPOSITORY.get_schedule_def(schedule.name).evaluate_tick(context)


def test_both_schedules_are_registered_in_beijing_time_and_target_the_sync_job():
    daily = REPOSITORY.get_schedule_def("sync_yesterday_daily")
    hourly = REPOSITORY.get_schedule_def("sync_today_hourly")
    assert (daily.cron_schedule, daily.execution_timezone) == ("20 0 * * *", "Asia/Shanghai")
    assert hourly.execution_timezone == "Asia/Shanghai"
    assert daily.job_name == hourly.job_name == "sync_stockouts"
    assert daily.default_status == dg.DefaultScheduleStatus.RUNNING
    assert hourly.default_status == dg.DefaultScheduleStatus.STOPPED


@pytest.mark.parametrize(
    ("tick_time", "expected"),
    [
        (datetime(2025, 6, 10, 0, 20, tzinfo=BEIJING), "2025-06-09"),
        # 16:20 UTC on the 9th is already 00:20 on the 10th in Beijing: still "yesterday" = 9th.
        (datetime(2025, 6, 9, 16, 20, tzinfo=UTC), "2025-06-09"),
        (datetime(2025, 3, 1, 0, 20, tzinfo=BEIJING), "2025-02-28"),
    ],
)
def test_daily_schedule_requests_the_beijing_day_that_just_closed(tick_time, expected):
    data = evaluate(sync_yesterday_daily, tick_time)
    [request] = data.run_requests
    assert request.partition_key == expected
    assert request.tags["dagster/partition"] == expected
    assert request.run_key == f"daily:{expected}"
    assert request.tags["wdt_kingdee/trigger"] == "daily_schedule"


def test_daily_schedule_skips_days_before_the_first_partition(monkeypatch):
    monkeypatch.setenv("WDT_KINGDEE_START_DATE", "2025-06-10")
    data = sync_yesterday_daily.evaluate_tick(
        dg.build_schedule_context(
            scheduled_execution_time=datetime(2025, 6, 10, 0, 20, tzinfo=BEIJING)
        )
    )
    assert not data.run_requests and "before the first partition" in data.skip_message


def test_intraday_schedule_requests_the_open_day_once_per_tick():
    data = evaluate(sync_today_hourly, datetime(2025, 6, 10, 14, 5, tzinfo=BEIJING))
    [request] = data.run_requests
    assert request.partition_key == "2025-06-10"
    assert request.run_key == "intraday:2025-06-10T14:05"
    later = evaluate(sync_today_hourly, datetime(2025, 6, 10, 15, 5, tzinfo=BEIJING))
    assert later.run_requests[0].run_key != request.run_key


def test_intraday_schedule_skips_the_first_minutes_of_a_day():
    data = evaluate(sync_today_hourly, datetime(2025, 6, 10, 0, 1, tzinfo=BEIJING))
    assert not data.run_requests and "has not started yet" in data.skip_message
