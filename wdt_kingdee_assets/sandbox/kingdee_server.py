"""A stateful simulator of the Kingdee K3Cloud WebAPI (reference §8), served by :class:`SimServer`.

It holds what a real data center would: materials per use-org, warehouses, orgs, departments and
the 其他出库单 (STK_MisDelivery) bills saved so far. It verifies what the real server verifies
(SDK signed headers, sessions, LoginBySign) and rejects what it rejects, with the real envelope
shapes, so the real client is what the tests exercise. Where the reference marks a behaviour as a
guess, the simulator takes the stricter reading (it checks both signature headers; it refuses
a duplicate FBillNo; it compares strings case-insensitively, as Kingdee's SQL Server collation
does, so FBillNo ``ab`` duplicates ``AB``). Whether a real data center rejects a duplicate FBillNo
depends on its coding rules (reference §7), so ``unique_bill_no=False`` accepts duplicates: the
reliability tests run that way, where nothing but the writer's own guards prevents a duplicate.
``numbering="auto"`` is a coding rule that numbers every bill itself (编码规则 without manual
numbers): the FBillNo sent is replaced by ``QTCK000001``… and answered in ``SuccessEntitys``.
``custom_header_fields`` are the customer's own ``F_…`` fields on the form: stored and queryable;
any other header key is ignored on save, as an unknown JSON key is [G], and refused in FieldKeys
with MsgCode 9, as a real server refuses a field its metadata lacks.

Faults (``FaultPlan``, operations ``BatchSave``, ``ExecuteBillQuery``, ``LoginBySign``):
``delay``, ``timeout``, ``5xx``, ``reset``, ``throttle`` (MsgCode 14), ``session_lost`` (MsgCode 1,
every session dropped), ``call_error`` (the call refused as a whole with MsgCode ``code`` and
``DIndex: 0``, as 没有权限 / 异常 / 数据库操作失败 / 许可错误 arrive), ``html_error`` and
``empty_body`` answer *without* doing the work;
``timeout_after_commit``, ``5xx_after_commit``, ``reset_after_commit`` and ``truncated_json`` (the
first half of the real answer) do it first.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal, NamedTuple

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as pydantic_dataclass

from wdt_kingdee_assets.kingdee.signing import api_signature, app_data, kd_signature, login_sign
from wdt_kingdee_assets.sandbox.credentials import KingdeeCredentials
from wdt_kingdee_assets.sandbox.faults import FaultPlan, FaultRule
from wdt_kingdee_assets.sandbox.httpserver import (
    HoldThenClose,
    ResetConnection,
    ServiceTime,
    SimRequest,
    SimResponse,
)

MSG_SESSION_LOST = "会话信息已丢失，请重新登录"
MSG_THROTTLED = "调用限制：当前接口调用过于频繁，超过了系统允许的调用次数，请稍后再试。"
MSG_PASSPORT = "Fail to verify thirty passport"
# What a call refused as a whole says, by MsgCode (the official table's meaning, in the server's
# words where one was seen; the exact texts are [G]).
MSG_CALL_ERRORS = {
    2: "没有权限：当前用户没有“其他出库单”的“保存”权限。",
    4: "服务端异常：Object reference not set to an instance of an object.",
    6: "数据库操作失败：事务（进程 ID 58）与另一个进程被死锁在锁资源上。",
    7: "许可错误：当前产品许可已过期或用户数超出许可数量。",
    12: "不可操作：数据中心正在升级，暂不允许此操作。",
}

_SERVICE_PATH = re.compile(r"/k3cloud/(?P<service>[A-Za-z0-9_.]+)\.common\.kdsvc/?", re.IGNORECASE)
_SERVICES = {
    "kingdee.bos.webapi.servicesstub.dynamicformservice.batchsave": "BatchSave",
    "kingdee.bos.webapi.servicesstub.dynamicformservice.submit": "Submit",
    "kingdee.bos.webapi.servicesstub.dynamicformservice.audit": "Audit",
    "kingdee.bos.webapi.servicesstub.dynamicformservice.unaudit": "UnAudit",
    "kingdee.bos.webapi.servicesstub.dynamicformservice.delete": "Delete",
    "kingdee.bos.webapi.servicesstub.dynamicformservice.executebillquery": "ExecuteBillQuery",
    "kingdee.bos.webapi.servicesstub.authservice.loginbysign": "LoginBySign",
}
_SUPPORTED_FAULTS = frozenset(
    {
        "call_error",
        "delay",
        "timeout",
        "timeout_after_commit",
        "5xx",
        "5xx_after_commit",
        "reset",
        "reset_after_commit",
        "throttle",
        "session_lost",
        "html_error",
        "empty_body",
        "truncated_json",
    }
)
_AFTER_COMMIT = frozenset(
    {"timeout_after_commit", "5xx_after_commit", "reset_after_commit", "truncated_json"}
)
# The operations on saved bills: each moves a bill between document states (FDocumentStatus:
# A 创建, B 审核中, C 已审核, D 重新审核), one bill at a time, with Save's envelope.
_LIFECYCLE = frozenset({"Submit", "Audit", "UnAudit", "Delete"})
_STATUS_NAMES = {"A": "创建", "B": "审核中", "C": "已审核", "D": "重新审核"}
# A held connection outlasts any sane client read timeout unless the rule says how long.
_DEFAULT_HOLD_SECONDS = 30.0
# LoginBySign's timestamp must be this close to the server clock (the SDK signs with seconds).
_LOGIN_CLOCK_SKEW_SECONDS = 600
_DEFAULT_LIMIT = 2000
_MAX_LIMIT = 10000

_CURRENCIES = frozenset({"pre001"})
_STOCK_STATUSES = frozenset({"kczt01_sys"})
_STOCK_DIRECTIONS = frozenset({"general", "return"})
_OWNER_TYPES = frozenset({"bd_ownerorg", "bd_supplier", "bd_customer"})
_KEEPER_TYPES = frozenset({"bd_keeperorg", "bd_supplier", "bd_customer"})

_LABELS = {
    "FBillNo": "单据编号",
    "FSUPPLIERID": "供应商",
    "FDEPTID": "部门",
    "FInStockType": "入库类型",
    "FMATERIALID": "物料编码",
    "FSTOCKID": "收货仓库",
    "FLOT": "批号",
    "FSTOCKSTATUSID": "库存状态",
    "FOWNERTYPEID": "货主类型",
    "FOWNERID": "货主",
    "FKEEPERTYPEID": "保管者类型",
    "FKEEPERID": "保管者",
    "FBillTypeID": "单据类型",
    "FStockOrgId": "库存组织",
    "FPickOrgId": "领用组织",
    "FStockDirect": "库存方向",
    "FDate": "日期",
    "FOwnerTypeIdHead": "货主类型",
    "FOwnerIdHead": "货主",
    "FBaseCurrId": "本位币",
    "FDeptId": "领料部门",
    "FCustId": "客户",
    "FEntity": "明细信息",
    "FMaterialId": "物料编码",
    "FUnitID": "单位",
    "FBaseUnitId": "基本单位",
    "FQty": "实发数量",
    "FStockId": "发货仓库",
    "FLot": "批号",
    "FStockStatusId": "库存状态",
    "FOwnerTypeId": "货主类型",
    "FOwnerId": "货主",
    "FKeeperTypeId": "保管者类型",
    "FKeeperId": "保管者",
    "FStockLocId": "仓位",
    "FSTOCKLOCID": "仓位",
    "FProduceDate": "生产日期",
    "FPRODUCEDATE": "生产日期",
    "FExpiryDate": "有效期至",
    "FEXPIRYDATE": "有效期至",
}


# A pydantic dataclass: the admin API validates its material payload with the same class
# (unknown fields refused), so the two cannot drift apart.
@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class KingdeeMaterial:
    """One material as used by one org (BD_MATERIAL has one row per use-org)."""

    number: str
    name: str
    base_unit: str
    use_org: str = "100"
    forbidden: bool = False
    document_status: str = "C"
    batch_managed: bool = False
    shelf_life: bool = False  # 保质期管理 (FIsKFPeriod): entries need a production or expiry date
    # The customer's own BD_MATERIAL fields (e.g. F_PAEZ_WdtCode holding the WDT code).
    fields: dict[str, str] = field(default_factory=dict)


_MATERIAL_BODY = TypeAdapter(KingdeeMaterial)


@dataclass(frozen=True)
class KingdeeUnit:
    """One BD_UNIT row: quantities in this unit are stored at ``precision`` decimals."""

    number: str
    name: str
    precision: int = 4


# A bin-managed warehouse's bins are a flex field of this dimension (仓位值集).
BIN_FLEX = "FF100001"


@dataclass
class _Entry:
    entry_id: int
    seq: int
    material: str
    qty: Decimal
    unit: str
    stock: str
    lot: str | None
    bin: str | None = None
    custom: dict[str, str] = field(default_factory=dict)  # the customer's F_… entry fields


class _Place(NamedTuple):
    """Where stock is on hand: a material in a warehouse, in a lot and a bin ("" for none);
    numbers case-folded, as Kingdee finds them."""

    material: str
    stock: str
    lot: str
    bin: str

    @classmethod
    def of(cls, material: str, stock: str, lot: str | None, bin_number: str | None) -> _Place:
        return cls(_fold(material), _fold(stock), _fold(lot or ""), _fold(bin_number or ""))

    def where(self) -> str:
        """The lot and bin as the refusal names them ("" for neither)."""
        return (f"仓位“{self.bin}”" if self.bin else "") + (f"批号“{self.lot}”" if self.lot else "")


@dataclass
class _Bill:
    form: str  # the form id, canonical spelling
    fid: int
    bill_no: str
    date: datetime
    status: str
    note: str
    bill_type: str
    stock_org: str
    pick_org: str | None
    dept: str | None
    direction: str
    entries: list[_Entry] = field(default_factory=list)
    custom: dict[str, str] = field(default_factory=dict)  # the customer's F_… header fields


@dataclass(frozen=True)
class _SaveForm:
    """A bill form the sandbox saves: its field keys exactly as the form's metadata spells them
    (a model key in another case is an unknown key, ignored — so its required field is
    missing), its bill types and its coding rule's prefix."""

    form_id: str
    bill_types: frozenset[str]
    number_prefix: str  # what the coding rule numbers bills with (numbering="auto")
    note: str
    dept: str  # the department; the header needs it or ``partner``
    partner: str  # 客户 (customer) or 供应商 (supplier): not simulated, never resolvable
    pick_org: str | None
    material: str
    stock: str
    lot: str
    stock_status: str
    owner_type: str
    owner: str
    keeper_type: str
    keeper: str
    bin: str
    produce_date: str
    expiry_date: str
    in_stock_type: str | None = None  # 入库类型, required on receipts


