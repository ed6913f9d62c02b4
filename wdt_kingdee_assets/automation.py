"""A flow's schedules and sensors: when a Beijing day of its bills is synced again.

For the production stock-out flow (others are named ``<flow>_…``, see ``flow.py``):

- ``sync_yesterday_daily`` syncs the day that just closed, shortly after midnight Beijing time.
- ``sync_today_hourly`` (off by default) keeps the open day close to WDT during the day.
- ``late_stockouts_sensor`` re-counts recent days at WDT and re-syncs a day whose count grew.
- ``held_and_failed_bills_sensor`` re-syncs a day whose bills are still held or failed, with
  growing delays and a bound on attempts.

Every run targets the flow's job (``sync_stockouts``: all four assets and their checks) for one
partition: the writer is idempotent against Kingdee, so a re-sync sends only what Kingdee does not
hold yet.

Backfills use Dagster's default policy for these assets: one run per partition (day), which the
end-to-end test asserts. Not one run for a whole range: a day is then retried, inspected and
alerted on by itself, a bad day neither redoes nor hides the good ones, and the per-partition
JSON Lines storage takes one day per output (and Dagster 1.13 records a check's result for a whole
run's range, not per day). Days run side by side up to the run queue's limits, and every API call
of every run draws from the machine's API budgets (``throttle.py``), so a backfill calls the APIs
as fast as the budgets allow and never faster; the runs' own start-up and bookkeeping overlap
other days' API calls instead of adding to them.

The sensors keep their state in the cursor (JSON) and give every run request a versioned
``run_key``: Dagster remembers a run key forever, so a key names the exact evidence that justified
the run (the sync it follows, the count or the attempt) and a later change gets a new key.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import dagster as dg

from wdt_kingdee_assets.beijing import BEIJING, day_window, start_date
from wdt_kingdee_assets.catalog import blocker_states
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.kingdee.errors import KingdeeError
from wdt_kingdee_assets.lifecycle import NOT_IN_EFFECT
from wdt_kingdee_assets.mapping import MappingConfigError
from wdt_kingdee_assets.outcomes import Failure, Outcome
from wdt_kingdee_assets.resources import KingdeeResource, WdtResource
from wdt_kingdee_assets.wdt.client import DocumentQuery
from wdt_kingdee_assets.wdt.errors import WdtError

TRIGGER_TAG = "wdt_kingdee/trigger"
ATTEMPT_TAG = "wdt_kingdee/retry_attempt"
RELEASED_TAG = "wdt_kingdee/released_by"
PARTITION_TAG = "dagster/partition"

# Shortly after midnight, not at it: the open-day read lags "now" by a couple of minutes and the
# warehouse's last scans of the day reach WDT a little late; the late-stock-outs sensor catches
# whatever arrives after this.
DAILY_CRON = "20 0 * * *"
INTRADAY_CRON = "5 * * * *"

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def int_setting(name: str, default: int) -> int:
    """Non-secret automation tunables; a bad value fails at load with the variable named."""
    value = os.environ.get(name) or str(default)
    try:
        number = int(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from exc
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {number}")
    return number


def beijing_now(moment: datetime | None = None) -> datetime:
    return (moment or datetime.now(BEIJING)).astimezone(BEIJING)


def first_day() -> date:
    return date.fromisoformat(start_date())


def _metadata(record: dg.EventLogRecord) -> dict[str, Any]:
    materialization = record.asset_materialization
    if materialization is None:
        return {}
    return {key: value.value for key, value in materialization.metadata.items()}


# --- schedules ------------------------------------------------------------------------------


def build_schedules(flow: Flow) -> list[dg.ScheduleDefinition]:
    """The flow's daily schedule (on) and intraday schedule (off by default)."""
    form = flow.form

    @dg.schedule(
        name=flow.qualified("sync_yesterday_daily"),
        job_name=flow.job_name,
        cron_schedule=DAILY_CRON,
        execution_timezone="Asia/Shanghai",
        default_status=dg.DefaultScheduleStatus.RUNNING
        if flow.schedule_on_by_default
        else dg.DefaultScheduleStatus.STOPPED,
        description=(
            "每日同步昨天 / daily sync of yesterday: at 00:20 Beijing time, syncs the Beijing day "
            f"that just closed — WDT {flow.source.english} ({flow.source.chinese}) into Kingdee "
            f"{form.plural} — with all checks."
        ),
    )
    def sync_yesterday_daily(
        context: dg.ScheduleEvaluationContext,
    ) -> dg.RunRequest | dg.SkipReason:
        # The partitions include the open day (end_offset=1), so build_schedule_from_partitioned_job
        # would pick today; the closed day is computed here from the tick's own time.
        day = beijing_now(context.scheduled_execution_time).date() - timedelta(days=1)
        if day < first_day():
            return dg.SkipReason(f"{day} is before the first partition ({start_date()})")
        return dg.RunRequest(
            partition_key=day.isoformat(),
            run_key=f"daily:{day.isoformat()}",
            tags={TRIGGER_TAG: "daily_schedule"},
        )

    @dg.schedule(
        name=flow.qualified("sync_today_hourly"),
        job_name=flow.job_name,
        cron_schedule=INTRADAY_CRON,
        execution_timezone="Asia/Shanghai",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=(
            "当天滚动同步 / intraday sync of today (off by default): every hour at :05, syncs the "
            f"open Beijing day up to a couple of minutes ago, so {form.chinese} ({form.english}s) "
            "appear in Kingdee during the day. The daily schedule still settles the whole day "
            "after midnight."
        ),
    )
    def sync_today_hourly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        now = beijing_now(context.scheduled_execution_time)
        key = now.date().isoformat()
        try:
            day_window(key, now)
        except ValueError as exc:  # the first minutes of the day: nothing to read yet
            return dg.SkipReason(str(exc))
        return dg.RunRequest(
            partition_key=key,
            run_key=f"intraday:{now:%Y-%m-%dT%H:%M}",
            tags={TRIGGER_TAG: "intraday_schedule"},
        )

    return [sync_yesterday_daily, sync_today_hourly]


