"""A small Kingdee K3Cloud WebAPI client: BatchSave for writes, ExecuteBillQuery for look-ups.

Two auth modes (reference §2): ``signature`` signs every POST with the official SDK's headers
(no login call); ``session`` logs in once with ``AuthService.LoginBySign`` and then rides the
session. Reads are retried (bounded, jittered backoff) and, in session mode, replayed once after
a fresh login. Writes are never retried: a write without a usable answer raises
:class:`KingdeeUnknownOutcome` and the caller reconciles by FBillNo, because WebAPI saves are not
idempotent (reference §7).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import requests

from wdt_kingdee_assets.kingdee.errors import (
    KingdeeAuthError,
    KingdeeProtocolError,
    KingdeeQueryError,
    KingdeeSessionLost,
    KingdeeTransientError,
    KingdeeUnknownOutcome,
)
from wdt_kingdee_assets.kingdee.filters import all_of, field_cmp, field_eq, field_in
from wdt_kingdee_assets.kingdee.forms import KingdeeForm
from wdt_kingdee_assets.kingdee.signing import login_sign, sdk_headers
from wdt_kingdee_assets.throttle import Backoff, shared_limiter, shared_threads

BATCH_SAVE = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.BatchSave"
SUBMIT = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Submit"
AUDIT = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Audit"
UNAUDIT = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.UnAudit"
DELETE = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.Delete"
EXECUTE_BILL_QUERY = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery"
LOGIN_BY_SIGN = "Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginBySign"

SESSION_COOKIE = "kdservice-sessionid"
# The integration's share of the data center's WebAPI server threads. Kingdee's guidance for
# BatchSave is BatchCount ≤ 5 server threads [G, second-hand]: 4 stays inside it under either
# reading (5 per data center, or 5 per caller) and leaves a thread for the people and other
# integrations working in the same data center at the same time.
DEFAULT_THREADS = 4
MAX_THREADS = 5
# MsgCode 1 (上下文丢失): bad credentials in signature mode, an expired session in session mode.
MSG_CONTEXT_LOST = 1
# 13 网控冲突 and 14 调用限制 say "not now", so a read may try again later.
_TRANSIENT_MSG_CODES = frozenset({13, 14})
# A BatchSave answer judges bills one by one with MsgCode 0 or 11 (验证失败). Any other code is
# about the call itself (2 没有权限, 4 异常, 6 数据库操作失败, 7 许可错误, 12 不可操作, ...): its
# errors arrive with DIndex 0, which then names no bill (real-servers-vs-ours #6).
_PER_BILL_MSG_CODES = frozenset({0, 11})
# Documented Limit caps are 2000 (older docs) and 10000 (newer); the server may cap silently.
_OLD_LIMIT_CAP = 2000
_NEW_LIMIT_CAP = 10000
_SNIPPET = 200

DEFAULT_SAVE_OPTIONS: Mapping[str, Any] = {
    "NumberSearch": True,
    "ValidateFlag": True,
    "IsDeleteEntry": True,
    "IsVerifyBaseDataField": True,
    # Quantities are rounded to their unit's precision before they are sent (units.py): should
    # that ever be wrong, Kingdee refuses the bill instead of rounding it silently.
    "IsControlPrecision": True,
    "NeedReturnFields": ["FBillNo"],
}


@dataclass(frozen=True)
class SavedBill:
    """One ``SuccessEntitys`` item: the model at ``dindex`` was saved as ``fid``/``number``."""

    dindex: int
    fid: int
    number: str


@dataclass
class BatchSaveResult:
    """A BatchSave answer, matched to the sent models by DIndex (reference §4).

    ``errors`` holds each failed bill's messages, prefixed with the FieldName when Kingdee gave
    one. ``call_errors`` holds messages about the call rather than a bill: a call-level MsgCode
    (see :attr:`call_failed`) or an error whose DIndex is out of range. A bill in neither
    ``saved`` nor ``errors`` got no answer: see :meth:`unanswered`.
    """

    saved: list[SavedBill]
    errors: dict[int, list[str]]
    msg_code: int | None
    is_success: bool
    raw: dict
    call_errors: list[str] = field(default_factory=list)

    def unanswered(self, model_count: int) -> list[int]:
        """DIndexes of sent models that Kingdee neither saved nor rejected: reconcile these."""
        answered = {bill.dindex for bill in self.saved} | set(self.errors)
        return [index for index in range(model_count) if index not in answered]

    @property
    def call_failed(self) -> bool:
        """Kingdee refused the call as a whole (permission, licence, exception, database …)."""
        return self.msg_code is not None and self.msg_code not in _PER_BILL_MSG_CODES


@dataclass(frozen=True)
class MaterialInfo:
    """One BD_MATERIAL row in one use-org."""

    number: str
    name: str
    base_unit: str | None
    forbidden: bool
    document_status: str
    material_id: int
    batch_managed: bool = False  # FIsBatchManage: Kingdee wants a lot (FLot) on every line
    shelf_life: bool = False  # FIsKFPeriod: entries carry production and expiry dates
    code: str | None = None  # the WDT code it was found by (MaterialCodes.by_field), if any

    @property
    def usable(self) -> bool:
        """Kingdee only accepts a material that is enabled (FForbidStatus A) and audited (C)."""
        return not self.forbidden and self.document_status == "C"

    @property
    def state(self) -> str:
        return material_state(self)


def material_state(info: MaterialInfo | None) -> str:
    """A material's state as a short text, to tell later whether it has changed: ``absent``,
    ``disabled``, ``unaudited:<status>`` or ``usable:<base unit>``."""
    if info is None:
        return "absent"
    if info.forbidden:
        return "disabled"
    if info.document_status != "C":
        return f"unaudited:{info.document_status}"
    return (
        f"usable:{info.base_unit or ''}"
        + (":lots" if info.batch_managed else "")
        + (":shelf" if info.shelf_life else "")
    )


@dataclass(frozen=True)
class UnitInfo:
    """One BD_UNIT row: a unit's number, name and the precision Kingdee stores quantities at."""

    number: str
    name: str
    precision: int


