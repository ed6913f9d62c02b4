"""The one vocabulary of what happened to a bill: every room (writer, assets, checks, sensors,
alerts, CLI) speaks these words, and the stored columns and metadata keys hold exactly them."""

from __future__ import annotations

from enum import StrEnum


class Readiness(StrEnum):
    """Whether a built bill may be sent (``kingdee_bills.readiness``)."""

    READY = "ready"
    HELD = "held"


class Outcome(StrEnum):
    """How the write left a bill (``kingdee_write_results.outcome``; each also a metadata count)."""

    CREATED = "created"
    ALREADY_IN_KINGDEE = "already_in_kingdee"
    HELD = "held"
    FAILED = "failed"


# The outcomes of a bill Kingdee holds.
IN_KINGDEE = (Outcome.CREATED, Outcome.ALREADY_IN_KINGDEE)
# The outcomes of a bill that is still open: someone or something must act on it.
OPEN = (Outcome.HELD, Outcome.FAILED)


class Failure(StrEnum):
    """Why a held or failed bill is open (``kingdee_write_results.failure``)."""

    PERMANENT = "permanent"  # no retry can fix it: a person must change something
    TRANSIENT = "transient"  # a retry may clear it
