"""Pure: a flow's typed WDT lines + Kingdee materials and units → the day's bills.

The mapping (``mapping.py``) says how a document becomes a bill of the flow's form; this module
judges each document against what Kingdee said of its materials and units (held, with the
reasons, or ready), groups the ready ones by the mapping's strategy, and makes the models sent
to BatchSave (``wire_model``: quantities as exact JSON numbers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from wdt_kingdee_assets.blockers import blocker_key
from wdt_kingdee_assets.bulk import gc_paused
from wdt_kingdee_assets.grouping import SourceLine, merge_documents
from wdt_kingdee_assets.kingdee.forms import KingdeeForm
from wdt_kingdee_assets.mapping import (
    LINE_FIELDS,
    MERGED_FIELDS,
    REFERENCE_PLACEHOLDER,
    EntryMaker,
    MappingConfig,
    References,
)
from wdt_kingdee_assets.outcomes import Readiness
from wdt_kingdee_assets.reference import reference_token
from wdt_kingdee_assets.units import Unit, round_quantity

if TYPE_CHECKING:
    from wdt_kingdee_assets.frames import FrameSchema
    from wdt_kingdee_assets.source import Source

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T]\d{2}:\d{2}:\d{2})?")


class Material(Protocol):
    """What the mapping needs to know of a Kingdee material (BD_MATERIAL)."""

    @property
    def number(self) -> str:
        """Its FNumber: what the entry names (the WDT spec_no, unless a code map says else)."""
        ...

    @property
    def base_unit(self) -> str | None: ...

    @property
    def batch_managed(self) -> bool:
        """FIsBatchManage: every entry needs a lot."""
        ...

    @property
    def shelf_life(self) -> bool:
        """FIsKFPeriod: entries carry production and expiry dates."""
        ...

    @property
    def usable(self) -> bool: ...

    @property
    def state(self) -> str:
        """What Kingdee says of it, short (``disabled``, ``usable:Pcs`` …): whether it changed."""
        ...


ABSENT = "absent"  # the state of a material Kingdee does not have


def wire_quantity(quantity: Decimal | str) -> int | float | str:
    """A quantity as a JSON number when that is exact, else as its decimal string.

    Kingdee's templates send FQty as a number; a float whose shortest repr equals the decimal is
    exact on the wire. Anything that would not round-trip is sent as text rather than rounded.
    """
    value = Decimal(str(quantity))
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


def wire_model(model: Mapping[str, Any], form: KingdeeForm) -> dict[str, Any]:
    """A stored model, ready for BatchSave's JSON: quantities as exact numbers."""
    wired = dict(model)
    quantity = form.quantity
    wired[form.entry] = [
        {**entry, quantity: wire_quantity(entry[quantity])} for entry in model[form.entry]
    ]
    return wired


def _format(template: str, values: Mapping[str, Any], fields: frozenset[str]) -> str:
    return template.format(
        **{name: "" if values.get(name) is None else values[name] for name in fields}
    )


def _note_values(header: Mapping[str, Any]) -> dict[str, Any]:
    """The template values of a bill: its header fields, the source ref as its token."""
    return {**header, REFERENCE_PLACEHOLDER: reference_token(header["source_ref"])}


def _kingdee_date(text: str | None) -> tuple[str | None, bool]:
    """(yyyy-MM-dd, True) from WDT's date text; (None, True) when there is none; (None, False)
    when it is not a date."""
    if text is None:
        return None, True
    match = _DATE.fullmatch(text)
    return (match.group(1), True) if match else (None, False)


@dataclass
class _Part:
    """One usable row of a document, as its entry will carry it."""

    row: int
    material: str  # the Kingdee material number
    unit: str
    quantity: Decimal  # exact, in the Kingdee unit
    precision: int
    lot: str | None
    detail: tuple[str | None, ...]


