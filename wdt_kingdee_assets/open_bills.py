"""Open bills across days: every bill not yet in effect in Kingdee, why, and what to do next.

A bill is open when the write *held* it (waiting on someone: a material to create in Kingdee, a
warehouse to map, a WDT document to fix), *failed* it (needs attention: Kingdee refused it, or
its calls failed), or left it in Kingdee *not in effect* (refused at submit or audit, read back
different, unconfirmed). A day is done when none of its bills is open.

Every write of a day replaces that day's entry, ``<data_dir>/open_bills/<flow>/<day>.jsonl``
(empty for a day that is done), so that the view over all days reads small files, never every
day's results: the cost of a write stays flat over a year of stored days. A day written before
these entries existed is judged from its stored results.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from wdt_kingdee_assets.files import DAY_FIELD, write_atomically
from wdt_kingdee_assets.flow import Flow
from wdt_kingdee_assets.frames import Column, FrameSchema
from wdt_kingdee_assets.lifecycle import NOT_IN_EFFECT
from wdt_kingdee_assets.outcomes import IN_KINGDEE, Failure, Outcome

FOLDER = "open_bills"
KEY_TEXT = 100  # a message is grouped by its first characters: the rest names the bill


class DayStatus(StrEnum):
    """Where a day stands (``wdt_kingdee/day_status`` run tag, the CLI's status column)."""

    DONE = "done"
    WAITING = "waiting_on_someone"
    ATTENTION = "needs_attention"
    NOT_SYNCED = "not_synced"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]


STATUS_LABELS = {
    DayStatus.DONE: "完成 done",
    DayStatus.WAITING: "待人处理 waiting on someone",
    DayStatus.ATTENTION: "需要处理 needs attention",
    DayStatus.NOT_SYNCED: "未同步 not synced",
}


@dataclass(frozen=True)
class CauseKind:
    name: str
    label: str
    status: DayStatus
    next_step: str


MATERIAL_MISSING = CauseKind(
    "material_missing",
    "物料缺失或未启用 material missing or not enabled in Kingdee",
    DayStatus.WAITING,
    "在金蝶 BD_MATERIAL 新增、审核并分配该物料到使用组织；物料一变，暂挂单据传感器即重推该日，"
    "或运行 wdt-kingdee retry / create, audit and assign the material to the use-org in Kingdee; "
    "the held-bills sensor re-syncs the day once it changes, or run wdt-kingdee retry",
)
HELD = CauseKind(
    "held",
    "暂挂 held by the mapping",
    DayStatus.WAITING,
    "按原因修正旺店通单据、映射文件或金蝶资料后重推 / fix the WDT document, the mapping file or "
    "Kingdee's master data as the reason says, then retry",
)
KINGDEE_REFUSED = CauseKind(
    "kingdee_refused",
    "金蝶拒绝 Kingdee refused the bill",
    DayStatus.ATTENTION,
    "按金蝶的提示修正后重推 / correct what Kingdee's message names, then retry",
)
CALLS_FAILED = CauseKind(
    "calls_failed",
    "接口调用失败 Kingdee calls failed",
    DayStatus.ATTENTION,
    "金蝶恢复后重推，不会重复写入 / retry once Kingdee answers again: nothing is written twice",
)
NOT_TAKEN_EFFECT = CauseKind(
    "not_in_effect",
    "已保存未生效 in Kingdee, not in effect",
    DayStatus.ATTENTION,
    "按金蝶的提示处理（库存不足、关账 …）后在金蝶提交、审核，或重推 / act on Kingdee's message "
    "(库存不足, 关账 …), then submit and audit in Kingdee, or retry",
)
KINDS = {
    kind.name: kind
    for kind in (MATERIAL_MISSING, HELD, KINGDEE_REFUSED, CALLS_FAILED, NOT_TAKEN_EFFECT)
}

# One day's open bills, as stored; the view adds ``age_days``.
SCHEMA = FrameSchema(
    FOLDER,
    (
        Column("flow", "str", "the flow (production_stockout …)"),
        Column("bill_no", "str", "FBillNo sent, or none for a held document in no bill"),
        Column("source_ref", "str", "the WDT document(s) it stands for ([WDT:…])"),
        Column("status", "str", "waiting_on_someone | needs_attention"),
        Column("cause_kind", "str", ", ".join(KINDS)),
        Column("causes", "json", "what it waits on, one key per cause: a material, a message"),
        Column("cause", "str", "the cause, as a person reads it"),
        Column("next_step", "str", "what to do next (中文 / English)"),
        Column("detail", "str", "Kingdee's messages or the hold reason, verbatim"),
        Column("outcome", "str", "created | already_in_kingdee | held | failed"),
        Column("settled", "str", "where the lifecycle left it, for a bill in Kingdee"),
        Column("kingdee_bill_no", "str", "its number in Kingdee, when it is there"),
        Column("written_at", "datetime", "when the write last settled it"),
    ),
)
VIEW_COLUMNS = ["flow", "day", "age_days", *SCHEMA.names[1:]]


