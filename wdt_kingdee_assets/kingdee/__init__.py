"""Kingdee K3Cloud WebAPI protocol: signing, the FilterString builder, errors and the client.

Nothing here imports Dagster; the pipeline wraps :class:`KingdeeClient` in a resource.
"""

from wdt_kingdee_assets.kingdee.client import (
    BatchSaveResult,
    BillRecord,
    ClientStats,
    KingdeeClient,
    MaterialInfo,
    SavedBill,
    SavedEntry,
)
from wdt_kingdee_assets.kingdee.errors import (
    KingdeeAuthError,
    KingdeeError,
    KingdeeProtocolError,
    KingdeeQueryError,
    KingdeeSessionLost,
    KingdeeTransientError,
    KingdeeUnknownOutcome,
)
from wdt_kingdee_assets.kingdee.filters import all_of, field_cmp, field_eq, field_in, quote

__all__ = [
    "BatchSaveResult",
    "BillRecord",
    "ClientStats",
    "KingdeeAuthError",
    "KingdeeClient",
    "KingdeeError",
    "KingdeeProtocolError",
    "KingdeeQueryError",
    "KingdeeSessionLost",
    "KingdeeTransientError",
    "KingdeeUnknownOutcome",
    "MaterialInfo",
    "SavedBill",
    "SavedEntry",
    "all_of",
    "field_cmp",
    "field_eq",
    "field_in",
    "quote",
]
