"""The WDT side of a flow, as a value: its query and how people name its documents. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from wdt_kingdee_assets.wdt.methods import WdtMethod


@dataclass(frozen=True)
class Source:
    """The WDT side of a flow: the query that proves a day complete, and how people name it."""

    method: WdtMethod
    time_type: int  # which time the day is cut by (出库时间 for stock-outs)
    status: str  # the statuses pulled and accepted, comma-separated ("110" = 已完成)
    noun: str  # "stock-out": one document, in English
    chinese: str  # "生产出库单": the documents as WDT names them
    english: str  # "production stock-outs"
    lines_title: str  # "出库明细 (stock-out lines)"
    document_chinese: str  # "出库单": one document, as WDT names it
    time_title: str  # "出库时间"
    quantity_title: str  # "实发数量"

    @property
    def title(self) -> str:
        """``旺店通生产出库单 (WDT production stock-outs)``"""
        return f"旺店通{self.chinese} (WDT {self.english})"

    @property
    def key_title(self) -> str:
        return f"{self.document_chinese}ID"

    @property
    def number_title(self) -> str:
        return f"{self.document_chinese}号"

    @property
    def key(self) -> str:
        return self.method.key

    @property
    def number(self) -> str:
        return self.method.number

    @property
    def time_field(self) -> str:
        return self.method.time_field(self.time_type)

    @property
    def statuses(self) -> list[int]:
        return [int(part) for part in self.status.split(",")]