# --- late stock-outs --------------------------------------------------------------------------


@dataclass
class LateRequest:
    """The run last requested for a day: after which sync (storage id) and at which WDT count."""

    sync: int
    count: int


@dataclass
class LateStockoutsCursor:
    requested: dict[str, LateRequest] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> LateStockoutsCursor:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls({day: LateRequest(**value) for day, value in raw["requested"].items()})

    def dumps(self) -> str:
        requested = {day: asdict(value) for day, value in sorted(self.requested.items())}
        return json.dumps({"requested": requested}, separators=(",", ":"))


def _latest_pull(flow: Flow, instance: dg.DagsterInstance, day: str) -> dg.EventLogRecord | None:
    raw = dg.AssetKey(flow.asset_path(flow.raw_name))
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=raw, asset_partitions=[day]), limit=1
    ).records
    return records[0] if records else None


def recount_query(flow: Flow, day: str, pulled: dict[str, Any]) -> DocumentQuery:
    """The pull's filters over the whole (closed) day.

    For a day pulled after it closed this is exactly the pull's window. A day last pulled while it
    was still open is re-counted to its end: what arrived after the pull is what the day misses.
    """
    window = day_window(day)
    start = datetime.fromisoformat(pulled["window_start"])
    end = max(datetime.fromisoformat(pulled["window_end"]), window.query_end)
    return DocumentQuery(
        method=flow.source.method,
        start_time=start,
        end_time=end,
        time_type=flow.source.time_type,
        status=pulled.get("status_filter") or None,
        warehouse_no=pulled.get("warehouse_filter") or None,
    )


