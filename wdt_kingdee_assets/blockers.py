"""Pure: what a held or refused bill waits on, as one key: a Kingdee material in a stock org.

The held-bills sensor re-syncs a day once such a material changes (created, enabled, audited,
assigned to the org). A material is assigned per use-org in Kingdee, so the key names the org
where it is not the flow's own: ``01.0003`` in the flow's stock org, ``01.0003@200`` in org 200.
A single-org flow (most) sees plain material numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

_AT = "@"


def blocker_key(number: str, org: str, main_org: str) -> str:
    """The key of material ``number`` in stock org ``org`` (``main_org``: the flow's own)."""
    return number if org == main_org else f"{number}{_AT}{org}"


def blocker_parts(key: str, orgs: Sequence[str]) -> tuple[str, str]:
    """(material number, stock org) of a key; ``orgs`` the flow's stock orgs, its own first.
    A suffix that is not one of them is part of the number (numbers may contain ``@``)."""
    number, at, org = key.rpartition(_AT)
    if at and org in orgs:
        return number, org
    return key, orgs[0]