def _head(text: str | None) -> str:
    """The part of a message that is the same for every bill it befalls."""
    text = " ".join((text or "").split())
    return text if len(text) <= KEY_TEXT else text[: KEY_TEXT - 1] + "…"


def causes_of(row: Mapping[str, Any]) -> tuple[CauseKind, list[str]]:
    """What an open result row waits on: its kind, and one key per cause (each blocking
    material, else the message)."""
    messages = [str(message) for message in row.get("messages") or []]
    blockers = [str(blocker) for blocker in row.get("blockers") or []]
    last = messages[-1] if messages else ""
    if row.get("outcome") == Outcome.HELD:
        if blockers:
            return MATERIAL_MISSING, blockers
        # A hold reason joins its reasons with "; ", each "what: which".
        return HELD, sorted({_head(part.split(":")[0]) for part in last.split("; ") if part})
    if row.get("outcome") == Outcome.FAILED:
        if row.get("failure") == Failure.TRANSIENT:
            return CALLS_FAILED, [_head(last)]
        return KINGDEE_REFUSED, blockers or [_head(last)]
    return NOT_TAKEN_EFFECT, [f"{row.get('settled')}: {_head(last)}"]


def is_open(row: Mapping[str, Any]) -> bool:
    outcome = row.get("outcome")
    if outcome in (Outcome.HELD, Outcome.FAILED):
        return True
    return outcome in IN_KINGDEE and row.get("settled") in NOT_IN_EFFECT


def day_open_bills(flow: Flow, results: pd.DataFrame) -> pd.DataFrame:
    """The open bills of one day's ``kingdee_write_results``."""
    rows = []
    for row in results.to_dict("records"):
        if not is_open(row):
            continue
        kind, keys = causes_of(row)
        rows.append(
            {
                "flow": flow.name,
                "bill_no": row["bill_no"],
                "source_ref": row["source_ref"],
                "status": kind.status,
                "cause_kind": kind.name,
                "causes": keys,
                "cause": f"{kind.label}: {', '.join(keys)}",
                "next_step": kind.next_step,
                "detail": " | ".join(str(m) for m in row.get("messages") or []),
                "outcome": row["outcome"],
                "settled": row.get("settled"),
                "kingdee_bill_no": row.get("kingdee_bill_no"),
                "written_at": row.get("written_at"),
            }
        )
    return SCHEMA.frame(rows)


def status_of(open_bills: pd.DataFrame) -> DayStatus:
    """A day's status from its open bills: needs attention beats waiting on someone."""
    statuses = set(open_bills["status"])
    if DayStatus.ATTENTION in statuses:
        return DayStatus.ATTENTION
    return DayStatus.WAITING if statuses else DayStatus.DONE


def entry_path(data_dir: Path, flow: Flow, day: str) -> Path:
    return data_dir / FOLDER / flow.name / f"{day}.jsonl"


def record_day(
    data_dir: Path, flow: Flow, day: str, open_bills: pd.DataFrame, file_mode: str
) -> Path:
    """Replace the day's entry with ``open_bills`` (what the write just left)."""
    path = entry_path(data_dir, flow, day)
    write_atomically(
        path, lambda handle: SCHEMA.write_jsonl(open_bills, handle, {DAY_FIELD: day}), file_mode
    )
    return path


def _results_path(data_dir: Path, flow: Flow, day: str) -> Path:
    return data_dir / flow.results_schema.name / f"{day}.jsonl"


def stored_days(data_dir: Path, flow: Flow) -> list[str]:
    """Every day with stored results or an entry, oldest first."""
    days = {
        path.stem
        for folder in (data_dir / FOLDER / flow.name, data_dir / flow.results_schema.name)
        if folder.is_dir()
        for path in folder.glob("*.jsonl")
    }
    return sorted(days)