def build_late_documents_sensor(
    flow: Flow, *, lookback_days: int = 7, minimum_interval_seconds: int = 900
) -> dg.SensorDefinition:
    """The flow's late-documents sensor (late stock-outs …) over the last ``lookback_days``
    closed days.

    Cost per tick: one WDT call per synced day (``page_size=1`` with ``calc_total=1``). The cursor
    remembers, per day, the sync and the count a run was requested for, so a restart with the
    saved cursor does not ask again while that run is queued or running, and a count that grows
    further (or a new sync that is short again) asks anew.
    """

    source, form = flow.source, flow.form

    @dg.sensor(
        name=flow.qualified(f"late_{flow.documents}_sensor"),
        job_name=flow.job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"迟到{source.document_chinese} / late {source.noun}s: every "
            f"{minimum_interval_seconds // 60} min, re-counts the last {lookback_days} synced "
            f"Beijing days at WDT ({source.chinese}, one order per page) with the filters of their "
            f"last pull, and re-syncs a day whose count grew, so its new {source.noun}s become "
            f"{form.chinese} ({form.english}s) in Kingdee."
        ),
    )
    def late_documents_sensor(
        context: dg.SensorEvaluationContext, wdt: WdtResource
    ) -> dg.SensorResult:
        cursor = LateStockoutsCursor.parse(context.cursor)
        yesterday = beijing_now().date() - timedelta(days=1)
        days = [
            (yesterday - timedelta(days=n)).isoformat()
            for n in range(lookback_days)
            if yesterday - timedelta(days=n) >= first_day()
        ]
        client = wdt.client(context.log.warning, patient=False)
        requests: list[dg.RunRequest] = []
        for day in days:
            record = _latest_pull(flow, context.instance, day)
            if record is None:
                continue  # never synced: the daily schedule or a backfill owns it
            pulled = _metadata(record)
            synced = pulled.get("total_count")
            if synced is None or "window_start" not in pulled:
                continue
            try:
                count = client.count(recount_query(flow, day, pulled))
            except WdtError as exc:  # throttled or down: the next tick counts again
                context.log.warning("%s: WDT could not re-count the day now: %s", day, exc)
                continue
            previous = cursor.requested.get(day)
            if count <= synced or (
                previous and previous.sync == record.storage_id and previous.count >= count
            ):
                continue
            context.log.info(
                "%s: WDT now counts %d %ss, the last sync had %d; re-syncing",
                day,
                count,
                source.noun,
                synced,
            )
            cursor.requested[day] = LateRequest(sync=record.storage_id, count=count)
            requests.append(
                dg.RunRequest(
                    partition_key=day,
                    run_key=f"late:{day}:sync{record.storage_id}:count{count}",
                    tags={
                        TRIGGER_TAG: f"late_{flow.documents}",
                        "wdt_kingdee/wdt_count": str(count),
                    },
                )
            )
        cursor.requested = {day: value for day, value in cursor.requested.items() if day in days}
        return dg.SensorResult(
            run_requests=requests,
            cursor=cursor.dumps(),
            skip_reason=None if requests else f"no late {source.noun}s in {len(days)} day(s)",
        )

    return late_documents_sensor


# --- held and failed bills ----------------------------------------------------------------------


@dataclass
class OpenDay:
    """A day whose latest write results still have held or failed bills."""

    result: int  # storage id of the latest kingdee_write_results materialization seen
    at: float  # its timestamp
    held: int
    failed: int
    transient: int = 0  # failed bills a retry may fix (no usable answer, a passing refusal)
    blockers: dict[str, str] = field(default_factory=dict)  # material → its state when written
    attempts: int = 0  # re-syncs requested by this sensor for transient failures
    requested_at: float = 0.0
    released_for: str = ""  # the material states a re-sync was last requested for
    gave_up: bool = False


@dataclass
class HeldBillsCursor:
    after: int | None = None  # last kingdee_write_results storage id read
    days: dict[str, OpenDay] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> HeldBillsCursor:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(raw["after"], {day: OpenDay(**value) for day, value in raw["days"].items()})

    def dumps(self) -> str:
        days = {day: asdict(value) for day, value in sorted(self.days.items())}
        return json.dumps({"after": self.after, "days": days}, separators=(",", ":"))


def _new_write_results(
    flow: Flow, instance: dg.DagsterInstance, after: int | None
) -> Iterator[dg.EventLogRecord]:
    """Every write-results materialization of the flow after storage id ``after``, oldest first."""
    results = dg.AssetKey(flow.asset_path(flow.results_name))
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=results, after_storage_id=after),
            limit=200,
            ascending=True,
        )
        yield from page.records
        if not page.has_more or not page.records:
            return
        after = page.records[-1].storage_id