class _Reasons:
    """Why a document is held, collected per kind so that each is said once."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list[str]] = {}

    def add(self, kind: str, item: str) -> None:
        items = self.by_kind.setdefault(kind, [])
        if item not in items:
            items.append(item)

    def text(self) -> list[str]:
        return [f"{kind}: " + ", ".join(items) for kind, items in self.by_kind.items()]


def spec_nos_by_org(lines: pd.DataFrame, config: MappingConfig, org: str) -> dict[str, list[str]]:
    """Stock org → the spec_nos of the usable lines whose bills go to it: what to look up in
    Kingdee, where a material is enabled per use-org (``org``: the flow's default)."""
    usable = lines[lines["reject_reason"].isna()]
    found: dict[str, set[str]] = {}
    for spec_no, warehouse_no, warehouse_name in zip(
        usable["spec_no"], usable["warehouse_no"], usable["warehouse_name"], strict=True
    ):
        stock_org = config.stock_org_of(
            None if pd.isna(warehouse_no) else warehouse_no,
            None if pd.isna(warehouse_name) else warehouse_name,
            org,
        )
        found.setdefault(stock_org, set()).add(spec_no)
    return {stock_org: sorted(numbers) for stock_org, numbers in found.items()}


def build_bills(
    lines: pd.DataFrame,
    materials: Mapping[str, Mapping[str, Material]],
    config: MappingConfig,
    org: str,
    source: Source,
    schema: FrameSchema,
    earlier: Mapping[str, int] | None = None,
    own: frozenset[str] = frozenset(),
    *,
    units: Mapping[str, Unit],
) -> pd.DataFrame:
    """The day's bills (``schema``: the flow's bills columns), each ``ready`` or ``held`` with the
    reasons.

    ``materials`` maps each stock org to what each WDT spec_no is there (by the mapping's code
    map; a spec_no Kingdee lacks or has not assigned to the org is absent): a document's
    materials are those of its warehouse's stock org (``spec_nos_by_org``; ``org`` is the flow's
    default). ``units`` maps each Kingdee unit number (case-folded) to its BD_UNIT record. First each document is judged: it is held when any of its lines was
    rejected (a partial bill would misstate the document), when Kingdee lacks or has disabled one
    of its materials, when a line's unit is not the material's Kingdee unit and no conversion is
    configured, when a lot-managed material has no batch, a shelf-life material no dates or a
    bin-managed warehouse no bin, when a quantity rounds to nothing at its unit's precision, or
    when its warehouse is not mapped. Lines without a document id cannot form a bill; they stay
    visible in the normalized lines and their rejected-lines check.
    Then the mapping's ``strategy`` groups the ready documents: one bill each (``per_stockout``),
    or merged per warehouse and day (``per_day_warehouse``, ``grouping.py``; ``earlier`` says
    which batch each document was built into before, so that no built bill changes; the
    documents in ``own`` already have a bill of their own in Kingdee and keep it). A held
    document is its own held row either way. Quantities are converted exactly, then rounded half
    up to the unit's precision per entry; each rounding is listed on its bill (``roundings``).

    One pass over the lines sorted by document (stable, so each bill keeps WDT's line order),
    on plain lists: per-group pandas calls would cost far more than the work itself.
    """
    key, number = source.key, source.number
    form = config.FORM
    main_org = config.main_org(org)
    note_fields = config.note_fields()
    header_fields = config.header_template_fields()
    entry_fields = config.DOCUMENT_FIELDS | LINE_FIELDS
    ref = References()
    makers: dict[tuple[str, str], EntryMaker] = {}

    def entry_maker(stock_org: str, owner_org: str) -> EntryMaker:
        maker = makers.get((stock_org, owner_org))
        if maker is None:
            maker = makers[stock_org, owner_org] = config.entries(stock_org, owner_org, ref)
        return maker

    identified = lines[lines[key].notna()].sort_values(key, kind="stable")
    # The document time only gives the bill's date: as text, in one vectorized call (a list of
    # the times would be a pandas Timestamp made per line).
    bill_dates = identified[source.time_field].dt.strftime("%Y-%m-%d").tolist()
    column = {
        name: identified[name].tolist() for name in identified.columns if name != source.time_field
    }
    ids, reject, spec = column[key], column["reject_reason"], column["spec_no"]
    lot_numbers, rec_ids, quantities = column["batch_no"], column["rec_id"], column["num"]
    wdt_units, positions = column["base_unit_name"], column["position_no"]
    produced_on, expires_on = column["production_date"], column["expire_date"]
    # (spec_no, WDT unit) → (factor, unit, reason): judged once per pair, not per line.
    conversions: dict[tuple[str, str | None], tuple[Decimal | None, Unit | None, str | None]] = {}

    def conversion(spec_no: str, wdt_unit: str | None, base_unit: str):
        found = conversions.get((spec_no, wdt_unit))
        if found is None:
            unit = units.get(base_unit.casefold())
            if unit is None:
                found = (None, None, f"unit {base_unit} is not in Kingdee BD_UNIT ({spec_no})")
            else:
                factor, why = config.units.factor(spec_no, wdt_unit, unit)
                found = (factor, unit, why)
            conversions[(spec_no, wdt_unit)] = found
        return found

    def number_of(spec_no: str, known: Mapping[str, Material]) -> str:
        """The Kingdee number a spec_no stands for: the one found, else the code table's or
        its own (what the held-bills sensor asks Kingdee about)."""
        mapped = known.get(spec_no)
        if mapped is not None:
            return mapped.number
        codes = config.materials
        return codes.from_table(spec_no) or codes.fallback(spec_no) or spec_no

    def material_label(spec_no: str, known: Mapping[str, Material]) -> str:
        number_in_kingdee = number_of(spec_no, known)
        return spec_no if number_in_kingdee == spec_no else f"{spec_no} → {number_in_kingdee}"

    def judged(first: int, end: int) -> dict[str, Any]:
        """One document: its header, its usable parts, and why it is held (if it is)."""
        warehouse_name = column["warehouse_name"][first]
        warehouse_no, no_warehouse = config.warehouse_of(
            column["warehouse_no"][first], warehouse_name
        )
        reasons = [no_warehouse] if no_warehouse else []
        target = config.target(warehouse_no) if warehouse_no else None
        if warehouse_no and target is None:
            reasons.append(f"warehouse {warehouse_no} is not mapped to a Kingdee FStockId")
        stock_org, owner_org = config.orgs(org, target)
        known = materials.get(stock_org, {})
        header = {
            key: int(ids[first]),
            number: column[number][first],
            "process_no": column["process_no"][first],
            "warehouse_no": warehouse_no,
            "warehouse_name": warehouse_name,
            "stock_org": stock_org,
            "owner_org": owner_org,
        }
        bill_date = bill_dates[first]
        # A document's own bill stands for it: the document's number is its source reference.
        header["source_ref"] = header[number]
        header["bill_no"] = (
            _format(config.bill_no_template, header, config.DOCUMENT_FIELDS)
            if header[number]
            else None
        )
        header["bill_date"] = None if pd.isna(bill_date) else bill_date

        rejected = [reject[k] for k in range(first, end) if reject[k] is not None]
        if rejected:
            reasons.append(f"{len(rejected)} rejected line(s): " + "; ".join(sorted(set(rejected))))
        usable = [k for k in range(first, end) if reject[k] is None]
        spec_nos = sorted({spec[k] for k in usable})
        missing = [n for n in spec_nos if n not in known or not known[n].usable]
        if missing:
            reasons.append(
                "物料在金蝶中不存在或已禁用 / material missing or disabled in Kingdee "
                f"(use-org {stock_org}): " + ", ".join(material_label(n, known) for n in missing)
            )
        no_unit = [n for n in spec_nos if n not in missing and not known[n].base_unit]
        if no_unit:
            reasons.append("material has no base unit in Kingdee: " + ", ".join(no_unit))
        bins = config.bins.get(target.stock) if target else None
        held_by = _Reasons()
        settings: dict[str, str] = {}  # blocker → its state, for a hold by its settings
        parts: list[_Part] = []
        for k in usable:
            material = known.get(spec[k])
            if material is None or not material.usable or not material.base_unit:
                continue
            factor, unit, why = conversion(spec[k], wdt_units[k], material.base_unit)
            if why:
                held_by.add("单位 / unit", why)
                continue
            lot = lot_numbers[k] if config.lot_from_batch_no else None
            if material.batch_managed and not lot:
                held_by.add(
                    "物料启用了批号管理，旺店通未给出批次 / lot-managed material without a batch",
                    material_label(spec[k], known),
                )
                settings[blocker_key(material.number, stock_org, main_org)] = material.state
            produced = expires = None
            if material.shelf_life:
                produced, produced_ok = _kingdee_date(produced_on[k])
                expires, expires_ok = _kingdee_date(expires_on[k])
                if not (produced_ok and expires_ok):
                    held_by.add(
                        "日期格式不正确 / production or expiry date is not a date",
                        f"{spec[k]} ({produced_on[k]!r}, {expires_on[k]!r})",
                    )
                elif produced is None and expires is None:
                    held_by.add(
                        "保质期管理物料缺少生产日期和有效期 / shelf-life material without "
                        "production or expiry date",
                        material_label(spec[k], known),
                    )
                    settings[blocker_key(material.number, stock_org, main_org)] = material.state
            flex = bin_number = None
            if bins is not None:
                flex, bin_number = bins.flex_field, bins.bin_for(positions[k])
                if bin_number is None:
                    held_by.add(
                        f"仓库 {target.stock} 启用了仓位管理 / bin-managed warehouse "
                        f"{target.stock}: no bin for position_no",
                        str(positions[k] or "(none)"),
                    )
            quantity = quantities[k] * factor
            if round_quantity(quantity, unit.precision) <= 0:
                held_by.add(
                    "按单位精度舍入后数量为0 / quantity rounds to 0 at the unit's precision",
                    f"{spec[k]} {quantity} {unit.number} (precision {unit.precision})",
                )
            detail = (flex, bin_number, produced, expires) if bins or material.shelf_life else ()
            parts.append(
                _Part(k, material.number, unit.number, quantity, unit.precision, lot, detail)
            )
        reasons += held_by.text()
        ready = bool(not reasons and header["bill_no"] and header["bill_date"] and target)
        return {
            **header,
            "readiness": Readiness.READY if ready else Readiness.HELD,
            "hold_reason": None if ready else "; ".join(reasons),
            "missing_materials": [material_label(n, known) for n in missing],
            "missing_states": {
                **{
                    blocker_key(number_of(n, known), stock_org, main_org): (
                        known[n].state if n in known else ABSENT
                    )
                    for n in missing
                },
                **settings,
            },
            "line_count": end - first,
            "model": None,
            "sources": [header[number]] if header[number] else [],
            "lineage": None,
            "roundings": None,
            "material_numbers": _renumbered(spec, ((p.row, p.material) for p in parts)),
            "department": target.department if target else None,
            "_parts": parts,
            "_stock": target.stock if target else None,
        }

    def custom_header(values: Mapping[str, Any]) -> dict[str, str]:
        made = {
            name: _format(template, values, header_fields)
            for name, template in config.header_fields.items()
        }
        return {name: value for name, value in made.items() if value}

    def custom_entry(k: int, values: Mapping[str, Any]) -> dict[str, str] | None:
        if not config.entry_fields:
            return None
        row = {name: column[name][k] for name in LINE_FIELDS}
        made = {
            name: _format(template, {**values, **row}, entry_fields)
            for name, template in config.entry_fields.items()
        }
        return {name: value for name, value in made.items() if value}

    def model(bill: Mapping[str, Any], values: Mapping[str, Any], made: list[dict]) -> dict:
        note = _format(config.note_template, _note_values(values), note_fields)
        built = config.header(bill, note, org, ref)
        if config.reference_field != form.note:
            built[config.reference_field] = reference_token(values["source_ref"])
        built.update(custom_header(values))
        built[form.entry] = made
        return built

    def sent(
        quantity: Decimal, precision: int, seq: int, item: Any, roundings: list[dict[str, Any]]
    ) -> Decimal:
        """The quantity sent for entry ``seq``: rounded to its unit's precision, said if so."""
        rounded = round_quantity(quantity, precision)
        if rounded != quantity:
            roundings.append(
                {
                    "entry": seq,
                    "material": item.material,
                    "exact": str(quantity),
                    "sent": str(rounded),
                    "unit": item.unit,
                    "precision": precision,
                }
            )
        return rounded

    def own_bill(document: dict[str, Any]) -> dict[str, Any]:
        """A ready document's bill of its own (``per_stockout``)."""
        entry = entry_maker(document["stock_org"], document["owner_org"])
        roundings: list[dict[str, Any]] = []
        made = [
            entry(
                part.material,
                part.unit,
                sent(part.quantity, part.precision, seq, part, roundings),
                document["_stock"],
                part.lot,
                rec_ids[part.row],
                part.detail,
                custom_entry(part.row, document),
            )
            for seq, part in enumerate(document["_parts"], start=1)
        ]
        return {
            **document,
            "model": model(document, document, made),
            "roundings": roundings or None,
        }

    def merged_bills(ready: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ready documents merged per warehouse and day (``per_day_warehouse``)."""
        groups: dict[tuple[Any, ...], dict[str, list[SourceLine]]] = {}
        for document in ready:
            where = (
                document["bill_date"],
                document["warehouse_no"],
                document["_stock"],
                document["department"],
                document["stock_org"],
                document["owner_org"],
            )
            lines_of = groups.setdefault(where, {})[document[number]] = []
            for part in document["_parts"]:
                lines_of.append(
                    SourceLine(
                        document[number],
                        None if rec_ids[part.row] is pd.NA else rec_ids[part.row],
                        part.material,
                        part.unit,
                        part.quantity,
                        part.lot,
                        part.detail,
                        part.row,
                    )
                )
        bills = []
        for where, documents in sorted(groups.items(), key=lambda item: str(item[0])):
            bill_date, warehouse_no, stock, department, stock_org, owner_org = where
            entry = entry_maker(stock_org, owner_org)
            parts = merge_documents(
                documents,
                earlier or {},
                max_lines=config.max_lines,
                merge_lines=config.merge_lines,
            )
            for part in parts:
                date_digits = bill_date.replace("-", "")
                bill = {
                    "warehouse_no": warehouse_no,
                    "bill_date": bill_date,
                    "bill_no": _format(
                        config.merged_bill_no_template,
                        {"warehouse_no": warehouse_no, "date": date_digits, "part": part.label},
                        MERGED_FIELDS,
                    ),
                    "source_ref": f"{bill_date}/{warehouse_no}/{part.label}",
                    # The note's {process_no}: how many documents the bill merges.
                    "process_no": f"合并生单 {len(part.sources)} 张",
                    "department": department,
                    "stock_org": stock_org,
                    "owner_org": owner_org,
                }
                roundings: list[dict[str, Any]] = []
                # An entry's own fields come from its first line: its material, lot, bin and
                # dates are those of every line it adds up.
                made = [
                    entry(
                        item.material,
                        item.unit,
                        sent(
                            item.quantity,
                            units[item.unit.casefold()].precision,
                            seq,
                            item,
                            roundings,
                        ),
                        stock,
                        item.lot,
                        None,
                        item.detail,
                        custom_entry(item.lineage[0].origin, bill),
                    )
                    for seq, item in enumerate(part.entries, start=1)
                ]
                bills.append(
                    {
                        **bill,
                        "readiness": Readiness.READY,
                        "missing_materials": [],
                        "missing_states": {},
                        "line_count": len(made),
                        "model": model(bill, bill, made),
                        "sources": part.sources,
                        "lineage": [
                            [
                                [line.document, line.rec_id, quantities[line.origin]]
                                for line in item.lineage
                            ]
                            for item in part.entries
                        ],
                        "roundings": roundings or None,
                        "material_numbers": _renumbered(
                            spec,
                            (
                                (line.origin, line.material)
                                for e in part.entries
                                for line in e.lineage
                            ),
                        ),
                    }
                )
        return bills

    documents = []
    first = 0
    with gc_paused():
        while first < len(ids):
            end = first + 1
            while end < len(ids) and ids[end] == ids[first]:
                end += 1
            documents.append(judged(first, end))
            first = end
        held = [document for document in documents if document["readiness"] == Readiness.HELD]
        ready = [document for document in documents if document["readiness"] == Readiness.READY]
        if config.strategy == "per_day_warehouse":
            for document in held:
                document["bill_no"] = None  # a held document is in no merged bill (yet)
            alone = [own_bill(document) for document in ready if document[number] in own]
            to_merge = [document for document in ready if document[number] not in own]
            bills = [*merged_bills(to_merge), *alone, *held]
        else:
            bills = [
                own_bill(document) if document["readiness"] == Readiness.READY else document
                for document in documents
            ]
        return schema.frame(bills)


def _renumbered(spec: list[Any], made: Iterable[tuple[int, str]]) -> dict[str, str] | None:
    """spec_no → Kingdee material number, for the rows (row, number) whose numbers differ."""
    changed = {spec[row]: number for row, number in made if spec[row] != number}
    return changed or None