_SAVE_FORMS = {
    form.form_id.casefold(): form
    for form in (
        _SaveForm(
            form_id="STK_MisDelivery",
            bill_types=frozenset({"qtckd01_sys"}),
            number_prefix="QTCK",
            note="FNote",
            dept="FDeptId",
            partner="FCustId",
            pick_org="FPickOrgId",
            material="FMaterialId",
            stock="FStockId",
            lot="FLot",
            stock_status="FStockStatusId",
            owner_type="FOwnerTypeId",
            owner="FOwnerId",
            keeper_type="FKeeperTypeId",
            keeper="FKeeperId",
            bin="FStockLocId",
            produce_date="FProduceDate",
            expiry_date="FExpiryDate",
        ),
        _SaveForm(
            form_id="STK_MISCELLANEOUS",
            bill_types=frozenset({"qtrkd01_sys"}),
            number_prefix="QTRK",
            note="FNOTE",
            dept="FDEPTID",
            partner="FSUPPLIERID",
            pick_org=None,
            material="FMATERIALID",
            stock="FSTOCKID",
            lot="FLOT",
            stock_status="FSTOCKSTATUSID",
            owner_type="FOWNERTYPEID",
            owner="FOWNERID",
            keeper_type="FKEEPERTYPEID",
            keeper="FKEEPERID",
            bin="FSTOCKLOCID",
            produce_date="FPRODUCEDATE",
            expiry_date="FEXPIRYDATE",
            in_stock_type="FInStockType",
        ),
    )
}
# 入库类型: 1 合格入库 (and the form's other choices, which the sandbox accepts as well) [G].
_IN_STOCK_TYPES = frozenset({"1", "2", "3"})


@dataclass
class _MaterialRow:
    material: KingdeeMaterial
    material_id: int


class _Rejected(Exception):
    """A request the server answers with an error envelope (msg_code, message)."""

    def __init__(self, msg_code: int, message: str) -> None:
        super().__init__(message)
        self.msg_code = msg_code
        self.message = message


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison that also copes with non-ASCII input (hmac wants bytes then)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _fold(text: str) -> str:
    """SQL Server's default Chinese_PRC_CI_AS: case-insensitive, trailing blanks ignored."""
    return text.rstrip(" ").casefold()


def _envelope(
    errors: list[dict[str, Any]],
    msg_code: int,
    *,
    successes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "IsSuccess": not errors,
        "Errors": errors,
        "SuccessEntitys": successes or [],
        "SuccessMessages": [],
        "MsgCode": msg_code,
    }
    if errors:
        status = {"ErrorCode": 500, **status}
    return {"Result": {"ResponseStatus": status}}


def _error(message: str, field_name: str | None = None, dindex: int = 0) -> dict[str, Any]:
    return {"FieldName": field_name, "Message": message, "DIndex": dindex}


def _parse_date(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    for pattern in ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text.strip(), pattern)
        except ValueError:
            continue
    return None


def _kingdee_date(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


def _json_value(value: Any) -> Any:
    """What Kingdee puts in a query cell: dates as ``yyyy-MM-ddTHH:mm:ss``, decimals as numbers.

    A decimal whose float text is not exactly itself is sent as a string, never rounded.
    """
    if isinstance(value, datetime):
        return _kingdee_date(value)
    if isinstance(value, Decimal):
        as_float = float(value)
        return as_float if Decimal(repr(as_float)) == value else str(value)
    return value


def _truthy(value: Any, default: bool) -> bool:
    """Kingdee flags arrive as JSON booleans or as the strings "true"/"false"."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _ref_number(value: Any) -> str | None:
    """The number inside ``{"FNumber": ..}`` (key case-insensitive); None when absent or blank."""
    if not isinstance(value, Mapping):
        return None
    for key, inner in value.items():
        if isinstance(key, str) and key.casefold() == "fnumber" and inner is not None:
            text = str(inner).strip()
            return text or None
    return None


# -- FilterString ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*')
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<op><>|!=|<=|>=|=|<|>)
      | (?P<punct>[(),])
    )""",
    re.VERBOSE,
)
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null"})


class _FilterSyntaxError(Exception):
    pass


@dataclass(frozen=True)
class _Token:
    kind: str  # string, number, name, keyword, op, punct, end
    text: str
    value: Any = None


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise _FilterSyntaxError(f"无法识别的字符 {text[position:].strip()[:20]!r}")
        position = match.end()
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "string":
            tokens.append(_Token("string", raw, raw[1:-1].replace("''", "'")))
        elif kind == "number":
            tokens.append(_Token("number", raw, Decimal(raw)))
        elif kind == "name" and raw.lower() in _KEYWORDS:
            tokens.append(_Token("keyword", raw.lower()))
        else:
            tokens.append(_Token(kind, raw))
    tokens.append(_Token("end", ""))
    return tokens


Predicate = Callable[[Callable[[str], Any]], bool]