def _in_flight(instance: dg.DagsterInstance, day: str) -> bool:
    runs = instance.get_run_records(
        dg.RunsFilter(tags={PARTITION_TAG: day}, statuses=IN_FLIGHT), limit=1
    )
    return bool(runs)


def _open_day(record: dg.EventLogRecord, previous: OpenDay | None) -> OpenDay | None:
    """The day as its latest write results leave it; None when nothing is held or failed.

    A bill in Kingdee that did not take effect (refused at submit or audit, unconfirmed) counts
    as failed: 库存不足 is transient — retried until stock arrives — like a call without an answer.
    """
    written = _metadata(record)
    held = int(written.get(Outcome.HELD, 0))
    failed = int(written.get(Outcome.FAILED, 0)) + sum(
        int(written.get(state, 0)) for state in NOT_IN_EFFECT
    )
    if not held and not failed:
        return None
    entry = previous or OpenDay(result=0, at=0.0, held=0, failed=0)
    entry.result, entry.at, entry.held, entry.failed = (
        record.storage_id,
        record.timestamp,
        held,
        failed,
    )
    entry.transient = int(written.get(f"failed_{Failure.TRANSIENT}", 0)) + int(
        written.get("not_in_effect_transient", 0)
    )
    blockers = written.get("blocking_materials")
    entry.blockers = dict(blockers) if isinstance(blockers, Mapping) else {}
    return entry


def build_held_and_failed_bills_sensor(
    flow: Flow,
    *,
    base_delay_minutes: float = 15,
    max_attempts: int = 5,
    max_age_days: int = 14,
    minimum_interval_seconds: int = 300,
    clock: Callable[[], float] = time.time,
) -> dg.SensorDefinition:
    """The held-and-failed-bills sensor.

    A day enters the cursor when its latest write results have ``held`` or ``failed`` bills and
    leaves it when a later result has none. What happens next depends on why they are open:

    * **transient** failures (no usable answer, a refusal of the moment): attempt *n* (1-based)
      is due ``base_delay × 2^(n-1)`` after the later of the latest result and the previous
      request; after ``max_attempts`` the day is left to people (the checks and the alert name
      its bills);
    * **permanent** ones that hinge on materials (missing, disabled, refused by Kingdee): no
      timer. Each tick asks Kingdee for those materials (one query for every open day) and
      re-syncs a day as soon as one of them is no longer as it was when the day was written;
    * other permanent ones (a wrong mapping, bad WDT data) are left to people at once.

    Never while a run of that day is queued or running. Days older than ``max_age_days`` are not
    retried, so a backfill of months with a missing material does not turn into months of
    re-syncs. ``clock`` is the time source for the delays (tests pass their own).
    """

    form = flow.form

    @dg.sensor(
        name=flow.qualified("held_and_failed_bills_sensor"),
        job_name=flow.job_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "暂挂/失败单据重试 / held and failed bills: re-syncs a Beijing day whose latest write "
            f"results still hold held or failed {form.chinese} ({form.english}s). A bill waiting "
            "on a material is re-synced as soon as Kingdee shows the material changed (created, "
            "enabled, audited); a transient failure after "
            f"{base_delay_minutes:g} min, then twice as long each time, at most {max_attempts} "
            "times; a refusal no retry can fix is left to people."
        ),
    )
    def held_and_failed_bills_sensor(
        context: dg.SensorEvaluationContext, kingdee: KingdeeResource
    ) -> dg.SensorResult:
        cursor = HeldBillsCursor.parse(context.cursor)
        now = clock()
        oldest = (
            datetime.fromtimestamp(now, BEIJING).date() - timedelta(days=max_age_days)
        ).isoformat()
        for record in _new_write_results(flow, context.instance, cursor.after):
            cursor.after = record.storage_id
            day = record.partition_key
            if day is None or day < oldest:
                continue
            entry = _open_day(record, cursor.days.get(day))
            if entry is None:
                if cursor.days.pop(day, None):
                    context.log.info("%s: no held or failed bills any more", day)
                continue
            cursor.days[day] = entry
        cursor.days = {day: entry for day, entry in cursor.days.items() if day >= oldest}

        states = _material_states(flow, context, kingdee, cursor.days.values())
        requests: list[dg.RunRequest] = []
        for day, entry in sorted(cursor.days.items()):
            if _in_flight(context.instance, day):
                continue
            request = _released(day, entry, states) or _transient_retry(
                context, day, entry, now, base_delay_minutes, max_attempts
            )
            if request is not None:
                requests.append(request)
        return dg.SensorResult(
            run_requests=requests,
            cursor=cursor.dumps(),
            skip_reason=None
            if requests
            else f"{len(cursor.days)} day(s) with held or failed bills, none due",
        )

    return held_and_failed_bills_sensor