@dataclass(frozen=True)
class SavedEntry:
    """One entry line of a saved bill, as Kingdee reports it."""

    fid: int
    bill_no: str
    material_number: str
    qty: Decimal
    reference: str = ""  # the reference field of the entry's bill
    stock: str = ""  # the entry's warehouse (FStockId number)
    lot: str | None = None  # its lot; None when the material keeps none
    date: str = ""  # its bill's FDate, yyyy-MM-dd
    document_status: str = ""  # its bill's FDocumentStatus
    stock_org: str = ""  # its bill's FStockOrgId number


@dataclass(frozen=True)
class BillRecord:
    """One bill header as Kingdee holds it: its identity and the reference text it carries."""

    fid: int
    number: str
    reference: str  # the reference field's text ('' when empty)
    document_status: str


class ClientStats:
    """Thread-safe counters for run metadata: HTTP calls, read retries, session re-logins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {"calls": 0, "retries": 0, "relogins": 0}

    def bump(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    @property
    def calls(self) -> int:
        return self._counts["calls"]

    @property
    def retries(self) -> int:
        return self._counts["retries"]

    @property
    def relogins(self) -> int:
        return self._counts["relogins"]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def __repr__(self) -> str:
        return f"ClientStats({self.snapshot()})"


def _short(service: str) -> str:
    return service.rsplit(".", 1)[-1]


def _chunks(
    values: Iterable[str],
    size: int,
    *,
    weights: Mapping[str, int] | None = None,
    capacity: int = 0,
) -> Iterator[list[str]]:
    """The distinct values in order, at most ``size`` to a chunk.

    With ``weights``, a chunk also closes before its total weight would pass ``capacity`` (a
    value heavier than that gets a chunk of its own): how read-backs keep each IN-list's
    expected rows within one page.
    """
    chunk: list[str] = []
    load = 0
    for value in dict.fromkeys(values):
        weight = weights.get(value, 0) if weights else 0
        if chunk and (len(chunk) >= size or (weights and load + weight > capacity)):
            yield chunk
            chunk, load = [], 0
        chunk.append(value)
        load += weight
    if chunk:
        yield chunk


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is_true(value: Any) -> bool:
    """A Kingdee boolean cell: true, 1 or the strings "true"/"1" (builds differ)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return value is True or value == 1


def _is_false(value: Any) -> bool:
    """Kingdee writes booleans natively or as strings (reference §3-§4)."""
    return value is False or (isinstance(value, str) and value.strip().lower() == "false")


def _wire_value(value: Any) -> Any:
    """JSON for what ``json`` cannot encode: a Decimal as a number when that number is exact.

    FQty must reach Kingdee as the quantity the source said; a Decimal whose float text would
    differ (more than ~15 significant digits) goes as its exact string, which Kingdee also parses.
    """
    if isinstance(value, Decimal):
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _response_status(body: Any) -> dict | None:
    """The ``ResponseStatus`` of an error envelope, bare or wrapped as ``[{..}]`` / ``[[{..}]]``.

    Query rows are lists of scalars, so a dict in the first or second level is always an envelope.
    """
    node = body
    for _ in range(3):
        if isinstance(node, dict):
            result = node.get("Result")
            status = result.get("ResponseStatus") if isinstance(result, dict) else None
            return status if isinstance(status, dict) else None
        if isinstance(node, list) and node and isinstance(node[0], (list, dict)):
            node = node[0]
        else:
            return None
    return None


