"""Pure: the source reference every bill carries, so that a later run finds it whatever its number.

Whether Kingdee keeps the FBillNo we send depends on the bill type's coding rule (编码规则); a rule
that numbers bills itself answers with its own number in ``SuccessEntitys[].Number``
(real-servers-vs-ours #1). Finding a bill by our number alone would then miss it, and every re-run
would write it again. So each bill carries a token ``[WDT:<source ref>]`` in a header field
(``FNote`` by default, or a custom ``F_…`` field), and a run looks for the day's bills of the form
by that token as well as by FBillNo.

The source ref names what the bill stands for (the stock-out's number for one bill per stock-out),
not the bill number: changing the bill-number template later does not orphan written bills.
Characters that would end the token or hide it in free text (``%``, ``]``, blanks, control
characters) are percent-encoded, so any WDT number round-trips.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_TOKEN = re.compile(r"\[WDT:([^\]\s]+)\]")


def _escape(char: str) -> str:
    if char in "%]" or char.isspace() or not char.isprintable():
        return "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
    return char


def reference_token(source_ref: str) -> str:
    """The token written into the bill for ``source_ref``."""
    if not source_ref:
        raise ValueError("a source reference must not be empty")
    return "[WDT:" + "".join(_escape(char) for char in source_ref) + "]"


def parse_reference(text: str | None) -> str | None:
    """The source ref of the first token in ``text``; None when it carries none."""
    match = _TOKEN.search(text or "")
    return unquote(match.group(1)) if match else None