def _material_states(
    flow: Flow,
    context: dg.SensorEvaluationContext,
    kingdee: KingdeeResource,
    days: Iterable[OpenDay],
) -> dict[str, str] | None:
    """What Kingdee says of every material an open day waits on; None if it cannot say now."""
    keys = sorted({key for entry in days for key in entry.blockers})
    if not keys:
        return {}
    try:
        orgs = flow.load_mapping().stock_orgs(kingdee.org_number)
        return blocker_states(kingdee.client(), keys, orgs)
    except (KingdeeError, MappingConfigError) as exc:
        context.log.warning("could not look up the materials held bills wait on: %s", exc)
        return None


def _released(day: str, entry: OpenDay, states: Mapping[str, str] | None) -> dg.RunRequest | None:
    """A re-sync once a material the day waits on is no longer as it was when it was written."""
    if not states or not entry.blockers:
        return None
    changed = {
        key: states[key]
        for key, was in sorted(entry.blockers.items())
        if states.get(key, was) != was
    }
    fingerprint = ",".join(f"{key}={state}" for key, state in changed.items())
    if not changed or fingerprint == entry.released_for:
        return None
    entry.released_for = fingerprint
    return dg.RunRequest(
        partition_key=day,
        run_key=f"bills:{day}:result{entry.result}:released:{fingerprint}",
        tags={TRIGGER_TAG: "held_and_failed_bills", RELEASED_TAG: fingerprint[:200]},
    )


def _transient_retry(
    context: dg.SensorEvaluationContext,
    day: str,
    entry: OpenDay,
    now: float,
    base_delay_minutes: float,
    max_attempts: int,
) -> dg.RunRequest | None:
    """The next backoff re-sync of a day with transient failures, when it is due."""
    if not entry.transient:
        return None
    if entry.attempts >= max_attempts:
        if not entry.gave_up:
            entry.gave_up = True
            context.log.warning(
                "%s: still %d held and %d failed bills after %d re-syncs; leaving it to "
                "people (see the day's checks)",
                day,
                entry.held,
                entry.failed,
                entry.attempts,
            )
        return None
    due = max(entry.at, entry.requested_at) + base_delay_minutes * 60 * 2**entry.attempts
    if now < due:
        return None
    entry.attempts += 1
    entry.requested_at = now
    return dg.RunRequest(
        partition_key=day,
        run_key=f"bills:{day}:result{entry.result}:attempt{entry.attempts}",
        tags={TRIGGER_TAG: "held_and_failed_bills", ATTEMPT_TAG: str(entry.attempts)},
    )


def build_automation(flow: Flow) -> tuple[list[dg.ScheduleDefinition], list[dg.SensorDefinition]]:
    """The flow's schedules and sensors, tuned by the environment (README, *Configuration*)."""
    sensors = [
        build_late_documents_sensor(
            flow, lookback_days=int_setting("WDT_KINGDEE_LATE_LOOKBACK_DAYS", 7)
        ),
        build_held_and_failed_bills_sensor(
            flow,
            base_delay_minutes=int_setting("WDT_KINGDEE_RETRY_DELAY_MINUTES", 15),
            max_attempts=int_setting("WDT_KINGDEE_RETRY_MAX_ATTEMPTS", 5),
        ),
    ]
    return build_schedules(flow), sensors