def read_day_open_bills(data_dir: Path, flow: Flow, day: str) -> pd.DataFrame | None:
    """The day's open bills as last recorded (or judged from its stored results); None when
    the day was never written."""
    entry = entry_path(data_dir, flow, day)
    if entry.exists():
        with entry.open(encoding="utf-8") as stream:
            return SCHEMA.read_jsonl(stream)
    results = _results_path(data_dir, flow, day)
    if not results.exists():
        return None
    with results.open(encoding="utf-8") as stream:
        return day_open_bills(flow, flow.results_schema.read_jsonl(stream))


def day_statuses(
    data_dir: Path, flows: Iterable[Flow], days: Iterable[str]
) -> list[tuple[Flow, str, DayStatus, pd.DataFrame]]:
    """(flow, day, status, open bills) for each flow and day asked."""
    answer = []
    for flow in flows:
        for day in days:
            found = read_day_open_bills(data_dir, flow, day)
            if found is None:
                answer.append((flow, day, DayStatus.NOT_SYNCED, SCHEMA.frame([])))
            else:
                answer.append((flow, day, status_of(found), found))
    return answer


def open_bills_view(
    data_dir: Path,
    flows: Iterable[Flow],
    today: date,
    replaced: Mapping[tuple[str, str], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Every open bill of every stored day and flow, oldest day first, with its age in days.
    ``replaced``: (flow name, day) → open bills newer than what is stored (the write in progress)."""
    replaced = dict(replaced or {})
    parts = []
    for flow in flows:
        days = set(stored_days(data_dir, flow)) | {d for f, d in replaced if f == flow.name}
        for day in sorted(days):
            found = replaced.get((flow.name, day))
            if found is None:
                found = read_day_open_bills(data_dir, flow, day)
            if found is not None and not found.empty:
                parts.append(found.assign(day=day))
    if not parts:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in VIEW_COLUMNS})
    view = pd.concat(parts, ignore_index=True)
    view["age_days"] = [(today - date.fromisoformat(day)).days for day in view["day"]]
    return view[VIEW_COLUMNS]


def by_cause(view: pd.DataFrame) -> pd.DataFrame:
    """One row per cause (a material, a message): how many bills over how many days it holds
    back, most bills first — "material 6909956181365 → 7 bills over 3 days"."""
    groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {"bills": [], "days": set(), "flows": set(), "oldest": 0}
    )
    for row in view.to_dict("records"):
        for key in row["causes"] or []:
            group = groups[(row["cause_kind"], key)]
            group["bills"].append(row["bill_no"] or row["source_ref"])
            group["days"].add(row["day"])
            group["flows"].add(row["flow"])
            group["oldest"] = max(group["oldest"], int(row["age_days"]))
    rows = [
        {
            "status": KINDS[kind].status.value,
            "cause_kind": kind,
            "cause": f"{KINDS[kind].label}: {key}",
            "key": key,
            "bills": len(group["bills"]),
            "days": len(group["days"]),
            "oldest_age_days": group["oldest"],
            "flows": ", ".join(sorted(group["flows"])),
            "first_day": min(group["days"]),
            "last_day": max(group["days"]),
            "bill_numbers": ", ".join(str(bill) for bill in group["bills"]),
            "next_step": KINDS[kind].next_step,
        }
        for (kind, key), group in groups.items()
    ]
    columns = [
        "status", "cause_kind", "cause", "key", "bills", "days", "oldest_age_days", "flows",
        "first_day", "last_day", "bill_numbers", "next_step",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["bills", "days", "key"], ascending=[False, False, True]).reset_index(
        drop=True
    )


def summary_text(open_bills: pd.DataFrame, limit: int = 5) -> str:
    """One line a person can act on: "2 bills need attention (…); 7 wait on someone (…)"."""
    if open_bills.empty:
        return "当日完成 / the day is done: every bill is in effect in Kingdee"
    parts = []
    for status, words in (
        (DayStatus.ATTENTION, "需要处理 need attention"),
        (DayStatus.WAITING, "待人处理 wait on someone"),
    ):
        rows = open_bills[open_bills["status"] == status]
        if rows.empty:
            continue
        causes = by_cause(rows.assign(day="-", age_days=0))
        shown = "; ".join(
            f"{cause} ({bills} bill(s))"
            for cause, bills in zip(causes["cause"][:limit], causes["bills"][:limit], strict=True)
        )
        more = f"; … +{len(causes) - limit} more cause(s)" if len(causes) > limit else ""
        steps = " / ".join(dict.fromkeys(KINDS[kind].next_step for kind in rows["cause_kind"]))
        parts.append(f"{len(rows)} 张单据{words}: {shown}{more}. 下一步 next: {steps}")
    return " || ".join(parts)
