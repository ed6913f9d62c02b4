"""How every stored file writes a value as JSON: Decimals as exact strings (never floats),
datetimes as ISO text, Chinese as it is, no spaces. Pure: the pull's spool writes orders this way
too, so that the raw step can put an order into the stored day without parsing it again."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any


class EncodedJson(str):
    """JSON text already written by :func:`encode_json`: a stored file takes it as it is."""

    __slots__ = ()


def _default(value: Any) -> Any:
    """What the encoder cannot write itself: Decimals as exact strings, datetimes as ISO text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):  # pandas' Timestamp included
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON: {value!r}")


# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default)


def encode_json(value: Any) -> str:
    return _ENCODER.encode(value)
