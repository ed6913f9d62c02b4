"""Kingdee bill forms as data: the field keys a flow writes, finds and reads back, per form.

The keys are spelled exactly as each form's metadata (and the public samples) spell them: the
WebAPI may forgive another case, but nothing documents that it does, and the sandbox does not.
See ``shared/reference/kingdee_api.md`` (其他出库单) and ``docs/reference/production_stockin.md``
(其他入库单).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KingdeeForm:
    """One stock bill form: its id, names, and the keys of the fields the project relies on."""

    form_id: str
    chinese: str  # 其他出库单: how ops people name the bill
    english: str  # misc. delivery bill
    note: str  # the header remark field (备注), where the source reference goes by default
    material: str  # the entry's material field
    stock: str  # the entry's warehouse (仓库)
    lot: str  # the entry's lot (批号)
    stock_status: str  # the entry's stock status (库存状态)
    owner_type: str  # the entry's owner type and owner (货主)
    owner: str
    keeper_type: str  # the entry's keeper type and keeper (保管者)
    keeper: str
    bin: str  # the entry's bin (仓位), a flex field: {"<bin>__FF100001": {"FNumber": …}}
    produce_date: str  # the entry's production date (生产日期), shelf-life materials
    expiry_date: str  # the entry's expiry date (有效期至)
    quantity: str = "FQty"
    entry: str = "FEntity"
    bill_type: str = "FBillTypeID"
    stock_org: str = "FStockOrgId"
    date: str = "FDate"

    @property
    def name(self) -> str:
        """``其他出库单 (misc. delivery bill)``"""
        return f"{self.chinese} ({self.english})"

    @property
    def plural(self) -> str:
        """``其他出库单 (misc. delivery bills, STK_MisDelivery)``"""
        return f"{self.chinese} ({self.english}s, {self.form_id})"

    @property
    def entry_id(self) -> str:
        """The entry's internal id as ExecuteBillQuery names it (``FEntity_FEntryId``)."""
        return f"{self.entry}_FEntryId"


MIS_DELIVERY = KingdeeForm(
    form_id="STK_MisDelivery",
    chinese="其他出库单",
    english="misc. delivery bill",
    note="FNote",
    material="FMaterialId",
    stock="FStockId",
    lot="FLot",
    stock_status="FStockStatusId",
    owner_type="FOwnerTypeId",
    owner="FOwnerId",
    keeper_type="FKeeperTypeId",
    keeper="FKeeperId",
    bin="FStockLocId",  # KingdeeMisDeliveryBuilder.java sends it so
    produce_date="FProduceDate",  # [G] the form's usual keys; not seen in a public sample
    expiry_date="FExpiryDate",
)

MISCELLANEOUS = KingdeeForm(
    form_id="STK_MISCELLANEOUS",
    chinese="其他入库单",
    english="misc. receipt bill",
    note="FNOTE",
    material="FMATERIALID",
    stock="FSTOCKID",
    lot="FLOT",
    stock_status="FSTOCKSTATUSID",
    owner_type="FOWNERTYPEID",
    owner="FOWNERID",
    keeper_type="FKEEPERTYPEID",
    keeper="FKEEPERID",
    # [G] spelled like the form's other entry keys (upper case); not seen in a public sample.
    bin="FSTOCKLOCID",
    produce_date="FPRODUCEDATE",
    expiry_date="FEXPIRYDATE",
)

FORMS = {form.form_id: form for form in (MIS_DELIVERY, MISCELLANEOUS)}