class _FilterParser:
    """Recursive descent over ``or`` < ``and`` < ``not`` < comparison, into a predicate.

    A string literal is one token however many quotes it holds, so a value can never turn into
    syntax: that is what makes injection impossible here, as in a parameterised query.
    """

    def __init__(self, text: str, known_field: Callable[[str], str]) -> None:
        self._tokens = _tokenize(text)
        self._index = 0
        self._known_field = known_field
        self.fields: set[str] = set()

    def parse(self) -> Predicate:
        predicate = self._or()
        if self._peek().kind != "end":
            raise _FilterSyntaxError(f"多余的内容 {self._peek().text!r}")
        return predicate

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        self._index += 1
        return token

    def _accept(self, kind: str, text: str | None = None) -> bool:
        token = self._peek()
        if token.kind == kind and (text is None or token.text == text):
            self._index += 1
            return True
        return False

    def _expect(self, kind: str, text: str | None = None) -> _Token:
        token = self._next()
        if token.kind != kind or (text is not None and token.text != text):
            raise _FilterSyntaxError(f"期望 {text or kind}，实际是 {token.text!r}")
        return token

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._accept("keyword", "or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else lambda get: any(part(get) for part in parts)

    def _and(self) -> Predicate:
        parts = [self._not()]
        while self._accept("keyword", "and"):
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else lambda get: all(part(get) for part in parts)

    def _not(self) -> Predicate:
        if self._accept("keyword", "not"):
            inner = self._not()
            return lambda get: not inner(get)
        if self._accept("punct", "("):
            inner = self._or()
            self._expect("punct", ")")
            return inner
        return self._comparison()

    def _literal(self) -> Any:
        token = self._next()
        if token.kind not in ("string", "number"):
            raise _FilterSyntaxError(f"期望常量，实际是 {token.text!r}")
        return token.value

    def _comparison(self) -> Predicate:
        name = self._expect("name").text
        key = self._known_field(name)
        self.fields.add(key)
        if self._accept("keyword", "is"):
            negate = self._accept("keyword", "not")
            self._expect("keyword", "null")
            return lambda get: (get(key) is None) != negate
        negate = self._accept("keyword", "not")
        if negate or self._peek().text == "in":
            self._expect("keyword", "in")
            self._expect("punct", "(")
            values = [self._literal()]
            while self._accept("punct", ","):
                values.append(self._literal())
            self._expect("punct", ")")
            # A text cell is looked up in a set of the folded literals, as an index would serve
            # it: a real server answers `FBillNo in (500 numbers)` over thousands of rows at once.
            folded = {
                _fold(format(value, "f") if isinstance(value, Decimal) else str(value))
                for value in values
            }

            # So is a number cell (FID in (500 ids) over a day's entries), when every literal
            # is a number; otherwise each is compared, and a non-number is refused as Kingdee does.
            numbers = _decimals(values)

            def member(get: Callable[[str], Any]) -> bool:
                cell = get(key)
                if isinstance(cell, str):
                    return (_fold(cell) in folded) != negate
                if numbers is not None and _is_number(cell):
                    return (Decimal(cell) in numbers) != negate
                return any(_compare(cell, value) == 0 for value in values) != negate

            return member
        operator = self._expect("op").text
        value = self._literal()
        tests: dict[str, Callable[[int], bool]] = {
            "=": lambda order: order == 0,
            "<>": lambda order: order != 0,
            "!=": lambda order: order != 0,
            "<": lambda order: order < 0,
            ">": lambda order: order > 0,
            "<=": lambda order: order <= 0,
            ">=": lambda order: order >= 0,
        }
        test = tests[operator]

        def compare(get: Callable[[str], Any]) -> bool:
            order = _compare(get(key), value)
            return order is not None and test(order)

        return compare


def _is_number(cell: Any) -> bool:
    return isinstance(cell, (int, Decimal)) and not isinstance(cell, bool)


def _decimals(values: list[Any]) -> set[Decimal] | None:
    """The literals as numbers (equal numbers hash alike), or None if one is not a number."""
    try:
        return {Decimal(str(value)) for value in values}
    except (InvalidOperation, TypeError):  # not a number, or a signalling NaN
        return None


def _compare(cell: Any, literal: Any) -> int | None:
    """SQL-ish three-way comparison of a cell with a literal; None is SQL's NULL (unknown)."""
    if cell is None:
        return None
    left: Any
    right: Any
    if isinstance(cell, datetime):
        parsed = _parse_date(str(literal))
        if parsed is None:
            raise _FilterSyntaxError(f"无法把 {literal!r} 转换为日期")
        left, right = cell, parsed
    elif _is_number(cell):
        try:
            left, right = Decimal(cell), Decimal(str(literal))
        except InvalidOperation:
            raise _FilterSyntaxError(f"无法把 {literal!r} 转换为数值") from None
    else:
        left = _fold(str(cell))
        right = _fold(format(literal, "f") if isinstance(literal, Decimal) else str(literal))
    return (left > right) - (left < right)


# -- query forms ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    key: str  # canonical spelling, as in Kingdee's metadata
    entry: bool  # an entry-level field: one row per entry line when used
    get: Callable[[Any], Any]


def _fields(*fields: _Field) -> dict[str, _Field]:
    return {item.key.casefold(): item for item in fields}


def _bill_of(row: Any) -> _Bill:
    return row[0]


def _entry_of(row: Any) -> _Entry:
    return row[1]


def _bill_fields(form: _SaveForm) -> dict[str, _Field]:
    """What ExecuteBillQuery can read of a saved form (field keys compared without case)."""
    return _fields(
        _Field("FID", False, lambda row: _bill_of(row).fid),
        _Field("FBillNo", False, lambda row: _bill_of(row).bill_no),
        _Field("FDate", False, lambda row: _bill_of(row).date),
        _Field("FDocumentStatus", False, lambda row: _bill_of(row).status),
        _Field(form.note, False, lambda row: _bill_of(row).note),
        _Field("FStockDirect", False, lambda row: _bill_of(row).direction),
        _Field("FBillTypeID.FNumber", False, lambda row: _bill_of(row).bill_type),
        _Field("FStockOrgId.FNumber", False, lambda row: _bill_of(row).stock_org),
        *(
            [_Field(f"{form.pick_org}.FNumber", False, lambda row: _bill_of(row).pick_org)]
            if form.pick_org
            else []
        ),
        _Field(f"{form.dept}.FNumber", False, lambda row: _bill_of(row).dept),
        _Field("FEntity_FEntryId", True, lambda row: _entry_of(row).entry_id),
        _Field("FEntity_FSeq", True, lambda row: _entry_of(row).seq),
        _Field(f"{form.material}.FNumber", True, lambda row: _entry_of(row).material),
        _Field("FQty", True, lambda row: _entry_of(row).qty),
        _Field("FUnitID.FNumber", True, lambda row: _entry_of(row).unit),
        _Field(f"{form.stock}.FNumber", True, lambda row: _entry_of(row).stock),
        _Field(f"{form.lot}.FNumber", True, lambda row: _entry_of(row).lot),
    )


_MATERIAL_FIELDS = _fields(
    _Field("FMATERIALID", False, lambda row: row.material_id),
    _Field("FNumber", False, lambda row: row.material.number),
    _Field("FName", False, lambda row: row.material.name),
    _Field("FForbidStatus", False, lambda row: "B" if row.material.forbidden else "A"),
    _Field("FDocumentStatus", False, lambda row: row.material.document_status),
    _Field("FBaseUnitId.FNumber", False, lambda row: row.material.base_unit),
    _Field("FUseOrgId.FNumber", False, lambda row: row.material.use_org),
    _Field("FIsBatchManage", False, lambda row: row.material.batch_managed),
    _Field("FIsKFPeriod", False, lambda row: row.material.shelf_life),
)


def _material_field(name: str) -> _Field:
    return _Field(name, False, lambda row: row.material.fields.get(name) or None)


_UNIT_FIELDS = _fields(
    _Field("FUNITID", False, lambda row: row[0]),
    _Field("FNumber", False, lambda row: row[1].number),
    _Field("FName", False, lambda row: row[1].name),
    _Field("FPrecision", False, lambda row: row[1].precision),
)


def _custom_field(name: str) -> _Field:
    return _Field(name, False, lambda row: _bill_of(row).custom.get(name) or None)


def _custom_entry_field(name: str) -> _Field:
    return _Field(name, True, lambda row: _entry_of(row).custom.get(name) or None)


_STOCK_FIELDS = _fields(
    _Field("FStockId", False, lambda row: row[0]),
    _Field("FNumber", False, lambda row: row[1]),
    _Field("FName", False, lambda row: f"仓库{row[1]}"),
    _Field("FForbidStatus", False, lambda row: "A"),
    _Field("FDocumentStatus", False, lambda row: "C"),
    _Field("FUseOrgId.FNumber", False, lambda row: row[2]),
)


class KingdeeSimulator:
    """The simulated data center: a SimApp answering the WebAPI and a small admin API."""

    def __init__(
        self,
        credentials: KingdeeCredentials = KingdeeCredentials(),  # noqa: B008 - frozen dataclass
        *,
        materials: Iterable[KingdeeMaterial] = (),
        warehouses: Iterable[str] = (),
        orgs: Iterable[str] = ("100",),
        departments: Iterable[str] | Mapping[str, Iterable[str]] = ("BM000032",),
        latency: float = 0.0,
        per_bill_latency: float = 0.0,
        max_concurrency: int = 0,
        unique_bill_no: bool = True,
        numbering: Literal["keep", "auto"] = "keep",
        custom_header_fields: Iterable[str] = (),
        custom_entry_fields: Iterable[str] = (),
        required_custom_fields: Iterable[str] = (),
        material_fields: Iterable[str] = (),
        units: Iterable[KingdeeUnit] = (),
        bin_warehouses: Mapping[str, Iterable[str]] | None = None,
        warehouse_orgs: Mapping[str, str] | None = None,
        closed_until: date | None = None,
        track_stock: bool = False,
        allow_negative_stock: bool = False,
        approval_workflow: bool = False,
    ) -> None:
        if numbering not in ("keep", "auto"):
            raise ValueError(f"numbering must be 'keep' or 'auto', got {numbering!r}")
        self.credentials = credentials
        self.latency = latency
        self.per_bill_latency = per_bill_latency
        self.unique_bill_no = unique_bill_no
        self.numbering = numbering
        # On-hand stock per place (``_Place``: material, warehouse, lot, bin), moved by Audit and
        # UnAudit; None = not tracked.
        self.on_hand: dict[_Place, Decimal] | None = {} if track_stock else None
        self.allow_negative_stock = allow_negative_stock
        # A workflow bound to the bill types: Audit over the WebAPI is refused (WorkflowAudit).
        self.approval_workflow = approval_workflow
        # 库存关账: no bill dated on or before this day is saved, changed, audited, unaudited or
        # deleted any more.
        self.closed_until = closed_until
        self._custom_fields = tuple(dict.fromkeys(custom_header_fields))
        self._custom_entry_fields = tuple(dict.fromkeys(custom_entry_fields))
        material_custom = tuple(dict.fromkeys(material_fields))
        named = (*self._custom_fields, *self._custom_entry_fields, *material_custom)
        if bad := [name for name in named if not name.startswith("F_")]:
            raise ValueError(f"custom fields are named F_…, got {bad}")
        # Fields the data center made required (必录): a bill without them is refused.
        self._required = {_fold(name) for name in required_custom_fields}
        custom = _fields(
            *(_custom_field(name) for name in self._custom_fields),
            *(_custom_entry_field(name) for name in self._custom_entry_fields),
        )
        self._forms: dict[str, dict[str, _Field]] = {
            **{key: {**_bill_fields(form), **custom} for key, form in _SAVE_FORMS.items()},
            "bd_material": {
                **_MATERIAL_FIELDS,
                **_fields(*(_material_field(name) for name in material_custom)),
            },
            "bd_stock": _STOCK_FIELDS,
            "bd_unit": _UNIT_FIELDS,
        }
        self._units = {_fold(unit.number): unit for unit in units}
        # Bin-managed warehouses (仓位管理) → their bins.
        self._bins = {
            _fold(stock): {_fold(number) for number in bins}
            for stock, bins in (bin_warehouses or {}).items()
        }
        self.faults = FaultPlan(_SUPPORTED_FAULTS)
        self._lock = threading.RLock()
        self._ids = itertools.count(100001)
        self._entry_ids = itertools.count(200001)
        # The coding rule's serial per form and stock org [G: a rule may or may not count per
        # org; per org is the stricter world: two orgs' bills can then share a number].
        self._numbers: dict[tuple[str, str], itertools.count] = {}
        self._material_ids = itertools.count(500001)
        self._materials: dict[tuple[str, str], _MaterialRow] = {}
        self._warehouses = list(dict.fromkeys(warehouses))
        # A warehouse of one stock org only (BD_STOCK is per use-org): a bill of another org
        # cannot name it. The others are shared by every org.
        self._warehouse_orgs = {
            _fold(stock): _fold(org) for stock, org in (warehouse_orgs or {}).items()
        }
        self._orgs = list(dict.fromkeys(orgs))
        # BD_Department: each department → the orgs that use it (None: every org). A
        # department is created in an org and assigned to others, like a material.
        self._departments: dict[str, frozenset[str] | None] = (
            {_fold(d): frozenset(_fold(o) for o in used) for d, used in departments.items()}
            if isinstance(departments, Mapping)
            else dict.fromkeys(map(_fold, departments))
        )
        self._bills: list[_Bill] = []
        self._sessions: dict[str, str] = {}  # kdservice-sessionid -> ASP.NET_SessionId
        self._calls: Counter[str] = Counter()
        self._query_log: deque[dict[str, Any]] = deque(maxlen=1000)
        self._slots = threading.BoundedSemaphore(max_concurrency) if max_concurrency > 0 else None
        self._service_time = ServiceTime()
        self._in_flight = 0
        self._peak_in_flight = 0
        for material in materials:
            self.add_material(material)

    # -- master data and inspection ---------------------------------------------------------

    def add_material(self, material: KingdeeMaterial) -> None:
        """Add a material to its use-org, or replace the one with the same number there."""
        key = (_fold(material.number), _fold(material.use_org))
        with self._lock:
            existing = self._materials.get(key)
            material_id = existing.material_id if existing else next(self._material_ids)
            self._materials[key] = _MaterialRow(material, material_id)

    def unit(self, number: str) -> KingdeeUnit:
        """A unit's BD_UNIT record; a unit no one declared counts to 4 decimals (WDT's own)."""
        return self._units.get(_fold(number)) or KingdeeUnit(number, number)

    def materials(self) -> list[KingdeeMaterial]:
        """BD_MATERIAL as it stands, every use-org (what a test's oracle compares against)."""
        with self._lock:
            return [row.material for row in self._materials.values()]

    def bills(self, form_id: str = "STK_MisDelivery") -> list[dict]:
        """What Kingdee holds of one form (其他出库单 unless named), in save order."""
        with self._lock:
            return [
                self._bill_view(bill) for bill in self._bills if _fold(bill.form) == _fold(form_id)
            ]

    @staticmethod
    def _bill_view(bill: _Bill) -> dict:
        return {
            "FormId": bill.form,
            "FID": bill.fid,
            "FBillNo": bill.bill_no,
            "FDate": _kingdee_date(bill.date),
            "FDocumentStatus": bill.status,
            "FStockOrgId": bill.stock_org,
            "FBillTypeID": bill.bill_type,
            "FNote": bill.note,
            **bill.custom,
            "entries": [
                {
                    "material": entry.material,
                    "qty": str(entry.qty),
                    "unit": entry.unit,
                    "stock": entry.stock,
                    "lot": entry.lot,
                    **({"bin": entry.bin} if entry.bin else {}),
                    **entry.custom,
                }
                for entry in bill.entries
            ],
        }

    def state(self) -> dict[str, Any]:
        """The admin view: bills, counts, calls per service, faults."""
        with self._lock:
            by_form = Counter(bill.form for bill in self._bills)
            return {
                "bills": self.bills(),
                "bills_by_form": {
                    form.form_id: self.bills(form.form_id) for form in _SAVE_FORMS.values()
                },
                "counts": {
                    "bills": by_form["STK_MisDelivery"],
                    "bills_by_form": dict(by_form),
                    "entries": sum(len(bill.entries) for bill in self._bills),
                    "materials": len(self._materials),
                    "warehouses": len(self._warehouses),
                    "sessions": len(self._sessions),
                },
                "materials": len(self._materials),
                "calls": dict(self._calls),
                "peak_concurrency": self._peak_in_flight,
                # A request whose client died is still worked on: a test waits for 0 before it
                # judges what Kingdee holds.
                "in_flight": self._in_flight,
                "faults": self.faults.snapshot(),
            }

    def reset(self) -> None:
        """Forget bills, sessions, calls and faults; keep master data."""
        with self._lock:
            self._bills.clear()
            self._sessions.clear()
            self._calls.clear()
            self._query_log.clear()
            self._peak_in_flight = 0
        self.faults.clear()

    # -- HTTP entry point -------------------------------------------------------------------

    def handle(self, request: SimRequest) -> SimResponse:
        if request.path.startswith("/__admin__/"):
            return self._admin(request)
        match = _SERVICE_PATH.fullmatch(request.path)
        if match is None:
            return SimResponse.text("Not Found", 404)
        service_name = match.group("service")
        operation = _SERVICES.get(service_name.casefold())
        with self._lock:
            self._calls[operation or service_name] += 1
        if request.method != "POST":
            return SimResponse.text("Method Not Allowed", 405)
        if operation is None:
            return SimResponse.text(f"Service {service_name} is not simulated", 404)
        if self._slots is not None:
            self._slots.acquire()
        with self._lock:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            self._service_time.start(self.latency)
            response = self._serve(operation, request)
            self._service_time.wait()
            return response
        finally:
            with self._lock:
                self._in_flight -= 1
            if self._slots is not None:
                self._slots.release()

    def _serve(self, operation: str, request: SimRequest) -> SimResponse:
        rule = self.faults.take(operation)
        if rule is not None and rule.kind not in _AFTER_COMMIT:
            early = self._fault_before(rule, operation)
            if early is not None:
                return early
        if operation == "LoginBySign":
            response = self._login(request)
        else:
            response = self._authenticated(operation, request)
        if rule is not None and rule.kind in _AFTER_COMMIT:
            return self._fault_after(rule, response)
        return response

    def _fault_before(self, rule: FaultRule, operation: str) -> SimResponse | None:
        """The answer for a fault that strikes before any work; None to carry on (delay)."""
        if rule.kind == "delay":
            self._service_time.add(rule.seconds)
            return None
        if rule.kind == "timeout":
            raise HoldThenClose(rule.seconds or _DEFAULT_HOLD_SECONDS)
        if rule.kind == "reset":
            raise ResetConnection()
        if rule.kind == "5xx":
            return self._server_error(rule.status)
        if rule.kind == "throttle":
            return self._reject(operation, 14, MSG_THROTTLED)
        if rule.kind == "call_error":
            message = MSG_CALL_ERRORS.get(rule.code, f"调用失败（MsgCode {rule.code}）。")
            return self._reject(operation, rule.code, message)
        if rule.kind == "session_lost":
            with self._lock:
                self._sessions.clear()
            return self._reject(operation, 1, MSG_SESSION_LOST)
        if rule.kind == "html_error":
            page = (
                "<!DOCTYPE html><html><head><title>502 - "
                "Web 服务器在作为网关或代理服务器时收到了无效响应。</title></head>"
                "<body><h1>服务器错误</h1></body></html>"
            )
            return SimResponse.text(page, 200, "text/html")
        return SimResponse(200, b"", [("Content-Type", "application/json; charset=utf-8")])

    def _fault_after(self, rule: FaultRule, response: SimResponse) -> SimResponse:
        if rule.kind == "timeout_after_commit":
            raise HoldThenClose(rule.seconds or _DEFAULT_HOLD_SECONDS)
        if rule.kind == "reset_after_commit":
            raise ResetConnection()
        if rule.kind == "5xx_after_commit":
            return self._server_error(rule.status)
        half = response.body[: max(1, len(response.body) // 2)]
        return SimResponse(response.status, half, response.headers)

    @staticmethod
    def _server_error(status: int) -> SimResponse:
        page = f"<html><body><h1>{status} - 内部服务器错误。</h1></body></html>"
        return SimResponse.text(page, status, "text/html")

    # -- authentication ---------------------------------------------------------------------

    def _new_session(self) -> str:
        sid = secrets.token_hex(16)
        with self._lock:
            self._sessions[sid] = secrets.token_hex(12)
        return sid

    def _with_cookies(self, response: SimResponse, sid: str) -> SimResponse:
        """Every answer sets both cookies; an unknown SID gets an empty "shell" (reference §2b)."""
        with self._lock:
            asp_id = self._sessions.get(sid) or secrets.token_hex(12)
        response.headers.append(("Set-Cookie", f"kdservice-sessionid={sid}; path=/"))
        response.headers.append(("Set-Cookie", f"ASP.NET_SessionId={asp_id}; path=/; HttpOnly"))
        return response

    def _reject(self, operation: str, msg_code: int, message: str) -> SimResponse:
        envelope = _envelope([_error(message)], msg_code)
        payload: Any = [[envelope]] if operation == "ExecuteBillQuery" else envelope
        return self._with_cookies(SimResponse.json(payload), secrets.token_hex(16))

    def _known_session(self, request: SimRequest) -> str | None:
        candidates = (
            request.headers.get("kdservice-sessionid"),
            request.cookies.get("kdservice-sessionid"),
        )
        with self._lock:
            for sid in candidates:
                if sid and sid in self._sessions:
                    return sid
        return None

    def _verify_signature(self, request: SimRequest) -> str | SimResponse | None:
        """Check the SDK headers: a new session id, an HTTP refusal, or None (MsgCode 1)."""
        headers = request.headers
        creds = self.credentials
        try:
            plain = base64.b64decode(headers.get("x-kd-appdata", ""), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            plain = ""
        parts = plain.split(",")
        if len(parts) != 4:
            return None
        acct_id, username, lcid, org_num = parts
        if acct_id != creds.acct_id:
            return SimResponse.text(MSG_PASSPORT, 500)
        app_id = headers.get("x-kd-appkey", "")
        expected_kd = kd_signature(
            creds.app_id, creds.app_secret, app_data(acct_id, username, lcid, org_num)
        )
        stamp, nonce = headers.get("x-api-timestamp", ""), headers.get("x-api-nonce", "")
        expected_api = api_signature(
            request.path, app_id=creds.app_id, timestamp=stamp, nonce=nonce
        )
        # Which header the server validates is a guess (reference §2b): check both (strictest).
        valid = (
            app_id == creds.app_id
            and username == creds.username
            and lcid == str(creds.lcid)
            and bool(stamp)
            and _same(headers.get("x-kd-signature", ""), expected_kd)
            and _same(headers.get("x-api-signature", ""), expected_api)
        )
        return self._new_session() if valid else None

    def _authenticated(self, operation: str, request: SimRequest) -> SimResponse:
        sid = self._known_session(request)
        if sid is None:
            if "x-kd-appdata" not in request.headers:
                return self._reject(operation, 1, MSG_SESSION_LOST)
            outcome = self._verify_signature(request)
            if isinstance(outcome, SimResponse):
                return outcome
            if outcome is None:
                return self._reject(operation, 1, MSG_SESSION_LOST)
            sid = outcome
        try:
            formid, data = self._unwrap(operation, request.body)
            if operation == "BatchSave":
                payload: Any = self._batch_save(formid, data)
            elif operation in _LIFECYCLE:
                payload = self._lifecycle(operation, formid, data)
            else:
                payload = self._query(data)
        except _Rejected as rejected:
            envelope = _envelope([_error(rejected.message)], rejected.msg_code)
            payload = [[envelope]] if operation == "ExecuteBillQuery" else envelope
        return self._with_cookies(SimResponse.json(payload), sid)

    def _login(self, request: SimRequest) -> SimResponse:
        try:
            body = json.loads(request.body or b"null")
        except ValueError:
            body = None
        parameters = self._parameters(body)
        if isinstance(body, Mapping) and parameters is None:
            named = {str(key).casefold(): value for key, value in body.items()}
            keys = ("acctid", "username", "appid", "timestamp", "sign", "lcid")
            parameters = [named.get(key) for key in keys]
        failure = self._login_failure(parameters)
        if failure is not None:
            answer = {
                "Message": failure,
                "MessageCode": None,
                "LoginResultType": 0,
                "KDSVCSessionId": None,
                "Context": None,
                "IsSuccessByAPI": False,
            }
            return self._with_cookies(SimResponse.json(answer), secrets.token_hex(16))
        sid = self._new_session()
        creds = self.credentials
        answer = {
            "Message": None,
            "MessageCode": "CheckPasswordPolicy",
            "LoginResultType": 1,
            "Context": {
                "UserLocale": "zh-CN",
                "DBid": creds.acct_id,
                "UserName": creds.username,
                "SessionId": sid,
                "UserId": 100008,
            },
            "KDSVCSessionId": sid,
            "IsSuccessByAPI": True,
            "Lcid": creds.lcid,
        }
        return self._with_cookies(SimResponse.json(answer), sid)

    def _login_failure(self, parameters: list[Any] | None) -> str | None:
        """Why LoginBySign refuses ``[acctId, user, appId, timestamp, sign, lcid]``, or None."""
        if not parameters or len(parameters) < 5:
            return "登录参数不完整。"
        acct_id, username, app_id, timestamp, sign = (str(value) for value in parameters[:5])
        creds = self.credentials
        if acct_id != creds.acct_id:
            return "数据中心不存在或已被删除。"
        try:
            stamp = int(timestamp)
        except ValueError:
            return "时间戳格式不正确。"
        if abs(time.time() - stamp) > _LOGIN_CLOCK_SKEW_SECONDS:
            return "时间戳已过期，请检查客户端时间。"
        expected = login_sign(creds.acct_id, creds.username, creds.app_id, creds.app_secret, stamp)
        if username != creds.username or app_id != creds.app_id or not _same(sign, expected):
            return "用户名或签名验证失败，请检查账套、用户、应用ID和应用密钥。"
        return None

    # -- request bodies ---------------------------------------------------------------------

    @staticmethod
    def _parameters(body: Any) -> list[Any] | None:
        """``parameters`` of the positional and legacy envelopes (a list or its JSON string)."""
        if not isinstance(body, Mapping) or "parameters" not in body:
            return None
        parameters = body["parameters"]
        if isinstance(parameters, str):
            try:
                parameters = json.loads(parameters)
            except ValueError:
                return None
        return parameters if isinstance(parameters, list) else None

    def _unwrap(self, operation: str, raw: bytes) -> tuple[str | None, dict[str, Any]]:
        """(formid, data) from any of the three envelopes, ``data`` given as object or string."""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            raise _Rejected(8, "请求数据包不是有效的JSON格式。") from None
        parameters = self._parameters(body)
        formid: Any = None
        if parameters is not None:
            if operation == "BatchSave":
                formid = parameters[0] if parameters else None
                data = parameters[1] if len(parameters) > 1 else None
            else:
                data = parameters[0] if parameters else None
        elif isinstance(body, Mapping) and "data" in body:
            formid, data = body.get("formid"), body["data"]
        else:
            raise _Rejected(8, "data数据包不能为空。")
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                raise _Rejected(8, "data数据包不是有效的JSON格式。") from None
        if not isinstance(data, Mapping):
            raise _Rejected(8, "data数据包不能为空。")
        return (str(formid) if formid else None), dict(data)

    # -- Submit, Audit, UnAudit, Delete -------------------------------------------------------

    def _lifecycle(self, operation: str, formid: str | None, data: dict[str, Any]) -> dict:
        """One operation on the bills named by ``Numbers`` (an array) or ``Ids`` (a comma-
        separated string), each on its own: a bill that cannot take it is an error at its DIndex,
        the others move on (per-bill outcomes in one call [G], as BatchSave answers)."""
        form = _SAVE_FORMS.get((formid or "").casefold())
        if form is None:
            raise _Rejected(4, f"标识为“{formid}”的业务对象不存在，或者被删除。")
        numbers, ids = data.get("Numbers"), data.get("Ids")
        if numbers and not isinstance(numbers, list):
            raise _Rejected(8, "参数Numbers必须是单据编号的数组。")  # [G] exact text
        targets: list[str] = [str(number) for number in numbers or []]
        by_id = bool(not targets and ids)
        if by_id:
            targets = [part.strip() for part in str(ids).split(",") if part.strip()]
        if not targets:
            raise _Rejected(8, "请指定要操作的单据编号(Numbers)或内码(Ids)。")  # [G] exact text
        errors: list[dict[str, Any]] = []
        successes: list[dict[str, Any]] = []
        with self._lock:
            for dindex, target in enumerate(targets):
                found = self._find_bills(form, target, by_id)
                if not found:
                    errors.append(_error(f"单据“{target}”不存在，或者已被删除。", None, dindex))
                    continue
                if len(found) > 1:
                    # Two stock orgs' bills with one number (a coding rule per org): which one
                    # is meant cannot be told by number [G: Kingdee's handling and words].
                    errors.append(
                        _error(f"单据编号“{target}”不唯一，请按内码(Ids)操作。", None, dindex)
                    )
                    continue
                bill = found[0]
                problem = self._transition(operation, form, bill)
                if problem:
                    errors.append(_error(problem, None, dindex))
                else:
                    successes.append({"Id": bill.fid, "Number": bill.bill_no, "DIndex": dindex})
        return _envelope(errors, 11 if errors else 0, successes=successes)

    def _next_number(self, form: _SaveForm, stock_org: str) -> str:
        serial = self._numbers.setdefault((form.form_id, _fold(stock_org)), itertools.count(1))
        return f"{form.number_prefix}{next(serial):06d}"

    def _find_bills(self, form: _SaveForm, target: str, by_id: bool) -> list[_Bill]:
        return [
            bill
            for bill in self._bills
            if bill.form == form.form_id
            and ((str(bill.fid) == target) if by_id else _fold(bill.bill_no) == _fold(target))
        ]

    def _closed_text(self, day: date) -> str:
        # [G] Kingdee's words: the stock org's close date (关账日期) bars the bill's date.
        return f"业务日期{day:%Y-%m-%d}早于或等于库存关账日期{self.closed_until:%Y-%m-%d}，不允许操作。"

    def _closed(self, bill: _Bill) -> str | None:
        if self.closed_until is not None and bill.date.date() <= self.closed_until:
            return self._closed_text(bill.date.date())
        return None

    def _transition(self, operation: str, form: _SaveForm, bill: _Bill) -> str | None:
        """Move ``bill`` as ``operation`` asks; the refusal (Kingdee's words [G]) when it cannot."""
        if operation != "Submit" and (closed := self._closed(bill)) is not None:
            return closed
        state = f"“{bill.bill_no}”的单据状态为“{_STATUS_NAMES.get(bill.status, bill.status)}”"
        if operation == "Submit":
            if bill.status not in ("A", "D"):
                return f"{state}，不能提交。"
            bill.status = "B"
        elif operation == "Audit":
            if bill.status != "B":
                return f"{state}，只有审核中的单据才能审核。"
            if self.approval_workflow:
                return f"“{bill.bill_no}”已启用审批流，请通过工作流审批（WorkflowAudit），不能直接审核。"
            shortage = self._move_stock(form, bill, +1)
            if shortage:
                return shortage
            bill.status = "C"
        elif operation == "UnAudit":
            if bill.status != "C":
                return f"{state}，只有已审核的单据才能反审核。"
            shortage = self._move_stock(form, bill, -1)
            if shortage:
                return shortage
            bill.status = "D"
        else:  # Delete
            if bill.status not in ("A", "D"):
                return f"{state}，不能删除。"
            self._bills.remove(bill)
        return None

    def _move_stock(self, form: _SaveForm, bill: _Bill, sign: int) -> str | None:
        """Audit (+1) or UnAudit (−1) a bill's stock movement; the refusal when on-hand stock of a
        place would go negative (when stock is tracked and negative stock is not allowed). Nothing
        moves unless every entry can.

        Kingdee keeps 即时库存 per material, warehouse, lot and bin (and owner, keeper, status,
        which one org's bills here share): stock of a lot-managed material in lot L1 does not
        cover a bill taking lot L2, nor stock in bin A-1 one taking bin A-2. The entry's lot is
        None unless the material is lot-managed and its bin None unless the warehouse is
        bin-managed (the fields are locked there), so those places are the material's in the
        warehouse. The refusal's wording is a guess; its 即时库存不足 and the numbers are what a
        person searches for."""
        if self.on_hand is None:
            return None
        outbound = (form.form_id == "STK_MisDelivery") == (bill.direction != "RETURN")
        moves: dict[_Place, Decimal] = {}
        for entry in bill.entries:
            place = _Place.of(entry.material, entry.stock, entry.lot, entry.bin)
            change = -entry.qty if outbound else entry.qty
            moves[place] = moves.get(place, Decimal(0)) + change * sign
        for place, change in moves.items():
            available = self.on_hand.get(place, Decimal(0))
            if available + change < 0 and not self.allow_negative_stock:
                return (
                    f"物料“{place.material}”在仓库“{place.stock}”{place.where()}的即时库存不足（可用 "
                    f"{available}，需要 {-change}），不允许负库存。"
                )
        for place, change in moves.items():
            self.on_hand[place] = self.on_hand.get(place, Decimal(0)) + change
        return None

    def _used_by(self, department: str, org: str) -> bool:
        """The department exists and ``org`` uses it."""
        folded = _fold(department)
        if folded not in self._departments:
            return False
        orgs = self._departments[folded]
        return orgs is None or _fold(org) in orgs

    def set_stock(
        self,
        material: str,
        stock: str,
        qty: Decimal,
        *,
        lot: str | None = None,
        bin_number: str | None = None,
    ) -> None:
        """Put ``qty`` on hand for a material in a warehouse — in a lot (lot-managed materials)
        and a bin (bin-managed warehouses) — and turn stock tracking on."""
        with self._lock:
            if self.on_hand is None:
                self.on_hand = {}
            self.on_hand[_Place.of(material, stock, lot, bin_number)] = Decimal(qty)

    def stock_on_hand(
        self, material: str, stock: str, *, lot: str | None = None, bin_number: str | None = None
    ) -> Decimal:
        """What is on hand at one place (0 where nothing was ever put)."""
        with self._lock:
            return (self.on_hand or {}).get(_Place.of(material, stock, lot, bin_number), Decimal(0))

    # -- BatchSave --------------------------------------------------------------------------

    def _batch_save(self, formid: str | None, data: dict[str, Any]) -> dict[str, Any]:
        if not formid:
            raise _Rejected(5, "单据标识(FormId)不能为空。")
        form = _SAVE_FORMS.get(formid.casefold())
        if form is None:
            known = formid.casefold() in ("bd_material", "bd_stock")
            saved = "”、“".join(form.form_id for form in _SAVE_FORMS.values())
            message = (
                f"沙箱只模拟“{saved}”的保存，不支持保存“{formid}”。"
                if known
                else f"标识为“{formid}”的业务对象不存在，或者被删除。"
            )
            raise _Rejected(4, message)
        models = data.get("Model")
        if isinstance(models, Mapping):
            models = [models]
        if not isinstance(models, list) or not models:
            raise _Rejected(8, "data数据包中的参数Model的值不能为空。")
        self._service_time.add(self.per_bill_latency * len(models))
        verify = _truthy(data.get("IsVerifyBaseDataField"), default=False)
        number_search = _truthy(data.get("NumberSearch"), default=True)
        control_precision = _truthy(data.get("IsControlPrecision"), default=False)
        return_fields = [str(name) for name in data.get("NeedReturnFields") or []]
        errors: list[dict[str, Any]] = []
        successes: list[dict[str, Any]] = []
        returned: list[dict[str, Any]] = []
        with self._lock:
            for dindex, model in enumerate(models):
                problems, bill = self._validate(
                    form,
                    model,
                    verify=verify,
                    number_search=number_search,
                    control_precision=control_precision,
                )
                if bill is None:
                    errors.extend(_error(message, name, dindex) for name, message in problems)
                    continue
                stored = next((i for i, b in enumerate(self._bills) if b.fid == bill.fid), None)
                if stored is None:
                    self._bills.append(bill)
                else:
                    self._bills[stored] = bill
                successes.append({"Id": bill.fid, "Number": bill.bill_no, "DIndex": dindex})
                returned.append(self._returned(bill, return_fields))
        envelope = _envelope(errors, 11 if errors else 0, successes=successes)
        envelope["Result"]["NeedReturnData"] = returned
        return envelope

    @staticmethod
    def _returned(bill: _Bill, names: list[str]) -> dict[str, Any]:
        note = _SAVE_FORMS[bill.form.casefold()].note
        header = {
            "fbillno": ("FBillNo", bill.bill_no),
            "fid": ("FID", bill.fid),
            "fdate": ("FDate", _kingdee_date(bill.date)),
            "fdocumentstatus": ("FDocumentStatus", bill.status),
            note.casefold(): (note, bill.note),
            **{name.casefold(): (name, value) for name, value in bill.custom.items()},
        }
        picked = (header.get(name.casefold()) for name in names)
        return dict(item for item in picked if item is not None)

    def _material(self, number: str, org: str) -> KingdeeMaterial | None:
        row = self._materials.get((_fold(number), _fold(org)))
        return row.material if row else None

    def _validate(
        self,
        form: _SaveForm,
        model: Any,
        *,
        verify: bool,
        number_search: bool,
        control_precision: bool = False,
    ) -> tuple[list[tuple[str | None, str]], _Bill | None]:
        """Every problem with one model (FieldName, message), or the bill to store.

        A quantity finer than its unit's precision (BD_UNIT) is refused when the call asks for
        ``IsControlPrecision``, else stored rounded half up [G: the rounding Kingdee applies]."""
        if not isinstance(model, Mapping):
            return [(None, "Model中的单据数据格式不正确。")], None
        problems: list[tuple[str | None, str]] = []
        orgs = {_fold(org) for org in self._orgs}
        warehouses = {_fold(stock) for stock in self._warehouses}

        def reference(
            source: Mapping[str, Any],
            name: str,
            exists: Callable[[str], bool],
            row: int | None = None,
        ) -> str | None:
            """A base-data reference by number; unresolved → silently empty unless verifying."""
            where = f"第{row}行" if row is not None else ""
            number = _ref_number(source.get(name)) if number_search else None
            if number is None:
                problems.append((name, f"{where}字段“{_LABELS[name]}”是必填项。"))
                return None
            if not exists(number):
                message = (
                    f"{where}字段“{_LABELS[name]}”的值“{number}”在系统中不存在或已禁用。"
                    if verify
                    else f"{where}字段“{_LABELS[name]}”是必填项。"
                )
                problems.append((name, message))
                return None
            return number

        def choice(
            source: Mapping[str, Any], name: str, allowed: frozenset[str], row: int | None = None
        ) -> str | None:
            where = f"第{row}行" if row is not None else ""
            value = source.get(name)
            if value is None or not str(value).strip():
                problems.append((name, f"{where}字段“{_LABELS[name]}”是必填项。"))
                return None
            if str(value).strip().casefold() not in allowed:
                problems.append((name, f"{where}字段“{_LABELS[name]}”的值“{value}”不合法。"))
                return None
            return str(value).strip()

        # A model with the FID of a stored bill changes that bill (修改): only while it is
        # created or re-audit (A, D), and outside a closed period; its number stays.
        fid = str(model.get("FID") or "").strip()
        changed: _Bill | None = None
        if fid not in ("", "0"):
            changed = next(
                (b for b in self._bills if b.form == form.form_id and str(b.fid) == fid), None
            )
            if changed is None:
                problems.append(("FID", f"内码为“{fid}”的单据不存在，或者已被删除。"))
            elif changed.status not in ("A", "D"):
                status = _STATUS_NAMES.get(changed.status, changed.status)
                problems.append(("FID", f"“{changed.bill_no}”的单据状态为“{status}”，不能修改。"))
            elif (closed := self._closed(changed)) is not None:
                problems.append(("FDate", closed))
        bill_no = changed.bill_no if changed else str(model.get("FBillNo") or "").strip()
        if self.numbering == "auto" and changed is None:
            bill_no = ""  # the coding rule numbers the bill, whatever was sent
        if (
            self.unique_bill_no
            and bill_no
            and any(
                bill.form == form.form_id
                and _fold(bill.bill_no) == _fold(bill_no)
                and bill is not changed
                for bill in self._bills
            )
        ):
            problems.append(("FBillNo", f"单据编号“{bill_no}”已经存在，不允许重复保存。"))
        bill_type = reference(
            model, "FBillTypeID", lambda number: number.casefold() in form.bill_types
        )
        stock_org = reference(model, "FStockOrgId", lambda number: _fold(number) in orgs)
        pick_org = None
        if form.pick_org:
            pick_org = reference(model, form.pick_org, lambda number: _fold(number) in orgs)
        direction = choice(model, "FStockDirect", _STOCK_DIRECTIONS)
        bill_date = _parse_date(model.get("FDate"))
        if model.get("FDate") in (None, ""):
            problems.append(("FDate", "字段“日期”是必填项。"))
        elif bill_date is None:
            problems.append(("FDate", f"字段“日期”的值“{model.get('FDate')}”格式不正确。"))
        elif self.closed_until is not None and bill_date.date() <= self.closed_until:
            problems.append(("FDate", self._closed_text(bill_date.date())))
        choice(model, "FOwnerTypeIdHead", _OWNER_TYPES)
        reference(model, "FBaseCurrId", lambda number: number.casefold() in _CURRENCIES)
        if model.get("FOwnerIdHead") is not None:
            reference(model, "FOwnerIdHead", lambda number: _fold(number) in orgs)
        dept = None
        if model.get(form.dept) is not None:
            # [G] Kingdee offers the departments of the bill's 领用组织 (the stock org when none
            # is sent): one of another org is as unknown as a number that does not exist.
            user = pick_org or stock_org or ""
            dept = reference(model, form.dept, lambda number: self._used_by(number, user))
        if model.get(form.partner) is not None:
            # Customers and suppliers are not simulated: any reference to one is unresolvable.
            reference(model, form.partner, lambda number: False)
        elif model.get(form.dept) is None:
            problems.append((form.dept, f"字段“{_LABELS[form.dept]}”是必填项。"))
        lines = model.get("FEntity")
        if not isinstance(lines, list) or not lines:
            problems.append(("FEntity", "单据体“明细信息”至少需要一行分录。"))
            lines = []
        entries: list[_Entry] = []
        for row, line in enumerate(lines, start=1):
            if not isinstance(line, Mapping):
                problems.append(("FEntity", f"第{row}行分录数据格式不正确。"))
                continue
            org = stock_org or ""

            def material_exists(number: str, org: str = org) -> bool:
                material = self._material(number, org)
                if material is None:
                    return False
                # IsVerifyBaseDataField: a disabled or unaudited record counts as non-existent.
                return not verify or (not material.forbidden and material.document_status == "C")

            if form.in_stock_type:
                choice(line, form.in_stock_type, _IN_STOCK_TYPES, row)
            material_no = reference(line, form.material, material_exists, row)
            material = self._material(material_no, org) if material_no else None
            unit = reference(line, "FUnitID", lambda number: True, row)
            base_unit = reference(line, "FBaseUnitId", lambda number: True, row)
            if material is not None:
                for name, given in (("FUnitID", unit), ("FBaseUnitId", base_unit)):
                    if given is not None and _fold(given) != _fold(material.base_unit):
                        problems.append(
                            (
                                name,
                                f"第{row}行字段“{_LABELS[name]}”的值“{given}”与物料“{material.number}”"
                                f"的基本单位“{material.base_unit}”不一致。",
                            )
                        )
            qty = self._quantity(line.get("FQty"), row, problems)
            if qty is not None and (unit or material is not None):
                qty = self._at_precision(
                    qty, self.unit(unit or material.base_unit), row, control_precision, problems
                )
            stock = reference(
                line,
                form.stock,
                lambda number, org=org: (
                    _fold(number) in warehouses
                    and self._warehouse_orgs.get(_fold(number), _fold(org)) == _fold(org)
                ),
                row,
            )
            bin_number = self._bin(form, line, stock, row, problems)
            if material is not None and material.shelf_life:
                dates = [
                    _parse_date(line.get(name)) for name in (form.produce_date, form.expiry_date)
                ]
                if not any(dates):
                    problems.append(
                        (
                            form.produce_date,
                            f"第{row}行物料“{material.number}”启用了保质期管理，字段“生产日期”是必填项。",
                        )
                    )
            entry_custom = self._custom_values(line, self._custom_entry_fields, row, problems)
            lot = _ref_number(line.get(form.lot))
            if material is not None and material.batch_managed and lot is None:
                problems.append(
                    (
                        form.lot,
                        f"第{row}行物料“{material.number}”启用了批号管理，字段“批号”是必填项。",
                    )
                )
            if material is not None and not material.batch_managed:
                lot = None  # the field is locked for materials without lot management
            if line.get(form.stock_status) is not None:
                reference(
                    line,
                    form.stock_status,
                    lambda number: number.casefold() in _STOCK_STATUSES,
                    row,
                )
            if line.get(form.owner_type) is not None:
                choice(line, form.owner_type, _OWNER_TYPES, row)
            if line.get(form.keeper_type) is not None:
                choice(line, form.keeper_type, _KEEPER_TYPES, row)
            for name in (form.owner, form.keeper):
                if line.get(name) is not None:
                    reference(line, name, lambda number: _fold(number) in orgs, row)
            if material_no and unit and qty is not None and stock:
                entries.append(
                    _Entry(
                        next(self._entry_ids),
                        row,
                        material_no,
                        qty,
                        unit,
                        stock,
                        lot,
                        bin_number,
                        entry_custom,
                    )
                )
        header_custom = self._custom_values(model, self._custom_fields, None, problems)
        if problems or bill_date is None:
            return problems, None
        bill = _Bill(
            form=form.form_id,
            fid=changed.fid if changed else next(self._ids),
            bill_no=bill_no or self._next_number(form, stock_org or ""),
            date=bill_date.replace(hour=0, minute=0, second=0),
            status=changed.status if changed else "A",
            note=str(model.get(form.note) or ""),
            bill_type=bill_type or "",
            stock_org=stock_org or "",
            pick_org=pick_org or "",
            dept=dept,
            direction=(direction or "").upper(),
            entries=entries,
            custom=header_custom,
        )
        return [], bill

    def _custom_values(
        self,
        source: Mapping[str, Any],
        names: Iterable[str],
        row: int | None,
        problems: list[tuple[str | None, str]],
    ) -> dict[str, str]:
        """The customer's own fields of a header or an entry; a required one that is empty is
        refused (必录)."""
        values = {name: str(source[name]) for name in names if source.get(name) not in (None, "")}
        where = f"第{row}行" if row is not None else ""
        for name in names:
            if _fold(name) in self._required and name not in values:
                problems.append((name, f"{where}字段“{name}”是必填项。"))
        return values

    @staticmethod
    def _at_precision(
        qty: Decimal,
        unit: KingdeeUnit,
        row: int,
        control: bool,
        problems: list[tuple[str | None, str]],
    ) -> Decimal:
        step = Decimal(1).scaleb(-unit.precision)
        rounded = qty.quantize(step, rounding=ROUND_HALF_UP)
        if rounded == qty:
            return qty
        if control:
            problems.append(
                (
                    "FQty",
                    f"第{row}行字段“实发数量”的值“{qty}”超出了单位“{unit.name}”的精度"
                    f"（{unit.precision}位小数）。",
                )
            )
        return rounded

    def _bin(
        self,
        form: _SaveForm,
        line: Mapping[str, Any],
        stock: str | None,
        row: int,
        problems: list[tuple[str | None, str]],
    ) -> str | None:
        """The entry's bin in a bin-managed warehouse (Kingdee's flex-field shape
        ``{"FSTOCKLOCID__FF100001": {"FNumber": …}}``); None elsewhere (the field is locked)."""
        bins = self._bins.get(_fold(stock)) if stock else None
        if bins is None:
            return None
        value = line.get(form.bin)
        flex = f"{form.bin}__{BIN_FLEX}".casefold()
        inner = None
        if isinstance(value, Mapping):
            inner = next((v for k, v in value.items() if str(k).casefold() == flex), None)
        number = _ref_number(inner)
        label = _LABELS[form.bin]
        if number is None:
            problems.append(
                (form.bin, f"第{row}行仓库“{stock}”启用了仓位管理，字段“{label}”是必填项。")
            )
            return None
        if _fold(number) not in bins:
            problems.append(
                (form.bin, f"第{row}行字段“{label}”的值“{number}”在系统中不存在或已禁用。")
            )
            return None
        return number

    @staticmethod
    def _quantity(value: Any, row: int, problems: list[tuple[str | None, str]]) -> Decimal | None:
        if value is None or value == "":
            problems.append(("FQty", f"第{row}行字段“实发数量”是必填项。"))
            return None
        try:
            if isinstance(value, bool):
                raise InvalidOperation
            qty = Decimal(str(value))
        except InvalidOperation:
            problems.append(("FQty", f"第{row}行字段“实发数量”的值“{value}”不是有效的数值。"))
            return None
        if not qty.is_finite() or qty <= 0:
            problems.append(("FQty", f"第{row}行字段“实发数量”必须大于0。"))
            return None
        return qty

    # -- ExecuteBillQuery -------------------------------------------------------------------

    def queries(self) -> list[dict[str, Any]]:
        """The ExecuteBillQuery requests received (their FormId, FilterString, OrderString, paging),
        oldest first, the last 1000: what a test checks a client's look-ups by."""
        with self._lock:
            return list(self._query_log)

    def _query(self, data: dict[str, Any]) -> list[list[Any]]:
        with self._lock:
            self._query_log.append(
                {
                    key: data.get(key)
                    for key in ("FormId", "FieldKeys", "FilterString", "OrderString", "StartRow")
                }
            )
        form_id = str(data.get("FormId") or "").strip()
        if not form_id:
            raise _Rejected(5, "data数据包中的参数FormId的值不能为空。")
        fields = self._forms.get(form_id.casefold())
        if fields is None:
            raise _Rejected(4, f"标识为“{form_id}”的业务对象不存在，或者被删除。")
        raw_keys = data.get("FieldKeys")
        if isinstance(raw_keys, list):
            raw_keys = ",".join(str(key) for key in raw_keys)
        keys = [key.strip() for key in str(raw_keys or "").split(",") if key.strip()]
        if not keys:
            raise _Rejected(8, "data数据包中的参数FieldKeys的值不能为空。")

        def known(name: str) -> str:
            if name.casefold() not in fields:
                raise _Rejected(9, f"元数据中标识为{name}的字段不存在")
            return name.casefold()

        selected = [known(key) for key in keys]
        filter_text = data.get("FilterString") or ""
        if not isinstance(filter_text, str):
            raise _Rejected(4, "GetRealExpress error: 沙箱只支持字符串形式的FilterString。")
        try:
            parser = _FilterParser(filter_text, known)
            predicate = parser.parse() if filter_text.strip() else (lambda get: True)
        except _FilterSyntaxError as syntax:
            raise _Rejected(
                4, f"GetRealExpress error: {syntax}（FilterString: {filter_text}）"
            ) from None
        order = self._order(str(data.get("OrderString") or ""), known)
        used = set(selected) | parser.fields | {key for key, _ in order}
        with self._lock:
            rows = self._rows(form_id.casefold(), any(fields[key].entry for key in used))

        def getter(row: Any) -> Callable[[str], Any]:
            return lambda key: fields[key].get(row)

        try:
            matched = [row for row in rows if predicate(getter(row))]
        except _FilterSyntaxError as syntax:
            raise _Rejected(
                4, f"GetRealExpress error: {syntax}（FilterString: {filter_text}）"
            ) from None
        for key, descending in reversed(order):
            matched.sort(
                key=lambda row, key=key: _sort_key(fields[key].get(row)), reverse=descending
            )
        top = _int(data.get("TopRowCount"))
        if top > 0:
            matched = matched[:top]
        start = max(0, _int(data.get("StartRow")))
        limit = _int(data.get("Limit"))
        limit = _DEFAULT_LIMIT if limit <= 0 else min(limit, _MAX_LIMIT)
        page = matched[start : start + limit]
        return [[_json_value(fields[key].get(row)) for key in selected] for row in page]

    @staticmethod
    def _order(text: str, known: Callable[[str], str]) -> list[tuple[str, bool]]:
        order = []
        for part in (piece.strip() for piece in text.split(",")):
            if not part:
                continue
            words = part.split()
            direction = words[1].lower() if len(words) > 1 else "asc"
            if len(words) > 2 or direction not in ("asc", "desc"):
                raise _Rejected(4, f"OrderString格式不正确：{part}")
            order.append((known(words[0]), direction == "desc"))
        return order

    def _rows(self, form: str, per_entry: bool) -> list[Any]:
        """The form's rows in primary-key order (Kingdee's default), one per entry if asked."""
        if form in _SAVE_FORMS:
            bills = sorted(
                (bill for bill in self._bills if bill.form.casefold() == form),
                key=lambda bill: bill.fid,
            )
            if per_entry:
                return [(bill, entry) for bill in bills for entry in bill.entries]
            return [(bill, None) for bill in bills]
        if form == "bd_material":
            return sorted(self._materials.values(), key=lambda row: row.material_id)
        if form == "bd_unit":
            numbers = {
                _fold(row.material.base_unit): row.material.base_unit
                for row in self._materials.values()
            }
            known = {key: self.unit(number) for key, number in numbers.items()}
            known.update(self._units)
            return [(10001 + index, unit) for index, (_, unit) in enumerate(sorted(known.items()))]
        return [
            (100001 + index * len(self._orgs) + org_index, stock, org)
            for index, stock in enumerate(self._warehouses)
            for org_index, org in enumerate(self._orgs)
            if self._warehouse_orgs.get(_fold(stock), _fold(org)) == _fold(org)
        ]

    # -- admin API --------------------------------------------------------------------------

    def _admin(self, request: SimRequest) -> SimResponse:
        route = (request.method, request.path.rstrip("/"))
        if route == ("GET", "/__admin__/state"):
            return SimResponse.json(self.state())
        if route == ("POST", "/__admin__/reset"):
            self.reset()
            return SimResponse.json({"ok": True})
        if route == ("POST", "/__admin__/materials"):
            try:
                material = _MATERIAL_BODY.validate_json(request.body or b"{}")
            except ValidationError as invalid:
                return SimResponse.json({"error": str(invalid)}, 400)
            self.add_material(material)
            return SimResponse.json({"ok": True, "material": asdict(material)})
        if route == ("POST", "/__admin__/faults"):
            return self._add_faults(request.body)
        if route == ("DELETE", "/__admin__/faults"):
            self.faults.clear()
            return SimResponse.json({"ok": True})
        return SimResponse.json({"error": f"no admin route {request.method} {request.path}"}, 404)

    def _add_faults(self, raw: bytes) -> SimResponse:
        """Add every rule or none: a bad one is reported and nothing changes."""
        try:
            texts = json.loads(raw or b"{}").get("rules")
            if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
                raise ValueError('body must be {"rules": ["KIND[@OPERATION][,key=value...]", ...]}')
            rules = [FaultRule.parse(text) for text in texts]
            for rule in rules:
                if rule.kind not in _SUPPORTED_FAULTS:
                    raise ValueError(
                        f"fault kind {rule.kind!r} is not supported here; "
                        f"supported: {sorted(_SUPPORTED_FAULTS)}"
                    )
                if rule.operation not in ("*", *_SERVICES.values()):
                    raise ValueError(
                        f"unknown operation {rule.operation!r}; known: {sorted(_SERVICES.values())}"
                    )
        except (ValueError, AttributeError, ValidationError) as bad:
            return SimResponse.json({"error": str(bad)}, 400)
        for rule in rules:
            self.faults.add(rule)
        return SimResponse.json({"ok": True, "faults": self.faults.snapshot()})


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _sort_key(value: Any) -> tuple[int, Any]:
    """NULLs first, strings by collation (case-insensitive), everything else natively."""
    if value is None:
        return (0, "")
    if isinstance(value, str):
        return (1, _fold(value))
    if isinstance(value, date):
        return (2, value)
    return (3, value)
