"""Orders kept on disk while a pull pages through a day: in memory, only what sorts and finds them.

A day of 100,000 orders with five lines each is about 1.2 GB as parsed dicts with exact decimals,
and a pull must hold every order until its passes agree (rows move while it pages). The spool
writes each order to an anonymous temporary file as its page arrives — as the stored day will
hold it (``encoding.py``: decimals as exact strings) — and keeps an entry of a few fields; the raw
step then copies the orders' text from it into the stored day, one at a time, parsing none.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from typing import Any

from wdt_kingdee_assets.encoding import EncodedJson, encode_json
from wdt_kingdee_assets.wdt.client import DocumentQuery


@dataclass(frozen=True, slots=True)
class SpooledOrder:
    """Where an order lies in its spool, and the fields a pull and the raw step ask of it
    without reading it back."""

    key: str  # the de-duplication key (order_key)
    time: Any  # the query's time field, exactly as WDT sent it
    ident: Any  # the method's id field (stockout_id), as sent
    number: Any  # the document number, as sent
    lines: int  # detail lines (0 when WDT sent none, or not a list)
    offset: int
    length: int


class OrderSpool:
    """An append-only temporary file of orders, in ``$TMPDIR`` (the file has no name: it is gone
    when the spool is closed, garbage-collected or its process dies).

    One pull fills it and one step reads it, one call after another: no locking. An order read
    back is what the stored day will hold: every value as WDT sent it, decimals as their exact
    text ("12.3400"), which is what the normalizer reads from a stored day too.
    """

    def __init__(self) -> None:
        # Open for the spool's life, not a block's: it is read after the pull that filled it.
        self._file = tempfile.TemporaryFile(prefix="wdt-orders-")  # noqa: SIM115
        self._end = 0

    def put(self, order: dict[str, Any], key: str, query: DocumentQuery) -> SpooledOrder:
        """Keep ``order`` (of ``query``'s method, de-duplicated by ``key``) on disk."""
        data = encode_json(order).encode("utf-8")
        offset = self._end
        self._file.seek(offset)
        self._file.write(data)
        self._end += len(data)
        method = query.method
        lines = order.get(method.lines)
        return SpooledOrder(
            key=key,
            time=order.get(query.time_field),
            ident=order.get(method.key),
            number=order.get(method.number),
            lines=len(lines) if isinstance(lines, list) else 0,
            offset=offset,
            length=len(data),
        )

    def text(self, entry: SpooledOrder) -> EncodedJson:
        """The order as the stored day writes it."""
        self._file.seek(entry.offset)
        data = self._file.read(entry.length)
        return EncodedJson(data.decode("utf-8"))

    def get(self, entry: SpooledOrder) -> dict[str, Any]:
        return json.loads(self.text(entry))

    def close(self) -> None:
        self._file.close()