def _error_text(error: Mapping[str, Any]) -> str:
    """An ``Errors`` item as one line, prefixed with its FieldName when Kingdee named one."""
    field_name, text = error.get("FieldName"), str(error.get("Message") or "")
    return f"{field_name}: {text}" if field_name else text


class KingdeeClient:
    """Talks to one Kingdee data center as one user. Safe to share between threads."""

    def __init__(
        self,
        base_url: str,
        acct_id: str,
        username: str,
        app_id: str,
        app_secret: str,
        *,
        lcid: int = 2052,
        org_number: str = "100",
        auth_mode: Literal["signature", "session"] = "signature",
        connect_timeout: float = 10,
        read_timeout: float = 60,
        write_timeout: float = 300,
        calls_per_minute: float = 0,
        threads: int = DEFAULT_THREADS,
        backoff: Backoff | None = None,
        in_list_size: int = 500,
        page_limit: int = 2000,
        session: requests.Session | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if auth_mode not in ("signature", "session"):
            raise ValueError(f"auth_mode must be 'signature' or 'session', not {auth_mode!r}")
        if in_list_size < 1 or page_limit < 1:
            raise ValueError("in_list_size and page_limit must be positive")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.acct_id = acct_id
        self.username = username
        self.app_id = app_id
        self._app_secret = app_secret
        self.lcid = lcid
        self.org_number = org_number
        self.auth_mode = auth_mode
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.backoff = backoff or Backoff()
        self.in_list_size = in_list_size
        # Above the newest documented cap the server would return short pages forever.
        self.page_limit = min(page_limit, _NEW_LIMIT_CAP)
        self.stats = ClientStats()
        self._log = log or (lambda message: None)  # each retry, as it happens
        self._http = session or requests.Session()
        account = ("kingdee", self.base_url, acct_id, username)
        self._limiter = shared_limiter(account, calls_per_minute)
        # Every call below waits for one of the data center's threads lent to this user.
        self.threads = shared_threads(account, threads)
        self._state_lock = threading.Lock()
        self._login_lock = threading.Lock()
        self._sid = ""
        self._logins = 0

    def __repr__(self) -> str:
        return (
            f"KingdeeClient(base_url={self.base_url!r}, acct_id={self.acct_id!r}, "
            f"username={self.username!r}, app_id={self.app_id!r}, auth_mode={self.auth_mode!r})"
        )

    # -- public verbs -----------------------------------------------------------------------

    def batch_save(
        self, form_id: str, models: list[dict], *, options: Mapping[str, Any] | None = None
    ) -> BatchSaveResult:
        """Save ``models`` in one BatchSave call; never retried (see the module docstring).

        Raises :class:`KingdeeUnknownOutcome` when the answer is unusable (reconcile by FBillNo)
        and :class:`KingdeeAuthError` when the credentials are refused (nothing was saved).
        """
        payload = self.batch_save_payload(form_id, models, options=options)
        return self._write(BATCH_SAVE, payload, len(models))

    @staticmethod
    def batch_save_payload(
        form_id: str, models: list[dict], *, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The body of a BatchSave call of ``models``, exactly as ``batch_save`` sends it."""
        data = {**DEFAULT_SAVE_OPTIONS, **(options or {}), "Model": list(models)}
        return {"formid": form_id, "data": data}

    def submit(
        self, form_id: str, bill_nos: Iterable[str] = (), *, fids: Iterable[int] = ()
    ) -> BatchSaveResult:
        """Submit (提交) saved bills: A or D → B. Per bill, like a save; never retried."""
        return self._operate(SUBMIT, form_id, bill_nos, fids)

    def audit(
        self, form_id: str, bill_nos: Iterable[str] = (), *, fids: Iterable[int] = ()
    ) -> BatchSaveResult:
        """Audit (审核) submitted bills: B → C, the moment stock moves."""
        return self._operate(AUDIT, form_id, bill_nos, fids)

    def unaudit(
        self, form_id: str, bill_nos: Iterable[str] = (), *, fids: Iterable[int] = ()
    ) -> BatchSaveResult:
        """UnAudit (反审核) audited bills: C → D, the stock movement reversed."""
        return self._operate(UNAUDIT, form_id, bill_nos, fids)

    def delete(
        self, form_id: str, bill_nos: Iterable[str] = (), *, fids: Iterable[int] = ()
    ) -> BatchSaveResult:
        """Delete (删除) bills not submitted or audited (A or D)."""
        return self._operate(DELETE, form_id, bill_nos, fids)

    def _operate(
        self, service: str, form_id: str, bill_nos: Iterable[str], fids: Iterable[int]
    ) -> BatchSaveResult:
        """One operation on bills named by number or by FID (one or the other). ``Numbers`` is
        an array, ``Ids`` a comma string (reference §4). By FID where a number can be
        ambiguous: a coding rule per stock org may give two orgs' bills the same number."""
        numbers, ids = list(bill_nos), [int(fid) for fid in fids]
        if bool(numbers) == bool(ids):
            raise ValueError(f"{_short(service)}: name the bills by number or by FID, not both")
        data = {"CreateOrgId": 0, "Numbers": numbers, "Ids": ",".join(map(str, ids))}
        return self._write(service, {"formid": form_id, "data": data}, len(numbers or ids))

    def _write(self, service_name: str, payload: dict, count: int) -> BatchSaveResult:
        """One call that changes Kingdee, answered per bill by DIndex; never retried.

        Raises :class:`KingdeeUnknownOutcome` when the answer is unusable (reconcile before
        anything is sent again) and :class:`KingdeeAuthError` when the credentials are refused.
        """
        service = _short(service_name)
        self._ensure_session()
        sid_used = self._sid
        try:
            body = self._exchange(service_name, payload, self.write_timeout)
        except KingdeeTransientError as exc:
            raise KingdeeUnknownOutcome(None, exc.messages, service, exc.cause) from exc
        except KingdeeProtocolError as exc:
            raise KingdeeUnknownOutcome(None, exc.messages, service, "malformed") from exc
        status = _response_status(body)
        if status is None:
            raise KingdeeUnknownOutcome(
                None,
                [f"no ResponseStatus in the answer: {self._snippet(body)}"],
                service,
                "malformed",
            )
        msg_code = _as_int(status.get("MsgCode"))
        if msg_code == MSG_CONTEXT_LOST:
            if self.auth_mode == "signature":
                raise KingdeeAuthError(msg_code, self._messages(status), service)
            self._forget_session(sid_used)
            # The server refused before saving, but reference §7 advises reconciling writes first.
            raise KingdeeUnknownOutcome(msg_code, self._messages(status), service, "session_lost")
        if msg_code in _TRANSIENT_MSG_CODES:
            # When MsgCode 14 fires is a guess (reference §7): reconciling is safe either way.
            raise KingdeeUnknownOutcome(msg_code, self._messages(status), service, "throttled")
        return self._batch_result(body, status, msg_code, count)

    def execute_bill_query(
        self,
        form_id: str,
        field_keys: Sequence[str],
        filter_string: str = "",
        *,
        order_string: str = "",
    ) -> list[list[Any]]:
        """All rows of the query, paged with StartRow/Limit. Decimals arrive as ``Decimal``.

        A short page ends the scan when ``page_limit`` is within the older 2000-row cap; above it
        a server honouring only that cap would also return short pages, so an empty page ends it.
        """
        keys = [field_keys] if isinstance(field_keys, str) else list(field_keys)
        if not keys:
            raise ValueError("field_keys must not be empty")
        rows: list[list[Any]] = []
        start = 0
        short_page_ends = self.page_limit <= _OLD_LIMIT_CAP
        while True:
            query = {
                "FormId": form_id,
                "FieldKeys": ",".join(keys),
                "FilterString": filter_string,
                "OrderString": order_string,
                "TopRowCount": 0,
                "StartRow": start,
                "Limit": self.page_limit,
                "SubSystemId": "",
            }
            page = self._read(EXECUTE_BILL_QUERY, {"data": query})
            if not isinstance(page, list) or not all(isinstance(row, list) for row in page):
                raise KingdeeProtocolError(
                    None, [f"rows expected, got {self._snippet(page)}"], _short(EXECUTE_BILL_QUERY)
                )
            rows.extend(page)
            start += len(page)
            if not page or (short_page_ends and len(page) < self.page_limit):
                return rows

    def find_bills(
        self,
        form: KingdeeForm,
        bill_nos: Iterable[str],
        *,
        orgs: Sequence[str],
        reference_field: str | None = None,
        day: date | None = None,
        bill_type: str | None = None,
    ) -> list[BillRecord]:
        """Bills of the stock orgs ``orgs`` numbered one of ``bill_nos`` and, given ``day`` and
        ``bill_type``, every bill of that type dated ``day``: in FID order, each once.

        Scoped to the orgs: a bill with the same number in another org is not ours
        (real-servers-vs-ours #11). The day's bills are how a bill is found whatever number
        Kingdee's coding rule gave it (by the reference it carries); they come with the first
        IN-list's query (an OR), so looking by reference costs no call more than by number.
        Kingdee's collation is usually case-insensitive, so a row may differ from the number
        asked for by case; callers compare numbers case-insensitively. ``reference_field``
        defaults to the form's remark field.
        """
        on_day = ""
        if day is not None:
            if bill_type is None:
                raise ValueError("a day's bills are looked up with their bill type")
            on_day = self._day_filter(form, day, bill_type)
        chunks = list(_chunks(bill_nos, self.in_list_size)) or [[]]
        found: dict[int, BillRecord] = {}
        for index, chunk in enumerate(chunks):
            clauses = [field_in("FBillNo", chunk)] if chunk else []
            if on_day and index == 0:
                clauses.append(on_day)
            if not clauses:
                break
            either = clauses[0] if len(clauses) == 1 else " or ".join(f"({c})" for c in clauses)
            for record in self._bill_records(
                form,
                all_of(field_in(f"{form.stock_org}.FNumber", orgs), either),
                reference_field or form.note,
            ):
                found.setdefault(record.fid, record)
        return [found[fid] for fid in sorted(found)]

    def bill_statuses(
        self, form: KingdeeForm, fids: Iterable[int], *, reference_field: str | None = None
    ) -> list[BillRecord]:
        """The bills with these FIDs as Kingdee holds them now (number, reference, document
        status), in FID order; a FID Kingdee no longer has is absent."""
        found: list[BillRecord] = []
        for chunk in _chunks((str(fid) for fid in fids), self.in_list_size):
            found += self._bill_records(
                form, field_in("FID", [int(fid) for fid in chunk]), reference_field or form.note
            )
        return sorted({record.fid: record for record in found}.values(), key=lambda r: r.fid)

    @staticmethod
    def _day_filter(form: KingdeeForm, day: date, bill_type: str) -> str:
        """One bill type's bills dated ``day``; FDate compared as a range, so a date stored with a
        time of day is inside too."""
        return all_of(
            field_cmp(form.date, ">=", day.isoformat()),
            field_cmp(form.date, "<", date.fromordinal(day.toordinal() + 1).isoformat()),
            field_eq(f"{form.bill_type}.FNumber", bill_type),
        )

    def _bill_records(
        self, form: KingdeeForm, filter_string: str, reference_field: str
    ) -> list[BillRecord]:
        keys = ["FID", "FBillNo", reference_field, "FDocumentStatus"]
        # Ordered by the key: a page boundary cannot skip or repeat a row (#13).
        rows = self.execute_bill_query(form.form_id, keys, filter_string, order_string="FID")
        return [
            BillRecord(
                fid=int(row[0]),
                number=str(row[1] or ""),
                reference=str(row[2] or ""),
                document_status=str(row[3] or "").strip().upper(),
            )
            for row in rows
        ]

    def find_materials(
        self, numbers: Iterable[str], use_org: str, *, by_field: str | None = None
    ) -> dict[str, MaterialInfo]:
        """FNumber → material in ``use_org``; a number missing from the result is not in Kingdee.

        With ``by_field`` (a BD_MATERIAL field holding the WDT code, ``MaterialCodes.by_field``)
        ``numbers`` are such codes, and the result is keyed by them."""
        keys = [
            "FMATERIALID",
            "FNumber",
            "FName",
            "FForbidStatus",
            "FDocumentStatus",
            "FBaseUnitId.FNumber",
            "FIsBatchManage",
            "FIsKFPeriod",
            *([by_field] if by_field else []),
        ]
        found: dict[str, MaterialInfo] = {}
        for chunk in _chunks(numbers, self.in_list_size):
            filter_string = all_of(
                field_in(by_field or "FNumber", chunk), field_eq("FUseOrgId.FNumber", use_org)
            )
            rows = self.execute_bill_query(
                "BD_MATERIAL", keys, filter_string, order_string="FMATERIALID"
            )
            for row in rows:
                unit = str(row[5] or "").strip()
                code = str(row[8] or "").strip() if by_field else None
                info = MaterialInfo(
                    number=str(row[1]),
                    name=str(row[2] or ""),
                    base_unit=unit or None,
                    forbidden=str(row[3]).strip().upper() == "B",
                    document_status=str(row[4] or "").strip().upper(),
                    material_id=int(row[0]),
                    batch_managed=_is_true(row[6]),
                    shelf_life=_is_true(row[7]),
                    code=code,
                )
                key = code if by_field else info.number
                current = found.get(key)
                if current is None or (info.usable and not current.usable):
                    found[key] = info
        return found

    def find_units(self, numbers: Iterable[str]) -> dict[str, UnitInfo]:
        """Unit number (case-folded) → BD_UNIT record; a unit missing from it is not in Kingdee."""
        found: dict[str, UnitInfo] = {}
        for chunk in _chunks(numbers, self.in_list_size):
            rows = self.execute_bill_query(
                "BD_UNIT",
                ["FUNITID", "FNumber", "FName", "FPrecision"],
                field_in("FNumber", chunk),
                order_string="FUNITID",
            )
            for row in rows:
                unit = UnitInfo(str(row[1]), str(row[2] or ""), int(row[3] or 0))
                found[unit.number.casefold()] = unit
        return found

    def bill_entries(
        self,
        form: KingdeeForm,
        fids: Iterable[int],
        expected_entries: Mapping[int, int] | None = None,
        *,
        reference_field: str | None = None,
    ) -> list[SavedEntry]:
        """Every entry line of the bills with these FIDs, ordered so paging cannot skip a line.

        By FID, not FBillNo: Kingdee's coding rule may have renumbered the bill.
        ``expected_entries`` (FID → entry lines sent) packs the IN-lists so that each one's rows
        fit in a single page, short of ``page_limit`` by one so that the short page itself proves
        the list complete: the fewest calls for the read-back.
        """
        weights = {str(fid): count for fid, count in (expected_entries or {}).items()}
        chunks = _chunks(
            (str(fid) for fid in fids),
            self.in_list_size,
            weights=weights or None,
            capacity=self.page_limit - 1,
        )
        entries: list[SavedEntry] = []
        for chunk in chunks:
            filter_string = field_in("FID", [int(fid) for fid in chunk])
            entries.extend(self._entries(form, filter_string, reference_field))
        return entries

    def day_entries(
        self,
        form: KingdeeForm,
        day: date,
        *,
        orgs: Sequence[str],
        bill_type: str,
        reference_field: str | None = None,
    ) -> list[SavedEntry]:
        """Every entry line of every bill of this type and these stock orgs dated ``day``: one
        read-back of a whole day, each line with the reference its bill carries."""
        filter_string = all_of(
            field_in(f"{form.stock_org}.FNumber", orgs), self._day_filter(form, day, bill_type)
        )
        return self._entries(form, filter_string, reference_field)

    def _entries(
        self, form: KingdeeForm, filter_string: str, reference_field: str | None
    ) -> list[SavedEntry]:
        keys = [
            "FID",
            "FBillNo",
            f"{form.material}.FNumber",
            form.quantity,
            form.entry_id,
            reference_field or form.note,
            f"{form.stock}.FNumber",
            f"{form.lot}.FNumber",
            form.date,
            "FDocumentStatus",
            f"{form.stock_org}.FNumber",
        ]
        rows = self.execute_bill_query(
            form.form_id, keys, filter_string, order_string=f"FID,{form.entry_id}"
        )
        return [
            SavedEntry(
                fid=int(row[0]),
                bill_no=str(row[1]),
                material_number=str(row[2] or ""),
                qty=Decimal(str(row[3])),
                reference=str(row[5] or ""),
                stock=str(row[6] or ""),
                lot=str(row[7]) if row[7] else None,
                date=str(row[8] or "")[:10],
                document_status=str(row[9] or ""),
                stock_org=str(row[10] or ""),
            )
            for row in rows
        ]

    # -- reads: retries and re-login ---------------------------------------------------------

    def _read(self, service_name: str, payload: dict) -> Any:
        """One read: transient failures retried (bounded), a lost session re-logged-in once."""
        service = _short(service_name)

        def once() -> Any:
            self._ensure_session()
            sid_used = self._sid
            body = self._exchange(service_name, payload, self.read_timeout)
            try:
                self._raise_for_read_status(body, service)
            except KingdeeSessionLost:
                self._forget_session(sid_used)
                raise
            return body

        try:
            return self._retrying(once)
        except KingdeeSessionLost:
            self._ensure_session()
            return self._retrying(once)

    def _retrying(self, call: Callable[[], Any]) -> Any:
        """``call()`` until it stops failing transiently, at most ``backoff.max_attempts`` times.

        Only for calls that change nothing: a garbled or missing answer is simply asked again.
        """
        attempt, attempts = 1, self.backoff.max_attempts
        while True:
            try:
                return call()
            except (KingdeeTransientError, KingdeeProtocolError) as error:
                if attempt >= attempts:
                    self._log(f"Kingdee call failed ({error}), giving up after {attempt} attempts")
                    raise
                self.stats.bump("retries")
                delay = self.backoff.delay(attempt)
                self._log(
                    f"Kingdee call failed ({error}), retrying in {delay:.1f} s, "
                    f"attempt {attempt + 1} of {attempts}"
                )
                time.sleep(delay)
                attempt += 1

    def _raise_for_read_status(self, body: Any, service: str) -> None:
        """Map an error envelope in a query answer to the exception the caller acts on."""
        status = _response_status(body)
        if status is None:
            return
        msg_code = _as_int(status.get("MsgCode"))
        messages = self._messages(status)
        if not _is_false(status.get("IsSuccess")):
            raise KingdeeProtocolError(msg_code, [f"envelope instead of rows: {messages}"], service)
        if msg_code == MSG_CONTEXT_LOST:
            if self.auth_mode == "session":
                raise KingdeeSessionLost(msg_code, messages, service)
            raise KingdeeAuthError(msg_code, messages, service)
        if msg_code in _TRANSIENT_MSG_CODES:
            raise KingdeeTransientError(msg_code, messages, service, cause="throttled")
        raise KingdeeQueryError(msg_code, messages, service)

    # -- session mode ------------------------------------------------------------------------

    def _forget_session(self, sid_used: str) -> None:
        """Drop the session the server lost, unless another thread already replaced it."""
        with self._state_lock:
            if self._sid == sid_used:
                self._sid = ""

    def _ensure_session(self) -> None:
        """Session mode: log in unless a live session is known (one login for all threads)."""
        if self.auth_mode != "session" or self._sid:
            return
        with self._login_lock:
            if self._sid:
                return
            body = self._retrying(self._login_once)
            service = _short(LOGIN_BY_SIGN)
            status = _response_status(body)
            if status is not None:
                raise KingdeeAuthError(
                    _as_int(status.get("MsgCode")), self._messages(status), service
                )
            if not isinstance(body, dict):
                raise KingdeeProtocolError(None, [f"login answer: {self._snippet(body)}"], service)
            session_id = body.get("KDSVCSessionId")
            # 1 is success; -5 is accepted by clients in the wild [G]: a session it hands out
            # that does not work fails the next call with MsgCode 1, so accepting it is bounded.
            if _as_int(body.get("LoginResultType")) not in (1, -5) or not session_id:
                message = self._scrub(str(body.get("Message") or "LoginBySign refused"))
                raise KingdeeAuthError(None, [message], service)
            with self._state_lock:
                if self._logins:
                    self.stats.bump("relogins")
                self._logins += 1
                self._sid = str(session_id)

    def _login_once(self) -> Any:
        """One LoginBySign call; a throttled answer is transient like a 5xx."""
        timestamp = int(time.time())
        sign = login_sign(self.acct_id, self.username, self.app_id, self._app_secret, timestamp)
        parameters = [self.acct_id, self.username, self.app_id, timestamp, sign, self.lcid]
        body = self._exchange(LOGIN_BY_SIGN, {"parameters": parameters}, self.read_timeout)
        status = _response_status(body)
        msg_code = _as_int(status.get("MsgCode")) if status is not None else None
        if status is not None and msg_code in _TRANSIENT_MSG_CODES:
            service = _short(LOGIN_BY_SIGN)
            raise KingdeeTransientError(
                msg_code, self._messages(status), service, cause="throttled"
            )
        return body

    # -- one HTTP exchange -------------------------------------------------------------------

    def _url(self, service_name: str) -> str:
        return f"{self.base_url}{service_name}.common.kdsvc"

    def _headers(self, url: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json;charset=utf-8", "Accept-Charset": "utf-8"}
        if self.auth_mode == "signature":
            headers.update(
                sdk_headers(
                    url,
                    acct_id=self.acct_id,
                    username=self.username,
                    app_id=self.app_id,
                    app_secret=self._app_secret,
                    lcid=self.lcid,
                    org_num=self.org_number,
                    timestamp=int(time.time()),
                )
            )
        with self._state_lock:
            if self._sid:
                headers[SESSION_COOKIE] = self._sid
        return headers

    def _exchange(self, service_name: str, payload: dict, read_timeout: float) -> Any:
        """POST once and decode; transport and envelope-shape failures become typed errors."""
        service = _short(service_name)
        url = self._url(service_name)
        body = json.dumps(payload, ensure_ascii=False, default=_wire_value).encode("utf-8")
        self._limiter.acquire()
        self.stats.bump("calls")
        try:
            with self.threads:
                response = self._http.post(
                    url,
                    data=body,
                    headers=self._headers(url),
                    timeout=(self.connect_timeout, read_timeout),
                )
        except requests.Timeout as exc:
            message = f"no answer within {read_timeout:g} s ({type(exc).__name__})"
            raise KingdeeTransientError(None, [message], service, cause="timeout") from None
        except requests.RequestException as exc:
            message = f"connection failed ({type(exc).__name__})"
            raise KingdeeTransientError(None, [message], service, cause="connection") from None
        self._remember_session(response)
        return self._decode(response, service)

    def _remember_session(self, response: requests.Response) -> None:
        """Follow the SID the server hands out, as the SDK does (it may renew it silently)."""
        sid = response.cookies.get(SESSION_COOKIE)
        if sid and self.auth_mode == "signature":
            with self._state_lock:
                self._sid = sid

    def _decode(self, response: requests.Response, service: str) -> Any:
        text = response.content.decode("utf-8", errors="replace").lstrip("\ufeff")
        if response.status_code not in (200, 206):
            snippet = self._scrub(text[:_SNIPPET].strip())
            if "Fail to verify thirty passport" in text:
                raise KingdeeAuthError(None, [snippet], service)
            message = f"HTTP {response.status_code}: {snippet}"
            if response.status_code >= 500:
                raise KingdeeTransientError(None, [message], service, cause="http_5xx")
            raise KingdeeProtocolError(None, [message], service)
        stripped = text.strip()
        if stripped.startswith("response_error:"):
            detail = stripped[len("response_error:") :].strip()
            with contextlib.suppress(ValueError, AttributeError):
                detail = str(json.loads(detail).get("Message") or detail)
            raise KingdeeProtocolError(None, [self._scrub(detail[:_SNIPPET])], service)
        if not stripped:
            raise KingdeeProtocolError(None, ["empty body"], service)
        try:
            return json.loads(stripped, parse_float=Decimal)
        except ValueError:
            snippet = self._scrub(stripped[:_SNIPPET])
            raise KingdeeProtocolError(None, [f"not JSON: {snippet}"], service) from None

    def _batch_result(
        self, body: dict, status: dict, msg_code: int | None, model_count: int
    ) -> BatchSaveResult:
        saved = []
        for entity in status.get("SuccessEntitys") or []:
            dindex, fid = _as_int(entity.get("DIndex")), _as_int(entity.get("Id"))
            if dindex is not None and fid is not None and 0 <= dindex < model_count:
                saved.append(SavedBill(dindex=dindex, fid=fid, number=str(entity.get("Number"))))
        errors: dict[int, list[str]] = {}
        call_errors: list[str] = []
        about_the_call = msg_code is not None and msg_code not in _PER_BILL_MSG_CODES
        for error in status.get("Errors") or []:
            if not isinstance(error, dict):
                continue
            message = self._scrub(_error_text(error))
            dindex = _as_int(error.get("DIndex"))
            if not about_the_call and dindex is not None and 0 <= dindex < model_count:
                errors.setdefault(dindex, []).append(message)
            else:
                call_errors.append(message)
        return BatchSaveResult(
            saved=saved,
            errors=errors,
            msg_code=msg_code,
            is_success=not _is_false(status.get("IsSuccess")) and not errors and not call_errors,
            raw=body,
            call_errors=call_errors,
        )

    def _messages(self, status: Mapping[str, Any]) -> list[str]:
        errors = [error for error in status.get("Errors") or [] if isinstance(error, dict)]
        return [self._scrub(_error_text(error)) for error in errors]

    def _scrub(self, text: str) -> str:
        """Blank out anything secret a misbehaving server might echo into an error."""
        for secret in (self._app_secret, self._sid):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _snippet(self, value: Any) -> str:
        return self._scrub(json.dumps(value, ensure_ascii=False, default=str)[:_SNIPPET])


__all__ = [
    "AUDIT",
    "BATCH_SAVE",
    "DELETE",
    "EXECUTE_BILL_QUERY",
    "LOGIN_BY_SIGN",
    "SUBMIT",
    "UNAUDIT",
    "BatchSaveResult",
    "BillRecord",
    "ClientStats",
    "KingdeeClient",
    "MaterialInfo",
    "SavedBill",
    "SavedEntry",
    "material_state",
]
