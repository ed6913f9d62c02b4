"""Changes in WDT after a sync, found as they happen: a sensor reads the documents WDT says were
modified since its last tick (``time_type=3``, 最后修改时间, every status — a cancelled document is
one) and asks for the comparison of each synced day they touch: the day a document is on now,
and the day whose sync wrote its bill (a document moved to another day, or cancelled, is no longer
in that day's pull, but its bill is still in that day's write results).

A change the day's last sync already saw (modified before that sync) asks for nothing. The run
is the preview job (report: the drift check fails and alerts) or, with ``on_drift: correct``, the
correct job. Cost per tick: the modified documents' pages, and one file per synced day read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dagster as dg

from wdt_kingdee_assets.automation import TRIGGER_TAG, beijing_now, first_day
from wdt_kingdee_assets.beijing import BEIJING
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.mapping import MappingConfigError
from wdt_kingdee_assets.normalize import parse_wdt_datetime
from wdt_kingdee_assets.resources import WdtResource
from wdt_kingdee_assets.storage import PartitionedJsonlIOManager
from wdt_kingdee_assets.wdt.client import DocumentQuery
from wdt_kingdee_assets.wdt.errors import WdtError
from wdt_kingdee_assets.wdt.pull import pull_documents

MODIFIED = 3  # time_type: 最后修改时间
# WDT's modified times reach its index a little late [G]: each tick re-reads this much of the last.
OVERLAP = timedelta(minutes=2)
SETTLE = timedelta(minutes=2)  # nor is "now" read: the newest minutes may still be written


@dataclass
class DriftCursor:
    since: str | None = None  # the end of the last window read (Beijing, ISO)
    requested: dict[str, str] = field(default_factory=dict)  # day → newest change asked for

    @classmethod
    def parse(cls, text: str | None) -> DriftCursor:
        if not text:
            return cls()
        raw = json.loads(text)
        return cls(raw.get("since"), dict(raw.get("requested") or {}))

    def dumps(self) -> str:
        return json.dumps(
            {"since": self.since, "requested": dict(sorted(self.requested.items()))},
            separators=(",", ":"),
        )


def _synced_numbers(
    flow: Flow, io_manager: PartitionedJsonlIOManager, days: list[str]
) -> dict[str, str]:
    """Document number → the synced day whose write results hold its bill."""
    schema = flow.results_schema
    found: dict[str, str] = {}
    for day in days:
        path = io_manager.path_for(schema.name, day)
        if path.exists():
            with path.open(encoding="utf-8") as stream:
                for ref in schema.read_jsonl_column(stream, "source_ref"):
                    if ref:
                        found[str(ref)] = day
    return found


def _synced_at(flow: Flow, instance: dg.DagsterInstance, day: str) -> datetime | None:
    key = dg.AssetKey(flow.asset_path(flow.results_name))
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
    ).records
    return datetime.fromtimestamp(records[0].timestamp, BEIJING) if records else None


def build_drift_sensor(
    flow: Flow,
    jobs: list,
    *,
    lookback_days: int = 7,
    minimum_interval_seconds: int = 900,
    clock: Callable[[], datetime] | None = None,
) -> dg.SensorDefinition:
    """``jobs``: the flow's preview and correct jobs (``drift_assets.build_drift_jobs``);
    ``clock``: now (tests move it)."""
    source = flow.source

    @dg.sensor(
        name=flow.qualified(f"{flow.documents}_changed_in_wdt_sensor"),
        jobs=jobs,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"旺店通事后变更 / {source.noun}s changed in WDT after their sync: every "
            f"{minimum_interval_seconds // 60} min, reads what WDT modified since (最后修改时间, "
            f"every status) and compares each synced day of the last {lookback_days} it touches "
            f"with Kingdee ({flow.preview_job_name}; {flow.correct_job_name} with on_drift: "
            "correct). A drift fails the day's kingdee_agrees_with_wdt check, which alerts."
        ),
    )
    def drift_sensor(
        context: dg.SensorEvaluationContext,
        wdt: WdtResource,
        io_manager: PartitionedJsonlIOManager,
    ) -> dg.SensorResult:
        cursor = DriftCursor.parse(context.cursor)
        now = beijing_now(clock() if clock else None)
        earliest = now - timedelta(days=lookback_days)
        start = (
            max(datetime.fromisoformat(cursor.since) - OVERLAP, earliest)
            if cursor.since
            else earliest
        )
        end = now - SETTLE
        days = [
            (now.date() - timedelta(days=n)).isoformat()
            for n in range(lookback_days + 1)
            if now.date() - timedelta(days=n) >= first_day()
        ]
        query = DocumentQuery(
            method=source.method,
            start_time=start,
            end_time=end,
            time_type=MODIFIED,
            status=",".join(map(str, sorted(source.method.statuses))),
        )
        try:
            on_drift = flow.load_mapping().on_drift
            changed = pull_documents(wdt.client(context.log.warning, patient=False), query).orders
        except (WdtError, MappingConfigError) as exc:
            context.log.warning("could not read WDT's changes now: %s", exc)
            return dg.SensorResult(cursor=cursor.dumps(), skip_reason=f"WDT not read: {exc}")
        synced = _synced_numbers(flow, io_manager, days)
        newest: dict[str, datetime] = {}
        for order in changed:
            modified = parse_wdt_datetime(order.get("modified"))
            if modified is None:
                continue
            touched = {synced.get(str(order.get(source.number)))}
            moment = parse_wdt_datetime(order.get(source.time_field))
            if moment is not None and moment.date().isoformat() in synced.values():
                touched.add(moment.date().isoformat())
            for day in touched - {None}:
                newest[day] = max(newest.get(day, modified), modified)
        job = flow.correct_job_name if on_drift == "correct" else flow.preview_job_name
        requests = []
        for day, modified in sorted(newest.items()):
            stamp = modified.isoformat()
            at = _synced_at(flow, context.instance, day)
            # WDT's times have whole seconds: a change in the sync's own second may be after it.
            if at is not None and modified + timedelta(seconds=1) <= at:
                continue  # the day's last sync already read it
            if cursor.requested.get(day, "") >= stamp:
                continue
            cursor.requested[day] = stamp
            requests.append(
                dg.RunRequest(
                    job_name=job,
                    partition_key=day,
                    run_key=f"drift:{day}:{stamp}",
                    tags={TRIGGER_TAG: f"{flow.documents}_changed_in_wdt"},
                )
            )
        cursor.since = end.isoformat()
        cursor.requested = {day: stamp for day, stamp in cursor.requested.items() if day in days}
        return dg.SensorResult(
            run_requests=requests,
            cursor=cursor.dumps(),
            skip_reason=None if requests else f"no {source.noun} changed after its sync",
        )

    return drift_sensor
